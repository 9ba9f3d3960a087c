"""``migrate_from = beaker``: sessions written by Beaker's own classes are read
(with a restricted unpickler) and saved again in this package's format."""
import os
import pickle

import pytest
from beaker.session import CookieSession
from beaker.session import Session as BeakerSession

from pyramid_beaker.migrate import NotPlainData, restricted_loads

from .helpers import COOKIE, Trap, armed_pickle, cookie_id
from .session_app import SECRET, make_app
from .session_stores import _drop_table, store_options
from .test_session_edges import build_app, raw_get

MIGRATED = ['file', 'dbm', 'ext:redis', 'ext:memcached', 'ext:database']


def beaker_session(options, request, **extra):
    """A session saved by Beaker's own Session class; return its cookie header."""
    args = {'secret': SECRET, 'key': COOKIE}
    if options['type'] in ('file', 'dbm'):
        args['data_dir'] = options['data_dir']
    if options['type'] in ('ext:redis', 'ext:memcached'):
        args['url'] = options['url']
    if options['type'] == 'ext:database':
        # Beaker's own table, apart from ours (the test drops both).
        args.update(url=options['url'], table_name=options['table_name'] + '_beaker')
        options['migrate_table_name'] = args['table_name']
        request.addfinalizer(lambda: _drop_table(options['url'], args['table_name']))
    args.update(extra)
    if options['type'] == 'cookie':
        session = CookieSession({}, **args)
    else:
        session = BeakerSession({}, use_cookies=True, type=options['type'], **args)
    session['user'] = 'alice'
    session['basket'] = {'flask': 2}
    session.save()
    return session.request['cookie_out'].split(';')[0]


@pytest.mark.parametrize('kind', MIGRATED)
def test_beaker_sessions_are_read_and_saved_again_under_a_new_id(
        kind, tmp_dir, request, factories):
    options = store_options(kind, tmp_dir, request, migrate_from='beaker')
    old_cookie = beaker_session(options, request)
    app = make_app(factories(**options))
    response = raw_get(app, '/get', old_cookie)
    assert response.json['data'] == {'user': 'alice', 'basket': {'flask': 2}}
    new_cookie = response.headers['Set-Cookie'].split(';')[0]
    assert cookie_id(new_cookie) != old_cookie.partition('=')[2][40:]
    # The new cookie opens the session in this package's own format.
    plain = make_app(factories(**dict(options, migrate_from=None)))
    assert raw_get(plain, '/get', new_cookie).json['data'] == {
        'user': 'alice', 'basket': {'flask': 2}}


@pytest.mark.parametrize('kind', MIGRATED)
def test_without_migrate_from_beaker_sessions_are_not_read(kind, tmp_dir, request, factories):
    options = store_options(kind, tmp_dir, request)
    old_cookie = beaker_session(options, request)
    assert raw_get(make_app(factories(**options)), '/get', old_cookie).json['data'] == {}


def test_beaker_cookie_sessions_are_migrated(tmp_dir, request, factories):
    options = store_options('cookie', tmp_dir, request, migrate_from='beaker')
    old_cookie = beaker_session(options, request, validate_key=SECRET)
    response = raw_get(make_app(factories(**options)), '/get', old_cookie)
    assert response.json['data'] == {'user': 'alice', 'basket': {'flask': 2}}
    assert response.headers['Set-Cookie'].split(';')[0] != old_cookie


@pytest.mark.parametrize('kind', ['file', 'ext:redis'])
def test_a_planted_pickle_in_a_beaker_store_runs_nothing(kind, tmp_dir, request, factories):
    options = store_options(kind, tmp_dir, request, migrate_from='beaker')
    payload, marker = armed_pickle(tmp_dir)
    old_cookie = beaker_session(options, request)
    session_id = old_cookie.partition('=')[2][40:]
    # Overwrite what Beaker stored with an armed pickle, outer and inner.
    import base64

    inner = base64.b64encode(payload)
    if kind == 'file':
        path = os.path.join(options['data_dir'], 'container_file', session_id[0],
                            session_id[:2], session_id + '.cache')
        with open(path, 'wb') as f:
            f.write(pickle.dumps({'session': inner}))
    else:
        import redis

        client = redis.Redis.from_url(options['url'])
        client.set('beaker_cache:%s:session' % session_id, payload)
        client.close()
    response = raw_get(make_app(factories(**options)), '/get', old_cookie)
    assert response.status_int == 200 and response.json['data'] == {}
    assert not os.path.exists(marker)
    if kind == 'ext:redis':
        client = redis.Redis.from_url(options['url'])
        client.delete('beaker_cache:%s:session' % session_id)
        client.close()


