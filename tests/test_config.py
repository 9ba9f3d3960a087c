"""Configuration: includeme, the directives, conflicts, overrides, introspection.

Every test runs a real Configurator with conflict detection on (the
``config`` fixture, or ``Configurator()``), and apps are driven with WebTest.
"""
import json
import logging
import os
import subprocess
import sys

import beaker.cache
import pytest
import webtest
from pyramid import testing
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationConflictError, ConfigurationError
from pyramid.interfaces import ISessionFactory
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory

from pyramid_beaker.cache import get_region, regions
from pyramid_beaker.stores.memory import MemoryNamespaceManager

from .conftest import SECRET

CACHE_SECRET = 'cache-secret-0123456789'
SESSION_SETTINGS = {'session.secret': SECRET}


def session_view(request):
    """Store ``?value=`` in the session when given; return what is stored."""
    if 'value' in request.params:
        request.session['value'] = request.params['value']
    return Response(str(request.session.get('value')))


def make_app(config):
    config.add_route('session', '/session')
    config.add_view(session_view, route_name='session')
    return webtest.TestApp(config.make_wsgi_app())


def region_intr(config, name):
    return config.registry.introspector.get('beaker cache regions', name)


def session_intr(config):
    return config.registry.introspector.get('session factory', None)


# -- includeme ---------------------------------------------------------------

def test_include_sets_up_session_and_regions_from_settings(config):
    config.add_settings({
        'session.secret': SECRET,
        'session.key': 'app_session',
        'cache.regions': 'default_term, second, short_term',
        'cache.type': 'memory',
        'cache.second.expire': '1',
        'cache.short_term.expire': '60',
    })
    config.include('pyramid_beaker')
    app = make_app(config)
    app.get('/session?value=hello')
    assert app.cookies['app_session']
    assert app.get('/session').text == 'hello'
    found = regions(config.registry)
    assert sorted(found) == ['default_term', 'second', 'short_term']
    assert found['second'].expire == 1
    assert found['default_term'].options['type'] == 'pyramid_beaker.memory'
    assert beaker.cache.cache_regions['second']['expire'] == 1


def test_include_adds_the_directives(config):
    for name in ('add_beaker_session', 'add_cache_region', 'add_cached_function'):
        assert not hasattr(config, name)
    config.include('pyramid_beaker')
    for name in ('add_beaker_session', 'add_cache_region', 'add_cached_function'):
        assert callable(getattr(config, name))


def test_settings_added_after_include_count(config):
    config.include('pyramid_beaker')
    config.add_settings({'session.secret': SECRET, 'cache.regions': 'late',
                         'cache.late.expire': '42'})
    app = make_app(config)
    assert get_region(config.registry, 'late').expire == 42
    app.get('/session?value=v')
    assert app.get('/session').text == 'v'


def test_beaker_prefixed_settings_work_too(config):
    config.add_settings({'beaker.session.secret': SECRET,
                         'beaker.cache.regions': 'aliased',
                         'beaker.cache.expire': '11'})
    config.include('pyramid_beaker')
    app = make_app(config)
    assert get_region(config.registry, 'aliased').expire == 11
    app.get('/session?value=v')
    assert app.get('/session').text == 'v'


def test_no_session_settings_means_no_session_factory(config):
    config.add_settings({'cache.regions': 'only_cache'})
    config.include('pyramid_beaker')
    app = make_app(config)
    assert config.registry.queryUtility(ISessionFactory) is None
    with pytest.raises(AttributeError, match='No session factory registered'):
        app.get('/session')
    assert get_region(config.registry, 'only_cache') is not None


def test_pyramid_includes_setting_works_the_same():
    settings = {'pyramid.includes': 'pyramid_beaker',
                'session.secret': SECRET, 'cache.regions': 'from_ini'}
    config = Configurator(settings=settings)
    config.add_settings({'cache.from_ini.expire': '7'})
    app = make_app(config)
    app.get('/session?value=ini')
    assert app.get('/session').text == 'ini'
    assert get_region(config.registry, 'from_ini').expire == 7


