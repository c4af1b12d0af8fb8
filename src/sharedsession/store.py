"""SessionStore and AsyncSessionStore: sessions outside the framework adapters.

Admin work (list, count and revoke sessions) for scripts, CLIs and admin
views; and the load/save pair the adapters are built on, for frameworks that
have no adapter yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from sharedsession import _redis
from sharedsession._core import admin
from sharedsession._core.admin import SessionInfo
from sharedsession._core.plan import SaveResult, SessionCore
from sharedsession._core.record import Client
from sharedsession.config import SessionConfig
from sharedsession.session import Session

__all__ = ["AsyncSessionStore", "SessionInfo", "SessionStore"]

_SCAN_PAGE = 500


class _Base:
    def __init__(self, config: SessionConfig, *, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(config, SessionConfig):
            raise TypeError(f"expected a SessionConfig, got {type(config).__name__}")
        self.config = config
        self.core = SessionCore(config, clock=clock)

    def client(
        self,
        peer: str | None = None,
        forwarded_for: str | Sequence[str] | None = None,
        user_agent: str | None = None,
    ) -> Client:
        """Resolve a request's client: address (X-Forwarded-For from trusted proxies) and fingerprint."""
        return self.core.client(peer, forwarded_for, user_agent)


class SessionStore(_Base):
    """Sessions through a synchronous redis-py client (``redis.Redis``, Sentinel, Cluster).

    Every method is one or a few round trips and raises
    :class:`~sharedsession.StoreUnavailableError` quickly when Redis is unreachable.
    """

    def __init__(self, config: SessionConfig, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, clock=clock)
        self.runner = _redis.SyncRunner(_redis.sync_client(config))

    @property
    def redis(self) -> Any:
        """The redis-py client in use."""
        return self.runner.client

    def load(self, cookie_value: str | None, client: Client | None = None) -> Session:
        """The session a cookie value names: zero round trips without a valid cookie, else one."""
        return self.runner.drive(self.core.load(cookie_value, client or Client()))

    def save(self, session: Session) -> SaveResult:
        """Write what changed (nothing, if nothing did); tells what to do with the cookie."""
        return self.runner.drive(self.core.save(session))

    def sessions_of(self, user_id: str) -> list[SessionInfo]:
        """The live sessions linked to ``user_id`` (``session.user_id``), oldest first."""
        core = self.core
        return self.runner.drive(admin.sessions_of(core.keys, core.expiry, user_id, core.now_ms()))

    def revoke(self, handle: str) -> bool:
        """End one session by handle. True if it was alive. ValueError for a malformed handle."""
        return self.runner.drive(admin.revoke(self.core.keys, handle))

    def revoke_user(self, user_id: str) -> int:
        """End every session of a user; returns how many there were."""
        core = self.core
        return self.runner.drive(admin.revoke_user(core.keys, core.expiry, user_id, core.now_ms()))

    def count(self) -> int:
        """How many sessions are alive (a SCAN over every master: O(number of keys))."""
        total = 0
        with _redis.unavailable_as_error():
            keys = self.redis.scan_iter(match=self.core.keys.session_pattern, count=_SCAN_PAGE)
            while page := list(islice(keys, _SCAN_PAGE)):
                total += self.runner.drive(admin.count_sessions(page))
        return total

    def close(self) -> None:
        """Close the client if this store built it from ``redis_url``."""
        if self.config.redis is None:
            self.redis.close()


class AsyncSessionStore(_Base):
    """Sessions through a ``redis.asyncio`` client: the same operations, awaited.

    Without ``SessionConfig.redis``, the client is built on first use, inside
    the running event loop, and closed by :meth:`aclose`.
    """

    def __init__(self, config: SessionConfig, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, clock=clock)
        self._runner: _redis.AsyncRunner | None = None
        if config.redis is not None:
            self._runner = _redis.AsyncRunner(_redis.async_client(config))

    @property
    def runner(self) -> _redis.AsyncRunner:
        if self._runner is None:
            self._runner = _redis.AsyncRunner(_redis.async_client(self.config))
        return self._runner

    @property
    def redis(self) -> Any:
        return self.runner.client

    async def load(self, cookie_value: str | None, client: Client | None = None) -> Session:
        return await self.runner.drive(self.core.load(cookie_value, client or Client()))

    async def save(self, session: Session) -> SaveResult:
        return await self.runner.drive(self.core.save(session))

    async def sessions_of(self, user_id: str) -> list[SessionInfo]:
        core = self.core
        steps = admin.sessions_of(core.keys, core.expiry, user_id, core.now_ms())
        return await self.runner.drive(steps)

    async def revoke(self, handle: str) -> bool:
        return await self.runner.drive(admin.revoke(self.core.keys, handle))

    async def revoke_user(self, user_id: str) -> int:
        core = self.core
        steps = admin.revoke_user(core.keys, core.expiry, user_id, core.now_ms())
        return await self.runner.drive(steps)

    async def count(self) -> int:
        total = 0
        page: list[str | bytes] = []
        with _redis.unavailable_as_error():
            pattern = self.core.keys.session_pattern
            async for key in self.redis.scan_iter(match=pattern, count=_SCAN_PAGE):
                page.append(key)
                if len(page) == _SCAN_PAGE:
                    total += await self.runner.drive(admin.count_sessions(page))
                    page = []
        return total + await self.runner.drive(admin.count_sessions(page))

    async def aclose(self) -> None:
        """Close the client if this store built it from ``redis_url``."""
        if self._runner is not None and self.config.redis is None:
            await self._runner.client.aclose()  # type: ignore[attr-defined]
            self._runner = None
