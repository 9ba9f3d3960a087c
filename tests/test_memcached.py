"""The ext:memcached backend against a real memcached.

Most tests use the shared server (``memcached_url``) under a key prefix of
their own and delete the items they wrote.  Fault tests run a private
``memcached`` on a free port, which they kill and restart.
"""
import os
import re
import socket
import time
import uuid

import pytest
from beaker import cache as beaker_cache
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheError
from pyramid.exceptions import ConfigurationError

from pyramid_beaker.stores import find_backend
from pyramid_beaker.stores.base import SessionBackendError
from pyramid_beaker.stores.memcached import (
    MAX_RELATIVE_TTL,
    MemcachedLock,
    MemcachedNamespaceManager,
    MemcachedSessionStore,
    close_shared_clients,
    connect,
    expire_time,
    hashed_key,
)

from .backend_faults import MemcachedServer, running
from .helpers import (
    CODEC,
    COOKIE,
    app_maker,
    armed_pickle,
    compute_together,
    cookie_id,
    http_get,
    planted_payloads,
    run_together,
    save_together,
    session_settings,
    share_a_session,
    signed_cache,
    write_concurrently,
    written,
)
from .servers import AppProcess
from .session_app import SECRET


def server_address(url):
    host, _, port = url.partition(':')
    return host, int(port or 11211)


def meta_get(url, key):
    """Return (seconds to live, client flags, value) of an item, or None."""
    def receive():
        chunk = sock.recv(65536)
        assert chunk, 'memcached closed the connection'
        return chunk

    with socket.create_connection(server_address(url), timeout=5) as sock:
        sock.sendall(b'mg %s t f v\r\n' % key.encode())
        reply = receive()
        while b'\r\n' not in reply:
            reply += receive()
        header, body = reply.split(b'\r\n', 1)
        if header == b'EN':
            return None
        size = int(header.split()[1])
        while len(body) < size + 2:
            body += receive()
    ttl = int(re.search(rb' t(-?\d+)', header).group(1))
    flags = int(re.search(rb' f(\d+)', header).group(1))
    return ttl, flags, body[:size]


@pytest.fixture(autouse=True)
def close_clients():
    """Close the cache namespaces' shared connections after each test."""
    yield
    close_shared_clients()


@pytest.fixture
def apps():
    """Make WebTest apps (``session_app.make_app``); their stores are closed after."""
    with app_maker() as make:
        yield make


@pytest.fixture
def prefix(memcached_url):
    """A key prefix of this test's own."""
    return 'pbtest:%s:' % uuid.uuid4().hex[:12]


@pytest.fixture
def raw(memcached_url):
    # default_noreply=False: every set and delete waits for the server's
    # answer, so the next line of a test sees what was written.
    client = Client(server_address(memcached_url), timeout=5, connect_timeout=5,
                    default_noreply=False)
    yield client
    client.close()


@pytest.fixture
def new_id(raw, prefix):
    """Make session ids; their items are deleted after the test."""
    made = []

    def make():
        made.append(uuid.uuid4().hex)
        return made[-1]

    yield make
    for session_id in made:
        raw.delete(prefix + session_id)


@pytest.fixture
def store(memcached_url, prefix):
    store = MemcachedSessionStore({'url': memcached_url, 'key_prefix': prefix}, CODEC)
    yield store
    store.close()


@pytest.fixture
def private_memcached():
    """A memcached of this test's own, free to kill and restart."""
    yield from running(MemcachedServer)


# -- the session store ---------------------------------------------------------

def test_backend_descriptor():
    backend, name = find_backend('memcached')
    assert name == 'ext:memcached'
    assert backend.session_store is MemcachedSessionStore
    assert backend.namespace_manager is MemcachedNamespaceManager
    assert backend.beaker_name == 'pyramid_beaker.memcached'
    assert beaker_cache.clsmap['pyramid_beaker.memcached'] is MemcachedNamespaceManager
    assert set(backend.options) == {
        'url', 'client', 'key_prefix', 'socket_timeout', 'lock_timeout'}
    assert backend.location == ('url', 'client')


