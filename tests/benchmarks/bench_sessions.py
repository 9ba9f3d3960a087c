"""Per-request cost of sessions: ``python -m tests.benchmarks.bench_sessions``.

Prints, side by side in one run, the median cost of a request whose view
does not touch, reads or writes the session, for: no session factory,
Pyramid's SignedCookieSessionFactory, and this package's memory, file and
cookie sessions.  Ratios are to the request with no session factory.  Also
counts the file writes a read makes.  Not a test: nothing here asserts.
"""
import argparse
import os
import statistics
import tempfile
import time

from pyramid.config import Configurator
from pyramid.session import SignedCookieSessionFactory
from webob import Request

from pyramid_beaker.session import BeakerSessionFactoryConfig

SECRET = 'benchmark-secret'


def untouched(request):
    return request.response


def read(request):
    request.response.text = str(request.session.get('user'))
    return request.response


def write(request):
    request.session['counter'] = request.session.get('counter', 0) + 1
    return request.response


def make_app(factory):
    config = Configurator()
    if factory is not None:
        config.set_session_factory(factory)
    for view in (untouched, read, write):
        config.add_route(view.__name__, '/' + view.__name__)
        config.add_view(view, route_name=view.__name__)
    return config.make_wsgi_app()


def call(app, path, cookie):
    request = Request.blank(path)
    if cookie:
        request.headers['Cookie'] = cookie
    return request.get_response(app)


def session_cookie(app):
    """Make a session holding a user name; return the Cookie header for it."""
    response = call(app, '/write', None)
    name, _, rest = response.headers['Set-Cookie'].partition('=')
    return '%s=%s' % (name, rest.split(';', 1)[0])


def per_request(app, path, cookie, requests, loops):
    """Median microseconds per request over ``loops`` runs of ``requests``."""
    timings = []
    for _ in range(loops):
        start = time.perf_counter()
        for _ in range(requests):
            call(app, path, cookie)
        timings.append((time.perf_counter() - start) / requests * 1e6)
    return statistics.median(timings)


def file_writes(data_dir, app, cookie, requests):
    """How many session files a series of reads rewrote."""
    stamps = {}
    for root, _, names in os.walk(data_dir):
        for name in names:
            path = os.path.join(root, name)
            stamps[path] = os.stat(path).st_mtime_ns, os.stat(path).st_ino
    for _ in range(requests):
        call(app, '/read', cookie)
    changed = 0
    for path, stamp in stamps.items():
        if (os.stat(path).st_mtime_ns, os.stat(path).st_ino) != stamp:
            changed += 1
    return changed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--requests', type=int, default=1000)
    parser.add_argument('--loops', type=int, default=7)
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix='pb-bench-')
    candidates = [
        ('no session factory', None),
        ('SignedCookieSessionFactory', SignedCookieSessionFactory(SECRET)),
        ('pyramid_beaker memory', BeakerSessionFactoryConfig(secret=SECRET)),
        ('pyramid_beaker file', BeakerSessionFactoryConfig(
            secret=SECRET, type='file', data_dir=data_dir)),
        ('pyramid_beaker cookie', BeakerSessionFactoryConfig(
            secret=SECRET, type='cookie')),
        ('pyramid_beaker cookie+AES', BeakerSessionFactoryConfig(
            secret=SECRET, type='cookie', encrypt_key='benchmark-key')),
    ]
    print('per-request cost, median of %d loops x %d requests (microseconds; '
          'ratio to no session factory)' % (args.loops, args.requests))
    header = '%-28s %16s %16s %16s' % ('implementation', 'untouched', 'read', 'write')
    print(header)
    print('-' * len(header))
    baseline = None
    rows = {}
    for name, factory in candidates:
        app = make_app(factory)
        cookie = session_cookie(app) if factory is not None else None
        views = ('untouched',) if factory is None else ('untouched', 'read', 'write')
        costs = [per_request(app, '/' + view, cookie, args.requests, args.loops)
                 for view in views]
        baseline = baseline or costs[0]
        rows[name] = costs
        print('%-28s %s' % (name, ' '.join(
            '%8.1f (%5.2fx)' % (cost, cost / baseline) for cost in costs)))
    signed = rows['SignedCookieSessionFactory'][1]
    print()
    for name in ('pyramid_beaker memory', 'pyramid_beaker file', 'pyramid_beaker cookie'):
        print('read cost of %-22s / SignedCookieSessionFactory read: %.2f'
              % (name, rows[name][1] / signed))
    file_app = make_app(candidates[3][1])
    cookie = session_cookie(file_app)
    print('session files rewritten by 1000 file-backed reads: %d'
          % file_writes(data_dir, file_app, cookie, 1000))


if __name__ == '__main__':
    main()
