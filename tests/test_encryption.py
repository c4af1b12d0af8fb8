"""Encryption at rest (``SessionConfig(encryption_keys=...)``) on fakeredis, a real Redis
(REDIS_URL) and a Redis Cluster: through both stores, the Flask adapter and the ASGI
middleware. What Redis holds is read back with a plain client."""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify, request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sharedsession import SessionConfig, SetCookie
from sharedsession._core import keys as k
from sharedsession._core.sealing import MARKER, key_id
from sharedsession.asgi import SessionMiddleware, get_session
from sharedsession.flask import SharedSession, session
from tests.support import SECRET, Backend, Harness, RecordingAsyncRedis, load_scripts
from tests.support.asgi import recording_client

MakeStore = Callable[..., Harness]

KEY = os.urandom(32)
OLD_KEY = os.urandom(32)
KEY_TEXT = base64.b64encode(KEY).decode()


def create(store: Harness, data: dict[str, Any], **attrs: Any) -> str:
    """Store a new session holding ``data``; return its cookie value, the log cleared."""
    new = store.load(None)
    new.update(data)
    for name, value in attrs.items():
        setattr(new, name, value)
    result = store.save(new)
    assert isinstance(result.cookie, SetCookie)
    store.log.clear()
    return result.cookie.value


def handle_of(store: Harness, cookie: str) -> str:
    parsed = store.signer.unsign(cookie, 10**9)
    assert parsed is not None
    return k.handle_of(parsed[0])


def stored(store: Harness, raw: Any, cookie: str) -> dict[str, str]:
    """The session's hash as Redis holds it, field -> text."""
    found = raw.hgetall(store.keys.session(handle_of(store, cookie)))
    return {name.decode(): value.decode() for name, value in found.items()}


def app_values(fields: dict[str, str]) -> dict[str, str]:
    return {name: text for name, text in fields.items() if k.key_of(name) is not None}


# -- what Redis holds ----------------------------------------------------------------------


def test_values_are_sealed_in_redis_and_the_metadata_stays_plain(make_store: MakeStore, raw: Any) -> None:
    store = make_store(encryption_keys=[KEY_TEXT])
    cookie = create(store, {"user": "alice", "cart": ["apple", "pear"], "#odd": 1}, user_id="alice")
    fields = stored(store, raw, cookie)
    values = app_values(fields)
    assert set(values) == {"user", "cart", "##odd"}
    assert all(text.startswith(MARKER + key_id(KEY)) for text in values.values())
    assert not any("alice" in text or "apple" in text for text in values.values())
    # What the Lua scripts and the admin steps read is plain.
    assert fields[k.VERSION] == k.FORMAT_VERSION
    assert fields[k.USER] == "alice"
    assert int(fields[k.CREATED]) > 0
    assert int(fields[k.CAP]) > int(fields[k.CREATED])
    assert store.load(cookie) == {"user": "alice", "cart": ["apple", "pear"], "#odd": 1}
    assert [info.handle for info in store.sessions_of("alice")] == [handle_of(store, cookie)]


def test_round_trips_are_those_of_plain_sessions(make_store: MakeStore) -> None:
    def trips(store: Harness) -> list[list[list[str]]]:
        cookie = create(store, {"a": 1, "b": [1, 2]})
        steps = []
        loaded = store.load(cookie)
        assert dict(loaded) == {"a": 1, "b": [1, 2]}
        assert store.save(loaded).outcome == "unchanged"  # read only: nothing written
        steps.append(list(store.log.trips))
        store.log.clear()
        loaded = store.load(cookie)
        loaded["a"] = 2
        assert store.save(loaded).outcome == "updated"
        steps.append(list(store.log.trips))
        store.log.clear()
        assert store.load("forged." + cookie).new
        assert store.load(None).new
        steps.append(list(store.log.trips))
        return steps

    plain, sealed = trips(make_store()), trips(make_store(encryption_keys=[KEY]))
    assert sealed == plain
    read, write, none = sealed
    assert len(read) <= 1  # LOAD (none when the local cache holds the session)
    assert write[-1] == ["EVALSHA"]  # UPDATE
    assert none == []  # no cookie, or a forged one: no command, as ever


def test_only_changed_values_are_sealed_again(make_store: MakeStore, raw: Any) -> None:
    store = make_store(encryption_keys=[KEY])
    cookie = create(store, {"a": 1, "b": {"deep": [1]}, "c": "same"})
    before = stored(store, raw, cookie)
    loaded = store.load(cookie)
    loaded["a"] = 2
    loaded["b"]["deep"].append(2)  # an in-place edit, found at save
    _ = loaded["c"]  # read, unchanged
    assert store.save(loaded).outcome == "updated"
    after = stored(store, raw, cookie)
    assert after["a"] != before["a"]
    assert after["b"] != before["b"]
    assert after["c"] == before["c"]  # not written: a fresh nonce would have changed it
    assert store.load(cookie) == {"a": 2, "b": {"deep": [1, 2]}, "c": "same"}


