"""A cached view with @cached_region *outside* @view_config."""
import collections

from pyramid.view import view_config

from pyramid_beaker import cached_region

CALLS = collections.Counter()


@cached_region('short_term')
@view_config(route_name='reverse', renderer='json')
def reverse_report(request):
    CALLS['reverse_report'] += 1
    return {'run': CALLS['reverse_report']}
