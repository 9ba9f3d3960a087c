"""SQL database storage (``ext:database``) through SQLAlchemy 2.

Sessions live in one table (default ``beaker_sessions``), one row per
session: the signed record in ``data`` plus unsigned bookkeeping columns
(``created``, ``accessed``, ``expires``) used for expiry and purging.  A save
of a loaded session is first one autocommitted ``UPDATE`` of the loaded data
plus the request's changes, which matches the row only while it still holds
the bytes that were loaded (and has not expired).  When it matches nothing,
or for a new session, the save is one transaction that locks the row
(``SELECT ... FOR UPDATE``), merges and writes it back, or inserts it inside
a savepoint and retries when another writer inserted it first.  Cache
entries live in a second table (default ``beaker_cache``).  Tables are
created on first use when missing.

Tested with PostgreSQL (psycopg 3) and MariaDB/MySQL (PyMySQL).  Creation
locks across processes are PostgreSQL advisory locks or MySQL's
``GET_LOCK``; elsewhere they hold within one process only.  On MySQL, engines
made from a ``url`` use ``READ COMMITTED`` unless ``sa.isolation_level`` says
otherwise, so that locking reads of missing rows take no gap locks (which
make concurrent first saves deadlock).  The SQL is portable, but atomic
merges need ``FOR UPDATE`` row locks, which SQLite lacks.
"""
import contextlib
import hashlib
import math
import os
import random
import socket
import threading
import time
import warnings
import weakref

from beaker.exceptions import InvalidCacheBackendError
from beaker.synchronization import NameLock
from pyramid.exceptions import ConfigurationError

from ..coerce import as_bool, as_int, as_str, as_timeout, mask_url
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
    from sqlalchemy import util as sa_util
    from sqlalchemy.dialects.mysql import LONGBLOB
    from sqlalchemy.engine.default import DefaultDialect
except ImportError as exc:  # Beaker skips such entry points quietly
    raise InvalidCacheBackendError(
        'the ext:database backend needs SQLAlchemy: '
        'pip install "pyramid_beaker[database]"') from exc

SESSION_TABLE = 'beaker_sessions'
CACHE_TABLE = 'beaker_cache'
DEFAULT_LOCK_TIMEOUT = 30.0
#: Seconds one database operation may take (``socket_timeout``).
DEFAULT_SOCKET_TIMEOUT = 5.0
#: SQLSTATE of "lock_not_available", raised when lock_timeout runs out.
_LOCK_NOT_AVAILABLE = '55P03'
#: SQLSTATEs of a transaction to run again: serialization failure, deadlock.
_RESTART_STATES = frozenset(('40001', '40P01'))
#: MySQL's error number for "Deadlock found when trying to get lock".
_MYSQL_DEADLOCK = 1213


def as_engine(value, label):
    """Accept a SQLAlchemy :class:`~sqlalchemy.engine.Engine` (or None)."""
    if value is None or isinstance(value, sa.engine.Engine):
        return value
    raise ConfigurationError(
        '"%s" must be a SQLAlchemy Engine, not %r' % (label, value))


#: The driver each database's extra installs, and the extra.
_EXTRAS = {'postgresql': ('psycopg', 'database'), 'mysql': ('pymysql', 'mysql'),
           'mariadb': ('pymysql', 'mysql')}
#: ``sa.*`` options that are booleans (the whole numbers are SQLAlchemy's own
#: ``engine_config_types``).
_BOOLEAN_ENGINE_OPTIONS = frozenset(('pool_pre_ping', 'future', 'pool_use_lifo'))


def as_database_url(value, label):
    """Coerce a SQLAlchemy URL whose dialect and driver are installed."""
    url = as_str(value, label)
    if url is None:
        return None
    try:
        dialect = sa.engine.make_url(url).get_dialect()
    except sa_exc.NoSuchModuleError:
        raise ConfigurationError('"%s" = %r: SQLAlchemy knows no such database'
                                 % (label, mask_url(url))) from None
    except sa_exc.ArgumentError as exc:
        raise ConfigurationError('"%s" = %r is not a SQLAlchemy URL: %s'
                                 % (label, mask_url(url), exc)) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        hint = 'install it'
        if dialect.name in _EXTRAS:
            driver, extra = _EXTRAS[dialect.name]
            hint = 'pip install "pyramid_beaker[%s]"' % extra
            if dialect.driver != driver:
                hint = 'use %s+%s:// and %s' % (dialect.name, driver, hint)
        raise ConfigurationError('"%s" = %r: the %s driver is not installed (%s): %s'
                                 % (label, mask_url(url), dialect.driver, exc.name,
                                    hint)) from None
    return url