def test_include_works_with_autocommit():
    config = testing.setUp(settings={'cache.regions': 'autocommitted',
                                     'session.secret': SECRET})
    try:
        config.include('pyramid_beaker')
        assert get_region(config.registry, 'autocommitted').expire == 60
        assert config.registry.queryUtility(ISessionFactory) is not None
    finally:
        testing.tearDown()


def test_region_listed_twice_fails_at_commit(config):
    config.add_settings({'cache.regions': 'a, b, a'})
    config.include('pyramid_beaker')
    with pytest.raises(ConfigurationError,
                       match='"cache.regions" lists the region \'a\' twice'):
        config.commit()


# -- add_beaker_session ------------------------------------------------------

def test_add_beaker_session_overrides_win_over_settings(config):
    config.add_settings({'session.secret': SECRET, 'session.timeout': '60',
                         'session.key': 'from_settings'})
    config.include('pyramid_beaker')
    config.add_beaker_session(timeout=1800, key='from_keyword')
    app = make_app(config)
    app.get('/session?value=x')
    assert 'from_keyword' in app.cookies
    assert session_intr(config)['timeout'] == 1800
    assert session_intr(config)['prefix'] == 'session.'


def test_add_beaker_session_reads_settings_added_after_the_call(config):
    config.include('pyramid_beaker')
    config.add_beaker_session(prefix='mysession.')
    config.add_settings({'mysession.secret': SECRET, 'mysession.timeout': '900'})
    app = make_app(config)
    app.get('/session?value=late')
    assert app.get('/session').text == 'late'
    assert session_intr(config)['timeout'] == 900


def test_add_beaker_session_twice_conflicts(config):
    config.add_settings(SESSION_SETTINGS)
    config.include('pyramid_beaker')
    config.add_beaker_session()
    config.add_beaker_session(timeout=60)
    with pytest.raises(ConfigurationConflictError,
                       match=r'For: pyramid.interfaces.ISessionFactory\n'
                             r'.*\n +config.add_beaker_session\(\)\n'
                             r'.*\n +config.add_beaker_session\(timeout=60\)'):
        config.commit()


def test_add_beaker_session_conflicts_with_set_session_factory(config):
    config.add_settings(SESSION_SETTINGS)
    config.include('pyramid_beaker')
    config.add_beaker_session()
    config.set_session_factory(SignedCookieSessionFactory(SECRET))
    with pytest.raises(ConfigurationConflictError,
                       match=r'ISessionFactory\n.*test_config.py:\n'
                             r' +config.add_beaker_session\(\)\n.*\n'
                             r' +config.set_session_factory'):
        config.commit()


def test_app_set_session_factory_overrides_settings_session(config):
    config.add_settings(SESSION_SETTINGS)
    config.include('pyramid_beaker')
    config.set_session_factory(SignedCookieSessionFactory(SECRET))
    app = make_app(config)
    app.get('/session?value=signed')
    assert 'session' in app.cookies  # SignedCookieSessionFactory's cookie
    assert 'beaker.session.id' not in app.cookies


def test_app_add_beaker_session_overrides_settings_session(config):
    config.add_settings(SESSION_SETTINGS)
    config.include('pyramid_beaker')
    config.add_beaker_session(key='explicit')
    app = make_app(config)
    app.get('/session?value=e')
    assert list(app.cookies) == ['explicit']


def _include_with_session(config):
    config.include('pyramid_beaker')
    config.add_beaker_session(key='from_include')


def test_app_set_session_factory_overrides_included_add_beaker_session(config):
    config.add_settings(SESSION_SETTINGS)
    config.include(_include_with_session)
    config.set_session_factory(SignedCookieSessionFactory(SECRET))
    app = make_app(config)
    app.get('/session?value=v')
    assert list(app.cookies) == ['session']


def test_included_add_beaker_session_overrides_nested_settings_session(config):
    config.add_settings(SESSION_SETTINGS)
    config.include(_include_with_session)
    app = make_app(config)
    app.get('/session?value=v')
    assert list(app.cookies) == ['from_include']


def test_session_introspectable_masks_secrets(config):
    config.add_settings({'session.secret': SECRET,
                         'session.validate_key': 'validate-0123456789'})
    config.include('pyramid_beaker')
    config.commit()
    intr = session_intr(config)
    assert intr['secret'] == '********'
    assert intr['validate_key'] == '********'
    assert SECRET not in repr(dict(intr))
    assert intr['factory'] is config.registry.queryUtility(ISessionFactory)
    assert intr.type_name == 'beaker session factory'


