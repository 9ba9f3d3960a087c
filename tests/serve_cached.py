"""A cached route for ``serve_app``: which process computed ``x``?

Included by ``tests/serve_app.py`` when the setting ``test.cached`` is set;
the app's settings configure the region ``shared``.
"""
import os

from pyramid.view import view_config

from pyramid_beaker import cached_region


@cached_region('shared')
def computed(x):
    """Return ``x`` and the id of the process that computed it."""
    return {'x': x, 'pid': os.getpid()}


@view_config(route_name='cached', renderer='json')
def cached_view(request):
    return computed(request.params['x'])


def includeme(config):
    config.add_route('cached', '/cached')
    config.scan(__name__)
