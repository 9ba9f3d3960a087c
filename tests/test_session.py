"""The session through real Pyramid apps on the memory, file and cookie stores."""
import os
import time

import pytest
from pyramid.interfaces import ISession
from zope.interface.verify import verifyObject

from pyramid_beaker.session import BeakerSessionFactoryConfig

from .session_app import SECRET, make_app

BACKENDS = ['memory', 'file', 'cookie', 'cookie-encrypted']
SERVER_SIDE = ['memory', 'file']


def options_for(backend, tmp_dir, **extra):
    options = {'secret': SECRET}
    if backend == 'file':
        options.update(type='file', data_dir=os.path.join(tmp_dir, 'data'),
                       lock_dir=os.path.join(tmp_dir, 'lock'))
    elif backend == 'cookie':
        options.update(type='cookie')
    elif backend == 'cookie-encrypted':
        options.update(type='cookie', encrypt_key='an-encryption-key')
    else:
        options.update(type='memory')
    options.update(extra)
    return options


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(params=SERVER_SIDE)
def server_backend(request):
    return request.param


@pytest.fixture
def app(backend, tmp_dir):
    return make_app(**options_for(backend, tmp_dir))


def session_files(tmp_dir):
    """Every file under the file store's data directory."""
    found = []
    for root, _, names in os.walk(os.path.join(tmp_dir, 'data')):
        found.extend(os.path.join(root, name) for name in names)
    return sorted(found)


def cookie_of(response):
    return response.headers.get('Set-Cookie', '')


def test_session_implements_isession(backend, tmp_dir):
    factory = BeakerSessionFactoryConfig(**options_for(backend, tmp_dir))
    from pyramid.testing import DummyRequest

    request = DummyRequest()
    session = factory(request)
    assert verifyObject(ISession, session)


def test_round_trip_and_bookkeeping_hidden(app):
    app.get('/set', {'a': '1', 'b': '2'})
    seen = app.get('/introspect').json
    assert seen['keys'] == ['a', 'b']
    assert seen['iter'] == ['a', 'b']
    assert seen['items'] == [['a', '1'], ['b', '2']]
    assert seen['values'] == ['1', '2']
    assert seen['len'] == 2
    assert seen['new'] is False
    assert seen['created'] <= time.time()


def test_popitem_only_returns_user_keys(app):
    app.get('/set', {'only': 'one'})
    result = app.get('/mutate', {'op': 'popitem'}).json
    assert result['result'] == ['only', 'one']
    assert app.get('/introspect').json['len'] == 0


@pytest.mark.parametrize('op, params, expected', [
    ('del', {'key': 'a'}, {'b': '2'}),
    ('update', {'key': 'c', 'value': '3'}, {'a': '1', 'b': '2', 'c': '3'}),
    ('setdefault', {'key': 'd', 'value': '4'}, {'a': '1', 'b': '2', 'd': '4'}),
    ('setdefault', {'key': 'a', 'value': 'x'}, {'a': '1', 'b': '2'}),
    ('pop', {'key': 'b'}, {'a': '1'}),
    ('clear', {}, {}),
])
def test_every_mutation_persists(app, op, params, expected):
    app.get('/set', {'a': '1', 'b': '2'})
    app.get('/mutate', dict(params, op=op))
    assert app.get('/get').json['data'] == expected


def test_changed_persists_nested_change(app):
    app.get('/flash', {'msg': 'first', 'queue': 'q'})  # stores a list
    app.get('/mutate', {'op': 'append', 'key': '_f_q', 'value': 'lost'})
    assert app.get('/peek', {'queue': 'q'}).json['messages'] == ['first']
    app.get('/mutate', {'op': 'append', 'key': '_f_q', 'value': 'kept', 'changed': '1'})
    assert app.get('/peek', {'queue': 'q'}).json['messages'] == ['first', 'kept']


def test_untouched_request_sends_no_cookie_and_writes_nothing(server_backend, tmp_dir):
    factory = BeakerSessionFactoryConfig(**options_for(server_backend, tmp_dir))
    app = make_app(factory)
    response = app.get('/untouched')
    assert 'Set-Cookie' not in response.headers
    assert session_files(tmp_dir) == []
    if server_backend == 'memory':
        assert factory.store.records == {}


