"""Sessions at the edges, on every store type: hostile cookies, failing
stores, logouts racing with requests in flight, emptied sessions, Vary."""
import time

import pytest
from webob import Request
from webtest import TestApp

from pyramid_beaker.stores.base import SessionBackendError

from .helpers import COOKIE, cookie_id
from .session_app import make_config
from .session_stores import KINDS, SERVER_SIDE, store_options
from .tcp_proxy import TCPProxy


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture(params=SERVER_SIDE)
def server_kind(request):
    return request.param


def backend_error_view(exc, request):
    """What an app shows when its session store is down (reads flash messages)."""
    try:
        messages = request.session.peek_flash()
    except SessionBackendError as again:
        messages = ['same error: %s' % (again is exc)]
    request.response.status = 503
    return {'store_down': True, 'messages': messages}


def build_app(factory, hooks=None):
    """A TestApp over session_app's views plus ``/hook/<name>`` views that run
    ``hooks[name](request)``; pyramid_beaker is included (its tween) and
    SessionBackendError has an exception view."""
    config = make_config(factory)
    config.include('pyramid_beaker')
    config.add_view(backend_error_view, context=SessionBackendError, renderer='json')
    for name, hook in (hooks or {}).items():
        config.add_route('hook_' + name, '/hook/' + name)
        config.add_view(hook, route_name='hook_' + name, renderer='json')
    return TestApp(config.make_wsgi_app())


def raw_get(app, path, cookie_header):
    """GET ``path`` with exactly ``cookie_header`` (a WSGI latin-1 str)."""
    request = Request.blank(path, environ={'HTTP_COOKIE': cookie_header})
    return request.get_response(app.app)


# -- 1. crafted cookies ----------------------------------------------------------

CRAFTED = [
    '0123456789abcdef0123456789abcdef.\xc3\xa9',  # a non-ASCII signature
    '"0123456789abcdef0123456789abcdef.\\303\\251"',
    '"\\351"',
    '\xe9',
    '0123456789abcdef0123456789abcdef.' + '\xff' * 32,
]


@pytest.mark.parametrize('value', CRAFTED)
def test_crafted_cookie_gives_a_fresh_session(kind, tmp_dir, request, factories, value):
    app = build_app(factories(**store_options(kind, tmp_dir, request)))
    app.get('/set', {'mine': 'secret-data'})
    response = raw_get(app, '/get', '%s=%s' % (COOKIE, value))
    assert response.status_int == 200
    assert response.json['data'] == {}


def test_another_apps_undecodable_cookie_does_not_lock_the_user_out(
        kind, tmp_dir, request, factories):
    app = build_app(factories(**store_options(kind, tmp_dir, request)))
    app.get('/set', {'mine': 'secret-data'})
    mine = app.cookies[COOKIE]
    for header in ('other="\\351"; %s=%s' % (COOKIE, mine),
                   '%s=%s; other=\xe9\xff' % (COOKIE, mine)):
        response = raw_get(app, '/get', header)
        assert response.status_int == 200
        assert response.json['data'] == {'mine': 'secret-data'}


# -- 2. and 3. a store failing between load and save, or at load -------------------

def proxied_redis(redis_url):
    """A TCPProxy in front of the test Redis server, and the URL through it."""
    host_port, _, db = redis_url.split('://', 1)[1].partition('/')
    port = int(host_port.rsplit(':', 1)[1])
    proxy = TCPProxy(port)
    return proxy, lambda: 'redis://127.0.0.1:%d/%s' % (proxy.port, db or '0')


def test_failed_save_reaches_the_apps_exception_view(redis_url, tmp_dir, request, factories):
    proxy, url = proxied_redis(redis_url)
    with proxy:
        options = store_options('ext:redis', tmp_dir, request, url=url(),
                                socket_timeout=2)

        def cut_then_write(req):
            req.session['seen'] = req.session['a']  # loaded while the store is up
            proxy.stop()
            req.session['written'] = 'never'
            return {'view': 'done'}

        app = build_app(factories(**options), {'cut': cut_then_write})
        app.get('/set', {'a': '1'})
        response = app.get('/hook/cut', status=503)
    assert response.json == {'store_down': True, 'messages': []}


def test_a_failed_save_of_keys_set_unloaded_reaches_the_apps_exception_view(
        redis_url, tmp_dir, request, factories):
    """A request that only sets keys saves them without loading: when that
    save fails, the exception view meets the same error on the session."""
    proxy, url = proxied_redis(redis_url)
    with proxy:
        options = store_options('ext:redis', tmp_dir, request, url=url(),
                                socket_timeout=2)

        def write_then_cut(req):
            req.session['written'] = 'never'
            proxy.stop()
            return {'view': 'done'}

        app = build_app(factories(**options), {'cut': write_then_cut})
        app.get('/set', {'a': '1'})
        response = app.get('/hook/cut', status=503)
    assert response.json == {'store_down': True, 'messages': ['same error: True']}


