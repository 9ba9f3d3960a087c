"""Private backend servers for fault tests, and a Redis command recorder.

``RedisServer()`` runs its own ``redis-server`` on a free loopback port
(no persistence); ``stop()`` kills it and ``start()`` brings it back, empty,
on the same port, so clients configured with ``url`` reconnect by
themselves.  ``pause()`` freezes it, to make clients time out.

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


def require_redis_server():
    """Skip (fail under CI) when ``redis-server`` is not on PATH."""
    if shutil.which('redis-server') is None:
        message = 'redis-server is not on PATH'
        if os.environ.get('CI'):
            pytest.fail(message + ' (CI is set: fault tests must run)')
        pytest.skip(message)


def _ping(port, timeout=0.5):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
            sock.sendall(b'PING\r\n')
            return sock.recv(16).startswith(b'+PONG')
    except OSError:
        return False


class RedisServer:
    """A redis-server subprocess on a fixed loopback port; ``url`` uses db 0."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.url = 'redis://127.0.0.1:%d/0' % self.port
        self.process = None

    def start(self, timeout=10):
        self.process = subprocess.Popen(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('redis-server did not start on %d' % self.port)
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
