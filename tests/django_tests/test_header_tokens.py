"""Header tokens in the Django engine (``SHAREDSESSION = {"token_header": ...}``), what
tests/test_tokens.py's shared body does not cover: the setting, Django's auth, its CSRF
middleware, set_expiry, a header given twice, and tokens shared with the Flask and ASGI
adapters. On fakeredis, the real Redis (REDIS_URL) and a Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import flask
import httpx
import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client, override_settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sharedsession import SessionConfig
from sharedsession._core.tokens import RESPONSE_HEADER
from sharedsession.asgi import SessionMiddleware, get_session
from sharedsession.django import config_from_settings
from sharedsession.flask import SharedSession
from sharedsession.flask import session as flask_session
from tests.django_tests.test_engine import JSON, Site
from tests.support import SECRET, Backend, valid_cookie

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedASGIResponse, _MonkeyPatchedWSGIResponse

    Response = _MonkeyPatchedWSGIResponse | _MonkeyPatchedASGIResponse

CSRF_MIDDLEWARE = "django.middleware.csrf.CsrfViewMiddleware"


@pytest.fixture
def site(backend: Backend) -> Iterator[Site]:
    s = Site(backend, token_header="Authorization")
    yield s
    s.close()


@pytest.fixture
def users() -> Iterator[list[str]]:
    """Usernames a test creates; deleted afterwards (the database is shared by the run)."""
    from django.contrib.auth.models import User

    names: list[str] = []
    yield names
    User.objects.filter(username__in=names).delete()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_of(response: Response) -> str | None:
    """The Session-Token the response carries ("" means: drop yours), None if none."""
    return response.headers.get(RESPONSE_HEADER)


def new_token(site: Site, **data: Any) -> str:
    """A stored session holding ``data``, through the token header; logs cleared."""
    token: str | None = None
    for key, value in (data or {"n": 1}).items():
        headers = bearer(token) if token else {}
        response = site.client.post(f"/set/{key}", value, content_type=JSON, headers=headers)
        assert response.status_code == 200
        token = token_of(response) or token
    assert token
    site.clear_logs()
    return token


# -- the setting ---------------------------------------------------------------------------------------


def test_the_setting_is_read_from_sharedsession() -> None:
    with override_settings(SHAREDSESSION={"token_header": "X-Session-Token", "redis_url": "redis://h/1"}):
        tokens = config_from_settings().tokens
        assert tokens is not None
        assert (tokens.name, tokens.response, tokens.bearer) == ("X-Session-Token", "X-Session-Token", False)
    with override_settings(SHAREDSESSION={"redis_url": "redis://h/1"}):
        assert config_from_settings().tokens is None  # the cookie, by default


@pytest.mark.parametrize("name", ["Cookie", "X Token", ""])
def test_a_bad_token_header_is_improperly_configured_naming_the_setting(name: str) -> None:
    with (
        override_settings(SHAREDSESSION={"token_header": name, "redis_url": "redis://h/1"}),
        pytest.raises(ImproperlyConfigured, match=r"settings.SHAREDSESSION\['token_header'\]"),
    ):
        config_from_settings()


# -- one way per request ------------------------------------------------------------------------------


def test_the_session_key_is_the_token_and_no_cookie_is_ever_set(site: Site) -> None:
    response = site.client.post("/set/n", 1, content_type=JSON)
    token = token_of(response)
    assert token
    assert response.cookies == {}
    assert site.client.cookies == {}  # nothing for the test client's jar either
    about = site.client.get("/about", headers=bearer(token)).json()
    assert about["key"] == token
    assert site.stored(token) == {"n": 1}


def test_a_valid_cookie_is_not_read_by_a_token_site(site: Site) -> None:
    token = new_token(site, n=1)
    site.client.cookies["session"] = token
    assert site.client.get("/read").json() == {}
    assert site.trips == []
    site.client.cookies["session"] = valid_cookie(site.config)
    assert site.client.get("/read", headers=bearer(token)).json() == {"n": 1}  # the token alone


def test_a_header_given_twice_is_not_believed_under_wsgi(site: Site) -> None:
    token = new_token(site)
    # WSGI servers join a header given twice with ",": no token this engine signed.
    joined = {"Authorization": f"Bearer {token},Bearer {token}"}
    assert site.client.get("/read", headers=joined).json() == {}
    assert site.trips == []


async def test_a_token_header_given_twice_is_not_believed_under_asgi(site: Site) -> None:
    response = await site.aclient.post("/async/set/n", 1, content_type=JSON)
    token = token_of(response)
    assert token
    site.clear_logs()
    # A second Authorization header (a raw ASGI name: the test client adds it as a header of its own).
    reply = await site.aclient.get("/async/read", headers=bearer(token), authorization="Bearer other")
    assert reply.json() == {}
    assert site.trips == site.async_trips == []
    assert (await site.aclient.get("/async/read", headers=bearer(token))).json() == {"n": 1}


# -- Django's auth ---------------------------------------------------------------------------------------


def test_auth_login_sends_a_new_token_and_logout_drops_it(site: Site, users: list[str]) -> None:
    users.append("tom")
    before = new_token(site, cart=["apple"])
    response = site.client.post("/auth/login/tom", headers=bearer(before))
    token = token_of(response)
    assert token
    assert token != before  # cycle_key(): a new key, the old one dead
    assert response.cookies == {}
    assert site.stored(before) == {}
    assert site.client.get("/auth/me", headers=bearer(token)).json() == {"username": "tom"}
    assert site.client.get("/auth/me", headers=bearer(before)).json() == {"username": None}
    assert site.store.sessions_of(str(response.json()["pk"]))
    response = site.client.post("/logout", headers=bearer(token))  # flush()
    assert token_of(response) == ""  # drop it
    assert response.cookies == {}
    assert "Cache-Control" not in response
    assert site.client.get("/auth/me", headers=bearer(token)).json() == {"username": None}


def test_auth_logout_with_a_message_sends_the_token_of_the_new_session(site: Site, users: list[str]) -> None:
    users.append("uma")
    token = token_of(site.client.post("/auth/login/uma"))
    assert token
    response = site.client.post("/auth/logout", headers=bearer(token))
    fresh = token_of(response)
    assert fresh  # the message lives in a new session, as with cookies
    assert fresh != token
    assert site.stored(token) == {}
    assert site.client.get("/auth/me", headers=bearer(fresh)).json() == {"username": None}


async def test_async_auth_login_and_logout(site: Site, users: list[str]) -> None:
    users.append("val")
    response = await site.aclient.post("/async/auth/login/val")
    token = token_of(response)
    assert token
    assert response.cookies == {}
    assert response["Cache-Control"] == "no-store"
    assert "Authorization" in response["Vary"]
    assert site.trips == []  # the asyncio store only
    assert (await site.aclient.get("/async/read", headers=bearer(token))).json()["_auth_user_id"]
    response = await site.aclient.post("/async/auth/logout", headers=bearer(token))
    assert token_of(response) == ""
    assert (await site.aclient.get("/async/read", headers=bearer(token))).json() == {}


# -- set_expiry: nothing for a token to carry -----------------------------------------------------------


def test_set_expiry_sends_no_token_again_and_a_past_deadline_drops_it(site: Site) -> None:
    token = new_token(site)
    response = site.client.post("/expiry/60", headers=bearer(token))
    assert token_of(response) is None  # a cookie would be re-sent with Max-Age=60; a token has no age
    response = site.client.post("/count", headers=bearer(token))
    assert token_of(response) is None
    response = site.client.post("/expiry/past", headers=bearer(token))
    assert token_of(response) is None
    response = site.client.get("/read", headers=bearer(token))  # the deadline has passed: ended
    assert response.json() == {}
    assert token_of(response) == ""
    assert site.stored(token) == {}


# -- CSRF: token sessions are exempt, cookie sessions are not --------------------------------------------


def csrf_middleware() -> list[str]:
    """The test settings' MIDDLEWARE with Django's CSRF middleware, where startproject puts it."""
    middleware = list(settings.MIDDLEWARE)
    middleware.insert(middleware.index("sharedsession.django.SessionMiddleware") + 1, CSRF_MIDDLEWARE)
    return middleware


@pytest.fixture
def csrf() -> Iterator[None]:
    with override_settings(MIDDLEWARE=csrf_middleware()):
        yield


@pytest.mark.usefixtures("csrf")
def test_a_request_carrying_a_token_is_exempt_from_csrf_checks(site: Site) -> None:
    client = Client(enforce_csrf_checks=True)  # as a real client: Django's test client skips CSRF
    refused = client.post("/set/n", 1, content_type=JSON)
    assert refused.status_code == 403  # no token (a first login, say): checked as before
    token = new_token(site, n=1)
    response = client.post("/set/n", 2, content_type=JSON, headers=bearer(token))
    assert response.status_code == 200
    assert site.stored(token) == {"n": 2}
    # A forged token is exempt too (no browser sends the header on its own), and reads nothing.
    forged = client.post("/set/n", 3, content_type=JSON, headers=bearer("x" * 40 + ".forged.token"))
    assert forged.status_code == 200
    assert token_of(forged) not in (None, "", token)  # a new session of its own
    assert site.stored(token) == {"n": 2}


@pytest.mark.usefixtures("csrf")
@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
def test_another_scheme_is_not_exempt(site: Site, authorization: str) -> None:
    # Basic credentials are the one kind a browser does send by itself.
    client = Client(enforce_csrf_checks=True)
    response = client.post("/set/n", 1, content_type=JSON, headers={"Authorization": authorization})
    assert response.status_code == 403


@pytest.mark.usefixtures("csrf")
async def test_an_async_request_carrying_a_token_is_exempt_from_csrf_checks(site: Site) -> None:
    client = AsyncClient(enforce_csrf_checks=True)
    assert (await client.post("/async/set/n", 1, content_type=JSON)).status_code == 403
    token = token_of(await site.aclient.post("/async/set/n", 1, content_type=JSON))
    assert token
    response = await client.post("/async/set/n", 2, content_type=JSON, headers=bearer(token))
    assert response.status_code == 200
    assert (await client.get("/async/read", headers=bearer(token))).json() == {"n": 2}


@pytest.mark.usefixtures("csrf")
def test_a_custom_token_header_is_exempt_too(backend: Backend) -> None:
    site = Site(backend, token_header="X-Session-Token")
    try:
        token = site.client.post("/set/n", 1, content_type=JSON).headers["X-Session-Token"]
        client = Client(enforce_csrf_checks=True)
        headers = {"X-Session-Token": token}
        assert client.post("/set/n", 2, content_type=JSON, headers=headers).status_code == 200
        assert site.stored(token) == {"n": 2}
        assert client.post("/set/n", 3, content_type=JSON, headers=bearer(token)).status_code == 403
    finally:
        site.close()


@pytest.mark.usefixtures("csrf")
def test_cookie_sessions_keep_djangos_csrf_protection(backend: Backend) -> None:
    site = Site(backend)  # no token_header: the cookie carries the session
    try:
        cookie = site.create(n=1)
        client = Client(enforce_csrf_checks=True)
        client.cookies["session"] = cookie
        assert client.post("/set/n", 2, content_type=JSON).status_code == 403
        # A bearer token means nothing to a cookie site: still checked.
        assert client.post("/set/n", 2, content_type=JSON, headers=bearer(cookie)).status_code == 403
        assert site.stored(cookie) == {"n": 1}
        # With the CSRF cookie and header, as a page of the site sends them, it passes.
        secret = "a" * 32
        client.cookies["csrftoken"] = secret
        response = client.post("/set/n", 2, content_type=JSON, headers={"X-CSRFToken": secret})
        assert response.status_code == 200
        assert site.stored(cookie) == {"n": 2}
    finally:
        site.close()


# -- one token, three frameworks -----------------------------------------------------------------------------


def token_config(backend: Backend, client: object) -> SessionConfig:
    return SessionConfig(
        secret_key=SECRET, redis=client, key_prefix=backend.prefix, token_header="Authorization"
    )


def flask_api(backend: Backend) -> flask.Flask:
    app = flask.Flask("api")
    SharedSession(app, token_config(backend, backend.sync_client()))

    @app.get("/read")
    def read() -> dict[str, Any]:
        return {"data": dict(flask_session), "user": flask_session.user_id}

    @app.post("/write/<key>")
    def write(key: str) -> dict[str, Any]:
        flask_session[key] = flask_session.get(key, 0) + 1
        return {"ok": True}

    return app


def starlette_api(backend: Backend, client: object) -> Starlette:
    async def read(request: Request) -> JSONResponse:
        session = get_session(request)
        return JSONResponse({"data": dict(session), "user": session.user_id})

    async def logout(request: Request) -> JSONResponse:
        get_session(request).destroy()
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/read", read), Route("/logout", logout, methods=["POST"])])
    app.add_middleware(SessionMiddleware, config=token_config(backend, client))
    return app


def test_tokens_from_flask_are_read_by_django_and_back(site: Site) -> None:
    api = flask_api(site.backend).test_client()
    token = api.post("/write/n").headers[RESPONSE_HEADER]
    assert site.client.get("/read", headers=bearer(token)).json() == {"n": 1}
    response = site.client.post("/login/alice", headers=bearer(token))  # cycle_key() on Django
    fresh = token_of(response)
    assert fresh
    assert fresh != token
    assert api.get("/read", headers=bearer(fresh)).json == {
        "data": {"n": 1, "user": "alice"},
        "user": "alice",
    }
    assert api.get("/read", headers=bearer(token)).json == {"data": {}, "user": None}
    response = site.client.post("/logout", headers=bearer(fresh))
    assert token_of(response) == ""
    assert api.get("/read", headers=bearer(fresh)).json == {"data": {}, "user": None}


async def test_tokens_from_django_are_read_by_the_asgi_adapter_and_back(site: Site) -> None:
    client = site.backend.async_client()
    try:
        transport = httpx.ASGITransport(app=starlette_api(site.backend, client))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            token = token_of(await site.aclient.post("/async/login/bea"))
            assert token
            reply = await api.get("/read", headers=bearer(token))
            assert reply.json() == {"data": {"user": "bea"}, "user": "bea"}
            await site.aclient.post("/async/set/cart", ["pen"], content_type=JSON, headers=bearer(token))
            assert (await api.get("/read", headers=bearer(token))).json()["data"]["cart"] == ["pen"]
            logout = await api.post("/logout", headers=bearer(token))  # the ASGI app logs out
            assert logout.headers[RESPONSE_HEADER] == ""
            assert (await site.aclient.get("/async/read", headers=bearer(token))).json() == {}
    finally:
        await client.aclose()
