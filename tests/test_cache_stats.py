"""Cache statistics: counts per function and region, listeners, totals shared in the store."""
import json
import os
import threading
import time

import pytest
import redis
import webtest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.paster import get_app

import pyramid_beaker
from pyramid_beaker import cache_stats

from .backend_faults import RedisServer, require_redis_server
from .scanfixtures import services
from .scanfixtures.apps import in_app, make_config, settings
from .test_pbeaker import CACHE_SECRET, computed, file_settings, pbeaker, write_ini

EXCHANGE = 'tests.scanfixtures.services.exchange_rate'
JOIN_TIMEOUT = 30


def counts(config, function=EXCHANGE):
    return pyramid_beaker.stats(config.registry)['functions'][function]


def test_hits_misses_and_stores_per_function_and_region():
    config = make_config(app_name='stats-counts')
    assert in_app(config, services.exchange_rate, 'EUR', 'NOK') == \
        in_app(config, services.exchange_rate, 'EUR', 'NOK')
    in_app(config, services.exchange_rate, 'EUR', 'SEK')
    in_app(config, services.other_region, 'x')
    found = counts(config)
    assert (found['hits'], found['misses'], found['stores']) == (1, 2, 2)
    assert found['region'] == 'short_term'
    assert found['lock_waits'] == 2 and found['lock_wait_time'] >= 0
    assert found['store_errors'] == found['read_errors'] == 0
    regions = pyramid_beaker.stats(config.registry)['regions']
    assert regions['short_term']['misses'] == 2 and regions['short_term']['hits'] == 1
    assert regions['long_term']['misses'] == 1 and regions['long_term']['stores'] == 1
    # Each app counts its own calls.
    other = make_config(app_name='stats-other')
    assert counts(other)['misses'] == 0


def test_concurrent_misses_wait_for_the_lock_and_count_the_time():
    """The second caller arrives while the first computes (1 s) and waits."""
    config = make_config(app_name='stats-lock')
    results, errors = [], []

    def call():
        try:
            results.append(in_app(config, services.slow_square, 7, 1.0))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    before = services.CALLS['slow_square']
    first = threading.Thread(target=call)
    first.start()
    deadline = time.monotonic() + JOIN_TIMEOUT
    while services.CALLS['slow_square'] == before and time.monotonic() < deadline:
        time.sleep(0.005)  # until the first caller is computing
    second = threading.Thread(target=call)
    second.start()
    for thread in (first, second):
        thread.join(JOIN_TIMEOUT)
    assert errors == [] and results == [49, 49]
    found = counts(config, 'tests.scanfixtures.services.slow_square')
    assert found['misses'] == 1  # computed once
    assert found['hits'] == 1  # the other found it once the lock was free
    assert found['lock_waits'] == 2
    assert found['lock_wait_time'] >= 0.5  # the second waited for the computation


@pytest.fixture
def private_redis():
    require_redis_server()
    with RedisServer() as server:
        yield server


def test_failed_writes_and_reads_are_counted(private_redis):
    client = redis.Redis.from_url(private_redis.url)
    client.config_set('maxmemory-policy', 'noeviction')
    client.config_set('maxmemory', 1)  # every write now fails, reads work
    client.close()
    config = make_config(app_name='stats-errors', cache__short_term__type='ext:redis',
                         cache__short_term__url=private_redis.url,
                         cache__short_term__secret='redis-secret-0123',
                         cache__short_term__socket_timeout='1')
    in_app(config, services.exchange_rate, 'EUR', 'ISK')
    found = counts(config)
    assert found['store_errors'] == 1 and found['lock_errors'] == 1
    assert found['stores'] == 0 and found['misses'] == 1
    private_redis.stop()
    in_app(config, services.exchange_rate, 'EUR', 'ISK')
    assert counts(config)['read_errors'] == 1


# -- listeners -----------------------------------------------------------------


def listened_app(listener, monkeypatch):
    """An app whose cached view shares its counts at the end of every request."""
    monkeypatch.setattr(cache_stats, 'SHARE_INTERVAL', 0)
    config = Configurator(settings=settings(app_name='stats-listened'))
    config.include('pyramid_beaker')
    config.add_cache_stats_listener(listener)
    config.add_route('rate', '/rate')
    config.add_view(lambda request: {'rate': services.exchange_rate('EUR', 'GBP')},
                    route_name='rate', renderer='json')
    config.scan(services.__name__)
    return webtest.TestApp(config.make_wsgi_app())


