"""The admin steps (list, count, revoke), driven with scripted replies: no Redis."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sharedsession._core import admin
from sharedsession._core import keys as k
from sharedsession._core.expiry import Expiry
from tests.support.steps import command, names, run, script

KEYS = k.KeySpace("p:")
EXPIRY = Expiry(100_000, None)
NOW = 1_700_000_000_000
H1, H2, H3 = "1" * 32, "2" * 32, "3" * 32


def meta(user: str | None, created: int = NOW - 5000, ip: str | None = None) -> list[object]:
    """An HMGET reply of the fields sessions_of reads: #v, #c, #u, #ip, #ua, #moved."""
    return [
        b"1",
        str(created).encode(),
        None if user is None else user.encode(),
        ip and ip.encode(),
        None,
        None,
    ]


GONE = [None] * 6  # HMGET of a missing key
TOMBSTONE = [None, None, None, None, None, H3.encode()]  # left by regenerate()


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


# -- sessions_of -------------------------------------------------------------------------


def test_an_empty_index_is_one_round_trip() -> None:
    infos, batches = run(admin.sessions_of(KEYS, EXPIRY, "alice", NOW), [[]])
    assert infos == []
    (batch,) = batches
    assert names(batch) == ["index_read"]
    assert script(batch, "index_read").key == "p:u:alice"
    assert script(batch, "index_read").args == (NOW,)


def test_live_sessions_are_listed_oldest_first_with_their_details() -> None:
    infos, batches = run(
        admin.sessions_of(KEYS, EXPIRY, "alice", NOW),
        [[H1.encode(), H2.encode()]],
        [meta("alice", NOW - 1000), 50_000, meta("alice", NOW - 90_000, ip="203.0.113.5"), 80_000],
    )
    assert names(batches[1]) == ["HMGET", "PTTL", "HMGET", "PTTL"]
    assert command(batches[1][:1], "HMGET").args == ("HMGET", f"p:s:{H1}", *admin._INFO_FIELDS)
    assert [info.handle for info in infos] == [H2, H1]
    older = infos[0]
    assert older.user_id == "alice"
    assert older.client_ip == "203.0.113.5"
    assert older.user_agent is None
    assert older.created == at(NOW - 90_000)
    assert older.expires == at(NOW + 80_000)
    assert older.last_seen == at(NOW + 80_000 - 100_000)  # the TTL slid to last use + idle
    assert infos[1].last_seen == infos[1].created  # never before its creation


def test_entries_of_sessions_dead_for_good_are_pruned() -> None:
    infos, batches = run(
        admin.sessions_of(KEYS, EXPIRY, "alice", NOW),
        [[H1, H2, H3]],
        [meta("alice"), 50_000, GONE, -2, TOMBSTONE, 50_000],
        [1],
    )
    assert [info.handle for info in infos] == [H1]
    assert command(batches[2], "ZREM").args == ("ZREM", "p:u:alice", H2, H3)


def test_entries_of_sessions_linked_to_another_user_are_skipped_not_pruned() -> None:
    # A relink back to alice may be on its way (its entry is written before the link):
    # removing the entry could leave that session unlisted. It expires by its score.
    infos, batches = run(admin.sessions_of(KEYS, EXPIRY, "alice", NOW), [[H1]], [meta("bob"), 50_000])
    assert infos == []
    assert len(batches) == 2


@pytest.mark.parametrize(
    ("hmget", "pttl"),
    [
        ([b"1", b"not a time", b"alice", None, None, None], 5000),  # undecodable creation time
        ([b"1", None, b"alice", None, None, None], 5000),  # no creation time
        ([b"1", b"123", b"alice", None, None, None], -1),  # no TTL: not a session we wrote
        ("garbage", 5000),
    ],
)
def test_entries_that_do_not_read_as_our_sessions_are_skipped(hmget: object, pttl: object) -> None:
    infos, batches = run(admin.sessions_of(KEYS, EXPIRY, "alice", NOW), [[H1]], [hmget, pttl])
    assert infos == []
    assert len(batches) == 2


