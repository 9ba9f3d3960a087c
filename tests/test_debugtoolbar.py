"""The pyramid_debugtoolbar panel, read through the toolbar's own pages (WebTest).

The browser test (tests/test_browser.py) shows the panel in Chromium; these
check what it records for misses and for a session that changes.
"""
import pytest
import webtest
from pyramid.config import Configurator

from .session_stores import store_options
from .test_example import PASSWORD, beaker_shop, csrf_token, ini_settings

pytest.importorskip('pyramid_debugtoolbar')


def make_app(tmp_dir, includes='pyramid_beaker pyramid_debugtoolbar'):
    settings = ini_settings('development.ini', tmp_dir)
    settings['pyramid.includes'] = includes
    return webtest.TestApp(beaker_shop.main({}, **settings),
                           extra_environ={'REMOTE_ADDR': '127.0.0.1'})


@pytest.fixture
def app(tmp_dir):
    return make_app(tmp_dir)


def last_panel(app):
    """The pyramid_beaker panel of the app's last request, as HTML."""
    page = app.get('/_debug_toolbar/')
    return page.html.select_one('#pDebugPanel-pyramid_beaker-content')


def cache_calls(panel):
    return [[cell.text for cell in row.select('td')][:4]
            for row in panel.select('#pyramid-beaker-cache-calls tbody tr')]


def session_rows(panel):
    return {row.select_one('th').text: row.select_one('td').text
            for row in panel.select('#pyramid-beaker-session tr')}


@pytest.mark.parametrize('includes', ['pyramid_beaker pyramid_debugtoolbar',
                                      'pyramid_debugtoolbar pyramid_beaker'])
def test_the_panel_is_added_whichever_is_included_first(tmp_dir, includes):
    app = make_app(tmp_dir, includes)
    app.get('/')
    page = app.get('/_debug_toolbar/')
    assert page.html.select_one('#pDebugPanel-pyramid_beaker') is not None


def test_no_panel_without_the_toolbar(tmp_dir):
    app = make_app(tmp_dir, 'pyramid_beaker')
    assert '_debug_toolbar' not in app.get('/').text
    app.get('/_debug_toolbar/', status=404)


def test_a_miss_is_recorded_with_its_key_and_then_a_hit(app):
    from beaker_shop import catalog

    catalog.load_products.invalidate()
    app.get('/')
    calls = cache_calls(last_panel(app))
    assert calls == [['beaker_shop.catalog.load_products', 'long_term', '()', 'miss']]
    app.get('/')
    assert cache_calls(last_panel(app))[0][3] == 'hit'


def test_a_request_that_does_not_touch_the_session(app):
    app.get('/no/such/page', status=404)  # the not-found page reads no session
    panel = last_panel(app)
    assert panel.select_one('#pyramid-beaker-no-cache-calls') is not None
    session = session_rows(panel)
    assert session['Used by the request'] == 'no' and session['Loaded'] == 'no'
    assert session['Round trips to the store'] == '0'


def test_the_session_work_of_a_login(app):
    form = app.get('/login')
    app.post('/login', {'username': 'alice', 'password': PASSWORD,
                        'csrf_token': csrf_token(form)}, status=303)
    panel = last_panel(app)
    session = session_rows(panel)
    assert session['Store'] == 'file' and session['Loaded'] == 'yes'
    changed = session['Keys changed'].split(', ')
    assert '_f_' in changed  # the welcome flash message
    operations = [row.select('td')[0].text
                  for row in panel.select('#pyramid-beaker-store-calls tbody tr')]
    assert operations[0] == 'load' and 'save' in operations
    assert session['Round trips to the store'] == str(len(operations))


def test_keys_set_without_a_load_are_shown_with_their_one_store_call(redis_url, request):
    """On Redis a request that only sets keys saves them without a load.
    (The toolbar's own session panel would load it: only ours is shown.)"""
    options = store_options('ext:redis', '', request)
    settings = {'session.' + name: value for name, value in options.items()}
    settings['pyramid.includes'] = 'pyramid_beaker pyramid_debugtoolbar'
    settings['debugtoolbar.panels'] = 'headers pyramid_beaker'

    def put(req):
        req.session['theme'] = req.params['theme']
        return {}

    config = Configurator(settings=settings)
    config.add_route('put', '/put')
    config.add_view(put, route_name='put', renderer='json')
    app = webtest.TestApp(config.make_wsgi_app(), extra_environ={'REMOTE_ADDR': '127.0.0.1'})
    app.get('/put', {'theme': 'light'})  # creates the session: a load finds no cookie
    app.get('/put', {'theme': 'dark'})
    session = session_rows(last_panel(app))
    assert session['Loaded'] == 'no' and session['Keys changed'] == 'theme'
    operations = [row.select('td')[0].text
                  for row in last_panel(app).select('#pyramid-beaker-store-calls tbody tr')]
    assert operations == ['save_unloaded'] and session['Round trips to the store'] == '1'
