"""The session limit's steps (``_core/limits.py``), driven with scripted replies: the
conversation with Redis for each case, no Redis. The store suite (tests/test_limits.py)
runs the same steps on fakeredis, a real Redis and a Cluster."""

from __future__ import annotations

import pytest

from sharedsession import SessionLimitError, StoreUnavailableError
from sharedsession._core import keys as k
from sharedsession._core.expiry import Expiry
from sharedsession._core.keys import KeySpace
from sharedsession._core.limits import LIMIT_ATTEMPTS, SETTLE_MS, join_index
from sharedsession._core.ops import Steps
from tests.support.steps import names, run, script

KEYS = KeySpace("p:")
NEW, OLD, OLDER, OTHER = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)
EXPIRY = Expiry.of(100, None)  # a horizon is 2 idle periods: 200 s
NOW = 10_000_000
HORIZON = NOW + 200_000  # the score of an entry written now


def join(limit: int = 2, *, evict: bool = True, replaced: str | None = None) -> Steps[list[str]]:
    return join_index(KEYS, "ann", NEW, HORIZON, NOW, EXPIRY, limit=limit, evict=evict, replaced=replaced)


def live(user: str = "ann") -> list[object]:
    return [b"1", user.encode(), None, str(NOW).encode()]


DEAD: list[object] = [None, None, None, None]


def full(*handles: str, written: int = NOW) -> list[object]:
    """INDEX_JOIN's answer when the index is full: each entry and its score (written then)."""
    return [x for handle in handles for x in (handle.encode(), str(written + 200_000).encode())]


def test_a_user_under_the_limit_is_listed_in_one_script() -> None:
    evicted, batches = run(join(), [1])
    assert evicted == []
    (only,) = batches
    op = script(only, "index_join")
    assert op.key == KEYS.user("ann")
    assert op.args == (NOW, NEW, HORIZON, 2, "")


def test_at_the_limit_the_entry_that_expires_first_is_ended_then_dropped() -> None:
    evicted, batches = run(
        join(),
        [full(OLDER, OLD)],  # full: every entry and its score, the first to expire first
        [live(), live()],  # HMGET of each: both live and ann's
        [[1, b"ann"]],  # END of the older one: ended
        [1],  # the join again, dropping it: listed
    )
    assert evicted == [OLDER]
    assert [names(batch) for batch in batches] == [
        ["index_join"],
        ["HMGET", "HMGET"],
        ["end"],
        ["index_join"],
    ]
    assert script(batches[2], "end").key == KEYS.session(OLDER)
    assert script(batches[2], "end").args == ("ann",)  # only while still ann's
    assert script(batches[3], "index_join").args == (NOW, NEW, HORIZON, 2, "", OLDER)


def test_dead_entries_are_dropped_before_anything_is_ended() -> None:
    evicted, batches = run(
        join(evict=False),
        [full(OLDER, OLD)],
        [DEAD, [b"1", b"ann", NEW.encode(), b"0"]],  # gone, and a tombstone
        [1],
    )
    assert evicted == []
    assert script(batches[2], "index_join").args[5:] == (OLDER, OLD)


def test_refuse_raises_when_every_entry_is_a_live_session() -> None:
    with pytest.raises(SessionLimitError, match="'ann' has 1 live session"):
        run(join(1, evict=False), [full(OLD)], [live()])


def test_the_replaced_session_is_neither_counted_nor_evicted() -> None:
    evicted, batches = run(join(1, replaced=OLD), [1])
    assert script(batches[0], "index_join").args == (NOW, NEW, HORIZON, 1, OLD)
    # Full all the same (another login took the place): the replaced one is not looked at.
    evicted, batches = run(
        join(1, replaced=OLD),
        [full(OLD, OTHER)],
        [live()],
        [[1, b"ann"]],
        [1],
    )
    assert evicted == [OTHER]
    assert k.KeySpace("p:").session(OTHER) == batches[1][0].args[1]


def test_links_on_their_way_count_but_are_never_evicted() -> None:
    """An entry whose session is not (yet, or any more) linked to the user: its link may be on
    its way (the entry is written first). Counted; with nothing else to evict, the login is refused."""
    with pytest.raises(SessionLimitError):
        run(join(1), [full(OLD)], [[b"1", None, None, b"0"]])
    with pytest.raises(SessionLimitError):
        run(join(1), [full(OLD)], [live("bob")])


def test_an_entry_of_a_session_relinked_long_ago_is_dropped_not_counted() -> None:
    """Written more than SETTLE_MS ago and linked to someone else now: not a link on its way."""
    evicted, batches = run(
        join(1, evict=False),
        [full(OLD, written=NOW - SETTLE_MS - 1)],
        [live("bob")],
        [1],
    )
    assert evicted == []
    assert script(batches[-1], "index_join").args[5:] == (OLD,)


def test_an_entry_whose_age_cannot_be_told_counts() -> None:
    """Its score is the session's absolute deadline: when it was written is unknown."""
    capped = join_index(KEYS, "ann", NEW, HORIZON, NOW, Expiry.of(100, 3600), limit=1, evict=True)
    created = NOW - 3_600_000 + 1_000  # one second of its life left: the deadline caps the horizon
    deadline = str(created + 3_600_000).encode()
    with pytest.raises(SessionLimitError):
        run(capped, [[OLD.encode(), deadline]], [[b"1", b"bob", None, str(created).encode()]])


def test_a_victim_regenerated_meanwhile_is_followed_and_both_handles_dropped() -> None:
    evicted, batches = run(
        join(1),
        [full(OLD)],
        [live()],
        [[2, OTHER.encode()]],  # END: a tombstone now, naming its successor
        [[1, b"ann"]],  # END of the successor
        [1],
    )
    assert evicted == [OTHER]
    assert script(batches[-1], "index_join").args[5:] == (OTHER, OLD)


def test_racing_logins_that_keep_taking_the_room_end_in_an_error_not_a_loop() -> None:
    full_of_the_dead = [[full(OLD)], [DEAD]] * LIMIT_ATTEMPTS
    with pytest.raises(StoreUnavailableError, match="racing logins"):
        run(join(1), *full_of_the_dead)
