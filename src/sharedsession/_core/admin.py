"""Ending sessions, and the admin steps outside a request: list, count and revoke.

Generators like those of ``plan.py``: ``SessionStore`` and
``AsyncSessionStore`` drive the same steps.

A user's index (``keys.py``) lists at least every live session linked to the
user: an entry is added once its session exists and before the link is
written, and removed only where its session is known to be dead for good
(expired, deleted, or a tombstone; a handle never comes back). Entries of
sessions linked to another user since are skipped, not removed: a relink back
may be on its way, and they expire by their score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sharedsession._core import keys as k
from sharedsession._core.expiry import Expiry
from sharedsession._core.ops import Batch, Command, Replies, Script, Steps
from sharedsession._core.scripts import END, INDEX_READ

_INFO_FIELDS = (k.VERSION, k.CREATED, k.USER, k.CLIENT_IP, k.USER_AGENT, k.MOVED)

#: How many regenerations in a row an end follows (each left a tombstone
#: naming its successor). Far more than a real session makes while one request
#: is in flight; it only bounds the work should something loop.
MAX_HOPS = 16


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


@dataclass
class Ended:
    """What ending a set of sessions (and their successors) found."""

    #: Live sessions deleted: (handle, the user id it was linked to or "").
    ended: list[tuple[str, str]] = field(default_factory=list)
    #: Tombstones passed on the way (sessions regenerated before the end arrived).
    moved: list[str] = field(default_factory=list)


def end_sessions(
    keys: k.KeySpace, handles: Sequence[str], user_id: str = "", first: Replies | None = None
) -> Steps[Ended]:
    """End these sessions and, through their tombstones, the sessions they were regenerated into.

    ``user_id``: end only sessions linked to that user ("": any). ``first``:
    the replies of END scripts already sent for ``handles`` (a destroy sends
    its first END together with other operations).
    """
    found = Ended()
    pending = list(handles)
    replies = first
    for _ in range(MAX_HOPS):
        if not pending:
            break
        if replies is None:
            replies = yield tuple(end_op(keys, handle, user_id) for handle in pending)
        successors: list[str] = []
        for handle, reply in zip(pending, replies, strict=True):
            kind, value = _end_reply(reply)
            if kind == 1:
                found.ended.append((handle, value))
            elif kind == 2 and k.is_handle(value):
                found.moved.append(handle)
                successors.append(value)
        pending, replies = successors, None
    return found


def end_op(keys: k.KeySpace, handle: str, user_id: str = "") -> Script:
    """The END script for one session: delete it if live (and linked to ``user_id``, if given)."""
    return Script(END, keys.session(handle), (user_id,))


def sessions_of(keys: k.KeySpace, expiry: Expiry, user_id: str, now_ms: int) -> Steps[list[SessionInfo]]:
    """The user's live sessions, oldest first; drops index entries of sessions dead for good."""
    user_key = keys.user(user_id)
    (handles,) = yield (Script(INDEX_READ, user_key, (now_ms,)),)
    names = [text_of(h) for h in handles] if isinstance(handles, list) else []
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
        meta, pttl = replies[2 * i], replies[2 * i + 1]
        info = _info(handle, meta, pttl, expiry, now_ms)
        if info is not None:
            if info.user_id == user_id:
                infos.append(info)
        elif _dead(meta, pttl):
            dead.append(handle)
    if dead:
        yield (Command(("ZREM", user_key, *dead)),)
    infos.sort(key=lambda info: info.created)
    return infos


def revoke(keys: k.KeySpace, handle: str) -> Steps[bool]:
    """End the session with this handle, and what it was regenerated into. True if one was alive."""
    if not k.is_handle(handle):
        raise ValueError(f"not a session handle: {handle!r} (32 lowercase hex digits)")
    found = yield from end_sessions(keys, [handle])
    yield from unlist(keys, found.ended)
    return bool(found.ended)


def revoke_user(keys: k.KeySpace, user_id: str, now_ms: int) -> Steps[int]:
    """End every session of a user ("log out everywhere"). Returns how many were alive.

    Every session listed when it starts and still linked to the user ends,
    and so does any session one of them was regenerated into while it ran,
    if linked to the user. Sessions linked since are not ended: their index
    entries are left alone, so a later call finds them.
    """
    user_key = keys.user(user_id)
    (handles,) = yield (Script(INDEX_READ, user_key, (now_ms,)),)
    names = [text_of(h) for h in handles] if isinstance(handles, list) else []
    if not names:
        return 0
    found = yield from end_sessions(keys, names, user_id)
    yield from unlist(keys, [*found.ended, *((handle, user_id) for handle in found.moved)])
    return len(found.ended)


def count_sessions(keys: Sequence[str | bytes]) -> Steps[int]:
    """How many of these keys (from a SCAN) are live sessions, not tombstones."""
    if not keys:
        return 0
    replies = yield tuple(Command(("HEXISTS", key, k.VERSION)) for key in keys)
    return sum(1 for reply in replies if reply == 1)


def unlist(keys: k.KeySpace, dead: Iterable[tuple[str, str]]) -> Steps[None]:
    """Remove the index entries of sessions just found dead (a handle never comes back)."""
    by_user: dict[str, list[str]] = {}
    for handle, user in dead:
        if user:
            by_user.setdefault(user, []).append(handle)
    if by_user:
        yield tuple(Command(("ZREM", keys.user(user), *handles)) for user, handles in by_user.items())


def _end_reply(reply: object) -> tuple[int, str]:
    """END's reply as (1, user) ended, (2, handle) moved, or (0, "") nothing."""
    if isinstance(reply, list) and len(reply) == 2 and reply[0] in (1, 2):
        return int(reply[0]), text_of(reply[1])
    return 0, ""


def _dead(meta: object, pttl: object) -> bool:
    """An index entry whose session is dead for good: gone, or a tombstone."""
    if not isinstance(meta, list) or len(meta) != len(_INFO_FIELDS):
        return False
    return meta[0] is None or meta[-1] is not None or pttl == -2


def _info(handle: str, meta: object, pttl: object, expiry: Expiry, now_ms: int) -> SessionInfo | None:
    if not isinstance(meta, list) or len(meta) != len(_INFO_FIELDS) or meta[0] is None:
        return None
    if not isinstance(pttl, int) or pttl < 0:
        return None
    _, created, user, ip, agent, _ = (None if v is None else text_of(v) for v in meta)
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


def text_of(value: object) -> str:
    """A reply's bytes as text (the keys and values we store are UTF-8)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
