"""Redis storage: one hash per session, one string per cache entry.

Session ``<id>`` lives in the hash ``<key_prefix>session:<id>``.  Each user
key is its own field (``k:<key>``, value a signed envelope from the codec),
next to two plain metadata fields, ``m:created`` and ``m:accessed``.  A
session with its own expiry (``set_expiry``) also keeps it, in seconds, in
``m:expiry``.  Saving a request's changes is one call of a Lua script
(``EVALSHA``), which Redis runs atomically: it sets and deletes only the
fields that changed, so concurrent requests that change different keys all
keep their change.  Every session key carries a TTL, refreshed on each save
and touch.

A request that only sets keys does not load the session: one script checks
the stored times and sets the keys.  So that such a request still cannot
write into a session logged out while it ran, deleting a session leaves
``<key_prefix>gone:<id>``, holding the time of the deletion, for an hour.

Cache entries live in ``<key_prefix>cache:<namespace>:<key>`` with the
region's expiry as their TTL; creation locks in
``<key_prefix>lock:<namespace>:<key>``.  In key names, ``%`` and ``:`` in the
namespace are written ``%25`` and ``%3A``, so one namespace's keys never
match another's.
"""
import hashlib
import logging
import math
import urllib.parse

from beaker.exceptions import InvalidCacheBackendError
from pyramid.exceptions import ConfigurationError

from ..codec import InvalidData, SignedFields
from ..coerce import as_host_port, as_list, as_required_str, as_str, mask_url
from .base import (
    EXPIRY_KEY,
    Backend,
    BaseNamespaceManager,
    Record,
    SessionBackendError,
    SessionStore,
    TokenLock,
    now,
)

try:
    import redis
except ImportError as exc:  # Beaker skips such entry points quietly
    raise InvalidCacheBackendError(
        'the ext:redis backend needs redis-py: pip install "pyramid_beaker[redis]"') from exc

log = logging.getLogger('pyramid_beaker')

