"""A cached function whose region no test app configures."""
from pyramid_beaker import cached_region


@cached_region('nowhere')
def orphan(number):
    return number