def test_session_errors_fail_at_commit_naming_the_key(config):
    config.add_settings({'session.secret': SECRET, 'session.timeout': 'abc'})
    config.include('pyramid_beaker')
    with pytest.raises(ConfigurationError,
                       match='"session.timeout" must be .*not \'abc\''):
        config.commit()


def test_session_keyword_errors_fail_at_the_call(config):
    config.include('pyramid_beaker')
    with pytest.raises(ConfigurationError,
                       match='"httponly" must be true or false, not \'ture\''):
        config.add_beaker_session(httponly='ture')
    with pytest.raises(ConfigurationError,
                       match='"prefix" must be a settings prefix ending in'):
        config.add_beaker_session(prefix='session')


# -- add_cache_region --------------------------------------------------------

def test_add_cache_region_registers_at_commit(config):
    config.include('pyramid_beaker')
    config.add_cache_region('short_term', expire=60)
    assert get_region(config.registry, 'short_term') is None
    config.add_settings({'cache.key_length': '99'})
    config.commit()
    region = get_region(config.registry, 'short_term')
    assert (region.name, region.expire, region.enabled, region.key_length) == (
        'short_term', 60, True, 99)


def test_same_region_twice_conflicts(config):
    config.include('pyramid_beaker')
    config.add_cache_region('twice', expire=1)
    config.add_cache_region('twice', expire=2)
    with pytest.raises(ConfigurationConflictError,
                       match=r"For: \('beaker cache region', 'twice'\)"):
        config.commit()


def test_different_regions_do_not_conflict(config):
    config.include('pyramid_beaker')
    config.add_cache_region('one', expire=1)
    config.add_cache_region('two', expire=2)
    config.commit()
    assert get_region(config.registry, 'one').expire == 1
    assert get_region(config.registry, 'two').expire == 2


def test_app_region_overrides_settings_region(config):
    config.add_settings({'cache.regions': 'short_term',
                         'cache.short_term.expire': '60',
                         'cache.short_term.key_length': '80'})
    config.include('pyramid_beaker')
    config.add_cache_region('short_term', expire=5)
    config.commit()
    region = get_region(config.registry, 'short_term')
    assert region.expire == 5  # the keyword wins
    assert region.key_length == 80  # the region's settings still apply
    assert region_intr(config, 'short_term').action_info.file.endswith('test_config.py')


def _include_region_a(config):
    config.include('pyramid_beaker')
    config.add_cache_region('shared', expire=10)


def _include_region_b(config):
    config.add_cache_region('shared', expire=20)


def test_included_region_overrides_nested_settings_region(config):
    config.add_settings({'cache.regions': 'shared'})
    config.include(_include_region_a)
    config.commit()
    assert get_region(config.registry, 'shared').expire == 10


def test_app_region_overrides_included_region(config):
    config.include(_include_region_a)
    config.add_cache_region('shared', expire=30)
    config.commit()
    assert get_region(config.registry, 'shared').expire == 30


def test_sibling_includes_of_one_region_conflict(config):
    config.include(_include_region_a)
    config.include(_include_region_b)
    with pytest.raises(ConfigurationConflictError,
                       match=r"For: \('beaker cache region', 'shared'\)"):
        config.commit()


def test_region_introspectable_shows_effective_masked_options(config):
    config.include('pyramid_beaker')
    config.add_cache_region('remote', type='beaker:ext:redis',
                            url='redis://:hunter2@127.0.0.1:6379/15',
                            expire=30)
    config.commit()
    intr = region_intr(config, 'remote')
    assert dict(intr) == {
        'name': 'remote', 'type': 'ext:redis', 'expire': 30, 'enabled': True,
        'key_length': 250, 'url': 'redis://:********@127.0.0.1:6379/15'}
    assert intr.title == 'remote'
    # the region itself keeps the real URL
    assert 'hunter2' in get_region(config.registry, 'remote').options['url']