DEFAULT_KEY_PREFIX = 'beaker:'
DEFAULT_SOCKET_TIMEOUT = 5.0
DEFAULT_LOCK_TIMEOUT = 30.0
#: Retries of a command that failed on a primary that went away (Sentinel).
FAILOVER_RETRIES = 20
#: Seconds a deleted session's tombstone (``gone:<id>``) is kept.
GONE_SECONDS = 3600
_USER = b'k:'
_CREATED = b'm:created'
_ACCESSED = b'm:accessed'
_EXPIRY = b'm:expiry'
_SIGNED_EXPIRY = _USER + EXPIRY_KEY.encode()
# Save (and touch) a session hash atomically.  KEYS[1]: the hash.  ARGV: the
# TTL in seconds, the creation time (set only if the hash has none), 1 to
# create the hash if missing or 0 to change nothing then (and return 0), the
# number n of fields to delete, those n field names, then field/value pairs
# to set (m:accessed among them).  Lua's unpack() has a stack limit of a few
# thousand values, hence the chunks.
_SAVE_LUA = """
local key = KEYS[1]
local create = ARGV[3] == '1'
if not create and redis.call('exists', key) == 0 then
    return 0
end
local last_deleted = 4 + tonumber(ARGV[4])
for first = 5, last_deleted, 1000 do
    redis.call('hdel', key, unpack(ARGV, first, math.min(first + 999, last_deleted)))
end
for first = last_deleted + 1, #ARGV, 1000 do
    redis.call('hset', key, unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
if create then
    redis.call('hsetnx', key, 'm:created', ARGV[2])
end
redis.call('expire', key, ARGV[1])
return 1
"""
# Set keys in a session hash the request did not load.  KEYS[1]: the hash,
# KEYS[2]: its tombstone.  ARGV: the time the request first used the
# session, the new access time, the factory's timeout (0: none), the TTL,
# then field/value pairs.  Return the session's own expiry (0: none) when
# saved, -2 when it was deleted since the request began, -1 when the caller
# must load it (absent, idle past its timeout, unreadable, or with an own
# expiry only in the signed field that versions before m:expiry kept).
_UPDATE_LUA = """
local key = KEYS[1]
local since = tonumber(ARGV[1])
local meta = redis.pcall('hmget', key, 'm:created', 'm:accessed', 'm:expiry', '%s')
if meta.err then
    return -1
end
local accessed, expiry = tonumber(meta[2]), tonumber(meta[3])
if not accessed then
    if redis.call('exists', key) == 0 then
        local gone = tonumber(redis.call('get', KEYS[2]))
        if gone and gone >= since then
            return -2
        end
    end
    return -1
end
if not tonumber(meta[1]) or (meta[4] and not expiry) then
    return -1
end
local timeout = expiry or tonumber(ARGV[3])
if timeout > 0 and accessed + timeout < since then
    return -1
end
redis.call('hset', key, 'm:accessed', ARGV[2])
for first = 5, #ARGV, 1000 do
    redis.call('hset', key, unpack(ARGV, first, math.min(first + 999, #ARGV)))
end
redis.call('expire', key, expiry or ARGV[4])
return expiry or 0
""" % _SIGNED_EXPIRY.decode()
# Delete a session hash and leave its tombstone.  KEYS[1]: the hash,
# KEYS[2]: the tombstone.  ARGV: the time, the tombstone's TTL.
_DELETE_LUA = """
redis.call('del', KEYS[1])
redis.call('set', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 1
"""
# Delete the lock only if it still holds our token (it may have expired and
# been taken by another process meanwhile).
_RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def as_seconds_float(value, label):
    """Coerce a positive number of seconds, fractions allowed."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or not 0 < number < math.inf:
        raise ConfigurationError(
            '"%s" must be a number of seconds greater than 0, not %r'
            % (label, value))
    return number


def as_redis_url(value, label):
    """Coerce a ``redis://``, ``rediss://`` or ``unix://`` URL, checked as redis-py reads it."""
    url = as_required_str(value, label)
    if not url.startswith(('redis://', 'rediss://', 'unix://')):
        raise ConfigurationError(
            '"%s" must be a redis://, rediss:// or unix:// URL, not %r'
            % (label, mask_url(url)))
    try:
        redis.connection.parse_url(url)
    except ValueError as exc:
        raise ConfigurationError('"%s" = %r is not a valid Redis URL: %s'
                                 % (label, mask_url(url), exc)) from None
    database = urllib.parse.urlsplit(url).path.strip('/')
    if url.startswith('redis') and database and not database.isdigit():
        raise ConfigurationError(
            '"%s" = %r: the path must be a database number, not %r'
            % (label, mask_url(url), database))
    return url


def as_client(value, label):
    """Accept a ready redis-py client (or None)."""
    if value is None or isinstance(value, redis.Redis):
        return value
    raise ConfigurationError(
        '"%s" must be a redis.Redis client, not %r' % (label, value))


def _option(options, name, default):
    """Return a (coerced) option, or ``default`` when it is not set."""
    value = options.get(name)
    return default if value is None or value == '' else value


def connect(options):
    """Return ``options['client']``, or a new client for ``url`` or ``sentinels``."""
    if options.get('client') is not None:
        return options['client']
    timeout = _option(options, 'socket_timeout', DEFAULT_SOCKET_TIMEOUT)
    if options.get('sentinels'):
        return _primary_of(options, timeout)
    return redis.Redis.from_url(
        options['url'], socket_timeout=timeout, socket_connect_timeout=timeout)


