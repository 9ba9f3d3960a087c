"""The example app (examples/beaker_shop) through WebTest, as configured by its ini files.

Settings are read from examples/development.ini and production.ini, with
the data directories moved to a temporary directory, and given to the
app's own ``main``.
"""
import configparser
import glob
import os
import re
import sys
import time

import pytest
import webtest
from pyramid.exceptions import ConfigurationError

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(os.path.dirname(HERE), 'examples')
try:
    import beaker_shop
except ImportError:  # not installed with ``pip install -e examples``
    sys.path.insert(0, EXAMPLES)
    import beaker_shop

from beaker_shop import catalog, views  # noqa: E402

COOKIE = 'beaker_shop'
PASSWORD = 'beaker'


def ini_settings(name, tmp_dir):
    """The [app:main] settings of examples/<name>, data kept under ``tmp_dir``."""
    path = os.path.join(EXAMPLES, name)
    parser = configparser.ConfigParser(defaults={'here': tmp_dir, '__file__': path})
    with open(path, encoding='utf-8') as f:
        parser.read_file(f)
    return {key: value for key, value in parser.items('app:main')
            if key not in ('here', '__file__', 'use')}


def make_app(settings):
    return webtest.TestApp(beaker_shop.main({}, **settings))


@pytest.fixture
def settings(tmp_dir):
    return ini_settings('development.ini', tmp_dir)


@pytest.fixture
def app(settings):
    return make_app(settings)


def csrf_token(response):
    return re.search(r'name="csrf_token" value="([0-9a-f]+)"', response.text).group(1)


def login(app, username='alice', password=PASSWORD, came_from=None):
    """Log in through the form; return the page the login redirects to."""
    path = '/login' if came_from is None else '/login?came_from=' + came_from
    form = app.get(path).forms['login']
    form['username'] = username
    form['password'] = password
    response = form.submit()
    assert response.status_int == 303, response.text
    return response.follow()


def flashes(response):
    return [element.text for element in response.html.select('p.flash')]


def session_files(tmp_dir):
    return sorted(glob.glob(os.path.join(tmp_dir, 'data', 'sessions', 'sessions', '*', '*')))


def test_shop_page_needs_no_session(app):
    response = app.get('/')
    assert 'Erlenmeyer flask, 500 ml' in response.text
    assert 'Set-Cookie' not in response.headers
    assert response.html.select_one('#login-link') is not None


def test_development_ini_settings_are_applied(app, tmp_dir):
    cookie = app.get('/login').headers['Set-Cookie']
    assert cookie.startswith(COOKIE + '=')
    assert '; HttpOnly' in cookie and '; SameSite=Lax' in cookie
    assert 'Secure' not in cookie  # plain http in development
    assert len(session_files(tmp_dir)) == 1  # session.type = file, under data_dir


def test_login_through_the_form_flashes_a_welcome(app):
    form = app.get('/login').forms['login']
    assert form['csrf_token'].value
    form['username'] = 'alice'
    form['password'] = PASSWORD
    response = form.submit()
    assert response.status_int == 303
    assert response.location == 'http://localhost/'
    page = response.follow()
    assert flashes(page) == ['Welcome, alice!']
    assert page.html.select_one('#user').text == 'alice'
    # A flash message is shown once.
    assert flashes(app.get('/')) == []


def test_wrong_password_shows_the_form_again(app):
    form = app.get('/login').forms['login']
    form['username'] = 'alice'
    form['password'] = 'not the password'
    response = form.submit(status=400)
    assert 'Wrong user name or password.' in response.text
    assert response.forms['login']['username'].value == 'alice'
    assert app.get('/').html.select_one('#login-link') is not None


def test_login_changes_the_session_id(app, tmp_dir):
    app.get('/login')
    before = app.cookies[COOKIE]
    assert len(session_files(tmp_dir)) == 1
    login(app)
    after = app.cookies[COOKIE]
    assert after != before
    assert after.split('.')[0] != before.split('.')[0]
    assert len(session_files(tmp_dir)) == 1  # the old id's record is gone
    # Someone holding the pre-login cookie (session fixation) gets nothing.
    attacker = make_app_with_cookie(app, before)
    assert attacker.get('/basket').status_int == 303


def make_app_with_cookie(app, value):
    other = webtest.TestApp(app.app)
    other.set_cookie(COOKIE, value)
    return other


def test_login_rotates_the_csrf_token(app):
    token_before = csrf_token(app.get('/login'))
    page = login(app)
    assert csrf_token(page) != token_before


