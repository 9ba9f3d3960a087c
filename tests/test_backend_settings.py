"""Every bad backend setting fails at startup, naming the full key and value.

Sessions are checked when the factory is built and cache regions when their
settings are parsed, before any request; nothing here reaches a server.
"""
import os
import subprocess
import sys

import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_beaker import session_factory_from_settings, set_cache_regions_from_settings

from .session_app import SECRET

HERE = os.path.dirname(os.path.abspath(__file__))
PG = 'postgresql+psycopg://postgres@127.0.0.1:5432/test'
MARIADB = 'mysql+pymysql://root@127.0.0.1:3306/test'

BAD = [
    # (type, {option: value}, message after the key's name)
    ('ext:memcached', {'url': 'memcached://127.0.0.1:11211'},
     'url" must be host:port \\(no scheme; several separated by ";"\\), '
     "not 'memcached://127.0.0.1:11211'"),
    ('ext:memcached', {'url': '127.0.0.1:eleven'},
     'url" must be host:port with a port number'),
    ('ext:memcached', {'url': '127.0.0.1:11211;127.0.0.1:x'},
     'url" must be host:port with a port number'),
    ('ext:redis', {'url': 'redis://127.0.0.1:abc/0'},
     "url\" = 'redis://127.0.0.1:abc/0' is not a valid Redis URL: Port"),
    ('ext:redis', {'url': 'redis://:secret@127.0.0.1:6379/db1'},
     "url\" = 'redis://:\\*+@127.0.0.1:6379/db1': the path must be a database "
     "number, not 'db1'"),
    ('ext:database', {'url': 'not a database url'},
     "url\" = 'not a database url' is not a SQLAlchemy URL"),
    ('ext:database', {'url': 'nosuchdb://u@h/db'},
     "url\" = 'nosuchdb://u@h/db': SQLAlchemy knows no such database"),
    ('ext:database', {'url': 'mysql://root:pw@127.0.0.1/test'},
     "url\" = 'mysql://root:\\*+@127.0.0.1/test': the mysqldb driver is not installed "
     '\\(MySQLdb\\): use mysql\\+pymysql:// and pip install "pyramid_beaker\\[mysql\\]"'),
    ('ext:database', {'url': 'postgresql+psycopg2://u@h/db'},
     "url\" = 'postgresql\\+psycopg2://u@h/db': the psycopg2 driver is not installed "
     '\\(psycopg2\\): use postgresql\\+psycopg:// and pip install "pyramid_beaker\\[database\\]"'),
    ('ext:database', {'url': PG, 'sa.pool_size': 'ten'},
     "sa.pool_size\" must be a whole number, not 'ten'"),
    ('ext:database', {'url': MARIADB, 'sa.pool_pre_ping': 'maybe'},
     "sa.pool_pre_ping\" must be true or false, not 'maybe'"),
    ('ext:database', {'url': PG, 'sa.no_such_option': '1'},
     'url" with "[^"]*sa.no_such_option" cannot make an engine: '
     "Invalid argument\\(s\\) 'no_such_option'"),
]


def _settings(prefix, store_type, options, secret=True):
    settings = {prefix + 'type': store_type}
    if secret:
        settings[prefix + 'secret'] = SECRET
    settings.update((prefix + name, value) for name, value in options.items())
    return settings


@pytest.mark.parametrize('store_type, options, message', BAD)
def test_bad_session_settings_fail_when_the_factory_is_built(store_type, options, message):
    with pytest.raises(ConfigurationError, match='"session.' + message):
        session_factory_from_settings(_settings('session.', store_type, options))


@pytest.mark.parametrize('store_type, options, message', BAD)
def test_bad_region_settings_fail_when_settings_are_read(store_type, options, message):
    settings = _settings('cache.r.', store_type, options)
    settings['cache.regions'] = 'r'
    with pytest.raises(ConfigurationError, match='"cache.r.' + message):
        set_cache_regions_from_settings(settings)


def test_a_data_dir_that_cannot_be_created_fails_at_startup(tmp_dir):
    blocker = os.path.join(tmp_dir, 'a-file')
    open(blocker, 'w').close()
    for store_type in ('file', 'dbm'):
        with pytest.raises(ConfigurationError, match='"session.data_dir" = .*a-file/sessions'
                           "' cannot be created: Not a directory"):
            session_factory_from_settings(_settings(
                'session.', store_type, {'data_dir': os.path.join(blocker, 'sessions')}))
        settings = _settings('cache.r.', store_type,
                             {'lock_dir': os.path.join(blocker, 'locks'), 'data_dir': tmp_dir})
        settings['cache.regions'] = 'r'
        with pytest.raises(ConfigurationError, match='"cache.r.lock_dir" = .* cannot be created'):
            set_cache_regions_from_settings(settings)


def test_data_dirs_are_created_at_startup(tmp_dir):
    data_dir = os.path.join(tmp_dir, 'cache', 'data')
    set_cache_regions_from_settings({
        'cache.regions': 'r', 'cache.r.type': 'file', 'cache.r.secret': SECRET,
        'cache.r.data_dir': data_dir})
    assert os.path.isdir(data_dir)


def test_a_missing_data_dir_names_the_key():
    with pytest.raises(ConfigurationError,
                       match='"cache.r.data_dir" is required for "cache.r.type" = dbm'):
        set_cache_regions_from_settings({
            'cache.regions': 'r', 'cache.r.type': 'dbm', 'cache.r.secret': SECRET})


def test_a_beaker_type_whose_driver_is_missing_fails_at_startup():
    script = (
        'import sys; sys.modules["redis"] = None\n'
        'from pyramid.exceptions import ConfigurationError\n'
        'from pyramid_beaker import session_factory_from_settings\n'
        'from pyramid_beaker import set_cache_regions_from_settings\n'
        'try:\n'
        '    session_factory_from_settings({"session.type": "beaker:ext:redis",\n'
        '        "session.url": "redis://127.0.0.1", "session.secret": "s"})\n'
        'except ConfigurationError as exc:\n'
        '    print(exc)\n'
        'try:\n'
        '    set_cache_regions_from_settings({"cache.regions": "r",\n'
        '        "cache.r.type": "beaker:ext:redis", "cache.r.url": "redis://127.0.0.1"})\n'
        'except ConfigurationError as exc:\n'
        '    print(exc)\n')
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        '"session.type" = beaker:ext:redis cannot be used: RedisNamespaceManager '
        'needs redis, which is not installed',
        '"cache.r.type" = beaker:ext:redis cannot be used: RedisNamespaceManager '
        'needs redis, which is not installed',
    ]


@pytest.mark.parametrize('store_type, options', [
    ('ext:redis', {'url': 'redis://127.0.0.1:6379/15', 'lock_timeout': '5'}),
    ('ext:memcached', {'url': '127.0.0.1:11211', 'lock_timeout': '5'}),
    ('ext:database', {'url': PG, 'lock_timeout': '5'}),
    ('memory', {'max_entries': '100'}),
])
def test_options_of_cache_regions_only_are_refused_for_sessions(store_type, options):
    name = next(iter(set(options) - {'url'}))
    with pytest.raises(ConfigurationError,
                       match='"session.%s" is not a session option for "session.type" = '
                       % name):
        session_factory_from_settings(_settings('session.', store_type, options))
    settings = _settings('cache.r.', store_type, options)
    settings['cache.regions'] = 'r'
    assert set_cache_regions_from_settings(settings)['r'][name] == int(options[name])