def _primary_of(options, timeout):
    """A client of the primary that the Sentinels name for ``service_name``.

    Its connections ask the Sentinels for the primary's address whenever
    they (re)connect.  A command that fails because the primary went away
    or was demoted (``READONLY``) is sent again, after a short backoff, to
    the primary the Sentinels name then.
    """
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    credentials = {}
    if options.get('url'):  # with sentinels, the URL gives credentials and db only
        parsed = redis.connection.parse_url(options['url'])
        credentials = {name: parsed[name] for name in ('db', 'username', 'password')
                       if name in parsed}
    sentinel = redis.sentinel.Sentinel(
        options['sentinels'], socket_timeout=timeout, socket_connect_timeout=timeout)
    return sentinel.master_for(
        options['service_name'], socket_timeout=timeout, socket_connect_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), FAILOVER_RETRIES),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError],
        **credentials)


def as_sentinels(value, label):
    """Coerce the Sentinels' addresses: ``host:port`` separated by spaces or commas."""
    if value is None or value == '':
        return None
    items = value if isinstance(value, (list, tuple)) else as_list(value)
    if not items:
        return None
    return [as_host_port(item, label) for item in items]


def check(options, label):
    """``sentinels`` needs ``service_name``; its ``url`` may not name a host."""
    if not options.get('sentinels'):
        return
    if not options.get('service_name'):
        raise ConfigurationError('"%s" is required with "%s"'
                                 % (label('service_name'), label('sentinels')))
    url = options.get('url')
    if url and urllib.parse.urlsplit(url).hostname:
        raise ConfigurationError(
            '"%s" = %r names a server, but the Sentinels name the primary: with '
            '"%s", give only credentials and a database (redis://:password@/0)'
            % (label('url'), mask_url(url), label('sentinels')))


#: Backend options (``session.<name>`` or ``cache.<region>.<name>``).
OPTIONS = {
    'url': as_redis_url,
    'client': as_client,
    'sentinels': as_sentinels,
    'service_name': as_str,
    'key_prefix': as_str,
    'socket_timeout': as_seconds_float,
    'lock_timeout': as_seconds_float,
}


def _describe(options, client):
    """Where a store's data is, for error messages (no password)."""
    if options.get('sentinels'):
        return 'Sentinels %s (service %s)' % (
            ' '.join('%s:%d' % address for address in options['sentinels']),
            options['service_name'])
    return mask_url(options.get('url') or repr(client))


class RedisFields(SignedFields):
    """A session hash's user fields (``k:<key>``), each checked on first use."""

    def name(self, key):
        if not isinstance(key, str):
            return None
        try:
            return _USER + key.encode('utf-8')
        except UnicodeEncodeError:  # a lone surrogate: never stored
            return None

    def key(self, name):
        if not name.startswith(_USER):
            raise InvalidData('unexpected field %r' % name[:40])
        try:
            return name[len(_USER):].decode('utf-8')
        except UnicodeDecodeError:
            raise InvalidData('field name %r is not UTF-8' % name[:40]) from None


