"""The store's contract, on fakeredis and (with REDIS_URL) a real Redis, through
both the sync and the asyncio runner: every test here runs up to four times."""

from __future__ import annotations

import datetime
import decimal
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import fakeredis
import pytest

from sharedsession import (
    Client,
    ExpireCookie,
    Session,
    SessionConfig,
    SessionStore,
    SetCookie,
)
from sharedsession._core import keys as k
from sharedsession._core.record import State
from tests.support import SECRET, FakeClock, Harness, RecordingRedis

MakeStore = Callable[..., Harness]


def create(store: Harness, data: dict[str, Any] | None = None, **attrs: Any) -> str:
    """Store a new session holding ``data``; return its cookie value."""
    session = store.load(None)
    session.update(data or {"n": 1})
    for name, value in attrs.items():
        setattr(session, name, value)
    result = store.save(session)
    assert isinstance(result.cookie, SetCookie)
    store.load(result.cookie.value)  # the server caches our scripts on first use
    store.log.clear()
    return result.cookie.value


def session_key(store: Harness, cookie: str) -> str:
    parsed = store.signer.unsign(cookie, 10**9)
    assert parsed is not None
    sid, _ = parsed
    return store.keys.session(k.handle_of(sid))


# -- anonymous traffic costs nothing -----------------------------------------


def test_no_cookie_and_nothing_stored_costs_zero_commands(store: Harness) -> None:
    session = store.load(None)
    assert session.new
    assert dict(session) == {}
    result = store.save(session)
    assert result.outcome == "unchanged"
    assert result.cookie is None
    assert store.log.trips == []


@pytest.mark.parametrize(
    "cookie",
    [
        "",
        "garbage",
        "a" * 43 + ".AAAAAA.bad-signature",
        "x" * 5000,
        "ünïcode",
    ],
)
def test_garbage_cookie_costs_zero_commands_and_reads_as_new(store: Harness, cookie: str) -> None:
    session = store.load(cookie)
    assert session.new
    assert dict(session) == {}
    assert store.save(session).cookie is None
    assert store.log.trips == []


def test_cookie_signed_with_unknown_key_costs_zero_commands(make_store: MakeStore) -> None:
    other = make_store(secret_key="another-secret-entirely-000000000")
    cookie = create(other)
    store = make_store()
    assert store.load(cookie).new
    assert store.log.trips == []


