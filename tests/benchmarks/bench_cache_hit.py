"""What a cache hit costs: ``f(1, 2)`` on an in-memory cache, four ways.

Run it (it is not a test)::

    python tests/benchmarks/bench_cache_hit.py [--calls 20000] [--rounds 15]

It times, side by side in one run, a hit through:

- ``@cached_region`` of pyramid_beaker, on a memory region, called inside
  an active app (as in a request: the app's registry is the current one);
- Beaker's own ``beaker.cache.cache_region`` on a Beaker memory region;
- dogpile.cache's ``cache_on_arguments`` on a ``dogpile.cache.memory`` region;
- ``functools.lru_cache`` (the floor: no expiry, no storage layer).

Rounds alternate between the four so that drift in the machine's speed
hits all of them alike.  It prints each one's median cost per call in ns
and its ratio to Beaker's decorator and to ``lru_cache``, then whether
``@cached_region`` meets its target: at most half the cost of Beaker's.
"""
import argparse
import functools
import statistics
import sys
import timeit

import beaker.cache
from pyramid.config import Configurator

from pyramid_beaker import cached_region

TARGET = 0.5  # @cached_region hit / Beaker cache_region hit


@cached_region('bench')
def ours(a, b):
    return a + b


def make_ours():
    config = Configurator(settings={})
    config.include('pyramid_beaker')
    config.add_cache_region('bench', type='memory', expire=3600)
    config.add_cached_function(ours)
    config.commit()
    config.begin()  # what the router does for each request
    return ours


def make_beaker():
    beaker.cache.cache_regions['beaker_bench'] = {
        'type': 'memory', 'expire': 3600, 'enabled': True, 'key_length': 250}

    @beaker.cache.cache_region('beaker_bench')
    def beakers(a, b):
        return a + b

    return beakers


def make_dogpile():
    from dogpile.cache import make_region

    region = make_region().configure('dogpile.cache.memory', expiration_time=3600)

    @region.cache_on_arguments()
    def dogpiles(a, b):
        return a + b

    return dogpiles


def make_lru():
    @functools.lru_cache(maxsize=None)
    def lrus(a, b):
        return a + b

    return lrus


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--calls', type=int, default=20000, help='calls per round')
    parser.add_argument('--rounds', type=int, default=15, help='rounds per decorator')
    options = parser.parse_args(argv)
    contenders = {
        '@cached_region (pyramid_beaker)': make_ours(),
        'beaker.cache.cache_region': make_beaker(),
        'dogpile.cache cache_on_arguments': make_dogpile(),
        'functools.lru_cache': make_lru(),
    }
    timers = {}
    for name, function in contenders.items():
        assert function(1, 2) == 3 and function(1, 2) == 3  # warm: now a hit
        timers[name] = timeit.Timer('f(1, 2)', globals={'f': function})
    samples = {name: [] for name in contenders}
    for _ in range(options.rounds):
        for name, timer in timers.items():
            samples[name].append(timer.timeit(options.calls) / options.calls * 1e9)
    medians = {name: statistics.median(found) for name, found in samples.items()}
    beaker_ns = medians['beaker.cache.cache_region']
    lru_ns = medians['functools.lru_cache']
    print('cache hit of f(1, 2), memory storage, python %s' % sys.version.split()[0])
    print('%-34s %10s %10s %10s' % ('', 'median ns', 'vs beaker', 'vs lru'))
    for name, median in medians.items():
        print('%-34s %10.0f %9.2fx %9.1fx' % (name, median, median / beaker_ns,
                                              median / lru_ns))
    ratio = medians['@cached_region (pyramid_beaker)'] / beaker_ns
    verdict = 'met' if ratio <= TARGET else 'MISSED'
    print('target: @cached_region <= %.2f x beaker: %.2f (%s)' % (TARGET, ratio, verdict))
    return 0 if ratio <= TARGET else 1


if __name__ == '__main__':
    sys.exit(main())
