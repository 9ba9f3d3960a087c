"""Redis Cluster (``ext:rediscluster``) on a real three-node cluster the tests create.

Three ``redis-server --cluster-enabled yes`` processes on free loopback
ports, joined with ``redis-cli --cluster create``, serve the module.
"""
import tempfile
import uuid

import pytest
from beaker import cache as beaker_cache
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ISessionFactory
from webtest import TestApp

from pyramid_beaker import session_factory_from_settings, set_cache_regions_from_settings
from pyramid_beaker.stores.base import now
from pyramid_beaker.stores.rediscluster import (
    RedisClusterNamespaceManager,
    RedisClusterSessionStore,
)

from .backend_faults import require_redis_server
from .helpers import (
    CODEC,
    COOKIE,
    app_maker,
    compute_together,
    cookie_id,
    new_id,
    run_together,
    signed_cache,
)
from .redis_servers import RedisCluster
from .session_app import SECRET


@pytest.fixture(scope='module')
def cluster():
    require_redis_server()
    with tempfile.TemporaryDirectory(prefix='pyramid_beaker-cluster-') as directory:
        with RedisCluster(directory) as started:
            yield started


@pytest.fixture
def apps():
    with app_maker() as make:
        yield make


@pytest.fixture
def prefix():
    return 'cluster:%s:' % uuid.uuid4().hex[:8]


@pytest.mark.parametrize('options, message', [
    ({}, '"session.url" is required for "session.type" = ext:rediscluster '
         '\\(or "session.urls" or "session.client"\\)'),
    ({'url': 'redis://127.0.0.1:7000/3'},
     '"session.url" = \'redis://127.0.0.1:7000/3\': a Redis Cluster has database 0 only'),
    ({'urls': 'redis://127.0.0.1:7000,http://127.0.0.1:7001'},
     '"session.urls" must be a redis://, rediss:// or unix:// URL'),
    ({'url': 'redis://127.0.0.1:x'}, '"session.url" = .* is not a valid Redis URL'),
])
def test_bad_cluster_settings_fail_at_startup(options, message):
    settings = {'session.type': 'ext:rediscluster', 'session.secret': SECRET}
    settings.update(('session.' + name, value) for name, value in options.items())
    with pytest.raises(ConfigurationError, match=message):
        session_factory_from_settings(settings)


def test_beakers_urls_and_type_name_are_accepted(cluster):
    for settings in ({'session.urls': cluster.url}, {'session.url': cluster.url}):
        settings.update({'session.type': 'rediscluster', 'session.secret': SECRET})
        factory = session_factory_from_settings(settings)
        assert isinstance(factory.store, RedisClusterSessionStore)
        assert factory.store.client.ping()
        factory.store.close()


def test_sessions_spread_over_the_nodes_one_slot_each(cluster, apps, prefix):
    first_node = 'redis://127.0.0.1:%d' % cluster.nodes[0].port  # one startup node
    app = apps(type='ext:rediscluster', url=first_node, key_prefix=prefix)
    cookies = []
    for n in range(30):
        app.reset()
        app.get('/set', {'n': str(n), 'other': 'x'})
        cookies.append(app.cookies[COOKIE])
    homes = set()
    for n, cookie in enumerate(cookies):
        sid = cookie_id(cookie)
        key = '%ssession:{%s}' % (prefix, sid)
        assert cluster.slot(key) == cluster.slot(sid)  # the id is the hash tag
        homes.add(cluster.node_of(key))
        app.reset()
        app.set_cookie(COOKIE, cookie)
        assert app.get('/get').json['data'] == {'n': str(n), 'other': 'x'}
    assert homes == {node.port for node in cluster.nodes}


def test_sixteen_concurrent_writers_keep_sixteen_keys(cluster, apps, prefix):
    app = apps(type='ext:rediscluster', url=cluster.url, key_prefix=prefix)
    for attempt in range(3):
        app.reset()
        app.get('/set', {'start': str(attempt)})
        cookie = app.cookies[COOKIE]

        def write(n):
            writer = TestApp(app.app)
            writer.set_cookie(COOKIE, cookie)
            writer.get('/set', {'k%d' % n: str(n)})

        assert run_together(16, write) == []
        expected = {'k%d' % n: str(n) for n in range(16)}
        expected['start'] = str(attempt)
        assert app.get('/get').json['data'] == expected


