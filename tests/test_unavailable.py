"""Redis down or silent: StoreUnavailableError, fast, never a hang."""

from __future__ import annotations

import asyncio
import time

import pytest

from sharedsession import AsyncSessionStore, SessionConfig, SessionStore, StoreUnavailableError
from tests.support import SECRET, valid_cookie

# Generous: the client's timeouts are 0.5 s; a hang would take forever.
BOUND_SECONDS = 5.0


def config(port: int) -> SessionConfig:
    return SessionConfig(secret_key=SECRET, redis_url=f"redis://127.0.0.1:{port}/0", redis_timeout=0.5)


def cookie_of(store: SessionStore | AsyncSessionStore) -> str:
    return valid_cookie(store.config)


@pytest.mark.parametrize("port_fixture", ["closed_port", "silent_port"])
def test_sync_store_fails_fast(request: pytest.FixtureRequest, port_fixture: str) -> None:
    store = SessionStore(config(request.getfixturevalue(port_fixture)))
    try:
        for call in (
            lambda: store.load(cookie_of(store)),
            lambda: store.sessions_of("alice"),
            lambda: store.revoke("0" * 32),
            store.count,
        ):
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError) as info:
                call()
            assert time.monotonic() - started < BOUND_SECONDS
            assert info.value.__cause__ is not None  # the redis-py error is kept
    finally:
        store.close()


@pytest.mark.parametrize("port_fixture", ["closed_port", "silent_port"])
def test_async_store_fails_fast(request: pytest.FixtureRequest, port_fixture: str) -> None:
    port = request.getfixturevalue(port_fixture)

    async def main() -> None:
        store = AsyncSessionStore(config(port))
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError):
                await store.load(cookie_of(store))
            assert time.monotonic() - started < BOUND_SECONDS
        finally:
            await store.aclose()

    asyncio.run(main())


def test_anonymous_requests_do_not_need_redis(closed_port: int) -> None:
    store = SessionStore(config(closed_port))
    session = store.load(None)
    assert store.save(session).outcome == "unchanged"
    assert store.load("forged.cookie.value").new
    store.close()


def test_a_save_fails_fast_too(closed_port: int) -> None:
    store = SessionStore(config(closed_port))
    session = store.load(None)
    session["n"] = 1
    with pytest.raises(StoreUnavailableError):
        store.save(session)
    store.close()


def test_sync_store_refuses_an_async_client_and_vice_versa() -> None:
    import fakeredis

    with pytest.raises(TypeError, match="synchronous"):
        SessionStore(SessionConfig(secret_key=SECRET, redis=fakeredis.FakeAsyncRedis()))
    with pytest.raises(TypeError, match="asyncio"):
        AsyncSessionStore(SessionConfig(secret_key=SECRET, redis=fakeredis.FakeRedis()))
    with pytest.raises(TypeError, match="SessionConfig"):
        SessionStore("redis://localhost")  # type: ignore[arg-type]


def test_a_full_redis_refusing_writes_is_unavailable_not_a_bug() -> None:
    """maxmemory reached under noeviction: a 503 is right, a 500 is not."""
    from typing import Any

    from redis.exceptions import OutOfMemoryError

    class FullPipeline:
        def __init__(self) -> None:
            self.queued = 0

        def execute_command(self, *args: Any, **options: Any) -> None:
            self.queued += 1

        def execute(self, raise_on_error: bool = True) -> list[Any]:
            return [OutOfMemoryError("command not allowed when used memory > 'maxmemory'")] * self.queued

    class FullRedis:
        def pipeline(self, transaction: bool = True) -> FullPipeline:
            return FullPipeline()

    store = SessionStore(SessionConfig(secret_key=SECRET, redis=FullRedis()))
    session = store.load(None)
    session["n"] = 1
    with pytest.raises(StoreUnavailableError, match="maxmemory"):
        store.save(session)
