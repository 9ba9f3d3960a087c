"""Session options for every store type, each with storage of its own.

``store_options(kind, tmp_dir, request)`` returns the options of a
session factory of ``kind`` (one of :data:`KINDS`), signed with SECRET.
Server-backed kinds get a key prefix or table of their own, removed when
the test ends; ``request`` is pytest's fixture request, used to reach the
server fixtures (which skip, or fail under CI, when a server is down).
"""
import os
import uuid

from .session_app import SECRET

KINDS = ['memory', 'file', 'dbm', 'cookie', 'cookie-encrypted',
         'ext:redis', 'ext:memcached', 'ext:database', 'ext:database-mariadb']
#: Kinds that keep sessions on the server side.
SERVER_SIDE = [kind for kind in KINDS if not kind.startswith('cookie')]


def store_options(kind, tmp_dir, request, **extra):
    """Return the session options of ``kind``; clean-up is registered on ``request``."""
    options = {'secret': SECRET, 'timeout': 600}
    tag = uuid.uuid4().hex[:12]
    if kind in ('file', 'dbm'):
        options.update(type=kind, data_dir=os.path.join(tmp_dir, 'data'),
                       lock_dir=os.path.join(tmp_dir, 'lock'))
    elif kind == 'cookie':
        options.update(type='cookie')
    elif kind == 'cookie-encrypted':
        options.update(type='cookie', encrypt_key='an-encryption-key')
    elif kind == 'ext:redis':
        url = request.getfixturevalue('redis_url')
        prefix = 'pbtest:%s:' % tag
        options.update(type=kind, url=url, key_prefix=prefix)
        request.addfinalizer(lambda: _drop_redis_keys(url, prefix))
    elif kind == 'ext:memcached':
        url = request.getfixturevalue('memcached_url')
        options.update(type=kind, url=url, key_prefix='pbtest:%s:' % tag)
    elif kind in ('ext:database', 'ext:database-mariadb'):
        url = request.getfixturevalue(
            'mariadb_url' if kind.endswith('mariadb') else 'postgres_url')
        table = 'pbtest_%s' % tag
        options.update(type='ext:database', url=url, table_name=table)
        request.addfinalizer(lambda: _drop_table(url, table))
    else:
        options.update(type='memory')
    options.update(extra)
    return options


def _drop_redis_keys(url, prefix):
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        names = list(client.scan_iter(match=prefix + '*', count=500))
        if names:
            client.delete(*names)
    finally:
        client.close()


def _drop_table(url, table):
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text('DROP TABLE IF EXISTS %s' % table))
    finally:
        engine.dispose()


def stored_bytes(options, session_id):
    """Every byte a server-side store holds for its sessions, read directly.

    Files and dbm: the whole data directory; Redis: the session's hash;
    memcached: the session's item; databases: the session's row.
    """
    kind = options['type']
    if kind in ('file', 'dbm'):
        found = b''
        for root, _, names in os.walk(options['data_dir']):
            for name in names:
                with open(os.path.join(root, name), 'rb') as f:
                    found += f.read()
        return found
    if kind == 'ext:redis':
        import redis

        client = redis.Redis.from_url(options['url'], socket_timeout=5)
        try:
            fields = client.hgetall('%ssession:%s' % (options['key_prefix'], session_id))
        finally:
            client.close()
        return b''.join(name + value for name, value in fields.items())
    if kind == 'ext:memcached':
        from pymemcache.client.base import Client

        host, _, port = options['url'].partition(':')
        client = Client((host, int(port or 11211)), timeout=5, connect_timeout=5)
        try:
            return client.get(options['key_prefix'] + session_id) or b''
        finally:
            client.close()
    if kind == 'ext:database':
        import sqlalchemy as sa

        engine = sa.create_engine(options['url'])
        try:
            with engine.connect() as conn:
                row = conn.execute(sa.text('SELECT data FROM %s WHERE id = :id'
                                           % options['table_name']), {'id': session_id}).first()
        finally:
            engine.dispose()
        return bytes(row.data) if row else b''
    raise ValueError('no raw reader for %s' % kind)
