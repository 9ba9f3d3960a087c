"""SQL database storage (``ext:database``) through SQLAlchemy 2.

Sessions live in one table (default ``beaker_sessions``), one row per
session: the signed record in ``data`` plus unsigned bookkeeping columns
(``created``, ``accessed``, ``expires``) used for expiry and purging.  A save
is one transaction that locks the row (``SELECT ... FOR UPDATE``), merges and
writes it back, or inserts it inside a savepoint and retries when another
writer inserted it first.  Cache entries live in a second table (default
``beaker_cache``); creation locks are PostgreSQL advisory locks.  Tables are
created on first use when missing.  Tested with PostgreSQL (psycopg 3).  The
SQL is portable, but atomic merges need ``FOR UPDATE`` row locks, which
SQLite lacks; creation locks across processes need PostgreSQL.
"""
import contextlib
import hashlib
import threading
import time
import warnings
import weakref

from beaker.exceptions import InvalidCacheBackendError
from beaker.synchronization import NameLock
from pyramid.exceptions import ConfigurationError

from ..coerce import as_bool, as_str, as_timeout, mask_url
from .base import (
    Backend,
    BaseNamespaceManager,
    SessionBackendError,
    SessionStore,
    merge,
    pack_record,
)

try:
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc
except ImportError as exc:  # Beaker skips such entry points quietly
    raise InvalidCacheBackendError(
        'the ext:database backend needs SQLAlchemy: '
        'pip install "pyramid_beaker[database]"') from exc

SESSION_TABLE = 'beaker_sessions'
CACHE_TABLE = 'beaker_cache'
DEFAULT_LOCK_TIMEOUT = 30.0
#: SQLSTATE of "lock_not_available", raised when lock_timeout runs out.
_LOCK_NOT_AVAILABLE = '55P03'


def as_engine(value, label):
    """Accept a SQLAlchemy :class:`~sqlalchemy.engine.Engine` (or None)."""
    if value is None or isinstance(value, sa.engine.Engine):
        return value
    raise ConfigurationError(
        '"%s" must be a SQLAlchemy Engine, not %r' % (label, value))


def as_engine_option(value, label):
    """``sa.*`` options go to :func:`sqlalchemy.engine_from_config` as given."""
    return value


OPTIONS = {
    'url': as_str,
    'bind': as_engine,
    'table_name': as_str,
    'schema_name': as_str,
    'lock_timeout': as_timeout,
    'sa.': as_engine_option,
}


def connect(options):
    """Return ``options['bind']``, or a new engine for ``url`` and the ``sa.*`` options.

    ``pool_pre_ping`` defaults to true, so connections broken by a database
    restart are replaced instead of failing the next request.
    """
    if options.get('bind') is not None:
        return options['bind']
    url = options.get('url')
    if not url:
        raise ValueError('ext:database needs a "url" or a "bind" engine')
    config = {'sa.pool_pre_ping': True}
    config.update((name, value) for name, value in options.items()
                  if name.startswith('sa.'))
    config['sa.pool_pre_ping'] = as_bool(
        config['sa.pool_pre_ping'], 'sa.pool_pre_ping')
    config['sa.url'] = url
    return sa.engine_from_config(config, prefix='sa.')


_engines = {}
_engines_lock = threading.Lock()


def shared_engine(options):
    """Return ``options['bind']`` or the process-wide engine for these options."""
    if options.get('bind') is not None:
        return options['bind']
    key = tuple(sorted((name, repr(value)) for name, value in options.items()
                       if name == 'url' or name.startswith('sa.')))
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = connect(options)
        return engine


def dispose_shared_engines():
    """Close the cache namespaces' pooled connections (at shutdown, in tests).

    The engines open new connections when next used.
    """
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()


def create_table(engine, table):
    """Create ``table`` if it does not exist yet."""
    try:
        table.create(engine, checkfirst=True)
    except sa_exc.DBAPIError:
        # Another process may have created it between the check and CREATE.
        if not sa.inspect(engine).has_table(table.name, schema=table.schema):
            raise


