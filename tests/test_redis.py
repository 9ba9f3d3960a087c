"""The ext:redis backend: sessions and cache regions against a real Redis.

Most tests use the shared server (``redis_url``, db 15) under a key prefix
of their own and delete their keys afterwards.  Tests that count commands
or break the server run a private ``redis-server`` (tests/backend_faults.py).
"""
import json
import os
import pickle
import threading
import time
import uuid

import pytest
import redis
from beaker import cache as beaker_cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyramid.exceptions import ConfigurationError
from webtest import TestApp

from pyramid_beaker import set_cache_regions_from_settings
from pyramid_beaker.codec import InvalidData, SignedCodec
from pyramid_beaker.session import (
    DEFAULT_MAX_IDLE,
    BeakerSessionFactoryConfig,
    session_factory_from_settings,
)
from pyramid_beaker.settings import region_options_from_settings
from pyramid_beaker.stores import find_backend
from pyramid_beaker.stores.base import EXPIRY_KEY, Record, SessionBackendError
from pyramid_beaker.stores.redis import RedisNamespaceManager, RedisSessionStore, connect

from .backend_faults import CommandLog, RedisServer, names, round_trips, running
from .helpers import (
    CODEC,
    COOKIE,
    compute_together,
    cookie_id,
    http_get,
    new_id,
    planted_payloads,
    session_settings,
    share_a_session,
    signed_cache,
    write_concurrently,
    written,
)
from .servers import AppProcess
from .session_app import SECRET, make_app, make_config

# -- fixtures and helpers -----------------------------------------------------


@pytest.fixture
def prefix(redis_url):
    """A key prefix used by this test only; its keys are deleted afterwards."""
    value = 'pbtest:%s:' % uuid.uuid4().hex[:12]
    yield value
    client = redis.Redis.from_url(redis_url)
    for name in client.scan_iter(match=value + '*', count=500):
        client.delete(name)
    client.close()


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    yield client
    client.close()


@pytest.fixture
def private_redis():
    """A redis-server of this test's own, free to count commands on or kill."""
    yield from running(RedisServer)


@pytest.fixture
def store(redis_url, prefix):
    store = RedisSessionStore({'url': redis_url, 'key_prefix': prefix}, CODEC)
    yield store
    store.close()


def session_key(prefix, app_or_cookie):
    """The Redis key of the session whose signed id is in ``app_or_cookie``
    (an app, a cookie value or a 'name=value' header)."""
    cookie = app_or_cookie
    if not isinstance(cookie, str):
        cookie = app_or_cookie.cookies[COOKIE]
    return '%ssession:%s' % (prefix, cookie_id(cookie))


def redis_app(url, prefix, **options):
    return make_app(type='ext:redis', url=url, key_prefix=prefix, **options)


def sent(commands):
    """The names of the commands clients sent, in order."""
    return [name for client, name in commands if client != 'lua']


def scripted(commands):
    """The names of the commands Lua scripts ran, in order."""
    return [name for client, name in commands if client == 'lua']


# -- the session store on its own -------------------------------------------

def test_store_layout_merge_and_ttl(store, client, prefix):
    sid = new_id()
    assert store.load(sid) is None
    store.save(sid, {'a': 1, 'b': [1, 2]}, frozenset(), 100.0, 100.5, 600)
    key = '%ssession:%s' % (prefix, sid)
    fields = client.hgetall(key)
    assert sorted(fields) == [b'k:a', b'k:b', b'm:accessed', b'm:created']
    assert all(fields[name].startswith(b'PB1') for name in (b'k:a', b'k:b'))
    assert (fields[b'm:created'], fields[b'm:accessed']) == (b'100.0', b'100.5')
    assert 590 < client.ttl(key) <= 600

    store.save(sid, {'c': 'x'}, frozenset({'a'}), 999.0, 200.0, 300)
    record = store.load(sid)
    assert record.data == {'b': [1, 2], 'c': 'x'}
    assert (record.created, record.accessed) == (100.0, 200.0)  # created kept
    assert 290 < client.ttl(key) <= 300

    store.touch(sid, 250.0, 900)
    record = store.load(sid)
    assert (record.data, record.created, record.accessed) == ({'b': [1, 2], 'c': 'x'},
                                                              100.0, 250.0)
    assert 890 < client.ttl(key) <= 900
    store.delete(sid)
    assert store.load(sid) is None
    assert not client.exists(key)


def test_store_same_key_last_writer_wins(store):
    sid = new_id()
    store.save(sid, {'k': 'first', 'other': 1}, frozenset(), 1.0, 1.0, 60)
    store.save(sid, {'k': 'second'}, frozenset(), 1.0, 2.0, 60)
    assert store.load(sid).data == {'k': 'second', 'other': 1}


def test_store_save_after_expiry_keeps_only_changed_keys(store):
    """Documented: a record that expired between load and save comes back
    with only the keys that request changed."""
    sid = new_id()
    store.save(sid, {'a': 1, 'b': 2}, frozenset(), 10.0, 10.0, 60)
    store.delete(sid)  # what expiry does
    store.save(sid, {'b': 3}, frozenset(), 10.0, 20.0, 60)
    record = store.load(sid)
    assert record.data == {'b': 3}
    assert record.created == 10.0


