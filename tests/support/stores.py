"""One synchronous face for SessionStore and AsyncSessionStore, and cookies made by hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator
from typing import Any

from sharedsession import AsyncSessionStore, SessionConfig, SessionStore
from sharedsession._core.expiry import Expiry
from sharedsession._core.keys import KeySpace
from sharedsession._core.signing import CookieSigner
from sharedsession._redis import Call
from tests.support.backends import Log

#: The secret every test signs with.
SECRET = "test-secret-key-0123456789abcdef"


def signer(config: SessionConfig, clock: Callable[[], float]) -> CookieSigner:
    """A signer with the config's keys: signs cookies the stores accept (``sign("A" * 43)``
    is a valid cookie of a session that does not exist)."""
    return CookieSigner(config.secret_keys, clock)


def valid_cookie(config: SessionConfig, sid: str = "A" * 43) -> str:
    """A cookie value the stores accept (right keys, fresh), naming ``sid``: by default a
    session that does not exist, so that using it must ask Redis."""
    return signer(config, time.time).sign(sid)


class Harness:
    """SessionStore or AsyncSessionStore behind one synchronous face, plus the
    log of round trips its client made, its key names, expiry rules and signer."""

    def __init__(
        self,
        store: SessionStore | AsyncSessionStore,
        log: Log,
        loop: asyncio.AbstractEventLoop | None,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.log = log
        self._loop = loop
        self.keys: KeySpace = store.keys
        self.config = config = store.config
        self.expiry = Expiry.of(config.idle_timeout, config.absolute_timeout)
        self.signer = signer(config, clock)
        #: Whether the store keeps a local cache (a read of a cached session costs nothing).
        self.cached = config.local_cache > 0
        if self.cached:
            self._wait_for_the_listener()

    def _wait_for_the_listener(self) -> None:
        """Have the cache's invalidation listener up before the test starts (the asyncio
        store opens it in a thread: requests meanwhile would go uncached)."""
        cache = self.store._cache
        assert cache is not None

        async def mark() -> None:
            cache.mark()
            await asyncio.sleep(0.01)

        for _ in range(500):
            if self._loop is not None:
                self._loop.run_until_complete(mark())
            else:
                cache.mark()
            if cache.listener.trusted():
                return
        raise AssertionError("the local cache's listener did not come up")

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if asyncio.iscoroutine(result):
                assert self._loop is not None
                return self._loop.run_until_complete(result)
            return result

        return call


class Stepper:
    """A store's step driven one round trip at a time, so that another can run in between."""

    def __init__(self, store: SessionStore, steps: Generator[Any, Any, Any]) -> None:
        self.store = store
        self.exchange = store._runner._exchange(steps)
        self.calls: list[Call] | None = self.exchange.send(None)  # type: ignore[arg-type]
        self.result: Any = None
        self.done = False

    def trip(self) -> None:
        assert not self.done
        assert self.calls is not None
        raw = self.store._runner._send(self.calls)
        try:
            self.calls = self.exchange.send(raw)
        except StopIteration as stop:
            self.result, self.done = stop.value, True

    def finish(self) -> Any:
        while not self.done:
            self.trip()
        return self.result
