"""@cached_region on functions and methods, bound by scanning real modules."""
import logging
import threading
import time
import uuid

import pytest
import redis
from pyramid.exceptions import ConfigurationError

from pyramid_beaker import cached_region
from pyramid_beaker.cache import get_region

from .backend_faults import RedisServer, require_redis_server
from .scanfixtures import services, unbound
from .scanfixtures.apps import SERVICES, in_app, include, make_config, settings

pytestmark = pytest.mark.filterwarnings('error')


def _plain(a, b):
    return a + b


@pytest.fixture
def app(config):
    """The conftest Configurator, active, with the services scanned."""
    config.add_settings(settings('main'))
    include(config)
    config.scan(SERVICES)
    config.commit()
    return config


def entries(config, function, region='short_term'):
    """The keys of the values stored for ``function`` in the app's region
    (not its bookkeeping: marks of unstored results, its generation)."""
    found = config.registry.introspector.get(
        'beaker cached functions', function.__cached_region__.name)
    manager = get_region(config.registry, region).namespace_manager(found['namespace'])
    return sorted(key for key in manager.keys() if key[:1] in ('(', '#'))


def test_a_hit_does_not_run_the_function_again(app):
    first = services.exchange_rate('EUR', 'USD')
    assert services.exchange_rate('EUR', 'USD') == first
    assert services.exchange_rate('EUR', 'GBP') != first
    assert entries(app, services.exchange_rate) == ["('EUR', 'GBP')", "('EUR', 'USD')"]


def test_region_name_is_readable():
    assert services.exchange_rate.region == 'short_term'
    assert services.other_region.region == 'long_term'


def test_invalidate_drops_one_entry(app):
    usd = services.exchange_rate('EUR', 'USD')
    gbp = services.exchange_rate('EUR', 'GBP')
    services.exchange_rate.invalidate('EUR', 'USD')
    assert services.exchange_rate('EUR', 'USD') != usd
    assert services.exchange_rate('EUR', 'GBP') == gbp


def test_refresh_recomputes_and_stores(app):
    old = services.exchange_rate('EUR', 'JPY')
    new = services.exchange_rate.refresh('EUR', 'JPY')
    assert new != old
    assert services.exchange_rate('EUR', 'JPY') == new


def test_should_cache_keeps_refused_results_out(app):
    before = services.CALLS['find']
    assert services.find('missing') is None
    assert services.find('missing') is None
    assert services.find('here') == 'HERE'
    assert services.find('here') == 'HERE'
    assert services.CALLS['find'] - before == 3
    assert entries(app, services.find) == ["('here',)"]


def test_an_exception_is_not_cached_and_releases_the_lock(app):
    with pytest.raises(RuntimeError, match='first run of a fails'):
        services.flaky('a')
    result = run_together(1, lambda i: in_app(app, services.flaky, 'a'))
    assert result == ['a']
    assert services.flaky('a') == 'a'
    assert services.CALLS['flaky:a'] == 2


@pytest.mark.parametrize('left, right', [
    ((1, 2), ('1', '2')),
    (('a b', 'c'), ('a', 'b c')),
    ((None, 'x'), ('None', 'x')),
])
def test_different_arguments_never_share_an_entry(app, left, right):
    assert services.exchange_rate(*left) != services.exchange_rate(*right)


def test_equal_arguments_of_other_types_keep_their_own_entries(app):
    calls = [(1, 'x'), (True, 'x'), (1.0, 'x'), ('1', 'x'), (1, 'x')]
    first = [services.exchange_rate(*args) for args in calls]
    assert len(set(first)) == 4 and first[0] == first[-1]
    assert [services.exchange_rate(*args) for args in calls] == first
    assert len(entries(app, services.exchange_rate)) == 4


def test_keyword_positional_and_default_calls_share_an_entry(app):
    first = services.combine(1, b=2)
    assert services.combine(1, 2) == first
    assert services.combine(a=1, b=2) == first
    assert services.combine(1) == first
    assert services.combine(1, 2, 3) != first
    assert len(entries(app, services.combine)) == 2


def test_ignored_arguments_are_left_out_of_the_key(app):
    first_db, second_db = [], []
    assert services.lookup(first_db, 'x') == services.lookup(second_db, 'x')
    assert first_db == ['x'] and second_db == []