def _table(name, schema, nullable=(), **columns):
    """A table with metadata of its own: the primary key ``id``, then
    ``columns`` (column name: type, in order), NOT NULL unless in ``nullable``."""
    return sa.Table(
        name, sa.MetaData(),
        sa.Column('id', sa.String(64), primary_key=True),
        *(sa.Column(column, kind, nullable=column in nullable)
          for column, kind in columns.items()),
        schema=schema)


def session_table(name, schema):
    """The sessions table: id, signed data and the times used for expiry."""
    return _table(name, schema, data=sa.LargeBinary, created=sa.Double,
                  accessed=sa.Double, expires=sa.Double)


def cache_table(name, schema):
    """The cache table: a digest of (namespace, key), signed entry, expiry."""
    return _table(name, schema, nullable=('expires',), namespace=sa.Text,
                  data=sa.LargeBinary, stored=sa.Double, expires=sa.Double)


class DatabaseSessionStore(SessionStore):
    """Session rows in a SQL table, merged under a row lock."""

    name = 'ext:database'
    max_tries = 3

    def __init__(self, options, codec):
        super().__init__(options, codec)
        self._owns_engine = options.get('bind') is None
        self.engine = connect(options)
        self.reader = self.engine.execution_options(isolation_level='AUTOCOMMIT')
        self.url = self.engine.url.render_as_string(hide_password=False)
        if self.engine.dialect.name == 'sqlite':
            warnings.warn(
                'ext:database sessions on SQLite: it has no row locks, so '
                'concurrent requests to one session can lose changes', stacklevel=2)
        self.table = session_table(
            options.get('table_name') or SESSION_TABLE, options.get('schema_name'))
        self._table_exists = False

    @contextlib.contextmanager
    def _connect(self, engine):
        """Yield a connection (a transaction unless ``engine`` autocommits)."""
        try:
            if not self._table_exists:
                create_table(self.engine, self.table)
                self._table_exists = True
            with engine.begin() as conn:
                yield conn
        except sa_exc.DBAPIError as exc:
            raise SessionBackendError(
                'database session store at %s failed: %s'
                % (mask_url(self.url), exc.orig or exc)) from exc

    def load(self, session_id):
        table = self.table
        with self._connect(self.reader) as conn:
            row = conn.execute(
                sa.select(table.c.data).where(
                    table.c.id == session_id, table.c.expires >= time.time())
            ).first()
        return None if row is None else self._decode(session_id, row.data)

    def save(self, session_id, changed, deleted, created, accessed, ttl, create=True):
        return self._update(session_id, changed, deleted, created, accessed, ttl, create)

    def touch(self, session_id, accessed, ttl):
        return self._update(session_id, {}, (), None, accessed, ttl, False)

    def _update(self, session_id, changed, deleted, created, accessed, ttl, create):
        """Merge onto the locked row, or insert it; one transaction."""
        table = self.table
        with self._connect(self.engine) as conn:
            for _ in range(self.max_tries):
                row = conn.execute(
                    sa.select(table.c.data, table.c.expires)
                    .where(table.c.id == session_id).with_for_update()
                ).first()
                record = None
                if row is not None and row.expires >= time.time():
                    record = self._decode(session_id, row.data)
                if record is None and not create:
                    return False
                first = record.created if record else created
                data = merge(record.data if record else {}, changed, deleted)
                values = {
                    'data': self.codec.dumps(pack_record(data, first, accessed)),
                    'created': first,
                    'accessed': accessed,
                    'expires': accessed + ttl,
                }
                if row is not None:
                    conn.execute(table.update()
                                 .where(table.c.id == session_id).values(values))
                    return True
                try:
                    with conn.begin_nested():
                        conn.execute(table.insert().values(id=session_id, **values))
                    return True
                except sa_exc.IntegrityError:
                    continue  # inserted meanwhile: lock that row and merge
        raise SessionBackendError(
            'database session store: could not save session %s...'
            % session_id[:8])

    def delete(self, session_id):
        with self._connect(self.engine) as conn:
            conn.execute(self.table.delete().where(self.table.c.id == session_id))

    def purge_expired(self, max_idle, now=None, progress=None):
        """Delete rows idle past ``max_idle`` or expired, in one statement."""
        now = time.time() if now is None else now
        table = self.table
        with self._connect(self.engine) as conn:
            removed = conn.execute(table.delete().where(sa.or_(
                table.c.accessed < now - max_idle, table.c.expires < now))).rowcount
        if progress is not None:
            progress(removed, removed)
        return removed

    def close(self):
        if self._owns_engine:
            self.engine.dispose()