def test_round_trip_merge_and_delete(store, new_id, memcached_url, prefix):
    sid = new_id()
    assert store.load(sid) is None
    store.save(sid, {'a': 1, 'b': [1, 2]}, frozenset(), 100.0, 110.0, 600)
    record = store.load(sid)
    assert (record.data, record.created, record.accessed) == (
        {'a': 1, 'b': [1, 2]}, 100.0, 110.0)

    store.save(sid, {'c': 'é'}, frozenset({'a', 'missing'}), 200.0, 210.0, 600)
    record = store.load(sid)
    assert record.data == {'b': [1, 2], 'c': 'é'}
    assert (record.created, record.accessed) == (100.0, 210.0)  # created is kept

    ttl, flags, value = meta_get(memcached_url, prefix + sid)
    assert 590 <= ttl <= 600
    assert flags == 0  # raw bytes: no serializer flag, nothing pickled
    assert value.startswith(b'PB1') and CODEC.loads(value)['d'] == record.data

    store.delete(sid)
    assert store.load(sid) is None
    store.delete(sid)  # absent: no error


def test_ttl_expires_and_touch_extends(store, new_id, memcached_url, prefix):
    short, touched = new_id(), new_id()
    for sid in (short, touched):
        store.save(sid, {'k': sid}, frozenset(), 1.0, 1.0, 1)
    store.touch(touched, 5.0, 60)
    assert 55 <= meta_get(memcached_url, prefix + touched)[0] <= 60
    time.sleep(2.1)
    assert store.load(short) is None
    record = store.load(touched)
    assert (record.data, record.created, record.accessed) == ({'k': touched}, 1.0, 5.0)

    store.touch(short, 9.0, 60)  # touching an absent session creates nothing
    assert store.load(short) is None


def test_ttl_over_30_days_is_sent_as_a_unix_time(store, new_id, memcached_url, prefix):
    sid = new_id()
    forty_days = 40 * 24 * 3600
    store.save(sid, {'a': 1}, frozenset(), 1.0, 1.0, forty_days)
    # Sent as a relative 40 days, memcached would read a 1970 date: gone at once.
    assert store.load(sid).data == {'a': 1}
    # memcached's clock ticks once a second and may lag the wall clock by as
    # much: an absolute expiry can read up to 2 s longer than sent.
    assert forty_days - 10 <= meta_get(memcached_url, prefix + sid)[0] <= forty_days + 2


def test_expire_time():
    assert expire_time(None) == 0
    assert expire_time(0) == 0
    assert expire_time(0.2) == 1
    assert expire_time(59.5) == 60
    assert expire_time(MAX_RELATIVE_TTL) == MAX_RELATIVE_TTL
    absolute = expire_time(MAX_RELATIVE_TTL + 1)
    assert abs(absolute - (time.time() + MAX_RELATIVE_TTL + 1)) < 5


def test_concurrent_saves_to_one_session_all_survive(store, new_id, memcached_url, prefix):
    other = MemcachedSessionStore({'url': memcached_url, 'key_prefix': prefix}, CODEC)
    writers = 16
    try:
        for attempt in range(4):
            sid = new_id()
            store.save(sid, {'keep': attempt, 'drop': 1}, frozenset(), 1.0, 1.0, 60)

            def write(n):
                # Half the writers use a second store, as another process would.
                (store if n % 2 else other).save(
                    sid, {'k%d' % n: n}, frozenset({'drop'}) if n == 3 else frozenset(),
                    2.0, 2.0 + n, 60)

            assert run_together(writers, write, join_timeout=30) == []
            expected = {'k%d' % n: n for n in range(writers)}
            expected['keep'] = attempt
            record = store.load(sid)
            assert record.data == expected
            assert record.created == 1.0
    finally:
        other.close()


