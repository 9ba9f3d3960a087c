"""The ``pbeaker`` console script, run as a real subprocess against small ini files.

Each ini file's app is :func:`make_app` below (``use = call:...``): it
includes pyramid_beaker and, when the ini file has cache regions, scans
this module, whose cached functions bind to the regions named ``stored``
and ``other``.
"""
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.paster import get_app
from pyramid.response import Response
from pyramid.session import SignedCookieSessionFactory
from pyramid.view import view_config

from pyramid_beaker import cached_region
from pyramid_beaker.session import session_factory_from_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SESSION_SECRET = 'session-secret-do-not-print-7d1e'
CACHE_SECRET = 'cache-secret-do-not-print-a02c'
RUN_TIMEOUT = 60
#: How often this process computed each cached function.
computed = {'square': 0, 'cube': 0}


@cached_region('stored')
def square(x):
    computed['square'] += 1
    return x * x


@cached_region('other')
def cube(x):
    computed['cube'] += 1
    return x * x * x


@view_config(route_name='math')
def math_view(request):
    x = int(request.params['x'])
    return Response('%d %d' % (square(x), cube(x)))


def make_app(global_config, **settings):
    """The app of every ini file written by these tests.

    The cached functions and their view are scanned only when the ini
    file lists the regions ``stored`` and ``other``; ``test.pyramid_session``
    sets Pyramid's own cookie session factory instead of a Beaker one;
    ``test.no_introspection`` turns the introspector off.
    """
    introspection = not settings.get('test.no_introspection')
    with Configurator(settings=settings, introspection=introspection) as config:
        config.include('pyramid_beaker')
        if settings.get('test.pyramid_session'):
            config.set_session_factory(SignedCookieSessionFactory(SESSION_SECRET))
        if 'stored' in settings.get('cache.regions', ''):
            config.add_route('math', '/math')
            config.scan(__name__)
    return config.make_wsgi_app()


# -- helpers -----------------------------------------------------------------

def write_ini(directory, settings, name='app.ini'):
    lines = ['[app:main]', 'use = call:tests.test_pbeaker:make_app']
    lines += ['%s = %s' % item for item in settings.items()]
    path = os.path.join(directory, name)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def script_env():
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [ROOT, env.get('PYTHONPATH')]))
    return env


def pbeaker(*args, cwd=None):
    """Run ``python -m pyramid_beaker.scripts.pbeaker ARGS``; return the result."""
    return subprocess.run(
        [sys.executable, '-m', 'pyramid_beaker.scripts.pbeaker', *args],
        capture_output=True, text=True, timeout=RUN_TIMEOUT, env=script_env(), cwd=cwd)


def error_lines(result):
    """pbeaker's own error lines in ``result.stderr``.

    Other lines there (warnings printed by the interpreter or by libraries
    while the app loads) are not pbeaker's and are left alone.
    """
    return [line for line in result.stderr.splitlines()
            if line.startswith('pbeaker: error: ')]


def assert_one_line_error(result, *fragments):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert 'Traceback' not in result.stdout + result.stderr
    assert result.stdout == ''
    found = error_lines(result)
    assert len(found) == 1, result.stderr
    for fragment in fragments:
        assert fragment in found[0]


def file_settings(tmp_dir, **extra):
    settings = {
        'session.type': 'file',
        'session.data_dir': os.path.join(tmp_dir, 'sessions'),
        'session.lock_dir': os.path.join(tmp_dir, 'locks'),
        'session.secret': SESSION_SECRET,
        'session.timeout': '60',
        'cache.regions': 'stored, other, quick',
        'cache.type': 'file',
        'cache.data_dir': os.path.join(tmp_dir, 'cache'),
        'cache.secret': CACHE_SECRET,
        'cache.expire': '600',
        'cache.quick.type': 'memory',
    }
    settings.update(extra)
    return settings


def make_sessions(settings, live, expired, age=3600):
    """Store sessions through the app's own store; return (live ids, expired ids)."""
    factory = session_factory_from_settings(settings)
    now = time.time()
    ids = ([], [])
    for index in range(live + expired):
        session_id = '%032x' % (index + 1)
        is_live = index < live
        accessed = now if is_live else now - age
        factory.store.save(session_id, {'n': index}, frozenset(), accessed, accessed,
                           factory.ttl)
        ids[0 if is_live else 1].append(session_id)
    return factory, ids


