"""Several memcached servers in one ``url``: keys spread, one server killed and restarted.

Three private memcached processes on free loopback ports, shared by the
module's tests (each test restarts any server it kills).
"""
import time
import uuid

import pytest
from pymemcache.client.base import Client
from pyramid.interfaces import ISessionFactory

from pyramid_beaker.stores.memcached import ServerPool

from .backend_faults import MemcachedServer, require_program
from .helpers import COOKIE, app_maker, cookie_id, signed_cache


@pytest.fixture(scope='module')
def servers():
    require_program('memcached')
    started = []
    try:
        for _ in range(3):
            started.append(MemcachedServer().start())
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def pool_url(servers):
    for server in servers:  # a test that failed may have left one down
        if server.process is None:
            server.start()
    return ';'.join(server.url for server in servers)


@pytest.fixture
def apps():
    with app_maker() as make:
        yield make


def holder(servers, key):
    """The running server that holds ``key``, read with a plain client per server."""
    found = []
    for server in servers:
        if server.process is None:
            continue
        client = Client(('127.0.0.1', server.port), connect_timeout=1, timeout=1)
        try:
            if client.get(key) is not None:
                found.append(server)
        finally:
            client.close()
    assert len(found) <= 1, 'a key on two servers'
    return found[0] if found else None


def new_sessions(app, count):
    """Create ``count`` sessions holding ``n``; return their cookies."""
    cookies = []
    for n in range(count):
        app.reset()
        app.get('/set', {'n': str(n)})
        cookies.append(app.cookies[COOKIE])
    return cookies


def read(app, cookie):
    app.reset()
    app.set_cookie(COOKIE, cookie)
    return app.get('/get').json['data']


def test_sessions_spread_over_the_servers(servers, pool_url, apps):
    prefix = 'pool:%s:' % uuid.uuid4().hex[:8]
    app = apps(type='ext:memcached', url=pool_url, key_prefix=prefix)
    assert isinstance(app.app.registry.getUtility(ISessionFactory).store.client, ServerPool)
    cookies = new_sessions(app, 30)
    holders = [holder(servers, prefix + cookie_id(cookie)) for cookie in cookies]
    assert None not in holders
    assert {server.port for server in holders} == {server.port for server in servers}
    for n, cookie in enumerate(cookies):
        assert read(app, cookie) == {'n': str(n)}


def test_a_killed_server_loses_only_its_sessions_and_comes_back(servers, pool_url, apps):
    prefix = 'pool:%s:' % uuid.uuid4().hex[:8]
    app = apps(type='ext:memcached', url=pool_url, key_prefix=prefix, socket_timeout=1)
    app.app.registry.getUtility(ISessionFactory).store.client.retry_after = 0.5
    cookies = new_sessions(app, 30)
    homes = {cookie: holder(servers, prefix + cookie_id(cookie)).port for cookie in cookies}
    lost = servers[1]
    lost.stop()
    for n, cookie in enumerate(cookies):
        data = read(app, cookie)  # never an error
        if homes[cookie] == lost.port:
            assert data == {}  # a fresh session
        else:
            assert data == {'n': str(n)}
    # New sessions and changes keep working on the two servers left.
    survivors = new_sessions(app, 10)
    for n, cookie in enumerate(survivors):
        assert read(app, cookie) == {'n': str(n)}
        assert holder(servers, prefix + cookie_id(cookie)).port != lost.port

    lost.start()  # restarted, empty, on the same port
    time.sleep(0.6)  # past retry_after: the pool tries it again
    for n, cookie in enumerate(cookies):
        data = read(app, cookie)
        assert data == ({} if homes[cookie] == lost.port else {'n': str(n)})
    moved_back = new_sessions(app, 20)
    assert lost.port in {holder(servers, prefix + cookie_id(cookie)).port
                         for cookie in moved_back}


def test_every_server_down_is_an_error_not_an_empty_session(servers, pool_url, apps):
    prefix = 'pool:%s:' % uuid.uuid4().hex[:8]
    app = apps(type='ext:memcached', url=pool_url, key_prefix=prefix, socket_timeout=1)
    cookie = new_sessions(app, 1)[0]
    for server in servers:
        server.stop()
    try:
        app.reset()
        app.set_cookie(COOKIE, cookie)
        with pytest.raises(Exception, match='memcached session store at .* failed'):
            app.get('/get')
    finally:
        for server in servers:
            server.start()


def test_a_cache_region_on_a_pool_survives_a_killed_server(servers, pool_url):
    prefix = 'pool:%s:' % uuid.uuid4().hex[:8]
    cache = signed_cache('pyramid_beaker.memcached', url=pool_url, key_prefix=prefix,
                         expire=60)
    cache.namespace.client.retry_after = 0.5
    for n in range(20):
        cache.put('k%d' % n, n)
    servers[2].stop()
    calls = []
    values = [cache.get('k%d' % n, createfunc=lambda n=n: calls.append(n) or -n)
              for n in range(20)]
    assert 0 < len(calls) < 20  # only the lost server's keys are computed again
    assert values == [-n if n in calls else n for n in range(20)]
    servers[2].start()
