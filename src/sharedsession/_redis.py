"""Run the core's batches on Redis: one pipeline per batch, sync or asyncio.

Both runners share everything but the ``await``: queueing onto a redis-py
pipeline is synchronous in both clients, and the step generators of
``_core`` decide what to send. A batch goes out as a non-transactional
pipeline (one round trip on one server; on a Cluster, one per node touched),
or, when it holds one operation (most requests), as that one command: the
same round trip without a pipeline object, which costs redis-py more CPU than
the command itself.

Scripts run by EVALSHA; a server that does not know a script yet answers
NOSCRIPT, and only those operations are sent again as EVAL, which also
caches the script on that server (works the same on every Cluster node).

On Redis Cluster every operation names one key, so each goes to the node of
its slot; a batch that touches several nodes is still one ``execute()``
(one round trip per node, sent in parallel). Nothing relies on two keys
sharing a slot, and no key uses a hash tag (see ``_core/keys.py``).
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.exceptions import (
    ClusterError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from sharedsession._core.plan import Arg, Batch, Command, Op, Replies, Steps
from sharedsession.config import SessionConfig
from sharedsession.errors import StoreUnavailableError

T = TypeVar("T")

# Errors that mean "Redis cannot serve us now" (down, slow, failing over),
# as opposed to a bug in what we sent.
UNAVAILABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,  # includes BusyLoading, MasterNotFound, MaxConnections
    RedisTimeoutError,
    ReadOnlyError,  # a replica that used to be the master, mid-failover
    OutOfMemoryError,  # maxmemory reached under noeviction: writes refused
    TryAgainError,  # Cluster: a slot being migrated
    # Cluster: CLUSTERDOWN (a master lost and not replaced: its slots are
    # uncovered), MASTERDOWN (a replica cut off from its master), redirections
    # exhausted. These are replies, not socket errors: without this entry a
    # request on a failed cluster would end in a 500, not a 503.
    ClusterError,
    RedisClusterException,  # Cluster: no node reachable to (re)learn the slots, slot not covered
)


class SyncPipeline(Protocol):
    def execute_command(self, *args: Any, **options: Any) -> Any: ...
    def execute(self, raise_on_error: bool = ...) -> list[Any]: ...


class AsyncPipeline(Protocol):
    def execute_command(self, *args: Any, **options: Any) -> Any: ...
    async def execute(self, raise_on_error: bool = ...) -> list[Any]: ...


class SyncClient(Protocol):
    def pipeline(self, transaction: bool = ...) -> Any: ...


class AsyncClient(Protocol):
    def pipeline(self, transaction: bool = ...) -> Any: ...


def _enqueue(
    pipe: SyncPipeline | AsyncPipeline,
    batch: Batch,
    *,
    by_source: bool,
    node_of: Callable[[str], object] | None = None,
) -> None:
    for op in batch:
        if isinstance(op, Command):
            pipe.execute_command(*op.args)
            continue
        head = ("EVAL", op.script.source) if by_source else ("EVALSHA", op.script.sha)
        if node_of is None:
            pipe.execute_command(*head, 1, op.key, *op.args)
        else:
            pipe.execute_command(*head, 1, op.key, *op.args, target_nodes=node_of(op.key))


def _command(op: Op, *, by_source: bool) -> tuple[Arg, ...]:
    if isinstance(op, Command):
        return op.args
    head = ("EVAL", op.script.source) if by_source else ("EVALSHA", op.script.sha)
    return (*head, 1, op.key, *op.args)


def _script_router(client: object) -> Callable[[str], object] | None:
    """For a synchronous RedisCluster: the node serving a key's slot, from its slot map.

    redis-py's sync ``ClusterPipeline`` finds the keys of an EVAL/EVALSHA by
    asking its *default node* (``COMMAND GETKEYS``) before sending anything:
    one hidden round trip per script, and every script fails, whatever its
    slot, while that one node is down. Each of our scripts runs on exactly one
    key, which we hold, so we name its node ourselves. A stale slot map is
    still safe: that node answers MOVED and redis-py resends the command by
    slot. The asyncio cluster pipeline reads the key itself, and other
    clients have no slots: both get None.
    """
    node_of = getattr(client, "get_node_from_key", None)
    return node_of if callable(node_of) else None


def _missing_scripts(replies: Sequence[object]) -> list[int]:
    return [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]


def _settle(replies: list[object]) -> list[object]:
    """Raise the first error among the replies (unavailable: StoreUnavailableError)."""
    for reply in replies:
        if isinstance(reply, UNAVAILABLE):
            raise StoreUnavailableError(f"Redis is unavailable: {reply}") from reply
        if isinstance(reply, Exception):
            raise reply
    return replies


@contextlib.contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Turn redis-py's "cannot serve now" errors into StoreUnavailableError (cause kept)."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailableError(f"Redis is unavailable: {type(exc).__name__}: {exc}") from exc


class SyncRunner:
    """Runs batches and drives step generators on a synchronous redis-py client."""

    def __init__(self, client: SyncClient) -> None:
        self.client = client
        self._node_of = _script_router(client)
        self._execute: Callable[..., Any] | None = getattr(client, "execute_command", None)

    def run(self, batch: Batch) -> list[object]:
        with unavailable_as_error():
            replies = self._send(batch, by_source=False)
            missing = _missing_scripts(replies)
            if missing:
                again = self._send(tuple(batch[i] for i in missing), by_source=True)
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        return _settle(replies)

    def drive(self, steps: Steps[T]) -> T:
        replies: Replies | None = None
        try:
            while True:
                batch = steps.send(replies)  # type: ignore[arg-type]  # None primes it
                replies = self.run(batch)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _send(self, batch: Batch, *, by_source: bool) -> list[object]:
        if len(batch) == 1 and self._execute is not None:  # one command, no pipeline object
            (op,) = batch
            node_of = self._node_of
            route = {} if node_of is None or isinstance(op, Command) else {"target_nodes": node_of(op.key)}
            try:
                return [self._execute(*_command(op, by_source=by_source), **route)]
            except ResponseError as exc:  # an error reply, returned as a pipeline returns it
                return [exc]
        pipe: SyncPipeline = self.client.pipeline(transaction=False)
        _enqueue(pipe, batch, by_source=by_source, node_of=self._node_of)
        return pipe.execute(raise_on_error=False)


class AsyncRunner:
    """The asyncio twin of SyncRunner: the same steps, awaited."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._execute: Callable[..., Awaitable[Any]] | None = getattr(client, "execute_command", None)

    async def run(self, batch: Batch) -> list[object]:
        with unavailable_as_error():
            replies = await self._send(batch, by_source=False)
            missing = _missing_scripts(replies)
            if missing:
                again = await self._send(tuple(batch[i] for i in missing), by_source=True)
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        return _settle(replies)

    async def drive(self, steps: Steps[T]) -> T:
        replies: Replies | None = None
        try:
            while True:
                batch = steps.send(replies)  # type: ignore[arg-type]  # None primes it
                replies = await self.run(batch)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _send(self, batch: Batch, *, by_source: bool) -> list[object]:
        if len(batch) == 1 and self._execute is not None:  # one command, no pipeline object
            try:
                return [await self._execute(*_command(batch[0], by_source=by_source))]
            except ResponseError as exc:  # an error reply, returned as a pipeline returns it
                return [exc]
        pipe: AsyncPipeline = self.client.pipeline(transaction=False)
        _enqueue(pipe, batch, by_source=by_source)
        return await pipe.execute(raise_on_error=False)