def entry_id(namespace, key):
    """Return the row id of ``key`` in ``namespace``: a sha256 hex digest."""
    if isinstance(key, str):
        key = key.encode('utf-8')
    space = namespace.encode('utf-8')
    return hashlib.sha256(b'%d:%s:%s' % (len(space), space, key)).hexdigest()


_lock_engines = weakref.WeakKeyDictionary()
_local_locks = weakref.WeakValueDictionary()


def lock_engine(engine):
    """An engine for ``engine``'s database whose connections are not pooled.

    Creation locks hold a connection while the value is computed; taking it
    from the app's pool would starve the computation (and every waiter)
    of connections when the pool is small.
    """
    with _engines_lock:
        found = _lock_engines.get(engine)
        if found is None:
            found = _lock_engines[engine] = sa.create_engine(
                engine.url, poolclass=sa.pool.NullPool)
        return found


class _LocalLock:
    """A process-local lock per advisory lock number (weakly shared)."""

    def __init__(self):
        self.mutex = threading.Lock()


def _local_lock(number):
    with _engines_lock:
        found = _local_locks.get(number)
        if found is None:
            found = _local_locks[number] = _LocalLock()
        return found


class AdvisoryLock:
    """Cross-process lock: a PostgreSQL advisory lock on a connection of its own.

    Threads of one process first queue on a local lock, so a process waits
    in PostgreSQL with one connection per key at most; that connection is
    not taken from the app's pool (see :func:`lock_engine`), so the holder
    can always read and write while others wait.  ``acquire(wait=True)``
    waits at most ``timeout`` seconds, then returns False.  If the process
    dies, the server drops the connection and the lock with it.
    """

    def __init__(self, engine, number, timeout):
        self.engine = engine
        self.number = number
        self.timeout = timeout
        self.conn = None
        self.local = _local_lock(number)

    def acquire(self, wait=True):
        started = time.monotonic()
        if not self.local.mutex.acquire(wait, self.timeout if wait else -1):
            return False
        try:
            left = self.timeout - (time.monotonic() - started)
            locked = left > 0 and self._acquire_advisory(wait, left)
        except BaseException:
            self.local.mutex.release()
            raise
        if not locked:
            self.local.mutex.release()
        return locked

    def _acquire_advisory(self, wait, timeout):
        conn = lock_engine(self.engine).connect()
        try:
            if wait:
                conn.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"),
                             {'t': '%dms' % max(1, timeout * 1000)})
                conn.execute(sa.text('SELECT pg_advisory_lock(:n)'), {'n': self.number})
                locked = True
            else:
                locked = conn.execute(sa.text('SELECT pg_try_advisory_lock(:n)'),
                                      {'n': self.number}).scalar()
            conn.commit()
        except sa_exc.OperationalError as exc:
            conn.close()
            if getattr(exc.orig, 'sqlstate', None) == _LOCK_NOT_AVAILABLE:
                return False
            raise
        except BaseException:
            conn.close()
            raise
        if not locked:
            conn.close()
            return False
        self.conn = conn
        return True

    def release(self):
        conn, self.conn = self.conn, None
        if conn is None:
            return
        try:
            conn.execute(sa.text('SELECT pg_advisory_unlock(:n)'), {'n': self.number})
            conn.commit()
        except sa_exc.DBAPIError:
            conn.invalidate()  # closing the connection frees the lock too
        finally:
            conn.close()
            self.local.mutex.release()


