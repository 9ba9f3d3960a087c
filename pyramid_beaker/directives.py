"""Configurator directives: ``add_beaker_session``, ``add_cache_region``
and ``add_cached_function``.

All three are added to the Configurator by ``config.include('pyramid_beaker')``.
They read settings when the configuration is committed, so settings added
with ``config.add_settings`` after the call still count.
"""
from typing import Any, Callable, Union

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import PHASE1_CONFIG, ISessionFactory

from . import cache
from .settings import (
    REGION_OPTIONS,
    SESSION_OPTIONS,
    check_keywords,
    masked,
    region_options,
    session_options_from_settings,
)

#: Regions are registered before anything that may bind to them.
REGION_PHASE = PHASE1_CONFIG


def add_beaker_session(config: Configurator, prefix: str = 'session.',
                       **overrides: Any) -> None:
    """Use a Beaker session factory built from the settings under ``prefix``.

    Added as a Configurator method by ``config.include('pyramid_beaker')``:

    .. code-block:: python

        config.add_beaker_session()
        config.add_beaker_session(prefix='session.', timeout=1800)

    :param prefix: settings prefix to read, default ``'session.'`` (which
        also reads ``beaker.session.*``, with ``session.*`` winning).
    :param overrides: session options (``timeout``, ``secret``, ...) that win
        over the settings.

    The factory is registered as Pyramid's session factory, with the
    same discriminator as :meth:`~pyramid.config.Configurator.set_session_factory`:
    two session factories configured at the same level conflict, and one
    configured closer to the app overrides one from an include.
    """
    if not isinstance(prefix, str) or not prefix.endswith('.'):
        raise ConfigurationError(
            '"prefix" must be a settings prefix ending in ".", not %r' % (prefix,))
    check_keywords(SESSION_OPTIONS, overrides)
    intr = config.introspectable(
        'session factory', None, 'beaker session (%s*)' % prefix,
        'beaker session factory')

    # Imported here (apps without sessions never import it), and now: the
    # session tween is added at commit when this module has been imported.
    from .session import SessionFactory

    def register():
        settings = config.get_settings() or {}
        options = session_options_from_settings(settings, prefix, overrides)
        factory = SessionFactory(options)
        config.registry.registerUtility(factory, ISessionFactory)
        intr.title = config.object_description(factory)
        intr.update(masked(options))
        intr['factory'] = factory
        intr['prefix'] = prefix

    # Same discriminator and (default) order as set_session_factory: actions
    # only override each other within one order, so both must share it.
    config.action(ISessionFactory, register, introspectables=(intr,))


def add_cache_region(config: Configurator, name: str, **options: Any) -> None:
    """Configure the cache region ``name``.

    Added as a Configurator method by ``config.include('pyramid_beaker')``:

    .. code-block:: python

        config.add_cache_region('short_term', expire=60)
        config.add_cache_region('long_term', type='file', expire=3600,
                                data_dir='/var/cache/app', secret=secret)

    :param name: the region name, as used by ``@cached_region(name)`` and
        Beaker's ``cache_region(name)``.
    :param options: region options (``type``, ``expire``, ``enabled``,
        ``key_length``, ``data_dir``, ``lock_dir``, ``url``, ``secret``,
        ``data_serializer`` and the backend's own); they win over the
        ``cache.<name>.*`` settings, which win over the top-level
        ``cache.*`` ones.

    Configuring one name twice at the same level is a conflict; a call
    closer to the app overrides one from an include.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(
            '"name" must be a non-empty region name, not %r' % (name,))
    check_keywords(REGION_OPTIONS, options)
    intr = config.introspectable(
        'beaker cache regions', name, config.object_description(name),
        'beaker cache region')

    def register():
        settings = config.get_settings() or {}
        effective = region_options(settings, name, overrides=options)
        region = cache.add_region(config.registry, name, effective)
        intr.update(masked(region.options))
        intr['name'] = name

    config.action(('beaker cache region', name), register,
                  order=REGION_PHASE, introspectables=(intr,))


def add_cached_function(config: Configurator,
                        function: Union[Callable[..., Any], str]) -> None:
    """Bind a ``@cached_region`` function to the app's region of that name.

    Added as a Configurator method by ``config.include('pyramid_beaker')``;
    ``config.scan()`` calls it for every decorated function it finds.  Call
    it yourself to bind a function without scanning:

    .. code-block:: python

        config.add_cached_function(exchange_rate)

    :param function: a function decorated with :class:`cached_region`, or
        its dotted name.

    At commit (after the regions exist) a missing region raises
    :class:`~pyramid.exceptions.ConfigurationError` naming the region and
    the function's file and line.  The function is listed in the
    introspector under ``'beaker cached functions'``, related to its region.
    """
    # Imported here: an app without cached functions never imports them.
    from .binding import bind
    from .cached_functions import CachedFunction

    function = config.maybe_dotted(function)
    cached = getattr(function, '__cached_region__', None)
    if not isinstance(cached, CachedFunction):
        raise ConfigurationError(
            '"function" must be decorated with @cached_region, not %r' % (function,))
    intr = config.introspectable(
        'beaker cached functions', cached.name, config.object_description(function),
        'beaker cached view' if cached.view else 'beaker cached function')
    intr.update(function=function, region=cached.region, view=cached.view,
                vary=cached.vary, ignore=cached.ignore, per_user=cached.per_user)
    intr.relate('beaker cache regions', cached.region)

    def register():
        region = cache.get_region(config.registry, cached.region)
        if region is None:
            raise ConfigurationError(
                '@cached_region("%s") on %s: no cache region named "%s" is '
                'configured (list it in "cache.regions" or call '
                'config.add_cache_region(%r))'
                % (cached.region, cached.where(), cached.region, cached.region))
        intr['namespace'] = bind(config.registry, cached, region).namespace

    config.action(None, register, introspectables=(intr,))
