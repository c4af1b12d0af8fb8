"""Shared fixtures: a fake clock, Redis backends (fakeredis; the real server
when REDIS_URL is set; a three-master Redis Cluster of our own when the
redis-server and redis-cli binaries exist), and recording clients that count
round trips."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from sharedsession import AsyncSessionStore, SessionConfig, SessionStore
from sharedsession._core import scripts
from tests.cluster.servers import ClusterServers, start_cluster

REDIS_URL = os.environ.get("REDIS_URL")
SECRET = "test-secret-key-0123456789abcdef"


class FakeClock:
    """A clock the tests move by hand. Starts at the real time, so that the
    absolute deadlines it yields still make sense to a real Redis."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- recording clients ------------------------------------------------------


@dataclass
class Log:
    """Every round trip a client made, as lists of command names."""

    trips: list[list[str]] = field(default_factory=list)

    @property
    def commands(self) -> list[str]:
        return [name for trip in self.trips for name in trip]

    def clear(self) -> None:
        self.trips.clear()


class _RecordingPipeline:
    def __init__(self, inner: Any, log: Log) -> None:
        self._inner = inner
        self._log = log
        self._names: list[str] = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self._names.append(str(args[0]).upper())
        return self._inner.execute_command(*args, **options)

    def execute(self, raise_on_error: bool = True) -> Any:
        self._log.trips.append(self._names)
        return self._inner.execute(raise_on_error=raise_on_error)


class RecordingRedis:
    """Wraps a sync client; counts every round trip made through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.log = Log()

    def pipeline(self, transaction: bool = True) -> _RecordingPipeline:
        return _RecordingPipeline(self.inner.pipeline(transaction=transaction), self.log)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.log.trips.append([str(args[0]).upper()])
        return self.inner.execute_command(*args, **options)

    def scan_iter(self, *args: Any, **kwargs: Any) -> Any:
        self.log.trips.append(["SCAN"])
        return self.inner.scan_iter(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # Anything else (a RedisCluster's slot map: get_node_from_key) is the client's own.
        return getattr(self.inner, name)


class RecordingAsyncRedis:
    """The asyncio twin of RecordingRedis."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.log = Log()

    def pipeline(self, transaction: bool = True) -> _RecordingPipeline:
        return _AsyncRecordingPipeline(self.inner.pipeline(transaction=transaction), self.log)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.log.trips.append([str(args[0]).upper()])
        return await self.inner.execute_command(*args, **options)

    def scan_iter(self, *args: Any, **kwargs: Any) -> Any:
        self.log.trips.append(["SCAN"])
        return self.inner.scan_iter(*args, **kwargs)


class _AsyncRecordingPipeline(_RecordingPipeline):
    async def execute(self, raise_on_error: bool = True) -> Any:
        self._log.trips.append(self._names)
        return await self._inner.execute(raise_on_error=raise_on_error)


# -- backends ---------------------------------------------------------------


class Backend:
    """One Redis (fake, real, or a Redis Cluster) from which any number of clients are made."""

    def __init__(self, name: str, cluster_port: int | None = None) -> None:
        self.name = name
        self.prefix = f"sstest:{uuid.uuid4().hex[:12]}:"
        self._server = fakeredis.FakeServer() if name == "fake" else None
        self._cluster_port = cluster_port
        self._sync: list[Any] = []
        self._async: list[Any] = []

    def sync_client(self) -> Any:
        client: Any
        if self._server is not None:
            client = fakeredis.FakeRedis(server=self._server)
        elif self._cluster_port is not None:
            client = redis.cluster.RedisCluster(host="127.0.0.1", port=self._cluster_port)
        else:
            client = redis.Redis.from_url(REDIS_URL or "")
        self._sync.append(client)
        return client

    def async_client(self) -> Any:
        client: Any
        if self._server is not None:
            client = fakeredis.FakeAsyncRedis(server=self._server)
        elif self._cluster_port is not None:
            client = redis.asyncio.cluster.RedisCluster(host="127.0.0.1", port=self._cluster_port)
        else:
            client = redis.asyncio.Redis.from_url(REDIS_URL or "")
        self._async.append(client)
        return client

    def cleanup(self) -> None:
        # Real-server tests never flush: they delete their own prefix only,
        # on every master of a cluster (each node scanned on its own).
        if self._server is None:
            admin = self.sync_client()
            nodes = (
                [admin.get_redis_connection(node) for node in admin.get_primaries()]
                if self._cluster_port is not None
                else [admin]
            )
            for node in nodes:
                keys = list(node.scan_iter(match=self.prefix + "*", count=1000))
                if keys:
                    pipe = node.pipeline(transaction=False)
                    for key in keys:
                        pipe.delete(key)
                    pipe.execute()
        for client in self._sync:
            client.close()


