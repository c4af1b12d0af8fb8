"""One session, three frameworks: a Flask app, a FastAPI app and a Django app sharing a
secret, a Redis and a key prefix (and the cookie's name) see the same user, the same
data, the same logout. A user logged in with Django's auth is known to the other two
by ``session.user_id`` (the user's primary key, as a string)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import flask
import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from sharedsession import Session, SessionConfig
from sharedsession.asgi import SessionMiddleware, get_session
from sharedsession.flask import SharedSession
from sharedsession.flask import session as flask_session
from tests.support import SECRET, Backend
from tests.support.django_setup import configure

configure()  # before Django's modules are imported

from django.contrib.auth.models import User  # noqa: E402
from django.test import AsyncClient, override_settings  # noqa: E402


def make_flask(backend: Backend) -> flask.Flask:
    app = flask.Flask("shop")
    config = SessionConfig(secret_key=SECRET, redis=backend.sync_client(), key_prefix=backend.prefix)
    SharedSession(app, config)

    @app.post("/login")
    def login() -> dict[str, Any]:
        flask_session.regenerate()
        flask_session.user_id = flask_session["user"] = flask.request.json["user"]
        return {"user": flask_session["user"]}

    @app.post("/cart/<item>")
    def add(item: str) -> dict[str, Any]:
        flask_session["cart"] = [*flask_session.get("cart", []), item]
        return {"cart": flask_session["cart"]}

    @app.get("/me")
    def me() -> dict[str, Any]:
        return {
            "user": flask_session.get("user"),
            "user_id": flask_session.user_id,
            "cart": flask_session.get("cart", []),
        }

    @app.post("/logout")
    def logout() -> dict[str, Any]:
        flask_session.destroy()
        return {"user": None}

    return app


def current_session(request: Request) -> Session:
    return get_session(request)


# Module level: FastAPI resolves these annotations by name.
SessionDep = Annotated[Session, Depends(current_session)]


def make_fastapi(backend: Backend, client: Any) -> FastAPI:
    app = FastAPI()
    config = SessionConfig(secret_key=SECRET, redis=client, key_prefix=backend.prefix)
    app.add_middleware(SessionMiddleware, config=config)

    @app.get("/me")
    async def me(session: SessionDep) -> dict[str, Any]:
        return {"user": session.get("user"), "user_id": session.user_id, "cart": session.get("cart", [])}

    @app.post("/cart/{item}")
    async def add(item: str, session: SessionDep) -> dict[str, Any]:
        session["cart"] = [*session.get("cart", []), item]
        return {"cart": session["cart"]}

    @app.post("/login")
    async def login(request: Request, session: SessionDep) -> dict[str, Any]:
        session.regenerate()
        session.user_id = session["user"] = (await request.json())["user"]
        return {"user": session["user"]}

    @app.post("/logout")
    async def logout(session: SessionDep) -> dict[str, Any]:
        session.destroy()
        return {"user": None}

    return app


@pytest.fixture
async def fastapi_client(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    redis_client = backend.async_client()
    app = make_fastapi(backend, redis_client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await redis_client.aclose()


def cookie_of(headers: list[str]) -> str:
    (header,) = [h for h in headers if h.startswith("session=")]
    return header.split(";")[0].split("=", 1)[1]


async def test_logged_in_on_flask_means_logged_in_on_fastapi(
    backend: Backend, fastapi_client: httpx.AsyncClient
) -> None:
    on_flask = make_flask(backend).test_client()
    reply = on_flask.post("/login", json={"user": "alice"})
    cookie = cookie_of(reply.headers.getlist("Set-Cookie"))
    on_flask.post("/cart/apple")

    fastapi_client.cookies.set("session", cookie)
    me = (await fastapi_client.get("/me")).json()
    assert me == {"user": "alice", "user_id": "alice", "cart": ["apple"]}
    assert (await fastapi_client.post("/cart/pear")).json() == {"cart": ["apple", "pear"]}

    assert on_flask.get("/me").json == {"user": "alice", "user_id": "alice", "cart": ["apple", "pear"]}

    # Logging out on FastAPI logs out on Flask too.
    assert (await fastapi_client.post("/logout")).status_code == 200
    assert on_flask.get("/me").json == {"user": None, "user_id": None, "cart": []}


async def test_logged_in_on_fastapi_means_logged_in_on_flask(
    backend: Backend, fastapi_client: httpx.AsyncClient
) -> None:
    reply = await fastapi_client.post("/login", json={"user": "bob"})
    cookie = cookie_of(reply.headers.get_list("set-cookie"))
    on_flask = make_flask(backend).test_client()
    on_flask.set_cookie("session", cookie)
    assert on_flask.get("/me").json == {"user": "bob", "user_id": "bob", "cart": []}
    on_flask.post("/cart/book")
    assert (await fastapi_client.get("/me")).json()["cart"] == ["book"]
    on_flask.post("/logout")
    assert (await fastapi_client.get("/me")).json()["user"] is None


# -- Django (the views of tests/django_tests/site.py), under ASGI in the test's loop ----------------


@pytest.fixture
def on_django(backend: Backend) -> Iterator[AsyncClient]:
    """A browser of the Django app, on the same Redis and prefix; its users deleted afterwards."""
    shared = {
        "redis": backend.sync_client(),
        "async_redis": backend.async_client,  # one client per event loop
        "key_prefix": backend.prefix,
    }
    with override_settings(SECRET_KEY=SECRET, SHAREDSESSION=shared):
        yield AsyncClient()
    User.objects.filter(username__startswith="shared-").delete()


def django_cookie(client: AsyncClient) -> str:
    return client.cookies["session"].value


async def json_of(reply: Any) -> Any:
    return (await reply).json()


async def test_logged_in_with_django_auth_means_known_to_flask_and_fastapi(
    backend: Backend, fastapi_client: httpx.AsyncClient, on_django: AsyncClient
) -> None:
    pk = str((await json_of(on_django.post("/auth/login/shared-carla")))["pk"])
    cookie = django_cookie(on_django)

    on_flask = make_flask(backend).test_client()
    on_flask.set_cookie("session", cookie)
    assert on_flask.get("/me").json == {"user": None, "user_id": pk, "cart": []}
    on_flask.post("/cart/apple")

    fastapi_client.cookies.set("session", cookie)
    assert (await fastapi_client.get("/me")).json() == {"user": None, "user_id": pk, "cart": ["apple"]}
    assert (await fastapi_client.post("/cart/pear")).json() == {"cart": ["apple", "pear"]}

    stored = await json_of(on_django.get("/read"))
    assert (stored["_auth_user_id"], stored["cart"]) == (pk, ["apple", "pear"])
    assert await json_of(on_django.get("/auth/me")) == {"username": "shared-carla"}

    # Logging out on FastAPI logs the Django user out too.
    assert (await fastapi_client.post("/logout")).status_code == 200
    assert await json_of(on_django.get("/auth/me")) == {"username": None}
    assert on_flask.get("/me").json == {"user": None, "user_id": None, "cart": []}


async def test_logging_out_on_django_ends_the_session_for_flask_and_fastapi(
    backend: Backend, fastapi_client: httpx.AsyncClient, on_django: AsyncClient
) -> None:
    on_flask = make_flask(backend).test_client()
    reply = on_flask.post("/login", json={"user": "dan"})
    cookie = cookie_of(reply.headers.getlist("Set-Cookie"))
    on_django.cookies["session"] = cookie
    assert await json_of(on_django.get("/read")) == {"user": "dan"}  # Flask's data
    assert await json_of(on_django.get("/auth/me")) == {"username": None}  # unknown to Django's auth
    pk = str((await json_of(on_django.post("/auth/login/shared-dan")))["pk"])
    cookie = django_cookie(on_django)  # Django's login: a new key, the Flask data kept
    fastapi_client.cookies.set("session", cookie)
    assert (await fastapi_client.get("/me")).json() == {"user": "dan", "user_id": pk, "cart": []}
    assert (await on_django.post("/auth/logout")).status_code == 200
    assert (await fastapi_client.get("/me")).json()["user_id"] is None
    on_flask.set_cookie("session", cookie)
    assert on_flask.get("/me").json == {"user": None, "user_id": None, "cart": []}