def test_methods_are_keyed_by_class(app):
    assert services.Catalog().item('a') == services.Catalog().item('a')
    special = services.SpecialCatalog().item('a')
    assert special.startswith('SpecialCatalog a')
    assert services.SpecialCatalog().item('a') == special
    assert services.Catalog.make('b') != services.SpecialCatalog.make('b')
    assert services.SpecialCatalog.make('b').startswith('SpecialCatalog b')


def test_static_methods_are_keyed_by_their_arguments(app):
    assert services.Toolbox.double(1) == services.Toolbox.double(1)
    assert services.Toolbox.double(2)[0] == 4
    assert services.Toolbox().double(2) == services.Toolbox.double(2)


def test_a_method_taking_only_self_is_keyed_by_class(app):
    first = services.Toolbox().size()
    assert services.Toolbox().size() == first
    services.Toolbox.size.invalidate(services.Toolbox())
    assert services.Toolbox().size() != first


def test_instances_with_a_deliberate_key(app):
    assert services.Shelf(1).count('x') == services.Shelf(1).count('x')
    assert services.Shelf(1).count('x') != services.Shelf(2).count('x')


def test_an_argument_without_a_stable_key_raises_typeerror(app):
    with pytest.raises(TypeError, match="argument 'base' of "
                                        "tests.scanfixtures.services.exchange_rate"):
        services.exchange_rate(object(), 'USD')


def test_long_keys_are_hashed(config):
    config.add_settings(settings('main', cache__short_term__key_length='20'))
    include(config)
    config.scan(SERVICES)
    config.commit()
    value = services.exchange_rate('EUR', 'X' * 30)
    assert services.exchange_rate('EUR', 'X' * 30) == value
    services.exchange_rate('EUR', 'USD')
    stored = entries(config, services.exchange_rate)
    assert stored[1] == "('EUR', 'USD')"
    assert stored[0].startswith('#') and len(stored[0]) == 65


@pytest.mark.parametrize('storage', ['memory', 'file'])
def test_entries_expire_after_the_region_expire(config, tmp_dir, storage):
    config.add_settings(settings('main', cache__short_term__expire='1',
                                 cache__short_term__type=storage,
                                 cache__short_term__data_dir=tmp_dir,
                                 cache__short_term__secret='expiry-secret-0123'))
    include(config)
    config.scan(SERVICES)
    config.commit()
    first = services.exchange_rate('EUR', 'CHF')
    assert services.exchange_rate('EUR', 'CHF') == first
    time.sleep(1.1)
    assert services.exchange_rate('EUR', 'CHF') != first


def test_a_disabled_region_runs_the_function_every_time(config):
    config.add_settings(settings('main', cache__short_term__enabled='false'))
    include(config)
    config.scan(SERVICES)
    config.commit()
    assert services.exchange_rate('EUR', 'SEK') != services.exchange_rate('EUR', 'SEK')


def test_beakers_own_storage_classes_work_too(config):
    config.add_settings(settings('main', cache__short_term__type='beaker:memory'))
    include(config)
    config.scan(SERVICES)
    config.commit()
    first = services.exchange_rate('EUR', 'NOK')
    assert services.exchange_rate('EUR', 'NOK') == first
    services.exchange_rate.invalidate('EUR', 'NOK')
    assert services.exchange_rate('EUR', 'NOK') != first


# -- unbound functions ----------------------------------------------------------


def test_a_function_no_app_scanned_runs_uncached_and_warns_once(config, caplog):
    caplog.set_level(logging.WARNING, logger='pyramid_beaker')
    before = unbound.CALLS['never_scanned']
    assert unbound.never_scanned(1) != unbound.never_scanned(1)
    assert unbound.never_scanned.refresh(1) == 1 + before + 3
    unbound.never_scanned.invalidate(1)
    assert unbound.CALLS['never_scanned'] - before == 3
    warnings = [r.getMessage() for r in caplog.records
                if 'never_scanned' in r.getMessage()]
    assert len(warnings) == 1
    assert 'runs uncached' in warnings[0]


# -- binding errors -------------------------------------------------------------


