"""A small app for cross-process tests: ``python serve_app.py PORT SETTINGS_JSON``.

Views (all return JSON):
  /ping                      no session access
  /get                       the session's user data
  /set?key=k&value=v         sets one key
  /setmany?k1=v1&k2=v2       sets several keys
  /delete?key=k              removes one key
  /cached?x=1                a @cached_region('shared') function of x that
                             counts its own calls in a file given by the
                             setting ``test.counter_file``
"""
import json
import os
import sys

import waitress
from pyramid.config import Configurator
from pyramid.view import view_config


@view_config(route_name='ping', renderer='json')
def ping(request):
    return {'ok': True}


@view_config(route_name='get', renderer='json')
def get(request):
    return dict(request.session)


@view_config(route_name='set', renderer='json')
def set_key(request):
    request.session[request.params['key']] = request.params['value']
    return {'ok': True}


@view_config(route_name='setmany', renderer='json')
def set_many(request):
    request.session.update(request.params)
    return {'ok': True}


@view_config(route_name='delete', renderer='json')
def delete_key(request):
    request.session.pop(request.params['key'], None)
    return {'ok': True}


def make_app(settings):
    with Configurator(settings=settings) as config:
        config.include('pyramid_beaker')
        for name in ('ping', 'get', 'set', 'setmany', 'delete'):
            config.add_route(name, '/' + name)
        config.scan(__name__)
        if settings.get('test.cached'):
            config.include('tests.serve_cached')
    return config.make_wsgi_app()


def main():
    port, settings = int(sys.argv[1]), json.loads(sys.argv[2])
    app = make_app(settings)
    waitress.serve(app, host='127.0.0.1', port=port, threads=16,
                   _quiet=True, connection_limit=200)


if __name__ == '__main__':
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
