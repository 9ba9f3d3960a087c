"""Every performance figure of pyramid_beaker, side by side with its peers, in one run.

Run it from a checkout with the ``benchmarks`` extra installed (a few minutes)::

    python tests/benchmarks/performance.py [--no-callgrind] [--only ROW,...]

Each row of the summary is one figure with its target.  A row is measured
in a child process of its own, so that imports and caches of one row do not
flatter another:

- wall time: the cases of a row (one request, one save, one cache hit...)
  run in interleaved loops, so that load changes on the shared machine hit
  them all alike; the figure is the median over loops;
- instructions: when ``valgrind`` is on PATH, the same child runs under
  ``valgrind --tool=callgrind``; counters are zeroed when the child calls
  ``getppid()`` and dumped when it calls ``getpgrp()``, around a loop of
  each case, so a count covers exactly that loop (divided by its length).
  Counts do not depend on the machine's load.

Peers, all in the same run: pyramid_beaker 0.9 (downloaded with ``pip
download`` into a private directory and imported as ``pyramid_beaker_09``;
set ``PYRAMID_BEAKER_09_WHEEL`` to a wheel file to skip the download),
pyramid_session_redis, Beaker's ``cache_region``, dogpile.cache and
``functools.lru_cache``.  Redis rows run twice: with redis-py's ``hiredis``
parser (when installed) and without it.

Servers: a private ``redis-server`` and ``memcached`` on free ports when
they are on PATH (else ``PYRAMID_BEAKER_REDIS_URL`` / ``..._MEMCACHED``),
PostgreSQL from ``PYRAMID_BEAKER_POSTGRES_URL`` (tables of its own, dropped
at the end).  Before timing, every case is checked to do what its name
says (a read returns the stored value, a write is stored, a hit does not
call the function); a case that fails its check stops the run.
"""
import argparse
import functools
import gc
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.benchmarks.wsgi import environ  # noqa: E402

SECRET = 'bench-secret-0123456789'
LOOPS = 9
LOOP_SECONDS = 0.1
DRIVERS = ('redis', 'pymemcache', 'sqlalchemy', 'psycopg', 'memcache', 'hiredis')


class Skip(Exception):
    """A case or row cannot run here; the message says why."""


class CheckFailed(AssertionError):
    """A case does not do what its name says."""


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


# -- requests through a real Pyramid router -------------------------------------------

def call(app, env):
    """Run one request; return ``(body, Set-Cookie 'name=value' or None)``."""
    headers = []

    def start_response(status, response_headers, exc_info=None):
        headers.extend(response_headers)

    result = app(dict(env), start_response)
    body = b''.join(result)
    if hasattr(result, 'close'):
        result.close()
    for name, value in headers:
        if name.lower() == 'set-cookie':
            return body, value.split(';')[0].strip()
    return body, None