def test_region_introspectable_masks_the_secret(config, tmp_dir):
    pytest.importorskip('pyramid_beaker.stores.file')
    config.add_settings({'cache.secret': CACHE_SECRET})
    config.include('pyramid_beaker')
    config.add_cache_region('on_disk', type='file', data_dir=tmp_dir)
    config.commit()
    assert region_intr(config, 'on_disk')['secret'] == '********'
    assert get_region(config.registry, 'on_disk').options['secret'] == CACHE_SECRET


def test_regions_work_without_introspection():
    config = Configurator(introspection=False)
    config.include('pyramid_beaker')
    config.add_cache_region('quiet', expire=3)
    config.commit()
    assert get_region(config.registry, 'quiet').expire == 3


@pytest.mark.parametrize('settings, message', [
    ({'cache.regions': 'r', 'cache.r.type': 'nosuch'},
     '"cache.r.type" must be one of .*not \'nosuch\''),
    ({'cache.regions': 'r', 'cache.r.expire': 'abc'},
     '"cache.r.expire" must be a whole number of seconds .*not \'abc\''),
    ({'cache.regions': 'r', 'cache.expire': '-1'},
     '"cache.expire" must be a whole number .*not \'-1\''),
    ({'cache.regions': 'r', 'cache.r.enabled': 'ture'},
     '"cache.r.enabled" must be true or false, not \'ture\''),
    ({'cache.regions': 'r', 'cache.r.type': 'file',
      'cache.r.data_dir': '/tmp/r'},
     '"cache.r.secret" is required for "cache.r.type" = file'),
])
def test_region_setting_errors_fail_at_commit(config, settings, message):
    config.add_settings(settings)
    config.include('pyramid_beaker')
    with pytest.raises(ConfigurationError, match=message):
        config.commit()


@pytest.mark.parametrize('name, keywords, message', [
    ('r', {'type': 'nosuch'}, '"type" must be one of .*not \'nosuch\''),
    ('r', {'expire': -5}, '"expire" must be a whole number .*not -5'),
    ('r', {'enabled': 'nope'}, '"enabled" must be true or false, not \'nope\''),
    ('', {}, '"name" must be a non-empty region name, not \'\''),
    (None, {}, '"name" must be a non-empty region name, not None'),
])
def test_region_keyword_errors_fail_at_the_call(config, name, keywords, message):
    config.include('pyramid_beaker')
    with pytest.raises(ConfigurationError, match=message):
        config.add_cache_region(name, **keywords)


def test_unknown_region_keyword_fails_at_commit(config):
    config.include('pyramid_beaker')
    config.add_cache_region('r', expires=5)
    with pytest.raises(ConfigurationError,
                       match='"expires" is not an option of cache regions'):
        config.commit()


# -- the regions at work -----------------------------------------------------

def test_beakers_cache_region_uses_the_configured_region(config):
    config.add_settings({'cache.regions': 'pb_cfg_short',
                         'cache.pb_cfg_short.expire': '300'})
    config.include('pyramid_beaker')
    calls = []

    @beaker.cache.cache_region('pb_cfg_short')
    def pb_cfg_square(number):
        calls.append(number)
        return number * number

    def view(request):
        return Response(str(pb_cfg_square(int(request.params['n']))))

    config.add_route('square', '/square')
    config.add_view(view, route_name='square')
    app = webtest.TestApp(config.make_wsgi_app())
    assert [app.get('/square?n=%d' % n).text for n in (3, 3, 4)] == [
        '9', '9', '16']
    assert calls == [3, 4]
    region = get_region(config.registry, 'pb_cfg_short')
    manager = region.namespace_manager('pb_cfg_probe')
    assert isinstance(manager, MemoryNamespaceManager)
    assert region.namespace_manager('pb_cfg_probe') is manager


def test_disabled_region_calls_through(config):
    config.add_settings({'cache.regions': 'pb_cfg_off',
                         'cache.pb_cfg_off.enabled': 'false'})
    config.include('pyramid_beaker')
    config.commit()
    calls = []

    @beaker.cache.cache_region('pb_cfg_off')
    def pb_cfg_echo(value):
        calls.append(value)
        return value

    assert pb_cfg_echo(1) == pb_cfg_echo(1) == 1
    assert calls == [1, 1]
    assert get_region(config.registry, 'pb_cfg_off').enabled is False


