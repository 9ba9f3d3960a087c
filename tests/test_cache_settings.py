"""The cache-region settings parser, on plain dicts."""
import datetime
import pathlib

import beaker.cache
import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_beaker import set_cache_regions_from_settings
from pyramid_beaker.settings import (
    masked,
    region_names,
    region_options,
    region_options_from_settings,
)

SECRET = 'cache-secret-0123456789'
MEMORY_DEFAULTS = {
    'type': 'pyramid_beaker.memory',
    'expire': 60,
    'enabled': True,
    'key_length': 250,
}


def test_region_names_split_on_commas_and_spaces():
    settings = {'cache.regions': 'default_term, second\n short_term,long_term'}
    assert region_names(settings) == [
        'default_term', 'second', 'short_term', 'long_term']


def test_region_names_read_beaker_alias_and_cache_wins():
    assert region_names({'beaker.cache.regions': 'a b'}) == ['a', 'b']
    settings = {'beaker.cache.regions': 'a b', 'cache.regions': 'c'}
    assert region_names(settings) == ['c']
    assert region_names({}) == []


def test_region_listed_twice_is_an_error():
    with pytest.raises(ConfigurationError,
                       match='"cache.regions" lists the region \'a\' twice'):
        region_names({'cache.regions': 'a, b, a'})


def test_unset_type_means_memory_with_defaults():
    found = region_options_from_settings({'cache.regions': 'short_term'})
    assert found == {'short_term': MEMORY_DEFAULTS}
    assert found['short_term']['type'] != 'None'


def test_regions_inherit_top_level_and_override_per_region():
    settings = {
        'cache.regions': 'default_term, second, short_term',
        'cache.expire': '300',
        'cache.enabled': 'yes',
        'cache.key_length': '100',
        'cache.data_dir': '/var/cache/app',
        'cache.lock_dir': '/var/lock/app',
        'cache.second.expire': '1',
        'cache.short_term.expire': '60',
        'cache.short_term.enabled': 'false',
    }
    found = region_options_from_settings(settings)
    inherited = dict(MEMORY_DEFAULTS, expire=300, key_length=100,
                     data_dir='/var/cache/app', lock_dir='/var/lock/app')
    assert found['default_term'] == inherited
    assert found['second'] == dict(inherited, expire=1)
    assert found['short_term'] == dict(inherited, expire=60, enabled=False)


def test_beaker_cache_alias_is_read_and_cache_wins():
    settings = {
        'beaker.cache.regions': 'a',
        'beaker.cache.expire': '10',
        'beaker.cache.a.key_length': '50',
        'cache.a.key_length': '70',
    }
    assert region_options_from_settings(settings)['a'] == dict(
        MEMORY_DEFAULTS, expire=10, key_length=70)


def test_other_regions_keys_do_not_leak():
    settings = {'cache.regions': 'a b', 'cache.b.expire': '5'}
    found = region_options_from_settings(settings)
    assert found['a']['expire'] == 60
    assert found['b']['expire'] == 5


def test_expire_none_means_no_expiry():
    assert region_options({'cache.a.expire': 'None'}, 'a')['expire'] is None
    assert region_options({}, 'a', overrides={'expire': None})['expire'] is None


def test_typed_values_pass_through():
    options = region_options({}, 'a', overrides={
        'expire': datetime.timedelta(minutes=2), 'enabled': False,
        'key_length': 40, 'data_dir': pathlib.Path('/tmp/x')})
    assert options == dict(MEMORY_DEFAULTS, expire=120, enabled=False,
                           key_length=40, data_dir='/tmp/x')


def test_keywords_win_over_region_and_top_level_settings():
    settings = {'cache.expire': '10', 'cache.a.expire': '20'}
    options = region_options(settings, 'a', overrides={'expire': 30})
    assert options['expire'] == 30


def test_beaker_types_pass_the_bare_type_and_need_no_secret():
    settings = {
        'cache.regions': 'files',
        'cache.files.type': 'beaker:file',
        'cache.files.data_dir': '/tmp/files',
        'cache.files.digest_filenames': 'false',
        'cache.secret': SECRET,
    }
    assert region_options_from_settings(settings)['files'] == dict(
        MEMORY_DEFAULTS, type='file', data_dir='/tmp/files',
        digest_filenames='false')


def test_server_side_types_get_secret_and_serializer():
    pytest.importorskip('pyramid_beaker.stores.file')
    settings = {
        'cache.regions': 'long_term',
        'cache.type': 'file',
        'cache.secret': SECRET,
        'cache.long_term.data_dir': '/tmp/lt',
        'cache.long_term.data_serializer': 'json',
    }
    options = region_options_from_settings(settings)['long_term']
    assert options['type'] == 'pyramid_beaker.file'
    assert options['secret'] == SECRET
    assert options['data_serializer'] == 'json'


def test_backend_options_are_inherited_only_by_backends_that_take_them():
    settings = {
        'cache.regions': 'fast, remote, db',
        'cache.secret': SECRET,
        'cache.socket_timeout': '2',
        'cache.sa.pool_size': '3',
        'cache.remote.type': 'redis',
        'cache.remote.url': 'redis://127.0.0.1:6379/15',
        'cache.key_prefix': 'app:',
        'cache.db.type': 'database',
        'cache.db.url': 'postgresql+psycopg://postgres@127.0.0.1/test',
    }
    found = region_options_from_settings(settings)
    assert found['fast'] == MEMORY_DEFAULTS
    assert found['remote'] == dict(
        MEMORY_DEFAULTS, type='pyramid_beaker.redis', secret=SECRET,
        data_serializer='pickle', url='redis://127.0.0.1:6379/15',
        socket_timeout=2.0, key_prefix='app:')
    assert found['db']['type'] == 'pyramid_beaker.database'
    assert found['db']['sa.pool_size'] == 3  # coerced at startup
    assert found['db']['socket_timeout'] == 2.0  # databases take it too
    assert 'key_prefix' not in found['db']