def test_scanning_a_function_of_an_unknown_region_fails_at_commit(config):
    config.add_settings(settings('main'))
    include(config)
    config.scan('tests.scanfixtures.missing_region')
    with pytest.raises(ConfigurationError) as info:
        config.commit()
    message = str(info.value)
    assert '@cached_region("nowhere")' in message
    assert 'no cache region named "nowhere"' in message
    assert 'tests.scanfixtures.missing_region.orphan' in message
    assert 'scanfixtures/missing_region.py, line 5' in message


def test_scanning_without_including_pyramid_beaker_fails_loudly(config):
    with pytest.raises(ConfigurationError, match=r'config.include\("pyramid_beaker"\) '
                                                 r'before config.scan\(\)'):
        config.scan(SERVICES)


def test_add_cached_function_binds_without_a_scan(config):
    config.add_settings(settings('main'))
    include(config)
    config.add_cached_function('tests.scanfixtures.services.exchange_rate')
    config.commit()
    assert services.exchange_rate('EUR', 'AUD') == services.exchange_rate('EUR', 'AUD')
    assert services.other_region('x') != services.other_region('x')  # not bound


def test_add_cached_function_refuses_undecorated_functions(config):
    include(config)
    with pytest.raises(ConfigurationError, match='must be decorated with @cached_region'):
        config.add_cached_function(len)


@pytest.mark.parametrize('decorate, message', [
    (lambda: cached_region(''), '"region" must be a region name'),
    (lambda: cached_region('r', should_cache=True), '"should_cache" must be callable'),
    (lambda: cached_region('r', vary=(1,)), '"vary" must hold header names'),
    (lambda: cached_region('r', vary=('X-A',))(_plain),
     '"vary", "per_user" and "shared" apply to views'),
    (lambda: cached_region('r', ignore=('nope',))(_plain),
     "'nope', which is not a parameter"),
    (lambda: cached_region('r')(classmethod(_plain)),
     '@cached_region must come below @classmethod'),
])
def test_bad_decorator_arguments_raise_at_import(decorate, message):
    with pytest.raises(TypeError, match=message):
        decorate()


# -- one app, many threads; many apps, one process -----------------------------------


def run_together(count, target):
    """Run ``target(i)`` in ``count`` threads released together; return results."""
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(index):
        barrier.wait(timeout=5)
        results[index] = target(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
        assert not thread.is_alive()
    return results


def test_concurrent_misses_compute_once():
    app_config = make_config(app_name='threads')
    before = services.CALLS['slow_square']
    results = run_together(
        8, lambda i: in_app(app_config, services.slow_square, 12, 0.3))
    assert results == [144] * 8
    assert services.CALLS['slow_square'] - before == 1


def test_two_apps_use_their_own_region_configuration(tmp_dir):
    cached = make_config(app_name='cached')
    disabled = make_config(app_name='disabled', cache__short_term__enabled='false')
    on_disk = make_config(app_name='on_disk', cache__short_term__type='file',
                          cache__short_term__data_dir=tmp_dir,
                          cache__short_term__secret='s3cret-for-the-test')
    first = in_app(cached, services.app_label, 'x')
    assert first.startswith('cached:x')
    assert in_app(cached, services.app_label, 'x') == first
    other = in_app(disabled, services.app_label, 'x')
    assert other.startswith('disabled:x')
    assert in_app(disabled, services.app_label, 'x') != other
    stored = in_app(on_disk, services.app_label, 'x')
    assert stored.startswith('on_disk:x')
    assert in_app(on_disk, services.app_label, 'x') == stored
    assert in_app(cached, services.app_label, 'x') == first


def test_two_apps_with_the_same_memory_region_do_not_share_entries():
    one = make_config(app_name='one')
    two = make_config(app_name='two')
    assert in_app(one, services.app_label, 'y').startswith('one:y')
    assert in_app(two, services.app_label, 'y').startswith('two:y')
    assert in_app(one, services.app_label, 'y').startswith('one:y')


# -- introspection ------------------------------------------------------------------


def test_each_cached_function_is_introspectable_and_related_to_its_region(app):
    introspector = app.registry.introspector
    found = introspector.get('beaker cached functions',
                             'tests.scanfixtures.services.exchange_rate')
    assert found['region'] == 'short_term'
    assert found['function'] is services.exchange_rate
    assert found['namespace'].startswith(
        'short_term:tests.scanfixtures.services.exchange_rate@app')
    assert found.title == 'function tests.scanfixtures.services.exchange_rate'
    related = introspector.related(found)
    assert [(i.category_name, i.discriminator) for i in related] == [
        ('beaker cache regions', 'short_term')]
    names = {i['introspectable'].discriminator
             for i in introspector.get_category('beaker cached functions')}
    assert {'tests.scanfixtures.services.Catalog.item',
            'tests.scanfixtures.services.other_region'} <= names


# -- Redis: one computation across processes; a failing backend ---------------------


def redis_config(url, prefix, **extra):
    return make_config(app_name='redis', cache__short_term__type='ext:redis',
                       cache__short_term__url=url, cache__short_term__key_prefix=prefix,
                       cache__short_term__secret='redis-secret-0123',
                       cache__short_term__socket_timeout='1', **extra)


@pytest.fixture
def redis_prefix(redis_url):
    prefix = 'test-cached-%s:' % uuid.uuid4().hex
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for name in client.scan_iter(match=prefix + '*'):
        client.delete(name)
    client.close()


def test_a_redis_region_is_shared_by_apps_with_the_same_configuration(
        redis_url, redis_prefix):
    one, two = redis_config(redis_url, redis_prefix), redis_config(redis_url, redis_prefix)
    value = in_app(one, services.exchange_rate, 'EUR', 'DKK')
    assert in_app(two, services.exchange_rate, 'EUR', 'DKK') == value
    in_app(two, services.exchange_rate.invalidate, 'EUR', 'DKK')
    assert in_app(one, services.exchange_rate, 'EUR', 'DKK') != value


@pytest.fixture
def private_redis():
    require_redis_server()
    with RedisServer() as server:
        yield server


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == 'pyramid_beaker' and 'computing without the cache' in r.getMessage()]