def test_store_saves_and_deletes_thousands_of_keys_at_once(store):
    """Far more fields than Lua's unpack() takes in one call."""
    sid = new_id()
    many = {'key%05d' % n: n for n in range(6000)}
    store.save(sid, many, frozenset(), 1.0, 1.0, 60)
    assert store.load(sid).data == many
    deleted = frozenset('key%05d' % n for n in range(5000))
    store.save(sid, {'key%05d' % n: -n for n in range(5000, 5600)} | {'new': 1},
               deleted, 2.0, 3.0, 60)
    record = store.load(sid)
    assert record.data == dict({'key%05d' % n: -n for n in range(5000, 5600)},
                               new=1, **{'key%05d' % n: n for n in range(5600, 6000)})
    assert (record.created, record.accessed) == (1.0, 3.0)


def test_store_expires_with_the_server_ttl(store):
    sid = new_id()
    store.save(sid, {'a': 1}, frozenset(), 1.0, 1.0, 1)
    assert store.load(sid) is not None
    time.sleep(1.2)
    assert store.load(sid) is None


def test_touch_of_a_vanished_session_creates_nothing(store, client, prefix):
    sid = new_id()
    assert store.touch(sid, 5.0, 60) is False
    assert store.load(sid) is None
    assert not client.exists('%ssession:%s' % (prefix, sid))


def test_purge_expired_is_left_to_redis(store):
    with pytest.raises(NotImplementedError, match='ext:redis'):
        store.purge_expired(60)


@pytest.mark.parametrize('plant', [
    {b'k:a': b'not an envelope'},
    {b'k:a': b'PB1' + b'\0' * 33 + b'"x"'},
    {b'k:\xff': None},
    {b'surprise': b'1'},
    {b'm:created': b'soon'},
])
def test_one_bad_field_drops_the_whole_record(redis_url, prefix, client, plant):
    app = redis_app(redis_url, prefix)
    app.get('/set', {'a': 'good', 'b': 'good'})
    key = session_key(prefix, app)
    good = client.hget(key, 'k:b')
    client.hset(key, mapping={name: value or good for name, value in plant.items()})
    assert app.get('/get').json['data'] == {}  # listing the keys meets the bad field
    assert not client.exists(key)  # deleted, so the next save starts clean


def test_times_that_do_not_parse_make_the_store_drop_the_record(store, client, prefix):
    sid = new_id()
    store.save(sid, {'a': 'good'}, frozenset(), 1.0, 1.0, 60)
    key = '%ssession:%s' % (prefix, sid)
    client.hset(key, 'm:accessed', 'later')
    assert store.load(sid) is None
    assert not client.exists(key)


def test_loaded_fields_are_checked_when_read(store, client, prefix):
    sid = new_id()
    store.save(sid, {'a': 1, 'b': [2]}, frozenset(), 1.0, 1.0, 60)
    record = store.load(sid)
    assert record.data == {'a': 1, 'b': [2]}
    client.hset('%ssession:%s' % (prefix, sid), 'k:b', CODEC.dumps([2])[:-1] + b'3')
    record = store.load(sid)
    assert record.data['a'] == 1
    with pytest.raises(InvalidData, match='bad signature'):
        record.data['b']


def test_a_non_hash_under_the_session_key_reads_as_absent(store, client, prefix):
    sid = new_id()
    client.set('%ssession:%s' % (prefix, sid), pickle.dumps({'a': 1}))
    assert store.load(sid) is None
    store.save(sid, {'a': 2}, frozenset(), 1.0, 1.0, 60)
    assert store.load(sid).data == {'a': 2}


def test_backend_module_attributes():
    backend, name = find_backend('ext:redis')
    assert name == 'ext:redis'
    assert backend.session_store is RedisSessionStore
    assert backend.namespace_manager is RedisNamespaceManager
    assert backend.beaker_name == 'pyramid_beaker.redis'
    assert set(backend.options) == {
        'url', 'client', 'sentinels', 'service_name', 'key_prefix', 'socket_timeout',
        'lock_timeout'}
    assert find_backend('redis') == (backend, 'ext:redis')


# -- configuration errors ------------------------------------------------------

def test_missing_url_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match='"url" is required for "type" = ext:redis'):
        BeakerSessionFactoryConfig(type='ext:redis', secret=SECRET)


def test_bad_url_names_the_setting():
    with pytest.raises(ConfigurationError, match='"url" must be a redis://'):
        BeakerSessionFactoryConfig(
            type='ext:redis', secret=SECRET, url='http://u:pw@host/')


@pytest.mark.parametrize('value', ['abc', '0', '-1'])
def test_bad_socket_timeout_names_the_full_setting(value, redis_url):
    with pytest.raises(ConfigurationError,
                       match='"session.socket_timeout" must be a number of '
                             "seconds greater than 0, not '%s'" % value):
        session_factory_from_settings({
            'session.type': 'ext:redis', 'session.url': redis_url,
            'session.secret': SECRET, 'session.socket_timeout': value})


