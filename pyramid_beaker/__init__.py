"""Beaker sessions and cache regions for Pyramid."""
import importlib
import sys
from typing import TYPE_CHECKING, Any

from pyramid.config import Configurator
from pyramid.interfaces import PHASE0_CONFIG, PHASE2_CONFIG
from pyramid.tweens import EXCVIEW

from .cache import get_region, regions, set_cache_regions_from_settings
from .directives import add_beaker_session, add_cache_region, add_cached_function
from .settings import SESSION_PREFIXES, check_cache_settings, region_names

if TYPE_CHECKING:  # imported on first use (see __getattr__)
    from .cache_stats import stats
    from .decorator import cached_region
    from .session import BeakerSessionFactoryConfig, session_factory_from_settings

__version__ = '1.0.dev0'

__all__ = [
    '__version__',
    'BeakerSessionFactoryConfig',
    'cached_region',
    'get_region',
    'includeme',
    'session_factory_from_settings',
    'set_cache_regions_from_settings',
    'stats',
]


_SESSION_MODULE = __name__ + '.session'
_BINDING_MODULE = __name__ + '.binding'
#: Public names whose modules are imported on first use, so that an app
#: start imports only what the app uses.
_LAZY = {
    'add_cache_stats_listener': '.cache_stats',
    'cached_region': '.decorator',
    'BeakerSessionFactoryConfig': '.session',
    'session_factory_from_settings': '.session',
    'stats': '.cache_stats',
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError('module %r has no attribute %r' % (__name__, name))
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


def includeme(config: Configurator) -> None:
    """Set up sessions and cache regions from the app's settings.

    Activate with ``config.include('pyramid_beaker')`` or with
    ``pyramid.includes = pyramid_beaker`` in the ini file.  It:

    * adds the :func:`~.directives.add_beaker_session`,
      :func:`~.directives.add_cache_region` and
      :func:`~.directives.add_cached_function` directives (``config.scan()``
      uses the last one for ``@cached_region`` functions) and
      :func:`~.cache_stats.add_cache_stats_listener`;
    * adds a tween that shares the cache statistics every few seconds (see
      :mod:`pyramid_beaker.cache_stats`), and a pyramid_debugtoolbar panel when
      the toolbar is included (see :mod:`pyramid_beaker.debugtoolbar`);
    * when the configuration is committed, calls
      ``config.add_beaker_session()`` if any ``session.*`` or
      ``beaker.session.*`` setting exists, and
      ``config.add_cache_region(name)`` for each name in ``cache.regions``
      (or ``beaker.cache.regions``).

    When the app uses Beaker sessions (from the settings,
    ``add_beaker_session`` or a factory made before the commit by
    :func:`~.session.BeakerSessionFactoryConfig`), it also adds the tween
    :func:`~.session.session_tween_factory` over Pyramid's exception-view
    tween, so a session store that fails while saving is rendered by the
    app's exception view for :class:`~.stores.base.SessionBackendError`.
    Apps without them do not import the session module at all.

    A ``cache.<name>.*`` setting for a region that was not configured, and
    any setting that is not an option, raise
    :class:`~pyramid.exceptions.ConfigurationError` at commit.

    These calls carry the include's path, so the app's own
    ``add_beaker_session``, ``set_session_factory`` or ``add_cache_region``
    calls override them without a conflict.  Settings are read at commit,
    so ``config.add_settings`` after the include still counts.
    """
    config.add_directive('add_beaker_session', add_beaker_session)
    config.add_directive('add_cache_region', add_cache_region)
    config.add_directive('add_cached_function', add_cached_function)
    config.add_directive('add_cache_stats_listener', _add_cache_stats_listener)
    config.add_tween(__name__ + '.cache_stats_tween_factory')
    config.action(None, _add_toolbar_panel, (config.registry,))

    def configure_from_settings():
        settings = config.get_settings() or {}
        if any(key.startswith(SESSION_PREFIXES) for key in settings):
            config.add_beaker_session()
        for name in region_names(settings):
            config.add_cache_region(name)

    def add_session_tween():
        # A Beaker session factory exists only once its module is imported.
        if _SESSION_MODULE in sys.modules:
            config.add_tween(_SESSION_MODULE + '.session_tween_factory', over=EXCVIEW)

    def check_unused_cache_settings():
        check_cache_settings(config.get_settings() or {}, regions(config.registry))

    # Runs first at commit; the actions it adds are then resolved against
    # the app's own, at their own phases.
    config.action(None, configure_from_settings, order=PHASE0_CONFIG)
    # Then (same phase, later sequence), once settings may have added a session.
    config.action(None, add_session_tween, order=PHASE0_CONFIG)
    # Once every region is configured (they are, at PHASE1_CONFIG), a
    # cache.<name>.* setting for a region nobody configured is a mistake.
    config.action(None, check_unused_cache_settings, order=PHASE2_CONFIG)


def _add_toolbar_panel(registry):
    """:func:`.debugtoolbar.add_toolbar_panel`, for apps that import the toolbar."""
    if 'pyramid_debugtoolbar' in sys.modules:
        from .debugtoolbar import add_toolbar_panel

        add_toolbar_panel(registry)


def _add_cache_stats_listener(config, listener):
    """:func:`.cache_stats.add_cache_stats_listener`, imported on first use."""
    from .cache_stats import add_cache_stats_listener

    add_cache_stats_listener(config, listener)


def cache_stats_tween_factory(handler, registry):
    """The tween of :func:`.cache_stats.stats_tween_factory`.

    An app without cached functions gets the handler back unchanged, and
    never imports the statistics machinery.
    """
    if _BINDING_MODULE not in sys.modules:  # nothing was bound in this process
        return handler
    from .cache_stats import stats_tween_factory

    return stats_tween_factory(handler, registry)
