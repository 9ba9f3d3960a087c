"""A cached function no test app ever scans."""
import collections

from pyramid_beaker import cached_region

CALLS = collections.Counter()


@cached_region('short_term')
def never_scanned(number):
    CALLS['never_scanned'] += 1
    return number + CALLS['never_scanned']
