"""Redis key and hash-field names.

A session is **one Redis hash**, ``<prefix>s:<handle>``, whose *handle* is a
hash of the sid: whoever can read Redis learns no cookie that would work.

App data and our metadata share that hash. Metadata fields start with ``#``;
an app key that itself starts with ``#`` is stored with one more ``#`` in
front, so the two name spaces never collide and ordinary keys cost no byte
of overhead.

A user's sessions are listed in a sorted set, ``<prefix>u:<user id>``, of
handles scored by the latest time each session can still be alive.

No name uses a Redis Cluster hash tag: every command we send touches exactly
one key, so a session (one key) always lives in one slot, and the user index
may live anywhere. Nothing ever needs two keys in one slot.
"""

from __future__ import annotations

import hashlib
import re

FORMAT_VERSION = "1"

# Metadata fields of the session hash.
VERSION = "#v"  # stored format version; absent or unknown: the data is not ours to read
CREATED = "#c"  # creation time, ms since the epoch
CAP = "#cap"  # latest possible expiry, ms: absolute timeout and user-index horizon
USER = "#u"  # user id linked by session.user_id
FINGERPRINT = "#fp"  # binding fingerprint ("" or absent: unbound)
CLIENT_IP = "#ip"  # address seen at creation, kept only when bind_ip is on
USER_AGENT = "#ua"  # User-Agent seen at creation, kept only when bind_user_agent is on
MOVED = "#moved"  # tombstone left by regenerate(): handle of the new session
REVISION = "#r"  # moved on by every update; absent: 0 (see scripts.RETIRE)

_HANDLE = re.compile(r"[0-9a-f]{32}")  # matched whole


def handle_of(sid: str) -> str:
    """Return the handle of a sid: 128 bits of its SHA-256, in hex.

    One-way, so a handle (a Redis key, an admin listing) never yields a cookie.
    """
    return hashlib.sha256(sid.encode("ascii")).hexdigest()[:32]


def is_handle(value: object) -> bool:
    return isinstance(value, str) and _HANDLE.fullmatch(value) is not None


def field_of(key: str) -> str:
    """Return the hash field that stores app key ``key``."""
    return "#" + key if key.startswith("#") else key


def key_of(field: str) -> str | None:
    """Return the app key stored in hash field ``field``, or None for metadata."""
    if field.startswith("##"):
        return field[1:]
    if field.startswith("#"):
        return None
    return field


class KeySpace:
    """Redis key names under one prefix."""

    __slots__ = ("prefix", "session_pattern", "user_pattern")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        #: SCAN patterns of every session hash and every user index under the prefix.
        self.session_pattern = _glob_escape(prefix) + "s:*"
        self.user_pattern = _glob_escape(prefix) + "u:*"

    def session(self, handle: str) -> str:
        return f"{self.prefix}s:{handle}"

    def user(self, user_id: str) -> str:
        return f"{self.prefix}u:{user_id}"


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