def test_a_save_with_the_loaded_token_keeps_what_was_loaded_not_the_apps_copy(
        store, new_id):
    sid = new_id()
    store.save(sid, {'a': 1, 'b': [1, 2]}, frozenset(), 1.0, 1.0, 60)
    record = store.load(sid)
    assert record.token is not None
    record.data['b'].append(3)  # what an app may do to the loaded dict
    record.data.pop('a')
    assert store.save(sid, {'c': 3}, frozenset(), 5.0, 6.0, 60, create=False,
                      token=record.token)
    saved = store.load(sid)
    assert (saved.data, saved.created, saved.accessed) == ({'a': 1, 'b': [1, 2], 'c': 3},
                                                           1.0, 6.0)


def test_a_save_whose_token_lost_the_race_merges_onto_the_winner(store, new_id,
                                                                 memcached_url, prefix):
    other = MemcachedSessionStore({'url': memcached_url, 'key_prefix': prefix}, CODEC)
    try:
        sid = new_id()
        store.save(sid, {'keep': 1, 'drop': 1}, frozenset(), 1.0, 1.0, 60)
        first, second = store.load(sid), other.load(sid)
        assert store.save(sid, {'a': 1}, frozenset(), 1.0, 2.0, 60, create=False,
                          token=first.token)
        assert other.save(sid, {'b': 2}, frozenset({'drop'}), 1.0, 3.0, 60, create=False,
                          token=second.token)
        assert store.touch(sid, 4.0, 60, token=second.token)  # stale too: merges
        record = store.load(sid)
        assert (record.data, record.created, record.accessed) == (
            {'keep': 1, 'a': 1, 'b': 2}, 1.0, 4.0)
    finally:
        other.close()


def test_a_save_with_a_token_does_not_recreate_a_deleted_session(store, new_id):
    sid = new_id()
    store.save(sid, {'a': 1}, frozenset(), 1.0, 1.0, 60)
    record = store.load(sid)
    store.delete(sid)  # a logout in another request
    assert not store.save(sid, {'b': 2}, frozenset(), 1.0, 2.0, 60, create=False,
                          token=record.token)
    assert not store.touch(sid, 3.0, 60, token=record.token)
    assert store.load(sid) is None


def stats(client):
    """The server's command counters (``stats``), as ints by name."""
    return {name.decode(): value for name, value in client.stats().items()
            if isinstance(value, int)}


def test_a_write_request_makes_one_gets_and_one_cas(private_memcached, apps):
    app = apps(type='ext:memcached', url=private_memcached.url)
    app.get('/set', {'a': '1'})
    client = Client(server_address(private_memcached.url), timeout=5, connect_timeout=5)
    counters = ('cmd_get', 'get_hits', 'cmd_set', 'cas_hits', 'cas_misses', 'cas_badval',
                'cmd_touch')
    try:
        before = stats(client)
        assert app.get('/set', {'b': '2'}).json['data'] == {'a': '1', 'b': '2'}
        after = stats(client)
    finally:
        client.close()
    assert {name: after[name] - before[name] for name in counters} == {
        'cmd_get': 1, 'get_hits': 1, 'cmd_set': 1, 'cas_hits': 1, 'cas_misses': 0,
        'cas_badval': 0, 'cmd_touch': 0}
    assert app.get('/get').json['data'] == {'a': '1', 'b': '2'}


