"""Session settings: coercion from ini strings, aliases, errors at startup."""
import datetime

import pytest
from pyramid.csrf import SessionCSRFStoragePolicy, check_csrf_token
from pyramid.exceptions import ConfigurationError
from webtest import TestApp

from pyramid_beaker.session import BeakerSessionFactoryConfig, session_factory_from_settings
from pyramid_beaker.settings import session_options_from_settings

from .session_app import SECRET, make_app, make_config


def test_strings_from_settings_are_coerced(tmp_dir):
    settings = {
        'session.type': 'file',
        'session.data_dir': tmp_dir + '/data',
        'session.lock_dir': tmp_dir + '/lock',
        'session.key': 'mykey',
        'session.secret': 'mysecret',
        'session.timeout': '1800',
        'session.cookie_expires': '3600',
        'session.cookie_domain': 'example.com',
        'session.cookie_path': '/app',
        'session.secure': 'true',
        'session.httponly': 'false',
        'session.samesite': 'strict',
        'session.data_serializer': 'pickle',
        'session.save_accessed_time': 'yes',
        'session.invalidate_corrupt': 'off',
        'session.cookie_on_exception': 'false',
        'session.constant_csrf_token': 'tok',
        'session.refresh_interval': '60',
        'unrelated.key': 'ignored',
    }
    options = session_options_from_settings(settings)
    assert options['type'] == 'file'
    assert options['timeout'] == 1800
    assert options['cookie_expires'] == 3600
    assert options['secure'] is True and options['httponly'] is False
    assert options['samesite'] == 'Strict'
    assert options['data_serializer'] == 'pickle'
    assert options['invalidate_corrupt'] is False
    assert options['cookie_on_exception'] is False
    assert options['constant_csrf_token'] == 'tok'
    assert options['refresh_interval'] == 60
    assert options['key'] == 'mykey'


def test_typed_values_pass_through():
    when = datetime.datetime(2030, 1, 1)
    options = session_options_from_settings({}, overrides={
        'secret': SECRET, 'timeout': 60, 'secure': True, 'cookie_expires': when,
        'httponly': False})
    assert options['timeout'] == 60 and options['secure'] is True
    assert options['cookie_expires'] is when and options['httponly'] is False
    delta = session_options_from_settings(
        {}, overrides={'secret': SECRET, 'cookie_expires': datetime.timedelta(hours=1)})
    assert delta['cookie_expires'] == 3600


def test_defaults_are_safe():
    options = session_options_from_settings({'session.secret': SECRET})
    assert options['type'] == 'memory'
    assert options['data_serializer'] == 'json'
    assert options['httponly'] is True and options['samesite'] == 'Lax'
    assert options['cookie_on_exception'] is True
    assert options['key'] == 'beaker.session.id'


def test_beaker_prefix_is_read_and_session_prefix_wins():
    options = session_options_from_settings({
        'beaker.session.secret': SECRET,
        'beaker.session.timeout': '100',
        'session.timeout': '200',
        'beaker.session.key': 'from-beaker',
    })
    assert options['timeout'] == 200
    assert options['key'] == 'from-beaker'


def test_custom_prefix():
    options = session_options_from_settings(
        {'admin.session.secret': SECRET, 'admin.session.key': 'admin',
         'session.key': 'public'}, prefix='admin.session.')
    assert options['key'] == 'admin'


@pytest.mark.parametrize('key, value, message', [
    ('session.type', 'mongo', '"session.type" must be one of'),
    ('session.timeout', 'abc', '"session.timeout" must be a whole number'),
    ('session.timeout', '-5', '"session.timeout" must be a whole number of at least 1'),
    ('session.secure', 'ture', '"session.secure" must be true or false, not \'ture\''),
    ('session.httponly', 'maybe', '"session.httponly" must be true or false'),
    ('session.samesite', 'Medium', '"session.samesite" must be one of Strict, Lax, None'),
    ('session.cookie_expires', 'soon', '"session.cookie_expires" must be true, false'),
    ('session.data_serializer', 'yaml', '"session.data_serializer" must be'),
    ('session.cookie_on_exception', 'yes please', '"session.cookie_on_exception"'),
])
def test_bad_settings_name_key_and_value(key, value, message):
    settings = {'session.secret': SECRET, key: value}
    with pytest.raises(ConfigurationError, match=message.replace('(', r'\(')) as info:
        session_factory_from_settings(settings)
    assert repr(value) in str(info.value) or value in str(info.value)