@pytest.mark.parametrize('value', [
    {'a': [1, 2.5, None, True, b'x', ('t',)]},
    {'when': __import__('datetime').datetime(2020, 1, 2, 3, 4, 5)},
])
def test_the_restricted_unpickler_reads_plain_data(value):
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        assert restricted_loads(pickle.dumps(value, protocol)) == value


def test_the_restricted_unpickler_refuses_everything_else(tmp_dir):
    payload, marker = armed_pickle(tmp_dir)
    with pytest.raises(NotPlainData):
        restricted_loads(payload)
    assert not os.path.exists(marker)
    with pytest.raises(NotPlainData):
        restricted_loads(pickle.dumps(Trap))


def beaker_record_exists(options, session_id):
    """True while Beaker's store still holds the session ``session_id``."""
    from pyramid_beaker.migrate import BeakerReader

    return BeakerReader(options).read(session_id) is not None


@pytest.mark.parametrize('kind', MIGRATED)
def test_a_beaker_session_is_migrated_once(kind, tmp_dir, request, factories):
    options = store_options(kind, tmp_dir, request, migrate_from='beaker')
    old_cookie = beaker_session(options, request)
    old_id = old_cookie.partition('=')[2][40:]
    app = make_app(factories(**options))
    migrated = raw_get(app, '/get', old_cookie)
    assert migrated.json['data'] == {'user': 'alice', 'basket': {'flask': 2}}
    assert not beaker_record_exists(options, old_id)
    # The user logs out of the migrated session; the old cookie, replayed,
    # opens nothing.
    new_cookie = migrated.headers['Set-Cookie'].split(';')[0]
    assert raw_get(app, '/invalidate', new_cookie).status_int == 200
    replayed = raw_get(app, '/get', old_cookie)
    assert replayed.json['data'] == {}
    assert 'Set-Cookie' not in replayed.headers or \
        cookie_id(replayed.headers['Set-Cookie'].split(';')[0]) != cookie_id(new_cookie)


@pytest.mark.parametrize('kind', MIGRATED)
def test_logging_out_while_migrating_deletes_the_beaker_session(
        kind, tmp_dir, request, factories):
    options = store_options(kind, tmp_dir, request, migrate_from='beaker')
    old_cookie = beaker_session(options, request)
    app = make_app(factories(**options))
    raw_get(app, '/invalidate', old_cookie)
    assert not beaker_record_exists(options, old_cookie.partition('=')[2][40:])
    assert raw_get(app, '/get', old_cookie).json['data'] == {}


def test_a_failed_delete_of_the_beaker_session_is_logged_and_harmless(
        tmp_dir, request, factories, caplog):
    import sqlalchemy as sa

    options = store_options('ext:database', tmp_dir, request, migrate_from='beaker')
    old_cookie = beaker_session(options, request)
    beaker_table = options['migrate_table_name']
    moved = beaker_table + '_moved'
    request.addfinalizer(lambda: _drop_table(options['url'], moved))

    def break_beaker_table(req):
        data = dict(req.session)  # read from Beaker's table ...
        engine = sa.create_engine(options['url'])
        with engine.begin() as conn:  # ... which then goes away
            conn.execute(sa.text('ALTER TABLE %s RENAME TO %s' % (beaker_table, moved)))
        engine.dispose()
        return {'data': data}

    app = build_app(factories(**options), {'break': break_beaker_table})
    with caplog.at_level('WARNING', logger='pyramid_beaker'):
        response = raw_get(app, '/hook/break', old_cookie)
    assert response.status_int == 200
    assert response.json['data'] == {'user': 'alice', 'basket': {'flask': 2}}
    assert any('Beaker session' in r.getMessage() and 'delete' in r.getMessage()
               for r in caplog.records)
    new_cookie = response.headers['Set-Cookie'].split(';')[0]
    assert raw_get(app, '/get', new_cookie).json['data'] == {
        'user': 'alice', 'basket': {'flask': 2}}
