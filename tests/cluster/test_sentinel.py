"""Sessions across a Sentinel failover, on real servers: a master, one replica
and three Sentinels on loopback (tests/cluster/servers.py).

The master is killed with SIGKILL mid-run. While the Sentinels notice and
promote the replica, requests fail fast (StoreUnavailableError from the
store, 503 from the Flask and ASGI adapters), never hang; once the replica is
promoted, sessions that existed (and had replicated) before the kill load
again, and writes resume, through the very same clients.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import flask
import httpx
import pytest
import redis
import redis.asyncio.sentinel
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sharedsession import SessionConfig, SessionStore, SetCookie, StoreUnavailableError
from sharedsession.asgi import SessionMiddleware, get_session
from sharedsession.flask import SharedSession, session
from tests.cluster.servers import (
    REDIS_SENTINEL,
    REDIS_SERVER,
    SERVICE,
    SentinelServers,
    start_sentinel_group,
    wait_until,
)
from tests.support import SECRET

pytestmark = pytest.mark.skipif(
    not (REDIS_SERVER and REDIS_SENTINEL),
    reason="needs redis-server and redis-sentinel (.ci/run installs them)",
)

# Each request during the switch must fail within this (the clients' timeouts are 0.5 s).
FAST_SECONDS = 3.0
# Sentinels notice after 1 s (down-after-milliseconds) and promote within a few more.
PROMOTION_SECONDS = 30.0
# What the README recommends: short timeouts, one immediate retry (heals a
# pooled connection that the server closed), and Sentinels that are asked
# with short timeouts and no retries of their own.
TIMEOUTS: dict[str, Any] = {"socket_timeout": 0.5, "socket_connect_timeout": 0.5}


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelServers]:
    servers = start_sentinel_group(tmp_path_factory.mktemp("sentinel"))
    yield servers
    servers.stop()


# redis-py's Sentinel classes are untyped: reach them through Any.
SyncSentinel: Any = redis.sentinel.Sentinel
AsyncSentinel: Any = redis.asyncio.sentinel.Sentinel


# -- the apps: the same session through Flask and ASGI ---------------------------------


def flask_app(config: SessionConfig) -> flask.Flask:
    app = flask.Flask(__name__)
    SharedSession(app, config)

    @app.get("/read")
    def read() -> Any:
        return flask.jsonify(dict(session))

    @app.post("/set/<key>")
    def set_(key: str) -> str:
        session[key] = flask.request.get_json()
        return "ok"

    return app


async def asgi_read(request: Request) -> JSONResponse:
    return JSONResponse(dict(get_session(request)))


async def asgi_write(request: Request) -> JSONResponse:
    get_session(request).update(await request.json())
    return JSONResponse({"ok": True})


def asgi_app(config: SessionConfig) -> Starlette:
    app = Starlette(routes=[Route("/read", asgi_read), Route("/write", asgi_write, methods=["POST"])])
    return SessionMiddleware(app, config)  # type: ignore[return-value]  # an ASGI app all the same


def timed(call: Callable[[], object]) -> tuple[object, float]:
    """Call; return its result (or the exception it raised) and how long it took."""
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:
        result = exc
    return result, time.monotonic() - started


def test_sessions_survive_a_failover_and_the_switch_is_a_fast_503(group: SentinelServers) -> None:
    prefix = f"sstest:{uuid.uuid4().hex[:12]}:"
    sentinel = SyncSentinel(group.sentinels, sentinel_kwargs={**TIMEOUTS, "retry": Retry(NoBackoff(), 0)})
    asentinel = AsyncSentinel(
        group.sentinels, sentinel_kwargs={**TIMEOUTS, "retry": AsyncRetry(NoBackoff(), 0)}
    )
    client = sentinel.master_for(SERVICE, **TIMEOUTS, retry=Retry(NoBackoff(), 1))
    aclient = asentinel.master_for(SERVICE, **TIMEOUTS, retry=AsyncRetry(NoBackoff(), 1))
    loop = asyncio.new_event_loop()
    store = SessionStore(SessionConfig(secret_key=SECRET, redis=client, key_prefix=prefix))
    on_flask = flask_app(SessionConfig(secret_key=SECRET, redis=client, key_prefix=prefix)).test_client()
    on_asgi = httpx.AsyncClient(
        transport=httpx.ASGITransport(
            app=asgi_app(SessionConfig(secret_key=SECRET, redis=aclient, key_prefix=prefix))
        ),
        base_url="http://testserver",
    )

    def asgi(method: str, path: str, cookie: str, json: object = None) -> httpx.Response:
        headers = {"cookie": f"session={cookie}"}
        return loop.run_until_complete(on_asgi.request(method, path, headers=headers, json=json))

    def flask_get(cookie: str) -> Any:
        on_flask.set_cookie("session", cookie)
        return on_flask.get("/read")

    try:
        # Before: sessions from the store (one linked to a user), Flask and ASGI.
        cookies = {}
        for i in range(20):
            created = store.load(None)
            created["n"] = i
            created.user_id = "alice" if i == 0 else None
            result = store.save(created)
            assert isinstance(result.cookie, SetCookie)
            cookies[f"store-{i}"] = result.cookie.value
        assert on_flask.post("/set/cart", json=["apple"]).status_code == 200
        flask_cookie = on_flask.get_cookie("session")
        assert flask_cookie is not None
        cookies["flask"] = flask_cookie.value
        response = loop.run_until_complete(on_asgi.post("/write", json={"counter": 1}))
        assert response.status_code == 200
        cookies["asgi"] = response.cookies["session"]
        # Asynchronous replication: wait until the replica has every write.
        with redis.Redis(port=group.master_port, **TIMEOUTS) as master:
            assert master.execute_command("WAIT", 1, 2000) == 1

        group.kill_master()

        # The switch: the master is gone and the Sentinels need over a second to
        # even call it down. Every kind of request fails, and fast.
        during: list[tuple[str, object, float]] = []
        outcome, took = timed(lambda: store.load(cookies["store-1"]))
        during.append(("store load", outcome, took))
        assert isinstance(outcome, StoreUnavailableError), outcome
        outcome, took = timed(lambda: flask_get(cookies["flask"]).status_code)
        during.append(("flask GET", outcome, took))
        assert outcome == 503
        outcome, took = timed(lambda: on_flask.post("/set/late", json=1).status_code)
        during.append(("flask POST", outcome, took))
        assert outcome == 503
        outcome, took = timed(lambda: asgi("GET", "/read", cookies["asgi"]).status_code)
        during.append(("asgi GET", outcome, took))
        assert outcome == 503
        for what, _, took in during:
            assert took < FAST_SECONDS, f"{what} took {took:.1f} s during the switch"

        # Until the replica is promoted: 503s, each fast; then the same clients recover.
        deadline = time.monotonic() + PROMOTION_SECONDS
        while True:
            outcome, took = timed(lambda: store.load(cookies["store-2"]))
            assert took < FAST_SECONDS, f"a load took {took:.1f} s during the switch"
            if not isinstance(outcome, BaseException):
                break
            assert isinstance(outcome, StoreUnavailableError), outcome
            assert time.monotonic() < deadline, "the replica was not promoted in time"
            time.sleep(0.2)
        # The Sentinel that led the failover knows first; the others follow within seconds.
        promoted = ("127.0.0.1", group.replica_port)
        wait_until(
            "every Sentinel names the promoted replica", lambda: group.master_addresses() == {promoted}, 10
        )

        # After: everything from before the kill is there, through every client.
        for i in range(20):
            assert dict(store.load(cookies[f"store-{i}"])) == {"n": i}
        assert [info.user_id for info in store.sessions_of("alice")] == ["alice"]
        response = flask_get(cookies["flask"])
        assert (response.status_code, response.get_json()) == (200, {"cart": ["apple"]})
        response = asgi("GET", "/read", cookies["asgi"])
        assert (response.status_code, response.json()) == (200, {"counter": 1})
        # Writes resume: updates of old sessions and new sessions alike.
        assert on_flask.post("/set/cart", json=["apple", "pear"]).status_code == 200
        assert asgi("POST", "/write", cookies["asgi"], {"counter": 2}).status_code == 200
        assert asgi("GET", "/read", cookies["asgi"]).json() == {"counter": 2}
        assert flask_get(cookies["flask"]).get_json() == {"cart": ["apple", "pear"]}
        fresh = store.load(None)
        fresh["after"] = True
        result = store.save(fresh)
        assert isinstance(result.cookie, SetCookie)
        assert dict(store.load(result.cookie.value)) == {"after": True}
        assert store.count() == 23
    finally:
        loop.run_until_complete(on_asgi.aclose())
        loop.run_until_complete(aclient.aclose())
        loop.run_until_complete(asentinel.aclose())
        loop.close()
        client.close()
        sentinel.close()
