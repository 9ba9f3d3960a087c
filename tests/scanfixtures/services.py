"""Cached service functions; ``CALLS`` counts how often each body ran."""
import asyncio
import collections
import os
import threading
import time

from pyramid.threadlocal import get_current_registry

from pyramid_beaker import cached_region

CALLS = collections.Counter()
_lock = threading.Lock()


def _count(name):
    with _lock:
        CALLS[name] += 1
        return CALLS[name]


@cached_region('short_term')
def exchange_rate(base, quote):
    return '%s/%s #%d' % (base, quote, _count('exchange_rate'))


@cached_region('short_term')
def combine(a, b=2, *rest, **options):
    return (a, b, rest, options, _count('combine'))


@cached_region('short_term', ignore=('db',))
def lookup(db, name):
    db.append(name)
    return '%s #%d' % (name, _count('lookup'))


@cached_region('short_term', should_cache=lambda value: value is not None)
def find(name):
    _count('find')
    return None if name == 'missing' else name.upper()


@cached_region('short_term')
def slow_square(number, delay):
    _count('slow_square')
    time.sleep(delay)
    return number * number


@cached_region('short_term')
def app_label(item):
    """Returns the name of the app it runs in, to tell apps apart."""
    return '%s:%s #%d' % (get_current_registry().settings['app_name'], item,
                          _count('app_label'))


@cached_region('long_term')
def other_region(item):
    return '%s #%d' % (item, _count('other_region'))


class Catalog:
    """Methods are keyed by the class of ``self`` / ``cls``."""

    @cached_region('short_term')
    def item(self, name):
        return '%s %s #%d' % (type(self).__name__, name, _count('item'))

    @classmethod
    @cached_region('short_term')
    def make(cls, name):
        return '%s %s #%d' % (cls.__name__, name, _count('make'))


class SpecialCatalog(Catalog):
    pass


class Shelf:
    """Instances with a deliberate key: shelves with one number share entries."""

    def __init__(self, number):
        self.number = number

    def __cache_key__(self):
        return self.number

    @cached_region('short_term')
    def count(self, name):
        return '%d %s #%d' % (self.number, name, _count('count'))


@cached_region('short_term')
def tallied(tally_path, delay):
    """Appends this process's id to a file, so runs count across processes."""
    with open(tally_path, 'a') as tally:
        tally.write('%d\n' % os.getpid())
    time.sleep(delay)
    return 'computed by %d' % os.getpid()


class Toolbox:
    """Static and zero-argument methods."""

    @staticmethod
    @cached_region('short_term')
    def double(number):
        return (number * 2, _count('double'))

    @cached_region('short_term')
    def size(self):
        """Only ``self``, and no ``self.request``: keyed by the class."""
        return '%s #%d' % (type(self).__name__, _count('size'))


@cached_region('short_term')
def flaky(name):
    """Fails on its first run for each name, then works."""
    if _count('flaky:' + name) == 1:
        raise RuntimeError('first run of %s fails' % name)
    return name


@cached_region('short_term')
async def async_square(number, delay):
    """A coroutine: ``await async_square(n, delay)`` is cached."""
    _count('async_square')
    await asyncio.sleep(delay)
    return number * number


@cached_region('long_term', expire=1)
def short_lived(item):
    """Kept for one second although its region keeps entries an hour."""
    return '%s #%d' % (item, _count('short_lived'))


@cached_region('short_term', should_cache=lambda value: False)
def never_stored(delay):
    """Its results are refused by should_cache; tracks how many run at once."""
    with _lock:
        RUNNING['never_stored'] += 1
        RUNNING['most'] = max(RUNNING['most'], RUNNING['never_stored'])
    try:
        time.sleep(delay)
    finally:
        with _lock:
            RUNNING['never_stored'] -= 1
    return _count('never_stored')


RUNNING = collections.Counter()


@cached_region('short_term')
def opaque(item):
    """Returns a value pickle cannot store (a local function)."""
    _count('opaque')
    return lambda: item


@cached_region('short_term', expire=1, stale_while_revalidate=60, ignore=('gate',))
def revalidated(item, gate):
    """Waits for ``gate`` (a threading.Event) on every run after the first."""
    if _count('revalidated') > 1:
        gate.wait(10)
    return '%s #%d' % (item, CALLS['revalidated'])
