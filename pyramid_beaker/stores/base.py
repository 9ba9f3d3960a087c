"""What every store provides: the session-store API and the cache-region base.

A *session store* keeps one record per session id and saves changes as an
atomic merge, so concurrent requests that change different keys of one
session all keep their change.  A *namespace manager* is Beaker's storage
interface for cache regions; ours sign what they store (see ``codec``).
"""
import collections
import logging
import os
import secrets
import time

from beaker.container import NamespaceManager
from pyramid.exceptions import ConfigurationError

from ..codec import InvalidData, SignedCodec

log = logging.getLogger('pyramid_beaker')

Record = collections.namedtuple('Record', 'data created accessed stale token',
                                defaults=(False, None))
Record.__doc__ = """A loaded session: its user data, creation and access times.

``stale`` is True when the record should be written again: signed with an
old secret (``secret_fallbacks``) or not encrypted as ``encrypt_key`` asks.
``token``, from stores that give one, names the exact stored version that
was read; handed back to :meth:`SessionStore.save`, it lets the store write
with one conditional operation while that version is still the stored one.
"""

#: Key under which a session's own idle timeout (``set_expiry``) is stored
#: with its data; the session hides it from the app.
EXPIRY_KEY = '_pb.expiry'


def own_lifetime(data):
    """Return the idle timeout a session's stored ``data`` sets for itself, or None."""
    value = data.get(EXPIRY_KEY)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


class Backend:
    """Everything the package needs to know about one storage type.

    Each store module exports one, named ``BACKEND``; settings, sessions,
    cache regions, ``@cached_region`` and ``pbeaker`` ask it instead of
    comparing type names.

    :param name: the canonical type name (``session.type = ext:redis``).
    :param aliases: other names accepted for it (``redis``).
    :param session_store: the :class:`SessionStore` class, or None.
    :param namespace_manager: the Beaker namespace manager class for cache
        regions, or None when the type cannot hold regions.
    :param beaker_name: the manager's name in Beaker's ``beaker.backends``
        registry (``beaker.cache.clsmap``).
    :param location: the options that say where data is kept, any one of
        which is enough (``('url', 'client')``); the first is named when
        none is set.  Empty for types that need none.
    :param process_local: True when data lives inside each process.
    :param drops_expired: True when the namespace manager's ``get_entry``
        drops entries older than their stored expiry.
    :param signs_sessions: True when session records are signed with
        ``secret`` (they leave the process); False keeps plain copies.
    :param signs_entries: the same for cache entries.
    :param options: ``{option: coercer}`` for the type's own options; a
        name ending in ``.`` coerces a family (``sa.`` for ``sa.pool_size``).
    :param region_only: the names among ``options`` that only cache regions
        take (``lock_timeout``); sessions refuse them.
    :param connect: ``connect(options)`` returns the client, pool or engine
        both the session store and the namespace manager use (a ready one
        given in the options is returned as is).
    :param check: ``check(options, label)`` raises
        :class:`~pyramid.exceptions.ConfigurationError` for options that
        are wrong together; ``label(option)`` is the setting key to blame.
    """

    #: True when cache regions hand options the type does not declare to
    #: the namespace manager as given (Beaker's own classes).
    open_options = False

    def __init__(self, name, *, aliases=(), session_store=None,
                 namespace_manager=None, beaker_name=None, location=(),
                 process_local=False, drops_expired=False, signs_sessions=True,
                 signs_entries=True, options=None, region_only=(), connect=None,
                 check=None):
        self.name = name
        self.aliases = tuple(aliases)
        self.session_store = session_store
        self.namespace_manager = namespace_manager
        self.beaker_name = beaker_name
        self.location = tuple(location)
        self.process_local = process_local
        self.drops_expired = drops_expired
        self.signs_sessions = signs_sessions
        self.signs_entries = signs_entries
        self.options = dict(options or {})
        self.region_only = frozenset(region_only)
        self._connect = connect
        self._check = check

    def __repr__(self):
        return '<Backend %s>' % self.name

    @property
    def names(self):
        """The canonical name and the aliases."""
        return (self.name,) + self.aliases

    def type_name(self, name):
        """Return the canonical name if ``name`` is one of ours, else None."""
        return self.name if name in self.names else None

    def coercer(self, option, sessions=False):
        """Return the coercer of ``option`` (or of its family), or None.

        With ``sessions``, options only cache regions take have none.
        """
        if sessions and option in self.region_only:
            return None
        found = self.options.get(option)
        if found is None and '.' in option:
            found = self.options.get(option.split('.', 1)[0] + '.')
        return found

    def beaker_type(self, type_name):
        """The name Beaker's registry knows ``type_name``'s namespace manager by."""
        return self.beaker_name

    def process_local_of(self, type_name):
        """True when ``type_name`` (one of our names) keeps data in each process."""
        return self.process_local

    def location_of(self, type_name):
        """The location options of ``type_name`` (one of our names)."""
        return self.location

    def check(self, options, type_name, label):
        """Raise ConfigurationError unless ``options`` can work for ``type_name``.

        ``label(option)`` returns the setting key to blame.
        """
        location = self.location_of(type_name)
        if location and not any(options.get(name) is not None
                                for name in location):
            others = ' or '.join('"%s"' % label(name) for name in location[1:])
            raise ConfigurationError(
                '"%s" is required for "%s" = %s%s'
                % (label(location[0]), label('type'), type_name,
                   ' (or %s)' % others if others else ''))
        if self._check is not None:
            self._check(options, label)

    def connect(self, options):
        """Return a new client, pool or engine for ``options`` (or the ready one)."""
        if self._connect is None:
            raise TypeError('%s stores have no connection' % self.name)
        return self._connect(options)


