"""Real Redis topologies on loopback, from the Debian binaries: single servers
configured as a test asks, a three-master Redis Cluster, and a master +
replica watched by three Sentinels.

Every process runs in a process group of its own (``spawn`` from the demo's
process helpers), so ``stop()`` ends whatever each one started, and a test
can ``kill -9`` one of them to simulate a crash. Files (cluster node
configs, the Sentinels' configs, which they rewrite, and logs) live in a
directory the caller owns.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

from sharedsession.demo.processes import Child, spawn

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")
REDIS_SENTINEL = shutil.which("redis-sentinel")

# Redis Cluster nodes also listen on port + 10000 (the cluster bus).
_BUS_OFFSET = 10000
# Common settings: loopback only, nothing written to disk.
_EPHEMERAL = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, with_bus: bool = False) -> list[int]:
    """``count`` distinct free loopback ports (and, ``with_bus``, port + 10000 free too).

    Picked from 20000-29999, below the kernel's ephemeral range: the +10000
    bus ports (30000-39999) stay valid port numbers, and outgoing connections
    are unlikely to grab them between this check and the server's bind.
    """
    ports: list[int] = []
    rng = random.SystemRandom()
    for _ in range(2000):
        port = rng.randrange(20000, 30000)
        if port in ports or (with_bus and port + _BUS_OFFSET in ports):
            continue
        if _port_free(port) and (not with_bus or _port_free(port + _BUS_OFFSET)):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise RuntimeError(f"found only {len(ports)} of {count} free loopback ports")


def wait_until(what: str, check: Callable[[], bool], timeout_seconds: float, step: float = 0.05) -> None:
    """Poll ``check`` until it is true; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_seconds:.0f} s")
        time.sleep(step)


def _ping(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5) as client:
        return bool(client.ping())


def _info(port: int, section: str) -> dict[str, object]:
    with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1, decode_responses=True) as client:
        return dict(client.info(section))


@dataclass
class Topology:
    """Processes started together and stopped together."""

    work: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Child:
        child = spawn(name, argv, {}, self.work / f"{name}.log")
        self.children.append(child)
        return child

    def wait_up(self, child: Child, port: int) -> None:
        def up() -> bool:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited (log: {child.log})")
            return _ping(port)

        wait_until(f"{child.name} answering PING", up, 10)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop(grace_seconds=3)
        self.children.clear()


# -- one server ---------------------------------------------------------------------


@dataclass
class SingleServer(Topology):
    """One redis-server of a test's own."""

    port: int = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, socket_timeout=5, socket_connect_timeout=5)


def start_server(work: Path, *settings: str) -> SingleServer:
    """Start a redis-server on a free port: loopback, nothing on disk, then ``settings`` (which win:
    ``"--save", "3600 1"`` turns snapshots back on). Files go to a directory of its own in ``work``."""
    if not REDIS_SERVER:
        raise RuntimeError("needs redis-server")
    (port,) = free_ports(1)
    server = SingleServer(work, port=port)
    server_dir = work / f"redis-{port}"
    server_dir.mkdir()
    argv = [REDIS_SERVER, "--port", str(port), *_EPHEMERAL, "--dir", str(server_dir), *settings]
    try:
        server.wait_up(server.start(f"redis-{port}", argv), port)
    except BaseException:
        server.stop()
        raise
    return server


# -- Redis Cluster ------------------------------------------------------------------


@dataclass
class ClusterServers(Topology):
    """A Redis Cluster of masters only (no replicas: failover is Sentinel's test)."""

    ports: list[int] = field(default_factory=list)

    @property
    def port(self) -> int:
        """A node to start from: redis-py discovers the others."""
        return self.ports[0]


def start_cluster(work: Path, masters: int = 3, node_timeout_ms: int = 5000) -> ClusterServers:
    """Start ``masters`` cluster-enabled servers, join them, wait for cluster_state:ok on each.

    ``node_timeout_ms``: how long a silent master takes to be declared failed
    (then, with no replica to promote, the cluster answers CLUSTERDOWN).
    """
    if not (REDIS_SERVER and REDIS_CLI):
        raise RuntimeError("needs redis-server and redis-cli")
    cluster = ClusterServers(work, ports=free_ports(masters, with_bus=True))
    try:
        for port in cluster.ports:
            node_dir = work / f"node-{port}"
            node_dir.mkdir()
            argv = [REDIS_SERVER, "--port", str(port), *_EPHEMERAL, "--dir", str(node_dir)]
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--cluster-node-timeout", str(node_timeout_ms)]
            cluster.start(f"cluster-{port}", argv)
        for child, port in zip(cluster.children, cluster.ports, strict=True):
            cluster.wait_up(child, port)
        subprocess.run(  # our own command line
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in cluster.ports), "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )

        def ready(port: int) -> bool:
            info = _cluster_info(port)
            return info.get("cluster_state") == "ok" and info.get("cluster_known_nodes") == str(masters)

        for port in cluster.ports:
            wait_until(f"cluster node {port}: cluster_state:ok", lambda port=port: ready(port), 30)  # type: ignore[misc]
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _cluster_info(port: int) -> dict[str, str]:
    with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as client:
        reply = client.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
    return {str(k): str(v) for k, v in reply.items()}


