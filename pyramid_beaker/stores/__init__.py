"""Find the backend (a :class:`~.base.Backend`) a ``type`` setting names.

Each module of this package that exports ``BACKEND`` is a backend.  A type
name is looked up in the module named after its first or last
``:``-separated word (``ext:redis`` in ``redis``, ``beaker:ext:redis`` in
``beaker``), so only the backend in use is imported.  Other packages add a
backend with one module and one entry point: the module exports ``BACKEND``
and its namespace manager class, which the package declares in Beaker's
own ``beaker.backends`` entry-point group (so Beaker finds the class, and
we find the descriptor next to it).

A module whose driver is missing raises Beaker's
:class:`~beaker.exceptions.InvalidCacheBackendError` on import (so that
Beaker skips its ``beaker.backends`` entry point quietly); here that becomes
:class:`BackendUnavailable`, whose message names the extra to install.

Nothing here loads Beaker's registry (``beaker.cache.clsmap``) unless a
name is not one of ours: importing ``beaker.cache`` imports redis-py, and
its registry imports every entry point's module, hence every backend's
driver, in a process that configured none of them.
"""
import importlib
import pkgutil
import sys

from beaker.exceptions import InvalidCacheBackendError

ENTRY_POINT_GROUP = 'beaker.backends'
_NOT_BACKENDS = frozenset(('base',))


class BackendUnavailable(LookupError):
    """The backend of a type name exists but its driver is not installed."""


class UnknownType(KeyError):
    """No backend has this type name; ``expected`` says what would be accepted."""

    def __init__(self, name, expected=None):
        super().__init__(name)
        self.expected = expected


def _builtin_modules():
    return sorted(info.name for info in pkgutil.iter_modules(__path__)
                  if info.name not in _NOT_BACKENDS)


def _load_module(name):
    """Return the ``BACKEND`` of our module ``name`` (or None if it has none)."""
    try:
        module = importlib.import_module('%s.%s' % (__name__, name))
    except InvalidCacheBackendError as exc:
        raise BackendUnavailable(str(exc)) from exc
    return getattr(module, 'BACKEND', None)


def _entry_points():
    import importlib.metadata  # here: only types that are not ours need it

    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _plugin_backends():
    """The descriptors of other packages, next to their Beaker entry points."""
    found = []
    for entry_point in _entry_points():
        if entry_point.module.startswith(__name__ + '.'):
            continue  # ours, found by module name
        try:
            module = importlib.import_module(entry_point.module)
        except Exception:  # Beaker skips (or warns about) broken entry points too
            continue
        backend = getattr(module, 'BACKEND', None)
        if backend is not None and backend not in found:
            found.append(backend)
    return found


def find_backend(name):
    """Return ``(backend, canonical type name)`` for the type ``name``.

    Raises KeyError for an unknown name and :class:`BackendUnavailable`
    when its module cannot be imported (a missing driver).
    """
    if not isinstance(name, str) or not name:
        raise KeyError(name)
    words = name.split(':')
    builtin = _builtin_modules()
    for module in dict.fromkeys((words[0], words[-1])):
        if module in builtin:
            backend = _load_module(module)
            found = backend.type_name(name) if backend is not None else None
            if found is not None:
                return backend, found
    for backend in all_backends():
        found = backend.type_name(name)
        if found is not None:
            return backend, found
    raise KeyError(name)


def all_backends():
    """Every backend that can be loaded (for error messages and listings)."""
    found = []
    for module in _builtin_modules():
        try:
            backend = _load_module(module)
        except BackendUnavailable:
            continue
        if backend is not None:
            found.append(backend)
    return found + _plugin_backends()


def known_types(regions=False):
    """Names accepted in ``type`` settings, for error messages.

    With ``regions``, only types that can hold cache regions.
    """
    names = []
    for backend in all_backends():
        if regions and backend.namespace_manager is None:
            continue
        names.append(getattr(backend, 'display_name', backend.name))
    return sorted(names, key=lambda name: (name.startswith('beaker:'), name))


def backend_of_manager(beaker_name):
    """Return ``(backend, type name)`` for the manager Beaker knows as ``beaker_name``.

    Region options name their storage by that registry name: ours are
    ``pyramid_beaker.<module>``; for other names, the class's module in
    Beaker's registry holds the descriptor, or the class is one of Beaker's
    own (``beaker:<type>``).
    """
    package, _, module = beaker_name.rpartition('.')
    if package == __name__.split('.')[0] and module in _builtin_modules():
        backend = _load_module(module)
        if backend is not None and backend.beaker_name == beaker_name:
            return backend, backend.name
    cls = namespace_manager_class(beaker_name)
    backend = getattr(sys.modules.get(getattr(cls, '__module__', None)), 'BACKEND', None)
    if backend is not None and backend.beaker_name == beaker_name:
        return backend, backend.name
    return find_backend('beaker:' + beaker_name)


def namespace_manager_class(beaker_name):
    """The namespace manager class Beaker's registry knows as ``beaker_name``.

    Ours come from their descriptor; only other names load Beaker's registry.
    Raises KeyError for a name Beaker does not know.
    """
    package, _, module = beaker_name.rpartition('.')
    if package == __name__.split('.')[0] and module in _builtin_modules():
        backend = _load_module(module)
        if backend is not None and backend.beaker_name == beaker_name:
            return backend.namespace_manager
    from beaker.cache import clsmap

    return clsmap[beaker_name]
