"""The ext:database backend against a real PostgreSQL.

Every test works in tables of its own (unique names, dropped afterwards).
Fault tests reach PostgreSQL through a TCPProxy that they cut and restore:
the machine's PostgreSQL itself is never stopped.
"""
import os
import time
import uuid

import pytest
import sqlalchemy as sa
from beaker import cache as beaker_cache
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import ISessionFactory

from pyramid_beaker.session import session_factory_from_settings
from pyramid_beaker.stores import find_backend
from pyramid_beaker.stores.base import Record, SessionBackendError
from pyramid_beaker.stores.database import (
    AdvisoryLock,
    DatabaseNamespaceManager,
    DatabaseSessionStore,
    NamedLock,
    dispose_shared_engines,
    entry_id,
)

from .helpers import (
    CODEC,
    COOKIE,
    app_maker,
    armed_pickle,
    compute_together,
    cookie_id,
    http_get,
    new_id,
    planted_payloads,
    run_together,
    save_together,
    session_settings,
    share_a_session,
    signed_cache,
    write_concurrently,
    written,
)
from .servers import AppProcess
from .session_app import SECRET
from .tcp_proxy import TCPProxy


@pytest.fixture(autouse=True)
def dispose_engines():
    """Close the cache namespaces' shared connections after each test."""
    yield
    dispose_shared_engines()


@pytest.fixture
def apps():
    """Make WebTest apps (``session_app.make_app``); their stores are closed after."""
    with app_maker() as make:
        yield make


@pytest.fixture(params=['postgresql', 'mariadb'])
def database_url(request):
    """Each test runs on PostgreSQL and on MariaDB."""
    return request.getfixturevalue(request.param.replace('postgresql', 'postgres') + '_url')


@pytest.fixture
def engine(database_url):
    engine = sa.create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def table_name(engine):
    """A table name of this test's own; the table is dropped afterwards."""
    name = 'pbtest_%s' % uuid.uuid4().hex[:12]
    yield name
    with engine.begin() as conn:
        conn.execute(sa.text('DROP TABLE IF EXISTS %s' % name))


@pytest.fixture
def store(database_url, table_name):
    store = DatabaseSessionStore({'url': database_url, 'table_name': table_name}, CODEC)
    yield store
    store.close()


def rows(engine, table_name):
    with engine.connect() as conn:
        return {row.id: row for row in conn.execute(
            sa.text('SELECT * FROM %s' % table_name))}


#: The column types of signed data and of times, per database.
COLUMN_TYPES = {'postgresql': ('BYTEA', 'DOUBLE PRECISION'), 'mysql': ('LONGBLOB', 'DOUBLE')}


def server_port(database_url):
    url = sa.engine.make_url(database_url)
    return url.port or (5432 if url.get_backend_name() == 'postgresql' else 3306)


# -- the session store ---------------------------------------------------------

def test_backend_descriptor():
    backend, name = find_backend('database')
    assert name == 'ext:database'
    assert backend.session_store is DatabaseSessionStore
    assert backend.namespace_manager is DatabaseNamespaceManager
    assert backend.beaker_name == 'pyramid_beaker.database'
    assert beaker_cache.clsmap['pyramid_beaker.database'] is DatabaseNamespaceManager
    assert set(backend.options) == {
        'url', 'bind', 'table_name', 'schema_name', 'lock_timeout', 'socket_timeout', 'sa.'}
    assert backend.location == ('url', 'bind')


