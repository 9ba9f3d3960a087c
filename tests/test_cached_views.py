"""@cached_region on views: real apps driven through WebTest."""
import pytest
import webtest
from pyramid.exceptions import ConfigurationError
from pyramid.request import Request

from .scanfixtures import reverse, views
from .scanfixtures.apps import VIEWS, include, settings

ROUTES = ('report', 'plain', 'touches_response', 'sets_cookie', 'renderer_cookie',
          'private', 'no_store', 'not_found', 'form', 'greeting', 'greeting_per_user',
          'dashboard', 'login', 'by_locale', 'maybe', 'reverse', 'class_report',
          'class_reverse')


class HeaderSecurityPolicy:
    """Trusts the X-User header: enough to give requests a user id."""

    def identity(self, request):
        return request.headers.get('X-User')

    def authenticated_userid(self, request):
        return request.headers.get('X-User')

    def permits(self, request, context, permission):
        return True

    def remember(self, request, userid, **kw):
        return []

    def forget(self, request, **kw):
        return []


def build(config, scan=(VIEWS,), **extra):
    config.add_settings(settings('views', session__secret='view-test-secret-0123',
                                 **extra))
    include(config)
    config.set_security_policy(HeaderSecurityPolicy())
    for name in ROUTES:
        config.add_route(name, '/' + name)
    config.add_route('with_context', '/things/{name}')
    for module in scan:
        config.scan(module)
    return webtest.TestApp(config.make_wsgi_app())


@pytest.fixture
def app(config):
    return build(config)


def test_a_renderer_view_is_computed_once_per_request_key(app):
    first = app.get('/report', headers={'Accept-Language': 'fr'}).json
    assert app.get('/report', headers={'Accept-Language': 'fr'}).json == first
    other = app.get('/report', headers={'Accept-Language': 'de'}).json
    assert other['lang'] == 'de' and other['run'] != first['run']


def test_the_query_string_is_part_of_the_key_in_any_order(app):
    first = app.get('/report?a=1&b=2').json
    assert app.get('/report?b=2&a=1').json == first
    assert app.get('/report?a=1').json['run'] != first['run']
    assert app.get('/report?a=1&b=3').json['run'] != first['run']


def test_the_host_and_path_are_part_of_the_key(app):
    first = app.get('/report', extra_environ={'HTTP_HOST': 'one.example'}).json
    assert app.get('/report', extra_environ={'HTTP_HOST': 'one.example'}).json == first
    other = app.get('/report', extra_environ={'HTTP_HOST': 'two.example'}).json
    assert other['run'] != first['run']


def test_a_response_is_replayed_with_its_status_headers_and_body(app):
    first = app.get('/plain')
    again = app.get('/plain')
    assert again.text == first.text
    assert again.headers['X-Run'] == first.headers['X-Run']
    assert again.content_type == 'text/plain'


def test_head_requests_use_the_entry_of_get(app):
    body = app.get('/plain').text
    before = views.CALLS['plain']
    head = app.head('/plain')
    assert head.status_int == 200 and head.body == b''
    assert views.CALLS['plain'] == before
    assert app.get('/plain').text == body


def test_other_methods_are_never_cached(app):
    before = views.CALLS['form']
    first = app.post('/form').json
    assert app.post('/form').json['run'] == first['run'] + 1
    got = app.get('/form').json
    assert got['method'] == 'GET' and app.get('/form').json == got
    assert views.CALLS['form'] - before == 3


def test_a_view_of_context_and_request(app):
    first = app.get('/things/a').json
    assert app.get('/things/a').json == first
    assert app.get('/things/b').json['run'] != first['run']


def test_headers_the_view_set_on_request_response_are_replayed(app):
    first = app.get('/touches_response')
    again = app.get('/touches_response')
    assert again.json == first.json
    assert again.headers['X-Flavour'] == 'vanilla'
    assert again.content_type == 'application/json'


@pytest.mark.parametrize('path', ['/sets_cookie', '/renderer_cookie', '/private',
                                  '/no_store'])
def test_private_or_cookie_setting_responses_are_not_stored(app, path):
    name = path.strip('/')
    before = views.CALLS[name]
    app.get(path)
    app.get(path)
    assert views.CALLS[name] - before == 2


def test_responses_other_than_200_are_not_stored(app):
    before = views.CALLS['not_found']
    app.get('/not_found', status=404)
    app.get('/not_found', status=404)
    assert views.CALLS['not_found'] - before == 2


def test_a_view_that_reads_the_session_is_not_stored_without_a_user(app):
    before = views.CALLS['greeting']
    alice = webtest.TestApp(app.app)
    alice.get('/login?name=alice')
    assert alice.get('/greeting').json['name'] == 'alice'
    assert webtest.TestApp(app.app).get('/greeting').json['name'] is None
    assert views.CALLS['greeting'] - before == 2


