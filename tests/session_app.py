"""A real Pyramid app exercising the session, driven by WebTest in the tests.

Every view answers JSON with the session's user data after the view ran,
so a test can see exactly what the next request will load.
"""
from pyramid.config import Configurator
from pyramid.httpexceptions import HTTPBadRequest
from webtest import TestApp

from pyramid_beaker.session import BeakerSessionFactoryConfig

SECRET = 'test-secret-0123456789'


class Boom(Exception):
    """Raised by /fail after changing the session."""


def _data(request):
    return {'data': dict(request.session)}


def untouched(request):
    return {'ok': True}


def get(request):
    return _data(request)


def set_(request):
    for key, value in request.params.items():
        request.session[key] = value
    return _data(request)


def mutate(request):
    """Apply one dict operation named by ``op`` to the session."""
    session, params = request.session, request.params
    op, key = params['op'], params.get('key')
    result = None
    if op == 'del':
        del session[key]
    elif op == 'update':
        session.update({key: params['value']})
    elif op == 'setdefault':
        result = session.setdefault(key, params['value'])
    elif op == 'pop':
        result = session.pop(key)
    elif op == 'popitem':
        result = list(session.popitem())
    elif op == 'clear':
        session.clear()
    elif op == 'append':  # in-place change of a nested list
        session[key].append(params['value'])
        if params.get('changed'):
            session.changed()
        elif params.get('save'):  # Beaker's spelling
            session.save()
    return dict(_data(request), result=result)


def introspect(request):
    session = request.session
    return {
        'keys': sorted(session.keys()),
        'items': sorted(session.items()),
        'iter': sorted(session),
        'len': len(session),
        'values': sorted(session.values()),
        'new': session.new,
        'created': session.created,
    }


def store_json_unsafe(request):
    request.session['bad'] = {1, 2}
    return {'stored': True}


def types(request):
    return {key: type(value).__name__ for key, value in request.session.items()}


def flash(request):
    params = request.params
    request.session.flash(params['msg'], queue=params.get('queue', ''),
                          allow_duplicate=params.get('dup', '1') == '1')
    return {'ok': True}


def peek(request):
    return {'messages': request.session.peek_flash(request.params.get('queue', ''))}


def pop(request):
    return {'messages': request.session.pop_flash(request.params.get('queue', ''))}


def csrf(request):
    token = request.session.get_csrf_token()
    return {'token': token, 'type': type(token).__name__}


def new_csrf(request):
    token = request.session.new_csrf_token()
    return {'token': token, 'type': type(token).__name__}


def fail(request):
    request.session['failed'] = 'yes'
    raise Boom()


def boom_view(exc, request):
    request.response.status = 500
    return {'error': True}


def invalidate(request):
    request.session.invalidate()
    for key, value in request.params.items():
        request.session[key] = value
    return _data(request)


def regenerate(request):
    request.session.regenerate_id()
    return _data(request)


def set_together(request):
    """Load the session, wait until the test's other requests loaded it too
    (``registry.together``, a Barrier), then set ``key`` to ``value``."""
    dict(request.session)
    request.registry.together.wait()
    request.session[request.params['key']] = request.params['value']
    return _data(request)


def bad_request(request):
    request.session['rejected'] = 'yes'
    raise HTTPBadRequest()


VIEWS = {
    'untouched': untouched, 'get': get, 'set': set_, 'mutate': mutate,
    'introspect': introspect, 'unsafe': store_json_unsafe, 'flash': flash,
    'peek': peek, 'pop': pop, 'csrf': csrf, 'new_csrf': new_csrf,
    'fail': fail, 'invalidate': invalidate, 'regenerate': regenerate,
    'bad_request': bad_request, 'types': types, 'set_together': set_together,
}


def make_config(factory=None, settings=None, **options):
    """Return a Configurator with the test views and a session factory."""
    config = Configurator(settings=settings or {})
    if factory is None and options:
        options.setdefault('secret', SECRET)
        factory = BeakerSessionFactoryConfig(**options)
    if factory is not None:
        config.set_session_factory(factory)
    for name, view in VIEWS.items():
        config.add_route(name, '/' + name)
        config.add_view(view, route_name=name, renderer='json')
    config.add_view(boom_view, context=Boom, renderer='json')
    return config


def make_app(factory=None, **options):
    """Return a WebTest app over a fresh Pyramid app with a Beaker session."""
    config = make_config(factory, **options)
    return TestApp(config.make_wsgi_app())
