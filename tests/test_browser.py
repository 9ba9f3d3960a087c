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


@pytest.fixture
def server(tmp_dir):
    """The example app, configured by development.ini, served by waitress."""
    app = beaker_shop.main({}, **ini_settings('development.ini', tmp_dir))
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

    def submit(form_id):
        """Submit a form once its page is complete, and wait for the next page."""
        page_complete()
        button = wait.until(lambda driver: click(form_id))
        wait.until(expected_conditions.staleness_of(button))
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
