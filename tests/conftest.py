"""Shared fixtures: a Configurator per test and the real servers' addresses.

Server addresses come from the environment, with the defaults of the
development machine.  A server that cannot be reached skips its tests,
except under CI (``CI`` set), where it fails them.
"""
import os
import socket
import sys
import tempfile

import pytest
from pyramid import testing

SECRET = 'test-secret-0123456789'


def _reachable(host, port, timeout=1.0):
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _require(name, host, port):
    if not _reachable(host, port):
        message = '%s is not reachable on %s:%s' % (name, host, port)
        if os.environ.get('CI'):
            pytest.fail(message + ' (CI is set: backend tests must run)')
        pytest.skip(message)


@pytest.fixture(scope='session', autouse=True)
def _close_shared_connections():
    """Close the connections cache regions share, once every test has run."""
    yield
    for module, closer in (('pyramid_beaker.stores.database', 'dispose_shared_engines'),
                           ('pyramid_beaker.stores.memcached', 'close_shared_clients')):
        loaded = sys.modules.get(module)
        if loaded is not None:
            getattr(loaded, closer)()


@pytest.fixture
def config():
    """A real Configurator with conflict detection (autocommit off)."""
    config = testing.setUp(autocommit=False, settings={})
    try:
        yield config
    finally:
        testing.tearDown()


@pytest.fixture
def factories():
    """Make session factories with ``factories(**options)``; their stores
    are closed after the test."""
    from pyramid_beaker.session import BeakerSessionFactoryConfig

    made = []

    def make(**options):
        made.append(BeakerSessionFactoryConfig(**options))
        return made[-1]

    yield make
    for factory in made:
        factory.store.close()


@pytest.fixture
def tmp_dir():
    with tempfile.TemporaryDirectory(prefix='pyramid_beaker-') as path:
        yield path


@pytest.fixture(scope='session')
def redis_url():
    url = os.environ.get('PYRAMID_BEAKER_REDIS_URL', 'redis://127.0.0.1:6379/15')
    hostport = url.split('://', 1)[1].split('/', 1)[0].rsplit('@', 1)[-1]
    host, _, port = hostport.partition(':')
    _require('Redis', host, port or 6379)
    return url


@pytest.fixture(scope='session')
def memcached_url():
    url = os.environ.get('PYRAMID_BEAKER_MEMCACHED', '127.0.0.1:11211')
    host, _, port = url.partition(':')
    _require('memcached', host, port or 11211)
    return url


@pytest.fixture(scope='session')
def mariadb_url():
    url = os.environ.get(
        'PYRAMID_BEAKER_MARIADB_URL', 'mysql+pymysql://root@127.0.0.1:3306/test')
    hostport = url.split('@', 1)[1].split('/', 1)[0]
    host, _, port = hostport.partition(':')
    _require('MariaDB', host, port or 3306)
    return url


@pytest.fixture(scope='session')
def postgres_url():
    url = os.environ.get(
        'PYRAMID_BEAKER_POSTGRES_URL',
        'postgresql+psycopg://postgres@127.0.0.1:5432/test')
    hostport = url.split('@', 1)[1].split('/', 1)[0]
    host, _, port = hostport.partition(':')
    _require('PostgreSQL', host, port or 5432)
    return url
