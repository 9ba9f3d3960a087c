"""Decorator options and the errors of binding: name, expire,
stale_while_revalidate, and values a region cannot store."""
import threading
import time

import pytest
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

from .scanfixtures import services
from .scanfixtures.apps import in_app, make_config, settings
from .scanfixtures.factory import make_price

pytestmark = pytest.mark.filterwarnings('error')


def bind_functions(*functions, **extra):
    config = Configurator(settings=settings(**extra))
    config.include('pyramid_beaker')
    for function in functions:
        config.add_cached_function(function)
    config.commit()
    return config


# -- functions with one qualified name ---------------------------------------------

def test_closures_of_one_factory_cannot_share_entries():
    cheap, dear = make_price(0.8), make_price(0.9)
    with pytest.raises(ConfigurationError,
                       match=r'have one name, "tests.scanfixtures.factory.'
                             r'make_price.<locals>.price", so they would share '
                             r'entries; pass name='):
        bind_functions(cheap, dear)


def test_closures_with_their_own_names_keep_their_own_entries():
    cheap, dear = make_price(0.8, name='price-0.8'), make_price(0.9, name='price-0.9')
    config = bind_functions(cheap, dear)
    assert in_app(config, cheap, 100) == 80
    assert in_app(config, dear, 100) == 90
    assert in_app(config, cheap, 100) == 80


# -- expire per function ------------------------------------------------------------

def test_expire_overrides_the_regions_for_that_function():
    config = make_config(app_name='expire')
    first = in_app(config, services.short_lived, 'x')
    assert in_app(config, services.short_lived, 'x') == first
    time.sleep(1.1)  # the region keeps entries an hour; this function one second
    assert in_app(config, services.short_lived, 'x') != first


@pytest.mark.parametrize('option, message', [
    ({'expire': 0}, '"expire" must be a number of seconds greater than 0'),
    ({'expire': '10'}, '"expire" must be a number of seconds greater than 0'),
    ({'stale_while_revalidate': -1}, '"stale_while_revalidate" must be a number'),
    ({'name': ''}, '"name" must be a non-empty string'),
    ({'shared': 'yes'}, '"shared" must be True or False'),
])
def test_bad_options_raise_at_import(option, message):
    from pyramid_beaker import cached_region

    with pytest.raises(TypeError, match=message):
        cached_region('short_term', **option)


def test_stale_while_revalidate_needs_an_expiry():
    from pyramid_beaker import cached_region

    @cached_region('short_term', stale_while_revalidate=60)
    def forever(item):
        return item

    with pytest.raises(ConfigurationError, match='stale_while_revalidate=60.*never expire'):
        bind_functions(forever, cache__short_term__expire='none')


# -- stale while revalidate ---------------------------------------------------------

def test_stale_entries_are_served_while_one_caller_recomputes():
    config = make_config(app_name='stale')
    gate = threading.Event()
    first = in_app(config, services.revalidated, 'item', gate)
    time.sleep(1.1)  # expired, but within stale_while_revalidate
    results = {}

    def call(index):
        results[index] = in_app(config, services.revalidated, 'item', gate)

    recomputer = threading.Thread(target=call, args=('recomputer',))
    recomputer.start()
    deadline = time.monotonic() + 5
    while services.CALLS['revalidated'] < 2 and time.monotonic() < deadline:
        time.sleep(0.005)  # until the recomputation is under way
    others = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(timeout=5)  # they must not wait for the gate
    served = [results.get(n) for n in range(4)]
    gate.set()
    recomputer.join(timeout=10)
    assert served == [first] * 4
    assert results['recomputer'] != first
    assert in_app(config, services.revalidated, 'item', gate) == results['recomputer']
    assert services.CALLS['revalidated'] == 2


# -- values the region cannot store ------------------------------------------------

def test_a_value_the_serializer_cannot_store_raises_at_once(tmp_dir, caplog):
    config = make_config(app_name='opaque', cache__short_term__type='file',
                         cache__short_term__data_dir=tmp_dir,
                         cache__short_term__secret='opaque-secret-0123')
    caplog.clear()
    for _ in range(2):
        with pytest.raises(TypeError, match=r'tests.scanfixtures.services.opaque '
                                            r'returned a function, which cache '
                                            r'region .short_term. cannot store'):
            in_app(config, services.opaque, 'x')
    # An error, not a backend fault to log and skip; both calls computed.
    assert not caplog.records
    assert services.CALLS['opaque'] == 2
