"""SessionStore and AsyncSessionStore: the one API every adapter, the CLI and admin code use.

Per request, an adapter calls the same four methods in the same order, sync
or awaited::

    client = store.client(peer, forwarded_for, user_agent) if store.binds else UNBOUND
    session = store.load(cookie_value, client)      # 0 round trips without a valid cookie, else 1
    if store.needs_save(session):
        result = store.save(session)                # 0 if nothing changed, else 1 (rarely 2)
        if result.cookie:
            headers.append(("Set-Cookie", store.cookie_header(result.cookie)))

Admin work (list, count and revoke sessions) for scripts, CLIs and admin
views uses the same stores.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any

from sharedsession import _cache, _redis
from sharedsession._core import admin
from sharedsession._core.admin import SessionInfo
from sharedsession._core.config import SessionConfig
from sharedsession._core.http import CookieAction, render
from sharedsession._core.keys import KeySpace
from sharedsession._core.ops import Steps
from sharedsession._core.plan import SaveResult, SessionCore
from sharedsession._core.record import UNBOUND, Client
from sharedsession._core.sealing import CipherFactory
from sharedsession._core.session import Session

__all__ = ["SCAN_PAGE", "AsyncSessionStore", "SessionInfo", "SessionStore"]

#: Keys asked per SCAN call (a hint to Redis), and per batch of the counting steps.
SCAN_PAGE = 500


class _Base:
    """What both stores share: the core's decisions, without I/O."""

    def __init__(self, config: SessionConfig, *, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(config, SessionConfig):
            raise TypeError(f"expected a SessionConfig, got {type(config).__name__}")
        self.config = config
        self._core = SessionCore(config, clock=clock, cipher=_cipher(config))
        self._cache: _cache.LocalCache | None = None

    def _start_cache(self, client: Any, reconnect: Callable[[_cache.Invalidations], None]) -> None:
        """Set up the local cache (``SessionConfig.local_cache``) for this client, if asked for."""
        config = self.config
        if not config.local_cache:
            return
        _cache.check_client(client)
        listener = _cache.Invalidations(
            _cache.listener_factory(client), self.keys.prefix + "s:", retry_after=1.0
        )
        self._cache = _cache.LocalCache(
            listener,
            entries=config.local_cache,
            max_bytes=config.local_cache_bytes,
            reconnect=lambda: reconnect(listener),
        )

    @property
    def cached(self) -> int:
        """How many sessions the local cache holds now (0 when it is off)."""
        return len(self._cache) if self._cache is not None else 0

    @property
    def binds(self) -> bool:
        """Whether sessions are bound to their client: only then need :meth:`client` be called."""
        return self.config.binds

    @property
    def keys(self) -> KeySpace:
        """The Redis key names under this store's prefix (session and user-index keys, patterns)."""
        return self._core.keys

    def client(
        self,
        peer: str | None = None,
        forwarded_for: str | Sequence[str] | None = None,
        user_agent: str | None = None,
    ) -> Client:
        """Resolve a request's client: address (X-Forwarded-For from trusted proxies) and fingerprint.

        ``peer`` is the TCP peer (``REMOTE_ADDR``, ASGI ``scope["client"][0]``),
        ``forwarded_for`` the X-Forwarded-For header (or its lines). Returns
        ``UNBOUND`` when binding is off. Never raises on bad input.
        """
        return self._core.client(peer, forwarded_for, user_agent)

    def needs_save(self, session: Session) -> bool:
        """False when saving would do nothing at all (a new session nothing was stored in)."""
        return self._core.needs_save(session)

    def cookie_header(self, action: CookieAction) -> str:
        """The ``Set-Cookie`` header value that carries out a save's cookie action."""
        return render(action, self.config, self._core.now())

    def _load(self, cookie_value: str | None, client: Client | None, into: Session | None) -> Steps[Session]:
        return self._core.load(cookie_value, client or UNBOUND, into=into, cache=self._cache)

    def _sessions_of(self, user_id: str) -> Steps[list[SessionInfo]]:
        core = self._core
        return admin.sessions_of(core.keys, core.expiry, user_id, core.now_ms())

    def _revoke_user(self, user_id: str) -> Steps[int]:
        core = self._core
        return admin.revoke_user(core.keys, user_id, core.now_ms())


def _cipher(config: SessionConfig) -> CipherFactory | None:
    """The AEAD of encryption at rest, when ``encryption_keys`` are set (the ``encryption`` extra)."""
    if not config.sealing_keys:
        return None
    from sharedsession._aead import AesGcm  # imports cryptography: only when asked for

    return AesGcm


class SessionStore(_Base):
    """Sessions through a synchronous redis-py client (``redis.Redis``, Sentinel, Cluster).

    Every method is one or a few round trips and raises
    :class:`~sharedsession.StoreUnavailableError` quickly when Redis is unreachable.
    """

    def __init__(self, config: SessionConfig, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, clock=clock)
        self._runner = _redis.SyncRunner(_redis.sync_client(config))
        self._start_cache(self._runner.client, _cache.Invalidations.connect)

    @property
    def redis(self) -> Any:
        """The redis-py client in use."""
        return self._runner.client

    def load(
        self, cookie_value: str | None, client: Client | None = None, *, into: Session | None = None
    ) -> Session:
        """The session a cookie value names: zero round trips without a valid cookie, else one.

        An unknown, expired or ended session, or one bound to another client,
        loads as a new empty session. ``into``: an empty session object to
        fill and return instead of a new one (an adapter's lazy session).
        """
        return self._runner.drive(self._load(cookie_value, client, into))

    def save(self, session: Session) -> SaveResult:
        """Write what changed (nothing, if nothing did); tells what to do with the cookie."""
        return self._runner.drive(self._core.save(session))

    def sessions_of(self, user_id: str) -> list[SessionInfo]:
        """The live sessions linked to ``user_id`` (``session.user_id``), oldest first."""
        return self._runner.drive(self._sessions_of(user_id))

    def revoke(self, handle: str) -> bool:
        """End one session by handle. True if it was alive. ValueError for a malformed handle."""
        return self._runner.drive(admin.revoke(self._core.keys, handle))

    def revoke_user(self, user_id: str) -> int:
        """End every session of a user; returns how many there were."""
        return self._runner.drive(self._revoke_user(user_id))

    def count(self) -> int:
        """How many sessions are alive (a SCAN over every master: O(number of keys))."""
        total = 0
        with _redis.unavailable_as_error():
            keys = self.redis.scan_iter(match=self.keys.session_pattern, count=SCAN_PAGE)
            while page := list(islice(keys, SCAN_PAGE)):
                total += self._runner.drive(admin.count_sessions(page))
        return total

    def close(self) -> None:
        """Close the client if this store built it from ``redis_url``, and the cache's listener."""
        if self._cache is not None:
            self._cache.listener.close()
        self._runner.close()
        if self.config.redis is None:
            self.redis.close()


class AsyncSessionStore(_Base):
    """Sessions through a ``redis.asyncio`` client: the same operations, awaited.

    Without ``SessionConfig.redis``, the client is built on first use, inside
    the running event loop, and closed by :meth:`aclose`.
    """

    def __init__(self, config: SessionConfig, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config, clock=clock)
        self._runner_: _redis.AsyncRunner | None = None
        if config.redis is not None:
            self._runner_ = _redis.AsyncRunner(_redis.async_client(config))
            self._start_cache(self._runner_.client, _connect_in_a_thread)

    @property
    def _runner(self) -> _redis.AsyncRunner:
        if self._runner_ is None:
            self._runner_ = _redis.AsyncRunner(_redis.async_client(self.config))
            self._start_cache(self._runner_.client, _connect_in_a_thread)
        return self._runner_

    @property
    def redis(self) -> Any:
        """The redis.asyncio client in use (built now if it was not yet)."""
        return self._runner.client

    async def load(
        self, cookie_value: str | None, client: Client | None = None, *, into: Session | None = None
    ) -> Session:
        """See :meth:`SessionStore.load`."""
        return await self._runner.drive(self._load(cookie_value, client, into))

    async def save(self, session: Session) -> SaveResult:
        """See :meth:`SessionStore.save`."""
        return await self._runner.drive(self._core.save(session))

    async def sessions_of(self, user_id: str) -> list[SessionInfo]:
        """See :meth:`SessionStore.sessions_of`."""
        return await self._runner.drive(self._sessions_of(user_id))

    async def revoke(self, handle: str) -> bool:
        """See :meth:`SessionStore.revoke`."""
        return await self._runner.drive(admin.revoke(self._core.keys, handle))

    async def revoke_user(self, user_id: str) -> int:
        """See :meth:`SessionStore.revoke_user`."""
        return await self._runner.drive(self._revoke_user(user_id))

    async def count(self) -> int:
        """See :meth:`SessionStore.count`."""
        total = 0
        page: list[str | bytes] = []
        with _redis.unavailable_as_error():
            async for key in self.redis.scan_iter(match=self.keys.session_pattern, count=SCAN_PAGE):
                page.append(key)
                if len(page) == SCAN_PAGE:
                    total += await self._runner.drive(admin.count_sessions(page))
                    page = []
        return total + await self._runner.drive(admin.count_sessions(page))

    async def aclose(self) -> None:
        """Close the client if this store built it from ``redis_url``, and the cache's listener."""
        if self._cache is not None:
            self._cache.listener.close()
            self._cache = None
        if self._runner_ is not None and self.config.redis is None:
            await self._runner_.client.aclose()
            self._runner_ = None


def _connect_in_a_thread(listener: _cache.Invalidations) -> None:
    # Opening the listener blocks (connect, subscribe): not in the event loop. The
    # requests meanwhile go to Redis, uncached.
    asyncio.get_running_loop().run_in_executor(None, listener.connect)
