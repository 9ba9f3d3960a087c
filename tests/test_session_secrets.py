"""Secret rotation (``secret_fallbacks``) and encryption at rest (``encrypt_key``)."""
import pytest
from beaker import cache as beaker_cache

from pyramid_beaker.session import BeakerSessionFactoryConfig, session_factory_from_settings
from pyramid_beaker.settings import region_options

from .helpers import COOKIE, cookie_id
from .session_app import make_app
from .session_stores import KINDS, SERVER_SIDE, store_options, stored_bytes
from .test_session_edges import raw_get

OLD, NEW = 'the-old-secret-0123456789', 'the-new-secret-9876543210'
CARD = '4111111111111111'


def sharing(factory, other):
    """Memory stores live in their factory: let ``factory`` use ``other``'s."""
    if factory.options['type'] == 'memory':
        factory.store = other.store
    return factory


@pytest.mark.parametrize('kind', KINDS)
def test_rotating_the_secret_logs_nobody_out(kind, tmp_dir, request, factories):
    options = store_options(kind, tmp_dir, request, secret=OLD)
    before = factories(**options)
    app = make_app(before)
    app.get('/set', {'user': 'alice'})
    old_cookie = app.cookies[COOKIE]

    rotated = sharing(factories(**dict(options, secret=NEW, secret_fallbacks=[OLD])), before)
    response = raw_get(make_app(rotated), '/get', '%s=%s' % (COOKIE, old_cookie))
    assert response.json['data'] == {'user': 'alice'}
    new_cookie = response.headers['Set-Cookie'].split(';')[0].partition('=')[2]
    assert new_cookie != old_cookie  # signed anew with the new secret

    # Once re-signed, the old secret is no longer needed, for the cookie or the record.
    only_new = sharing(factories(**dict(options, secret=NEW)), before)
    response = raw_get(make_app(only_new), '/get', '%s=%s' % (COOKIE, new_cookie))
    assert response.json['data'] == {'user': 'alice'}
    # Without the fallback, what the old secret signed reads as nothing.
    stale = raw_get(make_app(only_new), '/get', '%s=%s' % (COOKIE, old_cookie))
    assert stale.json['data'] == {}


def test_fallbacks_in_an_ini_file_are_whitespace_separated():
    factory = session_factory_from_settings({
        'session.secret': NEW, 'session.secret_fallbacks': '\n  %s\n  older-one' % OLD})
    assert factory.options['secret_fallbacks'] == (OLD, 'older-one')


def test_fallbacks_must_be_secrets():
    from pyramid.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match='"secret_fallbacks" must be a list'):
        BeakerSessionFactoryConfig(secret=NEW, secret_fallbacks=42)


def test_cache_entries_signed_with_an_old_secret_are_read(tmp_dir):
    settings = {'cache.type': 'file', 'cache.data_dir': tmp_dir, 'cache.secret': NEW,
                'cache.secret_fallbacks': OLD}
    options = region_options(settings, 'r')
    assert options['secret_fallbacks'] == (OLD,)
    old = beaker_cache.Cache('ns', type='pyramid_beaker.file', data_dir=tmp_dir, secret=OLD)
    old.put('k', 'cached by the old secret')
    rotated = beaker_cache.Cache('ns', type='pyramid_beaker.file', data_dir=tmp_dir,
                                 secret=NEW, secret_fallbacks=(OLD,))
    assert rotated.get('k') == 'cached by the old secret'
    without = beaker_cache.Cache('ns', type='pyramid_beaker.file', data_dir=tmp_dir, secret=NEW)
    assert not without.has_key('k')  # noqa: W601 (Beaker's API)


# -- encryption at rest ------------------------------------------------------------

STORED_ENCRYPTED = [kind for kind in SERVER_SIDE if kind != 'memory']


@pytest.mark.parametrize('kind', STORED_ENCRYPTED)
def test_encrypt_key_encrypts_every_stored_session(kind, tmp_dir, request, factories):
    options = store_options(kind, tmp_dir, request, encrypt_key='at-rest-key')
    app = make_app(factories(**options))
    app.get('/set', {'card': CARD})
    session_id = cookie_id(app.cookies[COOKIE])
    raw = stored_bytes(options, session_id)
    assert raw and CARD.encode() not in raw
    assert app.get('/get').json['data'] == {'card': CARD}
    # Another key cannot read it: a fresh session, not an error.
    other = make_app(factories(**dict(options, encrypt_key='another-key')))
    assert raw_get(other, '/get', '%s=%s' % (COOKIE, app.cookies[COOKIE])).json['data'] == {}


@pytest.mark.parametrize('kind', STORED_ENCRYPTED)
def test_sessions_stored_in_clear_are_encrypted_when_read(kind, tmp_dir, request, factories):
    options = store_options(kind, tmp_dir, request)
    app = make_app(factories(**options))
    app.get('/set', {'card': CARD})
    session_id = cookie_id(app.cookies[COOKIE])
    assert CARD.encode() in stored_bytes(options, session_id)  # the test can see clear text
    encrypted = make_app(factories(**dict(options, encrypt_key='at-rest-key')))
    cookie = '%s=%s' % (COOKIE, app.cookies[COOKIE])
    assert raw_get(encrypted, '/get', cookie).json['data'] == {'card': CARD}
    if kind in ('file', 'dbm'):  # dbm and file may keep old bytes in free space
        return
    assert CARD.encode() not in stored_bytes(options, session_id)
