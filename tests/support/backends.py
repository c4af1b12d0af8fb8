"""Redis for the tests: backends (fakeredis, the real server, a Cluster) and recording clients."""

from __future__ import annotations

import inspect
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fakeredis
import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster

from sharedsession._core import scripts

#: The real server the suite also runs on (CI sets it); None: fakeredis only.
REDIS_URL = os.environ.get("REDIS_URL")
HAVE_CLUSTER_BINARIES = bool(shutil.which("redis-server") and shutil.which("redis-cli"))


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


Sent = Callable[[list[tuple[Any, ...]]], None]


class _RecordingConnection:
    """A pooled connection that reports what each write sends: one packed write is one round trip."""

    def __init__(self, inner: Any, sent: Sent) -> None:
        self.inner = inner
        self._sent = sent
        self._commands: list[tuple[Any, ...]] = []

    def pack_commands(self, commands: Any) -> Any:
        self._commands = [tuple(args) for args in commands]
        return self.inner.pack_commands(self._commands)

    def send_packed_command(self, packed: Any, check_health: bool = True) -> Any:
        self._sent(self._commands)
        self._commands = []
        return self.inner.send_packed_command(packed, check_health=check_health)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _AsyncRecordingConnection(_RecordingConnection):
    async def send_packed_command(self, packed: Any, check_health: bool = True) -> Any:
        self._sent(self._commands)
        self._commands = []
        return await self.inner.send_packed_command(packed, check_health=check_health)


class RecordingPool:
    """A client's connection pool, handing out connections that report what they send."""

    def __init__(self, inner: Any, sent: Sent) -> None:
        self.inner = inner
        self._sent = sent

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        got = self.inner.get_connection(*args, **kwargs)
        if inspect.isawaitable(got):
            return self._async_connection(got)
        return _RecordingConnection(got, self._sent)

    async def _async_connection(self, got: Any) -> Any:
        return _AsyncRecordingConnection(await got, self._sent)

    def release(self, connection: Any) -> Any:
        return self.inner.release(
            connection.inner if isinstance(connection, _RecordingConnection) else connection
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _names(log: Log) -> Sent:
    return lambda commands: log.trips.append([str(args[0]).upper() for args in commands])


class RecordingRedis:
    """Wraps a sync client; counts every round trip made through it (through its commands,
    pipelines, or connections taken from its pool)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.log = Log()
        pool = getattr(inner, "connection_pool", None)  # a Cluster has none
        if pool is not None:
            self.connection_pool = RecordingPool(pool, _names(self.log))

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
        pool = getattr(inner, "connection_pool", None)
        if pool is not None:
            self.connection_pool = RecordingPool(pool, _names(self.log))

    def pipeline(self, transaction: bool = True) -> _RecordingPipeline:
        return _AsyncRecordingPipeline(self.inner.pipeline(transaction=transaction), self.log)

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.log.trips.append([str(args[0]).upper()])
        return await self.inner.execute_command(*args, **options)

    def scan_iter(self, *args: Any, **kwargs: Any) -> Any:
        self.log.trips.append(["SCAN"])
        return self.inner.scan_iter(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


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

    def release(self, client: Any) -> None:
        """Close a sync client now rather than at cleanup (tests that make many)."""
        client.close()
        self._sync.remove(client)

    def keys(self, client: Any, pattern: str) -> list[bytes]:
        """Every key matching ``pattern``, on every master of a cluster (each node scanned on its own)."""
        nodes = (
            [client.get_redis_connection(node) for node in client.get_primaries()]
            if self._cluster_port is not None
            else [client]
        )
        return [key for node in nodes for key in node.scan_iter(match=pattern, count=1000)]

    def delete(self, client: Any, prefix: str) -> None:
        """Delete every key under ``prefix`` (real-server tests never flush)."""
        for key in self.keys(client, prefix + "*"):
            client.delete(key)

    def cleanup(self) -> None:
        if self._server is None:
            self.delete(self.sync_client(), self.prefix)
        for client in self._sync:
            client.close()


def load_scripts(client: Any) -> None:
    """Have the server cache our scripts, as it does after a real app's first request."""
    for script in scripts.ALL:
        client.script_load(script.source)


def delete_prefix(url: str, prefix: str) -> None:
    """Delete a test's keys from a server other processes use (never flush)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
