"""Redis behind Sentinel: sessions and cache regions through a real failover.

A primary, a replica and three ``redis-server --sentinel`` processes run on
free loopback ports for this module; ``SENTINEL FAILOVER`` swaps the roles
while requests keep writing.
"""
import tempfile
import threading
import time
import uuid

import pytest
from pyramid.exceptions import ConfigurationError
from webtest import TestApp

from pyramid_beaker import session_factory_from_settings
from pyramid_beaker.stores.redis import RedisNamespaceManager

from .backend_faults import require_redis_server
from .helpers import COOKIE, app_maker, signed_cache
from .redis_servers import SERVICE, SentinelGroup
from .session_app import SECRET


@pytest.fixture(scope='module')
def group():
    require_redis_server()
    with tempfile.TemporaryDirectory(prefix='pyramid_beaker-sentinel-') as directory:
        with SentinelGroup(directory) as started:
            yield started


@pytest.fixture
def apps():
    with app_maker() as make:
        yield make


@pytest.mark.parametrize('options, message', [
    ({'sentinels': '127.0.0.1:26379'},
     '"session.service_name" is required with "session.sentinels"'),
    ({'sentinels': '127.0.0.1:26379 127.0.0.1:x', 'service_name': 'm'},
     '"session.sentinels" must be host:port with a numeric port, not \'127.0.0.1:x\''),
    ({'sentinels': '127.0.0.1:26379', 'service_name': 'm', 'url': 'redis://h:6379/0'},
     '"session.url" = \'redis://h:6379/0\' names a server, but the Sentinels name the '
     'primary'),
    ({'service_name': 'm'},
     '"session.url" is required for "session.type" = ext:redis '
     '\\(or "session.sentinels" or "session.client"\\)'),
])
def test_bad_sentinel_settings_fail_at_startup(options, message):
    settings = {'session.type': 'redis', 'session.secret': SECRET}
    settings.update(('session.' + name, value) for name, value in options.items())
    with pytest.raises(ConfigurationError, match=message):
        session_factory_from_settings(settings)


def test_sentinel_settings_reach_the_client(group):
    factory = session_factory_from_settings({
        'session.type': 'redis', 'session.secret': SECRET,
        'session.sentinels': group.addresses, 'session.service_name': SERVICE,
        'session.url': 'redis:///2'})
    try:
        assert factory.options['sentinels'] == [
            ('127.0.0.1', sentinel.port) for sentinel in group.sentinels]
        client = factory.store.client
        assert client.ping()
        assert client.connection_pool.connection_kwargs['db'] == 2
        port = client.connection_pool.get_master_address()[1]
        assert port == group.primary_port()
    finally:
        factory.store.close()


def _write_until(shared, stop, acked, errors):
    """Add key w<i> to this thread's session, one request each, until ``stop``."""
    app = TestApp(shared.app)
    i = 0
    while not stop.is_set():
        key = 'w%d' % i
        began = time.monotonic()
        try:
            app.get('/set', {key: '1'})
        except Exception as exc:  # recorded with its span; the test judges it
            errors.append((began, time.monotonic(), exc))
        else:
            acked.append((key, (began, time.monotonic())))
        i += 1
    acked.append(('cookie', app.cookies[COOKIE]))


def test_sessions_survive_a_failover_under_load(group, apps):
    app = apps(type='ext:redis', sentinels=group.addresses, service_name=SERVICE,
               key_prefix='sentinel:%s:' % uuid.uuid4().hex[:8], socket_timeout=2)
    stop = threading.Event()
    writers = [([], []) for _ in range(4)]
    threads = [threading.Thread(target=_write_until, args=(app, stop, acked, errors))
               for acked, errors in writers]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        before = group.primary_port()
        started = time.monotonic()
        after = group.failover()
        done = time.monotonic()
        # More load on the new primary: every writer acknowledges a few
        # requests begun after the failover (bounded wait).
        deadline = done + 30
        while time.monotonic() < deadline and not all(
                sum(1 for _, span in acked if span[0] > done) >= 3 for acked, _ in writers):
            time.sleep(0.05)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert after != before
    lost_count = acked_count = 0
    for acked, errors in writers:
        cookie = acked.pop()[1]
        times = dict(acked)
        # The client follows the Sentinels; only a request that overlapped the
        # failover can fail: one begun inside it may run out of retries while
        # a Sentinel still names the old primary, and fail just after it.
        assert all(began <= done and ended >= started for began, ended, _ in errors), errors
        assert len(errors) <= 2, errors
        app.reset()
        app.set_cookie(COOKIE, cookie)
        stored = set(app.get('/get').json['data'])
        lost = [key for key in times if key not in stored]
        # Only writes the old primary took after its replica was promoted and
        # before Sentinel made it a replica are lost (replication is
        # asynchronous); everything before and after is kept.
        assert all(times[key][0] <= done and times[key][1] >= started
                   for key in lost), lost
        assert sum(1 for began, _ in times.values() if began > done) > 0  # load went on
        assert sum(1 for _, ended in times.values() if ended < started) > 0
        lost_count += len(lost)
        acked_count += len(times)
    print('\nSentinel failover: %.1f s until the old primary followed the new one; '
          '%d of %d acknowledged writes lost in that window'
          % (done - started, lost_count, acked_count))
    assert group.primary_port() == after


def test_cached_values_survive_a_failover(group):
    prefix = 'sentinel:%s:' % uuid.uuid4().hex[:8]
    cache = signed_cache(
        'pyramid_beaker.redis', 'sentinel-ns', key_prefix=prefix, expire=300,
        sentinels=[('127.0.0.1', s.port) for s in group.sentinels], service_name=SERVICE)
    assert isinstance(cache.namespace, RedisNamespaceManager)
    for n in range(20):
        cache.put('k%d' % n, n)
    primary = group.server(group.primary_port()).client()
    assert primary.execute_command('WAIT', 1, 5000) == 1  # replicated
    primary.close()
    group.failover()
    assert [cache.get('k%d' % n) for n in range(20)] == list(range(20))
    cache.put('after', 'new')
    assert cache.get('after') == 'new'
    calls = []
    assert cache.get('made', createfunc=lambda: calls.append(1) or 'made') == 'made'
    assert cache.get('made', createfunc=lambda: calls.append(1) or 'again') == 'made'
    assert calls == [1]
