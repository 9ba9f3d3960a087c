"""dbm file storage (``dbm``): sessions and cache entries in local dbm files.

New files use Python's default ``dbm`` module (``dbm.sqlite3`` on 3.13+,
then gdbm, ndbm, else ``dbm.dumb``); existing files are opened with the
module that wrote them.  None of them is safe for concurrent writers, so
every operation opens the file under an ``fcntl.flock`` on a lock file
(shared to read, exclusive to write) and closes it before unlocking.  That
makes saves atomic merges across threads and processes of one machine.

Opening a ``dbm.dumb`` database reads its whole index (one line per
entry), so reopening it for each operation made every read cost O(number of
entries).  Such a database is therefore kept open between operations, and
each writer stamps the lock file with a fresh random token: an operation
reuses the open database only when the token and the index file's identity
are what they were when this process last opened or wrote it.  The other
dbm modules open in O(1) and are reopened each time.
"""
import contextlib
import dbm
import fcntl
import hashlib
import os
import secrets
import struct
import time

from beaker.synchronization import file_synchronizer
from pyramid.exceptions import ConfigurationError

from ..coerce import as_path
from .base import (
    Backend,
    BaseNamespaceManager,
    SessionBackendError,
    SessionStore,
    make_directories,
    merge,
    pack_record,
)

#: File-name endings the dbm modules use for one database.
_SUFFIXES = ('', '.db', '.dat', '.dir', '.bak', '.pag')
#: Session values start with (accessed, expires), unsigned, for expiry and purging.
_TIMES = struct.Struct('>dd')


#: Bytes at the start of the lock file holding the last writer's token.
_TOKEN_SIZE = 16