def is_async_client(client: object) -> bool:
    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


def sync_client(config: SessionConfig) -> SyncClient:
    """The client of ``config.redis``, or one built from ``redis_url`` with short timeouts."""
    if config.redis is not None:
        if is_async_client(config.redis) or not hasattr(config.redis, "pipeline"):
            raise TypeError(
                "SessionConfig.redis must be a synchronous redis-py client here "
                f"(redis.Redis, RedisCluster, Sentinel.master_for(...)); got {type(config.redis)!r}"
            )
        return config.redis  # checked above
    from redis.retry import Retry

    return redis.Redis.from_url(
        config.redis_url,
        socket_connect_timeout=config.redis_timeout,
        socket_timeout=config.redis_timeout,
        # One immediate retry heals a pooled connection that Redis closed
        # (restart, idle timeout); more would stretch an outage into a hang.
        retry=Retry(NoBackoff(), 1),
    )


def async_client(config: SessionConfig) -> AsyncClient:
    """The asyncio twin of :func:`sync_client`."""
    if config.redis is not None:
        if not is_async_client(config.redis) or not hasattr(config.redis, "pipeline"):
            raise TypeError(
                "SessionConfig.redis must be a redis.asyncio client here "
                f"(redis.asyncio.Redis, RedisCluster, Sentinel.master_for(...)); got {type(config.redis)!r}"
            )
        return config.redis  # checked above
    from redis.asyncio.retry import Retry

    return redis.asyncio.Redis.from_url(
        config.redis_url,
        socket_connect_timeout=config.redis_timeout,
        socket_timeout=config.redis_timeout,
        retry=Retry(NoBackoff(), 1),
    )
