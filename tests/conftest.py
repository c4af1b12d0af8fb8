"""Fixtures only (helpers live in tests/support/): a fake clock, Redis backends
(fakeredis; the real server when REDIS_URL is set; a three-master Redis Cluster
of our own when the redis-server and redis-cli binaries exist), stores on them
that count round trips, and ports where Redis is dead or silent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest

from sharedsession import AsyncSessionStore, SessionConfig, SessionStore
from tests.cluster.servers import ClusterServers, start_cluster
from tests.support import (
    HAVE_CLUSTER_BINARIES,
    REDIS_URL,
    SECRET,
    Backend,
    FakeClock,
    Harness,
    RecordingAsyncRedis,
    RecordingRedis,
    load_scripts,
)
from tests.support import closed_port as _closed_port
from tests.support import silent_port as _silent_port


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- backends ---------------------------------------------------------------

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

# With a real Redis, the store suite runs again with the local cache on (it needs
# CLIENT TRACKING, which fakeredis lacks, and one server: not Cluster).
MODES = ["sync", "async", *(["sync-cached", "async-cached"] if REDIS_URL else [])]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the cached modes where the cache cannot run (fakeredis, Cluster)."""
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        combo = params.params if params is not None else {}
        cached = str(combo.get("mode", "")).endswith("-cached") or combo.get("variant") == "cached"
        if cached and combo.get("backend") != "real":
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def make_store(backend: Backend, mode: str, clock: FakeClock) -> Iterator[Callable[..., Harness]]:
    """Build stores (replicas) on one backend: ``make_store(idle_timeout=60)``."""
    loop = asyncio.new_event_loop() if mode.startswith("async") else None
    async_clients: list[Any] = []
    made: list[Harness] = []
    # Round-trip counts below assume the server already caches our scripts,
    # as it does after the first request (the first use costs one more trip).
    load_scripts(backend.sync_client())

    def make(**overrides: Any) -> Harness:
        settings: dict[str, Any] = {"secret_key": SECRET, "key_prefix": backend.prefix}
        if mode.endswith("-cached"):
            settings["local_cache"] = 1000
        settings.update(overrides)
        store: SessionStore | AsyncSessionStore
        client: RecordingRedis | RecordingAsyncRedis
        if mode.startswith("async"):
            client = RecordingAsyncRedis(backend.async_client())
            async_clients.append(client.inner)
            store = AsyncSessionStore(SessionConfig(redis=client, **settings), clock=clock)
        else:
            client = RecordingRedis(backend.sync_client())
            store = SessionStore(SessionConfig(redis=client, **settings), clock=clock)
        harness = Harness(store, client.log, loop, clock)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        if loop is not None:
            loop.run_until_complete(harness.store.aclose())  # type: ignore[union-attr]
        else:
            harness.store.close()  # type: ignore[union-attr]
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


# -- dead and silent Redis -------------------------------------------------------


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on: connections are refused at once."""
    return _closed_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (in the backlog) and never answers."""
    with _silent_port() as port:
        yield port