def test_a_view_that_reads_the_session_is_stored_per_user(app):
    alice, bob = webtest.TestApp(app.app), webtest.TestApp(app.app)
    alice.get('/login?name=alice')
    bob.get('/login?name=bob')
    as_alice = alice.get('/greeting_per_user', headers={'X-User': 'alice'}).json
    assert alice.get('/greeting_per_user', headers={'X-User': 'alice'}).json == as_alice
    as_bob = bob.get('/greeting_per_user', headers={'X-User': 'bob'}).json
    assert (as_alice['name'], as_bob['name']) == ('alice', 'bob')
    before = views.CALLS['greeting_per_user']
    alice.get('/greeting_per_user')
    alice.get('/greeting_per_user')
    assert views.CALLS['greeting_per_user'] - before == 2  # no user: not stored


def test_per_user_true_keys_on_the_authenticated_userid(app):
    alice = app.get('/dashboard', headers={'X-User': 'alice'}).json
    assert app.get('/dashboard', headers={'X-User': 'alice'}).json == alice
    bob = app.get('/dashboard', headers={'X-User': 'bob'}).json
    assert (alice['user'], bob['user']) == ('alice', 'bob')


def test_vary_takes_callables_and_header_names(app):
    first = app.get('/by_locale', headers={'X-User': 'a', 'X-Tenant': 't'}).json
    assert app.get('/by_locale', headers={'X-User': 'a', 'X-Tenant': 't'}).json == first
    assert app.get('/by_locale', headers={'X-User': 'b', 'X-Tenant': 't'}).json != first
    assert app.get('/by_locale', headers={'X-User': 'a', 'X-Tenant': 'u'}).json != first


def test_should_cache_applies_to_view_results(app):
    assert app.get('/maybe').json != app.get('/maybe').json
    ready = app.get('/maybe?ready').json
    assert app.get('/maybe?ready').json == ready


def test_invalidate_and_refresh_take_the_request(config):
    app = build(config)
    first = app.get('/plain').text
    request = Request.blank('/plain')  # the app's registry is the current one
    views.plain.invalidate(request)
    second = app.get('/plain').text
    assert second != first
    refreshed = views.plain.refresh(request)
    assert refreshed.text not in (first, second)
    assert app.get('/plain').text == refreshed.text


def test_cached_region_outside_view_config_still_registers_a_cached_view(config):
    app = build(config, scan=(VIEWS, 'tests.scanfixtures.reverse'))
    first = app.get('/reverse').json
    assert app.get('/reverse').json == first
    assert reverse.CALLS['reverse_report'] == first['run']


def test_class_based_views_are_keyed_by_their_request(app):
    first = app.get('/class_report?a=1').json
    assert app.get('/class_report?a=1').json == first
    assert app.get('/class_report?a=2').json['run'] != first['run']
    reversed_first = app.get('/class_reverse').json
    assert app.get('/class_reverse').json == reversed_first


def test_views_of_an_unknown_region_fail_at_commit(config):
    config.add_settings({'cache.regions': 'long_term', 'cache.long_term.expire': '60'})
    include(config)
    for name in ROUTES:
        config.add_route(name, '/' + name)
    config.scan(VIEWS)
    with pytest.raises(ConfigurationError, match='no cache region named "short_term"'):
        config.commit()


def test_a_replayed_response_has_the_stored_headers_and_a_content_length(config):
    """Streamed bodies have no Content-Length: the replay gets one."""
    from pyramid.response import Response

    from pyramid_beaker import cached_region

    runs = []

    def streamed(request):
        runs.append(1)
        response = Response(app_iter=iter([b'he', b'llo']), content_type='text/plain')
        response.headers['X-Kind'] = 'streamed'
        return response

    def sized(request):
        runs.append(1)
        return Response(b'sized', content_type='text/plain', status='200 OK')

    config.add_settings(settings('replay'))
    include(config)
    for view in (streamed, sized):
        cached = cached_region('short_term', name='replay.' + view.__name__)(view)
        config.add_cached_function(cached)
        config.add_route(view.__name__, '/' + view.__name__)
        config.add_view(cached, route_name=view.__name__)
    app = webtest.TestApp(config.make_wsgi_app())
    for path, body in (('/streamed', b'hello'), ('/sized', b'sized')):
        first = app.get(path)
        again = app.get(path)
        assert again.body == first.body == body
        assert again.headers['Content-Length'] == str(len(body))
        assert again.content_type == 'text/plain'
        assert sorted(again.headerlist) == sorted(
            first.headerlist + [('Content-Length', str(len(body)))]
            if 'Content-Length' not in first.headers else first.headerlist)
    assert app.get('/streamed').headers['X-Kind'] == 'streamed'
    assert len(runs) == 2