# -- show ----------------------------------------------------------------------

def test_show_prints_the_configuration_with_secrets_masked(tmp_dir):
    ini = write_ini(tmp_dir, file_settings(tmp_dir, **{
        'session.key': 'shop_session', 'session.encrypt_key': 'encrypt-me-not-shown'}))
    result = pbeaker(ini, 'show')
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert SESSION_SECRET not in out and CACHE_SECRET not in out
    assert 'encrypt-me-not-shown' not in out
    lines = [line.split() for line in out.splitlines()]
    assert ['secret', '********'] in lines
    assert ['encrypt_key', '********'] in lines
    assert ['key', 'shop_session'] in lines
    assert ['timeout', '60'] in lines
    assert out.startswith('Session: pyramid_beaker, file store, settings session.*\n')
    assert '\nCache regions:\n  other\n' in out
    assert ['type', 'pyramid_beaker.file'] in lines
    assert ['expire', '600'] in lines
    assert ['tests.test_pbeaker.square', '(function,', 'namespace',
            'stored:tests.test_pbeaker.square)'] in lines
    assert error_lines(result) == []


def test_show_json(tmp_dir):
    ini = write_ini(tmp_dir, file_settings(tmp_dir))
    result = pbeaker(ini, 'show', '--json')
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report['session']['options']['secret'] == '********'
    assert report['session']['options']['type'] == 'file'
    regions = report['cache_regions']
    assert sorted(regions) == ['other', 'quick', 'stored']
    assert regions['stored']['options']['secret'] == '********'
    assert regions['quick']['options']['type'] == 'pyramid_beaker.memory'
    assert regions['stored']['cached'] == [{
        'name': 'tests.test_pbeaker.square', 'kind': 'function',
        'namespace': 'stored:tests.test_pbeaker.square'}]
    assert regions['quick']['cached'] == []


def test_show_masks_the_password_in_urls(tmp_dir):
    ini = write_ini(tmp_dir, {
        'session.type': 'ext:redis',
        'session.url': 'redis://:hunter2-password@127.0.0.1:6379/15',
        'session.secret': SESSION_SECRET,
    })
    result = pbeaker(ini, 'show')
    assert result.returncode == 0, result.stderr
    assert 'hunter2-password' not in result.stdout
    assert 'redis://:********@127.0.0.1:6379/15' in result.stdout
    assert 'Cache regions: none configured' in result.stdout


def test_show_without_a_session(tmp_dir):
    ini = write_ini(tmp_dir, {'cache.regions': 'stored, other'})
    result = pbeaker(ini, 'show')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('Session: none configured\n')


# -- purge-sessions ------------------------------------------------------------

def test_purge_deletes_only_expired_file_sessions(tmp_dir):
    settings = file_settings(tmp_dir)
    factory, (live, expired) = make_sessions(settings, live=2, expired=3)
    ini = write_ini(tmp_dir, settings)
    result = pbeaker(ini, 'purge-sessions')
    assert result.returncode == 0, result.stderr
    assert result.stdout == ('Deleted 3 expired sessions (file store, idle for more '
                             'than 60 s).\n')
    assert 'purging' not in result.stderr  # not a terminal: no progress bar
    for session_id in live:
        assert factory.store.load(session_id).data['n'] == live.index(session_id)
    for session_id in expired:
        assert factory.store.load(session_id) is None
    again = pbeaker(ini, 'purge-sessions')
    assert again.stdout.startswith('Deleted 0 expired sessions')