def test_round_trip_merge_and_delete(store, engine, table_name):
    sid = new_id()
    assert store.load(sid) is None  # creates the table on first use
    columns = {c['name']: str(c['type']) for c in sa.inspect(engine).get_columns(table_name)}
    binary, double = COLUMN_TYPES[engine.dialect.name]
    assert columns == {'id': 'VARCHAR(64)', 'data': binary, 'created': double,
                       'accessed': double, 'expires': double}

    now = time.time()
    store.save(sid, {'a': 1, 'b': [1, 2]}, frozenset(), now - 10, now, 600)
    store.save(sid, {'c': 'é'}, frozenset({'a', 'missing'}), now, now + 1, 600)
    record = store.load(sid)
    assert record.data == {'b': [1, 2], 'c': 'é'}
    assert (record.created, record.accessed) == (now - 10, now + 1)
    row = rows(engine, table_name)[sid]
    assert bytes(row.data).startswith(b'PB1')
    assert (row.created, row.accessed, row.expires) == (now - 10, now + 1, now + 601)

    store.delete(sid)
    assert store.load(sid) is None
    assert rows(engine, table_name) == {}
    store.delete(sid)  # absent: no error


def test_expired_rows_read_as_absent_and_do_not_come_back(store, engine, table_name):
    sid = new_id()
    now = time.time()
    store.save(sid, {'old': 1}, frozenset(), now - 100, now - 100, 50)
    assert sid in rows(engine, table_name)  # still stored, until purged
    assert store.load(sid) is None
    store.touch(sid, now, 600)  # an expired session is not revived
    assert store.load(sid) is None
    store.save(sid, {'new': 2}, frozenset(), now, now, 600)
    record = store.load(sid)
    assert record.data == {'new': 2} and record.created == now


def test_touch_moves_access_time_and_expiry(store, engine, table_name):
    sid = new_id()
    now = time.time()
    store.save(sid, {'a': 1}, frozenset(), now, now, 60)
    store.touch(sid, now + 30, 600)
    record = store.load(sid)
    assert (record.data, record.created, record.accessed) == ({'a': 1}, now, now + 30)
    assert rows(engine, table_name)[sid].expires == now + 630
    absent = new_id()
    store.touch(absent, now, 600)
    assert absent not in rows(engine, table_name)


def test_purge_expired_keeps_live_sessions(store, engine, table_name):
    now = 1_000_000.0
    store.save('a' * 32, {'idle': 1}, frozenset(), now - 500, now - 500, 100)
    store.save('b' * 32, {'expired': 1}, frozenset(), now - 50, now - 50, 10)
    store.save('c' * 32, {'live': 1}, frozenset(), now - 50, now - 50, 10_000)
    calls = []
    assert store.purge_expired(100, now, progress=lambda *args: calls.append(args)) == 2
    assert calls == [(2, 2)]
    assert set(rows(engine, table_name)) == {'c' * 32}
    assert store.purge_expired(100, now) == 0


def test_concurrent_saves_to_one_session_all_survive(store, database_url, table_name):
    other = DatabaseSessionStore({'url': database_url, 'table_name': table_name}, CODEC)
    writers = 16
    try:
        for attempt in range(4):
            sid, now = new_id(), time.time()
            if attempt % 2:  # odd rounds update a row; even rounds race to INSERT it
                store.save(sid, {'keep': attempt, 'drop': 1}, frozenset(), now, now, 600)

            def write(n):
                # Half the writers use a second store (its own engine), as
                # another process would.
                (store if n % 2 else other).save(
                    sid, {'k%d' % n: n}, frozenset({'drop'}), now, now + n, 600)

            assert run_together(writers, write) == []
            expected = {'k%d' % n: n for n in range(writers)}
            if attempt % 2:
                expected['keep'] = attempt
            assert store.load(sid).data == expected
    finally:
        other.close()


def test_a_save_with_the_loaded_token_keeps_what_was_loaded_not_the_apps_copy(store):
    sid, now = new_id(), time.time()
    store.save(sid, {'a': 1, 'b': [1, 2]}, frozenset(), now, now, 600)
    record = store.load(sid)
    assert record.token is not None
    record.data['b'].append(3)  # what an app may do to the loaded dict
    record.data.pop('a')
    assert store.save(sid, {'c': 3}, frozenset(), now, now + 1, 600, create=False,
                      token=record.token)
    saved = store.load(sid)
    assert (saved.data, saved.created, saved.accessed) == ({'a': 1, 'b': [1, 2], 'c': 3},
                                                           now, now + 1)


