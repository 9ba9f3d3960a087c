"""Memory regions shrink: expired entries are swept, ``max_entries`` caps a
namespace, and a dropped app's entries go with it."""
import gc
import time
import weakref

import pytest

from pyramid_beaker.stores.memory import MemoryNamespaceManager

from .scanfixtures import services
from .scanfixtures.apps import in_app, make_config

pytestmark = pytest.mark.filterwarnings('error')


def binding_of(config, function):
    return config.registry.pyramid_beaker_cached_functions[function.__cached_region__]


def test_expired_entries_are_swept_as_new_ones_are_written():
    config = make_config(app_name='sweep', cache__short_term__expire='1')
    for number in range(5000):
        in_app(config, services.exchange_rate, 'SWP', str(number))
    entries = binding_of(config, services.exchange_rate).manager.dictionary
    assert len(entries) == 5000
    time.sleep(1.1)
    in_app(config, services.exchange_rate, 'SWP', 'new')
    assert list(entries) == ["('SWP', 'new')"]


def test_max_entries_drops_the_least_recently_used():
    config = make_config(app_name='lru', cache__short_term__max_entries='3')
    for name in ('a', 'b', 'c'):
        in_app(config, services.exchange_rate, 'LRU', name)
    before = services.CALLS['exchange_rate']
    in_app(config, services.exchange_rate, 'LRU', 'a')  # a hit: now the most recent
    in_app(config, services.exchange_rate, 'LRU', 'd')  # drops b
    entries = binding_of(config, services.exchange_rate).manager.dictionary
    assert sorted(entries) == ["('LRU', 'a')", "('LRU', 'c')", "('LRU', 'd')"]
    assert services.CALLS['exchange_rate'] - before == 1


def test_max_entries_must_be_a_positive_number():
    from pyramid.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match='"cache.short_term.max_entries"'):
        make_config(app_name='bad', cache__short_term__max_entries='lots')


def test_a_dropped_apps_entries_go_with_it():
    config = make_config(app_name='dropped')
    for number in range(100):
        in_app(config, services.exchange_rate, 'GC', str(number))
    entries = weakref.ref(binding_of(config, services.exchange_rate).manager.dictionary)
    namespaces = len(MemoryNamespaceManager._namespaces)
    assert entries() is not None and len(entries()) == 100
    del config
    gc.collect()
    assert entries() is None
    assert len(MemoryNamespaceManager._namespaces) < namespaces
