"""memcached storage (``ext:memcached``) through pymemcache.

A session is one item holding its signed record.  A load reads it with
``gets``, and the record carries the item's CAS value as its token: a save
then writes the loaded data plus the request's changes with one ``cas``,
which memcached refuses if anyone wrote or deleted the item meanwhile.
Refused (or without a token), the save merges onto what is stored with a
``gets``/``cas`` loop, so concurrent writers to one session each keep their
keys.  Items expire through memcached's own TTL.  The client
is built without a serializer: values go in and come out as bytes, and only
the codec (which checks the signature first) turns them into objects.

``url`` may list several servers (``host1:11211;host2:11211``, Beaker's
separator): a :class:`ServerPool` then keeps each key on one server, chosen
by rendezvous hashing among the servers that answer.  A server that fails
is skipped for :attr:`ServerPool.retry_after` seconds and its keys move to
the others, where they start empty: its sessions become new sessions.
"""
import collections
import hashlib
import math
import random
import re
import threading
import time

from beaker.exceptions import InvalidCacheBackendError
from pyramid.exceptions import ConfigurationError

from ..coerce import as_str, as_timeout, mask_url
from .base import (
    Backend,
    BaseNamespaceManager,
    SessionBackendError,
    SessionStore,
    TokenLock,
    merge,
    pack_record,
)

try:
    from pymemcache.client.base import Client
    from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError
except ImportError as exc:  # Beaker skips such entry points quietly
    raise InvalidCacheBackendError(
        'the ext:memcached backend needs pymemcache: '
        'pip install "pyramid_beaker[memcached]"') from exc

#: memcached reads expiry times above 30 days as absolute unix times.
MAX_RELATIVE_TTL = 30 * 24 * 3600
DEFAULT_TIMEOUT = 3.0
DEFAULT_LOCK_TIMEOUT = 30.0
SESSION_PREFIX = 'pyramid_beaker.session:'
CACHE_PREFIX = 'pyramid_beaker.cache:'
_PREFIX_CHARS = re.compile(r'[\x21-\x7e]{0,100}')


def as_key_prefix(value, label):
    """Coerce a key prefix: up to 100 printable ASCII characters, no spaces."""
    value = as_str(value, label)
    if value is not None and not _PREFIX_CHARS.fullmatch(value):
        raise ConfigurationError(
            '"%s" must be at most 100 printable ASCII characters without '
            'spaces, not %r' % (label, value))
    return value


def expire_time(seconds):
    """Return memcached's ``exptime`` for a lifetime in seconds (0: never)."""
    if not seconds:
        return 0
    seconds = max(1, math.ceil(seconds))
    if seconds > MAX_RELATIVE_TTL:
        return int(time.time()) + seconds
    return seconds


_SEPARATORS = re.compile(r'[;,\s]+')


def server_specs(url, label='url'):
    """Return pymemcache's server specs for ``url``: ``host[:port]`` or socket
    paths, separated by ``;`` (commas and spaces are accepted too)."""
    if not url or not url.strip():
        raise ConfigurationError(
            '"%s" is required for ext:memcached: host:port of the server'
            % label)
    return [_server_spec(part, url, label) for part in _SEPARATORS.split(url.strip())
            if part]


def _server_spec(part, url, label):
    if part.startswith('/'):
        return part
    if '://' in part:
        raise ConfigurationError(
            '"%s" must be host:port (no scheme; several separated by ";"), '
            'not %r' % (label, url))
    host, _, port = part.rpartition(':') if ':' in part else (part, '', '11211')
    try:
        number = int(port)
    except ValueError:
        number = 0
    if not host or not 0 < number < 65536:
        raise ConfigurationError(
            '"%s" must be host:port with a port number, not %r'
            % (label, url)) from None
    return (host.strip('[]'), number)


#: How a pooled connection fails once the server it was opened to is gone.
_STALE = (MemcacheUnexpectedCloseError, BrokenPipeError, ConnectionResetError)