def as_engine_option(value, label):
    """Coerce an ``sa.*`` option: SQLAlchemy's numbers and booleans are checked."""
    name = label.rpartition('sa.')[2]
    if name in _BOOLEAN_ENGINE_OPTIONS:
        return as_bool(value, label)
    if DefaultDialect.engine_config_types.get(name) is sa_util.asint:
        return as_int(value, label, allow_none=True)
    return value


def check(options, label):
    """Make (but do not connect) the engine, so bad ``sa.*`` options fail at startup."""
    if options.get('bind') is not None or not options.get('url'):
        return
    try:
        connect(options).dispose()
    except (TypeError, ValueError, sa_exc.ArgumentError) as exc:
        given = sorted(name for name in options if name.startswith('sa.'))
        raise ConfigurationError('"%s" with %s cannot make an engine: %s' % (
            label('url'), ', '.join('"%s"' % label(name) for name in given) or 'no "sa.*" options',
            exc)) from None


OPTIONS = {
    'url': as_database_url,
    'bind': as_engine,
    'table_name': as_str,
    'schema_name': as_str,
    'lock_timeout': as_timeout,
    'socket_timeout': as_timeout,
    'sa.': as_engine_option,
}


def socket_timeout(options):
    """The seconds one operation may take: ``socket_timeout`` or the default."""
    return options.get('socket_timeout') or DEFAULT_SOCKET_TIMEOUT


def _connect_args(dialect, timeout):
    """Driver arguments that bound connecting (and, for PyMySQL, each read and write)."""
    if dialect == 'postgresql':
        return {'connect_timeout': max(2, math.ceil(timeout))}  # libpq's minimum is 2
    if dialect in ('mysql', 'mariadb'):
        return {'connect_timeout': timeout, 'read_timeout': timeout, 'write_timeout': timeout}
    return {}


def connect(options):
    """Return ``options['bind']``, or a new engine for ``url`` and the ``sa.*`` options.

    On PostgreSQL, pooled connections are not pinged before each use
    (``sa.pool_pre_ping`` defaults to false there: a ping is a round trip
    per request); a connection found broken is replaced and the work done
    again (see :func:`run`).  Elsewhere it defaults to true: MySQL drivers
    talk to the server while a connection is checked out (to switch
    autocommit), where a broken connection fails outside :func:`run`'s reach.
    """
    if options.get('bind') is not None:
        return options['bind']
    url = options.get('url')
    if not url:
        raise ValueError('ext:database needs a "url" or a "bind" engine')
    dialect = sa.engine.make_url(url).get_dialect().name
    config = {'sa.pool_pre_ping': dialect != 'postgresql'}
    if dialect in ('mysql', 'mariadb'):
        config['sa.isolation_level'] = 'READ COMMITTED'
    config.update((name, value) for name, value in options.items()
                  if name.startswith('sa.'))
    config['sa.connect_args'] = dict(_connect_args(dialect, socket_timeout(options)),
                                     **config.get('sa.connect_args', {}))
    config['sa.url'] = url
    return sa.engine_from_config(config, prefix='sa.')


def run(engine, work, timeout=None):
    """Return ``work(conn)`` run in a transaction (none if ``engine`` autocommits).

    When the connection turns out broken (the database restarted since it
    was pooled), SQLAlchemy discards the pool's connections and ``work``
    runs once more, on a new one.  ``work`` must be safe to repeat: ours
    are reads and merges.  With ``timeout``, the work and its commit must
    end within that many seconds (see :func:`watched`); one that does not
    raises :class:`OperationTimedOut` and is not repeated.
    """
    try:
        return _run_once(engine, work, timeout)
    except OperationTimedOut:
        raise
    except sa_exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    return _run_once(engine, work, timeout)


def _run_once(engine, work, timeout):
    with engine.connect() as conn:
        with watched(conn, timeout), conn.begin():
            return work(conn)


class OperationTimedOut(sa_exc.OperationalError):
    """The database did not answer within ``socket_timeout`` seconds."""


