"""Cache regions: each app's own region table, and Beaker's process-wide one.

A region is a named set of cache options (storage type, expiry...).  The
:func:`~pyramid_beaker.directives.add_cache_region` directive records each
region in the app's registry (see :func:`get_region`) and also publishes
its options in ``beaker.cache.cache_regions``, the table Beaker's own
``cache_region`` decorator reads.  That table is shared by every app in the
process; the registry's table is not.

Importing ``beaker.cache`` imports redis-py (Beaker's own Redis backend
does), so this module never imports it: while no one has, regions wait in
:data:`_unpublished` and are published the moment ``beaker.cache`` is
imported (see :class:`_PublishOnImport`).
"""
import importlib.util
import logging
import sys
import threading
from typing import Any, Dict, Mapping, Optional

from . import stores
from .settings import REGION_CONTROL_OPTIONS, region_options_from_settings

log = logging.getLogger('pyramid_beaker')

_REGISTRY_ATTRIBUTE = 'pyramid_beaker_cache_regions'


class Region:
    """One configured cache region of an app.

    :ivar name: the region name.
    :ivar backend: the :class:`~pyramid_beaker.stores.base.Backend` of its type.
    :ivar process_local: True when entries live in this process.
    :ivar options: the effective options, exactly as published in
        ``beaker.cache.cache_regions[name]`` (``type`` is the name of the
        storage class in Beaker's backend registry).
    :ivar expire: seconds entries live, or None for no expiry.
    :ivar enabled: False when caching is switched off for the region.
    :ivar key_length: keys longer than this are hashed.
    """

    def __init__(self, name, options):
        self.name = name
        self.options = dict(options)
        self.backend, store_type = stores.backend_of_manager(self.options['type'])
        self.process_local = self.backend.process_local_of(store_type)
        self.expire = self.options.get('expire')
        self.enabled = self.options.get('enabled', True)
        self.key_length = self.options.get('key_length', 250)
        self._nsargs = {key: value for key, value in self.options.items()
                        if key not in REGION_CONTROL_OPTIONS}
        self._managers = {}
        self._lock = threading.Lock()
        #: The bindings of the app's cached functions to this region.
        self.bindings = []

    def __repr__(self):
        return '<Region %r type=%s expire=%r>' % (
            self.name, self.options.get('type'), self.expire)

    def invalidate(self):
        """Drop every entry the app's cached functions keep in this region.

        Memory regions: this app's entries.  Other stores: the entries of
        those functions for every process sharing the store (see
        :meth:`pyramid_beaker.binding.Binding.invalidate_all`).
        """
        for binding in list(self.bindings):
            binding.invalidate_all()

    def namespace_manager(self, namespace):
        """Return the Beaker namespace manager of ``namespace`` in this region.

        Built on first use from the region's options and kept, so every
        caller (and every thread) shares one manager per namespace.
        """
        manager = self._managers.get(namespace)
        if manager is None:
            with self._lock:
                manager = self._managers.get(namespace)
                if manager is None:
                    factory = stores.namespace_manager_class(self.options['type'])
                    manager = factory(namespace, **self._nsargs)
                    self._managers[namespace] = manager
        return manager


def _table(registry):
    table = getattr(registry, _REGISTRY_ATTRIBUTE, None)
    if table is None:
        table = {}
        setattr(registry, _REGISTRY_ATTRIBUTE, table)
    return table


def regions(registry: Any) -> Dict[str, 'Region']:
    """Return ``{name: Region}`` for the regions configured in ``registry``."""
    return dict(_table(registry))


def get_region(registry: Any, name: str) -> Optional['Region']:
    """Return the :class:`Region` called ``name`` in ``registry``, or None."""
    return _table(registry).get(name)


def add_region(registry, name, options):
    """Record region ``name`` in ``registry`` and in Beaker's table; return it.

    Called at commit by the ``add_cache_region`` directive with options
    from :func:`pyramid_beaker.settings.region_options`.
    """
    region = Region(name, options)
    _table(registry)[name] = region
    _publish(name, region.options)
    return region


#: Regions to publish in ``beaker.cache.cache_regions`` once it is imported.
_unpublished: Dict[str, Dict[str, Any]] = {}


def _publish(name, options):
    """Put a region's options in Beaker's process-wide ``cache_regions``."""
    beaker_cache = sys.modules.get('beaker.cache')
    table = _unpublished if beaker_cache is None else beaker_cache.cache_regions
    current = table.get(name)
    if current is not None and current != options:
        log.warning(
            'cache region %r is now configured differently in this process '
            '(type %s, expire %r; was type %s, expire %r): Beaker\'s own '
            'cache_region decorator uses the new options in every app',
            name, options.get('type'), options.get('expire'),
            current.get('type'), current.get('expire'))
    table[name] = dict(options)
    if beaker_cache is None:
        _PublishOnImport.install()


class _PublishOnImport:
    """Import hook: fills ``beaker.cache.cache_regions`` as the module is loaded.

    A meta path finder needs only ``find_spec`` (not importlib.abc, which
    would cost every app's start an import).

    It finds ``beaker.cache`` with the other finders, then has the loader
    copy :data:`_unpublished` into the module's table right after running
    it, before any other code can read the table.  It removes itself then.
    """

    @classmethod
    def install(cls):
        if not any(isinstance(finder, cls) for finder in sys.meta_path):
            sys.meta_path.insert(0, cls())

    def find_spec(self, fullname, path, target=None):
        if fullname != 'beaker.cache':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            module.cache_regions.update(_unpublished)
            _unpublished.clear()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def set_cache_regions_from_settings(settings: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Configure Beaker's cache regions from ``cache.*`` settings.

    Fills ``beaker.cache.cache_regions`` with one entry per name listed in
    ``cache.regions`` (or ``beaker.cache.regions``) and returns the same
    ``{name: options}``.  Each region inherits the top-level ``cache.*``
    options, then applies its own ``cache.<name>.*`` ones.  Nothing is
    recorded in a Pyramid registry: apps should include ``pyramid_beaker``
    instead, which does both.
    """
    found = region_options_from_settings(settings)
    for name, options in found.items():
        _publish(name, options)
    return found