def test_settings_reach_the_client(redis_url, prefix):
    factory = session_factory_from_settings({
        'session.type': 'ext:redis', 'session.url': redis_url,
        'session.secret': SECRET, 'session.key_prefix': prefix,
        'session.socket_timeout': '2.5'})
    store = factory.store
    assert store.prefix == prefix
    assert store.client.connection_pool.connection_kwargs['socket_timeout'] == 2.5
    assert store.key('ab') == prefix + 'session:ab'


# -- sessions through real apps ------------------------------------------------

def test_session_round_trip_through_an_app(redis_url, prefix, client):
    app = redis_app(redis_url, prefix)
    assert app.get('/set', {'a': '1', 'b': '2'}).json['data'] == {'a': '1', 'b': '2'}
    assert app.get('/get').json['data'] == {'a': '1', 'b': '2'}
    app.get('/mutate', {'op': 'del', 'key': 'a'})
    app.get('/set', {'c': 'é'})
    assert app.get('/get').json['data'] == {'b': '2', 'c': 'é'}
    key = session_key(prefix, app)
    assert sorted(client.hgetall(key)) == [b'k:b', b'k:c', b'm:accessed', b'm:created']

    # A second app (same secret, same Redis) sees the same session.
    other = redis_app(redis_url, prefix)
    other.set_cookie(COOKIE, app.cookies[COOKIE])
    assert other.get('/get').json['data'] == {'b': '2', 'c': 'é'}

    app.get('/invalidate')
    assert not client.exists(key)


def test_every_session_key_has_a_ttl(redis_url, prefix, client):
    timed = redis_app(redis_url, prefix, timeout=600)
    timed.get('/set', {'a': '1'})
    assert 590 < client.ttl(session_key(prefix, timed)) <= 600

    untimed = redis_app(redis_url, prefix)
    untimed.get('/set', {'a': '1'})
    untimed.get('/set', {'b': '2'})
    ttl = client.ttl(session_key(prefix, untimed))
    assert DEFAULT_MAX_IDLE - 10 < ttl <= DEFAULT_MAX_IDLE == 30 * 24 * 3600

    keys = list(client.scan_iter(match=prefix + '*'))
    assert len(keys) == 2
    assert all(client.ttl(name) > 0 for name in keys)


def test_planted_pickles_in_a_session_never_run(redis_url, prefix, client, tmp_dir):
    payloads, marker = planted_payloads(tmp_dir, other_secret=False)
    for payload in payloads:
        app = redis_app(redis_url, prefix)
        app.get('/set', {'user': 'alice'})
        key = session_key(prefix, app)
        client.hset(key, 'k:user', payload)
        assert app.get('/get').json['data'] == {}  # a fresh session
        assert not os.path.exists(marker)
        assert not client.exists(key)
        app.get('/set', {'user': 'bob'})
        assert app.get('/get').json['data'] == {'user': 'bob'}


def one_key_app(url, prefix, **options):
    """A Redis session app plus ``/one?key=K``, which reads key K only,
    ``/put?key=K&value=V``, which sets it only, and ``/remember?seconds=N``,
    which logs in with an own expiry."""

    def read_one(request):
        key = request.params['key']
        return {'value': request.session.get(key), 'in': key in request.session}

    def put(request):
        request.session[request.params['key']] = request.params['value']
        return {}

    def remember(request):
        request.session['user'] = 'alice'
        request.session.set_expiry(int(request.params['seconds']))
        return {}

    return views_app(url, prefix, {'one': read_one, 'put': put, 'remember': remember},
                     **options)


def views_app(url, prefix, views, **options):
    """A Redis session app plus ``views`` (``{path: view}``), answering JSON."""
    config = make_config(type='ext:redis', url=url, key_prefix=prefix, **options)
    for path, view in views.items():
        config.add_route(path, '/' + path)
        config.add_view(view, route_name=path, renderer='json')
    return TestApp(config.make_wsgi_app())


def test_a_planted_field_is_never_parsed_when_other_keys_are_read(
        redis_url, prefix, client, tmp_dir):
    payloads, marker = planted_payloads(tmp_dir)
    for payload in payloads:
        app = one_key_app(redis_url, prefix, data_serializer='pickle')
        app.get('/set', {'user': 'alice'})
        key = session_key(prefix, app)
        client.hset(key, 'k:evil', payload)
        assert app.get('/one', {'key': 'user'}).json == {'value': 'alice', 'in': True}
        assert client.hget(key, 'k:evil') == payload  # not read, so left alone
        # Listing the keys meets it: the record is dropped, the session is new.
        assert app.get('/get').json['data'] == {}
        assert not client.exists(key)
        # Reading the planted key itself does the same.
        app.get('/set', {'user': 'bob'})
        key = session_key(prefix, app)
        client.hset(key, 'k:evil', payload)
        assert app.get('/one', {'key': 'evil'}).json == {'value': None, 'in': False}
        assert not client.exists(key)
        assert not os.path.exists(marker)


def test_a_key_set_before_a_bad_field_is_met_is_kept_in_a_new_session(
        redis_url, prefix, client):
    app = one_key_app(redis_url, prefix)
    app.get('/set', {'user': 'alice', 'cart': '3'})
    old_key = session_key(prefix, app)
    client.hset(old_key, 'k:cart', b'PB1' + b'\0' * 33 + b'"x"')
    app.get('/mutate', {'op': 'update', 'key': 'theme', 'value': 'dark'})  # lists the keys
    assert not client.exists(old_key)
    assert session_key(prefix, app) != old_key  # a new id
    assert app.get('/get').json['data'] == {'theme': 'dark'}