def test_a_save_whose_token_lost_the_race_merges_onto_the_winner(store, database_url,
                                                                 table_name):
    other = DatabaseSessionStore({'url': database_url, 'table_name': table_name}, CODEC)
    try:
        sid, now = new_id(), time.time()
        store.save(sid, {'keep': 1, 'drop': 1}, frozenset(), now, now, 600)
        first, second = store.load(sid), other.load(sid)
        assert store.save(sid, {'a': 1}, frozenset(), now, now + 1, 600, create=False,
                          token=first.token)
        assert other.save(sid, {'b': 2}, frozenset({'drop'}), now, now + 2, 600,
                          create=False, token=second.token)
        assert store.touch(sid, now + 3, 600, token=second.token)  # stale too: merges
        record = store.load(sid)
        assert (record.data, record.created, record.accessed) == (
            {'keep': 1, 'a': 1, 'b': 2}, now, now + 3)
    finally:
        other.close()


def test_a_save_with_a_token_does_not_bring_back_a_deleted_or_expired_session(
        store, engine, table_name):
    sid, now = new_id(), time.time()
    store.save(sid, {'a': 1}, frozenset(), now, now, 600)
    record = store.load(sid)
    store.delete(sid)  # a logout in another request
    assert not store.save(sid, {'b': 2}, frozenset(), now, now + 1, 600, create=False,
                          token=record.token)
    assert not store.touch(sid, now + 2, 600, token=record.token)
    assert sid not in rows(engine, table_name)

    store.save(sid, {'a': 1}, frozenset(), now, now, 600)
    record = store.load(sid)
    with engine.begin() as conn:  # it expires: still stored, until purged
        conn.execute(sa.text('UPDATE %s SET expires = :t' % table_name), {'t': now - 1})
    assert not store.save(sid, {'b': 2}, frozenset(), now, now + 1, 600, create=False,
                          token=record.token)
    assert not store.touch(sid, now + 2, 600, token=record.token)
    assert store.load(sid) is None
    assert rows(engine, table_name)[sid].expires == now - 1


def test_a_write_request_runs_one_select_and_one_update(database_url, table_name, apps):
    app = apps(type='ext:database', url=database_url, table_name=table_name)
    app.get('/set', {'a': '1'})
    store = app.app.registry.getUtility(ISessionFactory).store
    statements, checkouts = [], []

    def executed(conn, cursor, statement, *args):
        statements.append(' '.join(statement.split()[:1]) + (
            ' FOR UPDATE' if 'FOR UPDATE' in statement else ''))

    def checkout(dbapi_connection, *args):
        checkouts.append(dbapi_connection)

    for engine in (store.engine, store.autocommit):  # transactions; single statements
        sa.event.listen(engine, 'before_cursor_execute', executed)
        sa.event.listen(engine.pool, 'checkout', checkout)
    try:
        assert app.get('/set', {'b': '2'}).json['data'] == {'a': '1', 'b': '2'}
    finally:
        for engine in (store.engine, store.autocommit):
            sa.event.remove(engine, 'before_cursor_execute', executed)
            sa.event.remove(engine.pool, 'checkout', checkout)
    assert statements == ['SELECT', 'UPDATE']
    assert len(checkouts) == 2
    assert all(_autocommit(dbapi_connection) for dbapi_connection in checkouts)
    assert app.get('/get').json['data'] == {'a': '1', 'b': '2'}