def test_backend_checks_the_url_it_is_given():
    settings = {'cache.a.type': 'ext:redis', 'cache.a.secret': SECRET,
                'cache.url': 'http://127.0.0.1:6379'}
    with pytest.raises(ConfigurationError,
                       match='"cache.url" must be a redis://, rediss:// or '
                             'unix:// URL, not \'http://127.0.0.1:6379\''):
        region_options(settings, 'a')


def test_database_region_takes_an_engine_instead_of_a_url():
    sqlalchemy = pytest.importorskip('sqlalchemy')
    engine = sqlalchemy.create_engine('sqlite://')
    options = region_options({'cache.secret': SECRET}, 'a', overrides={
        'type': 'database', 'bind': engine})
    assert options['bind'] is engine
    assert 'url' not in options


def test_memory_regions_drop_secret_and_serializer():
    settings = {'cache.secret': SECRET, 'cache.data_serializer': 'json'}
    assert region_options(settings, 'a') == MEMORY_DEFAULTS


def test_unknown_region_setting_fails_by_full_key():
    with pytest.raises(ConfigurationError, match='"cache.a.expires" is not an option '
                       'of cache regions of type memory; did you mean "expire"?'):
        region_options({'cache.a.expires': '5'}, 'a')


def test_unknown_keyword_is_an_error():
    with pytest.raises(ConfigurationError,
                       match='"expires" is not an option of cache regions'):
        region_options({}, 'a', overrides={'expires': 5})


@pytest.mark.parametrize('settings, message', [
    ({'cache.a.type': 'mem'},
     '"cache.a.type" must be one of .*, not \'mem\''),
    ({'cache.type': 'mem'},
     '"cache.type" must be one of .*, not \'mem\''),
    ({'beaker.cache.type': 'mem'},
     '"beaker.cache.type" must be one of .*, not \'mem\''),
    ({'cache.a.type': 'cookie'},
     '"cache.a.type" must be one of dbm, ext:database, .*, not \'cookie\''),
    ({'cache.a.type': 'beaker:nosuch'},
     '"cache.a.type" must be one of Beaker\'s types after \'beaker:\' '
     '.*, not \'beaker:nosuch\''),
    ({'cache.a.expire': 'abc'},
     r'"cache.a.expire" must be a whole number of seconds \(at least 1\) '
     r'or none, not \'abc\''),
    ({'cache.a.expire': '-5'},
     '"cache.a.expire" must be a whole number .*, not \'-5\''),
    ({'cache.expire': '0'},
     '"cache.expire" must be a whole number .*, not \'0\''),
    ({'cache.a.enabled': 'ture'},
     '"cache.a.enabled" must be true or false, not \'ture\''),
    ({'cache.key_length': 'long'},
     '"cache.key_length" must be a whole number, not \'long\''),
    ({'cache.a.data_serializer': 'yaml'},
     '"cache.a.data_serializer" must be \'json\', \'pickle\' .*, '
     'not \'yaml\''),
    ({'cache.a.type': 'file', 'cache.a.secret': SECRET},
     '"cache.a.data_dir" is required for "cache.a.type" = file'),
    ({'cache.a.type': 'beaker:dbm'},
     '"cache.a.data_dir" is required for "cache.a.type" = beaker:dbm'),
    ({'cache.type': 'redis', 'cache.secret': SECRET},
     '"cache.a.url" is required for "cache.type" = ext:redis'),
    ({'cache.a.type': 'file', 'cache.a.data_dir': '/tmp/a'},
     '"cache.a.secret" is required for "cache.a.type" = file: cache '
     'regions stored outside the process sign their entries'),
])
def test_bad_settings_name_the_key_and_value(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        region_options(settings, 'a')


@pytest.mark.parametrize('keywords, message', [
    ({'type': 'nosuch'}, '"type" must be one of .*, not \'nosuch\''),
    ({'expire': -1}, '"expire" must be a whole number .*, not -1'),
    ({'expire': 'soon'}, '"expire" must be a whole number .*, not \'soon\''),
    ({'enabled': 'maybe'}, '"enabled" must be true or false, not \'maybe\''),
    ({'key_length': 0},
     '"key_length" must be a whole number of at least 1, not 0'),
    ({'type': 'file', 'data_dir': '/tmp/a'},
     '"cache.a.secret" is required for "type" = file'),
])
def test_bad_keywords_name_the_argument(keywords, message):
    with pytest.raises(ConfigurationError, match=message):
        region_options({}, 'a', overrides=keywords)


def test_masked_hides_secret_and_url_password():
    shown = masked({'secret': SECRET, 'url': 'redis://:hunter2@host:6379/0',
                    'expire': 60})
    assert shown == {'secret': '********',
                     'url': 'redis://:********@host:6379/0', 'expire': 60}


def test_set_cache_regions_from_settings_fills_beakers_table():
    settings = {
        'cache.regions': 'pb_settings_a, pb_settings_b',
        'cache.pb_settings_b.expire': '5',
    }
    found = set_cache_regions_from_settings(settings)
    assert beaker.cache.cache_regions['pb_settings_a'] == MEMORY_DEFAULTS
    assert beaker.cache.cache_regions['pb_settings_b'] == dict(
        MEMORY_DEFAULTS, expire=5)
    assert found == {'pb_settings_a': MEMORY_DEFAULTS,
                     'pb_settings_b': dict(MEMORY_DEFAULTS, expire=5)}
