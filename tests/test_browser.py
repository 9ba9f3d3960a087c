"""The example app in a real browser: headless Chromium, driven by selenium.

The app runs under a real waitress server on 127.0.0.1 (in a thread).  The
test skips when Chromium or chromedriver is missing, except under CI
(``CI`` set), where it fails.
"""
import os
import shutil
import tempfile

import pytest
import webtest.http

from .test_example import COOKIE, PASSWORD, beaker_shop, ini_settings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Where the test run saves its screenshots (kept out of git).
SCREENSHOTS = os.environ.get('PYRAMID_BEAKER_SCREENSHOTS', os.path.join(ROOT, 'screenshots'))
CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
#: Seconds any single browser step may take.
STEP_TIMEOUT = 10


def _require_browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append('the selenium package')
    if missing:
        message = 'browser test needs %s' % ', '.join(missing)
        if os.environ.get('CI'):
            pytest.fail(message + ' (CI is set: the browser test must run)')
        pytest.skip(message)


def serve(settings):
    """Serve the example app with ``settings`` under waitress; yield its URL."""
    app = beaker_shop.main({}, **settings)
    server = webtest.http.StopableWSGIServer.create(
        app, host='127.0.0.1', port=webtest.http.get_free_port()[1],
        expose_tracebacks=False, channel_timeout=STEP_TIMEOUT)
    try:
        assert server.wait(retries=50), 'waitress did not start'
        yield server.application_url.rstrip('/')
    finally:
        server.shutdown()
        server.runner.join(STEP_TIMEOUT)


@pytest.fixture
def server(tmp_dir):
    """The example app, configured by development.ini, served by waitress."""
    yield from serve(ini_settings('development.ini', tmp_dir))


@pytest.fixture
def toolbar_server(tmp_dir):
    """The same, with pyramid_debugtoolbar included."""
    settings = ini_settings('development.ini', tmp_dir)
    settings['pyramid.includes'] = 'pyramid_beaker pyramid_debugtoolbar'
    yield from serve(settings)


@pytest.fixture
def browser():
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix='pyramid_beaker-chromium-')
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ('--headless=new', '--no-sandbox', '--disable-gpu',
                     '--disable-dev-shm-usage', '--disable-background-networking',
                     '--disable-component-update', '--disable-sync', '--no-first-run',
                     '--user-data-dir=' + profile):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(STEP_TIMEOUT)
        driver.set_script_timeout(STEP_TIMEOUT)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_shopping_session_in_a_real_browser(server, browser):
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, STEP_TIMEOUT)

    def flash_text():
        return [element.text for element in browser.find_elements(By.CSS_SELECTOR, 'p.flash')]

    def page_complete():
        wait.until(lambda driver: driver.execute_script(
            'return document.readyState') == 'complete')

    def click(form_id):
        """Click the form's button; None when the page swapped it meanwhile."""
        try:
            button = browser.find_element(By.CSS_SELECTOR, '#%s button' % form_id)
            button.click()
            return button
        except StaleElementReferenceException:
            return None
        except WebDriverException as exc:  # Chromium: node left the document
            if 'does not belong to the document' not in str(exc):
                raise
            return None

    def left_the_page(element):
        """True once ``element`` is gone: stale, or a node Chromium dropped."""
        def check(driver):
            try:
                element.is_enabled()
                return False
            except StaleElementReferenceException:
                return True
            except WebDriverException as exc:
                if 'does not belong to the document' not in str(exc):
                    raise
                return True
        return check

    def submit(form_id):
        """Submit a form once its page is complete, and wait for the next page."""
        page_complete()
        button = wait.until(lambda driver: click(form_id))
        wait.until(left_the_page(button))
        page_complete()

    # Log in through the form; the CSRF token travels in a hidden field.
    browser.get(server + '/login')
    before = browser.get_cookie(COOKIE)
    assert before is not None
    browser.find_element(By.NAME, 'username').send_keys('alice')
    browser.find_element(By.NAME, 'password').send_keys(PASSWORD)
    submit('login')
    assert browser.current_url == server + '/'
    assert flash_text() == ['Welcome, alice!']
    assert browser.find_element(By.ID, 'user').text == 'alice'
    cookie = browser.get_cookie(COOKIE)
    assert cookie['value'] != before['value']  # a new session id at login

    # The session cookie is out of JavaScript's reach and same-site only.
    assert cookie['httpOnly'] is True
    assert cookie['sameSite'] == 'Lax'
    assert cookie['secure'] is False  # development.ini: plain http
    assert COOKIE not in browser.execute_script('return document.cookie')

    # Fill the basket; a reload keeps it and shows the flash only once.
    submit('add-flask-500')
    assert flash_text() == ['Added Erlenmeyer flask, 500 ml to your basket.']
    submit('add-burner')
    browser.refresh()
    wait.until(expected_conditions.presence_of_element_located((By.ID, 'basket-link')))
    assert flash_text() == []
    assert browser.find_element(By.ID, 'basket-link').text == 'Basket (2)'
    browser.find_element(By.ID, 'basket-link').click()
    wait.until(expected_conditions.presence_of_element_located((By.ID, 'total')))
    assert browser.find_element(By.ID, 'total').text == '32.40 €'
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, '#basket thead th')]
    assert headers[:3] == ['Product', 'Quantity', 'Price']

    # The cached offers page (built once, then read from the cache) still
    # shows who is logged in.
    for _ in range(2):
        browser.get(server + '/offers')
        wait.until(expected_conditions.presence_of_element_located((By.ID, 'offers')))
        assert browser.find_element(By.ID, 'user').text == 'alice'
        assert not browser.find_elements(By.ID, 'login-link')

    # Log out: the session is gone, and so is the basket.
    submit('logout')
    assert flash_text() == ['You are logged out.']
    assert browser.find_elements(By.ID, 'login-link')
    # The emptied session (its flash message shown) took its cookie with it.
    assert (browser.get_cookie(COOKIE) or {}).get('value') != cookie['value']
    browser.get(server + '/basket')
    assert browser.current_url.startswith(server + '/login')


