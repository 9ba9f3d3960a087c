"""What counting the cache statistics adds to a hit: this tree against an older one.

Run it (it is not a test) from a git checkout, naming the revision to
compare with (one without the statistics)::

    python -m tests.benchmarks.bench_stats_overhead REVISION [--rounds 9] [--counts 3]

It extracts ``pyramid_beaker/`` of REVISION into a temporary directory,
then measures a hit of ``f(1, 2)`` on a memory region (called inside an
active app, as in a request) with each of the two packages, side by side:

- instructions per hit, counted by ``valgrind --tool=callgrind`` (the
  difference between runs of 2,000 and 22,000 hits, so start-up cancels
  out; every run with ``PYTHONHASHSEED=0``), the median of COUNTS such
  pairs: the stable figure (dict probes keyed by object addresses still
  vary a little from run to run);
- nanoseconds per hit, the median of ROUNDS alternating subprocess runs.

Each run checks that it imported the package it was meant to, that every
timed call was a hit (the function never ran again) and, for a package
with statistics, that ``pyramid_beaker.stats()`` counted every hit.  It
prints both figures and the ratio, then whether the hit path grew by at
most 5 %.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET = 1.05
#: Hits per timed round, and the two hit counts whose instruction counts
#: are subtracted.
CALLS = 200000
FEW, MANY = 2000, 22000

#: Runs in a subprocess: python -c PROGRAM PACKAGE_DIR MODE CALLS
PROGRAM = r'''
import sys, timeit
package_dir, mode, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, package_dir)
import pyramid_beaker
assert pyramid_beaker.__file__.startswith(package_dir), pyramid_beaker.__file__
from pyramid.config import Configurator
ran = []

@pyramid_beaker.cached_region('bench')
def f(a, b):
    ran.append(1)
    return a + b

config = Configurator(settings={})
config.include('pyramid_beaker')
config.add_cache_region('bench', type='memory', expire=3600)
config.add_cached_function(f)
config.commit()
config.begin()
assert f(1, 2) == 3 and f(1, 2) == 3 and len(ran) == 1
if mode == 'time':
    seconds = timeit.Timer('f(1, 2)', globals={'f': f}).timeit(calls)
    print('ns', seconds / calls * 1e9)
else:
    for _ in range(calls):
        f(1, 2)
assert len(ran) == 1, 'a timed call was not a hit'
stats = getattr(pyramid_beaker, 'stats', None)
if stats is not None:
    hits = stats(config.registry)['functions']['__main__.f']['hits']
    assert hits == calls + 1, (hits, calls)
    print('counted', hits)
'''


def extract(revision, into):
    """Write ``pyramid_beaker/`` as of ``revision`` under ``into``."""
    archive = subprocess.run(['git', '-C', ROOT, 'archive', revision, 'pyramid_beaker'],
                             check=True, capture_output=True, timeout=60).stdout
    subprocess.run(['tar', '-x', '-C', into], input=archive, check=True, timeout=60)
    return into


def run(package_dir, mode, calls, valgrind=False):
    command = [sys.executable, '-c', PROGRAM, package_dir, mode, str(calls)]
    if valgrind:
        out_file = os.path.join(tempfile.gettempdir(), 'bench-stats-%d.out' % os.getpid())
        command = ['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out_file,
                   *command]
    # One hash seed for every run: string hashes, and so the probes of every
    # dict lookup, are then the same in each, and instruction counts repeat.
    env = dict(os.environ, PYTHONHASHSEED='0')
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            cwd=tempfile.gettempdir(), env=env)
    if result.returncode != 0:
        raise SystemExit('run failed:\n' + result.stdout + result.stderr)
    if valgrind:
        os.remove(out_file)
        found = re.search(r'Collected : (\d+)', result.stderr)
        return int(found.group(1))
    return float(re.search(r'^ns (\S+)$', result.stdout, re.M).group(1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('revision', help='the git revision to compare with')
    parser.add_argument('--rounds', type=int, default=9, help='timed runs per package')
    parser.add_argument('--counts', type=int, default=3,
                        help='instruction counts per package (pairs of valgrind runs)')
    options = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix='bench-stats-')
    try:
        trees = {'before (%s)' % options.revision: extract(options.revision, workdir),
                 'this tree': ROOT}
        counted = {name: [] for name in trees}
        for _ in range(options.counts):
            for name, tree in trees.items():
                few = run(tree, 'count', FEW, valgrind=True)
                many = run(tree, 'count', MANY, valgrind=True)
                counted[name].append((many - few) / (MANY - FEW))
        instructions = {name: statistics.median(found) for name, found in counted.items()}
        times = {name: [] for name in trees}
        for _ in range(options.rounds):
            for name, tree in trees.items():
                times[name].append(run(tree, 'time', CALLS))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {name: statistics.median(found) for name, found in times.items()}
    before, after = list(trees)
    print('cache hit of f(1, 2), memory region, python %s' % sys.version.split()[0])
    header = ('', 'instructions/hit', 'median ns/hit', 'instruction counts')
    print('%-24s %16s %14s  %s' % header)
    for name in trees:
        each = ' '.join('%.0f' % n for n in counted[name])
        print('%-24s %16.0f %14.0f  %s' % (name, instructions[name], medians[name], each))
    ratio = instructions[after] / instructions[before]
    time_ratio = medians[after] / medians[before]
    print('this tree / before (medians): %.3f in instructions (%d counts), %.3f in '
          'time (%d rounds)' % (ratio, options.counts, time_ratio, options.rounds))
    verdict = 'met' if ratio <= TARGET else 'MISSED'
    print('target: at most %.2f x the instructions of a hit: %s' % (TARGET, verdict))
    return 0 if ratio <= TARGET else 1


if __name__ == '__main__':
    sys.exit(main())