@contextlib.contextmanager
def flocked(path, exclusive):
    """Hold a shared or exclusive ``flock`` on the file ``path``; yield its fd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield fd
    finally:
        os.close(fd)


def _is_dumb(db):
    return type(db).__module__ == 'dbm.dumb'


def _mark_clean(db):
    """Tell a synced ``dbm.dumb`` database its index is saved; return success.

    It never forgets that it was modified, so it would rewrite its index
    again when closed or collected, later, without our lock, from a copy
    that may be stale by then.  Its ``_modified`` flag is private: when it
    is missing, the caller closes the database instead of keeping it.
    """
    if not hasattr(db, '_modified'):
        return False
    db._modified = False
    return True


class DBMFile:
    """A dbm database opened for one operation at a time under a file lock.

    The database is created by its first write; until then it reads as empty.
    A ``dbm.dumb`` database stays open between operations (see the module
    docstring); ``_kept`` is ``(version, db)``, where ``version`` is what
    :meth:`_version` returned when ``db`` was last known current.
    """

    def __init__(self, path, lock_path):
        self.path = path
        self.lock_path = lock_path
        self._kept = None

    @contextlib.contextmanager
    def open(self, write=False):
        """Yield the open database; writers exclude everyone else."""
        with flocked(self.lock_path, write) as fd:
            version = self._version(fd)
            kept = self._kept
            if kept is not None and version is not None and kept[0] == version:
                db = kept[1]
            elif not write and dbm.whichdb(self.path) is None:
                yield {}
                return
            else:
                db = dbm.open(self.path, 'c' if write or self._is_dumb_file() else 'r')
                if not _is_dumb(db):
                    with contextlib.closing(db):
                        yield db
                    return
            if not write:
                self._kept = (version, db)
                yield db
                return
            self._kept = None
            try:
                yield db
            finally:
                db.sync()
                os.pwrite(fd, secrets.token_bytes(_TOKEN_SIZE), 0)
            if _mark_clean(db):
                self._kept = (self._version(fd), db)
            else:
                db.close()

    def _is_dumb_file(self):
        return dbm.whichdb(self.path) == 'dbm.dumb'

    def _version(self, fd):
        """The last writer's token and the index file's identity (call while locked)."""
        try:
            info = os.stat(self.path + '.dir')
        except FileNotFoundError:
            return None
        return os.pread(fd, _TOKEN_SIZE, 0), info.st_ino, info.st_size, info.st_mtime_ns

    def _forget(self, fd):
        """Drop the kept database and tell other processes to drop theirs."""
        self._kept = None
        os.pwrite(fd, secrets.token_bytes(_TOKEN_SIZE), 0)

    def _opened(self, flag):
        """Open the database (call while locked); a missing one reads as empty."""
        if flag == 'r' and dbm.whichdb(self.path) is None:
            return contextlib.nullcontext({})
        return contextlib.closing(dbm.open(self.path, flag))

    def keep_only(self, wanted, progress=None):
        """Drop every entry whose value ``wanted(value)`` rejects; return how many.

        Survivors are copied into a fresh database that replaces the old one:
        deleting keys one by one would not shrink the files, and ``dbm.dumb``
        rewrites its whole index for each deleted key.  ``progress(done,
        total)`` is called once all entries were examined.
        """
        with flocked(self.lock_path, True) as fd:
            self._forget(fd)
            with self._opened('r') as db:
                items = [(key, db[key]) for key in db.keys()]
            kept = [(key, value) for key, value in items if wanted(value)]
            if progress is not None:
                progress(len(items), len(items))
            if len(kept) < len(items):
                self._rewrite(kept)
        return len(items) - len(kept)

    def _rewrite(self, items):
        """Replace the database by one holding only ``items`` (call while locked)."""
        fresh = self.path + '.new'
        with contextlib.closing(dbm.open(fresh, 'n')) as db:
            for key, value in items:
                db[key] = value
        for suffix in _SUFFIXES:
            if os.path.exists(fresh + suffix):
                os.replace(fresh + suffix, self.path + suffix)
            elif os.path.exists(self.path + suffix):
                os.remove(self.path + suffix)

    def remove(self):
        """Delete the database files."""
        with flocked(self.lock_path, True) as fd:
            self._forget(fd)
            for suffix in _SUFFIXES:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(self.path + suffix)


def _directories(options):
    """Return ``(data_dir, lock_dir)``, creating them."""
    data_dir = options.get('data_dir')
    if not data_dir:
        raise ConfigurationError('"data_dir" is required for dbm storage')
    lock_dir = options.get('lock_dir') or data_dir
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(lock_dir, exist_ok=True)
    return data_dir, lock_dir


class DBMSessionStore(SessionStore):
    """All sessions of one factory in the dbm file ``<data_dir>/sessions``.

    Each value is ``(accessed, expires)`` packed as two doubles, followed by
    the signed record.
    """

    name = 'dbm'

    def __init__(self, options, codec):
        super().__init__(options, codec)
        data_dir, lock_dir = _directories(options)
        self.file = DBMFile(os.path.join(data_dir, 'sessions'),
                            os.path.join(lock_dir, 'sessions.lock'))

    @contextlib.contextmanager
    def _errors(self):
        try:
            yield
        except dbm.error as exc:
            raise SessionBackendError(
                'dbm session store %s failed: %s' % (self.file.path, exc)) from exc

    def _record(self, session_id, raw):
        """Return the Record in a stored value, or None if absent, expired or forged."""
        if raw is None:
            return None
        if len(raw) > _TIMES.size and _TIMES.unpack_from(raw)[1] < time.time():
            return None
        return self._decode(session_id, raw[_TIMES.size:])

    def load(self, session_id):
        with self._errors(), self.file.open() as db:
            raw = db.get(session_id)
        return self._record(session_id, raw)

    def save(self, session_id, changed, deleted, created, accessed, ttl, create=True,
             token=None):
        return self._update(session_id, changed, deleted, created, accessed, ttl, create)

    def touch(self, session_id, accessed, ttl, token=None):
        return self._update(session_id, {}, (), None, accessed, ttl, False)

    def _update(self, session_id, changed, deleted, created, accessed, ttl, create):
        with self._errors(), self.file.open(write=True) as db:
            record = self._record(session_id, db.get(session_id))
            if record is None and not create:
                return False
            data = merge(record.data if record else {}, changed, deleted)
            packed = pack_record(data, record.created if record else created, accessed)
            db[session_id] = _TIMES.pack(accessed, accessed + ttl) + self.codec.dumps(packed)
            return True

    def delete(self, session_id):
        with self._errors(), self.file.open(write=True) as db:
            if session_id in db:
                del db[session_id]

    def purge_expired(self, max_idle, now=None, progress=None):
        """Drop sessions past their expiry; compacts the file.

        Each record's expiry is its access time plus the lifetime it was
        saved with (its own, from ``set_expiry``, or the factory's), so
        ``max_idle`` is not needed here.
        """
        now = time.time() if now is None else now

        def alive(raw):
            if len(raw) <= _TIMES.size:
                return True  # not ours: leave it alone
            accessed, expires = _TIMES.unpack_from(raw)
            return expires >= now

        with self._errors():
            return self.file.keep_only(alive, progress)


class DBMNamespaceManager(BaseNamespaceManager):
    """Cache entries of one namespace in their own dbm file.

    Files live in ``<data_dir>/cache_dbm/``, named by a digest of the
    namespace; creation locks are Beaker file locks in ``lock_dir``
    (default ``data_dir``).
    """

    name = 'dbm'

    def __init__(self, namespace, **options):
        super().__init__(namespace, **options)
        data_dir, self.lock_dir = _directories(self.options)
        digest = hashlib.sha1(namespace.encode('utf-8')).hexdigest()
        paths = [os.path.join(root, 'cache_dbm') for root in (data_dir, self.lock_dir)]
        for path in paths:
            os.makedirs(path, exist_ok=True)
        self.file = DBMFile(os.path.join(paths[0], digest),
                            os.path.join(paths[1], digest + '.lock'))

    def _get_raw(self, key):
        with self.file.open() as db:
            return db.get(key)

    def _set_raw(self, key, raw, expiretime):
        with self.file.open(write=True) as db:
            db[key] = raw

    def _delete(self, key):
        with self.file.open(write=True) as db:
            if key in db:
                del db[key]

    def keys(self):
        with self.file.open() as db:
            return list(db.keys())

    def do_remove(self):
        self.file.remove()

    def get_creation_lock(self, key):
        if isinstance(key, str):
            key = key.encode('utf-8')  # the same lock for b'k' and 'k'
        return file_synchronizer(
            identifier='pyramid_beaker/dbm/%s/%s' % (self.namespace, key.hex()),
            lock_dir=self.lock_dir)


BACKEND = Backend(
    'dbm',
    session_store=DBMSessionStore,
    namespace_manager=DBMNamespaceManager,
    beaker_name='pyramid_beaker.dbm',
    location=('data_dir',),
    options={'data_dir': as_path, 'lock_dir': as_path},
    check=make_directories,
)
