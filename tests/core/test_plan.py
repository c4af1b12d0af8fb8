"""SessionCore's load and save, driven with scripted replies: every branch, no Redis.

Each test states the conversation with Redis it expects (the batches, in
order) and what the step returns; the store suite (tests/test_store.py) runs
the same steps against fakeredis, a real Redis and a Cluster.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sharedsession import Session, SessionConfig, SessionDataError, StoreUnavailableError
from sharedsession._core import keys as k
from sharedsession._core.http import ExpireCookie, SetCookie
from sharedsession._core.ops import Script
from sharedsession._core.plan import REGENERATE_ATTEMPTS, SessionCore
from sharedsession._core.record import UNBOUND, Client, State
from sharedsession._core.signing import CookieSigner, new_sid
from tests.support import SECRET, FakeClock
from tests.support.steps import command, hash_reply, key, names, run, script

T0 = 1_700_000_000.0
NOW_MS = int(T0 * 1000)
IDLE_S = 100
PREFIX = "p:"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def make_core(clock: FakeClock, **settings: Any) -> SessionCore:
    return SessionCore(
        SessionConfig(secret_key=SECRET, key_prefix=PREFIX, idle_timeout=IDLE_S, **settings), clock=clock
    )


@pytest.fixture
def core(clock: FakeClock) -> SessionCore:
    return make_core(clock)


def stored(data: dict[str, str], **meta: str) -> bytes:
    """A LOAD reply: our metadata (format 1, created at T0) plus app fields as stored."""
    fields = {k.VERSION: k.FORMAT_VERSION, k.CREATED: str(NOW_MS), **meta}
    fields.update({k.field_of(name): raw for name, raw in data.items()})
    return hash_reply(fields)


def cookie_for(clock: FakeClock, sid: str) -> str:
    return CookieSigner([SECRET], clock).sign(sid)


def loaded(core: SessionCore, clock: FakeClock, data: dict[str, str] | None = None, **meta: str) -> Session:
    """A session as a request loaded it: one LOAD, answered with this hash."""
    sid = new_sid()
    session, _ = run(core.load(cookie_for(clock, sid), UNBOUND), [stored(data or {"n": "1"}, **meta)])
    assert session.state is State.LOADED
    return session


# -- load ------------------------------------------------------------------------------


def test_no_cookie_is_a_new_session_without_a_round_trip(core: SessionCore) -> None:
    session, batches = run(core.load(None, UNBOUND))
    assert batches == []
    assert session.new
    assert session.state is State.NEW
    assert dict(session) == {}
    assert not session._had_cookie


@pytest.mark.parametrize("cookie", ["garbage", "A" * 43, "", "x.y.z"])
def test_a_cookie_not_ours_costs_no_round_trip(core: SessionCore, cookie: str) -> None:
    session, batches = run(core.load(cookie, UNBOUND))
    assert batches == []
    assert session.new
    assert session._had_cookie  # so that a destroy() still expires it


def test_a_cookie_older_than_any_live_session_costs_no_round_trip(
    core: SessionCore, clock: FakeClock
) -> None:
    cookie = cookie_for(clock, new_sid())
    clock.advance(2 * IDLE_S + 2)  # past the horizon: 2 idle periods, plus a second of slack
    session, batches = run(core.load(cookie, UNBOUND))
    assert batches == []
    assert session.new


def test_a_hit_is_one_load_script_on_the_session_key(core: SessionCore, clock: FakeClock) -> None:
    sid = new_sid()
    session, batches = run(
        core.load(cookie_for(clock, sid), UNBOUND), [stored({"user": '"alice"', "n": "5"})]
    )
    (batch,) = batches
    assert names(batch) == ["load"]
    assert script(batch, "load").key == f"{PREFIX}s:{k.handle_of(sid)}"
    assert script(batch, "load").args == (NOW_MS, IDLE_S * 1000, "")
    assert dict(session) == {"user": "alice", "n": 5}
    assert session.state is State.LOADED
    assert not session.new
    assert not session.modified
    assert session.handle == k.handle_of(sid)


def test_a_hit_keeps_the_metadata(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock, {"n": "1"}, **{k.USER: "alice", k.CAP: str(NOW_MS + 5000)})
    assert session.user_id == "alice"
    assert session._record is not None
    assert session._record.cap_ms == NOW_MS + 5000
    assert session._record.created_ms == NOW_MS


def test_an_app_key_starting_with_hash_is_read_back(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock, {"#tag": '"x"'})
    assert dict(session) == {"#tag": "x"}


@pytest.mark.parametrize(
    "reply",
    [
        b"{}",  # no such hash
        b"[]",  # the same, from a cjson that encodes an empty table as an array
        hash_reply({k.MOVED: "f" * 32}),  # a tombstone left by regenerate()
        hash_reply({"n": "1"}),  # not a session of ours: no format version
        hash_reply({k.VERSION: "2", k.CREATED: str(NOW_MS)}),  # a format from the future
        hash_reply({k.VERSION: "1"}),  # no creation time
        hash_reply({k.VERSION: "1", k.CREATED: "yesterday"}),
        b"\xff{}",  # not UTF-8
        b'["#v","1"]',  # not the shape LOAD returns
        None,
        7,
    ],
)
def test_a_miss_or_unreadable_data_is_a_new_session(
    core: SessionCore, clock: FakeClock, reply: object
) -> None:
    session, batches = run(core.load(cookie_for(clock, new_sid()), UNBOUND), [reply])
    assert len(batches) == 1
    assert session.new
    assert session.state is State.NEW
    assert dict(session) == {}
    assert session._had_cookie  # so that a destroy() still expires the cookie


def test_values_are_decoded_when_read_and_an_undecodable_one_reads_as_absent(
    core: SessionCore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    session = loaded(core, clock, {"good": "1", "bad": "{not json", "later": '"x"'})
    assert type(dict.__getitem__(session, "good")).__name__ == "_Undecoded"  # not decoded at load
    with caplog.at_level("WARNING", logger="sharedsession"):
        assert session.get("bad") is None
    assert "bad" not in session
    assert any("cannot be decoded" in r.getMessage() for r in caplog.records)
    assert session["good"] == 1
    assert dict(session) == {"good": 1, "later": "x"}
    assert not session.modified
    _, batches = run(core.save(session), [1])  # the garbage is dropped by the next save
    assert script(batches[0], "update").args[2:] == (0, "bad")


def test_binding_sends_the_fingerprint_and_a_mismatch_is_a_new_session(clock: FakeClock) -> None:
    core = make_core(clock, bind_ip="exact")
    client = core.client("203.0.113.5")
    assert client.fingerprint
    sid = new_sid()
    session, batches = run(
        core.load(cookie_for(clock, sid), client), [stored({"n": "1"}, **{k.FINGERPRINT: client.fingerprint})]
    )
    assert script(batches[0], "load").args[2] == client.fingerprint
    assert dict(session) == {"n": 1}
    other = core.client("198.51.100.7")
    session, _ = run(
        core.load(cookie_for(clock, sid), other), [stored({"n": "1"}, **{k.FINGERPRINT: client.fingerprint})]
    )
    assert session.new


def test_the_client_is_unbound_unless_binding_is_on(clock: FakeClock) -> None:
    assert make_core(clock).client("203.0.113.5", None, "curl/8") is UNBOUND
    bound = make_core(clock, bind_ip="subnet", trusted_proxies=["10.0.0.0/8"]).client(
        "10.1.2.3", "198.51.100.7", "curl/8"
    )
    assert bound.ip == "198.51.100.7"
    assert bound.user_agent == "curl/8"
    assert bound.fingerprint


def test_load_into_fills_the_given_session(core: SessionCore, clock: FakeClock) -> None:
    target = Session()
    session, _ = run(core.load(cookie_for(clock, new_sid()), UNBOUND, into=target), [stored({"n": "2"})])
    assert session is target
    assert dict(target) == {"n": 2}
    assert target.state is State.LOADED


def test_load_into_without_a_cookie_fills_an_empty_new_session(core: SessionCore) -> None:
    target = Session()
    session, batches = run(core.load(None, UNBOUND, into=target))
    assert session is target
    assert batches == []
    assert target.state is State.NEW


# -- save: nothing to do -------------------------------------------------------------------


def test_a_new_session_nothing_was_stored_in_writes_nothing(core: SessionCore) -> None:
    session = Session()
    assert not core.needs_save(session)
    result, batches = run(core.save(session))
    assert batches == []
    assert result.outcome == "unchanged"
    assert result.cookie is None


def test_a_loaded_session_read_only_writes_nothing(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock, {"cart": '["apple"]'})
    assert session["cart"] == ["apple"]
    assert core.needs_save(session)  # loaded: only the save can tell nothing changed
    result, batches = run(core.save(session))
    assert batches == []
    assert result.outcome == "unchanged"


def test_an_edit_undone_writes_nothing(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock, {"n": "1"})
    session["n"] = 2
    session["n"] = 1
    result, batches = run(core.save(session))
    assert batches == []
    assert result.outcome == "unchanged"
    assert not session.modified


def test_renewal_due_without_changes_reissues_the_cookie_without_a_write(
    core: SessionCore, clock: FakeClock
) -> None:
    session = loaded(core, clock)
    clock.advance(IDLE_S + 1)  # the cookie now has less than an idle period left before its horizon
    result, batches = run(core.save(session))
    assert batches == []
    assert result.outcome == "renewed"
    assert isinstance(result.cookie, SetCookie)
    assert result.cookie.max_age_seconds == 2 * IDLE_S
    assert session._record is not None
    assert session._record.cookie_issued_s == int(clock.now)


# -- save: writes -------------------------------------------------------------------------


def created_fields(op: Script) -> dict[object, object]:
    """The field/value pairs a CREATE script writes."""
    pairs = op.args[2:]
    return dict(zip(pairs[0::2], pairs[1::2], strict=True))


def test_a_new_session_is_created_by_one_script(core: SessionCore, clock: FakeClock) -> None:
    session = Session()
    session["n"] = 1
    result, batches = run(core.save(session), [1])
    (batch,) = batches
    create = script(batch, "create")
    assert names(batch) == ["create"]
    assert create.args[:2] == (NOW_MS + IDLE_S * 1000, "0")  # its TTL, in the same step; never overwrite
    assert created_fields(create) == {k.VERSION: k.FORMAT_VERSION, k.CREATED: NOW_MS, "n": b"1"}
    assert result.outcome == "created"
    assert isinstance(result.cookie, SetCookie)
    assert session.state is State.LOADED
    assert session._record is not None
    assert session.handle == k.handle_of(session._record.sid)
    assert create.key == f"{PREFIX}s:{session.handle}"


def test_a_new_session_whose_key_exists_is_refused(core: SessionCore) -> None:
    session = Session()
    session["n"] = 1
    with pytest.raises(StoreUnavailableError, match="exists already"):
        run(core.save(session), [0])


def test_a_new_session_linked_to_a_user_is_indexed_once_it_exists(core: SessionCore) -> None:
    session = Session()
    session.user_id = "alice"
    result, batches = run(core.save(session), [1], [1])
    assert [names(batch) for batch in batches] == [["create"], ["index_add"]]
    cap = NOW_MS + 2 * IDLE_S * 1000  # the user index horizon
    assert created_fields(script(batches[0], "create"))[k.CAP] == cap
    index = script(batches[1], "index_add")
    assert index.key == f"{PREFIX}u:alice"
    assert index.args == (NOW_MS, session.handle, cap)
    assert result.outcome == "created"


def test_a_bound_session_stores_its_fingerprint_and_client(clock: FakeClock) -> None:
    core = make_core(clock, bind_ip="exact", bind_user_agent=True)
    session = Session(client=core.client("203.0.113.5", None, "curl/8.5"))
    session["n"] = 1
    _, batches = run(core.save(session), [1])
    fields = created_fields(script(batches[0], "create"))
    assert fields[k.CLIENT_IP] == "203.0.113.5"
    assert fields[k.USER_AGENT] == "curl/8.5"
    assert fields[k.FINGERPRINT] == session._client.fingerprint


def test_an_update_sends_only_changed_and_deleted_fields(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock, {"a": "1", "b": "2", "c": "3", "#h": "4"})
    session["a"] = 10
    del session["b"]
    del session["#h"]
    session["d"] = "new"
    result, batches = run(core.save(session), [1])
    (batch,) = batches
    update = script(batch, "update")
    assert names(batch) == ["update"]
    assert update.key == f"{PREFIX}s:{session.handle}"
    now, idle, n, *rest = update.args
    assert (now, idle, n) == (NOW_MS, IDLE_S * 1000, 2)
    assert dict(zip(rest[0:4:2], rest[1:4:2], strict=True)) == {"a": b"10", "d": b'"new"'}
    assert sorted(map(str, rest[4:])) == ["##h", "b"]
    assert result.outcome == "updated"
    assert result.cookie is None
    assert not session.modified
    assert session._record is not None
    assert session._record.revision == "1"  # UPDATE moved it on, as the script does


def test_an_in_place_edit_is_found_at_save(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock, {"cart": '["apple"]'})
    session["cart"].append("pear")
    _, batches = run(core.save(session), [1])
    assert script(batches[0], "update").args[3:] == ("cart", b'["apple","pear"]')


def test_an_update_of_a_session_gone_meanwhile_is_dropped(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock)
    session["n"] = 2
    result, batches = run(core.save(session), [0])
    assert len(batches) == 1
    assert result.outcome == "gone"
    assert result.cookie is None


def test_linking_a_user_lists_the_session_before_writing_the_link(
    core: SessionCore, clock: FakeClock
) -> None:
    session = loaded(core, clock)
    session.user_id = "bob"
    result, batches = run(core.save(session), [1], [1])
    assert [names(batch) for batch in batches] == [["index_add"], ["update"]]
    cap = NOW_MS + 2 * IDLE_S * 1000
    assert script(batches[0], "index_add").args == (NOW_MS, session.handle, cap)
    assert script(batches[1], "update").args[2:] == (2, k.CAP, cap, k.USER, "bob")
    assert result.outcome == "updated"


def test_relinking_lists_under_the_new_user_and_leaves_the_old_entry_to_expire(
    core: SessionCore, clock: FakeClock
) -> None:
    session = loaded(core, clock, {"n": "1"}, **{k.USER: "alice", k.CAP: str(NOW_MS + 200_000)})
    session.user_id = "bob"
    _, batches = run(core.save(session), [1], [1])
    assert [names(batch) for batch in batches] == [["index_add"], ["update"]]
    assert script(batches[0], "index_add").key == f"{PREFIX}u:bob"


def test_unlinking_removes_the_user_and_cap(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock, {"n": "1"}, **{k.USER: "alice", k.CAP: str(NOW_MS + 200_000)})
    session.user_id = None
    _, batches = run(core.save(session), [1])
    assert names(batches[0]) == ["update"]
    assert script(batches[0], "update").args[2:] == (0, k.CAP, k.USER)


def test_a_link_to_a_session_gone_meanwhile_is_dropped(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock)
    session.user_id = "bob"
    result, batches = run(core.save(session), [1], [0])
    assert len(batches) == 2  # the entry added stays until a listing finds its session gone
    assert result.outcome == "gone"


def test_renewal_of_a_linked_session_moves_its_index_entry_then_its_cap(
    core: SessionCore, clock: FakeClock
) -> None:
    session = loaded(core, clock, {"n": "1"}, **{k.USER: "alice", k.CAP: str(NOW_MS + 200_000)})
    clock.advance(IDLE_S + 1)
    result, batches = run(core.save(session), [1], [1])
    now = NOW_MS + (IDLE_S + 1) * 1000
    cap = now + 2 * IDLE_S * 1000
    assert [names(batch) for batch in batches] == [["index_add"], ["update"]]
    assert script(batches[0], "index_add").args == (now, session.handle, cap)
    assert script(batches[1], "update").args == (now, IDLE_S * 1000, 1, k.CAP, cap)
    assert result.outcome == "renewed"
    assert isinstance(result.cookie, SetCookie)


def test_an_absolute_timeout_caps_the_cap(clock: FakeClock) -> None:
    core = make_core(clock, absolute_timeout=150)
    session = Session()
    session.user_id = "alice"
    _, batches = run(core.save(session), [1], [1])
    cap = NOW_MS + 150_000  # before the index horizon, 200 s away
    assert script(batches[1], "index_add").args[2] == cap
    assert script(batches[0], "create").args[0] == NOW_MS + IDLE_S * 1000


# -- save: regenerate and destroy --------------------------------------------------------


def test_regenerate_creates_the_successor_then_lists_it_and_retires_the_old_sid(
    core: SessionCore, clock: FakeClock
) -> None:
    session = loaded(
        core, clock, {"n": "1"}, **{k.USER: "alice", k.CAP: str(NOW_MS + 200_000), k.REVISION: "7"}
    )
    old = session.handle
    session.regenerate()
    result, batches = run(core.save(session), [1], [1, 1])
    assert [names(batch) for batch in batches] == [["create"], ["index_add", "retire"]]
    assert created_fields(script(batches[0], "create"))["n"] == b"1"  # the data moves along
    assert script(batches[1], "index_add").args[1] == session.handle
    retire = script(batches[1], "retire")
    assert retire.key == f"{PREFIX}s:{old}"
    # only if nothing was written since revision 7; a tombstone for an idle period
    assert retire.args == (session.handle, "7", NOW_MS + IDLE_S * 1000)
    assert session.handle != old
    assert session.state is State.LOADED
    assert result.outcome == "regenerated"
    assert isinstance(result.cookie, SetCookie)


def test_a_regenerate_that_lost_the_race_undoes_its_copy(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock, {"n": "1"}, **{k.USER: "alice", k.CAP: str(NOW_MS + 200_000)})
    session.regenerate()
    result, batches = run(core.save(session), [1], [1, 0], [1])
    new_key = script(batches[0], "create").key
    assert command(batches[2], "DEL").args == ("DEL", new_key)
    assert result.outcome == "gone"
    assert result.cookie is None


def test_a_regenerate_carries_what_another_replica_saved_meanwhile(
    core: SessionCore, clock: FakeClock
) -> None:
    session = loaded(core, clock, {"cart": '["apple"]', "theme": '"dark"', "old": "1"})
    session.regenerate()
    session["user"] = "alice"  # this request's change
    del session["old"]
    # Meanwhile another replica added to the cart and changed the theme (revision 1).
    now_stored = stored({"cart": '["apple","pear"]', "theme": '"light"', "old": "1"}, **{k.REVISION: "1"})
    result, batches = run(core.save(session), [1], [now_stored], [1], [1])
    assert [names(batch) for batch in batches] == [["create"], ["retire"], ["create"], ["retire"]]
    rebuilt = script(batches[2], "create")
    assert rebuilt.key == script(batches[0], "create").key
    assert rebuilt.args[1] == "1"  # overwrites the first copy
    fields = created_fields(rebuilt)
    assert fields["cart"] == b'["apple","pear"]'
    assert fields["theme"] == b'"light"'
    assert fields["user"] == b'"alice"'
    assert "old" not in fields
    assert script(batches[3], "retire").args[1] == "1"
    assert result.outcome == "regenerated"
    assert dict(session) == {"cart": ["apple"], "theme": "dark", "user": "alice"}  # what this request saw


def test_a_regenerate_keeps_a_user_linked_meanwhile(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock)
    session.regenerate()
    now_stored = stored({"n": "1"}, **{k.USER: "bob", k.CAP: str(NOW_MS + 200_000), k.REVISION: "1"})
    _, batches = run(core.save(session), [1], [now_stored], [1], [1, 1])
    assert created_fields(script(batches[2], "create"))[k.USER] == "bob"
    assert script(batches[3], "index_add").key == f"{PREFIX}u:bob"


def test_a_regenerate_that_never_catches_up_gives_up_without_a_trace(
    core: SessionCore, clock: FakeClock
) -> None:
    session = loaded(core, clock)
    session.regenerate()
    busy = stored({"n": "2"}, **{k.REVISION: "9"})
    replies: list[list[object]] = [[1], [busy]] * REGENERATE_ATTEMPTS
    steps = core.save(session)
    with pytest.raises(StoreUnavailableError, match="kept changing"):
        run(steps, *replies, [1])


def test_regenerate_of_a_new_session_is_nothing(core: SessionCore) -> None:
    session = Session()
    session.regenerate()
    assert session.state is State.NEW
    assert not core.needs_save(session)


def test_destroy_ends_the_session_then_unlists_it(core: SessionCore, clock: FakeClock) -> None:
    session = loaded(core, clock, {"n": "1"}, **{k.USER: "alice", k.CAP: str(NOW_MS + 200_000)})
    handle = session.handle
    session.destroy()
    result, batches = run(core.save(session), [[1, b"alice"]], [1])
    assert script(batches[0], "end").key == f"{PREFIX}s:{handle}"
    assert command(batches[1], "ZREM").args == ("ZREM", f"{PREFIX}u:alice", handle)
    assert result.outcome == "destroyed"
    assert isinstance(result.cookie, ExpireCookie)
    assert session.state is State.NEW


def test_destroy_of_a_session_regenerated_meanwhile_ends_the_successor(
    core: SessionCore, clock: FakeClock
) -> None:
    session = loaded(core, clock)
    session.destroy()
    successor = "f" * 32
    result, batches = run(core.save(session), [[2, successor.encode()]], [[1, b"bob"]], [1])
    assert script(batches[1], "end").key == f"{PREFIX}s:{successor}"
    assert command(batches[2], "ZREM").args == ("ZREM", f"{PREFIX}u:bob", successor)
    assert result.outcome == "destroyed"


def test_destroy_then_store_starts_a_new_session_in_the_same_round_trip(
    core: SessionCore, clock: FakeClock
) -> None:
    session = loaded(core, clock)
    old = session.handle
    session.destroy()
    session["flash"] = "logged out"
    result, batches = run(core.save(session), [[1, b""], 1])
    (batch,) = batches
    assert names(batch) == ["end", "create"]
    assert key(batch[0]) == f"{PREFIX}s:{old}"
    assert key(batch[1]) != key(batch[0])
    assert result.outcome == "created"
    assert isinstance(result.cookie, SetCookie)


def test_destroying_an_unknown_session_only_expires_the_cookie(core: SessionCore, clock: FakeClock) -> None:
    session, _ = run(core.load(cookie_for(clock, new_sid()), UNBOUND), [b"{}"])
    session.destroy()
    result, batches = run(core.save(session))
    assert batches == []
    assert isinstance(result.cookie, ExpireCookie)


def test_destroying_without_any_cookie_does_nothing(core: SessionCore) -> None:
    session = Session()
    session.destroy()
    result, batches = run(core.save(session))
    assert batches == []
    assert result.outcome == "unchanged"
    assert result.cookie is None


# -- save: refused before any I/O ----------------------------------------------------------


def test_an_in_place_edit_that_made_the_session_too_large_raises_before_any_io(
    clock: FakeClock,
) -> None:
    core = make_core(clock, max_size=64)
    session, _ = run(core.load(cookie_for(clock, new_sid()), UNBOUND), [stored({"cart": "[]"})])
    session["cart"].extend(["x" * 20] * 5)
    steps = core.save(session)
    with pytest.raises(SessionDataError):
        next(steps)


def test_an_in_place_edit_that_made_a_value_unstorable_raises_before_any_io(
    core: SessionCore, clock: FakeClock
) -> None:
    session = loaded(core, clock, {"cart": "[]"})
    session["cart"].append(object())
    with pytest.raises(SessionDataError):
        next(core.save(session))


def test_the_stored_bytes_are_the_codec_encoding(core: SessionCore) -> None:
    session = Session()
    session["when"] = (1, "two")
    _, batches = run(core.save(session), [1])
    raw = created_fields(script(batches[0], "create"))["when"]
    assert isinstance(raw, bytes)
    assert json.loads(raw) == {" t": [1, "two"]}


def test_client_of_an_unbound_core_ignores_the_request(core: SessionCore) -> None:
    assert core.client(None, None, None) is UNBOUND
    assert Client() == UNBOUND
