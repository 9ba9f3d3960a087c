"""What the backend tests share: ids, planted pickles, threads, HTTP and apps.

The helpers build inputs, run things and return what happened; the tests
make the assertions.
"""
import contextlib
import json
import os
import pickle
import threading
import time
import urllib.request
import uuid

from beaker import cache as beaker_cache
from pyramid.interfaces import ISessionFactory
from webob import Request

from pyramid_beaker.codec import SignedCodec

from .session_app import SECRET, make_app

#: The session cookie's name (the default).
COOKIE = 'beaker.session.id'
#: The codec of session stores that tests build directly.
CODEC = SignedCodec('json', SECRET, 'session')


def new_id():
    """A new session id: 32 lowercase hex characters."""
    return uuid.uuid4().hex


def cookie_id(cookie):
    """The session id in a cookie value or in a 'name=value' header."""
    return cookie.rpartition('=')[2].partition('.')[0]


# -- planted pickles ---------------------------------------------------------------

class Trap:
    """Unpickling this creates the file ``path``: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def armed_pickle(tmp_dir):
    """Return (pickle bytes that create a marker file when loaded, marker path)."""
    probe = os.path.join(tmp_dir, 'probe')
    pickle.loads(pickle.dumps(Trap(probe))).close()
    assert os.path.exists(probe), 'the trap does not work, so its absence proves nothing'
    marker = os.path.join(tmp_dir, 'pwned')
    return pickle.dumps(Trap(marker)), marker


def forged_envelope(payload):
    """``payload`` behind a PB1 header with a MAC of zeros: shaped like ours, never valid."""
    return b'PB1' + b'\0' * 32 + b'p' + payload


def planted_payloads(tmp_dir, other_secret=True):
    """Return ([armed payloads a store must refuse], marker path).

    The payloads: an armed pickle, the same in a forged envelope and, with
    ``other_secret``, a pickled session record holding a :class:`Trap`,
    properly signed, but with another secret.
    """
    payload, marker = armed_pickle(tmp_dir)
    planted = [payload, forged_envelope(payload)]
    if other_secret:
        planted.append(SignedCodec('pickle', 'another-secret', 'session').dumps(
            {'d': {'evil': Trap(marker)}, 'c': 1.0, 'a': 1.0}))
    return planted, marker


# -- threads and HTTP ----------------------------------------------------------------

def run_together(count, target, barrier_timeout=10, join_timeout=60):
    """Run ``target(n)`` for each n in ``range(count)`` in threads released at
    once by a barrier; return the exceptions they raised."""
    barrier = threading.Barrier(count, timeout=barrier_timeout)
    errors = []

    def run(n):
        try:
            barrier.wait()
            target(n)
        except Exception as exc:  # returned to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=join_timeout)
    running = sum(thread.is_alive() for thread in threads)
    assert not running, '%d of %d threads still running' % (running, count)
    return errors


def save_together(app, cookie, count):
    """Let ``count`` requests on the session of ``cookie`` (a WebTest app of
    ``session_app``) all load it before any of them saves; request n sets
    ``k<n>`` to ``str(n)``.  Return the exceptions raised."""
    app.app.registry.together = threading.Barrier(count, timeout=10)

    def save(n):
        request = Request.blank('/set_together?key=k%d&value=%d' % (n, n),
                                headers={'Cookie': cookie})
        response = request.get_response(app.app)
        assert response.status_int == 200, response.status

    return run_together(count, save, join_timeout=30)


def http_get(url, cookie=None, timeout=10, as_json=True):
    """GET ``url``; return (body, session cookie 'name=value' or None).

    The body is decoded from JSON, or left as bytes when ``as_json`` is false.
    """
    request = urllib.request.Request(url)
    if cookie:
        request.add_header('Cookie', cookie)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
        set_cookie = response.headers.get('Set-Cookie')
    if as_json:
        body = json.loads(body)
    return body, set_cookie.split(';')[0] if set_cookie else None


# -- apps and caches -------------------------------------------------------------------

@contextlib.contextmanager
def app_maker():
    """Yield ``make(**options)``, which returns a WebTest app of
    ``session_app.make_app``; the apps' session stores are closed on exit."""
    made = []

    def make(**options):
        made.append(make_app(**options))
        return made[-1]

    try:
        yield make
    finally:
        for app in made:
            app.app.registry.getUtility(ISessionFactory).store.close()


def session_settings(store_type, **options):
    """Settings for an app process (``tests/serve_app.py``) whose sessions are
    of ``store_type``, signed with SECRET; ``options`` become ``session.*``."""
    settings = {'session.type': store_type, 'session.secret': SECRET}
    settings.update(('session.' + name, value) for name, value in options.items())
    return settings


def share_a_session(one, two):
    """Change one session through two app processes in turn.

    Set ``a`` on ``one``; read on ``two``; set ``b`` and remove ``a`` on
    ``two``; read on ``one``.  Return (cookie, first read, last read).
    """
    _, cookie = http_get(one.url + '/set?key=a&value=1')
    first = http_get(two.url + '/get', cookie)[0]
    http_get(two.url + '/set?key=b&value=2', cookie)
    http_get(two.url + '/delete?key=a', cookie)
    return cookie, first, http_get(one.url + '/get', cookie)[0]


def write_concurrently(servers, cookie, writers, join_timeout=60):
    """Let ``writers`` requests, released together, each set key ``k<n>`` to
    ``str(n)`` in the session of ``cookie``; request n goes to
    ``servers[n % len(servers)]``.  Return the exceptions raised."""
    def write(n):
        server = servers[n % len(servers)]
        http_get(server.url + '/set?key=k%d&value=%d' % (n, n), cookie)

    return run_together(writers, write, join_timeout=join_timeout)


def written(writers, start):
    """What a session holds after :func:`write_concurrently` on a session
    created with ``start`` set to ``start``."""
    expected = {'k%d' % n: str(n) for n in range(writers)}
    expected['start'] = str(start)
    return expected


def compute_together(caches, key, seconds, join_timeout=60):
    """Get ``key`` from every cache of ``caches`` at once, each in a thread
    of its own, with a creation function that takes ``seconds``.

    Return (the values got, how many times the creation function ran, the
    exceptions raised).
    """
    calls = []
    results = []

    def create():
        calls.append(1)
        time.sleep(seconds)
        return 'value'

    errors = run_together(len(caches), lambda n: results.append(
        caches[n].get(key, createfunc=create)), join_timeout=join_timeout)
    return results, len(calls), errors


def signed_cache(store_type, namespace='ns', **options):
    """A Beaker ``Cache`` of the namespace manager ``store_type`` (an entry
    point name such as ``pyramid_beaker.redis``), signing with SECRET."""
    return beaker_cache.Cache(namespace, type=store_type, secret=SECRET, **options)
