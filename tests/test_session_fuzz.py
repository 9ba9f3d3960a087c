"""Property test: any Cookie header gives a normal response and a fresh
session or the user's own, on every store type.

Hypothesis builds headers from junk cookies (any latin-1 text, quotes,
backslash escapes, non-UTF-8 bytes), forged session cookies (the victim's
id or any 32-hex id with a wrong or non-ASCII signature) and, sometimes,
the victim's real cookie.  Bounded: a modest number of examples per store
and a deadline per example.
"""
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from webob import Request
from webob.cookies import parse_cookie

from pyramid_beaker.session import BeakerSessionFactoryConfig, cookie_value

from .helpers import COOKIE, cookie_id
from .session_app import make_app
from .session_stores import KINDS, store_options

LATIN1 = st.characters(min_codepoint=0x20, max_codepoint=0xff) | st.just('\t')
HEX = st.text(alphabet='0123456789abcdef', min_size=32, max_size=32)


@pytest.fixture(params=KINDS)
def victim_app(request, tmp_dir):
    """(app, factory, the victim's cookie value) for one store type."""
    factory = BeakerSessionFactoryConfig(**store_options(request.param, tmp_dir, request))
    app = make_app(factory)
    app.get('/set', {'secret': 'victim-data'})
    yield app, factory, app.cookies[COOKIE]
    factory.store.close()


@st.composite
def cookie_headers(draw, victim):
    """A Cookie header (a latin-1 str) and whether it carries ``victim`` verbatim."""
    victim_id = cookie_id(victim)
    junk_pair = st.tuples(
        st.sampled_from([COOKIE, 'other', 'sid', '']) | st.text(LATIN1, max_size=8),
        st.text(LATIN1, max_size=40))
    forged = st.one_of(
        st.builds('{}.{}'.format, HEX | st.just(victim_id), st.text(LATIN1, max_size=40)),
        st.builds('"{}.\\{}"'.format, HEX, st.text('0123456789', max_size=6)),
        st.text(LATIN1, max_size=60))
    parts = draw(st.lists(st.one_of(
        junk_pair.map('='.join),
        forged.map(lambda value: COOKIE + '=' + value),
        st.just(COOKIE + '=' + victim)), max_size=5))
    separator = draw(st.sampled_from(['; ', ';', ', ', ' ']))
    header = separator.join(parts)
    if draw(st.booleans()):
        header = draw(st.text(LATIN1, max_size=80)) + header
    return header, victim in header


def _ids(text):
    return set(re.findall('[0-9a-f]{32}', text))


@settings(max_examples=40, deadline=10000, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_cookie_header_is_safe(victim_app, data):
    app, factory, victim = victim_app
    header, carries_victim = data.draw(cookie_headers(victim))
    request = Request.blank('/set?probe=1', environ={'HTTP_COOKIE': header})
    response = request.get_response(app.app)
    assert response.status_int == 200, response.text
    session = response.json['data']
    if session.get('secret') == 'victim-data':
        assert carries_victim  # only the victim's own cookie opens the victim's data
    else:
        assert session == {'probe': '1'}
    set_cookie = response.headers.get('Set-Cookie', '')
    if factory.client_side or session == {'probe': '1'}:  # else the victim's cookie stays
        assert set_cookie.startswith(COOKIE + '=')
    if not factory.client_side and session == {'probe': '1'}:
        new_id = cookie_id(set_cookie.split(';', 1)[0])
        assert new_id not in _ids(header)  # a fresh id, never one the client chose


def _webob_reading(header, name):
    """What webob's parser gives for ``name`` (the last one wins), as cookie_value says it."""
    found = None
    for key, value in parse_cookie(header):
        if key == name.encode('latin-1'):
            found = value
    if found is None:
        return None
    try:
        return found.decode('ascii')
    except UnicodeDecodeError:
        return ''


PLAINISH = st.text(alphabet=string.ascii_letters + string.digits
                   + "!#$%&'()*+-./:<=>?@^_`{|}~ ;,\"\\[]", max_size=60)


@settings(max_examples=300, deadline=None, database=None)
@given(pairs=st.lists(st.tuples(st.sampled_from([COOKIE, 'other', 'path', 'a b', '$x', 'k=']),
                                PLAINISH), max_size=4),
       separator=st.sampled_from(['; ', ';', ';  ', ', ']),
       name=st.sampled_from([COOKIE, 'other', 'path', 'Path']))
def test_cookie_value_reads_headers_as_webob_does(pairs, separator, name):
    header = separator.join('%s=%s' % pair for pair in pairs)
    assert cookie_value({'HTTP_COOKIE': header}, name) == _webob_reading(header, name)
