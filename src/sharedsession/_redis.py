"""Run the core's batches on Redis: one pipeline per batch, sync or asyncio.

Both runners share everything but the call that does I/O (``_send``): the
step generators of ``_core`` decide what to send, and ``_Runner._exchange``
turns their batches into redis-py calls and their replies back. A batch goes out as a non-transactional
pipeline (one round trip on one server; on a Cluster, one per node touched),
or, when it holds one operation (most requests), as that one command: the
same round trip without a pipeline object, which costs redis-py more CPU than
the command itself.

Scripts run by EVALSHA; a server that does not know a script yet answers
NOSCRIPT, and only those operations are sent again as EVAL, which also
caches the script on that server (works the same on every Cluster node).

On Redis Cluster every operation names one key, so each goes to the node of
its slot (scripts routed by us, see ``_script_router``); a batch that touches
several nodes is still one ``execute()``
(one round trip per node, sent in parallel). Nothing relies on two keys
sharing a slot, and no key uses a hash tag (see ``_core/keys.py``).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
from collections.abc import Callable, Generator, Iterator
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

from sharedsession._core.config import SessionConfig
from sharedsession._core.errors import StoreUnavailableError
from sharedsession._core.ops import Arg, Batch, Command, Replies, Steps

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

# Error replies redis-py leaves as a plain ResponseError that mean the same:
# BUSY (a long script runs elsewhere), MISCONF (persistence failing and
# stop-writes-on-bgsave-error), NOREPLICAS (min-replicas-to-write not met).
# Also matched where an older server wraps them in a script's error message.
_UNAVAILABLE_CODES = re.compile(
    r"(?:^|: -|\s-)(BUSY|MISCONF|NOREPLICAS|MASTERDOWN|LOADING|READONLY|OOM|CLUSTERDOWN|TRYAGAIN)\b"
)


_MAYBE_UNAVAILABLE: tuple[type[Exception], ...] = (*UNAVAILABLE, ResponseError)


def is_unavailable(error: BaseException) -> bool:
    """Whether a redis-py error means "Redis cannot serve us now" (a 503), not a bug of ours."""
    if isinstance(error, UNAVAILABLE):
        return True
    return isinstance(error, ResponseError) and _UNAVAILABLE_CODES.search(str(error)) is not None


class SyncClient(Protocol):
    def pipeline(self, transaction: bool = ...) -> Any: ...


class AsyncClient(Protocol):
    def pipeline(self, transaction: bool = ...) -> Any: ...


#: One command as it goes to redis-py: its arguments, and keyword options
#: (``target_nodes`` on Redis Cluster).
Call = tuple[tuple[Arg, ...], dict[str, Any]]


def _script_router(client: object) -> Callable[[str], object] | None:
    """For a RedisCluster (sync or asyncio): the node serving a key's slot, from its slot map.

    redis-py's sync ``ClusterPipeline`` finds the keys of an EVAL/EVALSHA by
    asking its *default node* (``COMMAND GETKEYS``) before sending anything:
    one hidden round trip per script, and every script fails, whatever its
    slot, while that one node is down. Each of our scripts runs on exactly one
    key, which we hold, so we name its node ourselves, on both clients alike.
    A stale slot map is still safe: that node answers MOVED and redis-py
    resends the command by slot. Clients without slots get None.
    """
    node_of = getattr(client, "get_node_from_key", None)
    return node_of if callable(node_of) else None


def _settle(replies: list[object]) -> list[object]:
    """Raise the first error among the replies (unavailable: StoreUnavailableError)."""
    for reply in replies:
        if isinstance(reply, Exception):
            if is_unavailable(reply):
                raise StoreUnavailableError(f"Redis is unavailable: {reply}") from reply
            raise reply
    return replies


@contextlib.contextmanager
def unavailable_as_error() -> Iterator[None]:
    """Turn redis-py's "cannot serve now" errors into StoreUnavailableError (cause kept)."""
    try:
        yield
    except _MAYBE_UNAVAILABLE as exc:
        if not is_unavailable(exc):
            raise
        raise StoreUnavailableError(f"Redis is unavailable: {type(exc).__name__}: {exc}") from exc