# -- Sentinel ---------------------------------------------------------------------------

SERVICE = "mymaster"

_SENTINEL_CONFIG = """\
port {port}
bind 127.0.0.1
dir {dir}
sentinel monitor {service} 127.0.0.1 {master} 2
sentinel down-after-milliseconds {service} 1000
sentinel failover-timeout {service} 5000
sentinel parallel-syncs {service} 1
"""


@dataclass
class SentinelServers(Topology):
    """A master, one replica and three Sentinels (quorum 2)."""

    master_port: int = 0
    replica_port: int = 0
    sentinel_ports: list[int] = field(default_factory=list)
    master: Child | None = None

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.sentinel_ports]

    def kill_master(self) -> None:
        """SIGKILL the master's process group: a crash, not a shutdown."""
        assert self.master is not None
        self.master.kill()

    def master_addresses(self) -> set[tuple[str, int]]:
        """Where the Sentinels that answer say the master is now."""
        found = set()
        for port in self.sentinel_ports:
            with (
                contextlib.suppress(redis.RedisError),
                redis.Redis(port=port, socket_timeout=0.5, decode_responses=True) as client,
            ):
                host, master = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                found.add((str(host), int(master)))
        return found


def start_sentinel_group(work: Path) -> SentinelServers:
    """Start the group and wait until every Sentinel knows the replica and the other two."""
    if not (REDIS_SERVER and REDIS_SENTINEL):
        raise RuntimeError("needs redis-server and redis-sentinel")
    master_port, replica_port, *sentinel_ports = free_ports(5)
    group = SentinelServers(work, master_port=master_port, replica_port=replica_port)
    group.sentinel_ports = sentinel_ports
    try:
        for role, port in (("master", master_port), ("replica", replica_port)):
            node_dir = work / role
            node_dir.mkdir()
            argv = [REDIS_SERVER, "--port", str(port), *_EPHEMERAL, "--dir", str(node_dir)]
            if role == "replica":
                argv += ["--replicaof", "127.0.0.1", str(master_port)]
            child = group.start(role, argv)
            group.wait_up(child, port)
            if role == "master":
                group.master = child
        wait_until(
            "replica in sync",
            lambda: _info(replica_port, "replication").get("master_link_status") == "up",
            15,
        )
        for port in sentinel_ports:
            sentinel_dir = work / f"sentinel-{port}"
            sentinel_dir.mkdir()
            config = sentinel_dir / "sentinel.conf"
            config.write_text(
                _SENTINEL_CONFIG.format(port=port, dir=sentinel_dir, service=SERVICE, master=master_port)
            )
            group.start(f"sentinel-{port}", [REDIS_SENTINEL, str(config)])
        for child, port in zip(group.children[2:], sentinel_ports, strict=True):
            group.wait_up(child, port)
        for port in sentinel_ports:
            wait_until(f"sentinel {port} knows the group", lambda port=port: _sentinel_ready(port), 30)  # type: ignore[misc]
    except BaseException:
        group.stop()
        raise
    return group


def _sentinel_ready(port: int) -> bool:
    """This Sentinel sees the master, the replica and both other Sentinels, none of them down."""
    with redis.Redis(port=port, socket_timeout=1, decode_responses=True) as client:
        master = client.execute_command("SENTINEL", "MASTER", SERVICE)
        replicas = client.execute_command("SENTINEL", "REPLICAS", SERVICE)
        others = client.execute_command("SENTINEL", "SENTINELS", SERVICE)
    flags = _fields(master).get("flags", "")
    return (
        flags == "master"
        and len(replicas) == 1
        and _fields(replicas[0]).get("flags") == "slave"
        and _fields(replicas[0]).get("master-link-status") == "ok"
        and len(others) == 2
    )


def _fields(reply: object) -> dict[str, str]:
    """SENTINEL MASTER/REPLICAS entries: a flat name, value list (RESP2) or a dict."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    items = [str(item) for item in reply] if isinstance(reply, list) else []
    return dict(zip(items[::2], items[1::2], strict=True))
