"""Per-session expiry: ``set_expiry(seconds)`` on every store type."""
import time

import pytest

from .helpers import COOKIE
from .session_stores import KINDS, SERVER_SIDE, store_options
from .test_session_edges import build_app, raw_get


def remember(request):
    """Log in; ``seconds`` is the session's own expiry ('none' clears it)."""
    seconds = request.params.get('seconds', 'none')
    request.session['user'] = 'alice'
    request.session.set_expiry(None if seconds == 'none' else int(seconds))
    return {'keys': sorted(request.session), 'expiry': request.session.get_expiry()}


def max_age(response):
    for part in response.headers.get('Set-Cookie', '').split(';'):
        name, _, value = part.strip().partition('=')
        if name.lower() == 'max-age':
            return int(value)
    return None


def test_own_expiry_wins_over_the_factory_timeout_both_ways(tmp_dir, request, factories):
    """A short own expiry ends the session early; a long one ("remember me")
    keeps it past the factory's timeout, and past purge_expired."""
    short, long = {}, {}
    for kind in KINDS:
        app = build_app(factories(**store_options(kind, tmp_dir + '/s-' + kind.replace(':', '_'),
                                                  request, timeout=600)),
                        {'remember': remember})
        app.get('/hook/remember', {'seconds': '2'})
        short[kind] = (app, app.cookies[COOKIE])
        factory = factories(**store_options(kind, tmp_dir + '/l-' + kind.replace(':', '_'),
                                            request, timeout=2, refresh_interval=1))
        app = build_app(factory, {'remember': remember})
        app.get('/hook/remember', {'seconds': '600'})
        long[kind] = (app, factory, app.cookies[COOKIE])
    time.sleep(3.2)
    for kind in KINDS:
        app, cookie = short[kind]
        assert raw_get(app, '/get', '%s=%s' % (COOKIE, cookie)).json['data'] == {}, kind
        app, factory, cookie = long[kind]
        if kind in ('memory', 'file', 'dbm', 'ext:database', 'ext:database-mariadb'):
            factory.purge_expired()
        response = raw_get(app, '/get', '%s=%s' % (COOKIE, cookie))
        assert response.json['data'] == {'user': 'alice'}, kind


def test_cookie_max_age_follows_the_own_expiry(kind, tmp_dir, request, factories):
    app = build_app(factories(**store_options(kind, tmp_dir, request)), {'remember': remember})
    response = app.get('/hook/remember', {'seconds': '1209600'})
    assert max_age(response) == 1209600
    assert response.json == {'keys': ['user'], 'expiry': 1209600}  # stored, never shown
    assert app.get('/get').json['data'] == {'user': 'alice'}
    response = app.get('/hook/remember', {'seconds': 'none'})
    assert max_age(response) is None  # back to the factory's browser-session cookie
    assert response.json['expiry'] == 600


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


def test_own_expiry_survives_a_new_id(server_kind, tmp_dir, request, factories):
    def login(req):
        req.session.set_expiry(900)
        req.session['user'] = 'alice'
        req.session.regenerate_id()
        return {}

    app = build_app(factories(**store_options(server_kind, tmp_dir, request)),
                    {'login': login})
    assert max_age(app.get('/hook/login')) == 900
    assert max_age(app.get('/set', {'more': '1'})) == 900


@pytest.fixture(params=SERVER_SIDE)
def server_kind(request):
    return request.param


@pytest.mark.parametrize('bad', [0, -5, 1.5, True, '60'])
def test_set_expiry_refuses_what_is_not_seconds(tmp_dir, request, factories, bad):
    def set_bad(req):
        with pytest.raises(ValueError, match='set_expiry'):
            req.session.set_expiry(bad)
        return {'refused': True}

    app = build_app(factories(**store_options('memory', tmp_dir, request)), {'bad': set_bad})
    assert app.get('/hook/bad').json == {'refused': True}