def test_cookie_older_than_any_live_session_costs_zero_commands(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = make_store(idle_timeout=60)
    cookie = create(store)
    clock.advance(2 * 60 + 5)
    assert store.load(cookie).new
    assert store.log.trips == []


def test_new_session_is_written_only_once_something_is_stored(store: Harness, raw: Any) -> None:
    session = store.load(None)
    _ = session.get("missing")
    assert store.save(session).outcome == "unchanged"
    assert store.log.trips == []
    session["cart"] = ["apple"]
    result = store.save(session)
    assert result.outcome == "created"
    assert isinstance(result.cookie, SetCookie)
    assert store.log.trips == [["EVALSHA"]]  # CREATE: the hash and its TTL in one script


# -- one round trip to read, nothing to write when nothing changed -----------


def test_read_only_use_is_one_round_trip_and_writes_nothing(store: Harness) -> None:
    cookie = create(store, {"user": "alice", "n": 5})
    session = store.load(cookie)
    assert dict(session) == {"user": "alice", "n": 5}
    read = [] if store.cached else [["EVALSHA"]]  # in the local cache since create() read it
    assert store.log.trips == read
    result = store.save(session)
    assert result.outcome == "unchanged"
    assert result.cookie is None
    assert store.log.trips == read


def test_load_slides_the_ttl(store: Harness, raw: Any, clock: FakeClock) -> None:
    cookie = create(store)
    key = session_key(store, cookie)
    clock.advance(store.config.touch_seconds + 1)  # with the local cache, it slides once it is due
    store.load(cookie)
    expected = int(clock.now * 1000) + store.expiry.idle_ms
    assert abs(raw.execute_command("PEXPIRETIME", key) - expected) <= 1


def test_save_writes_only_changed_and_deleted_fields_in_one_round_trip(store: Harness, raw: Any) -> None:
    cookie = create(store, {"a": 1, "b": [1, 2], "c": "keep", "gone": True})
    session = store.load(cookie)
    store.log.clear()
    session["a"] = 2  # changed
    session["b"].append(3)  # changed in place
    session["c"] = "keep"  # assigned, but equal: not written
    del session["gone"]
    session["new"] = None
    before = raw.hgetall(session_key(store, cookie))
    assert store.save(session).outcome == "updated"
    assert store.log.trips == [["EVALSHA"]]
    after = raw.hgetall(session_key(store, cookie))
    changed = {f for f in after if before.get(f) != after[f]}
    assert changed == {b"a", b"b", b"new", b"#r"}  # and the revision moved on
    assert b"gone" in before
    assert b"gone" not in after
    assert dict(store.load(cookie)) == {"a": 2, "b": [1, 2, 3], "c": "keep", "new": None}


def test_values_round_trip_with_their_types(store: Harness) -> None:
    data: dict[str, Any] = {
        "tuple": (1, "two", (3.0,)),
        "bytes": b"\x00\xff",
        "aware": datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
        "naive": datetime.datetime(2026, 1, 2, 3, 4, 5),
        "date": datetime.date(2026, 1, 2),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "decimal": decimal.Decimal("1.10"),
        "nested": {"list": [None, True, 1.5, {"#x": "y"}]},
        "#hash-key": 1,
    }
    cookie = create(store, data)
    loaded = dict(store.load(cookie))
    assert loaded == data
    assert {key: type(v) for key, v in loaded.items()} == {key: type(v) for key, v in data.items()}


def test_app_keys_cannot_forge_metadata(store: Harness) -> None:
    cookie = create(store, {"#v": "evil", "#u": "root", "#cap": 1})
    session = store.load(cookie)
    assert dict(session) == {"#v": "evil", "#u": "root", "#cap": 1}
    assert session.user_id is None


# -- concurrent replicas ------------------------------------------------------


def test_interleaved_saves_of_different_keys_on_two_replicas_both_survive(
    make_store: MakeStore,
) -> None:
    one, two = make_store(), make_store()
    cookie = create(one, {"base": 0, "drop": 1})
    a = one.load(cookie)
    b = two.load(cookie)
    a["from_a"] = 1
    b["from_b"] = 2
    del b["drop"]
    one.save(a)
    a["from_a_again"] = 3
    two.save(b)
    one.save(a)
    assert dict(one.load(cookie)) == {"base": 0, "from_a": 1, "from_b": 2, "from_a_again": 3}


def test_unchanged_keys_of_a_stale_load_do_not_overwrite_newer_values(
    make_store: MakeStore,
) -> None:
    one, two = make_store(), make_store()
    cookie = create(one, {"counter": 1, "other": "x"})
    stale = two.load(cookie)
    fresh = one.load(cookie)
    fresh["counter"] = 2
    one.save(fresh)
    stale["other"] = "y"
    two.save(stale)
    assert dict(one.load(cookie)) == {"counter": 2, "other": "y"}


@pytest.mark.parametrize("how", ["destroy", "revoke", "regenerate", "expire"])
def test_a_save_never_resurrects_a_session_ended_meanwhile(make_store: MakeStore, raw: Any, how: str) -> None:
    one, two = make_store(), make_store()
    cookie = create(one, {"user": "alice"}, user_id="alice")
    slow = two.load(cookie)  # a slow request on another replica
    ender = one.load(cookie)
    if how == "destroy":
        ender.destroy()
        one.save(ender)
    elif how == "revoke":
        assert one.revoke(ender.handle) is True
    elif how == "regenerate":
        ender.regenerate()
        one.save(ender)
    else:
        raw.delete(session_key(one, cookie))  # what expiry does
    slow["cart"] = ["late"]
    result = two.save(slow)
    assert result.outcome == "gone"
    assert result.cookie is None
    assert one.load(cookie).new
    assert not raw.exists(session_key(one, cookie)) or how == "regenerate"
    expected = 1 if how == "regenerate" else 0
    assert len(one.sessions_of("alice")) == expected


def test_regenerate_racing_regenerate_leaves_one_session(make_store: MakeStore, raw: Any) -> None:
    one, two = make_store(), make_store()
    cookie = create(one, {"n": 1}, user_id="bob")
    a, b = one.load(cookie), two.load(cookie)
    a.regenerate()
    b.regenerate()
    first = one.save(a)
    second = two.save(b)
    assert first.outcome == "regenerated"
    assert second.outcome == "gone"
    assert second.cookie is None
    assert [info.handle for info in one.sessions_of("bob")] == [a.handle]
    assert raw.exists(one.keys.session(a.handle))
    assert one.count() == 1  # b's copy was undone


# -- regenerate and destroy ----------------------------------------------------


def test_regenerate_keeps_data_and_kills_the_old_sid_at_once(store: Harness) -> None:
    cookie = create(store, {"cart": ["apple"]})
    session = store.load(cookie)
    old_handle = session.handle
    session.regenerate()
    session["user"] = "alice"
    result = store.save(session)
    assert result.outcome == "regenerated"
    assert isinstance(result.cookie, SetCookie)
    assert result.cookie.value != cookie
    assert session.handle != old_handle
    assert session.state is State.LOADED
    assert store.load(cookie).new
    assert dict(store.load(result.cookie.value)) == {"cart": ["apple"], "user": "alice"}


def test_regenerate_is_two_round_trips(store: Harness) -> None:
    cookie = create(store)
    session = store.load(cookie)
    store.log.clear()
    session.regenerate()
    session.user_id = "ida"
    store.save(session)
    # the successor, then its index entry and the commit: the old sid dies only once both stand
    assert store.log.trips == [["EVALSHA"], ["EVALSHA", "EVALSHA"]]


def test_regenerate_keeps_the_creation_time(store: Harness, clock: FakeClock) -> None:
    cookie = create(store, user_id="carol")
    created = store.sessions_of("carol")[0].created
    clock.advance(30)
    session = store.load(cookie)
    session.regenerate()
    store.save(session)
    (info,) = store.sessions_of("carol")
    assert info.created == created
    assert info.handle == session.handle


def test_destroy_deletes_and_expires_the_cookie(store: Harness, raw: Any) -> None:
    cookie = create(store, {"n": 1}, user_id="dave")
    session = store.load(cookie)
    session.destroy()
    result = store.save(session)
    assert result.outcome == "destroyed"
    assert isinstance(result.cookie, ExpireCookie)
    assert not raw.exists(session_key(store, cookie))
    assert not raw.exists(store.keys.user("dave"))
    assert store.load(cookie).new


def test_data_stored_after_destroy_goes_to_a_new_session(store: Harness) -> None:
    cookie = create(store, {"user": "eve"})
    session = store.load(cookie)
    session.destroy()
    session["flash"] = "You have been logged out"
    result = store.save(session)
    assert result.outcome == "created"
    assert isinstance(result.cookie, SetCookie)
    assert store.load(cookie).new
    assert dict(store.load(result.cookie.value)) == {"flash": "You have been logged out"}


def test_destroy_of_an_unknown_session_expires_the_presented_cookie(store: Harness) -> None:
    session = store.load("not-a-valid-cookie")
    session.destroy()
    assert isinstance(store.save(session).cookie, ExpireCookie)
    fresh = store.load(None)
    fresh.destroy()
    assert store.save(fresh).cookie is None
    assert store.log.trips == []


# -- redis keys ------------------------------------------------------------------


def test_redis_holds_no_usable_cookie(store: Harness, raw: Any) -> None:
    cookie = create(store, {"n": 1}, user_id="frank")
    sid = cookie.split(".")[0]
    keys = [key.decode() for key in raw.scan_iter(match=store.keys.prefix + "*")]
    assert len(keys) == 2
    dump = b"".join(
        b"".join(raw.hgetall(key)) if raw.type(key) == b"hash" else b"".join(raw.zrange(key, 0, -1))
        for key in keys
    )
    assert sid not in " ".join(keys)
    assert sid.encode() not in dump
    handle = store.sessions_of("frank")[0].handle
    assert store.load(handle).new  # a handle is not a cookie
    assert store.load(store.signer.sign(handle)).new


# -- user index ------------------------------------------------------------------


def test_sessions_of_lists_a_users_sessions(make_store: MakeStore, clock: FakeClock) -> None:
    store = make_store(bind_ip="exact", bind_user_agent=True)
    laptop = Client(ip="203.0.113.5", user_agent="Firefox/1")
    phone = Client(ip="198.51.100.7", user_agent="Safari/2")
    handles = []
    for client in (laptop, phone):
        clock.advance(1)
        session = store.load(None, client)
        session.user_id = "gina"
        store.save(session)
        handles.append(session.handle)
    create(store, user_id="someone-else")
    infos = store.sessions_of("gina")
    assert [i.handle for i in infos] == handles
    assert [(i.client_ip, i.user_agent) for i in infos] == [
        ("203.0.113.5", "Firefox/1"),
        ("198.51.100.7", "Safari/2"),
    ]
    for info in infos:
        assert info.user_id == "gina"
        assert info.created <= info.last_seen <= info.expires
    assert store.sessions_of("nobody") == []


def test_unbound_sessions_do_not_keep_ip_or_user_agent(store: Harness) -> None:
    session = store.load(None, Client(ip="203.0.113.5", user_agent="Firefox/1"))
    session.user_id = "hana"
    store.save(session)
    (info,) = store.sessions_of("hana")
    assert (info.client_ip, info.user_agent) == (None, None)


def test_changing_user_id_moves_the_index_entry(store: Harness, raw: Any) -> None:
    cookie = create(store, user_id="ivan")
    session = store.load(cookie)
    session.user_id = "jane"
    store.save(session)
    assert store.sessions_of("ivan") == []
    assert [i.handle for i in store.sessions_of("jane")] == [session.handle]
    session.user_id = None
    store.save(session)
    assert store.sessions_of("jane") == []
    assert store.load(cookie).user_id is None


def test_revoke_and_revoke_user(store: Harness) -> None:
    cookies = [create(store, user_id="kim") for _ in range(3)]
    assert len(store.sessions_of("kim")) == 3
    handle = store.load(cookies[0]).handle
    assert store.revoke(handle) is True
    assert store.revoke(handle) is False
    assert store.load(cookies[0]).new
    assert len(store.sessions_of("kim")) == 2
    assert store.revoke_user("kim") == 2
    assert all(store.load(c).new for c in cookies)
    assert store.revoke_user("kim") == 0


@pytest.mark.parametrize("handle", ["", "xyz", "A" * 32, "0" * 31, "0" * 33])
def test_revoke_refuses_a_malformed_handle(store: Harness, handle: str) -> None:
    with pytest.raises(ValueError, match="not a session handle"):
        store.revoke(handle)


def test_index_entries_of_dead_sessions_are_pruned(store: Harness, raw: Any) -> None:
    alive = create(store, user_id="lea")
    dead = create(store, user_id="lea")
    raw.delete(session_key(store, dead))  # as if it expired
    assert len(store.sessions_of("lea")) == 1
    assert raw.zcard(store.keys.user("lea")) == 1
    assert not store.load(alive).new


def test_the_index_expires_with_its_last_session(store: Harness, raw: Any, clock: FakeClock) -> None:
    create(store, user_id="max")
    index_expiry = raw.execute_command("PEXPIRETIME", store.keys.user("max"))
    horizon = int(clock.now * 1000) + 2 * store.expiry.idle_ms
    assert abs(index_expiry - horizon) <= 1


def test_count(store: Harness) -> None:
    assert store.count() == 0
    cookies = [create(store) for _ in range(3)]
    session = store.load(cookies[0])
    session.regenerate()
    store.save(session)  # leaves a tombstone, which is not a session
    assert store.count() == 3


# -- binding ----------------------------------------------------------------------


def test_binding_mismatch_reads_as_new_and_leaves_the_owner_alone(
    make_store: MakeStore, raw: Any, clock: FakeClock
) -> None:
    store = make_store(bind_ip="subnet", bind_user_agent=True)
    owner = store.client("203.0.113.5", None, "Mozilla/5.0 Firefox/120.0")
    session = store.load(None, owner)
    session["secret"] = "owner's"
    cookie = store.save(session).cookie
    assert isinstance(cookie, SetCookie)
    key = session_key(store, cookie.value)
    expiry_before = raw.execute_command("PEXPIRETIME", key)
    clock.advance(50)
    for thief in (
        store.client("198.51.100.9", None, "Mozilla/5.0 Firefox/120.0"),
        store.client("203.0.113.77", None, "Mozilla/5.0 Chrome/120.0"),
    ):
        stolen = store.load(cookie.value, thief)
        assert stolen.new
        assert dict(stolen) == {}
        stolen["x"] = 1
        assert store.save(stolen).outcome == "created"  # a session of its own
    assert raw.execute_command("PEXPIRETIME", key) == expiry_before  # not slid by thieves
    same_subnet_newer_browser = store.client("203.0.113.9", None, "Mozilla/5.0 Firefox/121.0")
    assert dict(store.load(cookie.value, same_subnet_newer_browser)) == {"secret": "owner's"}


def test_binding_uses_x_forwarded_for_only_from_trusted_proxies(make_store: MakeStore) -> None:
    store = make_store(bind_ip="exact", trusted_proxies=["10.0.0.0/8"])
    via_proxy = store.client("10.1.2.3", "203.0.113.5", None)
    session = store.load(None, via_proxy)
    session["n"] = 1
    cookie = store.save(session).cookie
    assert isinstance(cookie, SetCookie)
    other_proxy_hop = store.client("10.9.9.9", "203.0.113.5", None)
    assert not store.load(cookie.value, other_proxy_hop).new
    spoofed = store.client("198.51.100.1", "203.0.113.5", None)  # untrusted peer
    assert store.load(cookie.value, spoofed).new


# -- expiry -------------------------------------------------------------------------


def test_ttl_is_the_smaller_of_idle_and_remaining_absolute_lifetime(
    make_store: MakeStore, raw: Any, clock: FakeClock
) -> None:
    store = make_store(idle_timeout=100, absolute_timeout=150)
    created_ms = int(clock.now * 1000)
    cookie = create(store)
    key = session_key(store, cookie)
    assert abs(raw.execute_command("PEXPIRETIME", key) - (created_ms + 100_000)) <= 1
    clock.advance(80)
    session = store.load(cookie)
    assert abs(raw.execute_command("PEXPIRETIME", key) - (created_ms + 150_000)) <= 1
    session["n"] = 2
    store.save(session)
    assert abs(raw.execute_command("PEXPIRETIME", key) - (created_ms + 150_000)) <= 1


def test_cookie_max_age_follows_idle_and_absolute(make_store: MakeStore) -> None:
    plain = make_store(idle_timeout=100)
    session = plain.load(None)
    session["n"] = 1
    cookie = plain.save(session).cookie
    assert isinstance(cookie, SetCookie)
    assert cookie.max_age_seconds == 200
    capped = make_store(idle_timeout=100, absolute_timeout=150)
    session = capped.load(None)
    session["n"] = 1
    cookie = capped.save(session).cookie
    assert isinstance(cookie, SetCookie)
    assert cookie.max_age_seconds == 150


def test_cookie_is_renewed_about_once_per_idle_period(make_store: MakeStore, clock: FakeClock) -> None:
    store = make_store(idle_timeout=100)
    cookie = create(store)
    clock.advance(50)
    session = store.load(cookie)
    assert store.save(session).outcome == "unchanged"
    clock.advance(60)  # cookie now older than idle: fewer than idle seconds before its horizon
    session = store.load(cookie)
    store.log.clear()
    result = store.save(session)
    assert result.outcome == "renewed"
    assert isinstance(result.cookie, SetCookie)
    assert result.cookie.max_age_seconds == 200
    assert store.log.trips == []  # an unlinked session renews its cookie without a write
    assert dict(store.load(result.cookie.value)) == {"n": 1}


def test_renewal_of_a_linked_session_moves_its_cap_and_index_entry(
    make_store: MakeStore, raw: Any, clock: FakeClock
) -> None:
    store = make_store(idle_timeout=100)
    cookie = create(store, user_id="nina")
    clock.advance(150)
    session = store.load(cookie)
    store.log.clear()
    result = store.save(session)
    assert result.outcome == "renewed"
    assert len(store.log.trips) == 2  # the index entry moves first, then the cap it allows
    horizon = int(clock.now * 1000) + 200_000
    assert abs(int(raw.hget(session_key(store, cookie), k.CAP)) - horizon) <= 1
    assert abs(raw.zscore(store.keys.user("nina"), session.handle) - horizon) <= 1


def test_idle_timeout_expires_on_real_time(make_store: MakeStore, clock: FakeClock) -> None:
    store = make_store(idle_timeout=1)
    clock.use_real_time()  # for Redis-side expiry
    cookie = create(store)
    time.sleep(2.2)
    assert store.load(cookie).new


def test_absolute_timeout_expires_an_active_session_on_real_time(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = make_store(idle_timeout=30, absolute_timeout=2)
    clock.use_real_time()
    cookie = create(store)
    time.sleep(0.2)
    assert not store.load(cookie).new  # alive, and the load slid nothing past the cap
    time.sleep(3.0)
    assert store.load(cookie).new


# -- bad stored data --------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"{not json", b'{" zz":1}'])
def test_an_undecodable_value_reads_as_absent_with_a_warning(
    store: Harness, raw: Any, caplog: pytest.LogCaptureFixture, value: bytes
) -> None:
    """Values are decoded when read: one that is not ours is skipped, the rest of the session stays."""
    cookie = create(store, {"a": 1, "b": 2})
    raw.hset(session_key(store, cookie), "a", value)
    session = store.load(cookie)
    with caplog.at_level(logging.WARNING, logger="sharedsession"):
        assert dict(session) == {"b": 2}
    assert any("cannot be decoded" in r.getMessage() for r in caplog.records)
    assert store.save(session).outcome == "updated"  # the garbage goes
    assert raw.hkeys(session_key(store, cookie)).count(b"a") == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"#v": "99", "#c": "1", "a": b"1"},
        {"#c": "1", "a": b"1"},
        {"#v": "1", "#c": "yesterday"},
        {"#v": "1", "a": b"1"},
    ],
)
def test_undecodable_stored_data_reads_as_new_with_a_warning(
    store: Harness, raw: Any, caplog: pytest.LogCaptureFixture, fields: dict[str, Any]
) -> None:
    cookie = create(store)
    key = session_key(store, cookie)
    raw.delete(key)
    raw.hset(key, mapping=fields)
    raw.expire(key, 60)
    with caplog.at_level(logging.WARNING, logger="sharedsession"):
        session = store.load(cookie)
    assert session.new
    assert dict(session) == {}
    assert any("starting anew" in r.getMessage() for r in caplog.records)
    session["fresh"] = 1
    result = store.save(session)
    assert result.outcome == "created"
    assert isinstance(result.cookie, SetCookie)
    assert result.cookie.value != cookie


