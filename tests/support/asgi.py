"""Helpers of the ASGI tests (test_asgi.py, test_asgi_example.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sharedsession.asgi import ASGIApp, Message, Scope
from tests.support.backends import Backend, RecordingAsyncRedis, load_scripts

__all__ = ["BOUND_SECONDS", "lifespan", "recording_client"]

# Generous: a dead Redis must answer within the client's 0.5 s timeouts, not hang.
BOUND_SECONDS = 5.0


@contextlib.asynccontextmanager
async def recording_client(backend: Backend) -> AsyncIterator[RecordingAsyncRedis]:
    """An asyncio client on the backend that counts round trips; our scripts already cached,
    as they are after the first request of a real app."""
    load_scripts(backend.sync_client())
    client = RecordingAsyncRedis(backend.async_client())
    try:
        yield client
    finally:
        await client.inner.aclose()


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[list[str]]:
    """Run an app's lifespan in this loop, as a server does; yields the messages it sent."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    replies: asyncio.Queue[str] = asyncio.Queue()
    sent: list[str] = []

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        sent.append(message["type"])
        await replies.put(message["type"])

    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, receive, send))
    await inbox.put({"type": "lifespan.startup"})
    assert await asyncio.wait_for(replies.get(), BOUND_SECONDS) == "lifespan.startup.complete"
    yield sent
    await inbox.put({"type": "lifespan.shutdown"})
    assert await asyncio.wait_for(replies.get(), BOUND_SECONDS) == "lifespan.shutdown.complete"
    await asyncio.wait_for(task, BOUND_SECONDS)
