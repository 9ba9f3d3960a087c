"""Real app servers in subprocesses, for tests across processes.

``AppProcess(settings)`` starts ``tests/serve_app.py`` under waitress on a
free loopback port and stops it on exit.  The app it serves is
``tests.serve_app.make_app``: a few session and cache views driven by the
given settings.  Other scripts can be served the same way: see
:class:`AppProcess`.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class AppExited(RuntimeError):
    """The app process ended before it answered; ``output`` is what it printed."""

    def __init__(self, output):
        super().__init__('app process exited:\n' + output)
        self.output = output


class AppProcess:
    """Context manager running one app process; ``url`` is its base URL.

    The process runs ``python SCRIPT [ARGS...] PORT SETTINGS_JSON``: by
    default ``tests/serve_app.py`` without extra arguments, polled on
    ``/ping`` until it answers.  ``script``, ``args`` and ``ready_path``
    serve another app the same way.  An app that exits while starting
    raises :class:`AppExited`.
    """

    def __init__(self, settings, port=None, startup_timeout=15, script=None, args=(),
                 ready_path='/ping'):
        self.settings = settings
        self.port = port or free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.startup_timeout = startup_timeout
        self.script = script or os.path.join(HERE, 'serve_app.py')
        self.args = [str(arg) for arg in args]
        self.ready_path = ready_path
        self.process = None

    def __enter__(self):
        env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
        self.process = subprocess.Popen(
            [sys.executable, self.script, *self.args,
             str(self.port), json.dumps(self.settings)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors='replace')
                raise AppExited(output)
            try:
                urllib.request.urlopen(self.url + self.ready_path, timeout=1).read()
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError('app process did not start on ' + self.url)

    def __exit__(self, *exc):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.process is not None:
            self.process.stdout.close()