def test_requests_that_loaded_one_version_all_keep_their_keys(database_url, table_name,
                                                              apps):
    app = apps(type='ext:database', url=database_url, table_name=table_name)
    app.get('/set', {'start': '1'})
    cookie = '%s=%s' % (COOKIE, app.cookies[COOKIE])
    store = app.app.registry.getUtility(ISessionFactory).store
    statements = []

    def executed(conn, cursor, statement, *args):
        statements.append(' '.join(statement.split()[:1]) + (
            ' FOR UPDATE' if 'FOR UPDATE' in statement else ''))

    for engine in (store.engine, store.autocommit):
        sa.event.listen(engine, 'before_cursor_execute', executed)
    try:
        assert save_together(app, cookie, 2) == []
    finally:
        for engine in (store.engine, store.autocommit):
            sa.event.remove(engine, 'before_cursor_execute', executed)
    # Both loaded; one conditional UPDATE matched; the other matched nothing
    # and merged under the row lock.
    assert sorted(statements) == ['SELECT', 'SELECT', 'SELECT FOR UPDATE', 'UPDATE',
                                  'UPDATE', 'UPDATE']
    assert app.get('/get').json['data'] == {'start': '1', 'k0': '0', 'k1': '1'}


def _autocommit(dbapi_connection):
    """True when a psycopg or PyMySQL connection is in autocommit mode."""
    get = getattr(dbapi_connection, 'get_autocommit', None)  # PyMySQL
    return get() if get is not None else dbapi_connection.autocommit


def test_stores_racing_to_create_the_table_all_succeed(database_url, table_name):
    stores = [DatabaseSessionStore({'url': database_url, 'table_name': table_name}, CODEC)
              for _ in range(6)]
    try:
        now = time.time()
        errors = run_together(6, lambda n: stores[n].save(
            '%032x' % n, {'n': n}, frozenset(), now, now, 600))
        assert errors == []
        assert [stores[0].load('%032x' % n).data for n in range(6)] == [
            {'n': n} for n in range(6)]
    finally:
        for store in stores:
            store.close()


def test_planted_pickles_are_never_loaded(store, engine, table_name, tmp_dir):
    payloads, marker = planted_payloads(tmp_dir)
    for planted in payloads:
        sid = new_id()
        now = time.time()
        store.save(sid, {'user': 'alice'}, frozenset(), now, now, 600)
        with engine.begin() as conn:
            conn.execute(sa.text('UPDATE %s SET data = :d WHERE id = :i' % table_name),
                         {'d': planted, 'i': sid})
        assert store.load(sid) is None
        store.touch(sid, now, 600)
        assert bytes(rows(engine, table_name)[sid].data) == planted  # not touched
        store.save(sid, {'user': 'bob'}, frozenset(), now, now, 600)
        assert store.load(sid).data == {'user': 'bob'}  # a fresh record
    assert not os.path.exists(marker)


def test_schema_and_engine_options(database_url, engine, table_name):
    schema = 'pbtest_schema_%s' % uuid.uuid4().hex[:8]
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE SCHEMA %s' % schema))
    store = DatabaseSessionStore({
        'url': database_url, 'table_name': table_name, 'schema_name': schema,
        'sa.pool_size': 2, 'sa.pool_pre_ping': False}, CODEC)
    try:
        for engine in (store.engine, store.autocommit):
            assert engine.pool.size() == 2
            assert engine.pool._pre_ping is False
        store.save('a' * 32, {'x': 1}, frozenset(), time.time(), time.time(), 600)
        assert sa.inspect(engine).has_table(table_name, schema=schema)
        assert not sa.inspect(engine).has_table(table_name)
        assert store.load('a' * 32).data == {'x': 1}
    finally:
        store.close()
        with engine.begin() as conn:
            cascade = ' CASCADE' if engine.dialect.name == 'postgresql' else ''
            conn.execute(sa.text('DROP SCHEMA %s%s' % (schema, cascade)))


