"""What the core asks of a local session cache (``SessionConfig.local_cache``), and what it keeps.

The cache itself lives with the I/O (``_cache.py``: it listens to Redis for
invalidations); the core decides what may be served from it, and when a
session's TTL must slide (``plan.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Cached:
    """A stored session as a pure read found it: everything of a Record but the cookie's own parts."""

    fields: Mapping[str, bytes]
    created_ms: int
    cap_ms: int | None
    user_id: str | None
    fingerprint: str
    client_ip: str | None
    user_agent: str | None
    revision: str
    #: When Redis expires it, as the read saw (another replica may have slid it since:
    #: then the entry looks older than it is, which only costs a read).
    deadline_ms: int

    @property
    def size(self) -> int:
        """Bytes it holds, roughly: what the cache's byte bound counts."""
        return sum(len(key) + len(raw) for key, raw in self.fields.items()) + 200


class SessionCache(Protocol):
    """A process's cache of sessions, kept true by Redis' invalidation messages."""

    def get(self, handle: str) -> Cached | None:
        """The entry for ``handle``, after taking in every invalidation already received; None if absent."""

    def mark(self) -> int | None:
        """A position in the stream of invalidations, taken before a read; None while the cache is off."""

    def fill(self, handle: str, mark: int, cached: Cached) -> None:
        """Keep what a read found, unless ``handle`` was invalidated since ``mark`` (or all was)."""

    def drop(self, handle: str) -> None:
        """Forget an entry (it expired, or its fingerprint did not match)."""