def test_a_region_whose_server_is_down_computes_and_warns(private_redis, caplog):
    caplog.set_level(logging.WARNING, logger='pyramid_beaker')
    app_config = redis_config(private_redis.url, 'down:')
    stored = in_app(app_config, services.exchange_rate, 'EUR', 'PLN')
    assert in_app(app_config, services.exchange_rate, 'EUR', 'PLN') == stored
    assert warnings_of(caplog) == []
    private_redis.stop()
    fresh = in_app(app_config, services.exchange_rate, 'EUR', 'PLN')
    assert fresh.startswith('EUR/PLN #') and fresh != stored
    assert in_app(app_config, services.exchange_rate, 'EUR', 'HUF').startswith('EUR/HUF #')
    found = warnings_of(caplog)
    assert len(found) == 1  # rate-limited
    assert "cache region 'short_term' could not read an entry of " \
           "tests.scanfixtures.services.exchange_rate (ConnectionError" in found[0]


def test_a_region_that_refuses_writes_computes_and_warns(private_redis, caplog):
    caplog.set_level(logging.WARNING, logger='pyramid_beaker')
    client = redis.Redis.from_url(private_redis.url)
    client.config_set('maxmemory-policy', 'noeviction')
    client.config_set('maxmemory', 1)  # every write now fails, reads work
    client.close()
    app_config = redis_config(private_redis.url, 'full:')
    first = in_app(app_config, services.exchange_rate, 'EUR', 'CZK')
    second = in_app(app_config, services.exchange_rate, 'EUR', 'CZK')
    assert first.startswith('EUR/CZK #') and second != first
    found = warnings_of(caplog)
    assert [message.split(' an entry')[0] for message in found] == [
        "cache region 'short_term' could not lock",
        "cache region 'short_term' could not store"]
    assert all('maxmemory' in message for message in found)


def test_the_hit_paths_read_the_bindings_attribute_by_name():
    """The hit paths spell binding.BINDINGS out (an attribute read is cheaper
    than getattr); with another name they would still work, only slower."""
    import inspect

    from pyramid_beaker import binding, cached_functions, cached_views

    for module in (cached_functions, cached_views):
        assert 'registry.%s[' % binding.BINDINGS in inspect.getsource(module)
