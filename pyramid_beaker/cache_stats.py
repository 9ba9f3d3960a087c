"""Cache statistics: what each cached function did, per region, and who hears of it.

Every binding of a ``@cached_region`` function (one function in one app's
region) counts, in this process, in a :class:`Counts`: hits, misses (calls
that ran the function), stores, errors by kind, and how often and how long
calls waited for the region's creation lock.  A hit adds one increment to
the call; everything else is counted on the slow path.

Read the counts with :func:`stats`.  Every :data:`SHARE_INTERVAL` seconds,
at the end of a request, each app process also:

* calls the listeners added with :func:`add_cache_stats_listener` with what
  changed since the last time (the hook for statsd or Prometheus);
* adds what changed to a shared total kept in the region itself, next to
  the function's entries, when the region is stored outside the process
  (files, dbm, Redis, memcached, a database).  ``pbeaker CONFIG stats``
  reads those totals (:func:`shared_stats`) for the running app.
"""
import logging
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional, Union

from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError

log = logging.getLogger('pyramid_beaker')

#: Seconds between two shares of one process's counts (listeners, store).
SHARE_INTERVAL = 10.0
#: The key of the shared totals in a function's namespace, beside the
#: generation's: entry keys (``(...)``, ``#...``) never start with ``~``.
STATS_KEY = '~stats'
#: The counters, in the order they are shown.
FIELDS = ('hits', 'misses', 'stores', 'lock_waits', 'lock_wait_time',
          'read_errors', 'store_errors', 'lock_errors', 'delete_errors')
#: Which counter an error of each action of a binding adds to.
_ERROR_FIELDS = {'read': 'read_errors', 'store': 'store_errors', 'lock': 'lock_errors',
                 'unlock': 'lock_errors', 'delete': 'delete_errors'}
_LISTENERS = 'pyramid_beaker_stats_listeners'
_SHARED = 'pyramid_beaker_stats_shared'


