"""Private Redis deployments for tests: a Sentinel group and a Cluster.

``SentinelGroup(tmp_dir)`` runs a primary, a replica and three
``redis-server --sentinel`` processes that watch them (service
:data:`SERVICE`); :meth:`SentinelGroup.failover` runs ``SENTINEL FAILOVER``
and waits until the old primary replicates from the new one.
``RedisCluster(tmp_dir)`` runs three ``--cluster-enabled`` servers joined by
``redis-cli --cluster create``.  Every process listens on a free loopback
port and is stopped by pid on exit; every wait is bounded.
"""
import os
import socket
import subprocess
import time

import redis

from .backend_faults import RedisServer, ServerProcess, _ping
from .servers import free_port

SERVICE = 'pbtest'


def wait_for(condition, timeout, what):
    """Poll ``condition()`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError('timed out waiting for ' + what)
        time.sleep(0.05)


class ConfiguredRedis(RedisServer):
    """A redis-server with extra arguments, working in ``directory``."""

    def __init__(self, directory, *args, port=None):
        super().__init__(port)
        self.directory = directory
        self.args = [str(arg) for arg in args]

    def command(self):
        return super().command() + ['--dir', self.directory] + self.args

    def client(self, **kwargs):
        return redis.Redis(port=self.port, socket_timeout=5, **kwargs)


class SentinelProcess(ServerProcess):
    """``redis-server <conf> --sentinel`` watching ``primary_port`` as SERVICE."""

    program = 'redis-server'
    url_format = '127.0.0.1:%d'

    def __init__(self, directory, primary_port):
        super().__init__()
        self.config = os.path.join(directory, 'sentinel-%d.conf' % self.port)
        with open(self.config, 'w') as f:
            f.write('port %d\nbind 127.0.0.1\ndir %s\n'
                    'sentinel monitor %s 127.0.0.1 %d 2\n'
                    'sentinel down-after-milliseconds %s 2000\n'
                    'sentinel failover-timeout %s 10000\n'
                    % (self.port, directory, SERVICE, primary_port, SERVICE, SERVICE))

    def command(self):
        return ['redis-server', self.config, '--sentinel']

    def ready(self):
        return _ping(self.port)

    def client(self):
        return redis.Redis(port=self.port, socket_timeout=5, decode_responses=True)


class SentinelGroup:
    """A primary, one replica and three Sentinels, started and stopped together."""

    def __init__(self, directory):
        self.directory = directory
        self.primary = ConfiguredRedis(directory, '--dbfilename', 'p.rdb')
        self.replica = ConfiguredRedis(directory, '--dbfilename', 'r.rdb', '--replicaof',
                                       '127.0.0.1', self.primary.port)
        self.sentinels = []

    @property
    def addresses(self):
        return ' '.join('127.0.0.1:%d' % s.port for s in self.sentinels)

    def __enter__(self):
        try:
            self.primary.start()
            self.replica.start()
            wait_for(lambda: self.replica.client().info('replication')[
                'master_link_status'] == 'up', 15, 'the replica to sync')
            for _ in range(3):
                self.sentinels.append(SentinelProcess(self.directory, self.primary.port).start())
            wait_for(self._watching, 20, 'the Sentinels to see the replica and each other')
        except BaseException:
            self.__exit__()
            raise
        return self

    def _watching(self):
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                replicas = client.sentinel_slaves(SERVICE)
                others = client.sentinel_sentinels(SERVICE)
            finally:
                client.close()
            if len(others) < 2 or not any(
                    r['port'] == self.replica.port and not r['is_odown']
                    and not r['is_sdown'] for r in replicas):
                return False
        return True

    def primary_port(self):
        """The primary's port, as the first Sentinel reports it."""
        client = self.sentinels[0].client()
        try:
            return int(client.sentinel_get_master_addr_by_name(SERVICE)[1])
        finally:
            client.close()

    def server(self, port):
        return self.primary if port == self.primary.port else self.replica

    def failover(self, timeout=30):
        """Run ``SENTINEL FAILOVER``; return once every Sentinel names the new
        primary and the old one replicates from it."""
        old = self.primary_port()
        new = self.replica.port if old == self.primary.port else self.primary.port
        client = self.sentinels[0].client()
        try:
            client.execute_command('SENTINEL', 'FAILOVER', SERVICE)
        finally:
            client.close()

        def done():
            for sentinel in self.sentinels:
                sentinel_client = sentinel.client()
                try:
                    port = int(sentinel_client.sentinel_get_master_addr_by_name(SERVICE)[1])
                finally:
                    sentinel_client.close()
                if port != new:
                    return False
            info = self.server(old).client().info('replication')
            return info['role'] == 'slave' and info['master_link_status'] == 'up' \
                and info['master_port'] == new

        wait_for(done, timeout, 'the failover to %d' % new)
        wait_for(lambda: any(r['port'] == old for r in self._replicas()), timeout,
                 'the Sentinels to list the old primary as a replica')
        return new

    def _replicas(self):
        client = self.sentinels[0].client()
        try:
            return client.sentinel_slaves(SERVICE)
        finally:
            client.close()

    def __exit__(self, *exc):
        for process in self.sentinels + [self.replica, self.primary]:
            process.stop()


