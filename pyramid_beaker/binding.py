"""The per-app binding of cached functions: which region, which namespace.

``config.add_cached_function`` (run by ``config.scan()`` for each
``@cached_region`` function) records, at commit, one :class:`Binding` per
function in the app's registry.  A binding holds what a call needs: the
region's namespace manager for that function, its expiry and its creation
lock.  Two apps in one process each have their own bindings.

Which binding a call uses (:func:`binding_for`): the current app's, when a
request or ``config.begin()`` made an app current; with no app current (a
script, a worker thread, a background job), that of the app created most
recently that bound the function, the rule ``pyramid.paster.bootstrap``
and ``pshell`` follow with ``global_registries.last``.
"""
import itertools
import logging
import secrets
import time
import weakref

from pyramid.exceptions import ConfigurationError
from pyramid.registry import global_registry

from .cache_stats import Counts
from .stores.base import UnstorableValue

log = logging.getLogger('pyramid_beaker')

#: Registry attribute holding that app's bindings: ``{CachedFunction: Binding}``.
BINDINGS = 'pyramid_beaker_cached_functions'
#: A binding logs backend errors at most this often (seconds).
WARN_INTERVAL = 60.0
#: Returned as the stored form of a result that must not be stored.
NOT_STORED = object()
#: What a registry without bindings answers.
NO_BINDINGS = {}
#: Key, in a function's namespace, of its generation (see invalidate_all).
GENERATION_KEY = '~generation'
#: Prefix of the key marking that a key's last result was not stored.
UNSTORED_MARK = '!'
#: Most seconds an async caller waits for another process's creation lock.
ASYNC_POLL = (0.002, 0.05)
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

    def get_entries(self, keys):
        return [self.get_entry(key) for key in keys]

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

    def do_remove(self):
        self.manager.do_remove()


