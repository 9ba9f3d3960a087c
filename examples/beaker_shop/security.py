"""Who is logged in: a Pyramid 2 security policy that keeps the user id in the session.

There is no user database: any user name logs in with the demo password
:data:`DEMO_PASSWORD`.  Logged-in users get the ``shop`` permission, which
the basket and checkout views require.
"""
import hmac

from pyramid.authentication import SessionAuthenticationHelper
from pyramid.security import Allowed, Denied

#: The password of every demo user (shown on the login page).
DEMO_PASSWORD = 'beaker'
MAX_NAME_LENGTH = 40


def check_credentials(username, password):
    """Return the user id for a good login, or None."""
    username = username.strip()
    if not username or len(username) > MAX_NAME_LENGTH:
        return None
    if not hmac.compare_digest(password.encode(), DEMO_PASSWORD.encode()):
        return None
    return username


class ShopSecurityPolicy:
    """Authenticates from the session; the ``shop`` permission needs a login."""

    def __init__(self):
        self.helper = SessionAuthenticationHelper()

    def identity(self, request):
        return self.helper.authenticated_userid(request)

    def authenticated_userid(self, request):
        return self.helper.authenticated_userid(request)

    def permits(self, request, context, permission):
        if permission == 'shop' and self.identity(request) is not None:
            return Allowed('logged-in users may shop')
        return Denied('%r needs a logged-in user' % permission)

    def remember(self, request, userid, **kw):
        return self.helper.remember(request, userid, **kw)

    def forget(self, request, **kw):
        return self.helper.forget(request, **kw)
