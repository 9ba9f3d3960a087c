"""Several app processes on one store, and every store's behaviour on faults.

Each app process is a real waitress server (``tests/servers.py``).
"""
import json
import logging
import os
import pickle
import subprocess
import sys
import uuid

import pytest

from pyramid_beaker.codec import SignedCodec

from .backend_faults import MemcachedServer, require_program
from .helpers import (
    SECRET,
    Trap,
    http_get,
    session_settings,
    share_a_session,
    write_concurrently,
    written,
)
from .scanfixtures import services
from .scanfixtures.apps import in_app, make_config
from .servers import AppProcess
from .session_app import make_app
from .session_stores import _drop_table
from .tcp_proxy import TCPProxy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORES = ['ext:redis', 'ext:memcached', 'postgresql', 'mariadb', 'file']


def region_options(store, request, tmp_dir):
    """Options of a region on ``store`` with keys or a table of its own."""
    unique = uuid.uuid4().hex[:12]
    region = {'type': store, 'expire': '300', 'secret': 'cache-secret-' + unique}
    if store == 'ext:redis':
        region.update(url=request.getfixturevalue('redis_url'), key_prefix=unique + ':')
    elif store == 'ext:memcached':
        region.update(url=request.getfixturevalue('memcached_url'), key_prefix=unique + ':')
    elif store in ('postgresql', 'mariadb'):
        url = request.getfixturevalue(store.replace('postgresql', 'postgres') + '_url')
        region.update(type='ext:database', url=url, table_name='cache_' + unique)
        request.addfinalizer(lambda: _drop_table(url, 'cache_' + unique))
    else:
        region.update(data_dir=os.path.join(tmp_dir, 'cache'))
    return region


@pytest.fixture(params=STORES)
def shared_settings(request, tmp_dir):
    """Settings of a region ``shared`` (and sessions) on one store, per test."""
    region = region_options(request.param, request, tmp_dir)
    settings = {'test.cached': 'true', 'cache.regions': 'shared'}
    settings.update(('cache.shared.' + name, value) for name, value in region.items())
    return settings


def test_a_value_cached_by_one_process_is_a_hit_in_the_other(shared_settings):
    with AppProcess(shared_settings) as one, AppProcess(shared_settings) as two:
        x = uuid.uuid4().hex
        first, _ = http_get(one.url + '/cached?x=' + x)
        second, _ = http_get(two.url + '/cached?x=' + x)
        own, _ = http_get(two.url + '/cached?x=other-' + x)
    assert first == {'x': x, 'pid': one.process.pid}
    assert second == first  # computed by the first process, read by the second
    assert own['pid'] == two.process.pid


@pytest.mark.parametrize('store', STORES)
def test_concurrent_misses_in_several_processes_compute_once(store, request, tmp_dir):
    tally, go = os.path.join(tmp_dir, 'tally'), os.path.join(tmp_dir, 'go')
    region = json.dumps(region_options(store, request, tmp_dir))
    env = dict(os.environ, PYTHONPATH=ROOT)
    workers = [subprocess.Popen(
        [sys.executable, '-m', 'tests.scanfixtures.worker', region, tally, go],
        cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)]
    try:
        for worker in workers:
            assert worker.stdout.readline().strip() == 'ready', worker.stderr.read()
        open(go, 'w').close()
        results = [worker.communicate(timeout=30)[0].strip() for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)
    with open(tally) as lines:
        runs = lines.read().split()
    assert len(runs) == 1
    assert results == ['computed by %s' % runs[0]] * 4


def test_file_sessions_are_shared_and_keep_concurrent_writes(tmp_dir):
    settings = session_settings('file', data_dir=os.path.join(tmp_dir, 'sessions'),
                                lock_dir=os.path.join(tmp_dir, 'locks'))
    with AppProcess(settings) as one, AppProcess(settings) as two:
        cookie, first, last = share_a_session(one, two)
        assert first == {'a': '1'}
        assert last == {'b': '2'}
        for attempt in range(3):
            _, cookie = http_get(one.url + '/set?key=start&value=%d' % attempt)
            assert write_concurrently((one, two), cookie, 16) == []
            assert http_get(two.url + '/get', cookie)[0] == written(16, attempt)


