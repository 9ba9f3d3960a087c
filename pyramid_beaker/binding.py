"""The per-app binding of cached functions: which region, which namespace.

``config.add_cached_function`` (run by ``config.scan()`` for each
``@cached_region`` function) records, at commit, one :class:`Binding` per
function in the app's registry.  A binding holds what a call needs: the
region's namespace manager for that function, its expiry and its creation
lock.  Two apps in one process each have their own bindings.
"""
import itertools
import logging
import time

log = logging.getLogger('pyramid_beaker')

#: Registry attribute holding that app's bindings: ``{CachedFunction: Binding}``.
BINDINGS = 'pyramid_beaker_cached_functions'
#: A binding logs backend errors at most this often (seconds).
WARN_INTERVAL = 60.0
#: Returned as the stored form of a result that must not be stored.
NOT_STORED = object()
#: What a registry without bindings answers.
NO_BINDINGS = {}
_app_numbers = itertools.count(1)


class AppBindings(dict):
    """One app's bindings, with a number unique in this process."""

    def __init__(self):
        super().__init__()
        self.number = next(_app_numbers)


class _BeakerManager:
    """Gives one of Beaker's own namespace managers our fast-path methods."""

    def __init__(self, manager):
        self.manager = manager

    def get_entry(self, key):
        manager = self.manager
        manager.acquire_read_lock()
        try:
            return manager[key] if key in manager else None
        finally:
            manager.release_read_lock()

    def set_entry(self, key, entry, expiretime=None):
        manager = self.manager
        manager.acquire_write_lock()
        try:
            manager.set_value(key, entry, expiretime)
        finally:
            manager.release_write_lock()

    def __delitem__(self, key):
        manager = self.manager
        manager.acquire_write_lock()
        try:
            if key in manager:
                del manager[key]
        finally:
            manager.release_write_lock()

    def get_creation_lock(self, key):
        return self.manager.get_creation_lock(key)


class Binding:
    """A decorated function bound to one app's region.

    Reads, writes and locks that fail are logged (each kind at most once
    per :data:`WARN_INTERVAL`) and the value is computed without the cache.
    """

    def __init__(self, cached, region, namespace):
        self.cached = cached
        self.region = region
        self.namespace = namespace
        self.expire = region.expire
        #: False when nothing can be stale on read: the store drops entries
        #: older than their stored expiry, which (namespaces of process-local
        #: stores being per app) is this app's ``expire``.
        self.check_age = (region.expire is not None
                          and not region.backend.drops_expired)
        self.enabled = region.enabled
        self.key_length = region.key_length
        manager = region.namespace_manager(namespace)
        if not hasattr(manager, 'get_entry'):
            manager = _BeakerManager(manager)
        self.manager = manager
        self.get_entry = manager.get_entry
        self._warned_at = {}  # action -> time.monotonic() of its last warning

    def warn(self, action, exc):
        current = time.monotonic()
        last = self._warned_at.get(action)
        if last is None or current - last >= WARN_INTERVAL:
            self._warned_at[action] = current
            log.warning('cache region %r could not %s an entry of %s (%s: %s); '
                        'computing without the cache', self.region.name, action,
                        self.cached.name, type(exc).__name__, exc)

    def fresh(self, entry):
        """True while ``entry`` is younger than this app's region ``expire``.

        The expiry stored in the entry only serves the storage (as a TTL):
        each app judges freshness by its own configuration.
        """
        return not self.check_age or time.time() - entry[0] < self.expire

    def read(self, key):
        """Return the fresh entry for ``key``, None on a miss or a failed read."""
        try:
            entry = self.get_entry(key)
        except Exception as exc:
            self.warn('read', exc)
            return None
        return entry if entry is not None and self.fresh(entry) else None

    def write(self, key, value):
        try:
            self.manager.set_entry(key, (time.time(), self.expire, value), self.expire)
        except Exception as exc:
            self.warn('store', exc)

    def delete(self, key):
        try:
            del self.manager[key]
        except KeyError:
            pass
        except Exception as exc:
            self.warn('delete', exc)

    def create(self, key, compute, replay=None, force=False):
        """Compute and store the value of ``key``, once for all concurrent misses.

        The region's creation lock serialises creators: whoever gets it
        after another found the entry that one stored, and returns
        ``replay(stored)`` (or the stored value).  ``compute()`` returns
        ``(result, stored)``; ``stored`` is :data:`NOT_STORED` to keep the
        result out of the cache.  ``force`` computes even when an entry
        exists (``refresh``).
        """
        lock = None
        try:
            lock = self.manager.get_creation_lock(key)
            if not lock.acquire(True):
                lock = None
        except Exception as exc:
            self.warn('lock', exc)
            lock = None
        try:
            if not force and lock is not None:
                entry = self.read(key)
                if entry is not None:
                    return entry[2] if replay is None else replay(entry[2])
            result, stored = compute()
            if stored is not NOT_STORED:
                self.write(key, stored)
            return result
        finally:
            if lock is not None:
                try:
                    lock.release()
                except Exception as exc:
                    self.warn('unlock', exc)


def bindings(registry):
    """``{CachedFunction: Binding}`` of the app of ``registry`` (may be empty)."""
    return getattr(registry, BINDINGS, NO_BINDINGS)


def namespace_of(cached, region, registry):
    """The namespace of ``cached``'s entries in ``region`` for this app.

    ``<region>:<module>.<qualified name>``, the same in every process so
    that workers share a server-side region; process-local (memory)
    regions add ``@app<n>``, so two apps in one process never share entries.
    """
    namespace = '%s:%s' % (region.name, cached.name)
    if region.process_local:
        namespace += '@app%d' % app_bindings(registry).number
    return namespace


def app_bindings(registry):
    """The bindings table of ``registry``, created on first use."""
    table = getattr(registry, BINDINGS, None)
    if table is None:
        table = AppBindings()
        setattr(registry, BINDINGS, table)
    return table


def bind(registry, cached, region):
    """Bind ``cached`` to ``region`` in the app of ``registry``; return the binding."""
    binding = Binding(cached, region, namespace_of(cached, region, registry))
    app_bindings(registry)[cached] = binding
    return binding
