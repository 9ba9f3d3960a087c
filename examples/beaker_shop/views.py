"""The shop's views.

Every form POSTs with the session's CSRF token (Pyramid checks it, since
``require_csrf`` is on).  Logging in keeps the session's data under a new
id (``regenerate_id``); logging out deletes it (``invalidate``).
"""
import time
from urllib.parse import urlsplit

from pyramid.csrf import new_csrf_token
from pyramid.exceptions import BadCSRFToken
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.security import forget, remember
from pyramid.view import (
    exception_view_config,
    forbidden_view_config,
    notfound_view_config,
    view_config,
)

from pyramid_beaker import cached_region

from . import catalog
from .pages import csrf_field, esc, money, page, post_button
from .security import DEMO_PASSWORD, check_credentials

BASKET = 'basket'  # session key: {product id: quantity}
DELIVERY_NOTE = 'delivery_note'  # session key: the note typed at checkout


#: How often this process built the offers page (cached, so rarely).
offers_built = catalog.Counter()


class PaymentUnavailable(Exception):
    """The (pretend) payment provider cannot be reached."""


# -- shop ----------------------------------------------------------------------

@view_config(route_name='home', request_method='GET')
def home(request):
    products = catalog.load_products()
    logged_in = request.authenticated_userid is not None
    rows = []
    for product in products.values():
        if logged_in:
            action = post_button(request, request.route_path('basket_add'),
                                 'Add to basket', {'product': product.id},
                                 form_id='add-' + product.id)
        else:
            action = ''
        rows.append('<tr><td>%s<br><span class="note">%s</span></td><td>%s</td>'
                    '<td>%s</td></tr>' % (esc(product.name), esc(product.description),
                                          esc(money(product.price)), action))
    if logged_in:
        intro = '<p>Add products to your basket; it is kept in your session.</p>'
        refresh = post_button(request, request.route_path('catalog_refresh'),
                              'Reload the catalogue from the supplier')
    else:
        intro = ('<p><a href="%s">Log in</a> to fill a basket.</p>'
                 % esc(request.route_path('login')))
        refresh = ''
    body = '''%s
<table>
<tr><th>Product</th><th>Price</th><th></th></tr>
%s
</table>
<p class="note">The catalogue comes from the <code>long_term</code> cache region;
the supplier has been asked <span id="supplier-calls">%d</span> time(s) by this
process.</p>
%s''' % (intro, '\n'.join(rows), catalog.supplier_calls.count, refresh)
    return page(request, 'Laboratory glassware', body)


@view_config(route_name='catalog_refresh', request_method='POST', permission='shop')
def catalog_refresh(request):
    catalog.load_products.invalidate()
    request.session.flash('The catalogue will be fetched again from the supplier.')
    return HTTPSeeOther(request.route_url('home'))


@view_config(route_name='offers', request_method='GET')
@cached_region('short_term')
def offers(request):
    """The offers of the day: the same page for everyone, so cached whole.

    It must not touch ``request.session``: a cached view that reads the
    session is not stored (unless ``per_user`` is set), since it could
    show one visitor's data to another.
    """
    offers_built.add()
    rows = ''.join(
        '<tr><td>%s</td><td><s>%s</s> %s</td></tr>'
        % (esc(product.name), esc(money(product.price)), esc(money(price)))
        for product, price in catalog.todays_offers(catalog.load_products()))
    body = '''<table>%s</table>
<p class="note">This page is cached in the <code>short_term</code> region.
It was built at <span id="built-at">%s</span>; this process has built it
<span id="offers-built">%d</span> time(s).</p>''' % (
        rows, time.strftime('%H:%M:%S'), offers_built.count)
    return page(request, "Today's offers", body, personal=False)


# -- basket ------------------------------------------------------------------

def basket_lines(request):
    """Return ``[(product, quantity)]`` for the session's basket."""
    products = catalog.load_products()
    return [(products[pid], quantity)
            for pid, quantity in sorted(request.session.get(BASKET, {}).items())
            if pid in products]


@view_config(route_name='basket', request_method='GET', permission='shop')
def basket(request):
    lines = basket_lines(request)
    if not lines:
        return page(request, 'Your basket',
                    '<p id="basket-empty">Your basket is empty.</p>')
    rows = ''.join(
        '<tr class="line"><td>%s</td><td class="quantity">%d</td><td>%s</td><td>%s</td></tr>'
        % (esc(product.name), quantity, esc(money(product.price * quantity)),
           post_button(request, request.route_path('basket_remove'), 'Remove',
                       {'product': product.id}))
        for product, quantity in lines)
    total = sum(product.price * quantity for product, quantity in lines)
    body = '''<table id="basket">%s
<tr><th>Total</th><th></th><th id="total">%s</th><th></th></tr></table>
<h2>Checkout</h2>
<form method="post" action="%s" id="checkout">%s
<label>Delivery note <input name="note" value="%s" maxlength="200"></label>
<button type="submit">Pay now</button>
</form>''' % (rows, esc(money(total)), esc(request.route_path('checkout')),
              csrf_field(request), esc(request.session.get(DELIVERY_NOTE, '')))
    return page(request, 'Your basket', body)


