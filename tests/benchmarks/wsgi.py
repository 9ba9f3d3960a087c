"""The WSGI environ of a plain GET, shared by the benchmark scripts."""
import sys


def environ(path, cookie=None, query=''):
    """Return the environ of ``GET path?query``, with ``cookie`` as its Cookie header."""
    env = {
        'REQUEST_METHOD': 'GET', 'SCRIPT_NAME': '', 'PATH_INFO': path,
        'QUERY_STRING': query, 'SERVER_NAME': 'localhost', 'SERVER_PORT': '80',
        'HTTP_HOST': 'localhost', 'SERVER_PROTOCOL': 'HTTP/1.1',
        'wsgi.url_scheme': 'http', 'wsgi.input': None, 'wsgi.errors': sys.stderr,
        'wsgi.version': (1, 0), 'wsgi.multithread': False,
        'wsgi.multiprocess': False, 'wsgi.run_once': False,
    }
    if cookie:
        env['HTTP_COOKIE'] = cookie
    return env
