"""A view that calls a cached service from a worker thread of its own."""
import concurrent.futures

from pyramid.view import view_config

from . import services


@view_config(route_name='in_thread', renderer='json')
def in_thread(request):
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        first = pool.submit(services.exchange_rate, 'THR', 'EAD').result(timeout=10)
        second = pool.submit(services.exchange_rate, 'THR', 'EAD').result(timeout=10)
    return {'first': first, 'second': second}
