"""The table of storage types users name in ``session.type`` and ``cache.type``.

Each type name maps to a module of this package that defines
``SESSION_STORE`` (a :class:`~.base.SessionStore` class or None),
``NAMESPACE_MANAGER`` (a Beaker namespace manager class or None),
``ENTRY_POINT`` (its name in Beaker's ``beaker.backends`` registry) and
``OPTIONS`` (``{option: coercer}`` for its backend-specific options).
Modules are imported on first use, so a missing driver only matters to the
users of that backend.
"""
import importlib

TYPES = {
    'memory': 'pyramid_beaker.stores.memory',
    'file': 'pyramid_beaker.stores.file',
    'dbm': 'pyramid_beaker.stores.dbm',
    'cookie': 'pyramid_beaker.stores.cookie',
    'ext:redis': 'pyramid_beaker.stores.redis',
    'ext:memcached': 'pyramid_beaker.stores.memcached',
    'ext:database': 'pyramid_beaker.stores.database',
}
ALIASES = {
    'redis': 'ext:redis',
    'memcached': 'ext:memcached',
    'database': 'ext:database',
}
#: Prefix that opts into Beaker's own (unsigned, pickling) classes.
BEAKER_PREFIX = 'beaker:'


def canonical_type(name):
    """Return the canonical type name for ``name``, or raise KeyError."""
    name = ALIASES.get(name, name)
    if name not in TYPES:
        raise KeyError(name)
    return name


def backend_module(name):
    """Import and return the module for the (canonical or alias) type ``name``."""
    if name.startswith(BEAKER_PREFIX):
        return importlib.import_module('pyramid_beaker.stores.beaker')
    return importlib.import_module(TYPES[canonical_type(name)])


def beaker_class(name):
    """Return Beaker's own class for ``beaker:<type>``; raise KeyError if unknown."""
    from beaker.cache import clsmap

    cls = clsmap[name[len(BEAKER_PREFIX):]]
    if isinstance(cls, Exception):  # a Beaker backend whose driver is missing
        raise KeyError(name)
    return cls


def known_types():
    """Names accepted in ``type`` settings, for error messages."""
    return sorted(TYPES) + [BEAKER_PREFIX + '<beaker type>']
