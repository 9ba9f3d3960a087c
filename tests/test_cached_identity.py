"""Cached views never serve one user's page to another, nor mix query orders.

A request with an identity (a user id, or an ``Authorization`` header)
neither reads nor writes the entry anonymous requests share, unless the
decorator says how: ``per_user``, ``vary`` or ``shared=True``.
"""
import pytest
import webtest
from pyramid.authentication import AuthTktCookieHelper, SessionAuthenticationHelper

from .scanfixtures import personal, views
from .scanfixtures.apps import include, settings

pytestmark = pytest.mark.filterwarnings('error')


class AuthTktPolicy:
    def __init__(self):
        self.helper = AuthTktCookieHelper('auth-tkt-secret-0123456789', hashalg='sha512')

    def identity(self, request):
        found = self.helper.identify(request)
        return None if found is None else found['userid']

    def authenticated_userid(self, request):
        return self.identity(request)

    def permits(self, request, context, permission):
        return True

    def remember(self, request, userid, **kw):
        return self.helper.remember(request, userid, **kw)

    def forget(self, request, **kw):
        return self.helper.forget(request, **kw)


class SessionPolicy(AuthTktPolicy):
    def __init__(self):
        self.helper = SessionAuthenticationHelper()

    def identity(self, request):
        return self.helper.authenticated_userid(request)

    def remember(self, request, userid, **kw):
        return self.helper.remember(request, userid, **kw)


def make_app(config, policy):
    config.add_settings(settings('identity', **{
        'session.type': 'memory', 'session.secret': 'identity-secret-0123'}))
    include(config)
    config.set_security_policy(policy)
    for name in ('hello', 'hello_shared', 'login'):
        config.add_route(name, '/' + name)
    config.scan('tests.scanfixtures.personal')
    return config.make_wsgi_app()


def visitors(config, policy):
    wsgi = make_app(config, policy)
    anonymous = webtest.TestApp(wsgi)
    alice, bob = webtest.TestApp(wsgi), webtest.TestApp(wsgi)
    alice.get('/login?user=alice')
    bob.get('/login?user=bob')
    return anonymous, alice, bob


@pytest.mark.parametrize('policy', [AuthTktPolicy, SessionPolicy])
def test_a_personal_page_is_never_served_to_someone_else(config, policy):
    anonymous, alice, bob = visitors(config, policy())
    before = personal.CALLS['hello']
    assert anonymous.get('/hello').text == 'Hello, None'
    assert alice.get('/hello').text == 'Hello, alice'
    assert bob.get('/hello').text == 'Hello, bob'
    assert alice.get('/hello').text == 'Hello, alice'
    assert anonymous.get('/hello').text == 'Hello, None'
    # Anonymous visitors still share one entry; identified ones are not cached.
    assert personal.CALLS['hello'] - before == 4


def test_an_authorization_header_is_an_identity(config):
    anonymous, _, _ = visitors(config, AuthTktPolicy())
    anonymous.get('/hello')
    before = personal.CALLS['hello']
    anonymous.get('/hello', headers={'Authorization': 'Bearer token-of-carol'})
    assert personal.CALLS['hello'] - before == 1


def test_shared_true_serves_one_entry_to_everyone(config):
    anonymous, alice, bob = visitors(config, AuthTktPolicy())
    first = anonymous.get('/hello_shared').text
    assert alice.get('/hello_shared').text == first
    assert bob.get('/hello_shared').text == first


def test_the_order_of_repeated_query_parameters_counts(config):
    from .test_cached_views import build

    app = build(config)
    by_name = app.get('/report?sort=name&sort=price').json
    by_price = app.get('/report?sort=price&sort=name').json
    assert by_price['run'] != by_name['run']
    assert app.get('/report?sort=name&sort=price').json == by_name
    assert app.get('/report?x=1&sort=name&sort=price').json == app.get(
        '/report?sort=name&x=1&sort=price').json
    assert views.CALLS  # the scanned views ran