def test_defaults_and_a_given_engine(database_url, engine, table_name):
    default = DatabaseSessionStore({'url': database_url}, CODEC)
    assert default.table.name == 'beaker_sessions'
    # A ping is a round trip per request: PostgreSQL replaces broken
    # connections without it (see the next tests).
    postgresql = sa.engine.make_url(database_url).get_backend_name() == 'postgresql'
    for engine_ in (default.engine, default.autocommit):
        assert engine_.pool._pre_ping is not postgresql
    default.close()
    given = DatabaseSessionStore({'bind': engine, 'table_name': table_name}, CODEC)
    now = time.time()
    given.save('b' * 32, {'y': 2}, frozenset(), now, now, 600)
    given.close()  # does not dispose an engine it was given
    assert given.engine is engine
    assert rows(engine, table_name)['b' * 32].accessed == now


def test_settings_reach_the_store(database_url, table_name):
    factory = session_factory_from_settings({
        'session.type': 'ext:database', 'session.url': database_url,
        'session.secret': SECRET, 'session.table_name': table_name,
        'session.sa.pool_size': '3'})
    assert isinstance(factory.store, DatabaseSessionStore)
    assert factory.store.table.name == table_name
    assert factory.store.engine.pool.size() == factory.store.autocommit.pool.size() == 3
    factory.store.close()


def test_missing_url_and_bad_bind_are_configuration_errors():
    with pytest.raises(ConfigurationError, match='"session.url" is required for '
                       '"session.type" = ext:database \\(or "session.bind"\\)'):
        session_factory_from_settings({
            'session.type': 'ext:database', 'session.secret': SECRET})
    with pytest.raises(ConfigurationError, match='"session.bind" must be a SQLAlchemy Engine'):
        session_factory_from_settings({
            'session.type': 'ext:database', 'session.secret': SECRET,
            'session.bind': 'postgresql://nope'})


def test_database_gone_raises_and_recovers(database_url, table_name):
    url = sa.engine.make_url(database_url)
    with TCPProxy(server_port(database_url)) as proxy:
        # PostgreSQL's trust authentication ignores a password; MariaDB's
        # root has none, and refuses one.
        password = 'hunter2' if url.get_backend_name() == 'postgresql' else None
        proxied = url.set(port=proxy.port, password=password,
                          query={'connect_timeout': '3'})
        store = DatabaseSessionStore({
            'url': proxied.render_as_string(hide_password=False),
            'table_name': table_name}, CODEC)
        sid = new_id()
        now = time.time()
        store.save(sid, {'a': 1}, frozenset(), now, now, 600)
        proxy.stop()
        for call in (lambda: store.load(sid),
                     lambda: store.save(sid, {'b': 2}, frozenset(), now, now, 600),
                     lambda: store.touch(sid, now, 600),
                     lambda: store.delete(sid),
                     lambda: store.purge_expired(600)):
            started = time.monotonic()
            with pytest.raises(SessionBackendError) as info:
                call()
            assert time.monotonic() - started < 5
            message = str(info.value)
            assert 'database session store' in message
            shown = ':********@' if password else '@'
            assert '%s127.0.0.1:%d' % (shown, proxy.port) in message
            assert 'hunter2' not in message
        proxy.start()  # same port: the same store works again
        assert store.load(sid).data == {'a': 1}
        store.save(sid, {'b': 2}, frozenset(), now, now, 600)
        assert store.load(sid).data == {'a': 1, 'b': 2}
        store.close()


def test_connections_broken_since_pooled_are_replaced_silently(database_url, table_name):
    # Pooled connections are not pinged before use: one that turns out
    # broken (the database restarted) is replaced and the work done again.
    url = sa.engine.make_url(database_url)
    with TCPProxy(server_port(database_url)) as proxy:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        store = DatabaseSessionStore({'url': proxied, 'table_name': table_name}, CODEC)
        try:
            sid, now = new_id(), time.time()
            store.save(sid, {'a': 1}, frozenset(), now, now, 600)
            token = store.load(sid).token
            for call in (lambda: store.save(sid, {'b': 1}, frozenset(), now, now, 600,
                                            create=False, token=token),
                         lambda: store.load(sid),
                         lambda: store.save(sid, {'b': 2}, frozenset(), now, now, 600),
                         lambda: store.touch(sid, now + 1, 600),
                         lambda: store.purge_expired(600)):
                proxy.stop()  # closes every pooled connection's socket
                proxy.start()
                call()
            assert store.load(sid)[:3] == Record({'a': 1, 'b': 2}, now, now + 1)[:3]
        finally:
            store.close()