def test_requests_that_loaded_one_version_all_keep_their_keys(private_memcached, apps):
    app = apps(type='ext:memcached', url=private_memcached.url)
    app.get('/set', {'start': '1'})
    cookie = '%s=%s' % (COOKIE, app.cookies[COOKIE])
    client = Client(server_address(private_memcached.url), timeout=5, connect_timeout=5)
    try:
        before = stats(client)
        assert save_together(app, cookie, 2) == []
        after = stats(client)
    finally:
        client.close()
    # Both loaded with gets; one cas won; the other was refused and merged
    # with gets and cas again.
    assert {name: after[name] - before[name] for name in ('cmd_get', 'cas_hits', 'cas_badval')
            } == {'cmd_get': 3, 'cas_hits': 2, 'cas_badval': 1}
    assert app.get('/get').json['data'] == {'start': '1', 'k0': '0', 'k1': '1'}


def test_planted_pickles_are_never_loaded(store, new_id, raw, prefix, tmp_dir):
    payloads, marker = planted_payloads(tmp_dir)
    payload = payloads[0]
    for flags in (0, 1):  # 1: python-memcached's "pickled" flag
        for planted in payloads:
            sid = new_id()
            raw.set(prefix + sid, planted, expire=60, flags=flags)
            assert store.load(sid) is None
            assert not os.path.exists(marker)
            # Saving over it starts a fresh record with the changed keys only.
            store.save(sid, {'user': 'bob'}, frozenset(), 5.0, 5.0, 60)
            assert store.load(sid).data == {'user': 'bob'}
            assert not os.path.exists(marker)
    sid = new_id()
    raw.set(prefix + sid, payload, expire=60)
    store.touch(sid, 9.0, 60)  # an unreadable record is not touched either
    assert raw.get(prefix + sid) == payload
    assert not os.path.exists(marker)


@pytest.mark.parametrize('url, message', [
    ('', '"session.url" is required for "session.type" = ext:memcached'),
    ('memcached://127.0.0.1:11211', '"session.url" must be host:port \\(no scheme'),
    ('127.0.0.1:abc', '"session.url" must be host:port with a port number'),
    ('127.0.0.1:11211;127.0.0.1:x', '"session.url" must be host:port with a port number'),
])
def test_bad_urls_are_configuration_errors(url, message):
    from pyramid_beaker.session import session_factory_from_settings

    with pytest.raises(ConfigurationError, match=message):
        session_factory_from_settings({
            'session.type': 'ext:memcached', 'session.secret': SECRET,
            'session.url': url})


def test_bad_key_prefix_names_the_setting():
    from pyramid_beaker.session import session_factory_from_settings

    with pytest.raises(ConfigurationError, match='"session.key_prefix" must be'):
        session_factory_from_settings({
            'session.type': 'ext:memcached', 'session.url': '127.0.0.1:11211',
            'session.secret': SECRET, 'session.key_prefix': 'has space'})


def test_server_gone_raises_and_recovers(private_memcached):
    store = MemcachedSessionStore(
        {'url': private_memcached.url, 'socket_timeout': 2}, CODEC)
    sid = uuid.uuid4().hex
    store.save(sid, {'a': 1}, frozenset(), 1.0, 1.0, 60)
    private_memcached.stop()
    for call in (lambda: store.load(sid),
                 lambda: store.save(sid, {'b': 2}, frozenset(), 1.0, 1.0, 60),
                 lambda: store.touch(sid, 1.0, 60),
                 lambda: store.delete(sid)):
        started = time.monotonic()
        with pytest.raises(SessionBackendError) as info:
            call()
        assert time.monotonic() - started < 3
        assert 'memcached' in str(info.value)
        assert private_memcached.url in str(info.value)
    private_memcached.start()  # same port, empty
    assert store.load(sid) is None
    store.save(sid, {'b': 2}, frozenset(), 1.0, 1.0, 60)
    assert store.load(sid).data == {'b': 2}
    store.close()


