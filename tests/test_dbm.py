"""The dbm backend: sessions and cache regions in dbm files of a temporary directory."""
import dbm
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from beaker import cache as beaker_cache
from pyramid.exceptions import ConfigurationError

from pyramid_beaker.session import session_factory_from_settings
from pyramid_beaker.stores import find_backend
from pyramid_beaker.stores.base import SessionBackendError
from pyramid_beaker.stores.dbm import DBMNamespaceManager, DBMSessionStore

from .helpers import (
    CODEC,
    COOKIE,
    armed_pickle,
    compute_together,
    cookie_id,
    http_get,
    new_id,
    planted_payloads,
    run_together,
    session_settings,
    share_a_session,
    signed_cache,
    write_concurrently,
    written,
)
from .servers import AppProcess
from .session_app import SECRET, make_app

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def data_dir(tmp_dir):
    return os.path.join(tmp_dir, 'data')


@pytest.fixture
def store(data_dir):
    return DBMSessionStore({'data_dir': data_dir}, CODEC)


# -- the session store ---------------------------------------------------------

def test_backend_descriptor():
    backend, name = find_backend('dbm')
    assert name == 'dbm'
    assert backend.session_store is DBMSessionStore
    assert backend.namespace_manager is DBMNamespaceManager
    assert backend.beaker_name == 'pyramid_beaker.dbm'
    assert beaker_cache.clsmap['pyramid_beaker.dbm'] is DBMNamespaceManager
    assert set(backend.options) == {'data_dir', 'lock_dir'}
    assert backend.location == ('data_dir',)
    assert not backend.process_local


def test_round_trip_merge_and_delete(store, data_dir):
    sid = new_id()
    assert store.load(sid) is None  # no file yet: reads as empty
    now = time.time()
    store.save(sid, {'a': 1, 'b': [1, 2]}, frozenset(), now - 10, now, 600)
    store.save(sid, {'c': 'é'}, frozenset({'a', 'missing'}), now, now + 1, 600)
    record = store.load(sid)
    assert record.data == {'b': [1, 2], 'c': 'é'}
    assert (record.created, record.accessed) == (now - 10, now + 1)
    assert dbm.whichdb(os.path.join(data_dir, 'sessions'))
    assert os.path.exists(os.path.join(data_dir, 'sessions.lock'))
    with dbm.open(os.path.join(data_dir, 'sessions'), 'r') as db:
        assert db[sid][16:].startswith(b'PB1')
    store.delete(sid)
    assert store.load(sid) is None
    store.delete(sid)  # absent: no error


def test_lock_dir_holds_the_lock_file(tmp_dir):
    store = DBMSessionStore({'data_dir': os.path.join(tmp_dir, 'd'),
                             'lock_dir': os.path.join(tmp_dir, 'l')}, CODEC)
    store.save(new_id(), {'a': 1}, frozenset(), 1.0, time.time(), 60)
    assert os.listdir(os.path.join(tmp_dir, 'l')) == ['sessions.lock']
    assert 'sessions.lock' not in os.listdir(os.path.join(tmp_dir, 'd'))


def test_expiry_and_touch(store):
    expired, touched = new_id(), new_id()
    now = time.time()
    store.save(expired, {'old': 1}, frozenset(), now - 100, now - 100, 50)
    store.save(touched, {'t': 1}, frozenset(), now - 100, now - 100, 150)
    assert store.load(expired) is None
    store.touch(expired, now, 600)  # an expired session is not revived
    assert store.load(expired) is None
    store.save(expired, {'new': 2}, frozenset(), now, now, 600)
    assert store.load(expired).data == {'new': 2}  # old keys do not come back

    store.touch(touched, now, 600)
    record = store.load(touched)
    assert (record.data, record.created, record.accessed) == ({'t': 1}, now - 100, now)
    absent = new_id()
    store.touch(absent, now, 600)
    assert store.load(absent) is None