def test_beaker_prefix_errors_name_that_key():
    with pytest.raises(ConfigurationError, match='"beaker.session.timeout"'):
        session_factory_from_settings({'beaker.session.secret': SECRET,
                                       'beaker.session.timeout': 'x'})


def test_argument_errors_name_the_argument():
    with pytest.raises(ConfigurationError, match='"timeout" must be a whole number'):
        BeakerSessionFactoryConfig(secret=SECRET, timeout='soon')


def test_secret_is_required():
    with pytest.raises(ConfigurationError, match='"session.secret" is required'):
        session_factory_from_settings({'session.type': 'memory'})


def test_file_needs_data_dir():
    with pytest.raises(ConfigurationError, match='"session.data_dir" is required'):
        session_factory_from_settings({'session.secret': SECRET, 'session.type': 'file'})


def test_samesite_none_needs_secure():
    with pytest.raises(ConfigurationError, match='"samesite" = None needs "secure" = true'):
        BeakerSessionFactoryConfig(secret=SECRET, samesite='None')
    factory = BeakerSessionFactoryConfig(secret=SECRET, samesite='none', secure=True)
    assert factory.options['samesite'] == 'None'


def test_timeout_needs_accessed_time():
    with pytest.raises(ConfigurationError, match='"save_accessed_time" cannot be false'):
        BeakerSessionFactoryConfig(secret=SECRET, timeout=10, save_accessed_time=False)


def test_unknown_setting_fails_by_name():
    with pytest.raises(ConfigurationError, match='"session.colour" is not a session option'):
        session_factory_from_settings({'session.secret': SECRET, 'session.colour': 'red'})


def test_factory_from_settings_in_a_real_app(tmp_dir):
    factory = session_factory_from_settings({
        'session.type': 'file', 'session.data_dir': tmp_dir,
        'session.secret': SECRET, 'session.key': 'mykey',
        'session.constant_csrf_token': 'constant'})
    app = make_app(factory)
    app.get('/set', {'a': '1'})
    assert 'mykey' in app.cookies
    assert app.get('/get').json['data'] == {'a': '1'}
    assert app.get('/new_csrf').json['token'] == 'constant'


def _csrf_app(**policy):
    config = make_config(secret=SECRET)
    if policy:
        config.set_csrf_storage_policy(SessionCSRFStoragePolicy())
    config.set_default_csrf_options(require_csrf=True)

    def form(request):
        return {'token': request.session.get_csrf_token()}

    def check(request):
        return {'valid': check_csrf_token(request, raises=False)}

    def post(request):
        return {'posted': True}

    config.add_route('form', '/form')
    config.add_view(form, route_name='form', renderer='json')
    config.add_route('check', '/check')
    config.add_view(check, route_name='check', renderer='json', require_csrf=False)
    config.add_route('post', '/post')
    config.add_view(post, route_name='post', renderer='json', request_method='POST')
    return TestApp(config.make_wsgi_app())


@pytest.mark.parametrize('use_policy', [False, True])
def test_csrf_with_pyramid_checks(use_policy):
    app = _csrf_app(**({'policy': True} if use_policy else {}))
    token = app.get('/form').json['token']
    assert isinstance(token, str)
    assert app.post('/check', {'csrf_token': token}).json == {'valid': True}
    assert app.post('/check', {'csrf_token': 'wrong'}).json == {'valid': False}
    assert app.post('/post', {'csrf_token': token}).json == {'posted': True}
    app.post('/post', {'csrf_token': 'wrong'}, status=400)


def test_missing_driver_fails_at_startup_with_the_extra_to_install(tmp_dir):
    """A venv without redis-py: the type is refused by name, with the fix."""
    import subprocess
    import sys

    script = (
        'import sys; sys.modules["redis"] = None\n'
        'from pyramid.exceptions import ConfigurationError\n'
        'from pyramid_beaker import session_factory_from_settings\n'
        'try:\n'
        '    session_factory_from_settings({"session.type": "ext:redis",\n'
        '        "session.url": "redis://127.0.0.1", "session.secret": "s"})\n'
        'except ConfigurationError as exc:\n'
        '    print(exc)\n')
    result = subprocess.run([sys.executable, '-W', 'error::RuntimeWarning', '-c', script],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        '"session.type" = ext:redis: the ext:redis backend needs redis-py: '
        'pip install "pyramid_beaker[redis]"')