@pytest.mark.parametrize("foreign", ["string", "list"])
def test_a_key_of_another_type_where_a_session_belongs_is_no_session(
    store: Harness, raw: Any, caplog: pytest.LogCaptureFixture, foreign: str
) -> None:
    def overwrite(key: str) -> None:
        raw.delete(key)
        if foreign == "string":
            raw.set(key, "not a hash", ex=60)
        else:
            raw.rpush(key, "not", "a", "hash")
            raw.expire(key, 60)

    cookie = create(store, {"n": 1})
    overwrite(session_key(store, cookie))
    with caplog.at_level(logging.WARNING, logger="sharedsession"):
        session = store.load(cookie)  # not WRONGTYPE: a new session, and a warning
    assert session.new
    assert any("cannot be decoded" in r.getMessage() for r in caplog.records)
    session["fresh"] = 1
    assert store.save(session).outcome == "created"
    # Requests that loaded it before: an update, a regenerate and a logout refuse quietly.
    for step in ("update", "regenerate", "destroy"):
        cookie = create(store, {"n": 1})
        loaded = store.load(cookie)
        overwrite(session_key(store, cookie))
        loaded["n"] = 2
        if step == "regenerate":
            loaded.regenerate()
        elif step == "destroy":
            loaded.destroy()
        assert store.save(loaded).outcome == ("destroyed" if step == "destroy" else "gone")
        assert store.revoke(session_key(store, cookie).rpartition(":")[2]) is False


