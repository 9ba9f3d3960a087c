"""What a cache hit costs: ``f(1, 2)`` on an in-memory cache, four ways.

Run it (it is not a test)::

    python tests/benchmarks/bench_cache_hit.py [--calls 20000] [--rounds 15]

It times, side by side in one run, a hit through:

- ``@cached_region`` of pyramid_beaker, on a memory region, called inside
  an active app (as in a request: the app's registry is the current one);
- Beaker's own ``beaker.cache.cache_region`` on a Beaker memory region;
- dogpile.cache's ``cache_on_arguments`` on a ``dogpile.cache.memory`` region;
- ``functools.lru_cache`` (the floor: no expiry, no storage layer);
- ``@cached_region`` on an ``async def`` function, ``await f(1, 2)``
  inside a running event loop, next to the same ``await`` of a plain
  coroutine that caches nothing (the floor of any awaited call).

Rounds alternate between them so that drift in the machine's speed hits
all of them alike.  It prints each one's median cost per call in ns and
its ratio to Beaker's decorator and to ``lru_cache``, then whether
``@cached_region`` meets its target: at most 0.4 times the cost of
Beaker's.  Before timing, it checks that each contender really hits
(the function body ran once for two calls), and after, that no timed call
missed.  ``--instructions`` counts instructions per hit instead, with
``valgrind --tool=callgrind`` (stable where wall-clock time is noisy).
"""
import argparse
import asyncio
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import timeit

import beaker.cache
from pyramid.config import Configurator

from pyramid_beaker import cached_region

TARGET = 0.4  # @cached_region hit / Beaker cache_region hit


RUNS = {'ours': 0, 'ours_async': 0}


@cached_region('bench')
def ours(a, b):
    RUNS['ours'] += 1
    return a + b


@cached_region('bench')
async def ours_async(a, b):
    RUNS['ours_async'] += 1
    return a + b


async def uncached_async(a, b):
    return a + b


def make_ours():
    config = Configurator(settings={})
    config.include('pyramid_beaker')
    config.add_cache_region('bench', type='memory', expire=3600)
    config.add_cached_function(ours)
    config.add_cached_function(ours_async)
    config.commit()
    config.begin()  # what the router does for each request
    return ours


def async_timer(function, calls):
    """Time ``calls`` awaits of ``function(1, 2)`` inside one running loop."""
    async def loop():
        started = timeit.default_timer()
        for _ in range(calls):
            await function(1, 2)
        return timeit.default_timer() - started

    return lambda: asyncio.run(loop())


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


def build_timers(calls):
    """``{name: timer}``; each timer makes ``calls`` hits and returns seconds."""
    contenders = {
        '@cached_region (pyramid_beaker)': make_ours(),
        'beaker.cache.cache_region': make_beaker(),
        'dogpile.cache cache_on_arguments': make_dogpile(),
        'functools.lru_cache': make_lru(),
    }
    timers = {}
    for name, function in contenders.items():
        assert function(1, 2) == 3 and function(1, 2) == 3  # warm: now a hit
        timer = timeit.Timer('f(1, 2)', globals={'f': function})
        timers[name] = functools.partial(timer.timeit, calls)
    assert asyncio.run(ours_async(1, 2)) == 3 and asyncio.run(ours_async(1, 2)) == 3
    assert RUNS == {'ours': 1, 'ours_async': 1}, 'not a hit: %r' % RUNS
    timers[ASYNC] = async_timer(ours_async, calls)
    timers['await of an uncached coroutine'] = async_timer(uncached_async, calls)
    return timers


ASYNC = '@cached_region, await async def'
OURS = '@cached_region (pyramid_beaker)'
BEAKER = 'beaker.cache.cache_region'


def print_table(unit, figures):
    beaker, lru = figures[BEAKER], figures['functools.lru_cache']
    print('cache hit of f(1, 2), memory storage, python %s' % sys.version.split()[0])
    print('%-34s %10s %10s %10s' % ('', unit, 'vs beaker', 'vs lru'))
    for name, figure in figures.items():
        print('%-34s %10.0f %9.2fx %9.1fx' % (name, figure, figure / beaker, figure / lru))
    ratio = figures[OURS] / beaker
    verdict = 'met' if ratio <= TARGET else 'MISSED'
    print('target: @cached_region <= %.2f x beaker: %.2f (%s)' % (TARGET, ratio, verdict))
    return 0 if ratio <= TARGET else 1


def count_instructions(calls):
    """Instructions per hit, from callgrind runs of ``calls`` and ``2 * calls`` hits.

    The difference between the two runs cancels start-up and set-up, so
    what remains is the cost of ``calls`` hits.
    """
    names = list(build_timers(1))
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            totals = []
            for count in (calls, 2 * calls):
                out = os.path.join(tmp, 'callgrind.out')
                subprocess.run(
                    ['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out,
                     sys.executable, __file__, '--only', name, '--calls', str(count)],
                    check=True, capture_output=True, timeout=900,
                    env=dict(os.environ, PYTHONHASHSEED='0'))  # same dict layouts
                with open(out) as profile:
                    summary = [line for line in profile if line.startswith('summary:')]
                totals.append(int(summary[0].split()[1]))
            found[name] = (totals[1] - totals[0]) / calls
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--calls', type=int, default=20000, help='calls per round')
    parser.add_argument('--rounds', type=int, default=15, help='rounds per decorator')
    parser.add_argument('--instructions', action='store_true',
                        help='count instructions per hit with valgrind --tool=callgrind')
    parser.add_argument('--only', help=argparse.SUPPRESS)  # one contender, once
    options = parser.parse_args(argv)
    if options.only:
        build_timers(options.calls)[options.only]()
        return 0
    if options.instructions:
        return print_table('instr/hit', count_instructions(min(options.calls, 2000)))
    timers = build_timers(options.calls)
    samples = {name: [] for name in timers}
    for _ in range(options.rounds):
        for name, timer in timers.items():
            samples[name].append(timer() / options.calls * 1e9)
    assert RUNS == {'ours': 1, 'ours_async': 1}, 'a timed call missed: %r' % RUNS
    return print_table('median ns', {name: statistics.median(found)
                                     for name, found in samples.items()})


if __name__ == '__main__':
    sys.exit(main())
