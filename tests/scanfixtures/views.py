"""Cached views, in the documented decorator order; ``CALLS`` counts runs."""
import collections

from pyramid.response import Response
from pyramid.view import view_config

from pyramid_beaker import cached_region

CALLS = collections.Counter()


def _user_header(request):
    return request.headers.get('X-User')


@view_config(route_name='report', renderer='json')
@cached_region('short_term', vary=('Accept-Language',))
def report(request):
    CALLS['report'] += 1
    return {'lang': request.headers.get('Accept-Language'),
            'query': sorted(request.GET.items()), 'run': CALLS['report']}


@view_config(route_name='plain')
@cached_region('short_term')
def plain(request):
    CALLS['plain'] += 1
    response = Response('plain #%d' % CALLS['plain'], content_type='text/plain')
    response.headers['X-Run'] = str(CALLS['plain'])
    return response


@view_config(route_name='with_context', renderer='json')
@cached_region('short_term')
def with_context(context, request):
    CALLS['with_context'] += 1
    return {'context': type(context).__name__, 'run': CALLS['with_context']}


@view_config(route_name='touches_response', renderer='json')
@cached_region('short_term')
def touches_response(request):
    CALLS['touches_response'] += 1
    request.response.headers['X-Flavour'] = 'vanilla'
    return {'run': CALLS['touches_response']}


@view_config(route_name='sets_cookie')
@cached_region('short_term')
def sets_cookie(request):
    CALLS['sets_cookie'] += 1
    response = Response('cookie #%d' % CALLS['sets_cookie'])
    response.set_cookie('flavour', 'vanilla')
    return response


@view_config(route_name='renderer_cookie', renderer='json')
@cached_region('short_term')
def renderer_cookie(request):
    CALLS['renderer_cookie'] += 1
    request.response.set_cookie('flavour', 'vanilla')
    return {'run': CALLS['renderer_cookie']}


@view_config(route_name='private', renderer='json')
@cached_region('short_term')
def private(request):
    CALLS['private'] += 1
    request.response.cache_control.private = True
    return {'run': CALLS['private']}


@view_config(route_name='no_store')
@cached_region('short_term')
def no_store(request):
    CALLS['no_store'] += 1
    return Response('no-store #%d' % CALLS['no_store'],
                    headers={'Cache-Control': 'max-age=0, no-store'})


@view_config(route_name='not_found', renderer='json')
@cached_region('short_term')
def not_found(request):
    CALLS['not_found'] += 1
    request.response.status = 404
    return {'run': CALLS['not_found']}


@view_config(route_name='form', renderer='json', request_method=('GET', 'POST'))
@cached_region('short_term')
def form(request):
    CALLS['form'] += 1
    return {'method': request.method, 'run': CALLS['form']}


@view_config(route_name='greeting', renderer='json')
@cached_region('short_term')
def greeting(request):
    CALLS['greeting'] += 1
    return {'name': request.session.get('name'), 'run': CALLS['greeting']}


@view_config(route_name='greeting_per_user', renderer='json')
@cached_region('short_term', per_user=_user_header)
def greeting_per_user(request):
    CALLS['greeting_per_user'] += 1
    return {'name': request.session.get('name'), 'run': CALLS['greeting_per_user']}


@view_config(route_name='dashboard', renderer='json')
@cached_region('short_term', per_user=True)
def dashboard(request):
    CALLS['dashboard'] += 1
    return {'user': request.authenticated_userid, 'run': CALLS['dashboard']}


@view_config(route_name='login', renderer='json')
def login(request):
    request.session['name'] = request.params['name']
    return {'ok': True}


@view_config(route_name='by_locale', renderer='json')
@cached_region('short_term', vary=(_user_header, 'X-Tenant'))
def by_locale(request):
    CALLS['by_locale'] += 1
    return {'run': CALLS['by_locale']}


@view_config(route_name='maybe', renderer='json')
@cached_region('short_term', should_cache=lambda value: value['ready'])
def maybe(request):
    CALLS['maybe'] += 1
    return {'ready': 'ready' in request.GET, 'run': CALLS['maybe']}


class ReportViews:
    """A class-based view: its cached methods are keyed by ``self.request``."""

    def __init__(self, request):
        self.request = request

    @view_config(route_name='class_report', renderer='json')
    @cached_region('short_term')
    def show(self):
        CALLS['class_report'] += 1
        return {'query': self.request.query_string, 'run': CALLS['class_report']}

    @cached_region('short_term')
    @view_config(route_name='class_reverse', renderer='json')
    def reverse(self):
        CALLS['class_reverse'] += 1
        return {'run': CALLS['class_reverse']}