def test_debug_toolbar_panel_shows_the_cache_calls_and_the_session(toolbar_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, STEP_TIMEOUT)
    browser.set_window_size(1280, 900)

    def loaded(element_id):
        return wait.until(expected_conditions.presence_of_element_located((By.ID, element_id)))

    # Log in, then show the offers twice: built and stored, then a hit.
    browser.get(toolbar_server + '/login')
    browser.find_element(By.NAME, 'username').send_keys('alice')
    browser.find_element(By.NAME, 'password').send_keys(PASSWORD)
    browser.find_element(By.NAME, 'password').submit()
    loaded('user')
    browser.get(toolbar_server + '/offers')  # builds and stores the offers
    loaded('offers')
    browser.get(toolbar_server + '/offers')  # a hit
    loaded('offers')
    toolbar_url = loaded('pShowToolBarButton').get_attribute('href')
    assert '/_debug_toolbar/' in toolbar_url

    # The toolbar page of that request, on the pyramid_beaker tab.
    browser.get(toolbar_url)
    loaded('pDebugPanel-pyramid_beaker').find_element(By.TAG_NAME, 'a').click()
    content = wait.until(expected_conditions.visibility_of_element_located(
        (By.ID, 'pDebugPanel-pyramid_beaker-content')))
    rows = [[cell.text for cell in row.find_elements(By.TAG_NAME, 'td')]
            for row in content.find_elements(By.CSS_SELECTOR,
                                             '#pyramid-beaker-cache-calls tbody tr')]
    assert [row[:2] + row[3:4] for row in rows] == [
        ['beaker_shop.views.offers', 'short_term', 'hit']]
    assert float(rows[0][4]) >= 0
    session = {row.find_element(By.TAG_NAME, 'th').text: row.find_element(By.TAG_NAME, 'td').text
               for row in content.find_elements(By.CSS_SELECTOR, '#pyramid-beaker-session tr')}
    assert session['Store'] == 'file'
    assert session['Loaded'] == 'yes'  # the layout shows who is logged in
    assert session['Round trips to the store'] == '1'  # one load, nothing to save
    assert [cell.text for cell in content.find_elements(
        By.CSS_SELECTOR, '#pyramid-beaker-store-calls td:first-child')] == ['load']

    os.makedirs(SCREENSHOTS, exist_ok=True)
    path = os.path.join(SCREENSHOTS, 'debugtoolbar-panel.png')
    assert browser.save_screenshot(path)
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