def test_purge_expired_keeps_live_sessions_and_compacts(store, data_dir):
    now = time.time()
    big = 'x' * 5000
    for n in range(60):
        store.save('%032x' % n, {'pad': big}, frozenset(), now - 500, now - 500, 100)
    store.save('b' * 32, {'expired': 1}, frozenset(), now - 50, now - 50, 10)
    store.save('c' * 32, {'live': 1}, frozenset(), now - 50, now - 50, 10_000)

    def size():
        # dbm.sqlite3 (Python 3.13+) writes "sessions"; gdbm, ndbm and
        # dbm.dumb write "sessions.<suffix>" files.
        return sum(os.path.getsize(os.path.join(data_dir, name))
                   for name in os.listdir(data_dir)
                   if name == 'sessions' or name.startswith('sessions.'))

    before = size()
    calls = []
    assert store.purge_expired(100, now, progress=lambda *args: calls.append(args)) == 61
    assert calls == [(62, 62)]
    assert store.load('c' * 32).data == {'live': 1}
    assert store.load('%032x' % 0) is None
    assert size() < before / 10
    assert sorted(name for name in os.listdir(data_dir) if '.new' in name) == []
    assert store.purge_expired(100, now) == 0
    store.save('d' * 32, {'after': 1}, frozenset(), now, now, 600)
    assert store.load('d' * 32).data == {'after': 1}


def test_concurrent_saves_to_one_session_all_survive(store, data_dir):
    other = DBMSessionStore({'data_dir': data_dir}, CODEC)
    writers = 16
    for attempt in range(3):
        sid, now = new_id(), time.time()
        store.save(sid, {'keep': attempt, 'drop': 1}, frozenset(), now, now, 600)

        def write(n):
            (store if n % 2 else other).save(
                sid, {'k%d' % n: n}, frozenset({'drop'}), now, now + n, 600)

        assert run_together(writers, write) == []
        expected = {'k%d' % n: n for n in range(writers)}
        expected['keep'] = attempt
        assert store.load(sid).data == expected


WRITER = '''
import sys, time
sys.path.insert(0, sys.argv[1])
from pyramid_beaker.codec import SignedCodec
from pyramid_beaker.stores.dbm import DBMSessionStore
store = DBMSessionStore({'data_dir': sys.argv[2]}, SignedCodec('json', sys.argv[3], 'session'))
start = float(sys.argv[5])
while time.time() < start:
    time.sleep(0.001)
for n in range(10):
    store.save(sys.argv[4], {'%s-%d' % (sys.argv[6], n): n}, frozenset(), start, start, 600)
'''


def test_concurrent_processes_all_keep_their_keys(store, data_dir):
    sid = new_id()
    start = time.time() + 1.0
    processes = [
        subprocess.Popen([sys.executable, '-c', WRITER, os.path.dirname(HERE), data_dir,
                          SECRET, sid, repr(start), 'p%d' % p])
        for p in range(4)]
    for process in processes:
        assert process.wait(timeout=60) == 0
    expected = {'p%d-%d' % (p, n): n for p in range(4) for n in range(10)}
    assert store.load(sid).data == expected


STEP = '''
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pyramid_beaker.codec import SignedCodec
from pyramid_beaker.stores.dbm import DBMSessionStore
store = DBMSessionStore({'data_dir': sys.argv[2]}, SignedCodec('json', sys.argv[3], 'session'))
now = time.time()
for session_id, key in zip(sys.argv[4::2], sys.argv[5::2]):
    store.save(session_id, {key: 'x' * 50}, frozenset({'gone'}), now, now, 600)
print(json.dumps([store.load(session_id).data for session_id in sys.argv[4::2]]))
'''


