"""The local session cache (``SessionConfig.local_cache``) and the connection that keeps it true.

Redis tells this process of every change to a session key (server-assisted
client-side caching: ``CLIENT TRACKING ON BCAST PREFIX <prefix>s:``, the
messages redirected to a connection of our own that subscribes to
``__redis__:invalidate``). One such listener per store, whatever the number
of data connections, and nothing to hook into them.

The rules that make it safe, each answering a way it could serve stale data:

- **Drain before every lookup.** Invalidations already received are applied
  (a non-blocking read of the listener's socket) before an entry is served:
  a change another replica saved and answered before this request arrived
  has reached this socket by then.
- **Fill guard.** A read started at a position in the invalidation stream
  (``mark``) is kept only if its key was not invalidated since: a change
  racing the read cannot leave the old value cached for good.
- **Proof of life.** The listener is trusted only while it has been heard
  within ``heartbeat`` seconds (it sends PING when quiet): a half-open
  connection would otherwise silently stop invalidating. Untrusted, lookups
  go to Redis, and entries are not kept.
- **Loss means flush.** Losing the listener (killed, Redis restarted) drops
  every entry; requests go to Redis at once, uncached, until a new listener
  is set up (it never resubscribes silently: redis-py's own reconnection is
  not used).
- **Local expiry.** An entry carries the TTL deadline its read saw, and is not
  served past it (Redis reports expiry late).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

import redis
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection

from sharedsession._core.cache import Cached

log = logging.getLogger("sharedsession")

__all__ = ["Invalidations", "LocalCache", "check_client", "listener_factory"]

CHANNEL = b"__redis__:invalidate"
#: Handles remembered as recently invalidated, for the fill guard; beyond it,
#: every fill that started before the oldest forgotten one is refused.
RECENT = 100_000


class Wire(Protocol):
    """What the listener uses of a redis-py ``Connection``."""

    def connect(self) -> None: ...
    def send_command(self, *args: Any, **kwargs: Any) -> None: ...
    def read_response(self) -> Any: ...
    def can_read(self, timeout: float = 0) -> bool: ...
    def disconnect(self) -> None: ...


class Invalidations:
    """A connection Redis sends every change of a session key to, and what it said."""

    def __init__(
        self,
        connect: Callable[[], Wire],
        prefix: str,
        *,
        heartbeat: float = 1.0,
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._prefix = prefix.encode()
        self._heartbeat = heartbeat
        self._retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: Wire | None = None
        self._heard = 0.0  # when the listener last said anything
        self._pinged: float | None = None  # a PING awaiting its PONG, sent then
        self._next_attempt = 0.0
        self._connecting = False
        #: Position in the stream: moved on by every invalidation and every loss.
        self.seq = 0
        self._floor = 0  # every handle counts as invalidated at positions up to here
        self._recent: OrderedDict[str, int] = OrderedDict()
        #: Called with the handles invalidated (None: all of them).
        self.on_invalidate: Callable[[list[str] | None], None] = lambda handles: None

    # -- state -----------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._conn is not None

    def trusted(self) -> bool:
        """Alive, and heard from lately (a PONG at least): its silence means nothing changed."""
        return self._conn is not None and self._clock() - self._heard <= self._heartbeat

    def invalidated_since(self, handle: str, mark: int) -> bool:
        return self._floor > mark or self._recent.get(handle, -1) > mark

    def reconnect_due(self) -> bool:
        return self._conn is None and not self._connecting and self._clock() >= self._next_attempt

    # -- I/O ---------------------------------------------------------------------------

    def connect(self) -> None:
        """Open and subscribe a new listener (blocking, within the client's timeouts).

        Everything cached before counts as invalidated: what changed while no
        listener was up is unknown.
        """
        with self._lock:
            if self._conn is not None or self._connecting:
                return
            self._connecting = True
        conn: Wire | None = None
        try:
            conn = self._connect()
            conn.connect()
            conn.send_command("CLIENT", "ID")
            client_id = conn.read_response()
            conn.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", self._prefix
            )
            conn.read_response()
            conn.send_command("SUBSCRIBE", CHANNEL)
            conn.read_response()
        except (redis.RedisError, OSError) as exc:
            log.warning("local session cache: no invalidation listener (%s); going to Redis meanwhile", exc)
            if conn is not None:
                conn.disconnect()
            with self._lock:
                self._connecting = False
                self._next_attempt = self._clock() + self._retry_after
            return
        with self._lock:
            self._lost()  # nothing cached before this listener can be trusted
            self._conn = conn
            self._heard = self._clock()
            self._pinged = None
            self._connecting = False
        log.info("local session cache: invalidation listener up")

    def poll(self) -> None:
        """Apply every message already received (never waits); notice a dead listener."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            try:
                while conn.can_read(timeout=0):
                    self._take(conn.read_response())
                now = self._clock()
                if self._pinged is not None and now - self._pinged > self._heartbeat:
                    raise redis.ConnectionError("no answer to PING")
                if self._pinged is None and now - self._heard > self._heartbeat / 2:
                    conn.send_command("PING")
                    self._pinged = now
            except (redis.RedisError, OSError, ValueError) as exc:
                log.warning("local session cache: invalidation listener lost (%s); flushed", exc)
                conn.disconnect()
                self._conn = None
                self._next_attempt = self._clock() + self._retry_after
                self._lost()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.disconnect()
                self._conn = None
            self._lost()

    # -- messages ----------------------------------------------------------------------

    def _take(self, message: Any) -> None:
        self._heard = self._clock()
        if not isinstance(message, list) or len(message) < 2:
            return
        kind = message[0]
        if kind in (b"pong", "pong"):
            self._pinged = None
            return
        if kind not in (b"message", "message") or len(message) != 3:
            return  # the subscription's confirmation
        keys = message[2]
        if keys is None:  # FLUSHDB, FLUSHALL: everything
            self._lost()
            return
        handles = []
        for key in keys:
            raw = key if isinstance(key, bytes) else str(key).encode()
            if raw.startswith(self._prefix):
                handles.append(raw[len(self._prefix) :].decode("ascii", "replace"))
        self.seq += 1
        for handle in handles:
            self._recent[handle] = self.seq
            self._recent.move_to_end(handle)
        while len(self._recent) > RECENT:
            _, forgotten = self._recent.popitem(last=False)
            self._floor = max(self._floor, forgotten)
        self.on_invalidate(handles)

    def _lost(self) -> None:
        self.seq += 1
        self._floor = self.seq
        self._recent.clear()
        self.on_invalidate(None)


class LocalCache:
    """A process's least-recently-used sessions, true as long as its listener is trusted.

    Implements the core's ``SessionCache``. Thread-safe (a gunicorn worker's
    threads share one); in asyncio it is used from the loop's thread.
    """

    def __init__(
        self, listener: Invalidations, *, entries: int, max_bytes: int, reconnect: Callable[[], None]
    ) -> None:
        self.listener = listener
        self._max_entries = entries
        self._max_bytes = max_bytes
        self._reconnect = reconnect
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        listener.on_invalidate = self._invalidate

    def mark(self) -> int | None:
        listener = self.listener
        listener.poll()
        if listener.reconnect_due():
            self._reconnect()
        return listener.seq if listener.trusted() else None

    def get(self, handle: str) -> Cached | None:
        with self._lock:
            entry = self._entries.get(handle)
            if entry is not None:
                self._entries.move_to_end(handle)
            return entry

    def fill(self, handle: str, mark: int, cached: Cached) -> None:
        listener = self.listener
        listener.poll()  # an invalidation that raced the read must be in before we decide
        if not listener.trusted() or listener.invalidated_since(handle, mark):
            return
        with self._lock:
            old = self._entries.pop(handle, None)
            if old is not None:
                self._bytes -= old.size
            self._entries[handle] = cached
            self._bytes += cached.size
            while self._entries and (len(self._entries) > self._max_entries or self._bytes > self._max_bytes):
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size

    def drop(self, handle: str) -> None:
        with self._lock:
            old = self._entries.pop(handle, None)
            if old is not None:
                self._bytes -= old.size

    def __len__(self) -> int:
        return len(self._entries)

    def _invalidate(self, handles: list[str] | None) -> None:
        with self._lock:
            if handles is None:
                self._entries.clear()
                self._bytes = 0
                return
            for handle in handles:
                old = self._entries.pop(handle, None)
                if old is not None:
                    self._bytes -= old.size


def check_client(client: Any) -> None:
    """Refuse, at construction, a client the local cache cannot keep true."""
    kind = type(client).__module__ + "." + type(client).__name__
    if callable(getattr(client, "get_node_from_key", None)):
        raise ValueError(
            "SessionConfig.local_cache needs one Redis server: not a Redis Cluster "
            "(each master would need a listener of its own); set local_cache=0"
        )
    pool = getattr(client, "connection_pool", None)
    pool_kind = type(pool).__name__
    if "Sentinel" in pool_kind:
        raise ValueError(
            "SessionConfig.local_cache needs one Redis server: with Sentinel a failover would "
            "leave the listener on a demoted master; set local_cache=0"
        )
    if pool is None or not callable(getattr(client, "get_connection_kwargs", None)):
        raise ValueError(f"SessionConfig.local_cache needs a redis-py client (redis.Redis), got {kind}")
    if pool.connection_class.__module__.startswith("fakeredis"):
        raise ValueError("SessionConfig.local_cache needs a Redis server: fakeredis has no CLIENT TRACKING")


def listener_factory(client: Any) -> Callable[[], Wire]:
    """How to open a listener connection to the server a (sync or asyncio) client talks to.

    A connection of redis-py's own, speaking RESP2 (invalidations arrive as
    pub/sub messages), with the client's address, credentials and timeouts.
    """
    kwargs = client.get_connection_kwargs()
    common = {
        name: kwargs[name]
        for name in ("db", "username", "password", "socket_timeout", "socket_connect_timeout", "client_name")
        if kwargs.get(name) is not None
    }
    if "path" in kwargs:
        common["path"] = kwargs["path"]
        kind: Any = UnixDomainSocketConnection
    else:
        common |= {"host": kwargs.get("host", "localhost"), "port": kwargs.get("port", 6379)}
        kind = Connection
        if "ssl" in client.connection_pool.connection_class.__name__.lower():
            common |= {name: value for name, value in kwargs.items() if name.startswith("ssl_")}
            kind = SSLConnection

    def connection() -> Wire:
        wire: Wire = kind(protocol=2, **common)
        return wire

    return connection
