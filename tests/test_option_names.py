"""Misspelt or misplaced options fail at startup, naming the key and the closest option."""
import pytest
from pyramid.exceptions import ConfigurationError

from pyramid_beaker.session import BeakerSessionFactoryConfig, session_factory_from_settings

from .session_app import SECRET


def test_misspelt_factory_keyword_names_the_closest_option():
    with pytest.raises(ConfigurationError,
                       match='"timout" is not a session option .*did you mean "timeout"'):
        BeakerSessionFactoryConfig(secret=SECRET, timout=30)


def test_misspelt_ini_key_names_the_full_key():
    with pytest.raises(ConfigurationError,
                       match='"session.timout" is not a session option .*did you mean "timeout"'):
        session_factory_from_settings({'session.secret': SECRET, 'session.timout': '30'})


def test_misspelt_directive_keyword_fails_at_commit(config):
    config.include('pyramid_beaker')
    config.add_settings({'session.secret': SECRET})
    config.add_beaker_session(timout=30)
    with pytest.raises(ConfigurationError, match='"timout" .*did you mean "timeout"'):
        config.commit()


def test_an_option_of_another_store_type_is_refused():
    with pytest.raises(ConfigurationError,
                       match='"key_prefix" is not a session option for "type" = memory'):
        BeakerSessionFactoryConfig(secret=SECRET, type='memory', key_prefix='x:')


@pytest.mark.parametrize('name', ['auto', 'webtest_varname', 'log_file', 'lock_dir_mode'])
def test_beakers_documented_no_op_keys_stay_accepted(name):
    assert session_factory_from_settings({'session.secret': SECRET, 'session.' + name: 'x'})


def _commit_with(config, settings):
    config.include('pyramid_beaker')
    config.add_settings(settings)
    config.commit()


def test_settings_of_a_region_that_is_not_configured_fail(config):
    with pytest.raises(ConfigurationError, match='"cache.short_tem.expire" sets an option '
                       "of the cache region 'short_tem', which is not configured.*"
                       'did you mean "short_term"'):
        _commit_with(config, {'cache.regions': 'short_term',
                              'cache.short_tem.expire': '60'})


def test_settings_of_a_region_configured_by_the_directive_are_accepted(config):
    config.add_settings({'cache.extra.expire': '30'})
    config.include('pyramid_beaker')
    config.add_cache_region('extra')
    config.commit()
    from pyramid_beaker.cache import get_region
    assert get_region(config.registry, 'extra').expire == 30


def test_misspelt_top_level_cache_key_fails(config):
    with pytest.raises(ConfigurationError, match='"cache.expir" is not a cache option; '
                       'did you mean "expire"'):
        _commit_with(config, {'cache.regions': 'a', 'cache.expir': '60'})


def test_option_families_and_beaker_prefix_are_not_regions(config):
    _commit_with(config, {'cache.regions': 'a', 'beaker.cache.a.expire': '5',
                          'cache.sa.pool_size': '5'})