def other_process_saves(data_dir, *pairs):
    """Save ``{key: 'x' * 50}`` for each (id, key) in another process; return what it read."""
    done = subprocess.run([sys.executable, '-c', STEP, os.path.dirname(HERE), data_dir,
                           SECRET] + [part for pair in pairs for part in pair],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_reads_between_writes_of_other_processes_stay_current(store, data_dir):
    # This process keeps the database open between operations; another
    # process's writes (new entries, and values moved within the data file)
    # must be seen, and must survive this process's next write.
    now = time.time()
    mine, theirs = new_id(), new_id()
    store.save(mine, {'a': 1, 'gone': 1}, frozenset(), now, now, 600)
    assert store.load(mine).data == {'a': 1, 'gone': 1}
    other_process_saves(data_dir, (mine, 'b'), (theirs, 't1'))
    assert store.load(mine).data == {'a': 1, 'b': 'x' * 50}
    assert store.load(theirs).data == {'t1': 'x' * 50}
    store.save(new_id(), {'c': 3}, frozenset(), now, now, 600)
    store.save(theirs, {'mine': 1}, frozenset(), now, now, 600)
    assert other_process_saves(data_dir, (theirs, 't2')) == [
        {'t1': 'x' * 50, 't2': 'x' * 50, 'mine': 1}]
    assert store.load(theirs).data == {'t1': 'x' * 50, 't2': 'x' * 50, 'mine': 1}
    assert store.load(mine).data == {'a': 1, 'b': 'x' * 50}
    assert store.purge_expired(600, now + 10_000) == 3
    assert store.load(mine) is None
    other_process_saves(data_dir, (mine, 'again'))
    assert store.load(mine).data == {'again': 'x' * 50}


def test_planted_pickles_are_never_loaded(store, data_dir, tmp_dir):
    payloads, marker = planted_payloads(tmp_dir)
    header = b'\0' * 8 + b'\x7f\xf0' + b'\0' * 6  # accessed 0, expires +inf
    for planted in payloads[:1] + [header + value for value in payloads]:
        sid, now = new_id(), time.time()
        store.save(sid, {'user': 'alice'}, frozenset(), now, now, 600)
        with dbm.open(os.path.join(data_dir, 'sessions'), 'w') as db:
            db[sid] = planted
        assert store.load(sid) is None
        store.touch(sid, now, 600)
        store.save(sid, {'user': 'bob'}, frozenset(), now, now, 600)
        assert store.load(sid).data == {'user': 'bob'}  # a fresh record
    assert not os.path.exists(marker)


def test_missing_data_dir_is_a_configuration_error():
    with pytest.raises(ConfigurationError,
                       match='"session.data_dir" is required for "session.type" = dbm'):
        session_factory_from_settings({'session.type': 'dbm', 'session.secret': SECRET})


def test_file_errors_raise_and_recover(store, data_dir):
    sid, now = new_id(), time.time()
    store.save(sid, {'a': 1}, frozenset(), now, now, 600)
    shutil.rmtree(data_dir)
    for call in (lambda: store.load(sid),
                 lambda: store.save(sid, {'b': 2}, frozenset(), now, now, 600),
                 lambda: store.purge_expired(600)):
        with pytest.raises(SessionBackendError, match='dbm session store .*sessions'):
            call()
    os.makedirs(data_dir)
    assert store.load(sid) is None
    store.save(sid, {'b': 2}, frozenset(), now, now, 600)
    assert store.load(sid).data == {'b': 2}


# -- cache regions ---------------------------------------------------------------

def make_cache(data_dir, namespace='ns', **options):
    return signed_cache('pyramid_beaker.dbm', namespace, data_dir=data_dir, **options)


def test_beaker_cache_round_trip(data_dir):
    cache = make_cache(data_dir, expire=300)
    manager = cache.namespace
    assert isinstance(manager, DBMNamespaceManager)
    assert 'k' not in cache  # nothing written yet
    cache.put('k', {'v': [1, 2]})
    assert cache.get('k') == {'v': [1, 2]}
    assert 'k' in cache
    assert manager.keys() == [b'k']
    # Beaker passes bytes keys, our decorator str keys: the same entry.
    assert manager.get_entry('k')[2] == manager.get_entry(b'k')[2] == {'v': [1, 2]}
    with dbm.open(manager.file.path, 'r') as db:
        assert db[b'k'].startswith(b'PB1')
    cache.remove_value('k')
    assert 'k' not in cache
    with pytest.raises(KeyError):
        cache.get('k')


def test_namespaces_have_their_own_files_and_clear(data_dir):
    one = make_cache(data_dir, namespace='a:b')
    two = make_cache(data_dir, namespace='a')
    one.put('c', 1)
    one.put('long key ' * 100, 2)
    two.put('b:c', 3)
    assert one.namespace.file.path != two.namespace.file.path
    one.clear()
    assert one.namespace.keys() == []
    assert 'c' not in one
    assert two.get('b:c') == 3
    one.put('c', 4)
    assert one.get('c') == 4


def test_cache_entries_expire(data_dir):
    cache = make_cache(data_dir, expire=1)
    cache.put('k', 'v')
    assert cache.get('k') == 'v'
    time.sleep(1.1)
    with pytest.raises(KeyError):
        cache.get('k')


def test_planted_pickle_in_the_cache_is_a_miss(data_dir, tmp_dir):
    payload, marker = armed_pickle(tmp_dir)
    cache = make_cache(data_dir, expire=60)
    cache.put('k', 'good')
    with dbm.open(cache.namespace.file.path, 'w') as db:
        db[b'k'] = payload
    assert 'k' not in cache
    assert cache.get('k', createfunc=lambda: 'fresh') == 'fresh'
    assert cache.get('k') == 'fresh'
    assert not os.path.exists(marker)


def test_get_with_createfunc_computes_once_across_threads(data_dir, tmp_dir):
    lock_dir = os.path.join(tmp_dir, 'locks')
    cache = make_cache(data_dir, expire=60, lock_dir=lock_dir)
    results, calls, errors = compute_together([cache] * 8, 'slow', 0.3)
    assert errors == []
    assert results == ['value'] * 8
    assert calls == 1
    assert os.listdir(lock_dir)  # the creation lock is a file lock there


# -- sessions through real apps ------------------------------------------------

def test_sessions_through_an_app(data_dir, tmp_dir):
    app = make_app(type='dbm', data_dir=data_dir)
    assert app.get('/set', {'a': '1', 'b': '2'}).json['data'] == {'a': '1', 'b': '2'}
    app.get('/mutate', {'op': 'del', 'key': 'a'})
    other = make_app(type='dbm', data_dir=data_dir)
    other.set_cookie(COOKIE, app.cookies[COOKIE])
    assert other.get('/get').json['data'] == {'b': '2'}
    sid = cookie_id(app.cookies[COOKIE])
    app.get('/invalidate')
    with dbm.open(os.path.join(data_dir, 'sessions'), 'r') as db:
        assert sid not in db

    app.get('/set', {'user': 'alice'})
    sid = cookie_id(app.cookies[COOKIE])
    payload, marker = armed_pickle(tmp_dir)
    with dbm.open(os.path.join(data_dir, 'sessions'), 'w') as db:
        db[sid] = payload
    assert app.get('/get').json['data'] == {}  # a fresh session
    assert not os.path.exists(marker)


def test_app_processes_share_sessions_and_keep_concurrent_writes(data_dir):
    settings = session_settings('dbm', data_dir=data_dir)
    writers = 16
    with AppProcess(settings) as one, AppProcess(settings) as two:
        _, first, last = share_a_session(one, two)
        assert first == {'a': '1'}
        assert last == {'b': '2'}

        for attempt in range(3):
            _, cookie = http_get(one.url + '/set?key=start&value=%d' % attempt)
            assert write_concurrently((two, one), cookie, writers) == []
            assert http_get(two.url + '/get', cookie)[0] == written(writers, start=attempt)


def test_creation_lock_is_one_file_lock_for_str_and_bytes_keys(data_dir, tmp_dir):
    lock_dir = os.path.join(tmp_dir, 'locks')
    manager = make_cache(data_dir, lock_dir=lock_dir).namespace
    mine, same = manager.get_creation_lock('k'), manager.get_creation_lock(b'k')
    assert mine.filename == same.filename
    assert mine.filename.startswith(lock_dir)
    assert manager.get_creation_lock('other').filename != mine.filename
