"""Sessions on every store of this package, side by side with two peers.

Run ``python tests/benchmarks/bench_backends.py`` (under a minute).  It
prints three tables, all measured in this one run:

1. Redis commands and round trips per request (untouched, read, write, new
   session) for this package's ``ext:redis``, Beaker's own ``ext:redis`` used
   the pyramid_beaker 0.9 way, and ``pyramid_session_redis``; counted with
   ``MONITOR`` (a MULTI ... EXEC block is one round trip; the commands a
   Lua script runs are shown after "Lua:" and not counted).
2. Round trips per request on every server store of this package, one
   server and several side by side: Redis, Redis behind Sentinel, Redis
   Cluster (``MONITOR`` on every node), one memcached and a pool of three
   (the servers' own ``stats`` counters), PostgreSQL and MariaDB (SQLAlchemy
   events: statements, and the commits and rollbacks of transactions).
3. Cost per request, in process: the Pyramid router called as a WSGI app
   with prepared environs; the median of several loops, and its ratio to
   the same app without a session factory (its 'untouched' view).
4. Keys kept when 16 requests, released together by a barrier, each set
   their own key of one session on a waitress server (16 threads).

Redis runs privately (``redis-server`` on a free port) when it is on PATH,
else ``PYRAMID_BEAKER_REDIS_URL`` (default db 15 on 6379) is used and the
command counts may include other clients' commands; the Sentinel group (a
primary, a replica, three Sentinels) and the three-node cluster always run
privately.  memcached is likewise started privately when
``PYRAMID_BEAKER_MEMCACHED`` does not answer; the pool is three private
servers.  PostgreSQL and MariaDB come from ``PYRAMID_BEAKER_POSTGRES_URL``
and ``PYRAMID_BEAKER_MARIADB_URL``; the database stores use a table of
their own, dropped at the end.  Stores whose module or server is missing
are reported as skipped.
"""
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from pyramid.config import Configurator  # noqa: E402
from pyramid.response import Response  # noqa: E402

from tests.backend_faults import (  # noqa: E402
    CommandLog,
    MemcachedServer,
    RedisServer,
    accepts,
    names,
    round_trips,
)
from tests.benchmarks.wsgi import environ  # noqa: E402
from tests.helpers import http_get, run_together  # noqa: E402
from tests.servers import AppExited, AppProcess  # noqa: E402

SECRET = 'bench-secret-0123456789'
WRITERS = 16
ATTEMPTS = 3
LOOPS = 9
LOOP_SECONDS = 0.2
MODES = ('untouched', 'read', 'write')
#: One server, then several: each store of ours with the servers it runs on.
SERVER_STORES = ('ext:redis', 'ext:redis sentinel', 'ext:rediscluster', 'ext:memcached',
                 'ext:memcached pool', 'ext:database', 'ext:database mariadb')
OURS = ('memory', 'file', 'cookie', 'dbm') + SERVER_STORES
PEERS = ('beaker 0.9-style ext:redis', 'pyramid_session_redis')
REDIS_IMPLS = ('ext:redis',) + PEERS


class Skip(Exception):
    """This implementation cannot run here; the message says why."""


# -- session factories ---------------------------------------------------------

def our_factory(store_type, env):
    """This package's factory for ``store_type`` with the run's servers."""
    from pyramid_beaker import stores
    from pyramid_beaker.session import BeakerSessionFactoryConfig

    try:
        stores.find_backend(store_type.split()[0])
    except LookupError as exc:
        raise Skip('module not written yet (%s)' % exc) from None
    options = {'type': store_type.split()[0], 'secret': SECRET}
    needs = {'ext:memcached': 'memcached', 'ext:memcached pool': 'memcached_pool',
             'ext:redis sentinel': 'sentinels', 'ext:rediscluster': 'cluster',
             'ext:database mariadb': 'mariadb'}.get(store_type)
    if needs and not env.get(needs):
        raise Skip('no %s here' % needs)
    if store_type in ('file', 'dbm'):
        options['data_dir'] = os.path.join(env['tmp'], store_type, 'data')
        options['lock_dir'] = os.path.join(env['tmp'], store_type, 'lock')
    elif store_type == 'ext:redis':
        options.update(url=env['redis'], key_prefix='bench:')
    elif store_type == 'ext:redis sentinel':
        options.update(sentinels=env['sentinels'], service_name=env['service'],
                       key_prefix='bench:')
    elif store_type == 'ext:rediscluster':
        options.update(url=env['cluster'], key_prefix='bench:')
    elif store_type in ('ext:memcached', 'ext:memcached pool'):
        options['url'] = env[needs]
    elif store_type == 'ext:database':
        options.update(url=env['postgres'], table_name=env['table'])
    elif store_type == 'ext:database mariadb':
        options.update(url=env['mariadb'], table_name=env['table'])
    return BeakerSessionFactoryConfig(**options)