def test_a_restart_does_not_fail_requests_on_dead_pooled_connections(private_memcached):
    store = MemcachedSessionStore({'url': private_memcached.url}, CODEC)
    assert run_together(8, lambda n: store.save(
        '%032x' % n, {'n': n}, frozenset(), 1.0, 1.0, 60), join_timeout=30) == []
    assert len(store.client.idle) > 1  # several idle connections
    private_memcached.stop()
    private_memcached.start()
    for n in range(8):  # every idle connection is dead; no call fails for it
        assert store.load('%032x' % n) is None
        store.save('%032x' % n, {'n': n}, frozenset(), 1.0, 1.0, 60)
    assert store.load('%032x' % 7).data == {'n': 7}
    store.close()


# -- cache regions ---------------------------------------------------------------

def make_cache(url, prefix, namespace='ns', **options):
    return signed_cache('pyramid_beaker.memcached', namespace, url=url, key_prefix=prefix,
                        **options)


def test_beaker_cache_round_trip(memcached_url, prefix, raw):
    cache = make_cache(memcached_url, prefix, expire=300)
    manager = cache.namespace
    assert isinstance(manager, MemcachedNamespaceManager)
    cache.put('k', {'v': [1, 2]})
    assert cache.get('k') == {'v': [1, 2]}
    assert 'k' in cache
    key = hashed_key(prefix, 'ns', 'k')
    ttl, flags, value = meta_get(memcached_url, key)
    assert 290 <= ttl <= 300 and flags == 0 and value.startswith(b'PB1')
    # Beaker passes bytes keys, our decorator str keys: the same entry.
    assert manager.get_entry('k')[2] == manager.get_entry(b'k')[2] == {'v': [1, 2]}
    cache.remove_value('k')
    assert 'k' not in cache
    assert raw.get(key) is None
    with pytest.raises(KeyError):
        cache.get('k')


def test_keys_of_any_shape_are_hashed_and_kept_apart(memcached_url, prefix):
    cache = make_cache(memcached_url, prefix, namespace='a:b', expire=60)
    other = make_cache(memcached_url, prefix, namespace='a', expire=60)
    awkward = ['with space', 'x' * 1000, 'tab\tnew\nline', 'ünï', 'c']
    for n, key in enumerate(awkward):
        cache.put(key, n)
    other.put('b:c', 'other')
    assert [cache.get(key) for key in awkward] == list(range(len(awkward)))
    assert other.get('b:c') == 'other'
    for key in awkward:
        name = hashed_key(prefix, 'a:b', key)
        assert len(name) <= 250 and ' ' not in name
        cache.remove_value(key)
    other.remove_value('b:c')


def test_entries_expire_with_the_region(memcached_url, prefix):
    cache = make_cache(memcached_url, prefix, expire=1)
    cache.put('k', 'v')
    assert cache.get('k') == 'v'
    time.sleep(2.1)
    assert cache.namespace.get_entry('k') is None  # memcached dropped it


def test_planted_pickle_in_the_cache_is_a_miss(memcached_url, prefix, raw, tmp_dir):
    payload, marker = armed_pickle(tmp_dir)
    cache = make_cache(memcached_url, prefix, expire=60)
    key = hashed_key(prefix, 'ns', 'k')
    raw.set(key, payload, expire=60, flags=1)
    assert 'k' not in cache
    assert cache.get('k', createfunc=lambda: 'fresh') == 'fresh'
    assert not os.path.exists(marker)
    assert cache.get('k') == 'fresh'
    cache.remove_value('k')


def test_get_with_createfunc_computes_once_across_threads(memcached_url, prefix):
    cache = make_cache(memcached_url, prefix, expire=60)
    results, calls, errors = compute_together([cache] * 8, 'slow', 0.3, join_timeout=30)
    assert errors == []
    assert results == ['value'] * 8
    assert calls == 1
    cache.remove_value('slow')