def test_basket_is_kept_in_the_session(app, settings):
    page = login(app)
    page = page.forms['add-flask-500'].submit().follow()
    assert flashes(page) == ['Added Erlenmeyer flask, 500 ml to your basket.']
    page = page.forms['add-flask-500'].submit().follow()
    page = page.forms['add-burner'].submit().follow()
    assert page.html.select_one('#basket-link').text == 'Basket (3)'
    # Reloading, or the same cookie in a new app (another process), keeps it.
    basket = app.get('/basket')
    lines = {row.select('td')[0].text: row.select_one('.quantity').text
             for row in basket.html.select('tr.line')}
    assert lines == {'Erlenmeyer flask, 500 ml': '2', 'Bunsen burner': '1'}
    assert basket.html.select_one('#total').text == '40.30 €'
    other = make_app(settings)
    other.set_cookie(COOKIE, app.cookies[COOKIE])
    assert other.get('/basket').html.select_one('#total').text == '40.30 €'


def test_remove_from_basket(app):
    login(app).forms['add-burner'].submit()
    basket = app.get('/basket')
    page = basket.forms[1].submit().follow()  # forms[0] is the logout button
    assert flashes(page) == ['Removed from your basket.']
    assert page.html.select_one('#basket-empty') is not None


def test_unknown_product_is_refused(app):
    page = login(app)
    response = app.post('/basket/add', {'product': 'nope', 'csrf_token': csrf_token(page)})
    assert flashes(response.follow()) == ['There is no such product.']
    assert app.get('/basket').html.select_one('#basket-empty') is not None


def test_basket_needs_a_login_and_comes_back_after_it(app):
    response = app.get('/basket')
    assert response.status_int == 303
    assert response.location == 'http://localhost/login?came_from=%2Fbasket'
    login_page = response.follow()
    assert flashes(login_page) == ['Please log in first.']
    form = login_page.forms['login']
    form['username'] = 'bob'
    form['password'] = PASSWORD
    response = form.submit()
    assert response.location == 'http://localhost/basket'


@pytest.mark.parametrize('came_from', [
    'http://evil.example/', '//evil.example/', '/\\evil.example/', 'basket'])
def test_login_never_redirects_off_site(app, came_from):
    form = app.get('/login').forms['login']
    form['username'] = 'alice'
    form['password'] = PASSWORD
    form['came_from'] = came_from
    assert form.submit().location == 'http://localhost/'


@pytest.mark.parametrize('path, params', [
    ('/basket/add', {'product': 'burner'}),
    ('/logout', {}),
    ('/checkout', {'note': 'x'}),
])
def test_post_without_the_csrf_token_is_refused(app, path, params):
    login(app)
    response = app.post(path, params, status=400)
    assert response.html.select_one('#bad-csrf') is not None
    response = app.post(path, dict(params, csrf_token='0' * 40), status=400)
    assert response.html.select_one('#bad-csrf') is not None
    # Nothing happened: still logged in, basket still empty.
    basket = app.get('/basket')
    assert basket.html.select_one('#user').text == 'alice'
    assert basket.html.select_one('#basket-empty') is not None


def test_login_without_the_csrf_token_is_refused(app):
    app.get('/login')
    response = app.post('/login', {'username': 'mallory', 'password': PASSWORD},
                        status=400)
    assert response.html.select_one('#bad-csrf') is not None
    assert app.get('/').html.select_one('#login-link') is not None


def test_logout_deletes_the_session(app, tmp_dir):
    page = login(app)
    page = page.forms['add-burner'].submit().follow()
    logged_in_cookie = app.cookies[COOKIE]
    page = page.forms['logout'].submit().follow()
    assert flashes(page) == ['You are logged out.']
    assert page.html.select_one('#login-link') is not None
    # The new session held only the flash; shown, it left the session empty,
    # so its record was deleted and its cookie expired.
    assert app.cookies.get(COOKIE) is None
    assert len(session_files(tmp_dir)) == 0
    # The old cookie now opens nothing: the record was deleted.
    old = make_app_with_cookie(app, logged_in_cookie)
    assert old.get('/basket').status_int == 303
    # Logging in again starts with an empty basket.
    login(app)
    assert app.get('/basket').html.select_one('#basket-empty') is not None


def test_exception_view_keeps_the_session(app):
    login(app).forms['add-burner'].submit()
    form = app.get('/basket').forms['checkout']
    form['note'] = 'Ring twice'
    response = form.submit(status=503)
    assert response.html.select_one('#payment-failed') is not None
    assert 'Set-Cookie' not in response.headers  # the browser's cookie is still right
    # The note written before the exception was saved (cookie_on_exception).
    assert app.get('/basket').forms['checkout']['note'].value == 'Ring twice'


def test_without_cookie_on_exception_the_changes_are_lost(settings):
    settings['session.cookie_on_exception'] = 'false'
    app = make_app(settings)
    login(app).forms['add-burner'].submit()
    form = app.get('/basket').forms['checkout']
    form['note'] = 'Ring twice'
    response = form.submit(status=503)
    assert 'Set-Cookie' not in response.headers
    assert app.get('/basket').forms['checkout']['note'].value == ''


def test_pages_escape_what_users_type(app):
    page = login(app, username='<b>eve</b>')
    assert '&lt;b&gt;eve&lt;/b&gt;' in page.text
    assert '<b>eve</b>' not in page.text
    assert page.html.select_one('#user').text == '<b>eve</b>'