class RedisSessionStore(SessionStore):
    """Sessions as Redis hashes: one round trip to load, one to save.

    :meth:`load` parses the times and leaves each user field to be checked
    when the session first uses it (:class:`RedisFields`).  A record whose
    times are missing or unreadable, or whose key is not a hash, is
    deleted and reads as None.  A field that does not verify (a planted
    pickle, bytes signed with another secret, a field we did not write)
    makes the session drop the whole record when it meets it.
    """

    name = 'ext:redis'
    #: Makes the client (``ext:rediscluster`` makes a cluster client).
    connect = staticmethod(connect)
    saves_unloaded = True

    def __init__(self, options, codec):
        super().__init__(options, codec)
        self.client = self.connect(options)
        self._owns_client = options.get('client') is None
        self.url = _describe(options, self.client)
        self.prefix = _option(options, 'key_prefix', DEFAULT_KEY_PREFIX)

    def key(self, session_id):
        """The Redis key of ``session_id``'s hash."""
        return '%ssession:%s' % (self.prefix, session_id)

    def gone_key(self, session_id):
        """The Redis key of ``session_id``'s tombstone, once it is deleted."""
        return '%sgone:%s' % (self.prefix, session_id)

    def _failed(self, action, exc):
        """The SessionBackendError for a RedisError raised by ``action``."""
        return SessionBackendError('ext:redis session store at %s: %s failed: %s'
                                   % (self.url, action, exc))

    def load(self, session_id):
        try:
            fields = self.client.hgetall(self.key(session_id))
        except redis.ResponseError as exc:
            if 'WRONGTYPE' not in str(exc):
                raise self._failed('load', exc) from exc
            return self._drop(session_id, 'not a hash')
        except redis.RedisError as exc:
            raise self._failed('load', exc) from exc
        if not fields:
            return None
        created = fields.pop(_CREATED, None)
        accessed = fields.pop(_ACCESSED, None)
        fields.pop(_EXPIRY, None)  # a copy of the signed k:_pb.expiry, for _UPDATE_LUA
        try:
            return Record(RedisFields(fields, self.codec), float(created), float(accessed))
        except (TypeError, ValueError):  # a time missing, or not a number
            return self._drop(session_id, 'bad times %r, %r' % (created, accessed))

    def _drop(self, session_id, reason):
        """Delete an unreadable record, so the next save starts clean; return None."""
        log.warning('deleting unreadable ext:redis session %s...: %s',
                    session_id[:8], reason)
        self.delete(session_id)
        return None

    def save(self, session_id, changed, deleted, created, accessed, ttl, create=True,
             token=None):
        names = [_field(name) for name in deleted]
        if EXPIRY_KEY in deleted:
            names.append(_EXPIRY)
        args = [int(ttl), created, 1 if create else 0, len(names), *names, _ACCESSED, accessed]
        self._add_fields(args, changed)
        if EXPIRY_KEY in changed:
            args.append(_EXPIRY)
            args.append(changed[EXPIRY_KEY])
        return bool(self._run(_SAVE, 'save', session_id, args))

    def touch(self, session_id, accessed, ttl, token=None):
        return bool(self._run(_SAVE, 'touch', session_id,
                              [int(ttl), accessed, 0, 0, _ACCESSED, accessed]))

    def save_unloaded(self, session_id, changed, since, accessed, timeout, ttl):
        args = [since, accessed, timeout, int(ttl)]
        self._add_fields(args, changed)
        expiry = self._run(_UPDATE, 'save', session_id, args, gone=True)
        if expiry >= 0:
            return True, expiry or None
        return (False if expiry == -2 else None), None

    def _add_fields(self, args, changed):
        """Append each changed key's field name and signed value to ``args``."""
        for name, value in changed.items():
            args.append(_field(name))
            args.append(self.codec.dumps(value))

    def delete(self, session_id):
        self._run(_DELETE, 'delete', session_id, [now(), GONE_SECONDS], gone=True)

    def _run(self, script, action, session_id, args, gone=False):
        """Run ``script`` (``EVALSHA``; on ``NOSCRIPT``, as after a restart,
        load it and run it again) on the session's key, and with ``gone``
        on its tombstone too; return what it returns."""
        keys = (self.key(session_id), self.gone_key(session_id)) if gone \
            else (self.key(session_id),)
        try:
            try:
                return self.client.evalsha(script.sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                self.client.script_load(script.source)
                return self.client.evalsha(script.sha, len(keys), *keys, *args)
        except redis.RedisError as exc:
            raise self._failed(action, exc) from exc

    def close(self):
        if self._owns_client:
            self.client.close()


class _Script:
    """A Lua script, run by its SHA1 digest."""

    def __init__(self, source):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


_SAVE, _UPDATE, _DELETE = _Script(_SAVE_LUA), _Script(_UPDATE_LUA), _Script(_DELETE_LUA)


def _field(name):
    if not isinstance(name, str):
        raise TypeError('ext:redis sessions need string keys, not %r' % (name,))
    return _USER + name.encode('utf-8')


def _as_bytes(name):
    return name if isinstance(name, bytes) else str(name).encode('utf-8')


_clients = {}


def _shared_client(options, connect):
    """One client (connection pool) per address and timeout for all namespaces."""
    if options.get('client') is not None:
        return options['client']
    ident = (connect, options.get('url'), options.get('urls'), options.get('socket_timeout'),
             tuple(options.get('sentinels') or ()), options.get('service_name'))
    client = _clients.get(ident)
    if client is None:
        client = _clients.setdefault(ident, connect(options))
    return client


class RedisNamespaceManager(BaseNamespaceManager):
    """Beaker cache namespace in Redis: signed values, server-side expiry.

    Read errors are not caught: ``get_entry`` and Beaker's ``Cache.get``
    raise the driver's :class:`redis.RedisError`.
    """

    name = 'ext:redis'
    #: Makes the client (``ext:rediscluster`` makes a cluster client).
    connect = staticmethod(connect)

    def __init__(self, namespace, secret=None, data_serializer='pickle', **options):
        super().__init__(namespace, secret, data_serializer, **options)
        self.client = _shared_client(options, self.connect)
        prefix = _option(options, 'key_prefix', DEFAULT_KEY_PREFIX).encode('utf-8')
        encoded = _as_bytes(namespace).replace(b'%', b'%25').replace(b':', b'%3A')
        self._cache_prefix = prefix + b'cache:' + encoded + b':'
        self._lock_prefix = prefix + b'lock:' + encoded + b':'
        self.lock_timeout = _option(options, 'lock_timeout', DEFAULT_LOCK_TIMEOUT)
        self._release = self.client.register_script(_RELEASE_LUA)

    def _key(self, key):
        return self._cache_prefix + _as_bytes(key)

    def _get_raw(self, key):
        return self.client.get(self._key(key))

    def _get_many_raw(self, keys):
        return self.client.mget([self._key(key) for key in keys])

    def _set_raw(self, key, raw, expiretime):
        expire = max(1, int(expiretime)) if expiretime else None
        self.client.set(self._key(key), raw, ex=expire)

    def _delete(self, key):
        self.client.delete(self._key(key))

    def _scan(self):
        pattern = _glob_escape(self._cache_prefix) + b'*'
        return self.client.scan_iter(match=pattern, count=500)

    def keys(self):
        """This namespace's cache keys, as bytes."""
        size = len(self._cache_prefix)
        return [name[size:] for name in self._scan()]

    def do_remove(self):
        names = list(self._scan())
        for start in range(0, len(names), 500):
            self.client.delete(*names[start:start + 500])

    def get_creation_lock(self, key):
        return RedisCreationLock(
            self.client, self._lock_prefix + _as_bytes(key),
            self.lock_timeout, self._release)


def _glob_escape(raw):
    for char in (b'\\', b'*', b'?', b'[', b']'):
        raw = raw.replace(char, b'\\' + char)
    return raw


class RedisCreationLock(TokenLock):
    """A lock shared by every process using the server: ``SET NX PX`` + token.

    The lock expires after ``timeout`` seconds, so a crashed holder blocks
    others for at most that long; ``acquire()`` waits at most as long too,
    then returns False (Beaker then computes the value anyway).
    """

    first_delay = 0.002
    max_delay = 0.05

    def __init__(self, client, name, timeout, release_script):
        super().__init__(timeout)
        self.client = client
        self.name = name
        self._release_script = release_script

    def _try_acquire(self, token):
        return self.client.set(
            self.name, token, nx=True, px=max(1, int(self.timeout * 1000)))

    def _release(self, token):
        self._release_script(keys=[self.name], args=[token])


BACKEND = Backend(
    'ext:redis',
    aliases=('redis',),
    session_store=RedisSessionStore,
    namespace_manager=RedisNamespaceManager,
    beaker_name='pyramid_beaker.redis',
    location=('url', 'sentinels', 'client'),
    options=OPTIONS,
    region_only=('lock_timeout',),
    connect=connect,
    check=check,
)