def beaker09_factory(env):
    """Beaker's SessionObject with type ext:redis, saved as pyramid_beaker 0.9 did:
    setting a key marks the session dirty, a response callback persists it and
    copies Beaker's cookie header."""
    from beaker.session import SessionObject

    class DirtyOnWrite(SessionObject):
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            self.save()

    params = {'type': 'ext:redis', 'url': env['redis'], 'secret': SECRET,
              'key': 'beaker.session.id'}

    def factory(request):
        session = DirtyOnWrite(request.environ, **params)

        def persist(request, response):
            if session.accessed():
                session.persist()
                headers = session.__dict__['_headers']
                if headers.get('set_cookie') and headers.get('cookie_out'):
                    response.headerlist.append(('Set-Cookie', headers['cookie_out']))

        request.add_response_callback(persist)
        return session

    return factory


def session_redis_factory(env):
    try:
        from pyramid_session_redis import RedisSessionFactory
    except ImportError:
        raise Skip('pyramid_session_redis is not installed') from None
    return RedisSessionFactory(SECRET, redis_url=env['redis'])


def build_factory(name, env):
    """Return the session factory of implementation ``name``."""
    if name == PEERS[0]:
        return beaker09_factory(env)
    if name == PEERS[1]:
        return session_redis_factory(env)
    return our_factory(name, env)


# -- the app ---------------------------------------------------------------------

def untouched(request):
    return Response(b'ok')


def read(request):
    return Response(str(request.session.get('k')))


def write(request):
    request.session[request.params.get('key', 'k')] = request.params.get('value', 'v')
    return Response(b'ok')


def written_keys(request):
    found = sorted(key for key in request.session.keys() if key.startswith('w'))
    return Response(json.dumps(found))


def make_app(factory):
    config = Configurator()
    if factory is not None:
        config.set_session_factory(factory)
    for view in (untouched, read, write, written_keys):
        config.add_route(view.__name__, '/' + view.__name__)
        config.add_view(view, route_name=view.__name__)
    return config.make_wsgi_app()


def call(app, env):
    """Run one request; return its Set-Cookie as 'name=value' (or None)."""
    headers = []

    def start_response(status, response_headers, exc_info=None):
        headers.extend(response_headers)

    body = app(dict(env), start_response)
    b''.join(body)
    if hasattr(body, 'close'):
        body.close()
    for name, value in headers:
        if name.lower() == 'set-cookie':
            return value.split(';')[0].strip()
    return None


def new_session(app):
    """Create a session holding key 'k'; return the cookie that names it."""
    cookie = call(app, environ('/write'))
    if cookie is None:
        raise RuntimeError('no session cookie was set')
    return cookie


def mode_environ(mode, cookie):
    if mode == 'new':
        return environ('/write')
    return environ('/' + mode, cookie)


# -- 1. Redis commands per request -------------------------------------------------

def command_table(env):
    rows = []
    for name in REDIS_IMPLS:
        try:
            app = make_app(build_factory(name, env))
        except Skip as exc:
            rows.append((name, ['skipped: %s' % exc]))
            continue
        cookie = new_session(app)
        call(app, environ('/read', cookie))  # connections are open now
        call(app, environ('/write', cookie))  # and the server knows the write's script
        log = CommandLog(env['redis_port'])
        cells = []
        try:
            for mode in MODES + ('new',):
                call(app, mode_environ(mode, cookie))
                commands = log.commands()
                sent = [command for command in commands if command[0] != 'lua']
                scripted = [name for client, name in commands if client == 'lua']
                cells.append('%d cmd / %d rt  %s%s' % (
                    len(sent), round_trips(commands), ' '.join(names(sent)) or '-',
                    ' (Lua: %s)' % ' '.join(scripted) if scripted else ''))
        finally:
            log.close()
        rows.append((name, cells))
    print_table('Redis commands and round trips per request',
                ['implementation'] + list(MODES) + ['new session'], rows)