class _Watchdog:
    """One thread that runs an action for each watched operation that overruns.

    The thread is woken only for a deadline earlier than the one it sleeps
    until.  With nothing to watch it sleeps for the shortest time watched
    so far, so a new watch (for at least as long) never needs to wake it:
    operations that end in time cost no thread switch.
    """

    def __init__(self):
        self._cond = threading.Condition()
        self._due = {}  # token -> (deadline, action)
        self._thread = None
        self._shortest = 60.0  # the idle sleep: the shortest time watched
        self._wake_at = 0.0  # when the thread wakes next (time.monotonic())

    def watch(self, seconds, action):
        token = object()
        deadline = time.monotonic() + seconds
        with self._cond:
            self._due[token] = (deadline, action)
            self._shortest = min(self._shortest, seconds)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name='pyramid_beaker database watchdog', daemon=True)
                self._thread.start()
            elif deadline < self._wake_at:
                self._cond.notify()
        return token

    def cancel(self, token):
        with self._cond:
            self._due.pop(token, None)

    def _loop(self):
        while True:
            with self._cond:
                now = time.monotonic()
                overdue = [token for token, (deadline, _) in self._due.items()
                           if deadline <= now]
                actions = [self._due.pop(token)[1] for token in overdue]
                if not actions:
                    self._wake_at = min((deadline for deadline, _ in self._due.values()),
                                        default=now + self._shortest)
                    self._cond.wait(max(self._wake_at - now, 0.001))
                    continue
            for action in actions:
                action()


_watchdog = _Watchdog()


def _cut(dbapi_connection):
    """Shut the socket of a DBAPI connection, so a call blocked on it returns."""
    fileno = getattr(dbapi_connection, 'fileno', None)
    try:
        fd = fileno() if fileno is not None else dbapi_connection._sock.fileno()
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # already closed, or a driver we cannot reach into
        pass


@contextlib.contextmanager
def watched(conn, timeout):
    """Bound what runs on ``conn`` inside the block to ``timeout`` seconds.

    A frozen server holds the connection open without answering, which no
    driver timeout notices (TCP keeps acknowledging).  When the block
    overruns, a watchdog thread shuts the connection's socket: the blocked
    call fails at once, and the block raises :class:`OperationTimedOut`.
    """
    if not timeout:
        yield
        return
    dbapi_connection = conn.connection.dbapi_connection
    fired = []

    def cut():
        fired.append(True)
        _cut(dbapi_connection)

    token = _watchdog.watch(timeout, cut)
    try:
        yield
    except sa_exc.DBAPIError as exc:
        if fired:
            conn.invalidate()
            raise OperationTimedOut(
                exc.statement, exc.params,
                TimeoutError('no answer within %g s (socket_timeout)' % timeout)) from exc
        raise
    finally:
        _watchdog.cancel(token)


_engines = {}
_engines_lock = threading.Lock()


def shared_engine(options):
    """Return ``options['bind']`` or the process-wide engine for these options."""
    if options.get('bind') is not None:
        return options['bind']
    key = tuple(sorted((name, repr(value)) for name, value in options.items()
                       if name in ('url', 'socket_timeout') or name.startswith('sa.')))
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


def create_table(engine, table, timeout=None):
    """Create ``table`` if it does not exist yet (within ``timeout`` seconds)."""
    try:
        run(engine, lambda conn: table.create(conn, checkfirst=True), timeout)
    except OperationTimedOut:
        raise
    except sa_exc.DBAPIError:
        # Another process may have created it between the check and CREATE.
        if not run(engine, lambda conn: sa.inspect(conn).has_table(
                table.name, schema=table.schema), timeout):
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


#: Signed records and entries: MySQL's BLOB holds only 64 KB, LONGBLOB 4 GB.
_BYTES = sa.LargeBinary().with_variant(LONGBLOB(), 'mysql', 'mariadb')


def session_table(name, schema):
    """The sessions table: id, signed data and the times used for expiry."""
    return _table(name, schema, data=_BYTES, created=sa.Double,
                  accessed=sa.Double, expires=sa.Double)


def cache_table(name, schema):
    """The cache table: a digest of (namespace, key), signed entry, expiry."""
    return _table(name, schema, nullable=('expires',), namespace=sa.Text,
                  data=_BYTES, stored=sa.Double, expires=sa.Double)