def test_the_size_limit_counts_the_data_not_the_sealing(make_store: MakeStore, raw: Any) -> None:
    """max_size bounds the plaintext, so a session that fits fits with encryption on or off
    (sealed, a value takes about 4/3 of its size plus 43 bytes in Redis: README)."""
    limit = 64 + len("v") + 302
    plain, sealed = make_store(max_size=limit), make_store(max_size=limit, encryption_keys=[KEY])
    value = "x" * 300  # encoded: 302 bytes, with its quotes
    for store in (plain, sealed):
        cookie = create(store, {"v": value})
        assert store.load(cookie) == {"v": value}
    assert len(app_values(stored(sealed, raw, cookie))["v"]) > limit


# -- values that do not open -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["another field", "another session", "tampered"])
def test_a_value_that_does_not_open_makes_a_fresh_session_with_a_warning(
    make_store: MakeStore, raw: Any, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    store = make_store(encryption_keys=[KEY])
    victim = create(store, {"role": "user", "n": 1}, user_id="bob")
    admin = create(store, {"role": "admin"})
    key = store.keys.session(handle_of(store, victim))
    values = app_values(stored(store, raw, victim))
    if where == "another field":
        raw.hset(key, "role", values["n"])
    elif where == "another session":
        raw.hset(key, "role", app_values(stored(store, raw, admin))["role"])
    else:
        text = values["role"]
        raw.hset(key, "role", text[:-3] + ("AAA" if not text.endswith("AAA") else "BBB"))
    with caplog.at_level(logging.WARNING, logger="sharedsession"):
        loaded = store.load(victim)
    assert loaded.new
    assert dict(loaded) == {}
    assert loaded.user_id is None
    messages = [r.getMessage() for r in caplog.records]
    assert any("does not open" in m and "starting anew" in m for m in messages)
    loaded["n"] = 1
    result = store.save(loaded)
    assert result.outcome == "created"
    assert isinstance(result.cookie, SetCookie)
    assert result.cookie.value != victim


def test_a_store_with_other_keys_sees_fresh_sessions(
    make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    cookie = create(make_store(encryption_keys=[KEY]), {"n": 1})
    with caplog.at_level(logging.WARNING, logger="sharedsession"):
        assert make_store(encryption_keys=[OLD_KEY]).load(cookie).new
    assert any("key not configured" in r.getMessage() for r in caplog.records)


# -- rotation, and turning encryption on and off ------------------------------------------------


def test_old_keys_still_open_and_changed_values_take_the_newest(make_store: MakeStore, raw: Any) -> None:
    old = make_store(encryption_keys=[OLD_KEY])
    cookie = create(old, {"a": 1, "b": 2})
    rotated = make_store(encryption_keys=[KEY, OLD_KEY])
    loaded = rotated.load(cookie)
    assert dict(loaded) == {"a": 1, "b": 2}
    loaded["a"] = 3
    assert rotated.save(loaded).outcome == "updated"
    values = app_values(stored(rotated, raw, cookie))
    assert values["a"].startswith(MARKER + key_id(KEY))
    assert values["b"].startswith(MARKER + key_id(OLD_KEY))  # unchanged: sealed as it was
    assert rotated.load(cookie) == {"a": 3, "b": 2}
    # Dropping the old key too early ends the sessions that still hold values it sealed.
    assert make_store(encryption_keys=[KEY]).load(cookie).new


def test_turning_encryption_on_reads_plain_sessions_and_seals_them_as_they_change(
    make_store: MakeStore, raw: Any
) -> None:
    plain = make_store()
    cookie = create(plain, {"a": 1, "b": 2})
    assert app_values(stored(plain, raw, cookie)) == {"a": "1", "b": "2"}
    sealed = make_store(encryption_keys=[KEY])
    loaded = sealed.load(cookie)
    assert dict(loaded) == {"a": 1, "b": 2}
    loaded["a"] = 10
    assert sealed.save(loaded).outcome == "updated"
    values = app_values(stored(sealed, raw, cookie))
    assert values["a"].startswith(MARKER)
    assert values["b"] == "2"
    assert sealed.load(cookie) == {"a": 10, "b": 2}
    # A login re-creates the session whole, for its new id: everything is sealed then.
    loaded = sealed.load(cookie)
    loaded.regenerate()
    result = sealed.save(loaded)
    assert isinstance(result.cookie, SetCookie)
    values = app_values(stored(sealed, raw, result.cookie.value))
    assert all(text.startswith(MARKER) for text in values.values())


def test_turning_encryption_off_leaves_sealed_values_unreadable(
    make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    cookie = create(make_store(encryption_keys=[KEY]), {"a": 1})
    loaded = make_store().load(cookie)
    assert not loaded.new
    with caplog.at_level(logging.WARNING, logger="sharedsession"):
        assert dict(loaded) == {}
    assert any("cannot be decoded" in r.getMessage() for r in caplog.records)


# -- the session's life ---------------------------------------------------------------------------


def test_a_login_reseals_the_data_for_the_new_session(make_store: MakeStore, raw: Any) -> None:
    store = make_store(encryption_keys=[KEY])
    before = create(store, {"cart": ["apple"]})
    old_values = app_values(stored(store, raw, before))
    loaded = store.load(before)
    loaded.regenerate()
    loaded.user_id = "alice"
    result = store.save(loaded)
    assert result.outcome == "regenerated"
    assert isinstance(result.cookie, SetCookie)
    after = result.cookie.value
    assert app_values(stored(store, raw, after))["cart"] != old_values["cart"]
    assert store.load(after) == {"cart": ["apple"]}
    assert store.load(before).new
    assert store.revoke_user("alice") == 1
    assert store.load(after).new


# -- both adapters ------------------------------------------------------------------------------------


def flask_app(config: SessionConfig) -> Flask:
    app = Flask(__name__)
    SharedSession(app, config)

    @app.post("/set/<key>")
    def set_(key: str) -> str:
        session[key] = request.get_json()
        return "ok"

    @app.post("/login/<user>")
    def login(user: str) -> str:
        session.regenerate()
        session.user_id = user
        return "ok"

    @app.get("/read")
    def read() -> Any:
        return jsonify(dict(session))

    return app


def test_flask(backend: Backend, raw: Any) -> None:
    load_scripts(raw)
    config = SessionConfig(
        secret_key=SECRET, redis=backend.sync_client(), key_prefix=backend.prefix, encryption_keys=[KEY_TEXT]
    )
    client = flask_app(config).test_client()
    assert client.post("/set/cart", json=["apple"]).status_code == 200
    assert client.post("/login/alice").status_code == 200
    assert client.post("/set/n", json=1).status_code == 200
    assert client.get("/read").get_json() == {"cart": ["apple"], "n": 1}
    cookie = client.get_cookie("session")
    assert cookie is not None
    sid = k.handle_of(cookie.value.split(".")[0])
    fields = raw.hgetall(f"{backend.prefix}s:{sid}")
    assert fields[b"#u"] == b"alice"
    assert {name for name, text in fields.items() if text.startswith(MARKER.encode())} == {b"cart", b"n"}
    # Tampered with in Redis: the next request sees a fresh session.
    raw.hset(f"{backend.prefix}s:{sid}", "n", fields[b"cart"])
    assert client.get("/read").get_json() == {}


async def asgi_read(request: Request) -> JSONResponse:
    return JSONResponse(dict(get_session(request)))


async def asgi_write(request: Request) -> JSONResponse:
    get_session(request).update(await request.json())
    return JSONResponse({"ok": True})


@pytest.fixture
async def recorder(backend: Backend) -> AsyncIterator[RecordingAsyncRedis]:
    async with recording_client(backend) as client:
        yield client


async def test_asgi(backend: Backend, recorder: RecordingAsyncRedis, raw: Any) -> None:
    routes = [Route("/read", asgi_read), Route("/write", asgi_write, methods=["POST"])]
    config = SessionConfig(
        secret_key=SECRET, redis=recorder, key_prefix=backend.prefix, encryption_keys=[KEY]
    )
    app = Starlette(routes=routes, middleware=[Middleware(SessionMiddleware, config=config)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/write", json={"user": "alice", "n": 1})).status_code == 200
        recorder.log.clear()
        assert (await client.get("/read")).json() == {"user": "alice", "n": 1}
        assert recorder.log.trips == [["EVALSHA"]]
        value = client.cookies["session"]
        key = f"{backend.prefix}s:{k.handle_of(value.split('.')[0])}"
        fields = raw.hgetall(key)
        assert fields[b"user"].startswith(MARKER.encode())
        assert b"alice" not in fields[b"user"]
        raw.hset(key, "user", fields[b"n"])  # a value moved to another field does not open
        assert (await client.get("/read")).json() == {}