def test_every_use_after_a_failed_load_raises_the_same_error(
        redis_url, tmp_dir, request, factories):
    proxy, url = proxied_redis(redis_url)
    seen = []

    def use_twice(req):
        for attempt in range(3):
            try:
                req.session.get('a')
            except SessionBackendError as exc:
                seen.append(exc)
        return {'errors': len(seen)}

    with proxy:
        options = store_options('ext:redis', tmp_dir, request, url=url(),
                                socket_timeout=2)
        app = build_app(factories(**options), {'twice': use_twice})
        app.get('/set', {'a': '1'})
        proxy.stop()
        assert app.get('/hook/twice').json == {'errors': 3}
        # The exception view reads flash messages: the same error, not a 500.
        response = app.get('/get', status=503)
    assert len(seen) == 3 and seen[1] is seen[0] and seen[2] is seen[0]
    assert response.json == {'store_down': True, 'messages': ['same error: True']}


# -- 4. no resurrection -----------------------------------------------------------------

def _load(session):
    assert session['user'] == 'alice'


def _race(kind, tmp_dir, request, factories, finish, idle=0, begin=_load):
    """Request A begins with ``begin(session)`` (it loads the session) ``idle``
    seconds after the session was written; request B logs out meanwhile; A
    then ends with ``finish(session)``.  Return (app, factory, old cookie,
    A's response)."""
    factory = factories(**store_options(kind, tmp_dir, request,
                                        refresh_interval=1))
    holder = {}

    def slow(req):
        begin(req.session)  # A has begun
        holder['app'].get('/invalidate', headers={'Cookie': '%s=%s' % (COOKIE, holder['cookie'])})
        finish(req.session)
        return {'done': True}

    app = build_app(factory, {'slow': slow})
    holder['app'] = TestApp(app.app)  # B: another browser tab, no cookie jar of its own
    app.get('/set', {'user': 'alice', 'cart': '3 items'})
    holder['cookie'] = old = app.cookies[COOKIE]
    time.sleep(idle)
    response = app.get('/hook/slow')
    return app, factory, old, response


@pytest.mark.parametrize('finish', ['set', 'changed', 'save'])
def test_logout_is_not_undone_by_a_request_in_flight(
        server_kind, tmp_dir, request, factories, finish):
    def end(session):
        if finish == 'set':
            session['late'] = 'write'
        else:
            getattr(session, finish)()

    app, factory, old, response = _race(server_kind, tmp_dir, request, factories, end)
    assert factory.store.load(cookie_id(old)) is None
    header = response.headers.get('Set-Cookie', '')
    assert header.startswith(COOKIE + '=;') and 'Max-Age=0' in header
    replay = raw_get(app, '/get', '%s=%s' % (COOKIE, old))
    assert replay.json['data'] == {}
    assert factory.store.load(cookie_id(old)) is None


def test_logout_is_not_undone_by_a_write_only_request_in_flight(
        server_kind, tmp_dir, request, factories):
    """A request that only sets keys never reads the session: what it set
    before and after the logout is dropped all the same."""
    def begin(session):
        session['early'] = 'write'

    def end(session):
        session['late'] = 'write'

    app, factory, old, response = _race(server_kind, tmp_dir, request, factories, end,
                                        begin=begin)
    assert factory.store.load(cookie_id(old)) is None
    header = response.headers.get('Set-Cookie', '')
    assert header.startswith(COOKIE + '=;') and 'Max-Age=0' in header
    assert raw_get(app, '/get', '%s=%s' % (COOKIE, old)).json['data'] == {}
    assert factory.store.load(cookie_id(old)) is None


def _put(req):
    req.session['late'] = req.params['value']
    return {}


@pytest.mark.parametrize('gone', ['logged out', 'expired'])
def test_a_write_only_request_on_a_session_gone_before_it_starts_a_new_one(
        server_kind, tmp_dir, request, factories, gone):
    factory = factories(**store_options(server_kind, tmp_dir, request))
    app = build_app(factory, {'put': _put})
    app.get('/set', {'user': 'alice'})
    old = app.cookies[COOKIE]
    if gone == 'logged out':
        app.get('/invalidate')
    else:  # still stored, but idle past the timeout (600 s)
        past = time.time() - 700
        factory.store.save(cookie_id(old), {'user': 'alice'}, frozenset(), past, past, 600)
    response = raw_get(app, '/hook/put?value=x', '%s=%s' % (COOKIE, old))
    fresh = response.headers['Set-Cookie'].split(';')[0].split('=', 1)[1]
    assert cookie_id(fresh) != cookie_id(old)
    assert raw_get(app, '/get', '%s=%s' % (COOKIE, fresh)).json['data'] == {'late': 'x'}
    assert factory.store.load(cookie_id(old)) is None


def test_a_refresh_does_not_bring_back_a_logged_out_session(
        server_kind, tmp_dir, request, factories):
    def end(session):
        pass  # A only read, but is due for its access-time refresh

    app, factory, old, response = _race(server_kind, tmp_dir, request, factories,
                                        end, idle=1.1)
    assert factory.store.load(cookie_id(old)) is None
    assert 'Max-Age=0' in response.headers.get('Set-Cookie', '')