def test_new_session_only_read_is_not_stored(server_backend, tmp_dir):
    factory = BeakerSessionFactoryConfig(**options_for(server_backend, tmp_dir))
    app = make_app(factory)
    response = app.get('/get')
    assert response.json['data'] == {}
    assert 'Set-Cookie' not in response.headers
    assert session_files(tmp_dir) == []
    if server_backend == 'memory':
        assert factory.store.records == {}


def test_read_does_not_rewrite_file(tmp_dir):
    app = make_app(**options_for('file', tmp_dir, timeout=600))
    app.get('/set', {'a': '1'})
    [path] = session_files(tmp_dir)
    before = (os.stat(path).st_mtime_ns, os.stat(path).st_ino, open(path, 'rb').read())
    for _ in range(3):
        response = app.get('/get')
        assert response.json['data'] == {'a': '1'}
        assert 'Set-Cookie' not in response.headers
    after = (os.stat(path).st_mtime_ns, os.stat(path).st_ino, open(path, 'rb').read())
    assert after == before


def test_read_on_cookie_store_sends_no_cookie(backend, tmp_dir):
    app = make_app(**options_for(backend, tmp_dir, timeout=600))
    app.get('/set', {'a': '1'})
    response = app.get('/get')
    assert response.json['data'] == {'a': '1'}
    assert 'Set-Cookie' not in response.headers


def test_access_time_refreshed_once_per_interval_and_expiry(tmp_dir):
    app = make_app(**options_for('file', tmp_dir, timeout=3, refresh_interval=1))
    app.get('/set', {'a': '1'})
    [path] = session_files(tmp_dir)
    first = open(path, 'rb').read()
    app.get('/get')
    assert open(path, 'rb').read() == first  # within the interval: no write
    time.sleep(1.2)
    assert app.get('/get').json['data'] == {'a': '1'}
    refreshed = open(path, 'rb').read()
    assert refreshed != first  # past the interval: access time stored
    time.sleep(2.2)  # still inside the timeout thanks to the refresh
    assert app.get('/get').json['data'] == {'a': '1'}
    time.sleep(3.3)  # idle for longer than the timeout
    assert app.get('/get').json['data'] == {}


@pytest.mark.parametrize('backend_name', BACKENDS)
def test_timeout_expires_session(backend_name, tmp_dir):
    app = make_app(**options_for(backend_name, tmp_dir, timeout=1))
    app.get('/set', {'a': '1'})
    assert app.get('/get').json['data'] == {'a': '1'}
    time.sleep(1.3)
    assert app.get('/get').json['data'] == {}


def test_flash_queues(app):
    app.get('/flash', {'msg': 'hello'})
    app.get('/flash', {'msg': 'hello'})
    app.get('/flash', {'msg': 'hello', 'dup': '0'})
    app.get('/flash', {'msg': 'error!', 'queue': 'errors'})
    assert app.get('/peek').json['messages'] == ['hello', 'hello']
    assert app.get('/peek', {'queue': 'errors'}).json['messages'] == ['error!']
    assert app.get('/pop').json['messages'] == ['hello', 'hello']
    assert app.get('/pop').json['messages'] == []
    assert app.get('/pop', {'queue': 'errors'}).json['messages'] == ['error!']


def test_csrf_tokens_are_str_and_stable(app):
    first = app.get('/csrf').json
    assert first['type'] == 'str' and len(first['token']) >= 32
    assert app.get('/csrf').json['token'] == first['token']
    renewed = app.get('/new_csrf').json['token']
    assert renewed != first['token']
    assert app.get('/csrf').json['token'] == renewed


def test_constant_csrf_token_option(backend, tmp_dir):
    app = make_app(**options_for(backend, tmp_dir, constant_csrf_token='fixed'))
    assert app.get('/new_csrf').json['token'] == 'fixed'
    assert app.get('/csrf').json['token'] == 'fixed'