class DatabaseSessionStore(SessionStore):
    """Session rows in a SQL table, merged under a row lock."""

    name = 'ext:database'
    max_tries = 3
    deadlock_tries = 10

    def __init__(self, options, codec):
        super().__init__(options, codec)
        self._owns_engine = options.get('bind') is None
        self.engine = connect(options)
        self.timeout = socket_timeout(options)
        self.autocommit = self._autocommit_engine(options)
        self.url = self.engine.url.render_as_string(hide_password=False)
        if self.engine.dialect.name == 'sqlite':
            warnings.warn(
                'ext:database sessions on SQLite: it has no row locks, so '
                'concurrent requests to one session can lose changes', stacklevel=2)
        self.table = table = session_table(
            options.get('table_name') or SESSION_TABLE, options.get('schema_name'))
        self._table_exists = False
        # Built once: constructing statements costs more than running them.
        # An UPDATE sets the columns named in its parameters.
        by_id = table.c.id == sa.bindparam('sid')
        self._select = sa.select(table.c.data).where(
            by_id, table.c.expires >= sa.bindparam('now'))
        self._select_locked = sa.select(
            table.c.data, table.c.expires).where(by_id).with_for_update()
        self._update_row = table.update().where(by_id)
        self._update_if_unchanged = table.update().where(
            by_id, table.c.data == sa.bindparam('old'),
            table.c.expires >= sa.bindparam('now'))
        self._insert_row = table.insert()
        self._delete_row = table.delete().where(by_id)

    def _autocommit_engine(self, options):
        """The engine of single statements: loads, conditional writes, deletes.

        When the store made its engine, a second one from the same options
        whose connections stay in autocommit mode, so that no pooled
        connection switches modes per use (which costs more than the
        statement); a given engine switches its connections per use.
        """
        if not self._owns_engine:
            return self.engine.execution_options(isolation_level='AUTOCOMMIT')
        return connect(dict(options, **{'sa.isolation_level': 'AUTOCOMMIT'}))

    def _run(self, engine, work):
        """Return ``work(conn)`` (see :func:`run`); failures raise SessionBackendError."""
        try:
            if not self._table_exists:
                create_table(self.engine, self.table, self.timeout)
                self._table_exists = True
            return run(engine, work, self.timeout)
        except sa_exc.DBAPIError as exc:
            raise SessionBackendError(
                'database session store at %s failed: %s'
                % (mask_url(self.url), exc.orig or exc)) from exc

    def load(self, session_id):
        """Return the record; its token holds the row's ``data`` as read."""
        row = self._run(self.autocommit, lambda conn: conn.execute(
            self._select, {'sid': session_id, 'now': time.time()}).first())
        return None if row is None else self._decode(session_id, row.data, row.data)

    def save(self, session_id, changed, deleted, created, accessed, ttl, create=True,
             token=None):
        if token is not None and self._write_over(
                session_id, token, changed, deleted, accessed, ttl):
            return True
        return self._update(session_id, changed, deleted, created, accessed, ttl, create)

    def touch(self, session_id, accessed, ttl, token=None):
        return self.save(session_id, {}, (), None, accessed, ttl, False, token)

    def _write_over(self, session_id, token, changed, deleted, accessed, ttl):
        """Write the loaded record with the changes by one UPDATE that matches
        only the row as loaded (and not expired); True if it matched."""
        data, created = self._as_loaded(token)
        values = {
            'data': self.codec.dumps(pack_record(merge(data, changed, deleted), created, accessed)),
            'accessed': accessed,
            'expires': accessed + ttl,
            'sid': session_id,
            'old': token[0],
            'now': time.time(),
        }
        return self._run(self.autocommit, lambda conn: conn.execute(
            self._update_if_unchanged, values).rowcount) == 1

    def _update(self, session_id, changed, deleted, created, accessed, ttl, create):
        """Merge onto the locked row, or insert it, in one transaction.

        A transaction the database rolled back to break a deadlock (MySQL
        does, between writers racing to insert one session) runs again.
        """
        for attempt in range(self.deadlock_tries):
            try:
                return self._update_once(
                    session_id, changed, deleted, created, accessed, ttl, create)
            except SessionBackendError as exc:
                if attempt + 1 == self.deadlock_tries or not _deadlock(exc.__cause__):
                    raise
                time.sleep(random.uniform(0, 0.002 * 2 ** attempt))

    def _update_once(self, session_id, changed, deleted, created, accessed, ttl, create):
        def merge_row(conn):
            for _ in range(self.max_tries):
                row = conn.execute(self._select_locked, {'sid': session_id}).first()
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
                    conn.execute(self._update_row, dict(values, sid=session_id))
                    return True
                try:
                    with conn.begin_nested():
                        conn.execute(self._insert_row, dict(values, id=session_id))
                    return True
                except sa_exc.IntegrityError:
                    continue  # inserted meanwhile: lock that row and merge
            return None

        saved = self._run(self.engine, merge_row)
        if saved is not None:
            return saved
        raise SessionBackendError(
            'database session store: could not save session %s...'
            % session_id[:8])

    def delete(self, session_id):
        self._run(self.autocommit, lambda conn: conn.execute(
            self._delete_row, {'sid': session_id}))

    def purge_expired(self, max_idle, now=None, progress=None):
        """Delete rows past their expiry, in one statement.

        Each row's expiry is its access time plus the lifetime it was saved
        with (its own, from ``set_expiry``, or the factory's), so
        ``max_idle`` is not needed here.
        """
        now = time.time() if now is None else now
        table = self.table
        removed = self._run(self.engine, lambda conn: conn.execute(
            table.delete().where(table.c.expires < now)).rowcount)
        if progress is not None:
            progress(removed, removed)
        return removed

    def close(self):
        if self._owns_engine:
            self.engine.dispose()
            self.autocommit.dispose()


