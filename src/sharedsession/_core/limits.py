"""Session limits per user (``max_sessions_per_user``): the steps that list a session under the limit.

Generators like those of ``plan.py``, driven by the stores' runners.

The decision is one script on the user's index (``INDEX_JOIN``): the entry is
added only while the index holds fewer than the limit, so two logins racing
on two replicas cannot both get in past it. When the index is full, the steps
look at what its entries are now, and then:

- entries of sessions dead for good (gone, or a tombstone of a regenerate)
  are dropped by the next ``INDEX_JOIN``: they never count for long;
- ``"refuse"``: :class:`SessionLimitError`, nothing of the link applied;
- ``"evict_oldest"``: the user's live sessions whose entries expire first (the
  least recently renewed: a session's entry moves forward about once per idle
  period of use, see ``expiry.py``) are ended (``END``, as ``revoke`` does),
  then dropped, and the join is tried again. The end comes before the drop,
  so a step that fails midway leaves an evicted session ended but listed
  (dropped by the next listing), never unlisted but alive.

An entry of a live session not linked to the user is either a link on its
way (the entry is written a round trip before the link) or a session relinked
since (``user_id`` changed without ``regenerate()``). The first must count and
stay; a link is never on its way for long, so an entry last written more than
``SETTLE_MS`` ago (its score is its horizon: written at score - 2 idle periods)
is taken for the second, and dropped. One whose age cannot be told (its score
is the session's absolute deadline) counts until then, never evicted.
"""

from __future__ import annotations

from sharedsession._core import keys as k
from sharedsession._core.admin import end_sessions, text_of
from sharedsession._core.errors import SessionLimitError, StoreUnavailableError
from sharedsession._core.expiry import HORIZON_IDLE_PERIODS, Expiry
from sharedsession._core.ops import Command, Script, Steps
from sharedsession._core.scripts import INDEX_JOIN

__all__ = ["LIMIT_ATTEMPTS", "join_index"]

#: Joins tried before giving up (each evicts or drops at least one entry, unless
#: racing logins of the same user took the room first).
LIMIT_ATTEMPTS = 16

#: Longer than any save takes between listing a session and linking it.
SETTLE_MS = 5 * 60 * 1000

_FIELDS = (k.VERSION, k.USER, k.MOVED, k.CREATED)


def join_index(
    keys: k.KeySpace,
    user_id: str,
    handle: str,
    horizon_ms: int,
    now_ms: int,
    expiry: Expiry,
    *,
    limit: int,
    evict: bool,
    replaced: str | None = None,
) -> Steps[list[str]]:
    """List ``handle`` in the user's index within ``limit``; returns the handles it evicted.

    ``replaced``: the session a regenerate retires (linked to the same user):
    not counted, never evicted. Raises SessionLimitError when the user is at
    the limit and ``evict`` is False (or nothing can be evicted: every other
    entry is a link on its way), StoreUnavailableError when racing logins kept
    taking the room.
    """
    index = keys.user(user_id)
    drop: list[str] = []
    evicted: list[str] = []
    for _ in range(LIMIT_ATTEMPTS):
        join = Script(INDEX_JOIN, index, (now_ms, handle, horizon_ms, limit, replaced or "", *drop))
        (reply,) = yield (join,)
        if reply == 1:
            return evicted
        flat = reply if isinstance(reply, list) else []
        scores = {text_of(entry): _number(score) for entry, score in zip(flat[::2], flat[1::2], strict=False)}
        others = [entry for entry in scores if entry not in (handle, replaced)]
        metas = yield tuple(Command(("HMGET", keys.session(entry), *_FIELDS)) for entry in others)
        drop, linked = [], []
        for entry, meta in zip(others, metas, strict=True):
            version, user, moved, created = _fields(meta)
            if version is None or moved is not None:
                drop.append(entry)  # gone, or a tombstone: dead for good
            elif user == user_id:
                linked.append(entry)  # index order: the first to expire first
            elif _settled(scores[entry], _number(created), expiry, now_ms):
                drop.append(entry)  # linked to another user (or none) since, not on its way
        if drop:
            continue  # the next join drops them; maybe that is room enough
        excess = len(others) - (limit - 1)
        if excess <= 0:
            continue  # room was made meanwhile
        if not evict or not linked:
            raise SessionLimitError(user_id, limit)
        found = yield from end_sessions(keys, linked[:excess], user_id)
        evicted += [ended for ended, _ in found.ended]
        # Ended first, dropped by the next join: never unlisted while alive.
        drop = [*(ended for ended, _ in found.ended), *found.moved]
    raise StoreUnavailableError(f"user {user_id!r}: racing logins kept taking the room under the limit")


def _fields(meta: object) -> tuple[str | None, ...]:
    if not isinstance(meta, list) or len(meta) != len(_FIELDS):
        return (None,) * len(_FIELDS)
    return tuple(None if value is None else text_of(value) for value in meta)


def _settled(score: int, created_ms: int, expiry: Expiry, now_ms: int) -> bool:
    """Whether an index entry was last written longer than SETTLE_MS ago (False: cannot tell)."""
    deadline = expiry.absolute_deadline_ms(created_ms)
    if deadline is not None and score >= deadline:
        return False  # a horizon cut short by the absolute deadline: written when, unknown
    written = score - HORIZON_IDLE_PERIODS * expiry.idle_ms
    return now_ms - written > SETTLE_MS


def _number(value: object) -> int:
    try:
        return int(float(text_of(value)))
    except ValueError:
        return 0