def test_cookie_on_exception_default_keeps_changes(app):
    response = app.get('/fail', status=500)
    assert response.json == {'error': True}
    assert 'Set-Cookie' in response.headers
    assert app.get('/get').json['data'] == {'failed': 'yes'}


def test_cookie_on_exception_false_sends_no_cookie(backend, tmp_dir):
    app = make_app(**options_for(backend, tmp_dir, cookie_on_exception=False))
    response = app.get('/fail', status=500)
    assert 'Set-Cookie' not in response.headers
    assert app.get('/get').json['data'] == {}


def test_invalidate_starts_new_session_with_new_id(app):
    app.get('/set', {'user': 'alice'})
    old_cookie = app.cookies['beaker.session.id']
    response = app.get('/invalidate', {'fresh': '1'})
    assert response.json['data'] == {'fresh': '1'}
    assert app.cookies['beaker.session.id'] != old_cookie
    assert app.get('/get').json['data'] == {'fresh': '1'}


def test_invalidate_server_side_forgets_old_id(server_backend, tmp_dir):
    app = make_app(**options_for(server_backend, tmp_dir))
    app.get('/set', {'user': 'alice'})
    old_cookie = app.cookies['beaker.session.id']
    response = app.get('/invalidate')
    assert response.json['data'] == {}
    assert 'Max-Age=0' in cookie_of(response)  # the browser drops the cookie
    app.set_cookie('beaker.session.id', old_cookie)
    assert app.get('/get').json['data'] == {}


def test_regenerate_id_keeps_data_under_new_id(server_backend, tmp_dir):
    app = make_app(**options_for(server_backend, tmp_dir))
    app.get('/set', {'basket': 'apples'})
    old_cookie = app.cookies['beaker.session.id']
    assert app.get('/regenerate').json['data'] == {'basket': 'apples'}
    assert app.cookies['beaker.session.id'] != old_cookie
    assert app.get('/get').json['data'] == {'basket': 'apples'}
    app.set_cookie('beaker.session.id', old_cookie)
    assert app.get('/get').json['data'] == {}


def test_json_default_rejects_unserializable_value_in_view(app):
    with pytest.raises(TypeError, match="session key 'bad'"):
        app.get('/unsafe')
    assert app.get('/get').json['data'] == {}


def test_pickle_opt_in_stores_other_types(server_backend, tmp_dir):
    app = make_app(**options_for(server_backend, tmp_dir, data_serializer='pickle'))
    assert app.get('/unsafe').json == {'stored': True}
    assert app.get('/types').json == {'bad': 'set'}


def test_default_cookie_flags(backend, tmp_dir):
    app = make_app(**options_for(backend, tmp_dir))
    header = cookie_of(app.get('/set', {'a': '1'}))
    assert 'HttpOnly' in header
    assert 'SameSite=Lax' in header
    assert 'Path=/' in header
    assert 'secure' not in header.lower()
    assert 'Max-Age' not in header  # ends with the browser session


def test_configured_cookie_flags(tmp_dir):
    app = make_app(**options_for(
        'memory', tmp_dir, key='myapp', cookie_path='/app', secure=True,
        httponly=False, samesite='Strict', cookie_expires=3600,
        cookie_domain='example.com'))
    header = cookie_of(app.get('/set', {'a': '1'}, extra_environ={'HTTP_HOST': 'example.com'}))
    assert header.startswith('myapp=')
    assert 'Path=/app' in header and 'Domain=example.com' in header
    assert 'secure' in header.lower() and 'SameSite=Strict' in header
    assert 'HttpOnly' not in header and 'Max-Age=3600' in header


@pytest.mark.parametrize('value', [
    'garbage', '', 'x' * 5000, '0123456789abcdef0123456789abcdef',
    '0123456789abcdef0123456789abcdef.0123456789abcdef0123456789abcdef',
    '!!!!', 'UEIx' + 'A' * 60,
])
def test_bad_cookie_gives_fresh_session(app, value):
    app.get('/set', {'mine': 'secret-data'})
    other = app.cookies['beaker.session.id']
    app.set_cookie('beaker.session.id', value)
    response = app.get('/get')
    assert response.status_int == 200
    assert response.json['data'] == {}
    assert other != value