class CountingJSON:
    """A JSON serializer that counts the values it parses."""

    def __init__(self):
        self.parsed = 0

    def dumps(self, value):
        return json.dumps(value)

    def loads(self, payload):
        self.parsed += 1
        return json.loads(payload)


def test_a_request_parses_only_the_keys_it_uses(redis_url, prefix):
    serializer = CountingJSON()
    app = one_key_app(redis_url, prefix, data_serializer=serializer)
    app.get('/set', {'k%03d' % n: 'v%d' % n for n in range(200)})
    serializer.parsed = 0
    assert app.get('/one', {'key': 'k007'}).json == {'value': 'v7', 'in': True}
    assert serializer.parsed == 1
    app.get('/put', {'key': 'k008', 'value': 'new'})
    assert serializer.parsed == 1  # setting a key checks nothing stored
    assert app.get('/one', {'key': 'absent'}).json == {'value': None, 'in': False}
    assert serializer.parsed == 1
    data = app.get('/get').json['data']
    assert serializer.parsed == 201
    assert len(data) == 200 and data['k008'] == 'new'


def test_fields_signed_with_an_old_secret_are_signed_anew_when_read(
        redis_url, prefix, client):
    old = SignedCodec('json', 'the-old-secret-0123', 'session')
    app = one_key_app(redis_url, prefix, secret_fallbacks=['the-old-secret-0123'])
    app.get('/set', {'a': '1', 'b': '2', 'c': '3'})
    key = session_key(prefix, app)
    client.hset(key, mapping={'k:a': old.dumps('old a'), 'k:b': old.dumps('old b')})
    assert app.get('/one', {'key': 'a'}).json['value'] == 'old a'
    assert CODEC.loads(client.hget(key, 'k:a')) == 'old a'  # signed with the secret now
    with pytest.raises(InvalidData):  # not read: left as it was
        CODEC.loads(client.hget(key, 'k:b'))
    assert app.get('/get').json['data'] == {'a': 'old a', 'b': 'old b', 'c': '3'}
    assert CODEC.loads(client.hget(key, 'k:b')) == 'old b'


def test_round_trips_per_request(private_redis):
    app = redis_app(private_redis.url, 'rt:')
    app.get('/set', {'warm': 'up'})  # connects: HELLO etc.
    app.reset()
    log = CommandLog(private_redis.port)
    try:
        app.get('/set', {'a': '1'})  # new session: no load
        created = log.commands()
        assert sent(created) == ['EVALSHA']
        assert scripted(created) == ['HSET', 'HSETNX', 'EXPIRE']
        assert round_trips(created) == 1

        app.get('/get')
        read = log.commands()
        assert names(read) == ['HGETALL']
        assert round_trips(read) == 1

        app.get('/set', {'b': '2'})
        write = log.commands()
        assert sent(write) == ['HGETALL', 'EVALSHA']
        assert scripted(write) == ['EXISTS', 'HSET', 'EXPIRE']
        assert round_trips(write) == 2

        app.get('/mutate', {'op': 'del', 'key': 'a'})
        deleting = log.commands()
        assert sent(deleting) == ['HGETALL', 'EVALSHA']
        assert scripted(deleting) == ['EXISTS', 'HDEL', 'HSET', 'EXPIRE']
        assert round_trips(deleting) == 2

        app.get('/untouched')
        assert log.commands() == []
    finally:
        log.close()


def test_read_after_refresh_interval_touches_in_one_more_round_trip(private_redis):
    app = redis_app(private_redis.url, 'rt:', timeout=60, refresh_interval=1)
    app.get('/set', {'a': '1'})  # also connects
    time.sleep(1.1)
    log = CommandLog(private_redis.port)
    try:
        app.get('/get')
        touched = log.commands()
        assert sent(touched) == ['HGETALL', 'EVALSHA']
        assert scripted(touched) == ['EXISTS', 'HSET', 'EXPIRE']
        assert round_trips(touched) == 2
    finally:
        log.close()


def test_server_down_untouched_views_work_and_sessions_raise(private_redis):
    app = redis_app(private_redis.url, 'fault:')
    app.get('/set', {'a': '1'})
    private_redis.stop()

    assert app.get('/untouched').json == {'ok': True}
    with pytest.raises(SessionBackendError) as info:
        app.get('/get')
    message = str(info.value)
    assert 'ext:redis' in message and private_redis.url in message
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    fresh = redis_app(private_redis.url, 'fault:')
    with pytest.raises(SessionBackendError, match='save failed'):
        fresh.get('/set', {'a': '1'})

    private_redis.start()  # same port, empty: the old session is gone
    assert app.get('/get').json['data'] == {}
    app.get('/set', {'b': '2'})
    assert app.get('/get').json['data'] == {'b': '2'}