# -- 2. round trips on every server store ---------------------------------------------

class RedisCounter:
    """Round trips to the Redis servers on ``ports`` (MONITOR on each)."""

    def __init__(self, ports):
        self.logs = [CommandLog(port) for port in ports]

    def count(self):
        return sum(round_trips(log.commands()) for log in self.logs)

    def close(self):
        for log in self.logs:
            log.close()


class MemcachedCounter:
    """Commands the memcached servers at ``urls`` ran (their ``stats``)."""

    COUNTERS = ('cmd_get', 'cmd_set', 'cmd_touch', 'delete_hits', 'delete_misses')

    def __init__(self, urls):
        from pymemcache.client.base import Client

        self.clients = [Client((url.split(':')[0], int(url.split(':')[1])), timeout=5)
                        for url in urls]
        self.last = self._total()

    def _total(self):
        return sum(int(client.stats()[name.encode()]) for client in self.clients
                   for name in self.COUNTERS)

    def count(self):
        total = self._total()
        found, self.last = total - self.last, total
        return found

    def close(self):
        for client in self.clients:
            client.close()


class DatabaseCounter:
    """Statements on both of the store's engines, and commits and rollbacks
    on ``engine``, the one of transactions (on ``autocommit``, the engine of
    single statements, a commit sends nothing).  Pool checkouts are not
    round trips: the store does not ping (``sa.pool_pre_ping`` is off)."""

    def __init__(self, engine, autocommit):
        from sqlalchemy import event

        self.events = []
        self.targets = []
        names = {engine: ['before_cursor_execute', 'commit', 'rollback']}
        names.setdefault(autocommit, ['before_cursor_execute'])
        for target, events in names.items():
            for name in events:
                listener = self._listener(name)
                event.listen(target, name, listener)
                self.targets.append((target, name, listener))

    def _listener(self, name):
        def listen(*args, **kwargs):
            self.events.append(name)
        return listen

    def count(self):
        found, self.events = len(self.events), []
        return found

    def close(self):
        from sqlalchemy import event

        for target, name, listener in self.targets:
            event.remove(target, name, listener)


def counter_for(name, app, env):
    """A counter of the round trips ``name``'s store makes."""
    from pyramid.interfaces import ISessionFactory

    store = app.registry.getUtility(ISessionFactory).store
    if name == 'ext:redis':
        return RedisCounter([env['redis_port']])
    if name == 'ext:redis sentinel':
        return RedisCounter([store.client.connection_pool.get_master_address()[1]])
    if name == 'ext:rediscluster':
        return RedisCounter(env['cluster_ports'])
    if name.startswith('ext:memcached'):
        return MemcachedCounter(env['memcached_pool' if name.endswith('pool')
                                    else 'memcached'].split(';'))
    return DatabaseCounter(store.engine, store.autocommit)


def round_trip_table(env):
    rows = []
    for name in SERVER_STORES:
        try:
            app = make_app(build_factory(name, env))
        except Skip as exc:
            rows.append((name, ['skipped: %s' % exc]))
            continue
        cookie = new_session(app)
        call(app, environ('/read', cookie))  # connections are open now
        counter = counter_for(name, app, env)
        cells = []
        try:
            counter.count()
            for mode in MODES + ('new',):
                counts = []
                for _ in range(5):
                    call(app, mode_environ(mode, cookie))
                    counts.append(counter.count())
                cells.append('%g' % statistics.median(counts))
        finally:
            counter.close()
        rows.append((name, cells))
    print_table('Round trips per request (median of 5), one server and several',
                ['store'] + list(MODES) + ['new session'], rows)


# -- 3. cost per request --------------------------------------------------------------

def calibrate(app, env):
    """Requests per loop so that one loop takes about LOOP_SECONDS."""
    started = time.perf_counter()
    for _ in range(20):
        call(app, env)
    estimate = (time.perf_counter() - started) / 20
    return max(20, min(3000, int(LOOP_SECONDS / estimate)))