def _warnings(caplog):
    return [record.getMessage() for record in caplog.records
            if record.name == 'pyramid_beaker'
            and 'computing without the cache' in record.getMessage()]


def _region_down_computes_and_warns(config, stop, caplog):
    stored = in_app(config, services.exchange_rate, 'EUR', 'SEK')
    assert in_app(config, services.exchange_rate, 'EUR', 'SEK') == stored
    assert _warnings(caplog) == []
    stop()
    fresh = in_app(config, services.exchange_rate, 'EUR', 'SEK')
    assert fresh.startswith('EUR/SEK #') and fresh != stored
    assert len(_warnings(caplog)) == 1
    return stored


def test_memcached_down_cached_function_computes_and_warns(caplog):
    require_program('memcached')
    caplog.set_level(logging.WARNING, logger='pyramid_beaker')
    with MemcachedServer() as server:
        config = make_config(
            app_name='memcached-down', cache__short_term__type='ext:memcached',
            cache__short_term__url='127.0.0.1:%d' % server.port,
            cache__short_term__socket_timeout='1',
            cache__short_term__secret='memcached-secret-0123')
        _region_down_computes_and_warns(config, server.stop, caplog)
        server.start()
        again = in_app(config, services.exchange_rate, 'EUR', 'NOK')
        assert in_app(config, services.exchange_rate, 'EUR', 'NOK') == again


def test_postgres_down_cached_function_computes_and_warns(postgres_url, caplog):
    caplog.set_level(logging.WARNING, logger='pyramid_beaker')
    host_port = postgres_url.split('@', 1)[1].split('/', 1)[0]
    host, _, port = host_port.partition(':')
    with TCPProxy(int(port or 5432), host) as proxy:
        url = postgres_url.replace(host_port, '127.0.0.1:%d' % proxy.port)
        config = make_config(
            app_name='postgres-down', cache__short_term__type='ext:database',
            cache__short_term__url=url + '?connect_timeout=2',
            cache__short_term__table_name='cache_down_' + uuid.uuid4().hex[:8],
            cache__short_term__secret='database-secret-0123')
        _region_down_computes_and_warns(config, proxy.stop, caplog)
        proxy.start()
        again = in_app(config, services.exchange_rate, 'EUR', 'ISK')
        assert in_app(config, services.exchange_rate, 'EUR', 'ISK') == again


def test_pickle_planted_in_a_session_file_is_never_loaded(tmp_dir):
    data_dir = os.path.join(tmp_dir, 'data')
    app = make_app(type='file', data_dir=data_dir, data_serializer='pickle')
    app.get('/set', {'mine': 'yes'})
    [path] = [os.path.join(root, name)
              for root, _, names in os.walk(os.path.join(data_dir, 'sessions'))
              for name in names]
    marker = os.path.join(tmp_dir, 'exploited')
    pickle.loads(pickle.dumps(Trap(marker + '-probe')))
    assert os.path.exists(marker + '-probe')  # the trap fires when unpickled
    forged = SignedCodec('pickle', 'not-' + SECRET, 'session')
    for payload in (pickle.dumps(Trap(marker)),
                    forged.dumps({'d': {'x': Trap(marker)}, 'c': 0, 'a': 0})):
        with open(path, 'wb') as f:
            f.write(payload)
        assert app.get('/get').json['data'] == {}
        assert not os.path.exists(marker)


def test_pickle_planted_in_a_file_cache_entry_is_a_miss(tmp_dir):
    from beaker.cache import Cache

    cache = Cache('planted', type='pyramid_beaker.file', data_dir=tmp_dir,
                  secret='cache-secret-0123')
    cache.put('key', 'good')
    [path] = [os.path.join(root, name)
              for root, _, names in os.walk(os.path.join(tmp_dir, 'cache'))
              for name in names]
    marker = os.path.join(tmp_dir, 'exploited')
    with open(path, 'wb') as f:
        f.write(pickle.dumps(Trap(marker)))
    assert 'key' not in cache
    assert cache.get('key', createfunc=lambda: 'recomputed') == 'recomputed'
    assert not os.path.exists(marker)