@pytest.mark.parametrize('first_call', ['save', 'touch'])
def test_first_write_after_a_restart_loads_the_script_again(private_redis, first_call):
    """A restarted server has an empty script cache: EVALSHA fails with
    NOSCRIPT, redis-py loads the script and the write goes through."""
    store = RedisSessionStore({'url': private_redis.url}, CODEC)
    try:
        sid = new_id()
        store.save(sid, {'a': 1}, frozenset(), 1.0, 1.0, 60)
        private_redis.stop()
        private_redis.start()  # empty, with no scripts
        log = CommandLog(private_redis.port)
        try:
            if first_call == 'save':
                store.save(sid, {'b': 2}, frozenset({'a'}), 5.0, 6.0, 60)
                expected = Record({'b': 2}, 5.0, 6.0)
            else:
                assert store.touch(sid, 6.0, 60) is False  # the record went with the restart
                expected = None
            restarted = sent(log.commands())
            assert restarted[-3:] == ['EVALSHA', 'SCRIPT', 'EVALSHA']
            assert restarted.count('EVALSHA') == 2
            assert store.load(sid) == expected
            store.save(sid, {'c': 3}, frozenset(), 6.0, 6.0, 60)
            log.commands()
            store.touch(sid, 7.0, 60)  # the script is cached again
            assert sent(log.commands()) == ['EVALSHA']
        finally:
            log.close()
        assert store.load(sid).accessed == 7.0
    finally:
        store.close()


def test_frozen_server_fails_within_socket_timeout(private_redis):
    app = redis_app(private_redis.url, 'fault:', socket_timeout=0.5)
    app.get('/set', {'a': '1'})
    private_redis.pause()
    try:
        started = time.monotonic()
        with pytest.raises(SessionBackendError) as info:
            app.get('/get')
        assert time.monotonic() - started < 5
        assert isinstance(info.value.__cause__, redis.TimeoutError)
    finally:
        private_redis.resume()
    assert app.get('/get').json['data'] == {'a': '1'}


def test_backend_error_masks_the_password(private_redis):
    private_redis.stop()
    url = 'redis://:hunter2@127.0.0.1:%d/0' % private_redis.port
    app = make_app(type='ext:redis', url=url)
    with pytest.raises(SessionBackendError) as info:
        app.get('/set', {'a': '1'})
    assert 'hunter2' not in str(info.value)
    assert ':********@127.0.0.1' in str(info.value)


# -- sessions across app processes ---------------------------------------------

def app_settings(redis_url, prefix):
    return session_settings('ext:redis', url=redis_url, key_prefix=prefix)


def test_two_app_processes_share_a_session(redis_url, prefix):
    settings = app_settings(redis_url, prefix)
    with AppProcess(settings) as one, AppProcess(settings) as two:
        _, first, last = share_a_session(one, two)
        assert first == {'a': '1'}
        assert last == {'b': '2'}


def test_concurrent_writers_all_keep_their_key(redis_url, prefix, client):
    writers = 16
    with AppProcess(app_settings(redis_url, prefix)) as server:
        for attempt in range(3):
            _, cookie = http_get(server.url + '/set?key=start&value=%d' % attempt)
            assert write_concurrently((server,), cookie, writers, join_timeout=30) == []
            data = http_get(server.url + '/get', cookie)[0]
            assert data == written(writers, start=attempt)
            assert client.ttl(session_key(prefix, cookie)) > 0


# -- cache regions -------------------------------------------------------------

def make_cache(redis_url, prefix, namespace='ns', **options):
    return signed_cache('pyramid_beaker.redis', namespace, url=redis_url, key_prefix=prefix,
                        **options)


def test_beaker_cache_uses_the_backend(redis_url, prefix, client):
    cache = make_cache(redis_url, prefix, expire=300)
    assert isinstance(cache.namespace, RedisNamespaceManager)
    cache.put('k', {'v': [1, 2]})
    assert cache.get('k') == {'v': [1, 2]}
    assert 'k' in cache
    name = prefix + 'cache:ns:k'
    raw = client.get(name)
    assert raw.startswith(b'PB1')
    assert 290 < client.ttl(name) <= 300
    cache.remove_value('k')
    assert 'k' not in cache
    with pytest.raises(KeyError):
        cache.get('k')


def test_get_with_createfunc_computes_once(redis_url, prefix):
    cache = make_cache(redis_url, prefix, expire=60)
    calls = []

    def create():
        calls.append(1)
        return 'made'

    assert cache.get('k', createfunc=create) == 'made'
    assert cache.get('k', createfunc=create) == 'made'
    assert len(calls) == 1


def test_entries_without_expire_have_no_ttl(redis_url, prefix, client):
    cache = make_cache(redis_url, prefix)
    cache.put('k', 1)
    assert client.ttl(prefix + 'cache:ns:k') == -1


def test_str_and_bytes_names_are_the_same_entry(redis_url, prefix):
    manager = RedisNamespaceManager(b'ns', secret=SECRET, url=redis_url, key_prefix=prefix)
    manager.set_entry('k', (1.0, None, 'v'))
    other = RedisNamespaceManager('ns', secret=SECRET, url=redis_url, key_prefix=prefix)
    assert other.get_entry(b'k') == (1.0, None, 'v')


