"""A frozen PostgreSQL server (connections open, no answers) stalls no request
for longer than ``socket_timeout``: sessions raise SessionBackendError and
cached functions compute.  The server is frozen by a TCP proxy that stops
forwarding, so the client's kernel keeps getting TCP acknowledgements."""
import logging
import time
import uuid

import pytest
import sqlalchemy as sa
from webtest import TestApp

from pyramid_beaker.session import BeakerSessionFactoryConfig
from pyramid_beaker.stores.base import SessionBackendError
from pyramid_beaker.stores.database import DEFAULT_SOCKET_TIMEOUT, dispose_shared_engines

from .scanfixtures import services
from .scanfixtures.apps import in_app, make_config
from .session_app import SECRET
from .session_app import make_config as session_config
from .session_stores import _drop_table
from .tcp_proxy import TCPProxy

TIMEOUT = 1.5
#: What a bounded wait may add to TIMEOUT: a new connection's connect_timeout
#: (libpq's minimum, 2 s) and scheduling on a busy machine.
SLACK = 3.5


@pytest.fixture
def frozen_postgres(postgres_url):
    """(a TCPProxy to the test PostgreSQL server, the URL through it)."""
    url = sa.engine.make_url(postgres_url)
    with TCPProxy(url.port or 5432, url.host) as proxy:
        yield proxy, url.set(host='127.0.0.1', port=proxy.port).render_as_string(
            hide_password=False)
    dispose_shared_engines()


def test_the_default_is_a_few_seconds():
    assert 1 <= DEFAULT_SOCKET_TIMEOUT <= 10


def _timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except Exception as exc:  # returned for the test to judge
        return exc, time.monotonic() - started


def session_app(url, table):
    factory = BeakerSessionFactoryConfig(type='ext:database', url=url, table_name=table,
                                         secret=SECRET, socket_timeout=TIMEOUT)
    config = session_config(factory)
    config.include('pyramid_beaker')

    def down(exc, request):
        request.response.status = 503
        return {'down': str(exc)}

    config.add_view(down, context=SessionBackendError, renderer='json')
    return factory, TestApp(config.make_wsgi_app())


@pytest.mark.parametrize('when', ['pooled connection', 'new connection'])
def test_session_requests_on_a_frozen_server_end_within_the_timeout(
        frozen_postgres, postgres_url, when):
    proxy, url = frozen_postgres
    table = 'pbtest_%s' % uuid.uuid4().hex[:12]
    factory, app = session_app(url, table)
    try:
        app.get('/set', {'user': 'alice'})
        app.get('/get')  # loads have a pooled connection of their own now
        if when == 'new connection':
            factory.store.engine.dispose()
            factory.store.autocommit.dispose()
        proxy.freeze()
        response, elapsed = _timed(lambda: app.get('/get', status=503))
        assert 'no answer within 1.5 s' in response.json['down'] or when == 'new connection'
        assert elapsed < TIMEOUT + SLACK
        response, elapsed = _timed(lambda: app.get('/set', {'more': '1'}, status=503))
        assert elapsed < TIMEOUT + SLACK
        proxy.thaw()
        assert app.get('/get').json['data'] == {'user': 'alice'}
    finally:
        proxy.thaw()
        factory.store.close()
        _drop_table(postgres_url, table)


def test_cached_functions_on_a_frozen_server_compute_within_the_timeout(
        frozen_postgres, postgres_url, caplog):
    caplog.set_level(logging.WARNING, logger='pyramid_beaker')
    proxy, url = frozen_postgres
    table = 'pbtest_%s' % uuid.uuid4().hex[:12]
    config = make_config(
        app_name='frozen-postgres', cache__short_term__type='ext:database',
        cache__short_term__url=url, cache__short_term__table_name=table,
        cache__short_term__socket_timeout=str(TIMEOUT),
        cache__short_term__secret='database-secret-0123')
    try:
        stored = in_app(config, services.exchange_rate, 'EUR', 'DKK')
        assert in_app(config, services.exchange_rate, 'EUR', 'DKK') == stored
        proxy.freeze()
        fresh, elapsed = _timed(lambda: in_app(config, services.exchange_rate, 'EUR', 'DKK'))
        assert isinstance(fresh, str) and fresh != stored  # computed without the cache
        assert elapsed < 2 * TIMEOUT + SLACK  # a read, then a write, each bounded
    finally:
        proxy.thaw()
        dispose_shared_engines()
        _drop_table(postgres_url, table)