def test_beakers_cache_region_with_a_signed_file_region(config, tmp_dir):
    pytest.importorskip('pyramid_beaker.stores.file')
    data_dir = os.path.join(tmp_dir, 'data')
    lock_dir = os.path.join(tmp_dir, 'lock')
    config.add_settings({
        'cache.regions': 'pb_cfg_long',
        'cache.secret': CACHE_SECRET,
        'cache.pb_cfg_long.type': 'file',
        'cache.pb_cfg_long.expire': '3600',
        'cache.pb_cfg_long.data_dir': data_dir,
        'cache.pb_cfg_long.lock_dir': lock_dir,
    })
    config.include('pyramid_beaker')
    config.commit()
    assert beaker.cache.cache_regions['pb_cfg_long']['type'] == 'pyramid_beaker.file'
    calls = []

    @beaker.cache.cache_region('pb_cfg_long')
    def pb_cfg_greet(name):
        calls.append(name)
        return {'hello': name}

    assert pb_cfg_greet('world') == pb_cfg_greet('world') == {'hello': 'world'}
    assert calls == ['world']
    stored = [os.path.join(root, name)
              for root, _, names in os.walk(data_dir) for name in names]
    assert stored  # the entry went to the region's data_dir


def test_two_apps_keep_their_own_region(caplog):
    first = Configurator(settings={'cache.regions': 'pb_cfg_twin',
                                   'cache.pb_cfg_twin.expire': '10'})
    first.include('pyramid_beaker')
    first.make_wsgi_app()
    second = Configurator(settings={'cache.regions': 'pb_cfg_twin'})
    second.include('pyramid_beaker')
    second.add_cache_region('pb_cfg_twin', expire=20, key_length=30)
    with caplog.at_level(logging.WARNING, logger='pyramid_beaker'):
        second.make_wsgi_app()
    assert get_region(first.registry, 'pb_cfg_twin').expire == 10
    assert get_region(second.registry, 'pb_cfg_twin').expire == 20
    assert get_region(first.registry, 'pb_cfg_twin').key_length == 250
    # Beaker's process-wide table holds the region committed last ...
    assert beaker.cache.cache_regions['pb_cfg_twin']['expire'] == 20
    # ... and the change is logged
    assert "cache region 'pb_cfg_twin' is now configured differently" in caplog.text


def test_beakers_cache_region_with_a_redis_region(config, redis_url):
    config.add_settings({
        'cache.regions': 'pb_cfg_remote',
        'cache.secret': CACHE_SECRET,
        'cache.socket_timeout': '2.5',  # a backend option, inherited
        'cache.pb_cfg_remote.type': 'redis',
        'cache.pb_cfg_remote.url': redis_url,
        'cache.pb_cfg_remote.key_prefix': 'pb_cfg_test:%d:' % os.getpid(),
    })
    config.include('pyramid_beaker')
    config.commit()
    options = get_region(config.registry, 'pb_cfg_remote').options
    assert options['type'] == 'pyramid_beaker.redis'
    assert options['socket_timeout'] == 2.5
    calls = []

    @beaker.cache.cache_region('pb_cfg_remote')
    def pb_cfg_remote_add(a, b):
        calls.append((a, b))
        return a + b

    try:
        assert pb_cfg_remote_add(1, 2) == pb_cfg_remote_add(1, 2) == 3
        assert calls == [(1, 2)]
    finally:
        beaker.cache.region_invalidate(pb_cfg_remote_add, 'pb_cfg_remote', 1, 2)


def _include_signed_cookie_session(config):
    config.set_session_factory(SignedCookieSessionFactory(SECRET))


def test_settings_session_conflicts_with_a_sibling_includes_factory(config):
    config.add_settings(SESSION_SETTINGS)
    config.include('pyramid_beaker')
    config.include(_include_signed_cookie_session)
    with pytest.raises(ConfigurationConflictError,
                       match=r'For: pyramid.interfaces.ISessionFactory\n'
                             r'(.*\n)*.*config.add_beaker_session\(\)\n'
                             r'(.*\n)*.*config.set_session_factory'):
        config.commit()


