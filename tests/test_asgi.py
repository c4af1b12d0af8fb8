"""The ASGI middleware, through Starlette and FastAPI apps and raw ASGI apps, on
fakeredis and (with REDIS_URL) a real Redis.

Requests go through httpx's ASGITransport in the test's own event loop (one
loop for the app and the Redis client). Round trips are counted by wrapping the
client in RecordingAsyncRedis; the scripts are cached on the server first, as
they are after the first request of a real app.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from email.utils import parsedate_to_datetime
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from sharedsession import (
    AsyncSessionStore,
    Session,
    SessionConfig,
    SessionStore,
    SetCookie,
)
from sharedsession._core.http import render
from sharedsession._core.keys import KeySpace
from sharedsession.asgi import ASGIApp, Message, Receive, Scope, Send, SessionMiddleware, get_session
from tests.support import (
    SECRET,
    Backend,
    FakeClock,
    Log,
    RecordingAsyncRedis,
    closed_port,
    delete_prefix,
    valid_cookie,
)
from tests.support.asgi import BOUND_SECONDS, lifespan, recording_client

# -- the app under test --------------------------------------------------------


def trips(request: Request) -> Log:
    log: Log = request.app.state.log
    return log


async def read(request: Request) -> JSONResponse:
    session = get_session(request)
    return JSONResponse(
        {
            "data": dict(session),
            "user": session.user_id,
            "handle": session.handle,
            "trips_when_the_app_ran": len(trips(request).trips),
        }
    )


async def write(request: Request) -> JSONResponse:
    """Merge the JSON body into the session."""
    request.session.update(await request.json())
    return JSONResponse({"ok": True})


async def login(request: Request) -> JSONResponse:
    session = get_session(request)
    session.regenerate()
    session.user_id = request.query_params["user"]
    session["user"] = request.query_params["user"]
    return JSONResponse({"ok": True})


async def logout(request: Request) -> JSONResponse:
    get_session(request).destroy()
    return JSONResponse({"ok": True})


async def stream(request: Request) -> StreamingResponse:
    request.session["streamed"] = True
    log = trips(request)

    async def body() -> AsyncIterator[bytes]:
        # The response has started: the save must be done by now.
        yield f"{len(log.trips)} trips;".encode()
        for i in range(3):
            await asyncio.sleep(0)
            yield f"chunk {i};".encode()

    return StreamingResponse(body(), media_type="text/plain")


async def background(request: Request) -> JSONResponse:
    request.session["before"] = 1
    done: list[str] = request.app.state.background

    async def task() -> None:
        request.session["during_background"] = 1  # too late: the response has gone
        done.append("ran")

    return JSONResponse({"ok": True}, background=BackgroundTask(task))


async def boom(request: Request) -> JSONResponse:
    request.session["boom"] = True
    raise RuntimeError("the view failed")


async def unstorable(request: Request) -> JSONResponse:
    request.session["items"].append(object())  # an in-place edit: found only at save
    return JSONResponse({"ok": True})


async def has_session(request: Request) -> JSONResponse:
    return JSONResponse({"has_session": "session" in request.scope})


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(dict(websocket.session))
    websocket.session["from_websocket"] = True  # not saved: documented
    await websocket.close()


ROUTES = [
    Route("/read", read),
    Route("/write", write, methods=["POST"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/stream", stream),
    Route("/background", background),
    Route("/boom", boom),
    Route("/unstorable", unstorable),
    Route("/static/{path:path}", has_session),
    Route("/staticfiles", has_session),
    Route("/healthz", lambda request: PlainTextResponse("ok")),
    WebSocketRoute("/ws", ws),
]


def make_app(log: Log | None = None, **options: Any) -> Starlette:
    """The test app, with SessionMiddleware(**options) installed the usual way."""
    app = Starlette(routes=ROUTES, middleware=[Middleware(SessionMiddleware, **options)])
    app.state.log = log or Log()
    app.state.background = []
    return app


async def call(
    app: ASGIApp,
    method: str,
    path: str,
    *,
    cookie: str | None = None,
    headers: dict[str, str] | None = None,
    json: object = None,
    raise_app_exceptions: bool = True,
) -> httpx.Response:
    """One request from a fresh client: cookies go only where a test puts them."""
    headers = dict(headers or {})
    if cookie is not None:
        headers["cookie"] = f"session={cookie}"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path, headers=headers, json=json)


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def cookie_value(response: httpx.Response) -> str:
    """The session cookie a response sets ("" when it expires it)."""
    (header,) = set_cookies(response)
    name, _, rest = header.partition("=")
    assert name == "session"
    return rest.split(";")[0]


# -- fixtures ------------------------------------------------------------------


@pytest.fixture
async def recorder(backend: Backend) -> AsyncIterator[RecordingAsyncRedis]:
    async with recording_client(backend) as client:
        yield client


@pytest.fixture
def config(backend: Backend, recorder: RecordingAsyncRedis) -> SessionConfig:
    return SessionConfig(secret_key=SECRET, redis=recorder, key_prefix=backend.prefix)


@pytest.fixture
def app(config: SessionConfig, recorder: RecordingAsyncRedis) -> Starlette:
    return make_app(recorder.log, config=config, exclude_paths=["/static", "/healthz"])


@pytest.fixture
def raw(backend: Backend) -> Any:
    return backend.sync_client()


async def create(app: ASGIApp, log: Log, data: dict[str, Any] | None = None) -> str:
    """Store a new session through the app; return its cookie value."""
    response = await call(app, "POST", "/write", json=data or {"n": 1})
    assert response.status_code == 200
    log.clear()
    return cookie_value(response)


@pytest.fixture
def dead_redis_config() -> SessionConfig:
    return SessionConfig(
        secret_key=SECRET, redis_url=f"redis://127.0.0.1:{closed_port()}/0", redis_timeout=0.5
    )


@pytest.fixture
def server_prefix(server_redis_url: str) -> Iterator[str]:
    """A key prefix of its own on the server_redis_url Redis, deleted afterwards."""
    prefix = f"sstest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(server_redis_url, prefix)


# -- what requests cost ---------------------------------------------------------


async def test_no_cookie_costs_zero_commands_and_sets_no_cookie(
    app: Starlette, recorder: RecordingAsyncRedis
) -> None:
    response = await call(app, "GET", "/read")
    assert response.status_code == 200
    assert response.json()["data"] == {}
    assert set_cookies(response) == []
    assert "vary" not in response.headers
    assert recorder.log.trips == []


@pytest.mark.parametrize("cookie", ["", "garbage", "a" * 43 + ".AAAAAA.bad-signature", "x" * 4000])
async def test_forged_cookie_costs_zero_commands(
    app: Starlette, recorder: RecordingAsyncRedis, cookie: str
) -> None:
    response = await call(app, "GET", "/read", cookie=cookie)
    assert response.status_code == 200
    assert response.json()["data"] == {}
    assert set_cookies(response) == []
    assert response.headers["vary"] == "Cookie"
    assert recorder.log.trips == []


async def test_cookie_signed_with_another_key_costs_zero_commands(
    app: Starlette, config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    other = make_app(config=dataclasses.replace(config, secret_key="another-secret-0000000000000000"))
    cookie = await create(other, recorder.log)
    response = await call(app, "GET", "/read", cookie=cookie)
    assert response.json()["data"] == {}
    assert recorder.log.trips == []


async def test_a_valid_cookie_is_one_round_trip_before_the_app_runs(
    app: Starlette, recorder: RecordingAsyncRedis
) -> None:
    cookie = await create(app, recorder.log, {"user": "alice", "n": 5})
    response = await call(app, "GET", "/read", cookie=cookie)
    assert response.json()["data"] == {"user": "alice", "n": 5}
    assert response.json()["trips_when_the_app_ran"] == 1
    assert recorder.log.trips == [["EVALSHA"]]
    assert set_cookies(response) == []
    assert response.headers["vary"] == "Cookie"


async def test_creating_a_session_is_one_round_trip_and_sets_the_cookie(
    app: Starlette, config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    response = await call(app, "POST", "/write", json={"cart": ["apple"]})
    assert recorder.log.trips == [["EVALSHA"]]  # CREATE
    (header,) = set_cookies(response)
    value = cookie_value(response)
    max_age = int(config.idle_timeout * 2)
    # Exactly what the core renders (the Flask adapter issues the same cookie).
    expected = render(SetCookie(value, max_age), config, time.time())
    assert header.split("; Expires=")[0] == expected.split("; Expires=")[0]
    assert header.split("; Path=")[1] == expected.split("; Path=")[1] == "/; HttpOnly; SameSite=Lax"
    expires = parsedate_to_datetime(header.split("; Expires=")[1].split(";")[0]).timestamp()
    assert abs(expires - (time.time() + max_age)) < 5
    assert response.headers["vary"] == "Cookie"
    again = await call(app, "GET", "/read", cookie=value)
    assert again.json()["data"] == {"cart": ["apple"]}


async def test_a_write_is_one_more_round_trip_and_sends_no_cookie(
    app: Starlette, recorder: RecordingAsyncRedis
) -> None:
    cookie = await create(app, recorder.log, {"a": 1})
    response = await call(app, "POST", "/write", cookie=cookie, json={"b": 2})
    assert response.status_code == 200
    assert recorder.log.trips == [["EVALSHA"], ["EVALSHA"]]
    assert set_cookies(response) == []
    assert (await call(app, "GET", "/read", cookie=cookie)).json()["data"] == {"a": 1, "b": 2}


async def test_an_unchanged_session_writes_nothing(app: Starlette, recorder: RecordingAsyncRedis) -> None:
    cookie = await create(app, recorder.log, {"a": 1, "list": [1, 2]})
    response = await call(app, "POST", "/write", cookie=cookie, json={"a": 1, "list": [1, 2]})
    assert response.status_code == 200
    assert recorder.log.trips == [["EVALSHA"]]
    assert set_cookies(response) == []


async def test_set_cookie_only_when_created_regenerated_destroyed_or_renewed(
    config: SessionConfig, recorder: RecordingAsyncRedis, clock: FakeClock, raw: Any
) -> None:
    config = dataclasses.replace(config, idle_timeout=60)
    store = AsyncSessionStore(config, clock=clock)
    app = make_app(recorder.log, store=store)
    created = await call(app, "POST", "/write", json={"n": 1})
    cookie = cookie_value(created)
    assert (await call(app, "GET", "/read", cookie=cookie)).headers.get("set-cookie") is None
    assert set_cookies(await call(app, "POST", "/write", cookie=cookie, json={"n": 2})) == []

    clock.advance(61)  # older than idle_timeout: the next response re-issues the cookie
    renewed = await call(app, "GET", "/read", cookie=cookie)
    assert renewed.json()["data"] == {"n": 2}
    renewed_cookie = cookie_value(renewed)
    assert renewed_cookie != cookie
    assert "Max-Age=120" in renewed.headers["set-cookie"]
    assert set_cookies(await call(app, "GET", "/read", cookie=renewed_cookie)) == []

    regenerated = await call(app, "POST", "/login?user=alice", cookie=renewed_cookie)
    new_cookie = cookie_value(regenerated)
    assert new_cookie not in (cookie, renewed_cookie)

    handle = (await call(app, "GET", "/read", cookie=new_cookie)).json()["handle"]
    destroyed = await call(app, "POST", "/logout", cookie=new_cookie)
    assert cookie_value(destroyed) == ""
    assert "Max-Age=0" in destroyed.headers["set-cookie"]
    assert raw.exists(KeySpace(config.key_prefix).session(handle)) == 0


async def test_vary_cookie_is_merged_into_the_apps_vary_header(
    config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        vary = scope["path"].strip("/").encode()
        headers = [(b"vary", vary)] if vary else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    app = SessionMiddleware(inner, config)
    assert (await call(app, "GET", "/Accept-Encoding", cookie="x")).headers[
        "vary"
    ] == "Accept-Encoding, Cookie"
    assert (await call(app, "GET", "/accept,cookie", cookie="x")).headers["vary"] == "accept,cookie"
    assert (await call(app, "GET", "/*", cookie="x")).headers["vary"] == "*"
    assert (await call(app, "GET", "/", cookie="x")).headers["vary"] == "Cookie"
    assert "vary" not in (await call(app, "GET", "/")).headers


async def test_several_cookie_headers_are_read_as_one(app: Starlette, recorder: RecordingAsyncRedis) -> None:
    cookie = await create(app, recorder.log, {"n": 7})
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "2",
        "method": "GET",
        "scheme": "http",
        "path": "/read",
        "raw_path": b"/read",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"cookie", b"a=1"), (b"cookie", f"session={cookie}".encode()), (b"cookie", b"b=2")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    assert b'"data":{"n":7}' in sent[1]["body"]


# -- streaming, background tasks, exceptions --------------------------------------


async def test_streaming_response_carries_the_cookie_and_is_saved_before_its_body(
    app: Starlette, recorder: RecordingAsyncRedis
) -> None:
    cookie = await create(app, recorder.log)
    response = await call(app, "GET", "/stream", cookie=cookie)
    assert response.status_code == 200
    # Load and save were both done when the body began.
    assert response.text == "2 trips;chunk 0;chunk 1;chunk 2;"
    assert recorder.log.trips == [["EVALSHA"], ["EVALSHA"]]
    recorder.log.clear()
    fresh = await call(app, "GET", "/stream")
    assert fresh.text.startswith("1 trips;")  # no load; the creation
    assert cookie_value(fresh)
    assert (await call(app, "GET", "/read", cookie=cookie_value(fresh))).json()["data"] == {"streamed": True}


async def test_background_tasks_run_after_the_save(app: Starlette, recorder: RecordingAsyncRedis) -> None:
    cookie = await create(app, recorder.log)
    response = await call(app, "GET", "/background", cookie=cookie)
    assert response.json() == {"ok": True}
    assert app.state.background == ["ran"]
    # What the view stored is saved; what the task stored after the response is not.
    assert (await call(app, "GET", "/read", cookie=cookie)).json()["data"] == {"n": 1, "before": 1}


async def test_an_app_that_raises_saves_nothing(app: Starlette, recorder: RecordingAsyncRedis) -> None:
    cookie = await create(app, recorder.log, {"n": 1})
    response = await call(app, "GET", "/boom", cookie=cookie, raise_app_exceptions=False)
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert recorder.log.trips == [["EVALSHA"]]
    assert (await call(app, "GET", "/read", cookie=cookie)).json()["data"] == {"n": 1}
    # A new session that the failing view filled is not created either.
    response = await call(app, "GET", "/boom", raise_app_exceptions=False)
    assert response.status_code == 500
    assert set_cookies(response) == []


async def test_a_raw_asgi_app_that_raises_saves_nothing(
    config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        scope["session"]["n"] = 2
        raise RuntimeError("before the response started")

    starlette = make_app(recorder.log, config=config)
    cookie = await create(starlette, recorder.log, {"n": 1})
    with pytest.raises(RuntimeError, match="before the response started"):
        await call(SessionMiddleware(inner, config), "GET", "/", cookie=cookie)
    assert recorder.log.trips == [["EVALSHA"]]
    assert (await call(starlette, "GET", "/read", cookie=cookie)).json()["data"] == {"n": 1}


async def test_a_crash_inside_an_app_wrapped_whole_saves_nothing(
    config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    """SessionMiddleware(Starlette(...)): Starlette's ServerErrorMiddleware sends the 500
    of the crashed view through us, then raises. Nothing may be saved of that request."""
    inner = Starlette(routes=ROUTES)
    inner.state.log = recorder.log
    wrapped = SessionMiddleware(inner, config)
    cookie = await create(wrapped, recorder.log, {"n": 1})
    response = await call(wrapped, "GET", "/boom", cookie=cookie, raise_app_exceptions=False)
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert recorder.log.trips == [["EVALSHA"]]  # the load only
    assert (await call(wrapped, "GET", "/read", cookie=cookie)).json()["data"] == {"n": 1}
    response = await call(wrapped, "GET", "/boom", raise_app_exceptions=False)  # no session yet
    assert response.status_code == 500
    assert set_cookies(response) == []


async def test_a_5xx_the_app_sends_deliberately_is_saved(
    config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    async def unavailable(request: Request) -> JSONResponse:
        request.session["tried"] = True
        return JSONResponse({"error": "upstream down"}, status_code=502)

    app = Starlette(
        routes=[Route("/u", unavailable)], middleware=[Middleware(SessionMiddleware, config=config)]
    )
    response = await call(app, "GET", "/u")
    assert response.status_code == 502
    assert response.json() == {"error": "upstream down"}
    cookie = cookie_value(response)  # created, and its cookie on the held response
    reader = make_app(recorder.log, config=config)
    assert (await call(reader, "GET", "/read", cookie=cookie)).json()["data"] == {"tried": True}


async def test_unstorable_data_found_at_save_is_a_500_and_nothing_is_written(
    app: Starlette, recorder: RecordingAsyncRedis
) -> None:
    cookie = await create(app, recorder.log, {"items": [1]})
    response = await call(app, "GET", "/unstorable", cookie=cookie, raise_app_exceptions=False)
    assert response.status_code == 500
    assert recorder.log.trips == [["EVALSHA"]]
    assert (await call(app, "GET", "/read", cookie=cookie)).json()["data"] == {"items": [1]}


# -- Redis down ------------------------------------------------------------------


async def test_redis_down_is_a_fast_503_only_where_a_session_is_needed(
    dead_redis_config: SessionConfig,
) -> None:
    config = dead_redis_config
    store = AsyncSessionStore(config)
    app = make_app(store=store, exclude_paths=["/healthz"])
    valid = valid_cookie(store.config)
    try:
        started = time.monotonic()
        response = await call(app, "GET", "/read", cookie=valid)
        assert time.monotonic() - started < BOUND_SECONDS
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert "session store" in response.text
        # Without a cookie (or with a forged one), nothing needs Redis.
        assert (await call(app, "GET", "/read")).status_code == 200
        assert (await call(app, "GET", "/read", cookie="forged")).status_code == 200
        assert (await call(app, "GET", "/healthz", cookie=valid)).text == "ok"
        # A save that fails replaces the app's response, which has not gone out yet.
        started = time.monotonic()
        response = await call(app, "POST", "/write", json={"n": 1})
        assert time.monotonic() - started < BOUND_SECONDS
        assert response.status_code == 503
        assert "session store" in response.text
        assert set_cookies(response) == []
        streamed = await call(app, "GET", "/stream")
        assert streamed.status_code == 503
        assert "chunk" not in streamed.text
    finally:
        await store.aclose()


async def test_a_503_does_not_call_the_app(dead_redis_config: SessionConfig) -> None:
    called: list[str] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope["path"])

    config = dead_redis_config
    app = SessionMiddleware(inner, config)
    try:
        response = await call(app, "GET", "/x", cookie=valid_cookie(app.store.config))
        assert response.status_code == 503
        assert called == []
    finally:
        await app.store.aclose()


# -- regenerate, destroy, user_id ---------------------------------------------------


async def test_login_regenerates_and_links_the_user_and_logout_destroys(
    app: Starlette, config: SessionConfig, recorder: RecordingAsyncRedis, raw: Any
) -> None:
    admin = AsyncSessionStore(config)
    cookie = await create(app, recorder.log, {"cart": ["apple"]})
    response = await call(app, "POST", "/login?user=alice", cookie=cookie)
    # load; the successor; its index entry and the commit
    assert recorder.log.trips == [["EVALSHA"], ["EVALSHA"], ["EVALSHA", "EVALSHA"]]
    logged_in = cookie_value(response)
    assert logged_in != cookie
    state = (await call(app, "GET", "/read", cookie=logged_in)).json()
    assert state["data"] == {"cart": ["apple"], "user": "alice"}
    assert state["user"] == "alice"
    assert [info.handle for info in await admin.sessions_of("alice")] == [state["handle"]]
    # The pre-login id died at once (session fixation).
    assert (await call(app, "GET", "/read", cookie=cookie)).json()["data"] == {}

    response = await call(app, "POST", "/logout", cookie=logged_in)
    assert cookie_value(response) == ""
    assert (await call(app, "GET", "/read", cookie=logged_in)).json()["data"] == {}
    assert await admin.sessions_of("alice") == []
    keys = KeySpace(config.key_prefix)
    assert raw.exists(keys.session(state["handle"]), keys.user("alice")) == 0


async def test_revoking_elsewhere_logs_the_request_out(
    app: Starlette, config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    admin = AsyncSessionStore(config)
    response = await call(app, "POST", "/login?user=bob")
    cookie = cookie_value(response)
    assert await admin.revoke_user("bob") == 1
    assert (await call(app, "GET", "/read", cookie=cookie)).json() == {
        "data": {},
        "user": None,
        "handle": None,
        "trips_when_the_app_ran": len(recorder.log.trips),
    }


async def test_binding_uses_the_peer_and_trusted_x_forwarded_for(
    config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    # httpx's ASGITransport connects from 127.0.0.1: our trusted proxy here.
    config = dataclasses.replace(config, bind_ip="exact", bind_user_agent=True, trusted_proxies=["127.0.0.1"])
    app = make_app(recorder.log, config=config)
    browser = {"x-forwarded-for": "203.0.113.5", "user-agent": "Mozilla/5.0 Firefox/140.0"}
    response = await call(app, "POST", "/write", headers=browser, json={"n": 1})
    cookie = cookie_value(response)
    updated = {**browser, "user-agent": "Mozilla/5.0 Firefox/141.0"}  # a browser update is the same browser
    assert (await call(app, "GET", "/read", cookie=cookie, headers=updated)).json()["data"] == {"n": 1}
    for other in (
        {**browser, "x-forwarded-for": "203.0.113.6"},
        {**browser, "user-agent": "Mozilla/5.0 Chrome/140.0"},
    ):
        assert (await call(app, "GET", "/read", cookie=cookie, headers=other)).json()["data"] == {}


# -- the same sessions as the store (and so as the Flask adapter) ---------------------


async def test_sessions_are_shared_with_the_sync_store(
    app: Starlette, backend: Backend, recorder: RecordingAsyncRedis
) -> None:
    """The Flask adapter stands on SessionStore: same cookie, same Redis data."""
    sync = SessionStore(
        SessionConfig(secret_key=SECRET, redis=backend.sync_client(), key_prefix=backend.prefix)
    )
    session = sync.load(None)
    session["user"] = "carol"
    session.user_id = "carol"
    result = sync.save(session)
    assert isinstance(result.cookie, SetCookie)
    state = (await call(app, "GET", "/read", cookie=result.cookie.value)).json()
    assert (state["data"], state["user"]) == ({"user": "carol"}, "carol")

    cookie = cookie_value(await call(app, "POST", "/write", json={"from": "asgi"}))
    assert dict(sync.load(cookie)) == {"from": "asgi"}


# -- exclude_paths -------------------------------------------------------------------


async def test_excluded_paths_get_no_session_and_cost_nothing(
    app: Starlette, recorder: RecordingAsyncRedis
) -> None:
    cookie = await create(app, recorder.log)
    for path in ("/static/app.css", "/static/", "/healthz"):
        response = await call(app, "GET", path, cookie=cookie)
        assert response.status_code == 200
        assert set_cookies(response) == []
        assert "vary" not in response.headers
    assert (await call(app, "GET", "/static/x.js", cookie=cookie)).json() == {"has_session": False}
    assert recorder.log.trips == []
    # Prefixes match whole path segments.
    assert (await call(app, "GET", "/staticfiles", cookie=cookie)).json() == {"has_session": True}
    assert recorder.log.trips == [["EVALSHA"]]


async def test_get_session_explains_a_missing_session() -> None:
    with pytest.raises(RuntimeError, match="exclude_paths"):
        get_session({"type": "http"})
    with pytest.raises(RuntimeError, match="SessionMiddleware"):
        get_session({"session": {}})  # Starlette's cookie sessions are not ours


# -- lifespan ------------------------------------------------------------------------


class SpyStore(AsyncSessionStore):
    def __init__(self, config: SessionConfig, events: list[str]) -> None:
        super().__init__(config)
        self.events = events

    async def aclose(self) -> None:
        self.events.append("store closed")
        await super().aclose()


async def test_lifespan_closes_the_client_after_the_apps_shutdown(
    server_redis_url: str, server_prefix: str
) -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("app started")
        yield
        events.append("app stopped")

    store = SpyStore(
        SessionConfig(secret_key=SECRET, redis_url=server_redis_url, key_prefix=server_prefix), events
    )
    app = Starlette(
        routes=ROUTES, middleware=[Middleware(SessionMiddleware, store=store)], lifespan=app_lifespan
    )
    app.state.log = Log()
    async with lifespan(app) as sent:
        cookie = cookie_value(await call(app, "POST", "/write", json={"n": 1}))
        assert (await call(app, "GET", "/read", cookie=cookie)).json()["data"] == {"n": 1}
        client = store.redis
        assert events == ["app started"]
    assert events == ["app started", "app stopped", "store closed"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    # The closed client is dropped; a later lifespan (a test client re-entered) builds another.
    assert store.redis is not client
    await store.aclose()


async def test_an_app_without_lifespan_support_still_works(
    config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError(f"unsupported scope {scope['type']}")
        scope["session"]["n"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = SessionMiddleware(inner, config)

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing to send")

    # The server sees the app's own error, and goes on without lifespan events (ASGI spec).
    with pytest.raises(RuntimeError, match="unsupported scope lifespan"):
        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    response = await call(app, "GET", "/")
    assert (response.text, bool(cookie_value(response))) == ("ok", True)


# -- websockets ----------------------------------------------------------------------


async def websocket(app: ASGIApp, cookie: str | None, extensions: dict[str, object]) -> list[Message]:
    """Open and close a websocket on a raw app; returns what the app sent."""
    incoming: list[Message] = [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"cookie", f"session={cookie}".encode())] if cookie is not None else []
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "subprotocols": [],
        "extensions": extensions,
    }
    await app(scope, receive, send)
    return sent


async def test_websockets_get_the_session_loaded_and_changes_are_not_saved(
    app: Starlette, config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    seen: list[dict[str, Any]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        seen.append(dict(scope["session"]))
        scope["session"]["changed"] = True
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    cookie = await create(app, recorder.log, {"user": "dora"})
    sent = await websocket(SessionMiddleware(inner, config), cookie, {})
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.close"]
    assert seen == [{"user": "dora"}]
    assert recorder.log.trips == [["EVALSHA"]]
    assert (await call(app, "GET", "/read", cookie=cookie)).json()["data"] == {"user": "dora"}
    recorder.log.clear()
    await websocket(SessionMiddleware(inner, config), None, {})
    assert seen[-1] == {}
    assert recorder.log.trips == []


async def test_starlette_websockets_see_websocket_session(
    app: Starlette, recorder: RecordingAsyncRedis
) -> None:
    cookie = await create(app, recorder.log, {"user": "erin"})
    sent = await websocket(app, cookie, {"websocket.http.response": {}})
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert sent[1]["text"] == '{"user":"erin"}'
    assert recorder.log.trips == [["EVALSHA"]]
    assert (await call(app, "GET", "/read", cookie=cookie)).json()["data"] == {"user": "erin"}


async def test_websocket_denied_when_redis_is_down(dead_redis_config: SessionConfig) -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the app must not run")

    config = dead_redis_config
    app = SessionMiddleware(inner, config)
    valid = valid_cookie(app.store.config)
    try:
        denied = await websocket(app, valid, {"websocket.http.response": {}})
        assert [m["type"] for m in denied] == [
            "websocket.http.response.start",
            "websocket.http.response.body",
        ]
        assert denied[0]["status"] == 503
        closed = await websocket(app, valid, {})
        assert closed == [{"type": "websocket.close", "code": 1013}]
    finally:
        await app.store.aclose()


# -- FastAPI -------------------------------------------------------------------------


def current_session(request: Request) -> Session:
    return get_session(request)


SessionDep = Annotated[Session, Depends(current_session)]


def make_fastapi(config: SessionConfig) -> FastAPI:
    api = FastAPI()

    @api.post("/login")
    async def login(user: str, session: SessionDep) -> dict[str, str]:
        session.regenerate()
        session.user_id = user
        session["user"] = user
        return {"user": user}

    @api.post("/counter")
    async def counter(session: SessionDep) -> dict[str, object]:
        session["counter"] = session.get("counter", 0) + 1
        return {"counter": session["counter"], "user": session.user_id}

    @api.post("/logout")
    async def logout(session: SessionDep) -> dict[str, bool]:
        session.destroy()
        return {"ok": True}

    api.add_middleware(SessionMiddleware, config=config)
    return api


async def test_fastapi_sees_the_session_through_a_dependency(
    config: SessionConfig, recorder: RecordingAsyncRedis
) -> None:
    api = make_fastapi(config)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as browser:
        assert (await browser.post("/login", params={"user": "fred"})).json() == {"user": "fred"}
        recorder.log.clear()
        assert (await browser.post("/counter")).json() == {"counter": 1, "user": "fred"}
        assert recorder.log.trips == [["EVALSHA"], ["EVALSHA"]]
        assert (await browser.post("/counter")).json() == {"counter": 2, "user": "fred"}
        response = await browser.post("/logout")
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert (await browser.post("/counter")).json() == {"counter": 1, "user": None}


# -- configuration -------------------------------------------------------------------


async def test_fields_as_keywords_configure_the_middleware(
    backend: Backend, recorder: RecordingAsyncRedis
) -> None:
    app = make_app(
        recorder.log,
        secret_key=[SECRET, "old-key"],
        redis=recorder,
        key_prefix=backend.prefix,
        cookie_name="__Host-sid",
        cookie_secure=True,
        cookie_samesite="strict",
    )
    response = await call(app, "POST", "/write", json={"n": 1})
    header = response.headers["set-cookie"]
    assert header.startswith("__Host-sid=")
    assert header.endswith("; Path=/; Secure; HttpOnly; SameSite=Strict")


def test_the_middleware_takes_a_config_a_store_or_fields() -> None:
    config = SessionConfig(secret_key=SECRET)

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError

    assert SessionMiddleware(inner, config).config is config
    assert SessionMiddleware(inner, secret_key=SECRET).config.secret_keys == (SECRET,)
    store = AsyncSessionStore(config)
    assert SessionMiddleware(inner, store=store).store is store
    with pytest.raises(TypeError, match="config and SessionConfig fields"):
        SessionMiddleware(inner, config, secret_key=SECRET)
    with pytest.raises(TypeError, match="config and store"):
        SessionMiddleware(inner, config, store=store)
    with pytest.raises(TypeError, match="secret_key"):
        SessionMiddleware(inner)
    with pytest.raises(TypeError, match="AsyncSessionStore"):
        SessionMiddleware(inner, store=SessionStore(config))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SessionConfig"):
        SessionMiddleware(inner, "redis://localhost")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"secret_key": SECRET, "idle_timeout": 0}, ValueError, "SessionConfig.idle_timeout"),
        ({"secret_key": SECRET, "redis_url": "http://x"}, ValueError, "SessionConfig.redis_url"),
        ({"secret_key": SECRET, "bind_ip": "yes"}, ValueError, "SessionConfig.bind_ip"),
        ({"secret_key": SECRET, "cookie_samesite": "None"}, ValueError, "cookie_secure"),
        ({"secret_key": ""}, ValueError, "secret_key"),
        ({"secret_key": SECRET, "idle_timout": 60}, TypeError, "idle_timout"),
    ],
)
def test_bad_fields_raise_at_construction_naming_the_field(
    fields: dict[str, Any], error: type[Exception], match: str
) -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError

    with pytest.raises(error, match=match):
        SessionMiddleware(inner, **fields)


@pytest.mark.parametrize(
    ("paths", "error", "match"),
    [
        ("/static", TypeError, "not a single string"),
        (["static"], ValueError, "start with '/'"),
        ([b"/static"], TypeError, "must be str"),
    ],
)
def test_bad_exclude_paths_raise_at_construction(
    paths: Sequence[Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        SessionMiddleware(make_app(), secret_key=SECRET, exclude_paths=paths)


def test_the_keyword_fields_are_exactly_the_config_fields() -> None:
    from sharedsession.config import SessionFields

    fields = {f.name: f.type for f in dataclasses.fields(SessionConfig) if f.init}
    # Same names, and the same annotations (both modules use postponed annotations).
    typed = {name: getattr(t, "__forward_arg__", t) for name, t in SessionFields.__annotations__.items()}
    assert typed == fields