def test_stores_never_recreate_a_loaded_record_that_is_gone(
        server_kind, tmp_dir, request, factories):
    store = factories(**store_options(server_kind, tmp_dir, request)).store
    gone, live, now = '1' * 32, '2' * 32, time.time()
    for session_id in (gone, live):
        assert store.save(session_id, {'user': 'alice'}, frozenset(), now, now, 600)
    store.delete(gone)
    assert store.save(gone, {'user': 'alice'}, frozenset(), now, now + 1, 600,
                      create=False) is False
    assert store.touch(gone, now + 1, 600) is False
    assert store.load(gone) is None
    assert store.save(live, {'more': 1}, frozenset(), now, now + 1, 600, create=False)
    assert store.load(live).data == {'user': 'alice', 'more': 1}


@pytest.mark.parametrize('server_kind', ['memory', 'file', 'dbm', 'ext:database',
                                         'ext:database-mariadb'])
def test_stores_never_recreate_an_expired_record(server_kind, tmp_dir, request, factories):
    store = factories(**store_options(server_kind, tmp_dir, request)).store
    session_id, past = '3' * 32, time.time() - 100
    store.save(session_id, {'user': 'alice'}, frozenset(), past, past, 50)
    assert store.save(session_id, {'x': 1}, frozenset(), past, time.time(), 50,
                      create=False) is False
    assert store.touch(session_id, time.time(), 50) is False
    record = store.load(session_id)  # files expire through the session's timeout
    assert record is None or (record.data, record.accessed) == ({'user': 'alice'}, past)


# -- 7. an emptied session is deleted --------------------------------------------------

def test_clear_deletes_the_record_and_expires_the_cookie(kind, tmp_dir, request, factories):
    factory = factories(**store_options(kind, tmp_dir, request))
    app = build_app(factory)
    app.get('/set', {'a': '1', 'b': '2'})
    old = app.cookies[COOKIE]
    response = app.get('/mutate', {'op': 'clear'})
    header = response.headers.get('Set-Cookie', '')
    assert header.startswith(COOKIE + '=;') and 'Max-Age=0' in header
    if not factory.client_side:  # a replayed cookie session is inherent to cookies
        assert factory.store.load(cookie_id(old)) is None
        assert raw_get(app, '/get', '%s=%s' % (COOKIE, old)).json['data'] == {}


def test_popping_the_last_key_deletes_the_record(server_kind, tmp_dir, request, factories):
    factory = factories(**store_options(server_kind, tmp_dir, request))
    app = build_app(factory)
    app.get('/set', {'a': '1'})
    old = app.cookies[COOKIE]
    app.get('/mutate', {'op': 'pop', 'key': 'a'})
    assert factory.store.load(cookie_id(old)) is None


# -- 12. Vary: Cookie --------------------------------------------------------------------

def test_vary_cookie_on_every_response_that_used_the_session(kind, tmp_dir, request, factories):
    app = build_app(factories(**store_options(kind, tmp_dir, request)))
    assert 'Cookie' in app.get('/set', {'a': '1'}).headers.get('Vary', '')
    assert 'Cookie' in app.get('/get').headers.get('Vary', '')
    assert 'Cookie' in app.get('/fail', status=500).headers.get('Vary', '')
    assert 'Vary' not in app.get('/untouched').headers


def test_vary_keeps_the_apps_own_values(tmp_dir, request, factories):
    def varied(req):
        req.response.vary = ('Accept-Encoding',)
        req.session.get('a')
        return req.response

    app = build_app(factories(**store_options('memory', tmp_dir, request)),
                    {'varied': varied})
    assert app.get('/hook/varied').headers['Vary'] == 'Accept-Encoding, Cookie'


# -- 6. Set-Cookie only when the browser's cookie must change ---------------------------

def test_a_save_sends_the_cookie_again_only_when_it_changes(
        server_kind, tmp_dir, request, factories):
    app = build_app(factories(**store_options(server_kind, tmp_dir, request)))
    assert app.get('/set', {'a': '1'}).headers['Set-Cookie'].startswith(COOKIE + '=')
    cookie = app.cookies[COOKIE]
    response = app.get('/set', {'b': '2'})
    assert 'Set-Cookie' not in response.headers  # same id, same signature, no lifetime
    assert app.get('/get').json['data'] == {'a': '1', 'b': '2'}
    response = app.get('/regenerate')
    assert response.headers['Set-Cookie'].startswith(COOKIE + '=')  # a new id
    assert app.cookies[COOKIE] != cookie


def test_a_cookie_with_a_lifetime_is_sent_again_by_each_save(
        server_kind, tmp_dir, request, factories):
    options = store_options(server_kind, tmp_dir, request, cookie_expires=3600)
    app = build_app(factories(**options))
    app.get('/set', {'a': '1'})
    response = app.get('/set', {'b': '2'})
    assert 'Max-Age=3600' in response.headers['Set-Cookie']  # it slides
    assert app.get('/get').json['data'] == {'a': '1', 'b': '2'}