# -- cache regions ---------------------------------------------------------------

def make_cache(url, table_name, namespace='ns', **options):
    return signed_cache('pyramid_beaker.database', namespace, url=url, table_name=table_name,
                        **options)


def test_beaker_cache_round_trip(database_url, engine, table_name):
    cache = make_cache(database_url, table_name, expire=300)
    manager = cache.namespace
    assert isinstance(manager, DatabaseNamespaceManager)
    cache.put('k', {'v': [1, 2]})
    assert cache.get('k') == {'v': [1, 2]}
    assert 'k' in cache
    row = rows(engine, table_name)[entry_id('ns', 'k')]
    assert row.namespace == 'ns' and bytes(row.data).startswith(b'PB1')
    assert 299 < row.expires - row.stored <= 300
    cache.put('k', 'again')  # an update, not a second row
    assert cache.get('k') == 'again'
    assert len(rows(engine, table_name)) == 1
    # Beaker passes bytes keys, our decorator str keys: the same entry.
    assert manager.get_entry('k')[2] == manager.get_entry(b'k')[2] == 'again'
    cache.remove_value('k')
    assert 'k' not in cache
    with pytest.raises(KeyError):
        cache.get('k')


def test_cache_expiry_clear_and_namespaces(database_url, engine, table_name):
    short = make_cache(database_url, table_name, namespace='a:b', expire=1)
    other = make_cache(database_url, table_name, namespace='a')
    short.put('c', 'short')
    short.put('long key ' * 100, 'long')
    other.put('b:c', 'other')
    assert short.get('long key ' * 100) == 'long'
    time.sleep(1.1)
    assert short.namespace.get_entry('c') is None
    assert other.get('b:c') == 'other'
    short.clear()  # removes its own namespace only
    assert len(rows(engine, table_name)) == 1
    assert other.get('b:c') == 'other'


def test_planted_pickle_in_the_cache_is_a_miss(database_url, engine, table_name, tmp_dir):
    payload, marker = armed_pickle(tmp_dir)
    cache = make_cache(database_url, table_name, expire=60)
    cache.put('k', 'good')
    with engine.begin() as conn:
        conn.execute(sa.text('UPDATE %s SET data = :d' % table_name), {'d': payload})
    assert 'k' not in cache
    assert cache.get('k', createfunc=lambda: 'fresh') == 'fresh'
    assert cache.get('k') == 'fresh'
    assert not os.path.exists(marker)


def test_get_with_createfunc_computes_once_across_threads(database_url, table_name):
    cache = make_cache(database_url, table_name, expire=60)
    results, calls, errors = compute_together([cache] * 8, 'slow', 0.3)
    assert errors == []
    assert results == ['value'] * 8
    assert calls == 1


#: SQL that takes (without waiting) and frees a creation lock, per database.
SERVER_LOCK_SQL = {
    'postgresql': ('SELECT pg_try_advisory_lock(:i)', 'SELECT pg_advisory_unlock(:i)'),
    'mysql': ('SELECT GET_LOCK(:i, 0)', 'SELECT RELEASE_LOCK(:i)'),
}


