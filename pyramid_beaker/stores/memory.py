"""In-process storage: sessions and cache entries kept in this process's memory.

Nothing leaves the process, so nothing is signed; session records are still
serialized (JSON by default) so that memory sessions behave exactly like the
server-side ones.  Idle sessions are swept out as sessions are saved, so a
process does not keep dead sessions forever.
"""
import collections
import threading
import weakref

from beaker.synchronization import NameLock

from ..coerce import as_positive_int
from .base import Backend, NamespaceManager, Record, SessionStore, merge, now


class MemorySessionStore(SessionStore):
    """Session records in a dict of this process, guarded by one lock.

    Records are kept in the order they were last saved or touched, which is
    the order they expire in (every save and touch gives the same lifetime).
    Each save drops at most ``sweep_batch`` expired records from the old
    end, so sweeping never holds the lock for long however many sessions
    the process keeps.
    """

    name = 'memory'
    sweep_batch = 100
    #: Records :meth:`purge_expired` examines per hold of the lock.
    purge_chunk = 2000

    def __init__(self, options, codec):
        super().__init__(options, codec)
        # id -> [serialized data, created, accessed, expires]
        self.records = collections.OrderedDict()
        self.lock = threading.Lock()

    def load(self, session_id):
        entry = self.records.get(session_id)
        if entry is None or entry[3] < now():
            return None
        return Record(self.codec.loads(entry[0]), entry[1], entry[2])

    def save(self, session_id, changed, deleted, created, accessed, ttl, create=True,
             token=None):
        with self.lock:
            entry = self.records.pop(session_id, None)
            if entry is None or entry[3] < now():
                if not create:
                    return False
                data = {}
            else:
                data = self.codec.loads(entry[0])
                created = entry[1]
            merge(data, changed, deleted)
            self.records[session_id] = [
                self.codec.dumps(data), created, accessed, accessed + ttl]
            self._sweep(now())
            return True

    def touch(self, session_id, accessed, ttl, token=None):
        with self.lock:
            entry = self.records.get(session_id)
            if entry is None or entry[3] < now():
                return False
            entry[2], entry[3] = accessed, accessed + ttl
            self.records.move_to_end(session_id)
            return True

    def delete(self, session_id):
        with self.lock:
            self.records.pop(session_id, None)

    def purge_expired(self, max_idle, now_=None, progress=None):
        """Drop every record past its own expiry, in short locked steps.

        (Records carry the lifetime they were saved with, so ``max_idle``
        is not needed here.)
        """
        when = now() if now_ is None else now_
        with self.lock:
            ids = list(self.records)
        dropped = 0
        for start in range(0, len(ids), self.purge_chunk):
            with self.lock:
                for session_id in ids[start:start + self.purge_chunk]:
                    entry = self.records.get(session_id)
                    if entry is not None and entry[3] < when:
                        del self.records[session_id]
                        dropped += 1
            if progress is not None:
                progress(min(start + self.purge_chunk, len(ids)), len(ids))
        return dropped

    def _sweep(self, when):
        """Drop up to ``sweep_batch`` expired records from the old end (locked)."""
        records = self.records
        for _ in range(self.sweep_batch):
            oldest = next(iter(records), None)
            if oldest is None or records[oldest][3] >= when:
                return
            del records[oldest]


class _Entries(dict):
    """One namespace's entries (a dict that weak references can point to).

    Keys are kept in insertion order, least recently used first when the
    namespace has a ``max_entries`` cap.
    """

    __slots__ = ('__weakref__', 'lock', 'sweep_at')

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.sweep_at = 0.0


class MemoryNamespaceManager(NamespaceManager):
    """Cache entries in a dict shared by every manager of the same namespace.

    Values are kept as Python objects (no serialization), as in Beaker's
    own memory backend.  Expired entries read as misses and are swept out
    as new entries are written (at most once per ``SWEEP_EVERY`` seconds,
    or per expiry time when shorter).  With ``max_entries`` a namespace
    keeps at most that many entries, dropping the least recently used.  A
    namespace lives as long as a manager of it does: the entries of an app
    that was garbage-collected go with its regions.
    """

    name = 'memory'
    SWEEP_EVERY = 60.0
    _namespaces = weakref.WeakValueDictionary()
    _namespaces_lock = threading.Lock()

    def __init__(self, namespace, max_entries=None, **options):
        super().__init__(namespace)
        with self._namespaces_lock:
            entries = self._namespaces.get(namespace)
            if entries is None:
                entries = self._namespaces[namespace] = _Entries()
        self.dictionary = entries
        self.max_entries = max_entries
        #: ``raw_get(key)``: the stored entry, expired or not (None without an
        #: LRU order to keep up): the cheapest read, for callers that check
        #: the age themselves.
        self.raw_get = entries.get
        if max_entries is not None:
            self.get_entry = self._get_recent
            self.raw_get = None
        self.options = options

    def get_creation_lock(self, key):
        return NameLock(identifier='memorycontainer/funclock/%s/%s'
                        % (self.namespace, key), reentrant=True)

    def get_entry(self, key):
        """Return the ``(stored, expire, value)`` entry or None (no locks)."""
        entry = self.dictionary.get(key)
        if entry is not None and entry[1] is not None and entry[0] + entry[1] <= now():
            self.dictionary.pop(key, None)
            return None
        return entry

    def _get_recent(self, key):
        """:meth:`get_entry` that also marks ``key`` as the most recently used."""
        entries = self.dictionary
        entry = entries.pop(key, None)
        if entry is None:
            return None
        if entry[1] is not None and entry[0] + entry[1] <= now():
            return None
        entries.setdefault(key, entry)
        return entry

    def get_entries(self, keys):
        return [self.get_entry(key) for key in keys]

    def set_entry(self, key, entry, expiretime=None):
        entries = self.dictionary
        entry = tuple(entry)
        with entries.lock:
            entries.pop(key, None)
            entries[key] = entry
            current = now()
            if current >= entries.sweep_at:
                self._sweep(current)
                every = self.SWEEP_EVERY if entry[1] is None else min(self.SWEEP_EVERY, entry[1])
                entries.sweep_at = current + every
            if self.max_entries is not None:
                while len(entries) > self.max_entries:
                    del entries[next(iter(entries))]

    def _sweep(self, current):
        """Drop expired entries (the caller holds the namespace's lock)."""
        entries = self.dictionary
        # list() copies in one step: readers and deleters never lock.
        expired = [key for key, entry in list(entries.items())
                   if entry[1] is not None and entry[0] + entry[1] <= current]
        for key in expired:
            entries.pop(key, None)

    def __getitem__(self, key):
        return self.dictionary[key]

    def __contains__(self, key):
        return key in self.dictionary

    def __setitem__(self, key, value):
        self.set_entry(key, value)

    def set_value(self, key, value, expiretime=None):
        self.set_entry(key, value, expiretime)

    def __delitem__(self, key):
        self.dictionary.pop(key, None)

    def do_remove(self):
        self.dictionary.clear()

    def keys(self):
        return list(self.dictionary)


BACKEND = Backend(
    'memory',
    session_store=MemorySessionStore,
    namespace_manager=MemoryNamespaceManager,
    beaker_name='pyramid_beaker.memory',
    process_local=True,
    drops_expired=True,
    signs_sessions=False,
    signs_entries=False,
    options={'max_entries': as_positive_int},  # the most entries a namespace keeps
    region_only=('max_entries',),
)
