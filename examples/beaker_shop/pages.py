"""HTML for the shop, written with plain string formatting.

Every value that comes from a user or from the session goes through
:func:`esc` before it is put into markup.  Helpers return markup strings;
:func:`page` wraps a body in the layout shared by every page.
"""
from html import escape

from pyramid.response import Response

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; }
header { display: flex; gap: 1rem; align-items: center; border-bottom: 1px solid #ccc;
         padding-bottom: .5rem; }
header form { margin-left: auto; }
.flash { padding: .5rem 1rem; border-radius: .3rem; background: #e7f5e7; }
.flash.error { background: #fbe4e4; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #eee; }
.note { color: #666; font-size: .9rem; }
"""


def esc(value):
    """Escape ``value`` for HTML text and double-quoted attributes."""
    return escape(str(value), quote=True)


def money(cents):
    return '%d.%02d €' % divmod(cents, 100)


def csrf_field(request):
    """The hidden input carrying the session's CSRF token."""
    return '<input type="hidden" name="csrf_token" value="%s">' % esc(
        request.session.get_csrf_token())


def post_button(request, action, label, fields=None, form_id=None):
    """A one-button form that POSTs ``fields`` with the CSRF token."""
    hidden = ''.join(
        '<input type="hidden" name="%s" value="%s">' % (esc(key), esc(value))
        for key, value in (fields or {}).items())
    return ('<form method="post" action="%s"%s>%s%s<button type="submit">%s</button></form>'
            % (esc(action), ' id="%s"' % esc(form_id) if form_id else '',
               csrf_field(request), hidden, esc(label)))


def _flashes(request):
    shown = [('flash error', msg) for msg in request.session.pop_flash('error')]
    shown += [('flash', msg) for msg in request.session.pop_flash()]
    return ''.join('<p class="%s" role="status">%s</p>' % (cls, esc(msg))
                   for cls, msg in shown)


def _header(request, personal):
    links = [
        '<a href="%s">Shop</a>' % esc(request.route_path('home')),
        '<a href="%s">Offers</a>' % esc(request.route_path('offers')),
    ]
    if not personal:
        links.append('<a href="%s">Basket</a>' % esc(request.route_path('basket')))
        return '<header>%s</header>' % ' '.join(links)
    user = request.authenticated_userid
    if user is None:
        links.append('<a href="%s" id="login-link">Log in</a>'
                     % esc(request.route_path('login')))
        return '<header>%s</header>' % ' '.join(links)
    count = sum(request.session.get('basket', {}).values())
    links.append('<a href="%s" id="basket-link">Basket (%d)</a>'
                 % (esc(request.route_path('basket')), count))
    logout = post_button(request, request.route_path('logout'), 'Log out', form_id='logout')
    return '<header>%s <span>Logged in as <b id="user">%s</b></span>%s</header>' % (
        ' '.join(links), esc(user), logout)


def page(request, title, body, status=200, personal=True):
    """Return a Response holding ``body`` inside the shop's layout.

    The layout shows the flash messages (removing them from the session)
    and, for a logged-in user, the basket size and a logout button.  With
    ``personal=False`` it leaves out all of that and never touches the
    session, so the page is the same for everyone and may be cached.
    """
    html = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>%(title)s · Beaker shop</title>
<style>%(style)s</style></head>
<body>
%(header)s
%(flashes)s
<main>
<h1>%(title)s</h1>
%(body)s
</main>
</body>
</html>
""" % {
        'title': esc(title),
        'style': STYLE,
        'header': _header(request, personal),
        'flashes': _flashes(request) if personal else '',
        'body': body,
    }
    return Response(html, status=status, charset='utf-8')