def _deadlock(exc):
    """True when ``exc`` is a transaction rolled back to break a deadlock."""
    orig = getattr(exc, 'orig', None)
    if getattr(orig, 'sqlstate', None) in _RESTART_STATES:  # PostgreSQL
        return True
    args = getattr(orig, 'args', None)
    return bool(args) and args[0] == _MYSQL_DEADLOCK


def entry_id(namespace, key):
    """Return the row id of ``key`` in ``namespace``: a sha256 hex digest."""
    if isinstance(key, str):
        key = key.encode('utf-8')
    space = namespace.encode('utf-8')
    return hashlib.sha256(b'%d:%s:%s' % (len(space), space, key)).hexdigest()


_lock_engines = weakref.WeakKeyDictionary()
_local_locks = weakref.WeakValueDictionary()


def lock_engine(engine, timeout=DEFAULT_SOCKET_TIMEOUT):
    """An engine for ``engine``'s database whose connections are not pooled.

    Creation locks hold a connection while the value is computed; taking it
    from the app's pool would starve the computation (and every waiter)
    of connections when the pool is small.  Connecting is bounded by
    ``timeout`` seconds.
    """
    with _engines_lock:
        found = _lock_engines.get(engine)
        if found is None:
            found = _lock_engines[engine] = sa.create_engine(
                engine.url, poolclass=sa.pool.NullPool,
                connect_args=_connect_args(engine.dialect.name, timeout))
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


class ServerLock:
    """Base of cross-process locks that a connection of their own holds on the server.

    Threads of one process first queue on a local lock, so a process waits
    on the server with one connection per key at most; that connection is
    not taken from the app's pool (see :func:`lock_engine`), so the holder
    can always read and write while others wait.  ``acquire(wait=True)``
    waits at most ``timeout`` seconds, then returns False.  If the process
    dies, the server drops the connection and the lock with it.
    Subclasses implement :meth:`_take` and :meth:`_free` for ``ident``.
    """

    def __init__(self, engine, ident, timeout, socket_timeout=DEFAULT_SOCKET_TIMEOUT):
        self.engine = engine
        self.ident = ident
        self.timeout = timeout
        self.socket_timeout = socket_timeout
        self.conn = None
        self.local = _local_lock(ident)

    def _take(self, conn, wait, timeout):
        """Take the lock on ``conn`` (waiting up to ``timeout`` if ``wait``); a bool."""
        raise NotImplementedError

    def _free(self, conn):
        """Release the lock held on ``conn``."""
        raise NotImplementedError

    def acquire(self, wait=True):
        started = time.monotonic()
        if not self.local.mutex.acquire(wait, self.timeout if wait else -1):
            return False
        try:
            left = self.timeout - (time.monotonic() - started)
            locked = left > 0 and self._acquire_on_server(wait, left)
        except BaseException:
            self.local.mutex.release()
            raise
        if not locked:
            self.local.mutex.release()
        return locked

    def _acquire_on_server(self, wait, timeout):
        conn = lock_engine(self.engine, self.socket_timeout).connect()
        try:
            with watched(conn, timeout + self.socket_timeout):
                locked = self._take(conn, wait, timeout)
                if locked:
                    conn.commit()
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
            with watched(conn, self.socket_timeout):
                self._free(conn)
                conn.commit()
        except sa_exc.DBAPIError:
            conn.invalidate()  # closing the connection frees the lock too
        finally:
            conn.close()
            self.local.mutex.release()