class ClientPool:
    """Thread-safe pool of connections to one memcached server.

    Offers the client methods the stores use.  Each call takes an idle
    pymemcache :class:`~pymemcache.client.base.Client` (or makes one) and
    puts it back when the call returns; a client whose call failed is
    closed instead.  After memcached restarts, every idle connection is
    dead: a call that hits one is made again on the next idle client, or a
    new one.  Retrying is safe for the commands used: a repeated
    ``add``/``cas`` fails and the caller's loop reads again;
    ``get``/``set``/``delete`` repeat.
    """

    def __init__(self, server, timeout):
        self.server = server
        self.timeout = timeout
        #: Idle clients, the most recently used last (``deque`` pops and
        #: appends are atomic: no lock is needed).
        self.idle = collections.deque()

    def _new_client(self):
        # No serde: pymemcache then passes bytes through unchanged and never
        # pickles or unpickles anything.
        return Client(self.server, connect_timeout=self.timeout, timeout=self.timeout,
                      no_delay=True, default_noreply=False)

    def _call(self, method, args, kwargs):
        """Return ``method(client, *args, **kwargs)`` (a ``Client`` method) on a pooled client."""
        idle = self.idle
        while True:
            try:
                client, fresh = idle.pop(), False
            except IndexError:
                client, fresh = self._new_client(), True
            try:
                result = method(client, *args, **kwargs)
            except _STALE:
                client.close()
                if fresh:
                    raise
                continue  # a connection the server closed while it was idle
            except BaseException:
                client.close()
                raise
            idle.append(client)
            return result

    def get(self, *args, **kwargs):
        return self._call(Client.get, args, kwargs)

    def get_many(self, *args, **kwargs):
        return self._call(Client.get_many, args, kwargs)

    def gets(self, *args, **kwargs):
        return self._call(Client.gets, args, kwargs)

    def set(self, *args, **kwargs):
        return self._call(Client.set, args, kwargs)

    def add(self, *args, **kwargs):
        return self._call(Client.add, args, kwargs)

    def cas(self, *args, **kwargs):
        return self._call(Client.cas, args, kwargs)

    def delete(self, *args, **kwargs):
        return self._call(Client.delete, args, kwargs)

    def close(self):
        """Close the idle connections (clients in use close after their call)."""
        while self.idle:
            try:
                self.idle.pop().close()
            except IndexError:
                break


def as_memcached_url(value, label):
    """Coerce one or more ``host:port`` (or socket paths), separated by ``;``."""
    url = as_str(value, label)
    if url is not None:
        server_specs(url, label)
    return url


def as_client(value, label):
    """Accept a ready pymemcache client (or None)."""
    if value is None or all(hasattr(value, name) for name in ('gets', 'cas', 'add')):
        return value
    raise ConfigurationError(
        '"%s" must be a pymemcache client, not %r' % (label, value))


OPTIONS = {
    'url': as_memcached_url,
    'client': as_client,
    'key_prefix': as_key_prefix,
    'socket_timeout': as_timeout,
    'lock_timeout': as_timeout,
}


def connect(options):
    """Return ``options['client']``, or a new thread-safe client storing raw bytes."""
    if options.get('client') is not None:
        return options['client']
    timeout = options.get('socket_timeout') or DEFAULT_TIMEOUT
    specs = server_specs(options.get('url'))
    if len(specs) == 1:
        return ClientPool(specs[0], timeout)
    return ServerPool({spec: ClientPool(spec, timeout) for spec in specs})


#: How a call fails when its server is down or went away mid-call.
_SERVER_DOWN = (OSError, MemcacheUnexpectedCloseError)


