"""Redis Cluster storage (``ext:rediscluster``): the ``ext:redis`` layout on a cluster.

Sessions and cache entries are kept exactly as with ``ext:redis`` (one hash
per session saved by one Lua script call, one string per cache entry), but
through redis-py's :class:`~redis.cluster.RedisCluster`, which knows which
node serves which slot and follows ``MOVED`` and ``ASK`` redirections, so
none reaches the app.  The session id is the key's hash tag
(``beaker:session:{<id>}``, and ``beaker:gone:{<id>}`` for its tombstone):
whatever is stored for one session stays in one slot, which a Lua script
needs.

``url`` lists one or more startup nodes separated by commas
(``redis://10.0.0.1:7000,redis://10.0.0.2:7000``), as Beaker's own
``ext:rediscluster`` takes them in ``urls`` (accepted too).  The cluster has
one database: a URL may not name another.
"""
from beaker.exceptions import InvalidCacheBackendError
from pyramid.exceptions import ConfigurationError

from ..coerce import as_list, as_str, mask_url
from .base import Backend

try:
    import redis
    from redis.cluster import ClusterNode, RedisCluster
except ImportError as exc:  # Beaker skips such entry points quietly
    raise InvalidCacheBackendError(
        'the ext:rediscluster backend needs redis-py: '
        'pip install "pyramid_beaker[redis]"') from exc

from .redis import (
    DEFAULT_SOCKET_TIMEOUT,
    RedisNamespaceManager,
    RedisSessionStore,
    as_redis_url,
    as_seconds_float,
)


def as_startup_nodes(value, label):
    """Coerce one or more node URLs (``redis://host:port``) separated by commas."""
    text = as_str(value, label)
    if text is None:
        return None
    urls = as_list(text)
    for url in urls:
        as_redis_url(url, label)
        if redis.connection.parse_url(url).get('db', 0) != 0:
            raise ConfigurationError(
                '"%s" = %r: a Redis Cluster has database 0 only'
                % (label, mask_url(text)))
    return text


def as_client(value, label):
    """Accept a ready :class:`~redis.cluster.RedisCluster` (or None)."""
    if value is None or isinstance(value, RedisCluster):
        return value
    raise ConfigurationError(
        '"%s" must be a redis.cluster.RedisCluster client, not %r' % (label, value))


OPTIONS = {
    'url': as_startup_nodes,
    'urls': as_startup_nodes,
    'client': as_client,
    'key_prefix': as_str,
    'socket_timeout': as_seconds_float,
    'lock_timeout': as_seconds_float,
}


def connect(options):
    """Return ``options['client']``, or a new cluster client for the startup nodes."""
    if options.get('client') is not None:
        return options['client']
    urls = as_list(options.get('url') or options['urls'])
    first = redis.connection.parse_url(urls[0])
    nodes = [ClusterNode(parsed['host'], parsed.get('port', 6379))
             for parsed in map(redis.connection.parse_url, urls)]
    timeout = options.get('socket_timeout') or DEFAULT_SOCKET_TIMEOUT
    credentials = {name: first[name] for name in ('username', 'password') if name in first}
    return RedisCluster(startup_nodes=nodes, socket_timeout=timeout,
                        socket_connect_timeout=timeout, **credentials)


class RedisClusterSessionStore(RedisSessionStore):
    """Sessions as hashes on a cluster, the id as hash tag."""

    name = 'ext:rediscluster'
    connect = staticmethod(connect)

    def __init__(self, options, codec):
        super().__init__(options, codec)
        nodes = options.get('url') or options.get('urls')
        self.url = mask_url(nodes) if nodes else repr(self.client)

    def key(self, session_id):
        return '%ssession:{%s}' % (self.prefix, session_id)

    def gone_key(self, session_id):
        return '%sgone:{%s}' % (self.prefix, session_id)


class RedisClusterNamespaceManager(RedisNamespaceManager):
    """Cache entries on a cluster; entries of one namespace spread over its slots."""

    name = 'ext:rediscluster'
    connect = staticmethod(connect)

    def _get_many_raw(self, keys):
        # MGET must stay in one slot; this splits it per slot.
        return self.client.mget_nonatomic([self._key(key) for key in keys])


BACKEND = Backend(
    'ext:rediscluster',
    aliases=('rediscluster',),
    session_store=RedisClusterSessionStore,
    namespace_manager=RedisClusterNamespaceManager,
    beaker_name='pyramid_beaker.rediscluster',
    location=('url', 'urls', 'client'),
    options=OPTIONS,
    region_only=('lock_timeout',),
    connect=connect,
)