class DatabaseNamespaceManager(BaseNamespaceManager):
    """Cache region entries as rows of one table shared by all namespaces.

    Options: ``url`` or ``bind``, ``table_name`` (default ``beaker_cache``),
    ``schema_name``, ``lock_timeout`` and ``sa.*`` engine options.  Managers
    with the same url and ``sa.*`` options share one engine.
    """

    name = 'ext:database'

    def __init__(self, namespace, **options):
        super().__init__(namespace, **options)
        self.engine = shared_engine(self.options)
        self.reader = self.engine.execution_options(isolation_level='AUTOCOMMIT')
        self.table = cache_table(
            self.options.get('table_name') or CACHE_TABLE, self.options.get('schema_name'))
        self.lock_timeout = self.options.get('lock_timeout') or DEFAULT_LOCK_TIMEOUT
        self._table_exists = False

    @contextlib.contextmanager
    def _connect(self, engine):
        """Yield a connection in a transaction (none if ``engine`` autocommits)."""
        if not self._table_exists:
            create_table(self.engine, self.table)
            self._table_exists = True
        with engine.begin() as conn:
            yield conn

    def _get_raw(self, key):
        table = self.table
        with self._connect(self.reader) as conn:
            row = conn.execute(
                sa.select(table.c.data, table.c.expires)
                .where(table.c.id == entry_id(self.namespace, key))).first()
        if row is None or (row.expires is not None and row.expires < time.time()):
            return None
        return row.data

    def _get_many_raw(self, keys):
        table = self.table
        ids = [entry_id(self.namespace, key) for key in keys]
        with self._connect(self.reader) as conn:
            rows = conn.execute(
                sa.select(table.c.id, table.c.data, table.c.expires)
                .where(table.c.id.in_(ids))).all()
        now = time.time()
        found = {row.id: row.data for row in rows
                 if row.expires is None or row.expires >= now}
        return [found.get(row_id) for row_id in ids]

    def _set_raw(self, key, raw, expiretime):
        table, now = self.table, time.time()
        row_id = entry_id(self.namespace, key)
        values = {'data': raw, 'stored': now,
                  'expires': now + expiretime if expiretime else None}
        update = table.update().where(table.c.id == row_id).values(values)
        with self._connect(self.engine) as conn:
            if conn.execute(update).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(table.insert().values(
                        id=row_id, namespace=self.namespace, **values))
            except sa_exc.IntegrityError:  # inserted meanwhile
                conn.execute(update)

    def _delete(self, key):
        with self._connect(self.engine) as conn:
            conn.execute(self.table.delete().where(
                self.table.c.id == entry_id(self.namespace, key)))

    def do_remove(self):
        with self._connect(self.engine) as conn:
            conn.execute(self.table.delete().where(
                self.table.c.namespace == self.namespace))

    def get_creation_lock(self, key):
        row_id = entry_id(self.namespace, key)
        if self.engine.dialect.name != 'postgresql':
            return NameLock('pyramid_beaker/database/' + row_id, reentrant=True)
        digest = hashlib.sha256(('%s:%s' % (self.table.name, row_id)).encode()).digest()
        number = int.from_bytes(digest[:8], 'big', signed=True)
        return AdvisoryLock(self.engine, number, self.lock_timeout)


BACKEND = Backend(
    'ext:database',
    aliases=('database',),
    session_store=DatabaseSessionStore,
    namespace_manager=DatabaseNamespaceManager,
    beaker_name='pyramid_beaker.database',
    location=('url', 'bind'),
    options=OPTIONS,
    connect=connect,
)