HAVE_CLUSTER_BINARIES = bool(shutil.which("redis-server") and shutil.which("redis-cli"))
BACKENDS = ["fake", *(["real"] if REDIS_URL else []), *(["cluster"] if HAVE_CLUSTER_BINARIES else [])]


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterServers]:
    """A three-master Redis Cluster on loopback, started on first use, stopped at the end."""
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "cluster":
        cluster: ClusterServers = request.getfixturevalue("redis_cluster")
        b = Backend("cluster", cluster_port=cluster.port)
    else:
        b = Backend(request.param)
    yield b
    b.cleanup()


@pytest.fixture
def raw(backend: Backend) -> Any:
    """A plain sync client on the backend, for looking at what was stored."""
    return backend.sync_client()


# -- one contract for both stores -------------------------------------------


class Harness:
    """SessionStore or AsyncSessionStore behind one synchronous face, plus the
    log of round trips its client made."""

    def __init__(
        self, store: SessionStore | AsyncSessionStore, log: Log, loop: asyncio.AbstractEventLoop | None
    ):
        self.store = store
        self.log = log
        self._loop = loop
        self.core = store.core
        self.keys = store.core.keys

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if asyncio.iscoroutine(result):
                assert self._loop is not None
                return self._loop.run_until_complete(result)
            return result

        return call


MODES = ["sync", "async"]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(backend: Backend, mode: str, clock: FakeClock) -> Iterator[Callable[..., Harness]]:
    """Build stores (replicas) on one backend: ``make_store(idle_timeout=60)``."""
    loop = asyncio.new_event_loop() if mode == "async" else None
    async_clients: list[Any] = []
    # Round-trip counts below assume the server already caches our scripts,
    # as it does after the first request (the first use costs one more trip).
    loader = backend.sync_client()
    for script in scripts.ALL:
        loader.script_load(script.source)

    def make(**overrides: Any) -> Harness:
        settings: dict[str, Any] = {"secret_key": SECRET, "key_prefix": backend.prefix}
        settings.update(overrides)
        store: SessionStore | AsyncSessionStore
        client: RecordingRedis | RecordingAsyncRedis
        if mode == "async":
            client = RecordingAsyncRedis(backend.async_client())
            async_clients.append(client.inner)
            store = AsyncSessionStore(SessionConfig(redis=client, **settings), clock=clock)
        else:
            client = RecordingRedis(backend.sync_client())
            store = SessionStore(SessionConfig(redis=client, **settings), clock=clock)
        return Harness(store, client.log, loop)

    yield make
    if loop is not None:
        for client in async_clients:
            loop.run_until_complete(client.aclose())
        loop.close()


@pytest.fixture
def store(make_store: Callable[..., Harness]) -> Harness:
    return make_store()


# -- a Redis that other processes can reach ------------------------------------


@pytest.fixture(scope="session")
def server_redis_url() -> Iterator[str]:
    """A Redis URL for tests that start server processes (gunicorn, uvicorn).

    The real server of REDIS_URL when set (as in CI); otherwise fakeredis's
    in-memory Redis-protocol server on a free loopback port, so these tests
    also run on a machine with no Redis at all.
    """
    if REDIS_URL:
        yield REDIS_URL
        return
    import threading

    server = fakeredis.TcpFakeServer(("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"redis://{host!s}:{port}/0"
    server.shutdown()
    server.server_close()


# -- dead and silent Redis, and cleaning up after server processes -------------------


def unused_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    return unused_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (in the backlog) and never answers."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        yield int(s.getsockname()[1])


def delete_prefix(url: str, prefix: str) -> None:
    """Delete a test's keys from a server other processes use (never flush)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