def test_namespaces_with_colons_stay_apart(redis_url, prefix):
    outer = make_cache(redis_url, prefix, namespace='a')
    inner = make_cache(redis_url, prefix, namespace='a:b')
    outer.put('b:c', 'outer')
    inner.put('c', 'inner')
    inner.put('*', 'star')
    assert outer.get('b:c') == 'outer'
    assert sorted(inner.namespace.keys()) == [b'*', b'c']
    assert outer.namespace.keys() == [b'b:c']
    outer.clear()
    assert outer.namespace.keys() == []
    assert inner.get('c') == 'inner'


def test_do_remove_clears_many_keys(redis_url, prefix):
    manager = RedisNamespaceManager('big', secret=SECRET, url=redis_url, key_prefix=prefix)
    for n in range(1200):
        manager.set_entry('k%d' % n, (1.0, None, n))
    assert len(manager.keys()) == 1200
    manager.do_remove()
    assert manager.keys() == []


def test_beaker_cache_region_uses_the_backend(redis_url, prefix, client):
    region = {'type': 'pyramid_beaker.redis', 'url': redis_url, 'secret': SECRET,
              'key_prefix': prefix, 'expire': 120, 'enabled': True}
    beaker_cache.cache_regions['pb_redis_test'] = region
    calls = []
    try:
        @beaker_cache.cache_region('pb_redis_test')
        def square(x):
            calls.append(x)
            return x * x

        assert square(3) == 9
        assert square(3) == 9
        assert calls == [3]
        names_ = [name for name in client.scan_iter(match=prefix + 'cache:*')]
        assert len(names_) == 1
        assert 110 < client.ttl(names_[0]) <= 120
    finally:
        del beaker_cache.cache_regions['pb_redis_test']


def test_planted_pickle_in_the_cache_is_a_miss(redis_url, prefix, client, tmp_dir):
    payloads, marker = planted_payloads(tmp_dir, other_secret=False)
    cache = make_cache(redis_url, prefix)
    for payload in payloads:
        client.set(prefix + 'cache:ns:k', payload)
        assert cache.namespace.get_entry(b'k') is None
        assert 'k' not in cache
        assert cache.get('k', createfunc=lambda: 'fresh') == 'fresh'
        assert not os.path.exists(marker)
        assert cache.get('k') == 'fresh'


def test_creation_lock(redis_url, prefix, client):
    manager = RedisNamespaceManager('ns', secret=SECRET, url=redis_url,
                                    key_prefix=prefix, lock_timeout=0.5)
    first, second = manager.get_creation_lock('k'), manager.get_creation_lock(b'k')
    assert first.acquire(wait=False) is True
    assert 0 < client.pttl(prefix + 'lock:ns:k') <= 500
    assert second.acquire(wait=False) is False

    started = time.monotonic()
    assert second.acquire() is True  # the first holder's lock expired
    assert 0.3 < time.monotonic() - started < 2
    first.release()  # no longer the holder: must not free the lock
    assert client.exists(prefix + 'lock:ns:k')
    second.release()
    assert not client.exists(prefix + 'lock:ns:k')
    second.release()  # releasing twice is harmless


def test_waiting_acquire_returns_when_the_holder_releases(redis_url, prefix):
    manager = RedisNamespaceManager('ns', secret=SECRET, url=redis_url, key_prefix=prefix)
    holder = manager.get_creation_lock('k')
    assert holder.acquire(wait=False)
    timer = threading.Timer(0.2, holder.release)
    timer.start()
    started = time.monotonic()
    waiter = manager.get_creation_lock('k')
    assert waiter.acquire() is True
    elapsed = time.monotonic() - started
    timer.join(timeout=5)
    waiter.release()
    assert 0.15 < elapsed < 1.5


def test_concurrent_misses_compute_once(redis_url, prefix):
    caches = [make_cache(redis_url, prefix, namespace='dog', expire=60) for _ in range(8)]
    results, calls, errors = compute_together(caches, 'k', 0.2, join_timeout=30)
    assert errors == []
    assert results == ['value'] * 8
    assert calls == 1


def test_cache_round_trips(private_redis):
    manager = RedisNamespaceManager('ns', secret=SECRET, url=private_redis.url)
    manager.get_entry('warm-up')
    log = CommandLog(private_redis.port)
    try:
        manager.set_entry('k', (1.0, 60, 'v'), 60)
        assert names(log.commands()) == ['SET']
        assert manager.get_entry('k') == (1.0, 60, 'v')
        assert names(log.commands()) == ['GET']
    finally:
        log.close()


def test_cache_errors_reach_the_caller_and_recover(private_redis):
    cache = make_cache(private_redis.url, 'fault:', expire=60)
    cache.put('k', 'v')
    private_redis.stop()
    with pytest.raises(redis.ConnectionError):
        cache.namespace.get_entry(b'k')
    with pytest.raises(redis.ConnectionError):
        cache.get('k', createfunc=lambda: 'computed')
    private_redis.start()
    assert cache.namespace.get_entry(b'k') is None  # the restarted server is empty
    assert cache.get('k', createfunc=lambda: 'computed') == 'computed'