def cluster_port():
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 < 65536 and accepts_bind(port + 10000):
            return port
    raise RuntimeError('no free port pair for a cluster node')


def accepts_bind(port):
    with socket.socket() as sock:
        try:
            sock.bind(('127.0.0.1', port))
        except OSError:
            return False
        return True


class ClusterNode(ConfiguredRedis):
    """A ``--cluster-enabled`` redis-server (its bus on port + 10000)."""

    def __init__(self, directory):
        port = cluster_port()
        super().__init__(directory, '--cluster-enabled', 'yes',
                         '--cluster-config-file', os.path.join(directory, 'nodes-%d.conf' % port),
                         '--cluster-node-timeout', '5000', '--dbfilename', '%d.rdb' % port,
                         port=port)


class RedisCluster:
    """Three primaries sharing the 16384 slots, created with ``redis-cli``."""

    def __init__(self, directory, size=3):
        self.nodes = [ClusterNode(directory) for _ in range(size)]

    @property
    def url(self):
        return ','.join('redis://127.0.0.1:%d' % node.port for node in self.nodes)

    def __enter__(self):
        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                ['redis-cli', '--cluster', 'create'] +
                ['127.0.0.1:%d' % node.port for node in self.nodes] + ['--cluster-yes'],
                check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wait_for(self._ok, 30, 'the cluster to cover every slot')
        except BaseException:
            self.__exit__()
            raise
        return self

    def _ok(self):
        for node in self.nodes:
            client = node.client(decode_responses=True)
            try:
                info = client.execute_command('CLUSTER', 'INFO')
            finally:
                client.close()
            if isinstance(info, dict):
                state = info.get('cluster_state')
            else:
                state = dict(line.split(':', 1) for line in info.split() if ':' in line).get(
                    'cluster_state')
            if state != 'ok':
                return False
        return True

    def node_of(self, key):
        """The node that serves ``key`` (by ``CLUSTER KEYSLOT`` and ``CLUSTER SHARDS``)."""
        client = self.nodes[0].client(decode_responses=True)
        try:
            slot = client.execute_command('CLUSTER', 'KEYSLOT', key)
            for start, end, *master in client.execute_command('CLUSTER', 'SLOTS'):
                if start <= slot <= end:
                    return int(master[0][1])
        finally:
            client.close()
        raise LookupError(key)

    def _node(self, port):
        return next(node for node in self.nodes if node.port == port)

    def start_moving(self, slot, target_port):
        """Mark ``slot`` as migrating to ``target_port`` and move its keys there;
        the source then answers ``ASK`` for them.  Return the source port."""
        clients = {node.port: node.client(decode_responses=True) for node in self.nodes}
        try:
            ids = {port: c.execute_command('CLUSTER', 'MYID') for port, c in clients.items()}
            source = self._owner(clients[target_port], slot)
            clients[target_port].execute_command(
                'CLUSTER', 'SETSLOT', slot, 'IMPORTING', ids[source])
            clients[source].execute_command('CLUSTER', 'SETSLOT', slot, 'MIGRATING',
                                            ids[target_port])
            while True:
                keys = clients[source].execute_command('CLUSTER', 'GETKEYSINSLOT', slot, 100)
                if not keys:
                    break
                clients[source].execute_command(
                    'MIGRATE', '127.0.0.1', target_port, '', 0, 5000, 'KEYS', *keys)
            return source
        finally:
            for client in clients.values():
                client.close()

    def finish_moving(self, slot, target_port):
        """Give ``slot`` to ``target_port`` on every node (clients then get ``MOVED``)."""
        clients = [node.client(decode_responses=True) for node in self.nodes]
        try:
            target = self._node(target_port).client(decode_responses=True)
            node_id = target.execute_command('CLUSTER', 'MYID')
            target.close()
            for client in clients:
                client.execute_command('CLUSTER', 'SETSLOT', slot, 'NODE', node_id)
        finally:
            for client in clients:
                client.close()

    @staticmethod
    def _owner(client, slot):
        for start, end, *master in client.execute_command('CLUSTER', 'SLOTS'):
            if start <= slot <= end:
                return int(master[0][1])
        raise LookupError(slot)

    def slot(self, key):
        client = self.nodes[0].client()
        try:
            return client.execute_command('CLUSTER', 'KEYSLOT', key)
        finally:
            client.close()

    def __exit__(self, *exc):
        for node in self.nodes:
            node.stop()