def test_creation_lock_is_shared_through_the_server(memcached_url, prefix, raw, request):
    name = prefix + 'lock-test'
    # Two clients, as two processes would have.
    mine = MemcachedLock(connect({'url': memcached_url}), name, 2)
    theirs = MemcachedLock(connect({'url': memcached_url}), name, 2)
    request.addfinalizer(mine.client.close)
    request.addfinalizer(theirs.client.close)
    assert mine.acquire(wait=False)
    assert not theirs.acquire(wait=False)
    started = time.monotonic()
    assert theirs.acquire(wait=True)  # the held lock expires after 2 s
    assert 0.9 < time.monotonic() - started < 4
    mine.release()  # expired and now held by theirs: not deleted
    assert raw.get(name) == theirs.token
    theirs.release()
    assert raw.get(name) is None
    assert mine.acquire(wait=False)
    mine.release()


def test_remove_whole_namespace_is_refused(memcached_url, prefix):
    cache = make_cache(memcached_url, prefix)
    with pytest.raises(NotImplementedError, match='expire by their TTL'):
        cache.clear()


def test_cache_errors_reach_the_caller_and_recover(private_memcached):
    cache = make_cache(private_memcached.url, 'p:', expire=60, socket_timeout=2)
    cache.put('k', 1)
    private_memcached.stop()
    with pytest.raises((OSError, MemcacheError)):
        cache.namespace.get_entry('k')
    private_memcached.start()
    assert cache.namespace.get_entry('k') is None
    cache.put('k', 2)
    assert cache.get('k') == 2


# -- sessions through real apps ------------------------------------------------

def test_sessions_through_an_app(memcached_url, prefix, raw, tmp_dir, apps):
    app = apps(type='ext:memcached', url=memcached_url, key_prefix=prefix)
    assert app.get('/set', {'a': '1', 'b': '2'}).json['data'] == {'a': '1', 'b': '2'}
    app.get('/mutate', {'op': 'del', 'key': 'a'})
    key = prefix + cookie_id(app.cookies[COOKIE])
    assert CODEC.loads(raw.get(key))['d'] == {'b': '2'}

    other = apps(type='ext:memcached', url=memcached_url, key_prefix=prefix)
    other.set_cookie(COOKIE, app.cookies[COOKIE])
    assert other.get('/get').json['data'] == {'b': '2'}

    app.get('/invalidate')
    assert raw.get(key) is None

    app.get('/set', {'user': 'alice'})
    key = prefix + cookie_id(app.cookies[COOKIE])
    payload, marker = armed_pickle(tmp_dir)
    raw.set(key, payload, expire=60, flags=1)
    assert app.get('/get').json['data'] == {}  # a fresh session
    assert not os.path.exists(marker)
    raw.delete(key)


def test_app_processes_share_sessions_and_keep_concurrent_writes(memcached_url, prefix, raw):
    settings = session_settings('ext:memcached', url=memcached_url, key_prefix=prefix)
    writers = 16
    cookies = []
    try:
        with AppProcess(settings) as one, AppProcess(settings) as two:
            cookie, first, last = share_a_session(one, two)
            cookies.append(cookie)
            assert first == {'a': '1'}
            assert last == {'b': '2'}

            for attempt in range(3):
                _, cookie = http_get(one.url + '/set?key=start&value=%d' % attempt)
                cookies.append(cookie)
                errors = write_concurrently((two, one), cookie, writers, join_timeout=30)
                assert errors == []
                assert http_get(two.url + '/get', cookie)[0] == written(writers, start=attempt)
    finally:
        for cookie in cookies:
            raw.delete(prefix + cookie_id(cookie))


def test_app_with_the_server_down(private_memcached, apps):
    app = apps(type='ext:memcached', url=private_memcached.url)
    app.get('/set', {'a': '1'})
    private_memcached.stop()
    assert app.get('/untouched').json == {'ok': True}  # no session access, no error
    with pytest.raises(SessionBackendError, match=private_memcached.url):
        app.get('/get')
    private_memcached.start()
    assert app.get('/get').json['data'] == {}  # the restarted server is empty
    app.get('/set', {'b': '2'})
    assert app.get('/get').json['data'] == {'b': '2'}