def test_tampered_cookie_gives_fresh_session(app):
    app.get('/set', {'mine': 'secret-data'})
    cookie = app.cookies['beaker.session.id']
    for tampered in (cookie[:-2] + ('AA' if not cookie.endswith('AA') else 'BB'),
                     cookie[:len(cookie) // 2],
                     cookie[1:]):
        app.set_cookie('beaker.session.id', tampered)
        response = app.get('/get')
        assert response.status_int == 200
        assert response.json['data'] == {}


def test_unknown_but_signed_id_is_not_adopted(tmp_dir):
    factory = BeakerSessionFactoryConfig(**options_for('memory', tmp_dir))
    app = make_app(factory)
    planted = factory.id_cookie.dumps('a' * 32)
    app.set_cookie('beaker.session.id', planted)
    app.get('/set', {'k': 'v'})
    assert app.cookies['beaker.session.id'] != planted
    assert list(factory.store.records) != ['a' * 32]


def test_encrypted_cookie_hides_data(tmp_dir):
    app = make_app(**options_for('cookie-encrypted', tmp_dir))
    app.get('/set', {'credit': 'visible-text'})
    import base64
    value = app.cookies['beaker.session.id']
    raw = base64.urlsafe_b64decode(value + '=' * (-len(value) % 4))
    assert b'visible-text' not in raw
    signed_only = make_app(**options_for('cookie', tmp_dir))
    signed_only.get('/set', {'credit': 'visible-text'})
    value = signed_only.cookies['beaker.session.id']
    assert b'visible-text' in base64.urlsafe_b64decode(value + '=' * (-len(value) % 4))


def test_cookie_too_large_fails_clearly(tmp_dir):
    app = make_app(**options_for('cookie', tmp_dir))
    with pytest.raises(ValueError, match='too large for a cookie'):
        app.get('/set', {'big': 'x' * 5000})


def test_file_sessions_survive_restart(tmp_dir):
    options = options_for('file', tmp_dir)
    first = make_app(**options)
    first.get('/set', {'kept': 'yes'})
    second = make_app(**options)
    second.set_cookie('beaker.session.id', first.cookies['beaker.session.id'])
    assert second.get('/get').json['data'] == {'kept': 'yes'}


def test_apps_with_other_secret_do_not_share(tmp_dir):
    options = options_for('file', tmp_dir)
    first = make_app(**options)
    first.get('/set', {'kept': 'yes'})
    other = make_app(**dict(options, secret='another-secret'))
    other.set_cookie('beaker.session.id', first.cookies['beaker.session.id'])
    assert other.get('/get').json['data'] == {}


@pytest.mark.parametrize('beaker_type', ['beaker:file', 'beaker:memory'])
def test_beaker_classes_by_explicit_opt_in(beaker_type, tmp_dir):
    app = make_app(secret=SECRET, type=beaker_type, data_dir=tmp_dir,
                   lock_dir=tmp_dir + '/lock')
    app.get('/set', {'a': '1'})
    app.get('/set', {'b': '2'})
    assert app.get('/get').json['data'] == {'a': '1', 'b': '2'}
    app.get('/invalidate')
    assert app.get('/get').json['data'] == {}


def test_unknown_beaker_type_fails_at_startup():
    from pyramid.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match='"type" must be one of Beaker'):
        BeakerSessionFactoryConfig(secret=SECRET, type='beaker:nosuch')


def test_memory_sessions_past_timeout_are_swept(tmp_dir):
    factory = BeakerSessionFactoryConfig(**options_for('memory', tmp_dir, timeout=1))
    for _ in range(5):
        make_app(factory).get('/set', {'a': '1'})
    assert len(factory.store.records) == 5
    time.sleep(1.2)
    for _ in range(5):
        make_app(factory).get('/set', {'b': '2'})
    assert len(factory.store.records) == 5  # the five dead ones were dropped


