"""Private backend servers for fault tests, and a Redis command recorder.

``RedisServer()`` runs its own ``redis-server`` on a free loopback port
(no persistence); ``stop()`` kills it and ``start()`` brings it back, empty,
on the same port, so clients configured with ``url`` reconnect by
themselves.  ``pause()`` freezes it, to make clients time out.
``MemcachedServer()`` does the same with ``memcached``.

``CommandLog(port)`` watches a Redis server through ``MONITOR`` and returns
the commands run since the previous call, so tests can count commands and
round trips exactly.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from .servers import free_port


def require_program(name):
    """Skip (fail under CI) when the program ``name`` is not on PATH."""
    if shutil.which(name) is None:
        message = '%s is not on PATH' % name
        if os.environ.get('CI'):
            pytest.fail(message + ' (CI is set: fault tests must run)')
        pytest.skip(message)


def require_redis_server():
    """Skip (fail under CI) when ``redis-server`` is not on PATH."""
    require_program('redis-server')


def _ping(port, timeout=0.5):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
            sock.sendall(b'PING\r\n')
            return sock.recv(16).startswith(b'+PONG')
    except OSError:
        return False


def accepts(port, host='127.0.0.1', timeout=0.5):
    """True when ``host:port`` accepts a TCP connection."""
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
        return True
    except OSError:
        return False


class ServerProcess:
    """A server subprocess on a fixed loopback port, to kill and restart.

    Subclasses give the ``program`` name, its :meth:`command`, a
    :meth:`ready` check and ``url_format``, which makes ``url`` (what
    clients are configured with) from the port.
    """

    program = None
    url_format = None

    def __init__(self, port=None):
        self.port = port or free_port()
        self.url = self.url_format % self.port
        self.process = None

    def command(self):
        """The command line that runs the server on ``self.port``."""
        raise NotImplementedError

    def ready(self):
        """True once the server answers."""
        raise NotImplementedError

    def start(self, timeout=10):
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('%s did not start on %d' % (self.program, self.port))
            time.sleep(0.02)
        return self

    def stop(self):
        """Kill the server (as a crash would) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # SIGKILL works on a paused process too
            self.process.wait(timeout=10)
        self.process = None

    def pause(self):
        """Freeze the server (SIGSTOP): clients hang until their timeout."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class RedisServer(ServerProcess):
    """A redis-server subprocess on a fixed loopback port; ``url`` uses db 0."""

    program = 'redis-server'
    url_format = 'redis://127.0.0.1:%d/0'

    def command(self):
        return ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1',
                '--save', '', '--appendonly', 'no', '--daemonize', 'no']

    def ready(self):
        return _ping(self.port)


class MemcachedServer(ServerProcess):
    """A memcached subprocess on a fixed loopback port; ``url`` is host:port."""

    program = 'memcached'
    url_format = '127.0.0.1:%d'

    def command(self):
        command = ['memcached', '-l', '127.0.0.1', '-p', str(self.port)]
        if os.geteuid() == 0:
            command += ['-u', 'root']  # memcached refuses to run as root otherwise
        return command

    def ready(self):
        return accepts(self.port)


def running(server_class):
    """Yield a started ``server_class()``, stopped afterwards (for fixtures);
    skip (fail under CI) when its program is not on PATH."""
    require_program(server_class.program)
    with server_class() as server:
        yield server


_LINE = re.compile(r'^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"')


class CommandLog:
    """The commands a Redis server runs, read from a ``MONITOR`` connection."""

    def __init__(self, port, timeout=5):
        self.monitor = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.marker = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.marker_client = '%s:%d' % self.marker.getsockname()
        self._buffer = b''
        self._count = 0
        self.monitor.sendall(b'MONITOR\r\n')
        if self._readline() != '+OK':
            raise RuntimeError('MONITOR was refused')

    def _readline(self):
        while b'\r\n' not in self._buffer:
            chunk = self.monitor.recv(65536)
            if not chunk:
                raise ConnectionError('MONITOR connection closed')
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b'\r\n', 1)
        return line.decode('utf-8', 'replace')

    def commands(self):
        """Return ``[(client, COMMAND), ...]`` run since the previous call.

        Commands run by Lua scripts (client ``lua``) are included.
        """
        self._count += 1
        token = 'commandlog-%d' % self._count
        self.marker.sendall(b'ECHO %s\r\n' % token.encode())
        self.marker.recv(64)
        found = []
        while True:
            match = _LINE.match(self._readline())
            if match is None:
                continue
            client, name = match.groups()
            if client == self.marker_client:
                if name.upper() == 'ECHO':
                    return found
                continue
            found.append((client, name.upper()))

    def close(self):
        self.monitor.close()
        self.marker.close()


def names(commands):
    """Command names only, in order."""
    return [name for _, name in commands]


def round_trips(commands):
    """Count round trips: each command once, a MULTI ... EXEC block once.

    Commands run inside Lua scripts are not round trips.
    """
    count = 0
    in_multi = set()
    for client, name in commands:
        if client == 'lua':
            continue
        if name == 'MULTI':
            in_multi.add(client)
            count += 1
        elif name == 'EXEC':
            in_multi.discard(client)
        elif client not in in_multi:
            count += 1
    return count
