"""Redis Cluster's rule, checked on what the store actually sends: every
command names keys of a single hash slot.

A session is one key (its hash; regenerate()'s tombstone reuses the old key)
and a user's index is another, in whatever slot its name hashes to. Batches
may mix the two: a non-transactional cluster pipeline sends each command to
its own node, so nothing depends on two keys sharing a slot. This runs on
every backend (fakeredis, REDIS_URL, the test cluster) in both runners: the
commands are the same; the cluster also proves a real one accepts them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from redis.crc import key_slot

from sharedsession import AsyncSessionStore, Session, SessionConfig, SessionStore, SetCookie
from tests.support import SECRET, Backend, FakeClock, Harness, Log, RecordingPool

Batch = list[tuple[Any, ...]]

# Where each command the store may send keeps its keys (args[0] is the name).
# A command missing here fails the test: teach it the new command's keys first.
_FIRST_ARG_IS_THE_KEY = {"HSET", "HGET", "HMGET", "HEXISTS", "PEXPIREAT", "PTTL", "ZREM"}


def keys_of(args: tuple[Any, ...]) -> list[bytes]:
    name = str(args[0]).upper()
    if name in ("EVAL", "EVALSHA"):
        numkeys = int(args[2])
        keys = list(args[3 : 3 + numkeys])
    elif name == "DEL":
        keys = list(args[1:])
    elif name in _FIRST_ARG_IS_THE_KEY:
        keys = [args[1]]
    else:
        raise AssertionError(f"{name}: a command this test does not know; say where its keys are")
    return [key if isinstance(key, bytes) else str(key).encode() for key in keys]


class _Pipeline:
    def __init__(self, inner: Any, batches: list[Batch]) -> None:
        self._inner = inner
        self._batches = batches
        self._commands: Batch = []

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self._commands.append(args)
        return self._inner.execute_command(*args, **options)

    def execute(self, raise_on_error: bool = True) -> Any:
        self._batches.append(self._commands)
        return self._inner.execute(raise_on_error=raise_on_error)


class _AsyncPipeline(_Pipeline):
    async def execute(self, raise_on_error: bool = True) -> Any:
        self._batches.append(self._commands)
        return await self._inner.execute(raise_on_error=raise_on_error)


class ArgsRecorder:
    """Wraps a sync client; keeps every batch with its full arguments."""

    pipeline_class = _Pipeline

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.batches: list[Batch] = []
        pool = getattr(inner, "connection_pool", None)  # a Cluster has none
        if pool is not None:
            self.connection_pool = RecordingPool(pool, self.batches.append)

    def pipeline(self, transaction: bool = True) -> _Pipeline:
        return self.pipeline_class(self.inner.pipeline(transaction=transaction), self.batches)

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.batches.append([args])
        return self.inner.execute_command(*args, **options)

    def scan_iter(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.scan_iter(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # a RedisCluster's slot map, as the store would see it


class AsyncArgsRecorder(ArgsRecorder):
    """The asyncio twin."""

    pipeline_class = _AsyncPipeline

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.batches.append([args])
        return await self.inner.execute_command(*args, **options)


@pytest.fixture
def recorded(backend: Backend, mode: str, clock: FakeClock) -> Iterator[tuple[Harness, ArgsRecorder]]:
    loop = asyncio.new_event_loop() if mode == "async" else None
    inner = backend.async_client() if loop else backend.sync_client()
    recorder = AsyncArgsRecorder(inner) if loop else ArgsRecorder(inner)
    config = SessionConfig(secret_key=SECRET, redis=recorder, key_prefix=backend.prefix, idle_timeout=100)
    store: SessionStore | AsyncSessionStore
    store = AsyncSessionStore(config, clock=clock) if loop else SessionStore(config, clock=clock)
    yield Harness(store, Log(), loop, clock), recorder
    if loop is not None:
        loop.run_until_complete(inner.aclose())
        loop.close()


def new_session(store: Harness, user_id: str, data: dict[str, Any] | None = None) -> tuple[Session, str]:
    session = store.load(None)
    session.update(data or {"n": 1})
    session.user_id = user_id
    result = store.save(session)
    assert isinstance(result.cookie, SetCookie)
    return session, result.cookie.value


def test_every_command_names_keys_of_one_slot(
    recorded: tuple[Harness, ArgsRecorder], backend: Backend, raw: Any, clock: FakeClock
) -> None:
    store, recorder = recorded
    if backend.name != "real":  # our own server: its script cache may be flushed
        raw.script_flush()  # the first uses go out again as EVAL
    # Create, load, update, relink, renew, regenerate, destroy.
    session, cookie = new_session(store, "alice", {"user": "alice", "n": 5})
    session = store.load(cookie)
    session["n"] = 6
    store.save(session)
    session.user_id = "bob"
    store.save(session)
    clock.advance(150)  # past the idle period: renewal moves the cap and the index entry
    session = store.load(cookie)
    session["seen"] = True
    store.save(session)
    session.regenerate()
    store.save(session)
    session.destroy()
    store.save(session)
    # Races that end in "gone": a save of a revoked session, a regenerate that lost.
    first, cookie = new_session(store, "carol")
    slow, loser = store.load(cookie), store.load(cookie)
    first = store.load(cookie)
    first.regenerate()
    store.save(first)
    loser.regenerate()
    assert store.save(loser).outcome == "gone"
    slow.user_id = "dave"
    slow["late"] = 1
    assert store.save(slow).outcome == "gone"
    # Admin: list (pruning a dead entry), count, revoke, log out everywhere.
    new_session(store, "carol")
    dead, _ = new_session(store, "carol")
    raw.delete(store.keys.session(str(dead.handle)))
    assert len(store.sessions_of("carol")) == 2
    assert store.count() == 2
    assert store.revoke(str(first.handle)) is True
    assert store.revoke_user("carol") == 1

    commands = [args for batch in recorder.batches for args in batch]
    names = {str(args[0]).upper() for args in commands}
    assert names >= {"EVALSHA", "DEL", "ZREM", "HMGET", "PTTL", "HEXISTS"}
    if backend.name != "real":
        assert "EVAL" in names
    for args in commands:
        keys = keys_of(args)
        assert keys, args
        assert len({key_slot(key) for key in keys}) == 1, f"{args[0]} spans slots: {keys}"
        assert all(key.startswith(backend.prefix.encode()) for key in keys)
    # Batches do mix slots (a session and a user index): allowed, and exercised.
    assert any(
        len({key_slot(key) for args in batch for key in keys_of(args)}) > 1 for batch in recorder.batches
    )