class ServerPool:
    """Several memcached servers, each key kept on one of them.

    The server of a key is the one with the highest ``blake2b(server, key)``
    among the servers that answer (rendezvous hashing): when one fails, only
    its keys move, each to the next server in its own order, and they move
    back when it answers again.  A server whose call fails (refused, reset,
    timed out) is skipped for :attr:`retry_after` seconds and the call is
    made again on the key's next server; a key whose servers all fail
    raises the last error.  Offers the client methods the stores use.
    """

    retry_after = 2.0

    def __init__(self, clients):
        self.clients = dict(clients)
        self._names = {spec: _spec_name(spec).encode() for spec in self.clients}
        self._down = {}  # spec -> time.monotonic() from which to try it again
        self._lock = threading.Lock()

    def servers_for(self, key):
        """The servers of ``key``, first choice first (all, up or down)."""
        if isinstance(key, str):
            key = key.encode('utf-8')
        return sorted(self.clients, reverse=True, key=lambda spec: hashlib.blake2b(
            key, key=self._names[spec][:64], digest_size=8).digest())

    def _call(self, method, key, *args, **kwargs):
        now = time.monotonic()
        error = None
        for spec in self.servers_for(key):
            if self._down.get(spec, 0) > now:
                continue
            try:
                result = getattr(self.clients[spec], method)(key, *args, **kwargs)
            except _SERVER_DOWN as exc:
                with self._lock:
                    self._down[spec] = time.monotonic() + self.retry_after
                error = exc
                continue
            if spec in self._down:
                with self._lock:
                    self._down.pop(spec, None)
            return result
        if error is None:
            error = MemcacheError('every memcached server failed in the last %g s'
                                  % self.retry_after)
        raise error

    def get(self, key, *args, **kwargs):
        return self._call('get', key, *args, **kwargs)

    def gets(self, key, *args, **kwargs):
        return self._call('gets', key, *args, **kwargs)

    def set(self, key, *args, **kwargs):
        return self._call('set', key, *args, **kwargs)

    def add(self, key, *args, **kwargs):
        return self._call('add', key, *args, **kwargs)

    def cas(self, key, *args, **kwargs):
        return self._call('cas', key, *args, **kwargs)

    def delete(self, key, *args, **kwargs):
        return self._call('delete', key, *args, **kwargs)

    def close(self):
        for client in self.clients.values():
            client.close()


def _spec_name(spec):
    return spec if isinstance(spec, str) else '%s:%d' % spec


class _Failures:
    """Context manager: memcached errors inside raise SessionBackendError."""

    def __init__(self, url):
        self.url = url

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, traceback):
        if isinstance(exc, (OSError, MemcacheError)):
            raise SessionBackendError(
                'memcached session store at %s failed: %s: %s'
                % (mask_url(self.url), kind.__name__, exc)) from exc
        return False


class MemcachedSessionStore(SessionStore):
    """One memcached item per session, updated by compare-and-swap."""

    name = 'ext:memcached'
    max_tries = 50

    def __init__(self, options, codec):
        super().__init__(options, codec)
        self.url = options.get('url') or repr(options.get('client'))
        self.client = connect(options)
        self._owns_client = options.get('client') is None
        self.prefix = options.get('key_prefix') or SESSION_PREFIX
        self._errors = _Failures(self.url)

    def load(self, session_id):
        """Return the record; its token holds the item's CAS value."""
        with self._errors:
            raw, cas = self.client.gets(self.prefix + session_id)
        return None if raw is None else self._decode(session_id, raw, cas)

    def save(self, session_id, changed, deleted, created, accessed, ttl, create=True,
             token=None):
        if token is not None and self._write_over(
                session_id, token, changed, deleted, accessed, ttl):
            return True
        return self._update(session_id, changed, deleted, created, accessed, ttl, create)

    def touch(self, session_id, accessed, ttl, token=None):
        return self.save(session_id, {}, (), None, accessed, ttl, False, token)

    def _write_over(self, session_id, token, changed, deleted, accessed, ttl):
        """Write the loaded record with the changes by one ``cas``; True if stored."""
        data, created = self._as_loaded(token)
        value = self.codec.dumps(pack_record(merge(data, changed, deleted), created, accessed))
        with self._errors:
            return self.client.cas(self.prefix + session_id, value, token[0],
                                   expire_time(ttl))

    def _update(self, session_id, changed, deleted, created, accessed, ttl, create):
        """Merge onto the stored record with gets/cas, retrying on conflicts."""
        key = self.prefix + session_id
        for attempt in range(self.max_tries):
            with self._errors:
                raw, cas = self.client.gets(key)
                record = None if raw is None else self._decode(session_id, raw)
                if record is None and not create:
                    return False
                data = merge(record.data if record else {}, changed, deleted)
                value = self.codec.dumps(pack_record(
                    data, record.created if record else created, accessed))
                if raw is None:
                    stored = self.client.add(key, value, expire_time(ttl))
                else:
                    stored = self.client.cas(key, value, cas, expire_time(ttl))
            if stored:
                return True
            time.sleep(random.uniform(0, min(0.02, 0.0005 * 2 ** attempt)))
        raise SessionBackendError(
            'memcached session store at %s: gave up saving session %s... '
            'after %d conflicting writes' % (
                mask_url(self.url), session_id[:8], self.max_tries))

    def delete(self, session_id):
        with self._errors:
            self.client.delete(self.prefix + session_id)

    def close(self):
        if self._owns_client:
            self.client.close()


