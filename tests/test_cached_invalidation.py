"""Dropping many entries at once: ``f.invalidate_all()`` and ``Region.invalidate()``.

Memory regions drop the current app's entries; stores outside the process
drop them for every app (every process) sharing the store.
"""
import uuid

import pytest

from pyramid_beaker import get_region

from .scanfixtures import services
from .scanfixtures.apps import in_app, make_config

pytestmark = pytest.mark.filterwarnings('error')


def fill(config):
    """Store two entries of exchange_rate and one of other_region; return them."""
    return (in_app(config, services.exchange_rate, 'ALL', 'ONE'),
            in_app(config, services.exchange_rate, 'ALL', 'TWO'),
            in_app(config, services.other_region, 'kept'))


def test_invalidate_all_drops_every_entry_of_one_function():
    config = make_config(app_name='drop_all')
    one, two, kept = fill(config)
    assert fill(config) == (one, two, kept)
    config.begin()
    try:
        services.exchange_rate.invalidate_all()
    finally:
        config.end()
    again = fill(config)
    assert again[0] != one and again[1] != two
    assert again[2] == kept  # another function


def test_a_region_invalidates_every_function_it_holds():
    config = make_config(app_name='drop_region')
    one, two, kept = fill(config)
    get_region(config.registry, 'short_term').invalidate()
    again = fill(config)
    assert again[0] != one and again[1] != two
    assert again[2] == kept  # another region


def test_memory_regions_invalidate_the_current_app_only():
    mine = make_config(app_name='mine')
    theirs = make_config(app_name='theirs')
    fill(mine)
    their_values = fill(theirs)
    get_region(mine.registry, 'short_term').invalidate()
    assert fill(theirs) == their_values


def shared_store(store_type, url, prefix):
    return dict(cache__short_term__type=store_type, cache__short_term__url=url,
                cache__short_term__key_prefix=prefix,
                cache__short_term__secret='invalidate-secret-0123')


@pytest.mark.parametrize('store', ['redis', 'memcached'])
def test_invalidation_reaches_every_app_sharing_the_store(store, request):
    url = request.getfixturevalue('%s_url' % store)
    options = shared_store('ext:' + store, url, 'pbinv%s' % uuid.uuid4().hex[:12])
    one = make_config(app_name='one', **options)
    two = make_config(app_name='two', **options)
    first = fill(one)[:2]
    assert fill(two)[:2] == first  # shared through the store
    config = one
    config.begin()
    try:
        services.exchange_rate.invalidate_all()
    finally:
        config.end()
    second = fill(two)[:2]
    assert second[0] != first[0] and second[1] != first[1]
    assert fill(one)[:2] == second
    get_region(two.registry, 'short_term').invalidate()
    third = fill(one)[:2]
    assert third[0] != second[0] and third[1] != second[1]