def test_a_key_of_another_type_where_a_user_index_belongs_is_replaced(store: Harness, raw: Any) -> None:
    raw.set(store.keys.user("olga"), "something else", ex=600)
    cookie = create(store, user_id="olga")  # no WRONGTYPE, no session left unlisted
    assert [info.handle for info in store.sessions_of("olga")] == [store.load(cookie).handle]
    assert store.revoke_user("olga") == 1
    raw.set(store.keys.user("pia"), "something else", ex=600)
    assert store.sessions_of("pia") == []
    assert store.revoke_user("pia") == 0


def test_unstorable_in_place_edit_raises_at_save_before_any_io(store: Harness) -> None:
    from sharedsession import SessionDataError

    cookie = create(store, {"cart": []})
    session = store.load(cookie)
    store.log.clear()
    session["cart"].append({1, 2})
    with pytest.raises(SessionDataError, match="cart"):
        store.save(session)
    assert store.log.trips == []


def test_sessions_survive_a_script_cache_flush() -> None:
    # fakeredis only: flushing the script cache of a shared server would disturb others.
    client = RecordingRedis(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    store = SessionStore(SessionConfig(secret_key=SECRET, redis=client))
    session = store.load(None)
    session["n"] = 1
    cookie = store.save(session).cookie
    assert isinstance(cookie, SetCookie)
    client.inner.script_flush()
    client.log.clear()
    assert dict(store.load(cookie.value)) == {"n": 1}
    assert client.log.trips == [["EVALSHA"], ["EVAL"]]
    client.log.clear()
    store.load(cookie.value)
    assert client.log.trips == [["EVALSHA"]]


def test_a_session_is_a_session(store: Harness) -> None:
    assert isinstance(store.load(None), Session)