def test_creation_locks_are_held_by_the_server(database_url, engine, table_name):
    manager = make_cache(database_url, table_name).namespace
    mine = manager.get_creation_lock('k')
    assert isinstance(mine, (AdvisoryLock, NamedLock))
    mine.timeout = 1.0
    take, free = (sa.text(sql) for sql in SERVER_LOCK_SQL[engine.dialect.name])
    with engine.connect() as theirs:  # as another process would
        assert theirs.execute(take, {'i': mine.ident}).scalar()
        assert not mine.acquire(wait=False)
        started = time.monotonic()
        assert not mine.acquire(wait=True)  # gives up after its timeout
        assert 0.9 < time.monotonic() - started < 3
        theirs.execute(free, {'i': mine.ident})
        assert mine.acquire(wait=True)
        assert not theirs.execute(take, {'i': mine.ident}).scalar()
        mine.release()
        mine.release()  # releasing twice is harmless
        assert theirs.execute(take, {'i': mine.ident}).scalar()
        theirs.execute(free, {'i': mine.ident})
        theirs.commit()


def test_cache_errors_reach_the_caller_and_recover(database_url, table_name):
    url = sa.engine.make_url(database_url)
    with TCPProxy(server_port(database_url)) as proxy:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        cache = make_cache(proxied, table_name, expire=60)
        cache.put('k', 1)
        proxy.stop()
        with pytest.raises(sa.exc.OperationalError):
            cache.namespace.get_entry('k')
        proxy.start()
        assert cache.get('k') == 1
        cache.put('k', 2)
        assert cache.get('k') == 2


# -- sessions through real apps ------------------------------------------------

def test_sessions_through_an_app(database_url, engine, table_name, tmp_dir, apps):
    app = apps(type='ext:database', url=database_url, table_name=table_name)
    assert app.get('/set', {'a': '1', 'b': '2'}).json['data'] == {'a': '1', 'b': '2'}
    app.get('/mutate', {'op': 'del', 'key': 'a'})
    sid = cookie_id(app.cookies[COOKIE])
    assert CODEC.loads(bytes(rows(engine, table_name)[sid].data))['d'] == {'b': '2'}

    other = apps(type='ext:database', url=database_url, table_name=table_name)
    other.set_cookie(COOKIE, app.cookies[COOKIE])
    assert other.get('/get').json['data'] == {'b': '2'}
    app.get('/invalidate')
    assert sid not in rows(engine, table_name)

    app.get('/set', {'user': 'alice'})
    payload, marker = armed_pickle(tmp_dir)
    with engine.begin() as conn:
        conn.execute(sa.text('UPDATE %s SET data = :d' % table_name), {'d': payload})
    assert app.get('/get').json['data'] == {}  # a fresh session
    assert not os.path.exists(marker)


def test_app_processes_share_sessions_and_keep_concurrent_writes(database_url, table_name):
    settings = session_settings('ext:database', url=database_url, table_name=table_name)
    writers = 16
    with AppProcess(settings) as one, AppProcess(settings) as two:
        _, first, last = share_a_session(one, two)
        assert first == {'a': '1'}
        assert last == {'b': '2'}

        for attempt in range(3):
            _, cookie = http_get(one.url + '/set?key=start&value=%d' % attempt)
            assert write_concurrently((two, one), cookie, writers) == []
            assert http_get(two.url + '/get', cookie)[0] == written(writers, start=attempt)


def test_app_with_the_database_unreachable(database_url, table_name, apps):
    url = sa.engine.make_url(database_url)
    with TCPProxy(server_port(database_url)) as proxy:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        app = apps(type='ext:database', url=proxied, table_name=table_name)
        app.get('/set', {'a': '1'})
        proxy.stop()
        assert app.get('/untouched').json == {'ok': True}  # no session access, no error
        with pytest.raises(SessionBackendError, match='database session store'):
            app.get('/get')
        proxy.start()
        assert app.get('/get').json['data'] == {'a': '1'}


def test_sqlite_sessions_warn_about_lost_updates(tmp_dir):
    url = 'sqlite:///' + os.path.join(tmp_dir, 'sessions.sqlite')
    with pytest.warns(UserWarning, match='SQLite: it has no row locks'):
        store = DatabaseSessionStore({'url': url}, CODEC)
    now = time.time()
    store.save('a' * 32, {'x': 1}, frozenset(), now, now, 600)
    assert store.load('a' * 32).data == {'x': 1}
    store.close()