def test_a_slot_moving_to_another_node_is_followed(cluster, apps, prefix):
    """ASK while the slot migrates, MOVED once it has moved: the app sees neither."""
    app = apps(type='ext:rediscluster', url=cluster.url, key_prefix=prefix)
    app.get('/set', {'a': '1'})
    sid = cookie_id(app.cookies[COOKIE])
    key = '%ssession:{%s}' % (prefix, sid)
    slot = cluster.slot(key)
    source = cluster.node_of(key)
    target = next(node.port for node in cluster.nodes if node.port != source)
    store = app.app.registry.getUtility(ISessionFactory).store
    try:
        cluster.start_moving(slot, target)  # the key is on the target already: ASK
        assert app.get('/set', {'b': '2'}).json['data'] == {'a': '1', 'b': '2'}
        assert app.get('/get').json['data'] == {'a': '1', 'b': '2'}
    finally:
        cluster.finish_moving(slot, target)
    assert cluster.node_of(key) == target
    assert store.client.get_node_from_key(key).port == source  # its map is stale: MOVED
    assert app.get('/set', {'c': '3'}).json['data'] == {'a': '1', 'b': '2', 'c': '3'}
    assert store.client.get_node_from_key(key).port == target
    assert app.get('/get').json['data'] == {'a': '1', 'b': '2', 'c': '3'}


def test_cached_values_creation_lock_and_clear(cluster, prefix):
    cache = signed_cache('pyramid_beaker.rediscluster', 'cluster-ns', url=cluster.url,
                         key_prefix=prefix, expire=300)
    assert isinstance(cache.namespace, RedisClusterNamespaceManager)
    calls = []
    for _ in range(2):
        for n in range(20):
            assert cache.get('k%d' % n, createfunc=lambda n=n: calls.append(n) or n * n) == n * n
    assert sorted(calls) == list(range(20))  # each key computed once
    homes = {cluster.node_of(cache.namespace._key('k%d' % n).decode()) for n in range(20)}
    assert len(homes) == 3
    results, computed, errors = compute_together([cache] * 8, 'slow', 0.3)
    assert errors == [] and results == ['value'] * 8 and computed == 1
    assert sorted(cache.namespace.keys()) == sorted(
        [b'k%d' % n for n in range(20)] + [b'slow'])
    cache.clear()  # scans every node
    assert cache.namespace.keys() == []


def test_beakers_own_cluster_class_gets_its_urls(cluster, apps):
    app = apps(type='beaker:ext:rediscluster', url=cluster.url)
    assert app.get('/set', {'a': '1'}).json['data'] == {'a': '1'}
    assert app.get('/get').json['data'] == {'a': '1'}
    regions = set_cache_regions_from_settings({
        'cache.regions': 'r', 'cache.r.type': 'beaker:ext:rediscluster',
        'cache.r.url': cluster.url})
    assert regions['r']['urls'] == cluster.url and 'url' not in regions['r']
    cache = beaker_cache.Cache('cluster-beaker', **regions['r'])
    cache.put('k', 'v')
    assert cache.get('k') == 'v'


def test_writes_without_a_load_and_tombstones_stay_in_the_sessions_slot(cluster, prefix):
    """The unloaded save and the deletion each run one script on two keys
    (the hash and its tombstone): both must be in one slot, on every node."""
    store = RedisClusterSessionStore({'url': cluster.url, 'key_prefix': prefix}, CODEC)
    try:
        homes = set()
        for n in range(30):
            sid = new_id()
            assert cluster.slot(store.gone_key(sid)) == cluster.slot(store.key(sid))
            homes.add(cluster.node_of(store.key(sid)))
            began = now()
            store.save(sid, {'n': n}, frozenset(), began, began, 600)
            assert store.save_unloaded(sid, {'m': n}, began, now(), 600, 600) == (True, None)
            assert store.load(sid).data == {'n': n, 'm': n}
            store.delete(sid)
            assert store.save_unloaded(sid, {'late': 1}, began, now(), 600, 600) == (False, None)
            assert store.load(sid) is None
        assert homes == {node.port for node in cluster.nodes}
    finally:
        store.close()
