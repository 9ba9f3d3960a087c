"""File storage: one file per session and per cache entry under ``data_dir``.

Files are written whole to a temporary name and renamed into place, so a
reader never sees half a file and needs no lock.  Saving a session takes an
exclusive ``fcntl`` lock (one lock file per 256th of the id space, under
``lock_dir``), which makes the read-merge-write atomic across processes.
"""
import fcntl
import hashlib
import os
import shutil
import tempfile

from beaker.synchronization import file_synchronizer

from ..codec import InvalidData
from .base import (
    Backend,
    BaseNamespaceManager,
    SessionStore,
    make_directories,
    merge,
    now,
    own_lifetime,
    pack_record,
    unpack_record,
)


def _read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except FileNotFoundError:
        return None


#: Name prefix of the temporary files writers rename into place.
_TEMPORARY = '.tmp-'
#: Age in seconds after which a temporary file is a dead writer's leftover.
STALE_TEMPORARY = 600


def _unlink_older(paths, limit):
    """Delete the files of ``paths`` last modified before ``limit``."""
    for path in paths:
        try:
            if os.path.getmtime(path) < limit:
                os.unlink(path)
        except FileNotFoundError:  # renamed into place or removed meanwhile
            pass


def _write(path, data):
    """Write ``data`` to ``path`` atomically (temporary file, then rename)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_TEMPORARY)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class _FileLock:
    """An exclusive ``flock`` on ``path``, as a context manager."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


class FileSessionStore(SessionStore):
    """Sessions as files ``<data_dir>/sessions/<ab>/<id>``."""

    name = 'file'

    def __init__(self, options, codec):
        super().__init__(options, codec)
        self.root = os.path.join(options['data_dir'], 'sessions')
        self.lock_root = os.path.join(
            options['lock_dir'] or options['data_dir'], 'session-locks')
        os.makedirs(self.root, exist_ok=True)
        os.makedirs(self.lock_root, exist_ok=True)

    def _path(self, session_id):
        return os.path.join(self.root, session_id[:2], session_id)

    def _lock(self, session_id):
        return _FileLock(os.path.join(self.lock_root, session_id[:2] + '.lock'))

    def load(self, session_id):
        raw = _read(self._path(session_id))
        return None if raw is None else self._decode(session_id, raw)

    def save(self, session_id, changed, deleted, created, accessed, ttl, create=True,
             token=None):
        path = self._path(session_id)
        with self._lock(session_id):
            raw = _read(path)
            record = None if raw is None else self._decode(session_id, raw)
            if record is not None and record.accessed + ttl < now():
                record = None  # expired: as good as gone
            if record is None:
                if not create:
                    return False
                data = {}
            else:
                data, created = record.data, record.created
            merge(data, changed, deleted)
            _write(path, self.codec.dumps(pack_record(data, created, accessed)))
            return True

    def touch(self, session_id, accessed, ttl, token=None):
        return self.save(session_id, {}, (), accessed, accessed, ttl, create=False)

    def delete(self, session_id):
        with self._lock(session_id):
            _unlink(self._path(session_id))

    def purge_expired(self, max_idle, now_=None, progress=None):
        """Delete session files idle for more than ``max_idle`` seconds.

        The file's stored access time decides, with the session's own
        lifetime (``set_expiry``) instead of ``max_idle`` when it has one; a
        file that cannot be read as ours (a planted or corrupt file) is
        deleted too once its modification time is that old.  Temporary files older than
        :data:`STALE_TEMPORARY` seconds, left by writers killed mid-write,
        are deleted as well (they are not counted).
        """
        when = now() if now_ is None else now_
        paths, temporary = [], []
        for shard in sorted(os.listdir(self.root)):
            directory = os.path.join(self.root, shard)
            if os.path.isdir(directory):
                for name in os.listdir(directory):
                    found = temporary if name.startswith(_TEMPORARY) else paths
                    found.append(os.path.join(directory, name))
        _unlink_older(temporary, when - STALE_TEMPORARY)
        removed = 0
        for done, path in enumerate(paths, 1):
            if self._purge_one(os.path.basename(path), path, when, max_idle):
                removed += 1
            if progress is not None and (done % 100 == 0 or done == len(paths)):
                progress(done, len(paths))
        return removed

    def _purge_one(self, session_id, path, when, max_idle):
        with self._lock(session_id):
            raw = _read(path)
            if raw is None:
                return False
            try:
                record = unpack_record(self.codec.loads(raw))
                expires = record.accessed + (own_lifetime(record.data) or max_idle)
            except InvalidData:
                expires = os.path.getmtime(path) + max_idle
            if expires >= when:
                return False
            _unlink(path)
            return True


def _digest(value):
    if isinstance(value, str):
        value = value.encode('utf-8')
    return hashlib.sha256(value).hexdigest()


class FileNamespaceManager(BaseNamespaceManager):
    """Cache entries as files ``<data_dir>/cache/<namespace hash>/<key hash>``."""

    name = 'file'

    def __init__(self, namespace, data_dir=None, lock_dir=None, **options):
        if not data_dir:
            raise ValueError('file cache regions need a "data_dir"')
        super().__init__(namespace, **options)
        self.directory = os.path.join(data_dir, 'cache', _digest(namespace)[:32])
        self.lock_dir = lock_dir or os.path.join(data_dir, 'cache-locks')

    def _path(self, key):
        return os.path.join(self.directory, _digest(key))

    def get_creation_lock(self, key):
        return file_synchronizer(
            identifier='pyramid_beaker/%s/%s' % (self.directory, _digest(key)),
            lock_dir=self.lock_dir)

    def _get_raw(self, key):
        return _read(self._path(key))

    def _set_raw(self, key, raw, expiretime):
        _write(self._path(key), raw)

    def _delete(self, key):
        _unlink(self._path(key))

    def do_remove(self):
        shutil.rmtree(self.directory, ignore_errors=True)


BACKEND = Backend(
    'file',
    session_store=FileSessionStore,
    namespace_manager=FileNamespaceManager,
    beaker_name='pyramid_beaker.file',
    location=('data_dir',),
    check=make_directories,
)