class Binding:
    """A decorated function bound to one app's region.

    Reads, writes and locks that fail are logged (each kind at most once
    per :data:`WARN_INTERVAL`) and the value is computed without the cache.
    A value the serializer cannot store raises :class:`TypeError` at once.

    Entries are ``(stored, ttl, value)`` tuples; in stores outside the
    process they carry a fourth item, the function's generation when they
    were computed, and an entry of an older generation reads as a miss
    (that is how :meth:`invalidate_all` reaches every process).
    """

    def __init__(self, cached, region, namespace):
        self.cached = cached
        self.region = region
        self.namespace = namespace
        self.expire = region.expire if cached.expire is None else cached.expire
        self.stale = cached.stale_while_revalidate
        if self.stale and self.expire is None:
            raise ConfigurationError(
                '@cached_region("%s", stale_while_revalidate=%r) on %s: entries '
                'of the region never expire, so they cannot be stale; give the '
                'region or the decorator an "expire"'
                % (region.name, self.stale, cached.where()))
        #: Seconds the store keeps an entry: fresh, then stale.
        self.ttl = None if self.expire is None else self.expire + self.stale
        self.process_local = region.process_local
        #: False when nothing can be stale on read: the store drops entries
        #: older than their stored expiry, which (namespaces of process-local
        #: stores being per app) is this binding's ``expire``.
        self.check_age = self.expire is not None and (
            bool(self.stale) or not region.backend.drops_expired)
        self.enabled = region.enabled
        self.key_length = region.key_length
        manager = region.namespace_manager(namespace)
        if not hasattr(manager, 'get_entry'):
            manager = _BeakerManager(manager)
        self.manager = manager
        #: ``get_entry(key)``: the entry of ``key`` (fresh or not) or None.
        self.get_entry = manager.get_entry if self.process_local else self._current_entry
        raw_get = getattr(manager, 'raw_get', None)
        if self.process_local and raw_get is not None:
            # The dict's own get: no Python frame on a hit; the caller checks
            # the age (expired entries are swept as new ones are written).
            self.get_entry = raw_get
            self.check_age = self.expire is not None
        self._read_entry = self.get_entry  # the same, never traced
        self._warned_at = {}  # action -> time.monotonic() of its last warning
        self._pending = {}  # (event loop, key) -> future of an async computation
        #: What the calls did in this process (see :mod:`pyramid_beaker.cache_stats`).
        self.counts = Counts()
        #: Set by a debugging tool that records each call, else None (see
        #: :mod:`pyramid_beaker.debugtoolbar`).
        self.tracer = None

    def warn(self, action, exc):
        self.counts.failed(action)
        current = time.monotonic()
        last = self._warned_at.get(action)
        if last is None or current - last >= WARN_INTERVAL:
            self._warned_at[action] = current
            log.warning('cache region %r could not %s an entry of %s (%s: %s); '
                        'computing without the cache', self.region.name, action,
                        self.cached.name, type(exc).__name__, exc)

    # -- reading ------------------------------------------------------------

    def _current_entry(self, key):
        """The entry of ``key`` if it belongs to the current generation."""
        entry, generation = self.manager.get_entries((key, GENERATION_KEY))
        if entry is None or len(entry) < 4 or entry[3] != _generation(generation):
            return None
        return entry

    def generation(self):
        """The function's current generation in the store (None at first)."""
        if self.process_local:
            return None
        return _generation(self.manager.get_entry(GENERATION_KEY))

    def fresh(self, entry):
        """True while ``entry`` is younger than this binding's ``expire``.

        The expiry stored in the entry only serves the storage (as a TTL):
        each app judges freshness by its own configuration.
        """
        return not self.check_age or time.time() - entry[0] < self.expire

    def usable_stale(self, entry):
        """True for an expired entry still within ``stale_while_revalidate``."""
        return bool(self.stale) and time.time() - entry[0] < self.ttl

    def read(self, key):
        """Return the entry of ``key`` (fresh or not), None on a miss or a failed read."""
        try:
            return self._read_entry(key)
        except Exception as exc:
            self.warn('read', exc)
            return None

    # -- writing ------------------------------------------------------------

    def write(self, key, value, generation=None):
        entry = (time.time(), self.ttl, value)
        if not self.process_local:
            entry += (generation,)
        try:
            self.manager.set_entry(key, entry, self.ttl)
        except UnstorableValue as exc:
            raise TypeError(
                '%s returned a %s, which cache region %r cannot store (%s); '
                'return a value its serializer accepts or keep it out with '
                'should_cache' % (self.cached.name, type(value).__qualname__,
                                  self.region.name, exc.__cause__ or exc)) from None
        except Exception as exc:
            self.warn('store', exc)
        else:
            self.counts.stores += 1

    def delete(self, key):
        try:
            del self.manager[key]
        except KeyError:
            pass
        except Exception as exc:
            self.warn('delete', exc)

    def invalidate_all(self):
        """Drop every entry of the function: this app's (memory), or everyone's.

        Memory namespaces are emptied; in other stores the function's
        generation is replaced, so every process sharing the store reads its
        older entries as misses (they go by their TTL).
        """
        if self.process_local:
            self.manager.do_remove()
        else:
            try:
                self.manager.set_entry(
                    GENERATION_KEY, (time.time(), None, secrets.token_hex(8)), None)
            except Exception as exc:
                self.warn('invalidate', exc)

    # -- computing ----------------------------------------------------------

    def _marked_unstored(self, key):
        """True when the last result computed for ``key`` was not stored."""
        mark = self.read(UNSTORED_MARK + key)
        return mark is not None and self.fresh(mark)

    def _finish(self, key, stored, generation, marked):
        """Store a computed result, or mark ``key`` as giving unstored results."""
        if stored is NOT_STORED:
            if not marked:
                self.write(UNSTORED_MARK + key, None, generation)
            return
        self.write(key, stored, generation)
        if marked:
            self.delete(UNSTORED_MARK + key)

    def _lock(self, key, wait=True):
        """The creation lock of ``key``, acquired, or None."""
        started = time.perf_counter()
        try:
            lock = self.manager.get_creation_lock(key)
            if not lock.acquire(wait):
                return None
            self.counts.locked(time.perf_counter() - started)
            return lock
        except Exception as exc:
            self.warn('lock', exc)
            return None

    def _unlock(self, lock):
        try:
            lock.release()
        except Exception as exc:
            self.warn('unlock', exc)

    def create(self, key, compute, replay=None, force=False, entry=None):
        """Compute and store the value of ``key``, once for all concurrent misses.

        ``entry`` is what the caller read (None on a miss): an expired entry
        within ``stale_while_revalidate`` is returned at once while another
        caller holds the creation lock.  Otherwise the creation lock
        serialises creators: whoever gets it after another found the entry
        that one stored, and returns ``replay(stored)`` (or the stored
        value).  A key whose last result was not stored is computed without
        the lock (after at most one wait), so such calls never queue.
        ``compute()`` returns ``(result, stored)``; ``stored`` is
        :data:`NOT_STORED` to keep the result out of the cache.  ``force``
        computes even when an entry exists (``refresh``).
        """
        started = time.perf_counter()
        generation = self.read_generation()
        marked = not force and self._marked_unstored(key)
        lock = None
        if not marked:
            if entry is not None and not force and self.usable_stale(entry):
                lock = self._lock(key, wait=False)
                if lock is None:
                    self.counts.hits += 1  # stale, while another caller refreshes
                    return entry[2] if replay is None else replay(entry[2])
            else:
                lock = self._lock(key)
        try:
            if not force and lock is not None:
                found = self.read(key)
                if found is not None and self.fresh(found):
                    self.counts.hits += 1  # stored by another caller meanwhile
                    return found[2] if replay is None else replay(found[2])
                if self._marked_unstored(key):
                    marked = True
                    self._unlock(lock)
                    lock = None
            self.counts.misses += 1
            result, stored = compute()
            self._finish(key, stored, generation, marked)
            return result
        finally:
            if lock is not None:
                self._unlock(lock)
            if self.tracer is not None:
                self.tracer.created(self, key, time.perf_counter() - started)

    async def create_async(self, key, compute, force=False, entry=None):
        """:meth:`create` for coroutines: ``await compute()`` gives ``(result, stored)``.

        Concurrent misses of one event loop await a single computation;
        other threads and processes are held off by the creation lock,
        polled without blocking the loop.
        """
        import asyncio  # here: importing it costs every app's start 15 ms

        loop = asyncio.get_running_loop()
        pending = self._pending.get((loop, key))
        if pending is not None and not force:
            return await asyncio.shield(pending)
        future = loop.create_future()
        self._pending[loop, key] = future
        try:
            result = await self._create_async(key, compute, force, entry)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self._pending.get((loop, key)) is future:
                del self._pending[loop, key]

    async def _create_async(self, key, compute, force, entry):
        import asyncio

        generation = self.read_generation()
        marked = not force and self._marked_unstored(key)
        lock = None
        if not marked:
            lock = self._lock(key, wait=False)
            if lock is None and entry is not None and not force and self.usable_stale(entry):
                self.counts.hits += 1  # stale, while another caller refreshes
                return entry[2]
            delay, deadline = ASYNC_POLL[0], time.monotonic() + _lock_timeout(self.manager)
            while lock is None and time.monotonic() < deadline:
                await asyncio.sleep(delay)
                delay = min(delay * 2, ASYNC_POLL[1])
                lock = self._lock(key, wait=False)
        try:
            if not force and lock is not None:
                found = self.read(key)
                if found is not None and self.fresh(found):
                    self.counts.hits += 1  # stored by another caller meanwhile
                    return found[2]
            self.counts.misses += 1
            result, stored = await compute()
            self._finish(key, stored, generation, marked)
            return result
        finally:
            if lock is not None:
                self._unlock(lock)

    def read_generation(self):
        """:meth:`generation`, or None (logged) when the store fails."""
        try:
            return self.generation()
        except Exception as exc:
            self.warn('read', exc)
            return None