def run_in_terminal(args):
    """Run pbeaker with stderr on a pseudo-terminal; return (status, stdout, terminal)."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, '-m', 'pyramid_beaker.scripts.pbeaker', *args],
        stdout=subprocess.PIPE, stderr=child, env=script_env())
    os.close(child)
    seen = b''
    deadline = time.monotonic() + RUN_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child side is closed
                break
            if not chunk:
                break
            seen += chunk
        stdout = process.communicate(timeout=RUN_TIMEOUT)[0]
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
            process.wait(RUN_TIMEOUT)
    return process.returncode, stdout.decode(), seen.decode(errors='replace')


def test_purge_draws_a_progress_bar_on_a_terminal_for_many_sessions(tmp_dir):
    settings = file_settings(tmp_dir)
    make_sessions(settings, live=501, expired=700)
    status, stdout, terminal = run_in_terminal([write_ini(tmp_dir, settings),
                                                'purge-sessions'])
    assert status == 0, terminal
    assert stdout.startswith('Deleted 700 expired sessions')
    assert '\rpurging file sessions [' in terminal
    assert '] 1201/1201' in terminal
    assert terminal.endswith('\n')


def test_purge_draws_no_progress_bar_for_few_sessions(tmp_dir):
    settings = file_settings(tmp_dir)
    make_sessions(settings, live=1, expired=1)
    status, stdout, terminal = run_in_terminal([write_ini(tmp_dir, settings),
                                                'purge-sessions'])
    assert status == 0
    assert stdout.startswith('Deleted 1 expired session ')
    assert 'purging' not in terminal


def test_purge_memory_sessions_has_nothing_to_do(tmp_dir):
    ini = write_ini(tmp_dir, {'session.type': 'memory', 'session.secret': SESSION_SECRET})
    result = pbeaker(ini, 'purge-sessions')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('Nothing to purge: memory sessions live inside')


def test_purge_redis_sessions_expire_by_ttl(tmp_dir, redis_url):
    ini = write_ini(tmp_dir, {'session.type': 'ext:redis', 'session.url': redis_url,
                              'session.secret': SESSION_SECRET})
    result = pbeaker(ini, 'purge-sessions')
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'Nothing to purge: the ext:redis store expires sessions by itself.\n'


def test_purge_cookie_sessions_has_nothing_to_do(tmp_dir):
    ini = write_ini(tmp_dir, {'session.type': 'cookie', 'session.secret': SESSION_SECRET})
    result = pbeaker(ini, 'purge-sessions')
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'Nothing to purge: the cookie store expires sessions by itself.\n'


def test_another_session_factory(tmp_dir):
    ini = write_ini(tmp_dir, {'test.pyramid_session': 'true'})
    result = pbeaker(ini, 'show')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('Session: pyramid.session.')
    assert '  (not a pyramid_beaker session factory)\n' in result.stdout
    assert_one_line_error(pbeaker(ini, 'purge-sessions'),
                          "the app's session factory is not a pyramid_beaker one")


def test_purge_database_sessions(tmp_dir, postgres_url):
    settings = {'session.type': 'ext:database', 'session.url': postgres_url,
                'session.secret': SESSION_SECRET, 'session.timeout': '60',
                'session.table_name': 'pbeaker_test_sessions_%d' % os.getpid()}
    factory, (live, expired) = make_sessions(settings, live=2, expired=2)
    try:
        result = pbeaker(write_ini(tmp_dir, settings), 'purge-sessions')
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith('Deleted 2 expired sessions (ext:database store')
        assert [factory.store.load(i) is not None for i in live + expired] == [
            True, True, False, False]
    finally:
        import sqlalchemy as sa

        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(sa.text('DROP TABLE IF EXISTS %s' % settings['session.table_name']))
        engine.dispose()


def test_purge_with_an_unreachable_database_fails_in_one_line(tmp_dir):
    ini = write_ini(tmp_dir, {
        'session.type': 'ext:database',
        'session.url': 'postgresql+psycopg://postgres:pw-not-shown@127.0.0.1:9/test',
        'session.secret': SESSION_SECRET,
    })
    result = pbeaker(ini, 'purge-sessions')
    assert_one_line_error(result, 'cannot purge the ext:database sessions')
    assert 'pw-not-shown' not in result.stderr


# -- clear-region --------------------------------------------------------------

def cache_files(tmp_dir):
    found = []
    for root, _, names in os.walk(os.path.join(tmp_dir, 'cache', 'cache')):
        found.extend(os.path.join(root, name) for name in names)
    return found


def check_clear_region(ini, after_clear=None):
    """Fill both regions through the app, clear ``stored``; ``other`` survives."""
    app = webtest.TestApp(get_app(ini))
    start = dict(computed)
    assert app.get('/math?x=3').text == '9 27'
    assert app.get('/math?x=4').text == '16 64'
    assert app.get('/math?x=3').text == '9 27'
    assert computed == {'square': start['square'] + 2, 'cube': start['cube'] + 2}

    result = pbeaker(ini, 'clear-region', 'stored')
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("Cleared cache region 'stored': 1 namespace "
                             "(stored:tests.test_pbeaker.square).\n")
    if after_clear is not None:
        after_clear()
    assert app.get('/math?x=3').text == '9 27'
    assert app.get('/math?x=4').text == '16 64'
    # square was computed again, cube came from its untouched region.
    assert computed == {'square': start['square'] + 4, 'cube': start['cube'] + 2}


def test_clear_region_empties_one_region_only(tmp_dir):
    ini = write_ini(tmp_dir, file_settings(tmp_dir))

    def after_clear():
        # Both regions share cache.data_dir: only 'other' keeps its two files.
        assert len(cache_files(tmp_dir)) == 2

    check_clear_region(ini, after_clear)
    assert len(cache_files(tmp_dir)) == 4


def test_clear_region_without_the_introspector(tmp_dir):
    settings = dict(file_settings(tmp_dir), **{'test.no_introspection': 'true'})
    check_clear_region(write_ini(tmp_dir, settings))


def test_clear_region_on_dbm(tmp_dir):
    ini = write_ini(tmp_dir, file_settings(tmp_dir, **{'cache.type': 'dbm'}))
    check_clear_region(ini)


def test_clear_region_on_a_database(tmp_dir, postgres_url):
    table = 'pbeaker_test_cache_%d' % os.getpid()
    ini = write_ini(tmp_dir, {
        'cache.regions': 'stored, other', 'cache.type': 'ext:database',
        'cache.url': postgres_url, 'cache.secret': CACHE_SECRET,
        'cache.table_name': table})
    try:
        check_clear_region(ini)
    finally:
        import sqlalchemy as sa

        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(sa.text('DROP TABLE IF EXISTS %s' % table))
        engine.dispose()


def test_clear_region_on_redis(tmp_dir, redis_url):
    import redis

    prefix = 'pbeaker-test-%d:' % os.getpid()
    settings = {'cache.regions': 'stored, other', 'cache.type': 'ext:redis',
                'cache.url': redis_url, 'cache.secret': CACHE_SECRET,
                'cache.key_prefix': prefix}
    ini = write_ini(tmp_dir, settings)
    app = webtest.TestApp(get_app(ini))
    client = redis.Redis.from_url(redis_url)
    try:
        app.get('/math?x=5')
        assert len(client.keys(prefix + 'cache:*')) == 2
        result = pbeaker(ini, 'clear-region', 'other')
        assert result.returncode == 0, result.stderr
        remaining = client.keys(prefix + 'cache:*')
        assert len(remaining) == 1
        assert remaining[0].startswith((prefix + 'cache:stored%3A').encode())
    finally:
        stale = client.keys(prefix + '*')
        if stale:
            client.delete(*stale)
        client.close()


def test_clear_region_without_cached_functions(tmp_dir):
    settings = file_settings(tmp_dir, **{'cache.regions': 'stored, other, quick, unused'})
    result = pbeaker(write_ini(tmp_dir, settings), 'clear-region', 'unused')
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('Nothing to clear: no cached function')


def test_clear_unknown_region_fails(tmp_dir):
    result = pbeaker(write_ini(tmp_dir, file_settings(tmp_dir)), 'clear-region', 'nope')
    assert_one_line_error(result, "no cache region named 'nope'",
                          'configured: other, quick, stored')


def test_clear_memory_region_fails(tmp_dir):
    result = pbeaker(write_ini(tmp_dir, file_settings(tmp_dir)), 'clear-region', 'quick')
    assert_one_line_error(result, "cache region 'quick' is kept in the memory")


def test_clear_memcached_region_fails(tmp_dir):
    settings = {'cache.regions': 'stored, other', 'cache.type': 'ext:memcached',
                'cache.url': '127.0.0.1:11211', 'cache.secret': CACHE_SECRET}
    result = pbeaker(write_ini(tmp_dir, settings), 'clear-region', 'stored')
    assert_one_line_error(result, "cannot clear cache region 'stored' (pyramid_beaker."
                          "memcached)", 'NotImplementedError')


def test_clear_region_on_unreachable_redis_fails(tmp_dir):
    settings = {'cache.regions': 'stored, other', 'cache.type': 'ext:redis',
                'cache.url': 'redis://127.0.0.1:9/0', 'cache.secret': CACHE_SECRET}
    result = pbeaker(write_ini(tmp_dir, settings), 'clear-region', 'stored')
    assert_one_line_error(result, "cannot clear cache region 'stored'")


# -- errors and the command line -----------------------------------------------

def test_missing_ini_file_fails(tmp_dir):
    result = pbeaker(os.path.join(tmp_dir, 'missing.ini'), 'show')
    assert_one_line_error(result, 'cannot load the app from', 'missing.ini')


def test_ini_without_an_app_fails(tmp_dir):
    path = os.path.join(tmp_dir, 'empty.ini')
    with open(path, 'w') as f:
        f.write('[server:main]\nuse = egg:waitress#main\n')
    assert_one_line_error(pbeaker(path, 'show'), 'cannot load the app from')


def test_bad_setting_fails_naming_the_key(tmp_dir):
    ini = write_ini(tmp_dir, file_settings(tmp_dir, **{'session.timeout': 'abc'}))
    result = pbeaker(ini, 'purge-sessions')
    assert_one_line_error(result, 'ConfigurationError', '"session.timeout"', "'abc'")


def test_unknown_command_is_a_usage_error(tmp_dir):
    ini = write_ini(tmp_dir, file_settings(tmp_dir))
    result = pbeaker(ini, 'explode')
    assert result.returncode == 2
    assert 'usage: pbeaker' in result.stderr
    assert 'Traceback' not in result.stderr
    assert pbeaker().returncode == 2
    assert pbeaker(ini, 'clear-region').returncode == 2  # NAME is missing


def test_ini_variables_follow_the_command(tmp_dir):
    settings = file_settings(tmp_dir, **{'session.key': '%(cookie)s'})
    ini = write_ini(tmp_dir, settings)
    result = pbeaker(ini, 'show', 'cookie=from_the_command_line')
    assert result.returncode == 0, result.stderr
    assert 'from_the_command_line' in result.stdout


def test_a_variable_without_equals_sign_is_a_usage_error(tmp_dir):
    ini = write_ini(tmp_dir, file_settings(tmp_dir))
    result = pbeaker(ini, 'show', 'no-equals-sign')
    assert result.returncode == 2
    assert 'usage: pbeaker' in result.stderr and 'no "="' in result.stderr
    assert result.stdout == ''


def test_clear_region_usage_shows_variables_as_optional(tmp_dir):
    result = pbeaker(write_ini(tmp_dir, file_settings(tmp_dir)), 'clear-region')
    assert result.returncode == 2
    usage = [line for line in result.stderr.splitlines() if 'usage:' in line]
    assert usage == ['usage: pbeaker CONFIG_URI clear-region [-h] NAME [NAME=VALUE ...]']
    error = [line for line in result.stderr.splitlines() if 'error:' in line]
    assert len(error) == 1 and error[0].endswith('the following arguments are required: NAME')


def test_output_into_a_closed_pipe_ends_quietly(tmp_dir):
    """``pbeaker app.ini show | head -1``: the reader leaves early."""
    ini = write_ini(tmp_dir, file_settings(tmp_dir))
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line
    try:
        result = subprocess.run(
            [sys.executable, '-m', 'pyramid_beaker.scripts.pbeaker', ini, 'show'],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT,
            env=script_env())
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert 'BrokenPipe' not in result.stderr and 'Traceback' not in result.stderr
    assert error_lines(result) == []


def test_show_prints_every_effective_default(tmp_dir):
    settings = file_settings(tmp_dir)
    del settings['session.lock_dir']
    result = pbeaker(write_ini(tmp_dir, settings), 'show')
    assert result.returncode == 0, result.stderr
    session = result.stdout.split('\n\n')[0]
    options = dict(line.split(None, 1) for line in session.splitlines()[1:])
    assert options['refresh_interval'] == '6'  # a tenth of the 60 s timeout
    assert options['lock_dir'] == os.path.join(tmp_dir, 'sessions')
    assert options['timeout'] == '60'


def test_installed_console_script(tmp_dir):
    script = shutil.which('pbeaker', path=os.path.dirname(sys.executable))
    if script is None:
        if os.environ.get('CI'):
            pytest.fail('the pbeaker console script is not installed')
        pytest.skip('the pbeaker console script is not installed (pip install -e .)')
    result = subprocess.run([script, '--help'], capture_output=True, text=True,
                            timeout=RUN_TIMEOUT)
    assert result.returncode == 0
    assert 'purge-sessions' in result.stdout and 'clear-region NAME' in result.stdout
