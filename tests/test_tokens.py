"""Session tokens in a header (``SessionConfig(token_header=...)``), for API and mobile
clients: the header form, the setting, and one body of tests run through the Flask
adapter, the ASGI middleware and the Django engine (sync views under WSGI, async views
under ASGI), on fakeredis, a real Redis (REDIS_URL) and a Redis Cluster, counting round
trips. Django's own part (CSRF, its auth, its settings) is in
tests/django_tests/test_header_tokens.py."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from unittest import mock

import flask
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import sharedsession.django
from sharedsession import AsyncSessionStore, ExpireCookie, SessionConfig, SessionStore, SetCookie
from sharedsession._core.tokens import RESPONSE_HEADER, TokenHeader
from sharedsession.asgi import SessionMiddleware, get_session
from sharedsession.flask import SharedSession, SharedSessionInterface
from tests.support import (
    SECRET,
    Backend,
    FakeClock,
    Log,
    RecordingAsyncRedis,
    RecordingRedis,
    load_scripts,
    valid_cookie,
)
from tests.support.django_setup import configure

configure()  # before Django's modules are imported

from django.test import AsyncClient, Client, override_settings  # noqa: E402

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedASGIResponse, _MonkeyPatchedWSGIResponse

# -- the header form -------------------------------------------------------------------------


def header(name: str) -> TokenHeader:
    found = TokenHeader.of(SessionConfig(secret_key=SECRET, token_header=name))
    assert found is not None
    return found


def test_no_token_header_means_cookies() -> None:
    config = SessionConfig(secret_key=SECRET)
    assert config.token_header is None
    assert TokenHeader.of(config) is None


def test_authorization_carries_a_bearer_token_and_it_comes_back_in_session_token() -> None:
    bearer = header("Authorization")
    assert (bearer.name, bearer.response, bearer.bearer) == ("Authorization", RESPONSE_HEADER, True)
    assert RESPONSE_HEADER == "Session-Token"
    assert bearer.environ_key == "HTTP_AUTHORIZATION"
    assert bearer.asgi_name == b"authorization"


@pytest.mark.parametrize(
    ("value", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc", "abc"),  # the scheme is case-insensitive (RFC 9110)
        ("BEARER   abc  ", "abc"),
        (" Bearer abc", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic dXNlcjpwYXNz", None),  # the app's own scheme: not ours
        ("Session abc", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_reading_a_bearer_token(value: str | None, token: str | None) -> None:
    assert header("authorization").read(value) == token


def test_another_header_carries_the_bare_token_both_ways() -> None:
    custom = header("X-Session-Token")
    assert (custom.response, custom.bearer) == ("X-Session-Token", False)
    assert custom.environ_key == "HTTP_X_SESSION_TOKEN"
    assert custom.asgi_name == b"x-session-token"
    assert custom.read(" abc.def ") == "abc.def"
    assert custom.read("Bearer abc") == "Bearer abc"  # refused later, by its signature
    assert custom.read("") is None


def test_the_response_value_is_the_token_or_empty() -> None:
    assert header("Authorization").response_value(SetCookie("tok", 60)) == "tok"
    assert header("Authorization").response_value(ExpireCookie()) == ""


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("", ValueError, "not a valid header name"),
        ("X Token", ValueError, "not a valid header name"),
        ("X-Token:", ValueError, "not a valid header name"),
        ("Cookie", ValueError, "never both"),
        ("set-cookie", ValueError, "never both"),
        (b"Authorization", TypeError, "must be str"),
    ],
)
def test_bad_token_headers_raise_naming_the_field(name: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as excinfo:
        SessionConfig(secret_key=SECRET, token_header=name)
    assert type(excinfo.value) is error
    assert "SessionConfig.token_header" in str(excinfo.value)


# -- both adapters, one contract ------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: Any

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def one(self, name: str) -> str | None:
        values = self.all(name)
        assert len(values) <= 1, values
        return values[0] if values else None

    def vary(self) -> set[str]:
        return {token.strip().lower() for value in self.all("Vary") for token in value.split(",")}


class Logs:
    """The round trips of several clients (a Django app's sync and asyncio ones), as one Log."""

    def __init__(self, *logs: Log) -> None:
        self._logs = logs

    @property
    def trips(self) -> list[list[str]]:
        return [trip for log in self._logs for trip in log.trips]

    def clear(self) -> None:
        for log in self._logs:
            log.clear()


class Api:
    """An app (Flask, Starlette, Django) with header tokens, driven synchronously; counts round trips.

    ``django``: sync views through Django's test Client (WSGI, the middleware's sync
    path); ``django-asgi``: async views through its AsyncClient (ASGI, the asyncio
    store). Django reads ``SHAREDSESSION``; its stores run on the test's clock.
    """

    def __init__(self, framework: str, backend: Backend, clock: FakeClock, **settings: Any) -> None:
        self.framework = framework
        self.backend = backend
        load_scripts(backend.sync_client())
        config_settings: dict[str, Any] = {
            "secret_key": SECRET,
            "key_prefix": backend.prefix,
            "token_header": "Authorization",
            **settings,
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._undo = contextlib.ExitStack()  # Django's settings and clock, put back at close
        self.log: Log | Logs
        if framework.startswith("django"):
            self._start_django(clock, config_settings)
        elif framework == "flask":
            recording = RecordingRedis(backend.sync_client())
            self.log = recording.log
            self.config = SessionConfig(redis=recording, **config_settings)
            self.flask = flask_app(self.config)
            interface = self.flask.session_interface
            assert isinstance(interface, SharedSessionInterface)
            interface.store = SessionStore(self.config, clock=clock)  # the same store, on our clock
        else:
            self._loop = asyncio.new_event_loop()
            self._async = RecordingAsyncRedis(backend.async_client())
            self.log = self._async.log
            self.config = SessionConfig(redis=self._async, **config_settings)
            self.asgi = SessionMiddleware(starlette_app(), store=AsyncSessionStore(self.config, clock=clock))

    def _start_django(self, clock: FakeClock, config_settings: dict[str, Any]) -> None:
        recording = RecordingRedis(self.backend.sync_client())
        logs = [recording.log]
        shared: dict[str, Any] = {**config_settings, "redis": recording}
        if self.framework == "django-asgi":
            self._async = RecordingAsyncRedis(self.backend.async_client())
            logs.append(self._async.log)
            shared["async_redis"] = self._async
            self._loop = asyncio.new_event_loop()
        # In the django variant, a view using the asyncio store would fail (no async_redis).
        self.log = Logs(*logs)
        self.config = SessionConfig(redis=recording, **config_settings)
        module = sharedsession.django
        for name, store in (("SyncStore", SessionStore), ("AsyncSessionStore", AsyncSessionStore)):
            self._undo.enter_context(mock.patch.object(module, name, functools.partial(store, clock=clock)))
        self._undo.enter_context(override_settings(SHAREDSESSION=shared))

    def request(
        self, method: str, path: str, *, token: str | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if self.framework == "django":
            return _django_reply(Client().generic(method, "/api" + path, headers=sent))
        if self.framework == "django-asgi":
            assert self._loop is not None
            asgi = AsyncClient().generic(method, "/async/api" + path, headers=sent)
            return _django_reply(self._loop.run_until_complete(asgi))
        if self._loop is None:
            client = self.flask.test_client()
            response = client.open(path, method=method, headers=sent, json={} if method == "POST" else None)
            return Reply(response.status_code, list(response.headers.items()), response.get_json())
        return self._loop.run_until_complete(self._asgi_request(method, path, sent))

    async def _asgi_request(self, method: str, path: str, headers: dict[str, str]) -> Reply:
        transport = httpx.ASGITransport(app=self.asgi)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.request(method, path, headers=headers)
        return Reply(response.status_code, list(response.headers.multi_items()), response.json())

    def close(self) -> None:
        self._undo.close()
        if self._loop is not None:
            loop = self._loop
            loop.run_until_complete(self._async.inner.aclose())
            loop.run_until_complete(_end_tasks())
            loop.close()


async def _end_tasks() -> None:
    """Cancel the loop's other tasks and wait for them, as asyncio.run does at its end.

    The Django engine's asyncio stores wait for that to close themselves.
    """
    pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


def _django_reply(response: _MonkeyPatchedWSGIResponse | _MonkeyPatchedASGIResponse) -> Reply:
    headers = list(response.items())  # Django keeps cookies apart: add them as Set-Cookie headers
    headers += [("Set-Cookie", morsel.OutputString()) for morsel in response.cookies.values()]
    return Reply(response.status_code, headers, response.json())


def flask_app(config: SessionConfig) -> flask.Flask:
    from sharedsession.flask import session

    app = flask.Flask(__name__)
    SharedSession(app, config)

    @app.get("/read")
    def read() -> Any:
        return flask.jsonify(data=dict(session), user=session.user_id)

    @app.post("/write/<key>")
    def write(key: str) -> Any:
        session[key] = session.get(key, 0) + 1
        return flask.jsonify(ok=True)

    @app.post("/login/<user>")
    def login(user: str) -> Any:
        session.regenerate()
        session.user_id = user
        return flask.jsonify(ok=True)

    @app.post("/logout")
    def logout() -> Any:
        session.destroy()
        return flask.jsonify(ok=True)

    @app.get("/cached")
    def cached() -> Any:
        session["seen"] = True
        response = flask.jsonify(ok=True)
        response.headers["Cache-Control"] = "private, max-age=60"
        return response

    return app


def starlette_app() -> Starlette:
    async def read(request: Request) -> JSONResponse:
        session = get_session(request)
        return JSONResponse({"data": dict(session), "user": session.user_id})

    async def write(request: Request) -> JSONResponse:
        session = get_session(request)
        key = request.path_params["key"]
        session[key] = session.get(key, 0) + 1
        return JSONResponse({"ok": True})

    async def login(request: Request) -> JSONResponse:
        session = get_session(request)
        session.regenerate()
        session.user_id = request.path_params["user"]
        return JSONResponse({"ok": True})

    async def logout(request: Request) -> JSONResponse:
        get_session(request).destroy()
        return JSONResponse({"ok": True})

    async def cached(request: Request) -> JSONResponse:
        get_session(request)["seen"] = True
        return JSONResponse({"ok": True}, headers={"Cache-Control": "private, max-age=60"})

    return Starlette(
        routes=[
            Route("/read", read),
            Route("/write/{key}", write, methods=["POST"]),
            Route("/login/{user}", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/cached", cached),
        ]
    )


MakeApi = Callable[..., Api]


@pytest.fixture(params=["flask", "asgi", "django", "django-asgi"])
def make_api(request: pytest.FixtureRequest, backend: Backend, clock: FakeClock) -> Iterator[MakeApi]:
    made: list[Api] = []

    def make(**settings: Any) -> Api:
        api = Api(str(request.param), backend, clock, **settings)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api()


def new_token(api: Api, key: str = "n") -> str:
    reply = api.request("POST", f"/write/{key}")
    token = reply.one(RESPONSE_HEADER)
    assert token
    api.log.clear()
    return token


def test_no_token_costs_nothing(api: Api) -> None:
    reply = api.request("GET", "/read")
    assert reply.body == {"data": {}, "user": None}
    assert api.log.trips == []
    assert reply.all(RESPONSE_HEADER) == []
    assert reply.all("Set-Cookie") == []


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer forged",
        "Bearer " + "a" * 43 + ".AAAAAA.bad-signature",
        "Bearer " + "x" * 4000,
        "Basic dXNlcg==",
    ],
)
def test_a_forged_token_or_another_scheme_costs_nothing(api: Api, authorization: str) -> None:
    reply = api.request("GET", "/read", headers={"Authorization": authorization})
    assert reply.body["data"] == {}
    assert api.log.trips == []
    assert reply.all(RESPONSE_HEADER) == []


def test_a_new_session_sends_its_token_in_a_header_never_a_cookie(api: Api) -> None:
    reply = api.request("POST", "/write/n")
    assert reply.status == 200
    assert api.log.trips == [["EVALSHA"]]  # CREATE, as for a cookie
    token = reply.one(RESPONSE_HEADER)
    assert token
    assert reply.all("Set-Cookie") == []
    assert "authorization" in reply.vary()
    assert "cookie" not in reply.vary()
    assert reply.one("Cache-Control") == "no-store"  # no cache may keep a token
    # The token is a cookie value: the same signing, the same store (a cookie store reads it).
    plain = api.backend.sync_client()
    cookies = SessionConfig(secret_key=SECRET, redis=plain, key_prefix=api.config.key_prefix)
    assert SessionStore(cookies).load(token) == {"n": 1}


def test_a_token_reads_its_session_in_one_round_trip(api: Api) -> None:
    token = new_token(api)
    reply = api.request("GET", "/read", token=token)
    assert reply.body["data"] == {"n": 1}
    assert api.log.trips == [["EVALSHA"]]
    assert reply.all(RESPONSE_HEADER) == []  # not created, regenerated or renewed: nothing to send
    assert reply.all("Set-Cookie") == []
    assert "authorization" in reply.vary()
    api.log.clear()
    assert api.request("POST", "/write/n", token=token).all(RESPONSE_HEADER) == []
    assert api.log.trips == [["EVALSHA"], ["EVALSHA"]]  # LOAD, UPDATE
    assert api.request("GET", "/read", token=token).body["data"] == {"n": 2}


def test_a_cookie_is_not_read_by_a_token_app(api: Api) -> None:
    token = new_token(api)
    reply = api.request("GET", "/read", headers={"Cookie": f"session={token}"})
    assert reply.body["data"] == {}
    assert api.log.trips == []
    # Valid token and cookie together: the token alone counts, and only it comes back.
    other = {"Cookie": f"session={valid_cookie(api.config)}"}
    reply = api.request("POST", "/write/m", token=token, headers=other)
    assert reply.all("Set-Cookie") == []
    assert api.request("GET", "/read", token=token).body["data"] == {"n": 1, "m": 1}


def test_login_sends_a_new_token_and_kills_the_old(api: Api) -> None:
    token = new_token(api)
    reply = api.request("POST", "/login/alice", token=token)
    fresh = reply.one(RESPONSE_HEADER)
    assert fresh
    assert fresh != token
    assert reply.all("Set-Cookie") == []
    assert api.request("GET", "/read", token=fresh).body == {"data": {"n": 1}, "user": "alice"}
    assert api.request("GET", "/read", token=token).body == {"data": {}, "user": None}


def test_logout_tells_the_client_to_drop_its_token(api: Api) -> None:
    token = new_token(api)
    reply = api.request("POST", "/logout", token=token)
    assert reply.all(RESPONSE_HEADER) == [""]  # empty: drop it
    assert reply.all("Set-Cookie") == []
    assert reply.one("Cache-Control") is None
    assert api.request("GET", "/read", token=token).body["data"] == {}


def test_the_token_is_renewed_once_older_than_the_idle_timeout(make_api: MakeApi, clock: FakeClock) -> None:
    api = make_api(idle_timeout=100)
    token = new_token(api)
    clock.advance(50)
    assert api.request("GET", "/read", token=token).all(RESPONSE_HEADER) == []
    clock.advance(60)
    reply = api.request("GET", "/read", token=token)
    renewed = reply.one(RESPONSE_HEADER)
    assert renewed
    assert renewed != token
    assert reply.all("Set-Cookie") == []
    assert api.request("GET", "/read", token=renewed).body["data"] == {"n": 1}
    clock.advance(150)  # the first token is now older than any session could be: refused unasked
    api.log.clear()
    assert api.request("GET", "/read", token=token).body["data"] == {}
    assert api.log.trips == []


def test_another_header_carries_the_token_both_ways(make_api: MakeApi) -> None:
    api = make_api(token_header="X-Session-Token")
    reply = api.request("POST", "/write/n")
    token = reply.one("X-Session-Token")
    assert token
    assert reply.all(RESPONSE_HEADER) == []
    assert "x-session-token" in reply.vary()
    assert api.request("GET", "/read", headers={"X-Session-Token": token}).body["data"] == {"n": 1}
    api.log.clear()
    assert api.request("GET", "/read", token=token).body["data"] == {}  # Authorization is not read
    assert api.log.trips == []


def test_the_apps_own_cache_control_is_kept(api: Api) -> None:
    reply = api.request("GET", "/cached")
    assert reply.one(RESPONSE_HEADER)
    assert reply.one("Cache-Control") == "private, max-age=60"


def test_encrypted_token_sessions(make_api: MakeApi) -> None:
    """The two parts together: the token names the session, whose values are sealed."""
    api = make_api(encryption_keys=[base64.b64encode(bytes(32)).decode()])
    token = new_token(api)
    assert api.request("GET", "/read", token=token).body["data"] == {"n": 1}


async def test_asgi_refuses_a_token_header_given_twice(backend: Backend) -> None:
    load_scripts(backend.sync_client())
    recording = RecordingAsyncRedis(backend.async_client())
    config = SessionConfig(
        secret_key=SECRET, key_prefix=backend.prefix, redis=recording, token_header="Authorization"
    )
    app = SessionMiddleware(starlette_app(), config)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            created = await client.post("/write/n")
            token = created.headers[RESPONSE_HEADER]
            recording.log.clear()
            twice = [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer other")]
            reply = await client.get("/read", headers=twice)
            assert reply.json()["data"] == {}
            assert recording.log.trips == []
            once = await client.get("/read", headers=[("Authorization", f"Bearer {token}")])
            assert once.json()["data"] == {"n": 1}
    finally:
        await recording.inner.aclose()


def test_flask_reads_both_settings_from_app_config() -> None:
    from sharedsession.flask import config_from_app

    app = flask.Flask(__name__)
    app.config.update(
        SECRET_KEY=SECRET,
        SHAREDSESSION_TOKEN_HEADER="Authorization",
        SHAREDSESSION_ENCRYPTION_KEYS=[base64.b64encode(bytes(range(32))).decode()],
    )
    config = config_from_app(app)
    assert config.token_header == "Authorization"
    assert config.sealing_keys == (bytes(range(32)),)