def make_directories(options, label):
    """Create ``data_dir`` and ``lock_dir`` at startup; a path that cannot be
    a writable directory raises ConfigurationError naming its setting."""
    for name in ('data_dir', 'lock_dir'):
        path = options.get(name)
        if not path:
            continue
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError('"%s" = %r cannot be created: %s'
                                     % (label(name), path, exc.strerror or exc)) from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigurationError('"%s" = %r is not a writable directory'
                                     % (label(name), path))


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


def unpack_record(obj, stale=False, token=None):
    """Return a :class:`Record` from :func:`pack_record`'s form, or raise InvalidData."""
    try:
        data, created, accessed = obj['d'], float(obj['c']), float(obj['a'])
    except (TypeError, KeyError, ValueError) as exc:
        raise InvalidData('malformed session record') from exc
    if not isinstance(data, dict):
        raise InvalidData('malformed session record')
    return Record(data, created, accessed, stale, token)


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

    def save(self, session_id, changed, deleted, created, accessed, ttl, create=True,
             token=None):
        """Atomically set ``changed``, remove ``deleted``, keep every other stored key.

        Return True when saved.  With ``create`` false (a session this
        request loaded), a record that is gone (deleted by a logout in
        another request, or expired) is not recreated: return False.
        ``token`` is the loaded record's (see :class:`Record`); stores that
        give none ignore it.
        """
        raise NotImplementedError

    def touch(self, session_id, accessed, ttl, token=None):
        """Record a new access time and push the expiry ``ttl`` seconds ahead.

        Never creates a record; return False when there is none.  ``token``
        is as for :meth:`save`.
        """
        raise NotImplementedError

    #: True when :meth:`save_unloaded` saves a request's sets without a load.
    saves_unloaded = False

    def save_unloaded(self, session_id, changed, since, accessed, timeout, ttl):
        """Set ``changed`` in a stored session the request did not load.

        For requests that only set keys.  ``since`` is when the request
        first used the session: the record counts as read then.  Return
        ``(True, own expiry or None)`` when saved; ``(False, None)`` when
        the record was deleted at or after ``since`` (a logout while the
        request ran: its sets are dropped, as for a loaded session); and
        ``(None, None)`` when the caller must load and save as usual: no
        record, one idle past ``timeout`` (0: none) at ``since``, or one it
        cannot judge unread.  ``ttl`` is as for :meth:`save`, unless the
        session has its own expiry.
        """
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

    def _decode(self, session_id, raw, version=None):
        """Return a :class:`Record` from stored bytes, or None (logged) if invalid.

        With ``version`` (what names the stored version, for the store),
        the record's token is ``(version, payload)``: the checked payload
        keeps a copy of the record as loaded for :meth:`_as_loaded`.
        """
        try:
            payload, stale = self.codec.payload_checked(raw)
            return unpack_record(self.codec.parse(payload), stale,
                                 None if version is None else (version, payload))
        except InvalidData as exc:
            log.warning('ignoring unreadable %s session %s...: %s',
                        self.name, session_id[:8], exc)
            return None

    def _as_loaded(self, token):
        """Return ``(data, created)`` of the record a token was loaded with, as
        it was (the app may have changed the data it was given); its payload
        was checked and found well formed then."""
        obj = self.codec.parse(token[1])
        return obj['d'], obj['c']


class UnstorableValue(TypeError):
    """A cache entry the region's serializer cannot turn into bytes."""


class BaseNamespaceManager(NamespaceManager):
    """Beaker namespace manager whose entries are signed envelopes.

    Subclasses implement :meth:`_get_raw`, :meth:`_set_raw`, :meth:`_delete`
    and the rest of Beaker's interface (``__contains__``, ``do_remove``,
    ``get_creation_lock``).  Entries are Beaker's ``(stored, expire, value)``
    tuples; an entry that fails verification reads as a miss.
    """

    name = 'base'

    def __init__(self, namespace, secret=None, data_serializer='pickle',
                 secret_fallbacks=(), **options):
        super().__init__(namespace)
        if not secret:
            raise ValueError(
                'cache regions of type %r need a "secret" to sign what they '
                'store' % self.name)
        self.codec = SignedCodec(data_serializer, secret, 'cache', fallbacks=secret_fallbacks)
        self.codec_name = data_serializer if isinstance(data_serializer, str) else 'custom'
        self.options = options

    def _get_raw(self, key):
        """Return the stored bytes for ``key`` or None."""
        raise NotImplementedError

    def _set_raw(self, key, raw, expiretime):
        raise NotImplementedError

    def _delete(self, key):
        raise NotImplementedError

    def _get_many_raw(self, keys):
        """Return the stored bytes (or None) of each of ``keys``.

        Stores that can read several keys in one round trip override this.
        """
        return [self._get_raw(key) for key in keys]

    def _entry(self, raw):
        if raw is None:
            return None
        try:
            return tuple(self.codec.loads(raw))
        except (InvalidData, TypeError) as exc:
            log.warning('cache %s: ignoring unreadable entry in %s: %s',
                        self.name, self.namespace, exc)
            return None

    def get_entry(self, key):
        """Return the ``(stored, expire, value)`` entry for ``key`` or None."""
        return self._entry(self._get_raw(key))

    def get_entries(self, keys):
        """Return the entry (or None) of each of ``keys``."""
        return [self._entry(raw) for raw in self._get_many_raw(keys)]

    def set_entry(self, key, entry, expiretime=None):
        """Store an entry; ``expiretime`` (seconds) lets the server drop it.

        Raises :class:`UnstorableValue` when the serializer refuses it.
        """
        try:
            raw = self.codec.dumps(tuple(entry))
        except Exception as exc:
            raise UnstorableValue(
                '%s serializer: %s' % (self.codec_name, exc)) from exc
        self._set_raw(key, raw, expiretime)

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
