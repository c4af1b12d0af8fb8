"""Plain data shared by the session object and the planner."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class Client:
    """What a request tells about its client, resolved once by the adapter."""

    ip: str | None = None
    user_agent: str | None = None
    fingerprint: str = ""  # "" when binding is off


#: The client of a request when binding is off: nothing about it is used, so
#: adapters pass this rather than resolve one per request.
UNBOUND = Client()


class Record(NamedTuple):
    """A session as it was stored when this request loaded (or last saved) it.

    A NamedTuple rather than a frozen dataclass: made on every load and
    replaced on every write, where a tuple costs a third as much.
    """

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
    #: The revision (``#r``) read at load: a regenerate moves the session only if
    #: nothing was written to it since.
    revision: str = "0"


class State(enum.Enum):
    """Where a session is in its life during one request."""

    NEW = "new"  # nothing stored yet; written at save only if it holds something
    LOADED = "loaded"  # read from Redis; a save writes the delta in place
    REGENERATED = "regenerated"  # loaded, and moves to a new sid at save
    DESTROYED = "destroyed"  # stored data deleted at save, cookie expired
