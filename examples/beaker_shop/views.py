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
from pyramid.renderers import render_to_response
from pyramid.security import forget, remember
from pyramid.view import (
    exception_view_config,
    forbidden_view_config,
    notfound_view_config,
    view_config,
)

from pyramid_beaker import cached_region

from . import catalog
from .security import DEMO_PASSWORD, check_credentials

BASKET = 'basket'  # session key: {product id: quantity}
DELIVERY_NOTE = 'delivery_note'  # session key: the note typed at checkout


#: How often this process built the offers page (cached, so rarely).
offers_built = catalog.Counter()


class PaymentUnavailable(Exception):
    """The (pretend) payment provider cannot be reached."""


def money(cents):
    """Format a price in cents as euros."""
    return '%d.%02d €' % divmod(cents, 100)


def message_page(request, title, message, status, message_id=None, link=None,
                 link_text=None, personal=True):
    """Render ``message.jinja2`` with ``status``; return the response."""
    request.response.status_int = status
    return render_to_response('templates/message.jinja2', {
        'title': title, 'message': message, 'message_id': message_id,
        'link': link, 'link_text': link_text, 'personal': personal,
    }, request=request, response=request.response)


# -- shop ----------------------------------------------------------------------

@view_config(route_name='home', request_method='GET', renderer='templates/home.jinja2')
def home(request):
    products = [{'id': product.id, 'name': product.name,
                 'description': product.description, 'price': money(product.price)}
                for product in catalog.load_products().values()]
    return {
        'title': 'Laboratory glassware',
        'products': products,
        'logged_in': request.authenticated_userid is not None,
        'supplier_calls': catalog.supplier_calls.count,
    }


@view_config(route_name='catalog_refresh', request_method='POST', permission='shop')
def catalog_refresh(request):
    catalog.load_products.invalidate()
    request.session.flash('The catalogue will be fetched again from the supplier.')
    return HTTPSeeOther(request.route_url('home'))


@view_config(route_name='offers', request_method='GET', renderer='templates/offers.jinja2')
@cached_region('short_term', shared=True)
def offers(request):
    """The offers of the day: the same for everyone, so cached (``shared``:
    logged-in visitors get the entry anonymous ones share).

    The view returns the data of the page, which is what the region keeps;
    the renderer draws it inside the layout for every request, so the
    header still shows who is logged in.  The view itself must not touch
    ``request.session``: a cached view that reads the session is not
    stored (unless ``per_user`` is set), since it could show one visitor's
    data to another.
    """
    offers_built.add()
    return {
        'title': "Today's offers",
        'offers': [{'name': product.name, 'price': money(product.price),
                    'offer': money(price)}
                   for product, price in catalog.todays_offers(catalog.load_products())],
        'built_at': time.strftime('%H:%M:%S'),
        'built': offers_built.count,
    }


# -- basket ------------------------------------------------------------------

def basket_lines(request):
    """Return ``[(product, quantity)]`` for the session's basket."""
    products = catalog.load_products()
    return [(products[pid], quantity)
            for pid, quantity in sorted(request.session.get(BASKET, {}).items())
            if pid in products]


@view_config(route_name='basket', request_method='GET', permission='shop',
             renderer='templates/basket.jinja2')
def basket(request):
    lines = basket_lines(request)
    return {
        'title': 'Your basket',
        'lines': [{'id': product.id, 'name': product.name, 'quantity': quantity,
                   'price': money(product.price * quantity)}
                  for product, quantity in lines],
        'total': money(sum(product.price * quantity for product, quantity in lines)),
        'note': request.session.get(DELIVERY_NOTE, ''),
    }


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
    return message_page(
        request, 'Payment unavailable',
        'We could not take your payment: %s. Your basket and your delivery note '
        'are kept.' % exc, 503, message_id='payment-failed',
        link=request.route_path('basket'), link_text='Try again later')


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
    request.response.status_int = status
    return render_to_response('templates/login.jinja2', {
        'title': 'Log in',
        'error': error,
        'came_from': _local_path(request.params.get('came_from'),
                                 request.route_path('home')),
        'username': username,
        'demo_password': DEMO_PASSWORD,
    }, request=request, response=request.response)


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
    return message_page(
        request, 'Form expired',
        'This form has expired or did not come from this site.', 400,
        message_id='bad-csrf', link=request.route_path('home'), link_text='Start again')


@notfound_view_config()
def not_found(request):
    # Not personal: a stray URL neither loads nor creates a session.
    return message_page(request, 'Not found', 'There is no such page.', 404,
                        personal=False)