STARTUP = '''
import json, sys
from pyramid.config import Configurator
settings = {'cache.regions': 'short', 'cache.short.type': 'memory',
            'cache.short.expire': '60', 'session.type': 'memory',
            'session.secret': 'startup-secret'}
config = Configurator(settings=settings)
config.include('pyramid_beaker')
app = config.make_wsgi_app()
loaded = sorted(name for name in ('beaker.cache', 'redis', 'sqlalchemy', 'pymemcache',
                                  'psycopg', 'memcache', 'pymysql', 'asyncio',
                                  'pyramid_debugtoolbar') if name in sys.modules)
import beaker.cache
calls = []

@beaker.cache.cache_region('short')
def double(n):
    calls.append(n)
    return 2 * n

print(json.dumps({'loaded': loaded, 'region': beaker.cache.cache_regions.get('short'),
                  'results': [double(2), double(2)], 'calls': calls}))
'''


def test_memory_only_app_starts_without_backend_drivers_or_beaker_cache():
    done = subprocess.run([sys.executable, '-c', STARTUP], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found['loaded'] == []
    # Imported later, Beaker's table still holds the region, and its own
    # decorator uses it.
    assert found['region'] == {'type': 'pyramid_beaker.memory', 'expire': 60,
                               'enabled': True, 'key_length': 250}
    assert found['results'] == [4, 4] and found['calls'] == [2]


REGIONS_ONLY = '''
import json, sys
from pyramid.config import Configurator

WATCHED = ('importlib.metadata', 'importlib.abc', 'difflib', 'decimal')


def watched():
    return {name for name in sys.modules if name.startswith('pyramid_beaker')
            or name in WATCHED}


Configurator(settings={}).make_wsgi_app()
before = watched()  # what plain Pyramid imports on this Python (3.10's importlib.util: abc)
config = Configurator(settings={'cache.regions': 'short', 'cache.short.type': 'memory',
                                'cache.short.expire': '60'})
config.include('pyramid_beaker')
app = config.make_wsgi_app()
print(json.dumps(sorted(watched() - before)))
'''


def test_an_app_imports_only_the_modules_it_uses():
    """Sessions, cached functions, their statistics and the toolbar panel are
    imported on first use; so are the standard modules only some apps need
    (those plain Pyramid imports itself aside)."""
    done = subprocess.run([sys.executable, '-c', REGIONS_ONLY], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    for name in ('session', 'decorator', 'cached_functions', 'cached_views', 'binding',
                 'keys', 'debugtoolbar', 'cache_stats'):
        assert 'pyramid_beaker.' + name not in loaded
    assert not {'importlib.metadata', 'importlib.abc', 'difflib', 'decimal'} & set(loaded)
    assert 'pyramid_beaker.stores.memory' in loaded


SESSION_TWEEN = 'pyramid_beaker.session.session_tween_factory'


def _tweens(app):
    from pyramid.interfaces import ITweens

    return [name for name, _ in app.registry.queryUtility(ITweens).implicit()]


def test_apps_with_beaker_sessions_get_the_session_tween(config):
    from pyramid_beaker import BeakerSessionFactoryConfig

    config.add_settings({'session.type': 'memory', 'session.secret': SECRET})
    config.include('pyramid_beaker')
    assert SESSION_TWEEN in _tweens(config.make_wsgi_app())

    set_after_include = Configurator(settings={})
    set_after_include.include('pyramid_beaker')
    set_after_include.set_session_factory(
        BeakerSessionFactoryConfig(type='memory', secret=SECRET))
    app = set_after_include.make_wsgi_app()
    tweens = _tweens(app)
    assert tweens.index(SESSION_TWEEN) < tweens.index('pyramid.tweens.excview_tween_factory')


def test_our_registry_names_lead_to_the_classes_beaker_loads():
    from pyramid_beaker import stores

    ours = [backend for backend in stores.all_backends()
            if (backend.beaker_name or '').startswith('pyramid_beaker.')]
    assert len(ours) == 7
    for backend in ours:
        assert stores.namespace_manager_class(backend.beaker_name) \
            is beaker.cache.clsmap[backend.beaker_name] is backend.namespace_manager
        assert stores.backend_of_manager(backend.beaker_name) == (backend, backend.name)
    assert stores.namespace_manager_class('memory') is beaker.cache.clsmap['memory']
    assert stores.backend_of_manager('memory')[1] == 'beaker:memory'
