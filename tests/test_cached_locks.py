"""Creation locks: results that will not be stored never queue callers, and
PostgreSQL's lock does not starve the connection pool."""
import threading
import time
import uuid

import pytest
from pyramid.request import Request

from pyramid_beaker import cached_region

from .scanfixtures import services
from .scanfixtures.apps import in_app, make_config

pytestmark = pytest.mark.filterwarnings('error')


def together(count, target, timeout=30):
    """Run ``target(n)`` in ``count`` threads released at once; return results."""
    barrier = threading.Barrier(count, timeout=10)
    results = [None] * count

    def run(index):
        barrier.wait()
        results[index] = target(index)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads)
    return results


def redis_options(redis_url):
    return dict(cache__short_term__type='ext:redis', cache__short_term__url=redis_url,
                cache__short_term__key_prefix='pblock:%s:' % uuid.uuid4().hex,
                cache__short_term__secret='lock-secret-0123')


@pytest.mark.parametrize('store', ['memory', 'redis'])
def test_results_refused_by_should_cache_do_not_queue_callers(store, request):
    options = redis_options(request.getfixturevalue('redis_url')) if store == 'redis' else {}
    config = make_config(app_name='unstored', **options)
    # A first wave waits for one computation at most, then runs side by side.
    services.RUNNING['most'] = 0
    together(6, lambda n: in_app(config, services.never_stored, 0.3))
    assert services.RUNNING['most'] >= 3  # not one by one
    # Later callers know the result is not stored: none waits.
    services.RUNNING['most'] = 0
    together(6, lambda n: in_app(config, services.never_stored, 0.3))
    assert services.RUNNING['most'] >= 5


def test_views_that_use_the_session_do_not_queue_requests():
    from pyramid.config import Configurator
    from pyramid.response import Response

    running = {'now': 0, 'most': 0}
    lock = threading.Lock()

    @cached_region('short_term')
    def remembers(request):
        request.session['seen'] = True  # uses the session: never stored
        with lock:
            running['now'] += 1
            running['most'] = max(running['most'], running['now'])
        time.sleep(0.3)
        with lock:
            running['now'] -= 1
        return Response('ok')

    with Configurator(settings=dict(make_config().registry.settings,
                                    **{'session.type': 'memory',
                                       'session.secret': 'view-lock-secret-0123'})) as config:
        config.include('pyramid_beaker')
        config.add_route('remembers', '/remembers')
        config.add_view(remembers, route_name='remembers')
        config.add_cached_function(remembers)
    app = config.make_wsgi_app()
    together(6, lambda n: Request.blank('/remembers').get_response(app).status_code)
    assert running['most'] >= 3


@pytest.mark.parametrize('database', ['postgres', 'mariadb'])
@pytest.mark.parametrize('pool_size', ['5', '1'])
def test_database_locks_do_not_starve_a_small_pool(database, pool_size, request):
    table = 'pbcache_%s' % uuid.uuid4().hex[:12]
    url = request.getfixturevalue(database + '_url')
    config = make_config(app_name='pg', cache__short_term__type='ext:database',
                         cache__short_term__url=url,
                         cache__short_term__table_name=table,
                         cache__short_term__secret='pg-lock-secret-0123',
                         **{'cache.short_term.sa.pool_size': pool_size,
                            'cache.short_term.sa.max_overflow': '0',
                            'cache.short_term.sa.pool_timeout': '3'})
    before = services.CALLS['slow_square']
    started = time.monotonic()
    results = together(16, lambda n: in_app(config, services.slow_square, 16, 0.5))
    elapsed = time.monotonic() - started
    try:
        assert results == [256] * 16
        assert services.CALLS['slow_square'] - before == 1
        assert elapsed < 2.5, 'took %.1f s for one 0.5 s computation' % elapsed
    finally:
        binding = config.registry.pyramid_beaker_cached_functions[
            services.slow_square.__cached_region__]
        manager = binding.manager
        manager.table.drop(manager.engine)
