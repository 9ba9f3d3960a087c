"""Helpers the cache tests share to build configured apps."""
from pyramid.config import Configurator

SERVICES = 'tests.scanfixtures.services'
VIEWS = 'tests.scanfixtures.views'
REGIONS = {
    'cache.regions': 'short_term long_term',
    'cache.short_term.expire': '300',
    'cache.long_term.expire': '3600',
}


def include(config):
    """Include pyramid_beaker, which adds ``config.add_cached_function``."""
    config.include('pyramid_beaker')


def settings(app_name='app', **extra):
    """Region settings for a test app; keywords override (dots as '__')."""
    found = dict(REGIONS, app_name=app_name)
    found.update({key.replace('__', '.'): value for key, value in extra.items()})
    return found


def make_config(scan=(SERVICES,), **kw):
    """A committed Configurator (not active: use ``begin()``/``end()``)."""
    config = Configurator(settings=settings(**kw))
    include(config)
    for module in scan:
        config.scan(module)
    config.commit()
    return config


def in_app(config, function, *args):
    """Call ``function(*args)`` with ``config``'s app current, as a request would."""
    config.begin()
    try:
        return function(*args)
    finally:
        config.end()