class AdvisoryLock(ServerLock):
    """A PostgreSQL advisory lock; ``ident`` is its 64-bit number."""

    def _take(self, conn, wait, timeout):
        if not wait:
            return conn.execute(sa.text('SELECT pg_try_advisory_lock(:n)'),
                                {'n': self.ident}).scalar()
        try:
            conn.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"),
                         {'t': '%dms' % max(1, timeout * 1000)})
            conn.execute(sa.text('SELECT pg_advisory_lock(:n)'), {'n': self.ident})
        except sa_exc.OperationalError as exc:
            if getattr(exc.orig, 'sqlstate', None) == _LOCK_NOT_AVAILABLE:
                return False
            raise
        return True

    def _free(self, conn):
        conn.execute(sa.text('SELECT pg_advisory_unlock(:n)'), {'n': self.ident})


class NamedLock(ServerLock):
    """A MySQL/MariaDB ``GET_LOCK`` lock; ``ident`` is its name (64 characters at most)."""

    def _take(self, conn, wait, timeout):
        return conn.execute(sa.text('SELECT GET_LOCK(:name, :wait)'), {
            'name': self.ident, 'wait': timeout if wait else 0}).scalar() == 1

    def _free(self, conn):
        conn.execute(sa.text('SELECT RELEASE_LOCK(:name)'), {'name': self.ident})


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
        self.timeout = socket_timeout(self.options)
        self._table_exists = False

    def _run(self, engine, work):
        """Return ``work(conn)`` (see :func:`run`), creating the table first."""
        if not self._table_exists:
            create_table(self.engine, self.table, self.timeout)
            self._table_exists = True
        return run(engine, work, self.timeout)

    def _get_raw(self, key):
        table = self.table
        row = self._run(self.reader, lambda conn: conn.execute(
            sa.select(table.c.data, table.c.expires)
            .where(table.c.id == entry_id(self.namespace, key))).first())
        if row is None or (row.expires is not None and row.expires < time.time()):
            return None
        return row.data

    def _get_many_raw(self, keys):
        table = self.table
        ids = [entry_id(self.namespace, key) for key in keys]
        rows = self._run(self.reader, lambda conn: conn.execute(
            sa.select(table.c.id, table.c.data, table.c.expires)
            .where(table.c.id.in_(ids))).all())
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

        def upsert(conn):
            if conn.execute(update).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(table.insert().values(
                        id=row_id, namespace=self.namespace, **values))
            except sa_exc.IntegrityError:  # inserted meanwhile
                conn.execute(update)

        self._run(self.engine, upsert)

    def _delete(self, key):
        self._run(self.engine, lambda conn: conn.execute(self.table.delete().where(
            self.table.c.id == entry_id(self.namespace, key))))

    def do_remove(self):
        self._run(self.engine, lambda conn: conn.execute(self.table.delete().where(
            self.table.c.namespace == self.namespace)))

    def get_creation_lock(self, key):
        row_id = entry_id(self.namespace, key)
        digest = hashlib.sha256(('%s:%s' % (self.table.name, row_id)).encode()).digest()
        dialect = self.engine.dialect.name
        if dialect == 'postgresql':
            number = int.from_bytes(digest[:8], 'big', signed=True)
            return AdvisoryLock(self.engine, number, self.lock_timeout, self.timeout)
        if dialect in ('mysql', 'mariadb'):
            return NamedLock(self.engine, 'pyramid_beaker:' + digest.hex()[:48],
                             self.lock_timeout, self.timeout)
        return NameLock('pyramid_beaker/database/' + row_id, reentrant=True)


BACKEND = Backend(
    'ext:database',
    aliases=('database',),
    session_store=DatabaseSessionStore,
    namespace_manager=DatabaseNamespaceManager,
    beaker_name='pyramid_beaker.database',
    location=('url', 'bind'),
    options=OPTIONS,
    region_only=('lock_timeout',),
    connect=connect,
    check=check,
)