_clients = {}
_clients_lock = threading.Lock()


def shared_client(options):
    """Return the process-wide client for ``options`` (cache namespaces share it)."""
    if options.get('client') is not None:
        return options['client']
    ident = (options.get('url'), options.get('socket_timeout'))
    with _clients_lock:
        client = _clients.get(ident)
        if client is None:
            client = _clients[ident] = connect(options)
        return client


def close_shared_clients():
    """Close the cache namespaces' connections (at shutdown, in tests).

    The clients reconnect on their next command.
    """
    with _clients_lock:
        for client in _clients.values():
            client.close()


def hashed_key(prefix, namespace, key):
    """Return a memcached key for ``key`` in ``namespace``: prefix + sha256 hex.

    Hashing keeps keys short and free of spaces, and the length prefix keeps
    ``('a:b', 'c')`` and ``('a', 'b:c')`` apart.
    """
    if isinstance(key, str):
        key = key.encode('utf-8')
    space = namespace.encode('utf-8')
    digest = hashlib.sha256(b'%d:%s:%s' % (len(space), space, key)).hexdigest()
    return prefix + digest


class MemcachedLock(TokenLock):
    """Cross-process lock: an item added with a random token and an expiry.

    ``acquire(wait=True)`` waits at most ``timeout`` seconds (the lock's own
    lifetime) and then returns False; ``release`` deletes the item only if it
    still holds this lock's token.  (memcached has no compare-and-delete: a
    lock that expires between that check and the delete, and is taken by
    another process meanwhile, loses its item early.)
    """

    def __init__(self, client, key, timeout):
        super().__init__(timeout)
        self.client = client
        self.key = key

    def _try_acquire(self, token):
        return self.client.add(self.key, token, expire_time(self.timeout))

    def _release(self, token):
        if self.client.get(self.key) == token:
            self.client.delete(self.key)


class MemcachedNamespaceManager(BaseNamespaceManager):
    """Cache region entries as memcached items that expire by TTL.

    Options: ``url`` (required), ``key_prefix``, ``socket_timeout`` and
    ``lock_timeout`` (seconds a creation lock lives and is waited for).
    """

    name = 'ext:memcached'

    def __init__(self, namespace, **options):
        super().__init__(namespace, **options)
        self.client = shared_client(self.options)
        self.prefix = self.options.get('key_prefix') or CACHE_PREFIX
        self.lock_timeout = self.options.get('lock_timeout') or DEFAULT_LOCK_TIMEOUT

    def _key(self, key):
        return hashed_key(self.prefix, self.namespace, key)

    def _get_raw(self, key):
        return self.client.get(self._key(key))

    def _get_many_raw(self, keys):
        names = [self._key(key) for key in keys]
        found = self.client.get_many(names)
        return [found.get(name) for name in names]

    def _set_raw(self, key, raw, expiretime):
        self.client.set(self._key(key), raw, expire_time(expiretime))

    def _delete(self, key):
        self.client.delete(self._key(key))

    def get_creation_lock(self, key):
        return MemcachedLock(self.client, self._key(key) + ':lock', self.lock_timeout)

    def do_remove(self):
        raise NotImplementedError(
            'memcached cannot list or drop the entries of one namespace; '
            'they expire by their TTL (remove single keys instead)')


BACKEND = Backend(
    'ext:memcached',
    aliases=('memcached',),
    session_store=MemcachedSessionStore,
    namespace_manager=MemcachedNamespaceManager,
    beaker_name='pyramid_beaker.memcached',
    location=('url', 'client'),
    options=OPTIONS,
    region_only=('lock_timeout',),
    connect=connect,
)
