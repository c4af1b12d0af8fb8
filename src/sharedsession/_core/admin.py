"""Admin steps outside a request: list, count and revoke sessions.

Generators like those of ``plan.py``: ``SessionStore`` and
``AsyncSessionStore`` drive the same steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from sharedsession._core import keys as k
from sharedsession._core.expiry import Expiry
from sharedsession._core.ops import Batch, Command, Script, Steps
from sharedsession._core.scripts import INDEX_READ

_INFO_FIELDS = (k.VERSION, k.CREATED, k.USER, k.CLIENT_IP, k.USER_AGENT)


@dataclass(frozen=True)
class SessionInfo:
    """One live session, as an admin sees it. The handle is not usable as a cookie."""

    handle: str
    user_id: str | None
    created: datetime
    #: Derived from the TTL (expires - idle_timeout); earlier than the truth
    #: when the absolute timeout caps the TTL.
    last_seen: datetime
    expires: datetime
    #: Address and User-Agent seen at creation; None unless binding keeps them.
    client_ip: str | None
    user_agent: str | None


def sessions_of(keys: k.KeySpace, expiry: Expiry, user_id: str, now_ms: int) -> Steps[list[SessionInfo]]:
    """The user's live sessions, oldest first; prunes index entries of dead ones."""
    user_key = keys.user(user_id)
    (handles,) = yield (Script(INDEX_READ, user_key, (now_ms,)),)
    names = [_text(h) for h in handles] if isinstance(handles, list) else []
    if not names:
        return []
    batch: Batch = ()
    for handle in names:
        key = keys.session(handle)
        batch += (Command(("HMGET", key, *_INFO_FIELDS)), Command(("PTTL", key)))
    replies = yield batch
    infos: list[SessionInfo] = []
    dead: list[str] = []
    for i, handle in enumerate(names):
        info = _info(handle, replies[2 * i], replies[2 * i + 1], expiry, now_ms)
        if info is None or info.user_id != user_id:
            dead.append(handle)
        else:
            infos.append(info)
    if dead:
        yield (Command(("ZREM", user_key, *dead)),)
    infos.sort(key=lambda info: info.created)
    return infos


def revoke(keys: k.KeySpace, handle: str) -> Steps[bool]:
    """End the session with this handle. True if it was alive."""
    if not k.is_handle(handle):
        raise ValueError(f"not a session handle: {handle!r} (32 lowercase hex digits)")
    key = keys.session(handle)
    user, deleted = yield (Command(("HGET", key, k.USER)), Command(("DEL", key)))
    if user is not None:
        yield (Command(("ZREM", keys.user(_text(user)), handle)),)
    return deleted == 1


def revoke_user(keys: k.KeySpace, expiry: Expiry, user_id: str, now_ms: int) -> Steps[int]:
    """End every session of a user ("log out everywhere"). Returns how many were alive."""
    infos = yield from sessions_of(keys, expiry, user_id, now_ms)
    batch: Batch = tuple(Command(("DEL", keys.session(info.handle))) for info in infos)
    replies = yield (*batch, Command(("DEL", keys.user(user_id))))
    return sum(1 for reply in replies[:-1] if reply == 1)


def count_sessions(keys: Sequence[str | bytes]) -> Steps[int]:
    """How many of these keys (from a SCAN) are live sessions, not tombstones."""
    if not keys:
        return 0
    replies = yield tuple(Command(("HEXISTS", key, k.VERSION)) for key in keys)
    return sum(1 for reply in replies if reply == 1)


def _info(handle: str, meta: object, pttl: object, expiry: Expiry, now_ms: int) -> SessionInfo | None:
    if not isinstance(meta, list) or meta[0] is None or not isinstance(pttl, int) or pttl < 0:
        return None
    _, created, user, ip, agent = (None if v is None else _text(v) for v in meta)
    if created is None or not created.isdigit():
        return None
    created_ms = int(created)
    expires_ms = now_ms + pttl
    return SessionInfo(
        handle=handle,
        user_id=user,
        created=_datetime(created_ms),
        last_seen=_datetime(max(created_ms, expires_ms - expiry.idle_ms)),
        expires=_datetime(expires_ms),
        client_ip=ip,
        user_agent=agent,
    )


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