def session_app(factory):
    """An app whose views do nothing, read key ``k``, set keys, or count keys."""
    from pyramid.config import Configurator
    from pyramid.response import Response

    def untouched(request):
        return Response(b'ok')

    def read(request):
        return Response(str(request.session.get('k')))

    def write(request):
        key = request.params.get('key', 'k')
        request.session[key] = request.params.get('value', 'v')
        return Response(b'ok')

    def fill(request):
        count, size = int(request.params['count']), int(request.params['size'])
        for n in range(count):
            request.session['f%04d' % n] = ('%04d' % n) * (size // 4)
        request.session['k'] = 'v'
        return Response(b'ok')

    def size(request):
        filled = [key for key in request.session.keys() if key.startswith('f')]
        return Response(str(len(filled)))

    config = Configurator()
    if factory is not None:
        config.set_session_factory(factory)
    for view in (untouched, read, write, fill, size):
        config.add_route(view.__name__, '/' + view.__name__)
        config.add_view(view, route_name=view.__name__)
    return config.make_wsgi_app()


def floor_app(client):
    """An app without sessions whose ``/read`` view reads key ``k`` with one HGETALL."""
    from pyramid.config import Configurator
    from pyramid.response import Response

    def read(request):
        return Response(str(client.hgetall('bench:floor')[b'k:k'].decode()))

    config = Configurator()
    config.add_route('read', '/read')
    config.add_view(read, route_name='read')
    return config.make_wsgi_app()


def request_case(app, path, cookie=None, query='', expect=None):
    """A case making one request; checked once to answer ``expect``."""
    env = environ(path, cookie, query)
    body, _ = call(app, env)
    if expect is not None:
        check(body == expect, '%s answered %r, not %r' % (path, body[:60], expect))
    return functools.partial(call, app, env)


def new_session(app, query=''):
    """Create a session through ``/write`` (or ``/fill``); return its cookie."""
    path = '/fill' if query else '/write'
    _, cookie = call(app, environ(path, query=query))
    check(cookie is not None, 'no session cookie was set by %s' % path)
    return cookie


# -- the implementations ------------------------------------------------------------

def load_09(env):
    """Import pyramid_beaker 0.9 as ``pyramid_beaker_09`` from a private directory."""
    try:
        import pyramid_beaker_09
        return pyramid_beaker_09
    except ImportError:
        pass
    wheel = os.environ.get('PYRAMID_BEAKER_09_WHEEL')
    where = os.path.join(env['tmp'], 'pyramid_beaker_09')
    if not wheel:
        wheels = glob.glob(os.path.join(where, 'pyramid_beaker-0.9-*.whl'))
        if not wheels:
            done = subprocess.run(
                [sys.executable, '-m', 'pip', 'download', '-q', '--no-deps',
                 '-d', where, 'pyramid_beaker==0.9'], capture_output=True, text=True)
            wheels = glob.glob(os.path.join(where, 'pyramid_beaker-0.9-*.whl'))
            if not wheels:
                raise Skip('pip download pyramid_beaker==0.9 failed: %s'
                           % done.stderr.strip()[-200:])
        wheel = wheels[0]
    package = os.path.join(where, 'lib', 'pyramid_beaker_09')
    if not os.path.exists(package):
        os.makedirs(package)
        with zipfile.ZipFile(wheel) as archive:
            source = archive.read('pyramid_beaker/__init__.py')
        with open(os.path.join(package, '__init__.py'), 'wb') as out:
            out.write(source)
    sys.path.insert(0, os.path.dirname(package))
    import pyramid_beaker_09
    check('pyramid_beaker_09' in pyramid_beaker_09.__file__, 'wrong 0.9 module')
    return pyramid_beaker_09


def factory_09(env, store_type, **extra):
    """pyramid_beaker 0.9's factory for Beaker's own ``store_type``."""
    module = load_09(env)
    settings = {'session.type': store_type, 'session.secret': SECRET,
                'session.key': 'beaker.session.id'}
    settings.update(('session.' + name, value) for name, value in extra.items())
    return module.session_factory_from_settings(settings)


def our_factory(env, store_type, **extra):
    from pyramid_beaker.session import BeakerSessionFactoryConfig

    return BeakerSessionFactoryConfig(type=store_type, secret=SECRET, **extra)


def session_redis_factory(env):
    try:
        from pyramid_session_redis import RedisSessionFactory
    except ImportError:
        raise Skip('pyramid_session_redis is not installed') from None
    return RedisSessionFactory(SECRET, redis_url=env['redis'])


def redis_factories(env):
    """``{name: factory}`` for the Redis sessions compared in this run."""
    found = {'pyramid_beaker': our_factory(env, 'ext:redis', url=env['redis'],
                                           key_prefix='bench:%s:' % uuid.uuid4().hex[:6])}
    for name, make in (('0.9 ext:redis', lambda: factory_09(env, 'ext:redis', url=env['redis'])),
                       ('pyramid_session_redis', lambda: session_redis_factory(env))):
        try:
            found[name] = make()
        except Skip as exc:
            print('skipped %s: %s' % (name, exc), file=sys.stderr)
    return found


# -- rows ---------------------------------------------------------------------------
#
# A row's build(env) returns {case name: callable}; each callable does one
# operation.  The cases are checked while they are built.

def build_redis_read(env):
    import redis

    cases = {}
    for name, factory in redis_factories(env).items():
        app = session_app(factory)
        cookie = new_session(app)
        cases[name] = request_case(app, '/read', cookie, expect=b'v')
    # The floor: the same read view, with the session replaced by the one
    # command a read needs (its response is built the same way).
    client = redis.Redis.from_url(env['redis'])
    client.hset('bench:floor', mapping={'k:k': 'v', 'm:created': 1, 'm:accessed': 1})
    floor = request_case(floor_app(client), '/read', expect=b'v')
    cases['floor: no session + HGETALL'] = floor
    return cases


def build_redis_write(env):
    cases = {}
    for name, factory in redis_factories(env).items():
        app = session_app(factory)
        cookie = new_session(app)
        counter = iter(range(10 ** 9))
        env_ = environ('/write', cookie, 'value=x')
        read = environ('/read', cookie)

        def write(app=app, env_=env_, counter=counter):
            env_['QUERY_STRING'] = 'value=%d' % next(counter)
            return call(app, env_)

        write()
        check(call(app, read)[0] == b'0', '%s: the write was not stored' % name)
        cases[name] = write
    return cases


BIG_KEYS, BIG_SIZE = 1000, 100


def build_redis_big(env):
    cases = {}
    query = 'count=%d&size=%d' % (BIG_KEYS, BIG_SIZE)
    for name, factory in redis_factories(env).items():
        app = session_app(factory)
        cookie = new_session(app, query)
        check(call(app, environ('/size', cookie))[0] == str(BIG_KEYS).encode(),
              '%s: the big session was not stored' % name)
        cases[name + ' read'] = request_case(app, '/read', cookie, expect=b'v')
        cases[name + ' write 1 key'] = request_case(
            app, '/write', cookie, 'key=k&value=v', expect=b'ok')
    return cases


def _dbm_app(env, stored):
    """An app on a dbm store holding ``stored`` sessions; return (app, cookie)."""
    from pyramid_beaker.session import SessionFactory

    data_dir = os.path.join(env['tmp'], 'dbm-%d-%s' % (stored, uuid.uuid4().hex[:6]))
    factory = our_factory(env, 'dbm', data_dir=data_dir)
    check(isinstance(factory, SessionFactory), 'not our factory')
    app = session_app(factory)
    cookie = new_session(app)
    session_id = cookie.split('=', 1)[1].split('.')[0]
    store = factory.store
    with store.file.open(write=True) as db:
        raw = db[session_id]
        for n in range(stored - 1):
            db[uuid.uuid4().hex] = raw
    with store.file.open() as db:
        check(len(db.keys()) == stored, 'dbm holds %d sessions' % len(db.keys()))
    return app, cookie


def build_dbm(env):
    cases = {}
    for stored in (1000, 100000):
        app, cookie = _dbm_app(env, stored)
        cases['pyramid_beaker read, %d stored' % stored] = request_case(
            app, '/read', cookie, expect=b'v')
    data_dir = os.path.join(env['tmp'], 'dbm-09')
    try:
        app = session_app(factory_09(env, 'dbm', data_dir=data_dir))
    except Skip as exc:
        print('skipped 0.9 dbm: %s' % exc, file=sys.stderr)
    else:
        for _ in range(999):
            new_session(app)
        cookie = new_session(app)
        cases['0.9 read, 1000 stored'] = request_case(app, '/read', cookie, expect=b'v')
    return cases


def build_memcached_write(env):
    if not env.get('memcached'):
        raise Skip('no memcached server')
    cases = {}
    factories = {'pyramid_beaker': lambda: our_factory(env, 'ext:memcached', url=env['memcached']),
                 '0.9 ext:memcached': lambda: factory_09(env, 'ext:memcached',
                                                         url=env['memcached'])}
    for name, make in factories.items():
        try:
            app = session_app(make())
        except Skip as exc:
            print('skipped %s: %s' % (name, exc), file=sys.stderr)
            continue
        cookie = new_session(app)
        cases[name] = request_case(app, '/write', cookie, 'value=w', expect=b'ok')
        check(call(app, environ('/read', cookie))[0] == b'w', '%s: not stored' % name)
    return cases


def build_postgres_write(env):
    cases = {}
    factories = {
        'pyramid_beaker': lambda: our_factory(
            env, 'ext:database', url=env['postgres'], table_name=env['table']),
        '0.9 ext:database': lambda: factory_09(
            env, 'ext:database', url=env['postgres'], table_name=env['table'] + '_09'),
    }
    for name, make in factories.items():
        try:
            app = session_app(make())
            cookie = new_session(app)
        except Skip as exc:
            print('skipped %s: %s' % (name, exc), file=sys.stderr)
            continue
        except Exception as exc:  # e.g. Beaker's ext:database on this SQLAlchemy
            print('skipped %s: %s: %s' % (name, type(exc).__name__, exc), file=sys.stderr)
            continue
        cases[name] = request_case(app, '/write', cookie, 'value=w', expect=b'ok')
        check(call(app, environ('/read', cookie))[0] == b'w', '%s: not stored' % name)
    return cases


def build_cache_hit(env):
    import beaker.cache
    from dogpile.cache import make_region
    from pyramid.config import Configurator

    from pyramid_beaker import cached_region

    calls = []

    @cached_region('bench')
    def ours(a, b):
        calls.append('ours')
        return a + b

    config = Configurator(settings={})
    config.include('pyramid_beaker')
    config.add_cache_region('bench', type='memory', expire=3600)
    config.add_cached_function(ours)
    config.commit()
    config.begin()  # what the router does for each request

    beaker.cache.cache_regions['beaker_bench'] = {
        'type': 'memory', 'expire': 3600, 'enabled': True, 'key_length': 250}

    @beaker.cache.cache_region('beaker_bench')
    def beakers(a, b):
        calls.append('beaker')
        return a + b

    region = make_region().configure('dogpile.cache.memory', expiration_time=3600)

    @region.cache_on_arguments()
    def dogpiles(a, b):
        calls.append('dogpile')
        return a + b

    @functools.lru_cache(maxsize=None)
    def lrus(a, b):
        calls.append('lru')
        return a + b

    cases = {'@cached_region': ours, 'Beaker cache_region': beakers,
             'dogpile.cache': dogpiles, 'lru_cache': lrus}
    for name, function in cases.items():
        check(function(1, 2) == 3, name)
        before = len(calls)
        check(function(1, 2) == 3 and len(calls) == before, '%s: not a hit' % name)
    return {name: functools.partial(function, 1, 2) for name, function in cases.items()}


def build_cached_view(env):
    from pyramid.config import Configurator
    from pyramid.response import Response

    from pyramid_beaker import cached_region

    calls = []

    def plain(request):
        calls.append(1)
        return Response(b'hello')

    cached = cached_region('views')(plain)
    config = Configurator(settings={})
    config.include('pyramid_beaker')
    config.add_cache_region('views', type='memory', expire=3600)
    config.add_cached_function(cached)
    config.add_route('plain', '/plain')
    config.add_view(plain, route_name='plain')
    config.add_route('cached', '/cached')
    config.add_view(cached, route_name='cached')
    app = config.make_wsgi_app()
    cases = {'uncached view': request_case(app, '/plain', expect=b'hello'),
             'cached view hit': request_case(app, '/cached', expect=b'hello')}
    before = len(calls)
    check(call(app, environ('/cached'))[0] == b'hello' and len(calls) == before,
          'the cached view ran again')
    return cases


ROWS = {}


def row(name, build, figure, counted=True, count=30):
    ROWS[name] = {'build': build, 'figure': figure, 'counted': counted, 'count': count}


row('redis_read', build_redis_read, 'Redis session read')
row('redis_write', build_redis_write, 'Redis session write')
row('redis_big', build_redis_big, 'Redis session of 1,000 keys x 100 B', count=10)
row('dbm', build_dbm, 'dbm store: one read', counted=False)
row('memcached_write', build_memcached_write, 'memcached session write')
row('postgres_write', build_postgres_write, 'PostgreSQL session write')
row('cache_hit', build_cache_hit, 'memory-region cache hit f(1, 2)', count=2000)
row('cached_view', build_cached_view, 'cached view hit vs uncached view')


# -- rows measured their own way ------------------------------------------------------

START_PLAIN = '''
from pyramid.config import Configurator
config = Configurator(settings={})
config.add_route('home', '/')
app = config.make_wsgi_app()
'''
START_OURS = '''
import sys
from pyramid.config import Configurator
config = Configurator(settings={'cache.regions': 'short', 'cache.short.type': 'memory',
                                'cache.short.expire': '60'})
config.include('pyramid_beaker')
config.add_route('home', '/')
app = config.make_wsgi_app()
print(' '.join(sorted(m for m in %r if m in sys.modules)))
''' % (DRIVERS,)


def measure_start(env):
    """Wall time of whole processes: plain Pyramid vs include + a memory region.

    The processes run in this process's environment: with an editable
    install and ``PYTHONDONTWRITEBYTECODE=1``, pyramid_beaker's source is
    compiled at every start, while Pyramid's modules come from the bytecode
    pip wrote.  For reference, they are also timed loading every module from
    bytecode, as an installed app does (written and read under a private
    ``PYTHONPYCACHEPREFIX``, after one warm-up run each).
    """
    scripts = {'plain Pyramid': START_PLAIN, START_CASE: START_OURS}
    compiled = _bytecode_environ(env)
    environments = {'': None, BYTECODE_LABEL: compiled}
    imported = subprocess.run([sys.executable, '-c', START_OURS], capture_output=True,
                              text=True, check=True).stdout.split()
    for script in scripts.values():  # the warm-up run that writes the bytecode
        subprocess.run([sys.executable, '-c', script], check=True,
                       stdout=subprocess.DEVNULL, env=compiled)
    runs = [(name + label, script, environ_)
            for label, environ_ in environments.items() for name, script in scripts.items()]
    samples = {name: [] for name, _, _ in runs}
    for _ in range(11):
        for name, script, environ_ in runs:
            started = time.perf_counter()
            subprocess.run([sys.executable, '-c', script], check=True,
                           stdout=subprocess.DEVNULL, env=environ_)
            samples[name].append(time.perf_counter() - started)
    result = {name: statistics.median(values) for name, values in samples.items()}
    result['drivers imported'] = imported
    result['no bytecode writing'] = bool(os.environ.get('PYTHONDONTWRITEBYTECODE'))
    return result


def count_start(env):
    """Instructions of each whole process of :func:`measure_start`."""
    counts = {}
    for label, environ_ in (('', None), (BYTECODE_LABEL, _bytecode_environ(env))):
        for name, script in (('plain Pyramid', START_PLAIN), (START_CASE, START_OURS)):
            out_file = os.path.join(env['tmp'], 'callgrind.start.%s' % uuid.uuid4().hex[:6])
            subprocess.run(['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out_file,
                            sys.executable, '-c', script], check=True, env=environ_,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            counts[name + label] = _summary(out_file)
            os.remove(out_file)
    return counts


def _bytecode_environ(env):
    """This environment, writing and reading bytecode under a private prefix."""
    compiled = dict(os.environ, PYTHONPYCACHEPREFIX=os.path.join(env['tmp'], 'pycache'))
    compiled.pop('PYTHONDONTWRITEBYTECODE', None)
    return compiled


START_CASE = 'pyramid_beaker include, memory region'
BYTECODE_LABEL = ' (all from bytecode)'


def write_modules(directory, decorator_import, decorator, count=100):
    os.makedirs(directory, exist_ok=True)
    lines = [decorator_import, '']
    for n in range(count):
        lines += [''] + ([decorator % n] if decorator else []) + [
            'def function_%d(a, b=1):' % n, '    return a + b', '']
    with open(os.path.join(directory, 'generated_%s.py' % uuid.uuid4().hex[:8]), 'w') as out:
        out.write('\n'.join(lines))
    return out.name


IMPORT_CHILD = '''
import importlib, sys, time
sys.path.insert(0, %r)
import pyramid.view, pyramid_beaker.decorator  # each decorator's module, as before
started = time.perf_counter()
importlib.import_module(%r)
print(time.perf_counter() - started)
'''


def measure_import100(env):
    """Import time of a module of 100 decorated functions (fresh process, no .pyc)."""
    directory = os.path.join(env['tmp'], 'import100')
    kinds = {
        '@cached_region': ('from pyramid_beaker import cached_region',
                           "@cached_region('region_%d')"),
        '@view_config': ('from pyramid.view import view_config',
                         "@view_config(route_name='route_%d')"),
        'undecorated': ('', ''),
    }
    samples = {name: [] for name in kinds}
    for _ in range(7):
        for name, (imports, decorator) in kinds.items():
            path = write_modules(directory, imports, decorator)
            module = os.path.basename(path)[:-3]
            out = subprocess.run(
                [sys.executable, '-B', '-c', IMPORT_CHILD % (directory, module)],
                capture_output=True, text=True, check=True).stdout
            samples[name].append(float(out.split()[-1]))
            os.remove(path)
    return {name: statistics.median(values) for name, values in samples.items()}


def measure_sweep(env, stored=300000, saves=3000):
    """Longest single save on a memory store holding ``stored`` sessions: the
    first half saved two minutes ago with a one-minute lifetime (expired),
    the rest just now; then ``saves`` new sessions are saved."""
    from pyramid_beaker.stores.base import now

    factory = our_factory(env, 'memory', timeout=60)
    store = factory.store
    current = now()
    for n in range(stored):
        if n < stored // 2:
            store.save('%032x' % n, {'k': n}, frozenset(), current - 120, current - 120, 60)
        else:
            store.save('%032x' % n, {'k': n}, frozenset(), current, current, 60)
    times = []
    for n in range(saves):
        started = time.perf_counter()
        store.save('new%029x' % n, {'k': n}, frozenset(), now(), now(), 60)
        times.append(time.perf_counter() - started)
    check(store.load('new%029x' % (saves - 1)).data == {'k': saves - 1}, 'save lost')
    # The sweeps did their work: expired sessions are gone.
    expired = sum(1 for n in range(stored // 2) if '%032x' % n in store.records)
    times.sort()
    return {'max save': times[-1], 'p99 save': times[int(len(times) * 0.99)],
            'median save': times[len(times) // 2],
            'expired left': expired, 'expired stored': stored // 2}


SPECIAL = {'start': measure_start, 'import100': measure_import100, 'sweep': measure_sweep}


# -- measuring ---------------------------------------------------------------------

def interleaved(cases, loops=LOOPS, seconds=LOOP_SECONDS):
    """Median seconds per call of each case, over ``loops`` interleaved loops."""
    counts = {}
    for name, case in cases.items():
        started = time.perf_counter()
        for _ in range(10):
            case()
        estimate = (time.perf_counter() - started) / 10
        counts[name] = max(5, min(200000, int(seconds / max(estimate, 1e-9))))
    samples = {name: [] for name in cases}
    for _ in range(loops):
        for name, case in cases.items():
            number = counts[name]
            started = time.perf_counter()
            for _ in range(number):
                case()
            samples[name].append((time.perf_counter() - started) / number)
    return {name: statistics.median(values) for name, values in samples.items()}


def counted(cases, number):
    """Run each case ``number`` times between the callgrind markers; return the order."""
    order = []
    for name, case in cases.items():
        for _ in range(5):
            case()
        gc.collect()  # the setup's garbage is not this case's to collect
        os.getppid()  # callgrind: --zero-before=getppid
        for _ in range(number):
            case()
        os.getpgrp()  # callgrind: --dump-before=getpgrp
        order.append(name)
    return order


def child(name, env, count_mode):
    if env.get('no_hiredis'):
        sys.modules['hiredis'] = None  # redis-py then uses its pure-Python parser
    if name in SPECIAL:
        return SPECIAL[name](env)
    spec = ROWS[name]
    cases = spec['build'](env)
    if count_mode:
        return {'order': counted(cases, spec['count']), 'count': spec['count']}
    result = interleaved(cases)
    if 'redis' in name:
        import redis.utils

        result['hiredis'] = bool(redis.utils.HIREDIS_AVAILABLE)
    return result


def run_child(name, env, callgrind=False):
    """Run row ``name`` in a child process; return its result dict."""
    command = [sys.executable, os.path.abspath(__file__), '--child', name,
               '--env', json.dumps(env)]
    out_file = None
    if callgrind:
        out_file = os.path.join(env['tmp'], 'callgrind.%s.%s' % (name, uuid.uuid4().hex[:6]))
        command = ['valgrind', '--tool=callgrind', '--zero-before=getppid',
                   '--dump-before=getpgrp', '--callgrind-out-file=' + out_file,
                   ] + command + ['--count']
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        lines = (done.stdout + done.stderr).strip().splitlines()
        raise Skip(lines[-1] if lines else 'exit %d' % done.returncode)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if callgrind:
        counts = {}
        for index, case in enumerate(result['order'], 1):
            counts[case] = _summary(out_file + '.%d' % index) / result['count']
        for path in glob.glob(out_file + '*'):
            os.remove(path)
        return counts
    return result


def _summary(path):
    with open(path) as dump:
        for line in dump:
            if line.startswith('summary:'):
                return int(line.split()[1])
    raise RuntimeError('no summary in %s' % path)


# -- reporting -----------------------------------------------------------------------

def fmt_time(seconds):
    if seconds >= 1e-3:
        return '%.2f ms' % (seconds * 1e3)
    if seconds >= 1e-6:
        return '%.1f µs' % (seconds * 1e6)
    return '%.0f ns' % (seconds * 1e9)


def fmt_count(number):
    if number >= 1e6:
        return '%.2fM' % (number / 1e6)
    if number >= 1e3:
        return '%.0fk' % (number / 1e3)
    return '%.0f' % number


def rst_table(header, rows):
    """Return an reST simple table."""
    columns = list(zip(*([header] + rows)))
    widths = [max(len(str(cell)) for cell in column) for column in columns]
    rule = '  '.join('=' * width for width in widths)

    def line(cells):
        return '  '.join(str(cell).ljust(width) for cell, width in zip(cells, widths)).rstrip()

    return '\n'.join([rule, line(header), rule] + [line(cells) for cells in rows] + [rule])


def case_table(title, wall, counts):
    rows = []
    for case, seconds in wall.items():
        if isinstance(seconds, float):
            count = counts.get(case) if counts else None
            rows.append([case, fmt_time(seconds), fmt_count(count) if count else '-'])
    print('\n' + title)
    print(rst_table(['case', 'median', 'instructions'], rows))


class Summary:
    """The rows of the summary table: figure, measured, target, met."""

    def __init__(self):
        self.rows = []

    def add(self, figure, measured, target, met):
        self.rows.append([figure, measured, target, {True: 'yes', False: 'NO', None: '-'}[met]])

    def ratio(self, figure, value, base, limit, what='×'):
        if value is None or base is None:
            self.add(figure, 'not measured', '≤ %.2f%s' % (limit, what), None)
            return
        ratio = value / base
        self.add(figure, '%.2f%s' % (ratio, what), '≤ %.2f%s' % (limit, what), ratio <= limit)

    def print(self):
        print('\nSummary (targets of the performance work)')
        print(rst_table(['figure', 'measured', 'target', 'met'], self.rows))


def report(name, wall, counts, summary, label=''):
    """Print the case table of a row and add its figures to the summary."""
    get = wall.get
    cnt = (counts or {}).get
    if name == 'redis_read':
        case_table('Redis session read%s' % label, wall, counts)
        floor = 'floor: no session + HGETALL'
        summary.ratio('Redis read, instructions vs floor%s' % label, cnt('pyramid_beaker'),
                      cnt(floor), 1.15)
        for peer in ('0.9 ext:redis', 'pyramid_session_redis'):
            summary.ratio('Redis read, wall vs %s%s' % (peer, label),
                          get('pyramid_beaker'), get(peer), 1.0)
    elif name == 'redis_write':
        case_table('Redis session write%s' % label, wall, counts)
        for peer in ('0.9 ext:redis', 'pyramid_session_redis'):
            summary.ratio('Redis write, wall vs %s%s' % (peer, label),
                          get('pyramid_beaker'), get(peer), 1.0)
    elif name == 'redis_big':
        case_table('Redis session of %d keys x %d B%s' % (BIG_KEYS, BIG_SIZE, label),
                   wall, counts)
        for op in ('read', 'write 1 key'):
            for peer in ('0.9 ext:redis', 'pyramid_session_redis'):
                summary.ratio('1,000-key session %s, wall vs %s%s' % (op, peer, label),
                              get('pyramid_beaker ' + op), get('%s %s' % (peer, op)), 1.0)
    elif name == 'dbm':
        case_table('dbm store (dbm.%s), one read request' % _dbm_module(), wall, counts)
        summary.ratio('dbm read at 100,000 sessions vs at 1,000',
                      get('pyramid_beaker read, 100000 stored'),
                      get('pyramid_beaker read, 1000 stored'), 2.0)
    elif name == 'memcached_write':
        case_table('memcached session write', wall, counts)
        summary.ratio('memcached write, instructions vs 0.9', cnt('pyramid_beaker'),
                      cnt('0.9 ext:memcached'), 1.0)
    elif name == 'postgres_write':
        case_table('PostgreSQL session write', wall, counts)
        summary.ratio('PostgreSQL write, instructions vs 0.9', cnt('pyramid_beaker'),
                      cnt('0.9 ext:database'), 1.0)
    elif name == 'cache_hit':
        case_table('Memory-region cache hit of f(1, 2)', wall, counts)
        summary.ratio('cache hit vs lru_cache, wall', get('@cached_region'),
                      get('lru_cache'), 10.0)
        summary.ratio('cache hit vs Beaker cache_region, wall', get('@cached_region'),
                      get('Beaker cache_region'), 0.3)
        summary.ratio('cache hit vs lru_cache, instructions', cnt('@cached_region'),
                      cnt('lru_cache'), 10.0)
    elif name == 'cached_view':
        case_table('Cached view hit vs the same view uncached', wall, counts)
        summary.ratio('cached view hit vs uncached view, wall', get('cached view hit'),
                      get('uncached view'), 1.3)
    elif name == 'start':
        ours, compiled = START_CASE, BYTECODE_LABEL
        print('\nProcess start (median of 11 interleaved runs; PYTHONDONTWRITEBYTECODE %s)'
              % ('set: pyramid_beaker is compiled at each start' if wall['no bytecode writing']
                 else 'unset'))
        cnt = (counts or {}).get
        print(rst_table(['process', 'median', 'instructions'], [
            [case, fmt_time(wall[case]), fmt_count(cnt(case)) if cnt(case) else '-']
            for case in ('plain Pyramid', ours, 'plain Pyramid' + compiled, ours + compiled)]))
        drivers = ' '.join(wall['drivers imported']) or 'none'
        print('backend drivers imported: %s' % drivers)
        summary.ratio('process start vs plain Pyramid', wall[ours],
                      wall['plain Pyramid'], 1.2)
        summary.ratio('process start vs plain Pyramid, instructions', cnt(ours),
                      cnt('plain Pyramid'), 1.2)
        for what, value, base in (('', wall.get, wall.get), (', instructions', cnt, cnt)):
            if value(ours + compiled) and base('plain Pyramid' + compiled):
                ratio = value(ours + compiled) / base('plain Pyramid' + compiled)
                summary.add('process start, all from bytecode%s (reference)' % what,
                            '%.2f×' % ratio, '-', None)
        summary.add('backend drivers imported (memory only)', drivers, 'none',
                    not wall['drivers imported'])
    elif name == 'import100':
        print('\nImporting a module of 100 decorated functions (median of 7)')
        print(rst_table(['decorator', 'import'],
                        [[kind, fmt_time(seconds)] for kind, seconds in wall.items()]))
        seconds = wall['@cached_region']
        summary.add('importing 100 @cached_region functions', fmt_time(seconds),
                    '≤ 50 ms', seconds <= 0.05)
    elif name == 'sweep':
        print('\nMemory store with 300,000 sessions (half expired): 3,000 saves')
        print(rst_table(['figure', 'value'], [
            [key, fmt_time(value) if isinstance(value, float) else str(value)]
            for key, value in wall.items()]))
        summary.add('memory store at 300,000 sessions: longest save',
                    fmt_time(wall['max save']), '≤ 5 ms', wall['max save'] <= 0.005)


def _dbm_module():
    """The dbm module new files get: the first of Python's that imports."""
    import importlib

    for name in ('dbm.gnu', 'dbm.ndbm', 'dbm.dumb'):
        try:
            importlib.import_module(name)
            return name.split('.')[-1]
        except ImportError:
            continue
    return '?'


# -- servers -------------------------------------------------------------------------

def start_servers(cleanups):
    from tests.backend_faults import MemcachedServer, RedisServer, accepts

    env = {'tmp': tempfile.mkdtemp(prefix='pb-perf-'),
           'table': 'bench_perf_%s' % uuid.uuid4().hex[:8],
           'postgres': os.environ.get('PYRAMID_BEAKER_POSTGRES_URL',
                                      'postgresql+psycopg://postgres@127.0.0.1:5432/test')}
    cleanups.append(lambda: shutil.rmtree(env['tmp'], ignore_errors=True))
    if shutil.which('redis-server'):
        server = RedisServer().start()
        cleanups.append(server.stop)
        env['redis'] = server.url
        print('Redis: private redis-server on port %d' % server.port)
    else:
        env['redis'] = os.environ.get('PYRAMID_BEAKER_REDIS_URL', 'redis://127.0.0.1:6379/15')
        print('Redis: %s' % env['redis'])
    if shutil.which('memcached'):
        server = MemcachedServer().start()
        cleanups.append(server.stop)
        env['memcached'] = server.url
        print('memcached: private server on port %d' % server.port)
    else:
        address = os.environ.get('PYRAMID_BEAKER_MEMCACHED', '127.0.0.1:11211')
        host, _, port = address.partition(':')
        if accepts(int(port or 11211), host, timeout=1):
            env['memcached'] = address
    cleanups.append(lambda: drop_tables(env))
    return env


def drop_tables(env):
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(env['postgres'])
        with engine.begin() as conn:
            for table in (env['table'], env['table'] + '_09'):
                conn.execute(sa.text('DROP TABLE IF EXISTS %s' % table))
        engine.dispose()
    except Exception as exc:  # the database may simply not be there
        print('(could not drop the benchmark tables: %s)' % exc)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--no-callgrind', action='store_true',
                        help='skip the instruction counts')
    parser.add_argument('--only', help='comma-separated rows: %s'
                        % ','.join(list(ROWS) + list(SPECIAL)))
    options = parser.parse_args(argv)
    names = list(ROWS) + list(SPECIAL)
    if options.only:
        names = [name for name in names if name in options.only.split(',')]
    callgrind = not options.no_callgrind and shutil.which('valgrind') is not None
    cleanups = []
    started = time.monotonic()
    summary = Summary()
    try:
        env = start_servers(cleanups)
        import beaker
        import pyramid

        print('Python %s, Pyramid %s, Beaker %s, %d CPUs; callgrind: %s' % (
            sys.version.split()[0], _version('pyramid'), beaker.__version__,
            os.cpu_count(), 'yes' if callgrind else 'no'))
        del pyramid
        for name in names:
            variants = [('', env)]
            if name.startswith('redis'):
                variants.append((' (no hiredis)', dict(env, no_hiredis=True)))
            for label, env_ in variants:
                try:
                    wall = run_child(name, env_)
                    if label == '' and wall.get('hiredis') is False:
                        label = ' (no hiredis installed)'
                    counts = None
                    if callgrind and name in ROWS and ROWS[name]['counted']:
                        counts = run_child(name, env_, callgrind=True)
                    elif callgrind and name == 'start':
                        counts = count_start(env_)
                    report(name, wall, counts, summary, label)
                except Skip as exc:
                    print('\n%s%s: skipped: %s' % (name, label, exc))
                    summary.add(name + label, 'skipped', '', None)
        summary.print()
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
    print('\ntotal %.0f s' % (time.monotonic() - started))


def _version(name):
    from importlib.metadata import version

    return version(name)


if __name__ == '__main__':
    if sys.argv[1:2] == ['--child']:
        arguments = sys.argv[2:]
        count_mode = '--count' in arguments
        env = json.loads(arguments[arguments.index('--env') + 1])
        print(json.dumps(child(arguments[0], env, count_mode)))
    else:
        main()
