"""What every store provides: the session-store API and the cache-region base.

A *session store* keeps one record per session id and saves changes as an
atomic merge, so concurrent requests that change different keys of one
session all keep their change.  A *namespace manager* is Beaker's storage
interface for cache regions; ours sign what they store (see ``codec``).
"""
import collections
import logging
import secrets
import time

from beaker.container import NamespaceManager

from ..codec import InvalidData, SignedCodec

log = logging.getLogger('pyramid_beaker')

Record = collections.namedtuple('Record', 'data created accessed')
Record.__doc__ = 'A loaded session: its user data, creation and access times.'


class SessionBackendError(RuntimeError):
    """The session store could not be reached or failed.

    Raised from the first use of ``request.session`` (load) or when the
    response is being finished (save).  Nothing is written anywhere else.
    """


def merge(data, changed, deleted):
    """Apply a session change set to ``data`` in place and return it."""
    for key in deleted:
        data.pop(key, None)
    data.update(changed)
    return data


def pack_record(data, created, accessed):
    """Return the dict form of a record, as whole-record stores save it."""
    return {'d': data, 'c': created, 'a': accessed}


def unpack_record(obj):
    """Return a :class:`Record` from :func:`pack_record`'s form, or raise InvalidData."""
    try:
        data, created, accessed = obj['d'], float(obj['c']), float(obj['a'])
    except (TypeError, KeyError, ValueError) as exc:
        raise InvalidData('malformed session record') from exc
    if not isinstance(data, dict):
        raise InvalidData('malformed session record')
    return Record(data, created, accessed)


class SessionStore:
    """Base class of session stores.

    ``options`` are the coerced session options, ``codec`` the object that
    turns values into bytes and back (see :mod:`pyramid_beaker.codec`).
    One instance serves every thread of a process.
    """

    name = 'base'
    #: True for stores that keep the whole session in the cookie.
    client_side = False

    def __init__(self, options, codec):
        self.options = options
        self.codec = codec

    def load(self, session_id):
        """Return the stored :class:`Record`, or None when absent or unreadable."""
        raise NotImplementedError

    def save(self, session_id, changed, deleted, created, accessed, ttl):
        """Atomically set ``changed``, remove ``deleted``, keep every other stored key."""
        raise NotImplementedError

    def touch(self, session_id, accessed, ttl):
        """Record a new access time and push the expiry ``ttl`` seconds ahead."""
        raise NotImplementedError

    def delete(self, session_id):
        """Remove the record of ``session_id`` (no error when absent)."""
        raise NotImplementedError

    def purge_expired(self, max_idle, now=None, progress=None):
        """Delete records idle for more than ``max_idle`` seconds; return how many.

        ``progress(done, total)``, when given, is called now and then.
        """
        raise NotImplementedError(
            'the %s store expires sessions by itself' % self.name)

    def close(self):
        """Release connections and file handles."""

    def _decode(self, session_id, raw):
        """Return a :class:`Record` from stored bytes, or None (logged) if invalid."""
        try:
            return unpack_record(self.codec.loads(raw))
        except InvalidData as exc:
            log.warning('ignoring unreadable %s session %s...: %s',
                        self.name, session_id[:8], exc)
            return None


class BaseNamespaceManager(NamespaceManager):
    """Beaker namespace manager whose entries are signed envelopes.

    Subclasses implement :meth:`_get_raw`, :meth:`_set_raw`, :meth:`_delete`
    and the rest of Beaker's interface (``__contains__``, ``do_remove``,
    ``get_creation_lock``).  Entries are Beaker's ``(stored, expire, value)``
    tuples; an entry that fails verification reads as a miss.
    """

    name = 'base'

    def __init__(self, namespace, secret=None, data_serializer='pickle', **options):
        super().__init__(namespace)
        if not secret:
            raise ValueError(
                'cache regions of type %r need a "secret" to sign what they '
                'store' % self.name)
        self.codec = SignedCodec(data_serializer, secret, 'cache')
        self.options = options

    def _get_raw(self, key):
        """Return the stored bytes for ``key`` or None."""
        raise NotImplementedError

    def _set_raw(self, key, raw, expiretime):
        raise NotImplementedError

    def _delete(self, key):
        raise NotImplementedError

    def get_entry(self, key):
        """Return the ``(stored, expire, value)`` entry for ``key`` or None."""
        raw = self._get_raw(key)
        if raw is None:
            return None
        try:
            return tuple(self.codec.loads(raw))
        except (InvalidData, TypeError) as exc:
            log.warning('cache %s: ignoring unreadable entry in %s: %s',
                        self.name, self.namespace, exc)
            return None

    def set_entry(self, key, entry, expiretime=None):
        """Store an entry; ``expiretime`` (seconds) lets the server drop it."""
        self._set_raw(key, self.codec.dumps(tuple(entry)), expiretime)

    def __getitem__(self, key):
        entry = self.get_entry(key)
        if entry is None:
            raise KeyError(key)
        return entry

    def __contains__(self, key):
        return self.get_entry(key) is not None

    def __setitem__(self, key, value):
        self.set_value(key, value)

    def set_value(self, key, value, expiretime=None):
        self.set_entry(key, value, expiretime)

    def __delitem__(self, key):
        self._delete(key)


#: Wall-clock seconds; one name so stores, sessions and caches agree.
now = time.time


class TokenLock:
    """Base of cross-process creation locks held by a random token on a server.

    :meth:`acquire` polls :meth:`_try_acquire`, sleeping between tries from
    ``first_delay``, doubling up to ``max_delay``.  With ``wait=True`` it
    gives up after ``timeout`` seconds (subclasses make the lock expire
    after as long, so a crashed holder blocks others no longer) and returns
    False; with ``wait=False`` it tries once.  :meth:`release` hands the
    token to :meth:`_release`, which must free the lock only if the server
    still holds that token.  The interface is Beaker's synchronizer's.
    """

    first_delay = 0.005
    max_delay = 0.1

    def __init__(self, timeout):
        self.timeout = timeout
        self.token = None

    def _try_acquire(self, token):
        """Take the lock for ``token`` if it is free; return a bool."""
        raise NotImplementedError

    def _release(self, token):
        """Free the lock if ``token`` still holds it."""
        raise NotImplementedError

    def acquire(self, wait=True):
        """Take the lock; with ``wait=False`` only try once.  Return a bool."""
        token = secrets.token_hex(16).encode()
        deadline = time.monotonic() + (self.timeout if wait else 0)
        delay = self.first_delay
        while not self._try_acquire(token):
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, self.max_delay)
        self.token = token
        return True

    def release(self):
        """Release the lock if this object holds it (again: no effect)."""
        token, self.token = self.token, None
        if token is not None:
            self._release(token)

    acquire_write_lock = acquire
    release_write_lock = release