# -- revoke ------------------------------------------------------------------------------


def test_revoke_of_a_linked_session_ends_it_then_unlists_it() -> None:
    alive, batches = run(admin.revoke(KEYS, H1), [[1, b"alice"]], [1])
    assert alive is True
    end = script(batches[0], "end")
    assert end.key == f"p:s:{H1}"
    assert end.args == ("",)  # any user
    assert command(batches[1], "ZREM").args == ("ZREM", "p:u:alice", H1)


def test_revoke_of_an_unlinked_session_is_one_round_trip() -> None:
    alive, batches = run(admin.revoke(KEYS, H1), [[1, b""]])
    assert alive is True
    assert len(batches) == 1


def test_revoke_of_nothing_reports_it() -> None:
    alive, _ = run(admin.revoke(KEYS, H1), [0])
    assert alive is False


def test_revoke_of_a_regenerated_session_ends_its_successor() -> None:
    alive, batches = run(admin.revoke(KEYS, H1), [[2, H2.encode()]], [[2, H3.encode()]], [[1, b"bob"]], [1])
    assert alive is True
    assert [script(batch, "end").key for batch in batches[:3]] == [f"p:s:{h}" for h in (H1, H2, H3)]
    assert command(batches[3], "ZREM").args == ("ZREM", "p:u:bob", H3)


def test_revoke_of_a_tombstone_whose_successor_is_gone_reports_nothing_alive() -> None:
    alive, _ = run(admin.revoke(KEYS, H1), [[2, H2.encode()]], [0])
    assert alive is False


def test_revoke_follows_a_bounded_number_of_tombstones() -> None:
    chain = [[[2, f"{i:032x}".encode()]] for i in range(1, admin.MAX_HOPS + 1)]
    alive, batches = run(admin.revoke(KEYS, H1), *chain)
    assert alive is False
    assert len(batches) == admin.MAX_HOPS


@pytest.mark.parametrize("handle", ["", "x" * 32, "1" * 31, "1" * 33, "A" * 32, "1" * 32 + "\n", "*"])
def test_revoke_refuses_a_malformed_handle_before_any_io(handle: str) -> None:
    with pytest.raises(ValueError, match="not a session handle"):
        run(admin.revoke(KEYS, handle))


# -- revoke_user -------------------------------------------------------------------------


def test_revoke_user_ends_what_the_index_lists_for_that_user_only() -> None:
    ended, batches = run(
        admin.revoke_user(KEYS, "alice", NOW),
        [[H1, H2, H3]],
        [[1, b"alice"], 0, [2, b"4" * 32]],  # H2: gone or relinked; H3: regenerated meanwhile
        [[1, b"alice"]],  # H3's successor, linked to alice
        [1],
    )
    assert ended == 2
    assert [op.args for op in batches[1]] == [("alice",)] * 3  # END, only if linked to alice
    assert script(batches[2], "end").key == f"p:s:{'4' * 32}"
    # only entries of sessions dead for good leave the index: H2 may be relinked to alice meanwhile
    assert command(batches[3], "ZREM").args == ("ZREM", "p:u:alice", H1, "4" * 32, H3)


def test_revoke_user_without_sessions_is_one_round_trip() -> None:
    ended, batches = run(admin.revoke_user(KEYS, "alice", NOW), [[]])
    assert ended == 0
    assert names(batches[0]) == ["index_read"]


# -- count -------------------------------------------------------------------------------


def test_count_asks_nothing_for_no_keys() -> None:
    counted, batches = run(admin.count_sessions([]))
    assert counted == 0
    assert batches == []


def test_count_skips_tombstones() -> None:
    counted, batches = run(admin.count_sessions([b"p:s:1", b"p:s:2", b"p:s:3"]), [1, 0, 1])
    assert counted == 2
    assert [op.args for op in batches[0]] == [("HEXISTS", f"p:s:{n}".encode(), k.VERSION) for n in "123"]