def cost_table(env):
    """Time every (implementation, mode) once per loop, interleaved, so that
    load changes on the machine hit them all alike; report the medians."""
    cases = {('no session factory', 'untouched'): (make_app(None), environ('/untouched'))}
    rows = {}
    for name in OURS + PEERS:
        try:
            app = make_app(build_factory(name, env))
        except Skip as exc:
            rows[name] = ['skipped: %s' % exc]
            continue
        cookie = new_session(app)
        for mode in MODES:
            cases[name, mode] = app, mode_environ(mode, cookie)
    counts = {case: calibrate(*args) for case, args in cases.items()}
    samples = {case: [] for case in cases}
    for _ in range(LOOPS):
        for case, (app, env_) in cases.items():
            started = time.perf_counter()
            for _ in range(counts[case]):
                call(app, env_)
            samples[case].append((time.perf_counter() - started) / counts[case])
    timings = {case: statistics.median(values) for case, values in samples.items()}
    base = timings['no session factory', 'untouched']
    table = [('no session factory', ['%7.1f µs %6.1f×' % (base * 1e6, 1.0)])]
    for name in OURS + PEERS:
        cells = rows.get(name) or ['%7.1f µs %6.1f×' % (
            timings[name, mode] * 1e6, timings[name, mode] / base) for mode in MODES]
        table.append((name, cells))
    print_table('Cost per request (median of %d interleaved loops; ratio to an app '
                'without a session factory)' % LOOPS, ['implementation'] + list(MODES),
                table)
    for peer in PEERS:
        if ('ext:redis', 'read') in timings and (peer, 'read') in timings:
            print('  ext:redis / %s: read %.2f×, write %.2f×' % (
                peer, timings['ext:redis', 'read'] / timings[peer, 'read'],
                timings['ext:redis', 'write'] / timings[peer, 'write']))


# -- 4. concurrent writers ----------------------------------------------------------

class Served(AppProcess):
    """This script's app for one implementation, under waitress in a subprocess
    (``serve`` below); an implementation that cannot run here raises Skip."""

    def __init__(self, name, env):
        super().__init__(env, startup_timeout=20, script=os.path.abspath(__file__),
                         args=('serve', name), ready_path='/untouched')

    def __enter__(self):
        try:
            return super().__enter__()
        except AppExited as exc:
            lines = exc.output.strip().splitlines()
            raise Skip(lines[-1] if lines else 'the server exited') from None


def surviving_keys(url):
    """Create a session, let WRITERS requests set a key each; return how many stayed."""
    _, cookie = http_get(url + '/write?key=k&value=v', as_json=False)

    def writer(n):
        http_get(url + '/write?key=w%02d&value=%d' % (n, n), cookie, as_json=False)

    for error in run_together(WRITERS, writer, barrier_timeout=20):
        print('  writer failed: %r' % (error,), file=sys.stderr)
    return len(http_get(url + '/written_keys', cookie)[0])


def concurrency_table(env):
    rows = []
    for name in ('memory', 'file', 'dbm') + SERVER_STORES + PEERS:
        try:
            with Served(name, env) as server:
                kept = [surviving_keys(server.url) for _ in range(ATTEMPTS)]
            rows.append((name, [' '.join('%d/%d' % (n, WRITERS) for n in kept)]))
        except Skip as exc:
            rows.append((name, ['skipped: %s' % exc]))
    print_table('Keys kept out of %d concurrent writers (%d attempts)'
                % (WRITERS, ATTEMPTS), ['implementation', 'kept'], rows)


def serve(name, port, env):
    """Child process: serve the app for ``name`` like tests/serve_app.py does."""
    import waitress

    try:
        factory = build_factory(name, env)
    except Skip as exc:
        sys.exit('skipped: %s' % exc)
    waitress.serve(make_app(factory), host='127.0.0.1', port=port, threads=16,
                   _quiet=True, connection_limit=200)


# -- servers and output ----------------------------------------------------------------

def print_table(title, header, rows):
    widths = [max(len(str(row[0])) for row in rows + [(header[0], [])])]
    for column in range(1, len(header)):
        cells = [row[1][column - 1] for row in rows if len(row[1]) >= column]
        widths.append(max([len(header[column])] + [len(cell) for cell in cells]))
    print('\n' + title)
    print('  '.join(text.ljust(width) for text, width in zip(header, widths)))
    print('  '.join('-' * width for width in widths))
    for name, cells in rows:
        print('  '.join(text.ljust(width) for text, width in zip([name] + cells, widths)))