def test_listeners_hear_what_changed_since_the_last_share(monkeypatch):
    heard = []
    app = listened_app(lambda *args: heard.append(args), monkeypatch)
    app.get('/rate')
    assert len(heard) == 1
    region, function, changes = heard[0]
    assert (region, function) == ('short_term', EXCHANGE)
    assert changes['misses'] == 1 and changes['stores'] == 1 and 'hits' not in changes
    app.get('/rate')
    app.get('/rate')
    assert [changes for _, _, changes in heard[1:]] == [{'hits': 1}, {'hits': 1}]


def test_a_failing_listener_does_not_fail_the_request(monkeypatch, caplog):
    def broken(*args):
        raise RuntimeError('statsd is down')

    app = listened_app(broken, monkeypatch)
    assert 'rate' in app.get('/rate').json
    assert 'statsd is down' in caplog.text


def test_a_listener_must_be_callable(config):
    config.include('pyramid_beaker')
    with pytest.raises(ConfigurationError, match='"listener" must be callable'):
        config.add_cache_stats_listener(42)


def test_the_listener_may_be_a_dotted_name(config, monkeypatch):
    config.include('pyramid_beaker')
    config.add_cache_stats_listener('tests.test_cache_stats.counts')
    config.commit()
    assert getattr(config.registry, 'pyramid_beaker_stats_listeners') == [counts]


# -- totals shared in the store, read by pbeaker -------------------------------


def test_pbeaker_stats_reads_the_totals_of_every_app_process(tmp_dir, monkeypatch):
    monkeypatch.setattr(cache_stats, 'SHARE_INTERVAL', 0)
    ini = write_ini(tmp_dir, file_settings(tmp_dir))
    one, two = webtest.TestApp(get_app(ini)), webtest.TestApp(get_app(ini))  # two processes
    start = dict(computed)
    assert one.get('/math?x=11').text == '121 1331'  # square and cube: misses
    assert two.get('/math?x=11').text == '121 1331'  # hits, from the shared files
    assert two.get('/math?x=12').text == '144 1728'  # misses
    assert computed['square'] == start['square'] + 2
    result = pbeaker(ini, 'stats')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == 'Cache statistics, as shared by the app processes every 10 s:'
    assert 'stored: hits 1, misses 2 (hit rate 33%), stores 2, ' in result.stdout
    square = [line for line in lines if 'tests.test_pbeaker.square' in line]
    assert len(square) == 1 and 'hits 1, misses 2' in square[0]
    assert 'quick: kept inside each app process' in result.stdout
    report = pbeaker(ini, 'stats', '--json')
    shared = json.loads(report.stdout)
    assert shared['regions']['quick'] is None
    assert shared['regions']['other']['hits'] == 1
    assert shared['functions']['tests.test_pbeaker.cube']['misses'] == 2


def test_clearing_a_region_clears_its_totals(tmp_dir, monkeypatch):
    monkeypatch.setattr(cache_stats, 'SHARE_INTERVAL', 0)
    ini = write_ini(tmp_dir, file_settings(tmp_dir))
    webtest.TestApp(get_app(ini)).get('/math?x=13')
    assert pbeaker(ini, 'clear-region', 'stored').returncode == 0
    shared = json.loads(pbeaker(ini, 'stats', '--json').stdout)
    assert shared['regions']['stored']['misses'] == 0
    assert shared['regions']['other']['misses'] == 1


def test_pbeaker_stats_on_redis(tmp_dir, redis_url, monkeypatch):
    monkeypatch.setattr(cache_stats, 'SHARE_INTERVAL', 0)
    prefix = 'pbeaker-stats-%d:' % os.getpid()
    ini = write_ini(tmp_dir, {'cache.regions': 'stored, other', 'cache.type': 'ext:redis',
                              'cache.url': redis_url, 'cache.secret': CACHE_SECRET,
                              'cache.key_prefix': prefix})
    client = redis.Redis.from_url(redis_url)
    try:
        app = webtest.TestApp(get_app(ini))
        app.get('/math?x=21')
        app.get('/math?x=21')
        shared = json.loads(pbeaker(ini, 'stats', '--json').stdout)
        assert shared['functions']['tests.test_pbeaker.square']['hits'] == 1
        assert shared['functions']['tests.test_pbeaker.square']['misses'] == 1
    finally:
        stale = client.keys(prefix + '*')
        if stale:
            client.delete(*stale)
        client.close()


def test_pbeaker_stats_with_an_unreachable_store_fails_in_one_line(tmp_dir):
    ini = write_ini(tmp_dir, {'cache.regions': 'stored, other', 'cache.type': 'ext:redis',
                              'cache.url': 'redis://127.0.0.1:9/0',
                              'cache.secret': CACHE_SECRET})
    result = pbeaker(ini, 'stats')
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines()
            if line.startswith('pbeaker: error: cannot read the cache statistics')]
