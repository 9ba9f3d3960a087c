"""A loopback TCP forwarder that tests can cut, to simulate a server going away.

``TCPProxy(target_port)`` listens on a free loopback port and forwards each
connection to ``127.0.0.1:target_port``.  ``stop()`` closes the listener and
every forwarded connection (clients see closed connections and refusals, as
when a server dies); ``start()`` listens again on the same port.  ``freeze()``
keeps every connection open and accepts new ones, but forwards nothing (as
when a server hangs: the kernel still acknowledges what clients send);
``thaw()`` forwards again.  Use it as a context manager so that everything
is closed.
"""
import selectors
import socket
import threading
import time


class TCPProxy:
    def __init__(self, target_port, target_host='127.0.0.1'):
        self.target = (target_host, target_port)
        self.port = None
        self._listener = None
        self._sockets = set()
        self._lock = threading.Lock()
        self._threads = []
        self.frozen = False

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        """Listen (again) on ``self.port``, or on a free port the first time."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(('127.0.0.1', self.port or 0))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._spawn(self._accept_loop, listener)

    def stop(self):
        """Close the listener and every forwarded connection; wait for threads."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            listener.close()
        for sock in sockets:
            _close(sock)
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    def freeze(self):
        """Stop forwarding: connections stay open, nothing reaches either side."""
        self.frozen = True

    def thaw(self):
        """Forward again what was held back and what comes next."""
        self.frozen = False

    def _spawn(self, target, *args):
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener):
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:  # closed by stop()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._listener is not listener:
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
            self._spawn(self._pump, client, upstream)

    def _pump(self, client, upstream):
        """Copy bytes both ways until either side closes or the proxy stops."""
        peer = {client: upstream, upstream: client}
        client.settimeout(5)
        with selectors.DefaultSelector() as selector:
            for sock in peer:
                selector.register(sock, selectors.EVENT_READ)
            try:
                while client in self._sockets:
                    if self.frozen:
                        time.sleep(0.02)
                        continue
                    for key, _ in selector.select(timeout=0.1):
                        data = key.fileobj.recv(65536)
                        if not data:
                            raise EOFError
                        peer[key.fileobj].sendall(data)
            except (OSError, EOFError, ValueError):
                pass
        with self._lock:
            self._sockets.difference_update(peer)
        for sock in peer:
            _close(sock)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