def _generation(entry):
    return None if entry is None else entry[2]


def _lock_timeout(manager):
    timeout = getattr(manager, 'lock_timeout', None)
    return 30.0 if timeout is None else timeout


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
    """Bind ``cached`` to ``region`` in the app of ``registry``; return the binding.

    Two functions whose entries would share a namespace (closures made by
    one factory have one qualified name) raise ConfigurationError: give
    each its own ``name=``.
    """
    table = app_bindings(registry)
    namespace = namespace_of(cached, region, registry)
    for other, found in table.items():
        if other is not cached and found.namespace == namespace:
            raise ConfigurationError(
                '@cached_region("%s"): %s and %s have one name, "%s", so they '
                'would share entries; pass name="..." to tell them apart'
                % (region.name, other.where(), cached.where(), cached.name))
    binding = Binding(cached, region, namespace)
    previous = table.get(cached)
    if previous is not None and previous in previous.region.bindings:
        previous.region.bindings.remove(previous)
    table[cached] = binding
    region.bindings.append(binding)
    cached.bound_in = [ref for ref in cached.bound_in if ref() is not None]
    cached.bound_in.append(weakref.ref(binding))
    return binding


def binding_for(cached, registry):
    """The binding ``cached`` uses when ``registry`` is the current one, or None.

    The current app's binding; with no app current (``registry`` is
    Pyramid's global registry), the binding of the app created last, among
    those that bound the function and still exist.
    """
    binding = getattr(registry, BINDINGS, NO_BINDINGS).get(cached)
    if binding is None and registry is global_registry:
        for ref in reversed(cached.bound_in):
            binding = ref()
            if binding is not None:
                break
    return binding


def region_bindings(registry, name):
    """This app's bindings to region ``name``."""
    return [binding for binding in bindings(registry).values()
            if binding.region.name == name]
