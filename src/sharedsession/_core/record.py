"""Plain data shared by the session object and the planner."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Client:
    """What a request tells about its client, resolved once by the adapter."""

    ip: str | None = None
    user_agent: str | None = None
    fingerprint: str = ""  # "" when binding is off


@dataclass(frozen=True)
class Record:
    """A session as it was stored when this request loaded (or last saved) it."""

    sid: str
    handle: str
    created_ms: int
    cap_ms: int | None
    user_id: str | None
    fields: Mapping[str, bytes]  # app key -> stored value
    fingerprint: str
    client_ip: str | None
    user_agent: str | None
    cookie_issued_s: int


class State(enum.Enum):
    """Where a session is in its life during one request."""

    NEW = "new"  # nothing stored yet; written at save only if it holds something
    LOADED = "loaded"  # read from Redis; a save writes the delta in place
    REGENERATED = "regenerated"  # loaded, and moves to a new sid at save
    DESTROYED = "destroyed"  # stored data deleted at save, cookie expired