def test_catalogue_is_cached_and_can_be_reloaded(app):
    before = catalog.supplier_calls.count
    app.get('/')
    app.get('/')
    page = login(app)
    assert catalog.supplier_calls.count == before + 1
    assert page.html.select_one('#supplier-calls').text == str(before + 1)
    refresh = [form for form in page.forms.values() if form.action == '/catalog/refresh']
    page = refresh[0].submit().follow()
    assert flashes(page) == ['The catalogue will be fetched again from the supplier.']
    assert catalog.supplier_calls.count == before + 2
    app.get('/')
    assert catalog.supplier_calls.count == before + 2


def test_catalogue_cache_is_shared_through_files(settings):
    first = make_app(settings)
    before = catalog.supplier_calls.count
    first.get('/')
    second = make_app(settings)  # a second process, in effect
    second.get('/')
    assert catalog.supplier_calls.count == before + 1
    files = glob.glob(os.path.join(settings['cache.long_term.data_dir'], 'cache', '*', '*'))
    assert len(files) == 1
    with open(files[0], 'rb') as f:
        assert f.read(3) == b'PB1'  # a signed envelope, never bare pickle


def test_offers_view_is_cached_for_everyone(app):
    before = views.offers_built.count
    first = app.get('/offers')
    assert 'Set-Cookie' not in first.headers
    assert first.html.select_one('#login-link') is not None
    login(app)
    second = app.get('/offers')  # a logged-in user gets the same cached offers
    assert views.offers_built.count == before + 1
    assert second.html.select_one('#offers') == first.html.select_one('#offers')
    assert second.html.select_one('#offers-built').text == str(before + 1)
    assert second.html.select_one('#built-at') == first.html.select_one('#built-at')
    assert 'Pipette, 10 ml' in first.text and '3.42 €' in first.text
    # The header around the cached part is the visitor's own.
    assert second.html.select_one('#user').text == 'alice'
    assert second.html.select_one('#login-link') is None
    assert second.html.select_one('#logout') is not None


def test_tables_have_headers(app):
    login(app)
    app.get('/').forms['add-burner'].submit()
    for path, table in (('/', 'table'), ('/offers', '#offers'), ('/basket', '#basket')):
        page = app.get(path)
        headers = [th.text for th in page.html.select_one(table).select('thead th')]
        assert headers[:2] == ['Product', {'/basket': 'Quantity'}.get(path, 'Price')]
    total = app.get('/basket').html.select_one('#basket tfoot')
    assert total.select_one('th').text == 'Total'


def test_offers_view_is_built_again_after_expiry(settings):
    settings['cache.short_term.expire'] = '1'
    app = make_app(settings)
    before = views.offers_built.count
    app.get('/offers')
    app.get('/offers')
    assert views.offers_built.count == before + 1
    time.sleep(1.1)
    app.get('/offers')
    assert views.offers_built.count == before + 2


def test_not_found_page(app):
    response = app.get('/no/such/page', status=404)
    assert 'There is no such page.' in response.text


def test_production_ini_refuses_the_placeholder_secrets(tmp_dir):
    settings = ini_settings('production.ini', tmp_dir)
    with pytest.raises(ConfigurationError, match='"session.secret" still holds'):
        beaker_shop.main({}, **settings)
    settings['session.secret'] = 'a-real-session-secret-8f3a'
    with pytest.raises(ConfigurationError, match='"cache.secret" still holds'):
        beaker_shop.main({}, **settings)


def test_production_ini_works_on_redis(tmp_dir, redis_url):
    import redis

    settings = ini_settings('production.ini', tmp_dir)
    assert settings['session.type'] == 'ext:redis'
    assert settings['session.secure'] == 'true'
    settings.update({
        'session.secret': 'a-real-session-secret-8f3a',
        'cache.secret': 'a-real-cache-secret-1c9d',
        'session.url': redis_url,
        'cache.long_term.url': redis_url,
        'session.key_prefix': 'pb-example-%d:' % os.getpid(),
        'cache.long_term.key_prefix': 'pb-example-%d:' % os.getpid(),
    })
    app = webtest.TestApp(beaker_shop.main({}, **settings),
                          extra_environ={'wsgi.url_scheme': 'https',
                                         'HTTP_HOST': 'localhost:443'})
    client = redis.Redis.from_url(redis_url)
    try:
        form = app.get('/login').forms['login']
        form['username'] = 'alice'
        form['password'] = PASSWORD
        response = form.submit()
        assert '; secure' in response.headers['Set-Cookie'].lower()
        page = response.follow().forms['add-burner'].submit().follow()
        assert page.html.select_one('#basket-link').text == 'Basket (1)'
        stored = client.keys(settings['session.key_prefix'] + 'session:*')
        assert len(stored) == 1
    finally:
        stale = client.keys(settings['session.key_prefix'] + '*')
        if stale:
            client.delete(*stale)
        client.close()