class Counts:
    """The counters of one cached function in one app's region, in this process.

    :ivar hits: calls answered from the cache.
    :ivar misses: calls that ran the function (``refresh`` included).
    :ivar stores: entries written.
    :ivar lock_waits: times a call took the region's creation lock.
    :ivar lock_wait_time: seconds spent taking it.
    :ivar read_errors, store_errors, lock_errors, delete_errors: failed
        operations on the store (the call then ran without the cache).

    Counting is not locked: in a process serving many threads at once, an
    increment may now and then be lost.
    """

    __slots__ = FIELDS
    hits: int
    misses: int
    stores: int
    lock_waits: int
    lock_wait_time: float
    read_errors: int
    store_errors: int
    lock_errors: int
    delete_errors: int

    def __init__(self, values: Optional[Dict[str, Any]] = None) -> None:
        for name in FIELDS:
            setattr(self, name, 0)
        for name, value in (values or {}).items():
            if name in FIELDS:
                setattr(self, name, value)

    def failed(self, action: str) -> None:
        """Count a failed ``action`` (``'read'``, ``'store'``, ``'lock'``...)."""
        name = _ERROR_FIELDS.get(action)
        if name is not None:
            setattr(self, name, getattr(self, name) + 1)

    def locked(self, seconds: float) -> None:
        """Count one acquisition of the creation lock that took ``seconds``."""
        self.lock_waits += 1
        self.lock_wait_time += seconds

    def as_dict(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    def add(self, other: Dict[str, Any]) -> None:
        for name in FIELDS:
            setattr(self, name, getattr(self, name) + other.get(name, 0))

    def since(self, earlier: 'Counts') -> Dict[str, Any]:
        """What changed since ``earlier``: ``{field: difference}``, zeros left out."""
        changed = {}
        for name in FIELDS:
            difference = getattr(self, name) - getattr(earlier, name)
            if difference:
                changed[name] = difference
        return changed


def stats(registry: Any) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """The cache counts of the app of ``registry``, in this process.

    Returns ``{'regions': {name: counts}, 'functions': {name: counts}}``;
    each ``counts`` maps the names in :data:`FIELDS` to numbers, and a
    function's also holds its ``region``.  Every configured region is
    listed, with zeros when nothing used it.
    """
    from .binding import bindings
    from .cache import regions

    by_region = {name: Counts() for name in regions(registry)}
    functions = {}
    for cached, binding in sorted(bindings(registry).items(), key=lambda item: item[0].name):
        counts = binding.counts.as_dict()
        by_region.setdefault(binding.region.name, Counts()).add(counts)
        functions[cached.name] = dict(counts, region=binding.region.name)
    return {'regions': {name: counts.as_dict() for name, counts in sorted(by_region.items())},
            'functions': functions}


def shared_stats(registry: Any) -> Dict[str, Any]:
    """The totals that the app's processes shared in each region's store.

    Returns ``{'regions': {name: counts or None}, 'functions': {name:
    counts}}``; a region is None when its entries live inside each process
    (memory), where no other process can read them.  Reads the store:
    raises what the store raises when it cannot be reached.
    """
    from .cache import regions

    functions = {}
    for item in registry.introspector.get_category('beaker cached functions', ()):
        intr = item['introspectable']
        if intr.get('namespace') is not None:
            functions[intr.discriminator] = (intr['region'], intr['namespace'])
    configured = regions(registry)
    found = {name: Counts() for name, region in configured.items()
             if not region.process_local}
    counted = {}
    for function, (region_name, namespace) in sorted(functions.items()):
        if region_name not in found:
            continue  # kept inside each process
        totals = _read_shared(configured[region_name].namespace_manager(namespace))
        found[region_name].add(totals.as_dict())
        counted[function] = dict(totals.as_dict(), region=region_name)
    return {'regions': {name: found[name].as_dict() if name in found else None
                        for name in sorted(configured)},
            'functions': counted}


def _read_shared(manager):
    entry = manager.get_entry(STATS_KEY)
    return Counts(entry[2] if entry is not None else None)


def add_cache_stats_listener(config: Configurator,
                             listener: Union[Callable[[str, str, Dict[str, Any]], Any], str]
                             ) -> None:
    """Call ``listener(region, function, changes)`` with what each cached function did.

    Added as a Configurator method by ``config.include('pyramid_beaker')``:

    .. code-block:: python

        config.add_cache_stats_listener(send_to_statsd)

    :param listener: a callable, or its dotted name.  Every
        :data:`SHARE_INTERVAL` seconds each app process calls it, at the
        end of a request, once per cached function that was used: with the
        region name, the function's dotted name and ``{counter: amount}``
        for the counters (:data:`FIELDS`) that grew since the previous call.

    A listener that raises is logged and does not fail the request.
    """
    listener = config.maybe_dotted(listener)
    if not callable(listener):
        raise ConfigurationError('"listener" must be callable, not %r' % (listener,))

    def register():
        listeners = getattr(config.registry, _LISTENERS, None)
        if listeners is None:
            listeners = []
            setattr(config.registry, _LISTENERS, listeners)
        listeners.append(listener)

    config.action(None, register)


class _Sharer:
    """Shares one app's counts at most every :data:`SHARE_INTERVAL` seconds."""

    def __init__(self, registry):
        self.registry = registry
        self.next_share = time.monotonic() + SHARE_INTERVAL
        self.lock = threading.Lock()

    def due(self):
        return time.monotonic() >= self.next_share

    def share(self):
        """Tell the listeners and the stores what changed since the last share."""
        if not self.lock.acquire(blocking=False):
            return  # another thread is sharing
        try:
            self.next_share = time.monotonic() + SHARE_INTERVAL
            share_now(self.registry)
        finally:
            self.lock.release()


def share_now(registry: Any) -> None:
    """Share what changed since the last share, now (see the module docs)."""
    from .binding import bindings

    listeners = getattr(registry, _LISTENERS, ())
    for binding in list(bindings(registry).values()):
        shared = getattr(binding, _SHARED, None)
        if shared is None:
            shared = Counts()
            setattr(binding, _SHARED, shared)
        snapshot = Counts(binding.counts.as_dict())
        changes = snapshot.since(shared)
        if not changes:
            continue
        for name in FIELDS:
            setattr(shared, name, getattr(snapshot, name))
        for listener in listeners:
            try:
                listener(binding.region.name, binding.cached.name, changes)
            except Exception:
                log.exception('cache stats listener %r failed', listener)
        if not binding.region.process_local:
            _add_to_store(binding, changes)


def _add_to_store(binding, changes):
    """Add ``changes`` to the totals kept in the binding's namespace."""
    manager = binding.manager
    try:
        lock = manager.get_creation_lock(STATS_KEY)
        if not lock.acquire(True):
            raise TimeoutError('the lock of the shared stats was not released')
        try:
            totals = _read_shared(manager)
            totals.add(changes)
            manager.set_entry(STATS_KEY, (time.time(), None, totals.as_dict()), None)
        finally:
            lock.release()
    except Exception as exc:
        log.warning('cache region %r could not share the stats of %s (%s: %s)',
                    binding.region.name, binding.cached.name, type(exc).__name__, exc)


def stats_tween_factory(handler, registry):
    """Share the counts at the end of a request, when they are due.

    Apps without cached functions get the handler back unchanged.
    """
    # Without the binding module imported, nothing was bound: do not import it.
    binding = sys.modules.get(__package__ + '.binding')
    if binding is None or not binding.bindings(registry):
        return handler
    sharer = _Sharer(registry)

    def stats_tween(request):
        try:
            return handler(request)
        finally:
            if sharer.due():
                sharer.share()

    return stats_tween