def start_servers(cleanups):
    """Return the environment shared with child processes; register cleanups."""
    env = {'tmp': tempfile.mkdtemp(prefix='pb-bench-'),
           'table': 'bench_sessions_%s' % uuid.uuid4().hex[:8],
           'postgres': os.environ.get(
               'PYRAMID_BEAKER_POSTGRES_URL',
               'postgresql+psycopg://postgres@127.0.0.1:5432/test')}
    cleanups.append(lambda: shutil.rmtree(env['tmp'], ignore_errors=True))
    if shutil.which('redis-server'):
        server = RedisServer().start()
        cleanups.append(server.stop)
        env['redis'], env['redis_port'] = server.url, server.port
        print('Redis: private redis-server on port %d' % server.port)
    else:
        env['redis'] = os.environ.get('PYRAMID_BEAKER_REDIS_URL',
                                      'redis://127.0.0.1:6379/15')
        env['redis_port'] = int(env['redis'].split(':')[2].split('/')[0])
        print('Redis: %s (shared: command counts may include other clients)'
              % env['redis'])
    memcached = os.environ.get('PYRAMID_BEAKER_MEMCACHED', '127.0.0.1:11211')
    host, _, port = memcached.partition(':')
    if accepts(port or 11211, host, timeout=1):
        env['memcached'] = memcached
    elif shutil.which('memcached'):
        try:
            server = MemcachedServer().start()
        except RuntimeError as exc:
            print('memcached: %s' % exc)
        else:
            cleanups.append(server.stop)
            env['memcached'] = server.url
            print('memcached: private server on port %d' % server.port)
    start_clusters(env, cleanups)
    import sqlalchemy as sa

    mariadb = os.environ.get('PYRAMID_BEAKER_MARIADB_URL',
                             'mysql+pymysql://root@127.0.0.1:3306/test')
    parsed = sa.engine.make_url(mariadb)
    if accepts(parsed.port or 3306, parsed.host or '127.0.0.1', timeout=1):
        env['mariadb'] = mariadb
    for url in ('postgres', 'mariadb'):
        if env.get(url):
            cleanups.append(lambda url=url: drop_table(env[url], env['table']))
    return env


def start_clusters(env, cleanups):
    """The memcached pool, the Sentinel group and the Redis Cluster, all private."""
    from tests.redis_servers import SERVICE, RedisCluster, SentinelGroup

    if shutil.which('memcached'):
        pool = [MemcachedServer().start() for _ in range(3)]
        cleanups.extend(server.stop for server in pool)
        env['memcached_pool'] = ';'.join(server.url for server in pool)
        print('memcached pool: private servers on ports %s'
              % ', '.join(str(server.port) for server in pool))
    if shutil.which('redis-server'):
        directory = os.path.join(env['tmp'], 'redis')
        os.makedirs(directory)
        group = SentinelGroup(directory).__enter__()
        cleanups.append(group.__exit__)
        env['sentinels'], env['service'] = group.addresses, SERVICE
        cluster = RedisCluster(directory).__enter__()
        cleanups.append(cluster.__exit__)
        env['cluster'] = cluster.url
        env['cluster_ports'] = [node.port for node in cluster.nodes]
        print('Redis Sentinel: primary %d, replica %d, Sentinels %s; Redis Cluster: %s'
              % (group.primary.port, group.replica.port, group.addresses,
                 ', '.join(str(port) for port in env['cluster_ports'])))


def drop_table(url, table):
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text('DROP TABLE IF EXISTS %s' % table))
        engine.dispose()
    except Exception as exc:  # the database may simply not be there
        print('(could not drop %s: %s)' % (table, exc))


def main():
    cleanups = []
    started = time.monotonic()
    try:
        env = start_servers(cleanups)
        print('Python %s; %d CPUs' % (sys.version.split()[0], os.cpu_count()))
        command_table(env)
        round_trip_table(env)
        cost_table(env)
        concurrency_table(env)
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
    print('\ntotal %.0f s' % (time.monotonic() - started))


if __name__ == '__main__':
    if sys.argv[1:2] == ['serve']:
        serve(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))
    else:
        main()
