"""Views that greet the user, for the identity rules of cached views."""
import collections

from pyramid.response import Response
from pyramid.security import remember
from pyramid.view import view_config

from pyramid_beaker import cached_region

CALLS = collections.Counter()


@view_config(route_name='hello')
@cached_region('short_term')
def hello(request):
    CALLS['hello'] += 1
    return Response('Hello, %s' % request.authenticated_userid)


@view_config(route_name='hello_shared')
@cached_region('short_term', shared=True)
def hello_shared(request):
    CALLS['hello_shared'] += 1
    return Response('Hello, everyone #%d' % CALLS['hello_shared'])


@view_config(route_name='login')
def login(request):
    headers = remember(request, request.params['user'])
    response = Response('logged in')
    response.headerlist.extend(headers)
    return response
