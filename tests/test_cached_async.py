"""``async def`` functions: ``await f(x)`` is cached; concurrent misses compute once."""
import asyncio
import uuid

import pytest

from .scanfixtures import services
from .scanfixtures.apps import make_config

pytestmark = pytest.mark.filterwarnings('error')


def run_in_app(config, coroutine):
    config.begin()
    try:
        return asyncio.run(asyncio.wait_for(coroutine, timeout=20))
    finally:
        config.end()


async def twice_then_together(number):
    first = await services.async_square(number, 0.01)
    second = await services.async_square(number, 0.01)
    together = await asyncio.gather(
        *(services.async_square(number + 1, 0.2) for _ in range(6)))
    return first, second, together


def check(config, number):
    before = services.CALLS['async_square']
    first, second, together = run_in_app(config, twice_then_together(number))
    assert (first, second) == (number * number, number * number)
    assert together == [(number + 1) ** 2] * 6
    assert services.CALLS['async_square'] - before == 2


def test_a_coroutine_is_cached_on_a_memory_region():
    check(make_config(app_name='async'), 7)


def test_a_coroutine_is_cached_on_redis(redis_url):
    prefix = 'pbtest:%s:' % uuid.uuid4().hex
    config = make_config(app_name='async_redis', cache__short_term__type='ext:redis',
                         cache__short_term__url=redis_url,
                         cache__short_term__key_prefix=prefix,
                         cache__short_term__secret='async-secret-0123')
    check(config, 11)
    other = make_config(app_name='async_redis_2', cache__short_term__type='ext:redis',
                        cache__short_term__url=redis_url,
                        cache__short_term__key_prefix=prefix,
                        cache__short_term__secret='async-secret-0123')
    before = services.CALLS['async_square']
    assert run_in_app(other, services.async_square(11, 0.01)) == 121
    assert services.CALLS['async_square'] == before  # found in the shared store


def test_refresh_and_invalidate_of_a_coroutine():
    config = make_config(app_name='async_refresh')
    before = services.CALLS['async_square']
    assert run_in_app(config, services.async_square(3, 0)) == 9
    assert run_in_app(config, services.async_square.refresh(3, 0)) == 9
    config.begin()
    try:
        services.async_square.invalidate(3, 0)
    finally:
        config.end()
    assert run_in_app(config, services.async_square(3, 0)) == 9
    assert services.CALLS['async_square'] - before == 3