@view_config(route_name='basket_add', request_method='POST', permission='shop')
def basket_add(request):
    product = catalog.get_product(request.POST.get('product', ''))
    if product is None:
        request.session.flash('There is no such product.', 'error')
        return HTTPSeeOther(request.route_url('home'))
    # Store a new dict: the session saves values that are assigned to it.
    contents = dict(request.session.get(BASKET, {}))
    contents[product.id] = contents.get(product.id, 0) + 1
    request.session[BASKET] = contents
    request.session.flash('Added %s to your basket.' % product.name)
    return HTTPSeeOther(request.route_url('home'))


@view_config(route_name='basket_remove', request_method='POST', permission='shop')
def basket_remove(request):
    contents = dict(request.session.get(BASKET, {}))
    if contents.pop(request.POST.get('product', ''), None) is not None:
        request.session[BASKET] = contents
        request.session.flash('Removed from your basket.')
    return HTTPSeeOther(request.route_url('basket'))


@view_config(route_name='checkout', request_method='POST', permission='shop')
def checkout(request):
    """Keep the delivery note, then fail to pay (there is no payment provider).

    The note is saved even though the view raises, because the session
    setting ``cookie_on_exception`` is true: see :func:`payment_failed`.
    """
    request.session[DELIVERY_NOTE] = request.POST.get('note', '')[:200]
    raise PaymentUnavailable('this demo has no payment provider')


@exception_view_config(PaymentUnavailable)
def payment_failed(exc, request):
    body = '''<p id="payment-failed">We could not take your payment: %s.</p>
<p>Your basket and your delivery note are kept; <a href="%s">try again later</a>.</p>''' % (
        esc(exc), esc(request.route_path('basket')))
    return page(request, 'Payment unavailable', body, status=503)


# -- login and logout ----------------------------------------------------------

def _local_path(url, default):
    """Return ``url`` if it is a path on this site, else ``default``.

    Browsers read ``//host`` and ``/\\host`` as other sites: both are refused.
    """
    url = url or ''
    parts = urlsplit(url)
    if (parts.scheme or parts.netloc or not url.startswith('/')
            or url.startswith('//') or '\\' in url):
        return default
    return url


def _login_page(request, username='', error=None, status=200):
    came_from = _local_path(request.params.get('came_from'), request.route_path('home'))
    body = '''%s<form method="post" action="%s" id="login">%s
<input type="hidden" name="came_from" value="%s">
<p><label>User name <input name="username" value="%s" maxlength="40" required
   autofocus></label></p>
<p><label>Password <input name="password" type="password" required></label></p>
<p><button type="submit">Log in</button></p>
</form>
<p class="note">Demo: any user name, password <code>%s</code>.</p>''' % (
        '<p class="flash error" role="alert">%s</p>' % esc(error) if error else '',
        esc(request.route_path('login')), csrf_field(request), esc(came_from),
        esc(username), esc(DEMO_PASSWORD))
    return page(request, 'Log in', body, status=status)


@view_config(route_name='login', request_method='GET')
def login_form(request):
    if request.authenticated_userid is not None:
        return HTTPSeeOther(request.route_url('home'))
    return _login_page(request)


@view_config(route_name='login', request_method='POST')
def login(request):
    username = request.POST.get('username', '')
    userid = check_credentials(username, request.POST.get('password', ''))
    if userid is None:
        return _login_page(request, username, 'Wrong user name or password.', status=400)
    # Against session fixation: the data stays, under a new session id.
    request.session.regenerate_id()
    new_csrf_token(request)  # and a new CSRF token for the logged-in session
    headers = remember(request, userid)
    request.session.flash('Welcome, %s!' % userid)
    came_from = _local_path(request.POST.get('came_from'), request.route_path('home'))
    return HTTPSeeOther(came_from, headers=headers)


@view_config(route_name='logout', request_method='POST')
def logout(request):
    # Deletes the stored session: basket, login, everything.
    request.session.invalidate()
    headers = forget(request)
    request.session.flash('You are logged out.')
    return HTTPSeeOther(request.route_url('home'), headers=headers)


# -- errors --------------------------------------------------------------------

@forbidden_view_config()
def forbidden(request):
    """Send visitors who are not logged in to the login form."""
    request.session.flash('Please log in first.', 'error')
    came_from = request.path if request.method == 'GET' else request.route_path('home')
    return HTTPSeeOther(request.route_url('login', _query={'came_from': came_from}))


@exception_view_config(BadCSRFToken)
def bad_csrf_token(exc, request):
    body = ('<p id="bad-csrf">This form has expired or did not come from this site. '
            '<a href="%s">Start again</a>.</p>' % esc(request.route_path('home')))
    return page(request, 'Form expired', body, status=400)


@notfound_view_config()
def not_found(request):
    return page(request, 'Not found', '<p>There is no such page.</p>', status=404,
                personal=False)