def test_memory_sweep_drops_a_bounded_batch_per_save_and_spares_live_sessions(tmp_dir):
    store = BeakerSessionFactoryConfig(**options_for('memory', tmp_dir)).store
    store.sweep_batch = 3
    current = time.time()
    for n in range(4):  # touched later, so still alive
        store.save('live%d' % n, {'n': n}, frozenset(), current - 50, current - 50, 60)
    for n in range(8):
        store.save('dead%d' % n, {'n': n}, frozenset(), current - 50, current - 50, 10)
    for n in range(4):
        store.touch('live%d' % n, current, 60)
    assert len(store.records) == 12
    store.save('new0', {'n': 0}, frozenset(), current, current, 60)
    assert sorted(store.records)[:5] == ['dead3', 'dead4', 'dead5', 'dead6', 'dead7']
    store.save('new1', {'n': 1}, frozenset(), current, current, 60)
    store.save('new2', {'n': 2}, frozenset(), current, current, 60)
    assert sorted(store.records) == ['live0', 'live1', 'live2', 'live3',
                                     'new0', 'new1', 'new2']
    assert all(store.load('live%d' % n).data == {'n': n} for n in range(4))


def test_memory_purge_drops_every_expired_session_in_steps(tmp_dir):
    store = BeakerSessionFactoryConfig(**options_for('memory', tmp_dir)).store
    store.purge_chunk = 4
    current = time.time()
    for n in range(10):  # saved out of expiry order: purging does not rely on it
        ttl = 10 if n % 2 else 600
        store.save('s%d' % n, {'n': n}, frozenset(), current - 50, current - 50, ttl)
    calls = []
    assert store.purge_expired(600, progress=lambda *args: calls.append(args)) == 5
    assert calls == [(4, 10), (8, 10), (10, 10)]
    assert sorted(store.records) == ['s0', 's2', 's4', 's6', 's8']
    assert store.purge_expired(20, current + 600) == 5
    assert not store.records


def test_purge_expired_keeps_live_file_sessions(tmp_dir):
    factory = BeakerSessionFactoryConfig(**options_for('file', tmp_dir, timeout=1))
    old = make_app(factory)
    old.get('/set', {'old': '1'})
    time.sleep(1.2)
    live = make_app(factory)
    live.get('/set', {'live': '1'})
    assert len(session_files(tmp_dir)) == 2
    calls = []
    assert factory.purge_expired(progress=lambda done, total: calls.append((done, total))) == 1
    assert calls[-1] == (2, 2)
    assert len(session_files(tmp_dir)) == 1
    assert live.get('/get').json['data'] == {'live': '1'}


def test_save_is_changed_for_code_written_for_beaker(app):
    app.get('/flash', {'msg': 'first', 'queue': 'q'})
    app.get('/mutate', {'op': 'append', 'key': '_f_q', 'value': 'kept', 'save': '1'})
    assert app.get('/peek', {'queue': 'q'}).json['messages'] == ['first', 'kept']


KILLED_WRITER = '''
import os, signal, sys
from pyramid_beaker.session import BeakerSessionFactoryConfig

def killed(*args):  # the writer dies (kill -9) before renaming its temporary file
    os.kill(os.getpid(), signal.SIGKILL)

os.replace = killed
factory = BeakerSessionFactoryConfig(type='file', data_dir=sys.argv[1], secret=sys.argv[2])
factory.store.save('ab' * 16, {'user': 'alice'}, frozenset(), 1.0, 1.0, 600)
'''


def test_purge_expired_removes_temporary_files_of_killed_writers(tmp_dir):
    import signal
    import subprocess
    import sys

    data_dir = os.path.join(tmp_dir, 'data')
    done = subprocess.run([sys.executable, '-c', KILLED_WRITER, data_dir, SECRET],
                          capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    stale = [path for path in session_files(tmp_dir)
             if os.path.basename(path).startswith('.tmp-')]
    assert len(stale) == 1
    factory = BeakerSessionFactoryConfig(type='file', data_dir=data_dir, secret=SECRET)
    fresh = stale[0] + '-fresh'  # a writer still at work
    with open(fresh, 'wb'):
        pass
    an_hour_ago = time.time() - 3600
    os.utime(stale[0], (an_hour_ago, an_hour_ago))
    factory.purge_expired()
    assert [path for path in session_files(tmp_dir) if '.tmp-' in path] == [fresh]
