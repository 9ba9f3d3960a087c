"""Backends describe themselves: one descriptor per store module.

Every built-in type is found through its module's ``BACKEND``, and a
backend from another package (one module plus one Beaker entry point) works
for sessions, cache regions and ``@cached_region`` without touching this
package.
"""
import os
import subprocess
import sys

import pytest
from beaker import cache as beaker_cache

from pyramid_beaker import stores
from pyramid_beaker.stores.base import Backend

HERE = os.path.dirname(os.path.abspath(__file__))

BUILTIN = {
    # name: (aliases, location, process_local, holds cache regions)
    'memory': ((), (), True, True),
    'file': ((), ('data_dir',), False, True),
    'dbm': ((), ('data_dir',), False, True),
    'cookie': ((), (), False, False),
    'ext:redis': (('redis',), ('url', 'sentinels', 'client'), False, True),
    'ext:memcached': (('memcached',), ('url', 'client'), False, True),
    'ext:rediscluster': (('rediscluster',), ('url', 'urls', 'client'), False, True),
    'ext:database': (('database',), ('url', 'bind'), False, True),
}


@pytest.mark.parametrize('name', sorted(BUILTIN))
def test_each_builtin_type_has_one_descriptor(name):
    aliases, location, process_local, regions = BUILTIN[name]
    backend, found = stores.find_backend(name)
    assert isinstance(backend, Backend)
    assert found == name and backend.name == name
    assert backend.aliases == aliases
    for alias in aliases:
        assert stores.find_backend(alias) == (backend, name)
    assert backend.location == location
    assert backend.process_local is process_local
    assert backend.session_store is not None
    module = sys.modules[backend.session_store.__module__]
    assert module.BACKEND is backend
    if regions:
        assert beaker_cache.clsmap[backend.beaker_name] is backend.namespace_manager
        assert stores.backend_of_manager(backend.beaker_name) == (backend, name)
    else:
        assert backend.namespace_manager is None
    assert name in stores.known_types()
    assert (name in stores.known_types(regions=True)) is regions


def test_beaker_types_are_one_descriptor_too():
    backend, found = stores.find_backend('beaker:file')
    assert found == 'beaker:file'
    assert backend.beaker_type(found) == 'file'
    assert backend.location_of(found) == ('data_dir',)
    assert stores.backend_of_manager('file') == (backend, 'beaker:file')
    assert not backend.process_local_of('beaker:file')
    assert backend.process_local_of('beaker:memory')
    with pytest.raises(KeyError):
        stores.find_backend('beaker:nosuch')


def test_unknown_names_are_refused():
    for name in ('', 'nosuch', 'ext:nosuch', 'base', 'pyramid_beaker.memory'):
        with pytest.raises(KeyError):
            stores.find_backend(name)


# -- a backend from another package ----------------------------------------------

PLUGIN = '''
"""A process-local store named ext:tiny, from another package."""
from pyramid_beaker.coerce import as_str
from pyramid_beaker.stores.base import Backend
from pyramid_beaker.stores.memory import MemoryNamespaceManager, MemorySessionStore

connections = []


class TinySessionStore(MemorySessionStore):
    name = 'ext:tiny'

    def __init__(self, options, codec):
        super().__init__(options, codec)
        self.client = BACKEND.connect(options)


class TinyNamespaceManager(MemoryNamespaceManager):
    name = 'ext:tiny'


def connect(options):
    connections.append(options['shelf'])
    return options['shelf']


BACKEND = Backend(
    'ext:tiny',
    aliases=('tiny',),
    session_store=TinySessionStore,
    namespace_manager=TinyNamespaceManager,
    beaker_name='tinystore.tiny',
    location=('shelf',),
    process_local=True,
    signs_sessions=False,
    signs_entries=False,
    options={'shelf': as_str},
    connect=connect,
)
'''

APP = '''
import sys

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from webtest import TestApp

from pyramid_beaker import cached_region

import tinystore

calls = []


@cached_region('tiny')
def square(n):
    calls.append(n)
    return n * n


def make_app(settings):
    with Configurator(settings=settings) as config:
        config.include('pyramid_beaker')
        config.add_cached_function(square)

        def count(request):
            request.session['n'] = request.session.get('n', 0) + 1
            return {'n': request.session['n'], 'square': square(4)}

        config.add_route('count', '/')
        config.add_view(count, route_name='count', renderer='json')
    return config.make_wsgi_app()


from pyramid_beaker import session_factory_from_settings, set_cache_regions_from_settings

base = {'session.type': 'tiny', 'session.secret': 's', 'cache.regions': 'tiny',
        'cache.tiny.type': 'ext:tiny'}
for bad in ({}, {'session.shelf': 3}):
    try:
        session_factory_from_settings(dict(base, **bad))
    except ConfigurationError as exc:
        print('session:', exc)
try:
    set_cache_regions_from_settings(base)
except ConfigurationError as exc:
    print('region:', exc)
app = TestApp(make_app(dict(base, **{'session.shelf': 'top', 'cache.tiny.shelf': 'top'})))
print('counts:', app.get('/').json['n'], app.get('/').json['n'], app.get('/').json['square'])
print('computed:', calls)
print('connections:', tinystore.connections)
registry = app.app.registry
namespace = registry.introspector.get('beaker cached functions', '__main__.square')
print('namespace:', namespace['namespace'])
print('store:', type(registry.queryUtility(__import__(
    'pyramid.interfaces').interfaces.ISessionFactory).store).__name__)
'''


@pytest.fixture
def plugin_path(tmp_dir):
    """A directory holding ``tinystore`` installed as a distribution."""
    with open(os.path.join(tmp_dir, 'tinystore.py'), 'w') as f:
        f.write(PLUGIN)
    info = os.path.join(tmp_dir, 'tinystore-1.0.dist-info')
    os.mkdir(info)
    with open(os.path.join(info, 'METADATA'), 'w') as f:
        f.write('Metadata-Version: 2.1\nName: tinystore\nVersion: 1.0\n')
    with open(os.path.join(info, 'entry_points.txt'), 'w') as f:
        f.write('[beaker.backends]\ntinystore.tiny = tinystore:TinyNamespaceManager\n')
    return tmp_dir


def test_a_backend_from_another_package_is_one_module_and_one_entry_point(plugin_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([plugin_path, os.path.dirname(HERE)]))
    result = subprocess.run([sys.executable, '-c', APP], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        'session: "session.shelf" is required for "session.type" = ext:tiny',
        'session: "session.shelf" must be a string, not 3',
        'region: "cache.tiny.shelf" is required for "cache.tiny.type" = ext:tiny',
        'counts: 1 2 16',
        'computed: [4]',
        "connections: ['top']",
        'namespace: tiny:__main__.square@app1',
        'store: TinySessionStore',
    ], result.stderr