class _Runner:
    """What both runners share: everything but sending the calls.

    :meth:`_exchange` drives a step generator and yields, for each round trip,
    the redis-py calls to make; the runner makes them (:meth:`_send`, sync or
    awaited) and sends back the raw replies, an error reply as an exception
    object in its place. Turning batches into calls, Cluster routing, the
    NOSCRIPT fallback and error mapping all happen here, once.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._node_of = _script_router(client)
        #: The client's own one-command call, which skips the pipeline object.
        self._execute: Callable[..., Any] | None = getattr(client, "execute_command", None)

    def _exchange(self, steps: Steps[T]) -> Generator[list[Call], list[object], T]:
        replies: Replies | None = None
        while True:
            try:
                batch = steps.send(replies)  # type: ignore[arg-type]  # None primes it
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            raw = yield self._calls(batch, by_source=False)
            missing = [i for i, reply in enumerate(raw) if isinstance(reply, NoScriptError)]
            if missing:
                # Only those scripts again, by source: EVAL also caches them on that server.
                again = yield self._calls(tuple(batch[i] for i in missing), by_source=True)
                for i, reply in zip(missing, again, strict=True):
                    raw[i] = reply
            replies = _settle(raw)

    def _calls(self, batch: Batch, *, by_source: bool) -> list[Call]:
        calls: list[Call] = []
        for op in batch:
            if isinstance(op, Command):
                calls.append((op.args, {}))
                continue
            head = ("EVAL", op.script.source) if by_source else ("EVALSHA", op.script.sha)
            calls.append(((*head, 1, op.key, *op.args), self._route(op.key)))
        return calls

    def _route(self, key: str) -> dict[str, Any]:
        if self._node_of is None:
            return {}
        try:
            return {"target_nodes": self._node_of(key)}
        except RedisClusterException:
            # No slot map yet (an asyncio cluster client learns it on its first
            # command) or the slot is uncovered: let redis-py route it, or fail, itself.
            return {}


def _plain_pool(client: object) -> Any:
    """The connection pool of a client that talks to one server (not a Cluster), else None.

    Through it, a round trip is one packed write and its replies read back,
    on a connection of redis-py's own: without the per-command retry wrapper,
    pipeline object and pool bookkeeping, which cost more CPU than the
    command (docs/benchmarks). What those do for us is kept: a connection the
    server closed is noticed before use (it reads as "has data") and replaced;
    any failure drops the connection, whose state is then unknown.
    """
    if callable(getattr(client, "get_node_from_key", None)):
        return None
    return getattr(client, "connection_pool", None)


class SyncRunner(_Runner):
    """Drives step generators on a synchronous redis-py client."""

    def __init__(self, client: SyncClient) -> None:
        super().__init__(client)
        self._pool = _plain_pool(client)
        self._idle: list[Any] = []  # connections checked out of the pool, ready for reuse
        self._pid = os.getpid()

    def drive(self, steps: Steps[T]) -> T:
        exchange = self._exchange(steps)
        raw: list[object] | None = None
        while True:
            try:
                calls = exchange.send(raw)  # type: ignore[arg-type]  # None primes it
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            raw = self._send(calls)

    def _send(self, calls: list[Call]) -> list[object]:
        with unavailable_as_error():
            if self._pool is not None:
                return self._send_packed(calls)
            if len(calls) == 1 and self._execute is not None:  # one command, no pipeline object
                ((args, options),) = calls
                try:
                    return [self._execute(*args, **options)]
                except ResponseError as exc:  # an error reply, returned as a pipeline returns it
                    return [exc]
            pipe = self.client.pipeline(transaction=False)
            for args, options in calls:
                pipe.execute_command(*args, **options)
            return pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

    def _send_packed(self, calls: list[Call]) -> list[object]:
        conn = self._checkout()
        try:
            conn.send_packed_command(conn.pack_commands([args for args, _ in calls]), check_health=False)
            replies: list[object] = []
            for _ in calls:
                try:
                    replies.append(conn.read_response())
                except ResponseError as exc:  # an error reply: the connection is still in step
                    replies.append(exc)
        except BaseException:
            conn.disconnect()  # its state is unknown: never reused
            self._pool.release(conn)
            raise
        self._idle.append(conn)
        return replies

    def _checkout(self) -> Any:
        if os.getpid() != self._pid:  # forked (a server's worker): the parent's connections are not ours
            self._idle, self._pid = [], os.getpid()
        while self._idle:
            conn = self._idle.pop()
            try:
                if not conn.can_read(timeout=0):  # nothing to read: neither closed nor out of step
                    return conn
            except RedisConnectionError:
                pass
            conn.disconnect()
            self._pool.release(conn)
        return self._pool.get_connection()

    def close(self) -> None:
        """Hand the connections kept for reuse back to the pool."""
        while self._idle:
            self._pool.release(self._idle.pop())


class AsyncRunner(_Runner):
    """The asyncio twin of SyncRunner: the same exchange, its calls awaited."""

    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client)
        self._pool = _plain_pool(client)

    async def drive(self, steps: Steps[T]) -> T:
        exchange = self._exchange(steps)
        raw: list[object] | None = None
        while True:
            try:
                calls = exchange.send(raw)  # type: ignore[arg-type]  # None primes it
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            raw = await self._send(calls)

    async def _send(self, calls: list[Call]) -> list[object]:
        with unavailable_as_error():
            if self._pool is not None:
                return await self._send_packed(calls)
            if len(calls) == 1 and self._execute is not None:  # one command, no pipeline object
                ((args, options),) = calls
                try:
                    return [await self._execute(*args, **options)]
                except ResponseError as exc:  # an error reply, returned as a pipeline returns it
                    return [exc]
            pipe = self.client.pipeline(transaction=False)
            for args, options in calls:
                pipe.execute_command(*args, **options)
            return await pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

    async def _send_packed(self, calls: list[Call]) -> list[object]:
        conn = await self._pool.get_connection()
        try:
            await conn.send_packed_command(
                conn.pack_commands([args for args, _ in calls]), check_health=False
            )
            replies: list[object] = []
            for _ in calls:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:  # an error reply: the connection is still in step
                    replies.append(exc)
        except BaseException:
            await conn.disconnect()  # its state is unknown (a cancellation, a lost socket): never reused
            raise
        finally:
            await self._pool.release(conn)
        return replies


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