def test_namespace_managers_share_one_client(redis_url, prefix):
    first = RedisNamespaceManager('one', secret=SECRET, url=redis_url, key_prefix=prefix)
    second = RedisNamespaceManager('two', secret=SECRET, url=redis_url, key_prefix=prefix)
    assert first.client is second.client
    assert connect({'url': redis_url}) is not first.client


def test_regions_from_settings_use_the_backend(redis_url, prefix, client):
    settings = {'cache.regions': 'pb_redis_settings', 'cache.type': 'ext:redis',
                'cache.url': redis_url, 'cache.secret': SECRET,
                'cache.pb_redis_settings.expire': '90',
                'cache.pb_redis_settings.key_prefix': prefix,
                'cache.pb_redis_settings.lock_timeout': '5'}
    try:
        found = set_cache_regions_from_settings(settings)
        assert found['pb_redis_settings']['type'] == 'pyramid_beaker.redis'
        assert found['pb_redis_settings']['lock_timeout'] == 5.0

        @beaker_cache.cache_region('pb_redis_settings')
        def double(x):
            return [x, x]

        assert double('a') == ['a', 'a']
        (name,) = client.scan_iter(match=prefix + 'cache:*')
        assert client.get(name).startswith(b'PB1')
        assert 80 < client.ttl(name) <= 90
    finally:
        beaker_cache.cache_regions.pop('pb_redis_settings', None)


@pytest.mark.parametrize('setting, value, message', [
    ('url', 'http://example.com/', '"cache.r.url" must be a redis://'),
    ('socket_timeout', 'soon', '"cache.r.socket_timeout" must be a number'),
    ('lock_timeout', '0', '"cache.r.lock_timeout" must be a number'),
])
def test_bad_region_settings_name_the_full_key(redis_url, setting, value, message):
    settings = {'cache.regions': 'r', 'cache.type': 'ext:redis', 'cache.url': redis_url,
                'cache.secret': SECRET, 'cache.r.' + setting: value}
    with pytest.raises(ConfigurationError, match=message):
        region_options_from_settings(settings)


# -- requests that only set keys ------------------------------------------------

@pytest.fixture
def private_client(private_redis):
    client = redis.Redis.from_url(private_redis.url, socket_timeout=5)
    yield client
    client.close()


def test_a_request_that_only_sets_keys_makes_one_round_trip(private_redis):
    app = one_key_app(private_redis.url, 'rt:')
    app.get('/set', {'a': '1'})  # also connects
    app.get('/put', {'key': 'a', 'value': '1'})  # the server learns the script
    cookie = app.cookies[COOKIE]
    log = CommandLog(private_redis.port)
    try:
        response = app.get('/put', {'key': 'b', 'value': '2'})
        write = log.commands()
        assert sent(write) == ['EVALSHA']
        assert round_trips(write) == 1
        assert 'Set-Cookie' not in response.headers  # the same session, the same cookie
        assert response.headers['Vary'] == 'Cookie'
    finally:
        log.close()
    assert app.cookies[COOKIE] == cookie
    assert app.get('/get').json['data'] == {'a': '1', 'b': '2'}


def test_a_write_only_request_keeps_the_sessions_own_expiry(private_redis, private_client):
    app = one_key_app(private_redis.url, 'rt:', timeout=600)
    app.get('/remember', {'seconds': '900'})
    app.get('/put', {'key': 'a', 'value': '1'})  # the server learns the script
    key = session_key('rt:', app)
    client = private_client
    client.expire(key, 100)  # so the save's own TTL shows
    log = CommandLog(private_redis.port)
    try:
        response = app.get('/put', {'key': 'b', 'value': '2'})
        assert round_trips(log.commands()) == 1
    finally:
        log.close()
    assert 'Max-Age=900' in response.headers['Set-Cookie']  # the lifetime slides
    assert 890 < client.ttl(key) <= 900
    assert app.get('/get').json['data'] == {'user': 'alice', 'a': '1', 'b': '2'}


def test_an_own_expiry_stored_by_an_earlier_version_is_read_and_stored_anew(
        private_redis, private_client):
    """Sessions saved before the expiry was kept as plain metadata: the
    first write-only request loads them, and stores the expiry anew."""
    app = one_key_app(private_redis.url, 'rt:', timeout=600)
    app.get('/remember', {'seconds': '900'})
    key = session_key('rt:', app)
    client = private_client
    assert client.hdel(key, 'm:expiry') == 1
    client.expire(key, 100)
    response = app.get('/put', {'key': 'b', 'value': '2'})
    assert 'Max-Age=900' in response.headers['Set-Cookie']
    assert 890 < client.ttl(key) <= 900
    assert client.hget(key, 'm:expiry') == b'900'
    log = CommandLog(private_redis.port)
    try:
        app.get('/put', {'key': 'c', 'value': '3'})
        assert round_trips(log.commands()) == 1
    finally:
        log.close()
    assert app.get('/get').json['data'] == {'user': 'alice', 'b': '2', 'c': '3'}


@pytest.mark.parametrize('damage', ['bad times', 'no times', 'not a hash'])
def test_a_write_only_request_on_an_unreadable_record_starts_a_new_session(
        redis_url, prefix, client, damage):
    app = one_key_app(redis_url, prefix)
    app.get('/set', {'user': 'alice'})
    key = session_key(prefix, app)
    if damage == 'bad times':
        client.hset(key, 'm:accessed', 'soon')
    elif damage == 'no times':
        client.hdel(key, 'm:created', 'm:accessed')
    else:
        client.delete(key)
        client.set(key, 'a string')
    response = app.get('/put', {'key': 'late', 'value': 'x'})
    assert 'Set-Cookie' in response.headers
    assert session_key(prefix, app) != key
    assert not client.exists(key)
    assert app.get('/get').json['data'] == {'late': 'x'}


def test_sets_before_a_read_are_seen_by_the_read(redis_url, prefix):
    def put_then_read(request):
        request.session['b'] = 'new b'
        request.session.update(c='3')
        return {'b': request.session['b'], 'all': dict(request.session),
                'new': request.session.new}

    app = views_app(redis_url, prefix, {'put_then_read': put_then_read})
    app.get('/set', {'a': '1', 'b': 'old b'})
    assert app.get('/put_then_read').json == {
        'b': 'new b', 'all': {'a': '1', 'b': 'new b', 'c': '3'}, 'new': False}
    assert app.get('/get').json['data'] == {'a': '1', 'b': 'new b', 'c': '3'}


def test_store_saves_into_a_record_it_did_not_load(store, client, prefix):
    sid, now = new_id(), time.time()
    key = '%ssession:%s' % (prefix, sid)
    assert store.save_unloaded(sid, {'a': 1}, now, now, 600, 600) == (None, None)  # absent
    assert not client.exists(key)
    store.save(sid, {'a': 1}, frozenset(), now - 10, now - 10, 600)
    assert store.save_unloaded(sid, {'b': 2}, now, now + 1, 600, 700) == (True, None)
    record = store.load(sid)
    assert (record.data, record.created, record.accessed) == ({'a': 1, 'b': 2}, now - 10, now + 1)
    assert 690 < client.ttl(key) <= 700
    # Idle past the timeout before the request began: the caller must load.
    assert store.save_unloaded(sid, {'c': 3}, now + 602, now + 602, 600, 600) == (None, None)
    assert store.load(sid).data == {'a': 1, 'b': 2}
    # The session's own expiry wins, both for the check and for the TTL.
    store.save(sid, {EXPIRY_KEY: 2000}, frozenset(), now, now + 1, 2000)
    assert store.save_unloaded(sid, {'c': 3}, now + 602, now + 602, 600, 600) == (True, 2000)
    assert 1990 < client.ttl(key) <= 2000
    assert store.load(sid).data == {'a': 1, 'b': 2, 'c': 3, EXPIRY_KEY: 2000}
    store.save(sid, {}, frozenset({EXPIRY_KEY}), now, now + 603, 600)
    assert store.save_unloaded(sid, {'d': 4}, now + 604, now + 604, 600, 600) == (True, None)
    assert b'm:expiry' not in client.hgetall(key)


def test_store_drops_sets_into_a_record_deleted_while_the_request_ran(store, client, prefix):
    sid, now = new_id(), time.time()
    store.save(sid, {'a': 1}, frozenset(), now, now, 600)
    began = time.time()
    store.delete(sid)  # a logout in another request, after this one began
    assert store.save_unloaded(sid, {'b': 2}, began, time.time(), 600, 600) == (False, None)
    assert store.load(sid) is None
    # A request that began after the logout is told to load (and start anew).
    assert store.save_unloaded(sid, {'b': 2}, time.time() + 1, time.time(), 600,
                               600) == (None, None)
    assert store.load(sid) is None
    assert not client.exists('%ssession:%s' % (prefix, sid))


DICT_OPS = st.lists(st.tuples(
    st.sampled_from(['set', 'set', 'get', 'in', 'pop', 'setdefault', 'len', 'keys', 'update']),
    st.sampled_from(['a', 'b', 'c']), st.integers(0, 9)), max_size=6)


def _run_ops(target, ops):
    """Apply ``ops`` to a session or a dict; return what each returned."""
    results = []
    for op, key, value in ops:
        if op == 'set':
            target[key] = value
            results.append(None)
        elif op == 'get':
            results.append(target.get(key))
        elif op == 'in':
            results.append(key in target)
        elif op == 'pop':
            results.append(target.pop(key, None))
        elif op == 'setdefault':
            results.append(target.setdefault(key, value))
        elif op == 'len':
            results.append(len(target))
        elif op == 'keys':
            results.append(sorted(target.keys()))
        else:
            target.update({key: value})
            results.append(None)
    return results


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=DICT_OPS)
def test_keys_set_before_a_load_behave_as_a_dicts(redis_url, prefix, ops):
    """Whatever a request does after setting keys unloaded, it sees and
    stores what a plain dict holding the stored session would."""
    def run(request):
        return {'results': _run_ops(request.session, json.loads(request.params['ops']))}

    app = views_app(redis_url, prefix, {'run': run})
    app.get('/set', {'a': '1', 'b': '2'})
    model = {'a': '1', 'b': '2'}
    expected = _run_ops(model, ops)
    assert app.get('/run', {'ops': json.dumps(ops)}).json['results'] == expected
    assert app.get('/get').json['data'] == model
