"""examples/starlette_app: the route table of examples/README.md, on the Starlette
app and its FastAPI variant, through httpx's ASGITransport on fakeredis and (with
REDIS_URL) a real Redis; and the Starlette app under a real uvicorn process."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from sharedsession import SessionConfig
from tests.support import SECRET, Backend, RecordingAsyncRedis, closed_port, delete_prefix, valid_cookie
from tests.support.asgi import BOUND_SECONDS, lifespan, recording_client

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "starlette_app"
STATE_KEYS = {"replica", "framework", "pid", "user", "cart", "counter", "handle"}
IDENTITY_KEYS = {"replica", "framework", "pid"}
VARIANTS = {"starlette": "app.py", "fastapi": "fastapi_app.py"}


@pytest.fixture
def demo(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The examples' shared module (importable as the apps import it, from their folder)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return importlib.import_module("starlette_demo")


def load_variant(framework: str) -> ModuleType:
    """Import an example module under a name of its own (``app`` could be the Flask example's)."""
    path = EXAMPLE / VARIANTS[framework]
    spec = importlib.util.spec_from_file_location(f"sharedsession_example_{framework}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=list(VARIANTS))
def framework(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def variant(framework: str, demo: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The module-level ``app`` reads the environment at import, as under uvicorn.
    monkeypatch.setenv("SECRET_KEY", SECRET)
    return load_variant(framework)


@pytest.fixture
async def recorder(backend: Backend) -> AsyncIterator[RecordingAsyncRedis]:
    async with recording_client(backend) as client:
        yield client


@pytest.fixture
def app(variant: ModuleType, demo: ModuleType, backend: Backend, recorder: RecordingAsyncRedis) -> Any:
    config = SessionConfig(secret_key=SECRET, redis=recorder, key_prefix=backend.prefix)
    return variant.create_app(demo.Settings(config=config, replica="r1"))


def browser(app: Any) -> httpx.AsyncClient:
    """A client that keeps cookies, as a browser does."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def log_in(client: httpx.AsyncClient, username: str) -> dict[str, Any]:
    """Log in as a JSON client; returns /api/state."""
    response = await client.post("/login", json={"username": username})
    assert response.status_code == 200
    assert response.json()["user"] == username
    state: dict[str, Any] = (await client.get("/api/state")).json()
    return state


# -- the routes ------------------------------------------------------------------


async def test_healthz_needs_no_session(app: Any, recorder: RecordingAsyncRedis) -> None:
    async with browser(app) as client:
        await log_in(client, "hank")
        recorder.log.clear()
        response = await client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok")
    assert recorder.log.trips == []
    assert "set-cookie" not in response.headers


async def test_api_state_of_an_anonymous_visitor(
    app: Any, framework: str, recorder: RecordingAsyncRedis
) -> None:
    async with browser(app) as client:
        response = await client.get("/api/state")
    assert response.json() == {
        "replica": "r1",
        "framework": framework,
        "pid": os.getpid(),
        "user": None,
        "cart": [],
        "counter": 0,
        "handle": None,
    }
    assert "set-cookie" not in response.headers
    assert recorder.log.trips == []


async def test_json_login_regenerates_and_answers_json(app: Any, framework: str) -> None:
    async with browser(app) as client:
        await client.post("/api/counter")
        before = client.cookies["session"]
        response = await client.post("/login", json={"username": "alice"})
        assert response.json() == {
            "user": "alice",
            "replica": "r1",
            "framework": framework,
            "pid": os.getpid(),
        }
        assert client.cookies["session"] != before
        state = (await client.get("/api/state")).json()
        assert set(state) == STATE_KEYS
        assert (state["user"], state["counter"], state["framework"]) == ("alice", 1, framework)
        assert state["handle"] is not None
    async with browser(app) as stranger:
        stranger.cookies.set("session", before)  # the pre-login id is dead
        assert (await stranger.get("/api/state")).json()["user"] is None


async def test_form_posts_redirect_and_json_clients_get_json(app: Any, framework: str) -> None:
    async with browser(app) as client:
        response = await client.post("/login", data={"username": "bea"})
        assert (response.status_code, response.headers["location"]) == (303, "/")
        for item in ("apple", "pear"):
            response = await client.post("/cart", data={"item": item})
            assert (response.status_code, response.headers["location"]) == (303, "/")
        await client.post("/cart", json={"item": "fig"})
        state = (await client.get("/api/state")).json()
        assert (state["user"], state["cart"]) == ("bea", ["apple", "pear", "fig"])
        response = await client.post("/logout")
        assert (response.status_code, response.headers["location"]) == (303, "/")
        assert "Max-Age=0" in response.headers["set-cookie"]
        assert (await client.get("/api/state")).json()["user"] is None
    identity = {"replica": "r1", "framework": framework, "pid": os.getpid()}
    # The Accept header decides for form posts (what a JSON API client sends).
    async with browser(app) as client:
        client.headers["accept"] = "application/json"
        response = await client.post("/login", data={"username": "cy"})
        assert response.json() == {"user": "cy", **identity}
        assert (await client.post("/cart", data={"item": "kiwi"})).json() == {"cart": ["kiwi"], **identity}
        assert (await client.post("/sessions/revoke-others")).json() == {"revoked": 0, **identity}
        assert (await client.post("/logout")).json() == {"user": None, **identity}
        browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        client.headers["accept"] = browser_accept
        assert (await client.post("/login", data={"username": "cy"})).status_code == 303
        client.headers["accept"] = "application/json;q=0.5, text/html;q=0.4"
        assert (await client.post("/logout")).status_code == 200


async def test_counter(app: Any, framework: str, recorder: RecordingAsyncRedis) -> None:
    async with browser(app) as client:
        first = (await client.post("/api/counter")).json()
        recorder.log.clear()
        second = (await client.post("/api/counter")).json()
    assert first == {"counter": 1, "replica": "r1", "framework": framework, "pid": os.getpid()}
    assert second["counter"] == 2
    assert recorder.log.trips == [["EVALSHA"], ["EVALSHA"]]


async def test_home_page_shows_the_replica_and_escapes_input(app: Any, framework: str) -> None:
    async with browser(app) as client:
        await log_in(client, "<b>eve</b>")
        await client.post("/cart", data={"item": "<script>x</script>"})
        page = await client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert f"replica <b>r1</b> ({framework}, pid {os.getpid()})" in page.text
    assert "&lt;b&gt;eve&lt;/b&gt;" in page.text
    assert "<script>x" not in page.text
    for action in ("/logout", "/cart", "/api/counter"):
        assert f'action="{action}"' in page.text
    async with browser(app) as anonymous:
        assert 'action="/login"' in (await anonymous.get("/")).text


async def test_kv_keys_are_written_one_by_one(app: Any) -> None:
    async with browser(app) as client:
        await client.post("/api/counter")
        replies = await asyncio.gather(
            client.put("/api/kv/a", json={"x": 1}),
            client.put("/api/kv/b", json=[1, 2]),
            client.put("/api/kv/c", json="text"),
        )
        assert [r.json() for r in replies] == [{"key": k, "replica": "r1"} for k in "abc"]
        assert (await client.get("/api/kv")).json() == {"a": {"x": 1}, "b": [1, 2], "c": "text"}
        assert (await client.put("/api/kv/d", content=b"{not json")).status_code == 400
        too_big = await client.put("/api/kv/e", json="x" * 70_000)
        assert too_big.status_code == 413
        assert "max_size" in too_big.json()["error"]


async def test_slow_request_does_not_revive_a_session_logged_out_meanwhile(app: Any, framework: str) -> None:
    async with browser(app) as client:
        await log_in(client, "ivy")
        cookie = client.cookies["session"]
        async with browser(app) as other_tab:
            other_tab.cookies.set("session", cookie)
            slow = asyncio.ensure_future(client.post("/api/slow", params={"seconds": "0.3"}))
            await asyncio.sleep(0.1)
            assert (await other_tab.post("/logout")).status_code == 303
            reply = await slow
        assert reply.json() == {"slept": 0.3, "replica": "r1", "framework": framework, "pid": os.getpid()}
        assert "set-cookie" not in reply.headers
        assert (await client.get("/api/state")).json()["user"] is None
        for seconds in ("abc", "nan", "inf"):
            assert (await client.post("/api/slow", params={"seconds": seconds})).status_code == 400
        assert (await client.post("/api/slow", params={"seconds": "-1"})).json()["slept"] == 0


async def test_sessions_and_log_out_everywhere_else(app: Any) -> None:
    async with browser(app) as laptop, browser(app) as phone:
        mine = (await log_in(laptop, "jo"))["handle"]
        theirs = (await log_in(phone, "jo"))["handle"]
        rows = (await laptop.get("/api/sessions")).json()
        assert [set(row) for row in rows] == [{"handle", "created", "last_seen", "expires", "current"}] * 2
        assert {row["handle"]: row["current"] for row in rows} == {mine: True, theirs: False}
        page = (await laptop.get("/sessions")).text
        assert mine in page
        assert theirs in page
        assert "(this session)" in page
        assert "Log out everywhere else" in page
        response = await laptop.post("/sessions/revoke-others")
        assert (response.status_code, response.headers["location"]) == (303, "/sessions")
        assert (await phone.get("/api/state")).json()["user"] is None
        assert (await laptop.get("/api/state")).json()["user"] == "jo"
        assert [row["handle"] for row in (await laptop.get("/api/sessions")).json()] == [mine]
    async with browser(app) as anonymous:
        assert (await anonymous.get("/api/sessions")).json() == []
        assert "Not logged in" in (await anonymous.get("/sessions")).text


async def test_bad_input_is_a_400(app: Any) -> None:
    async with browser(app) as client:
        response = await client.post("/login", json={"username": ""})
        assert (response.status_code, response.json()) == (400, {"error": "username: 1 to 64 characters"})
        assert (await client.post("/login", json=["alice"])).status_code == 400
        response = await client.post("/login", data={})
        assert (response.status_code, response.text) == (400, "username: 1 to 64 characters\n")
        assert (await client.post("/cart", data={"item": "x" * 65})).status_code == 400


async def test_redis_down_503_on_session_routes_healthz_still_ok(
    variant: ModuleType, demo: ModuleType
) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    config = SessionConfig(secret_key=SECRET, redis_url=url, redis_timeout=0.5)
    app = variant.create_app(demo.Settings(config=config, replica="r1"))
    valid = valid_cookie(config)
    async with lifespan(app), browser(app) as client:  # the lifespan closes the app's Redis client
        client.cookies.set("session", valid)
        for path in ("/api/state", "/api/counter", "/"):
            started = time.monotonic()
            response = await client.request("POST" if path == "/api/counter" else "GET", path)
            assert time.monotonic() - started < BOUND_SECONDS
            assert (response.status_code, response.headers["retry-after"]) == (503, "5")
        assert (await client.get("/healthz")).text == "ok"
        client.cookies.clear()
        assert (await client.get("/api/state")).json()["user"] is None
        assert (await client.post("/login", json={"username": "x"})).status_code == 503


# -- configuration from the environment ------------------------------------------------


def test_settings_from_the_environment(demo: ModuleType, tmp_path: Path) -> None:
    settings = demo.settings_from_env({"SECRET_KEY": "new old"})
    config = settings.config
    assert config.secret_keys == ("new", "old")
    assert (config.redis_url, config.key_prefix, config.idle_timeout) == (
        "redis://localhost:6379/1",
        "sharedsession:",
        1800,
    )
    assert (config.bind_ip, config.trusted_proxies) == ("off", ())
    assert config.local_cache == 0
    assert settings.replica == socket.gethostname()

    secret = tmp_path / "secret"
    secret.write_text("from-file\nolder-key\n")
    settings = demo.settings_from_env(
        {
            "SECRET_KEY": "ignored",
            "SECRET_KEY_FILE": str(secret),
            "REDIS_URL": "redis://redis:6379/4",
            "REPLICA_ID": "web-2",
            "TRUSTED_PROXIES": "10.0.0.0/8, 172.16.0.0/12",
            "SESSION_BIND_IP": "subnet",
            "IDLE_TIMEOUT": "600",
            "KEY_PREFIX": "demo:",
            "LOCAL_CACHE": "2000",
            "MAX_SESSIONS_PER_USER": "2",
            "SESSION_LIMIT": "refuse",
        }
    )
    config = settings.config
    assert config.secret_keys == ("from-file", "older-key")
    assert (config.redis_url, config.key_prefix) == ("redis://redis:6379/4", "demo:")
    assert config.idle_timeout == 600
    assert (config.bind_ip, config.trusted_proxies) == ("subnet", ("10.0.0.0/8", "172.16.0.0/12"))
    assert config.local_cache == 2000
    assert (config.max_sessions_per_user, config.on_session_limit) == (2, "refuse")
    assert settings.replica == "web-2"


@pytest.mark.parametrize(
    ("environ", "match"),
    [
        ({}, "SECRET_KEY"),
        ({"SECRET_KEY": "  "}, "SECRET_KEY"),
        ({"SECRET_KEY": "k", "SESSION_BIND_IP": "on"}, "SESSION_BIND_IP"),
        ({"SECRET_KEY": "k", "IDLE_TIMEOUT": "soon"}, "IDLE_TIMEOUT"),
        ({"SECRET_KEY": "k", "LOCAL_CACHE": "lots"}, "LOCAL_CACHE"),
        ({"SECRET_KEY": "k", "MAX_SESSIONS_PER_USER": "-1"}, "MAX_SESSIONS_PER_USER"),
        ({"SECRET_KEY": "k", "SESSION_LIMIT": "kick"}, "SESSION_LIMIT"),
    ],
)
def test_bad_environment_refuses_to_start(demo: ModuleType, environ: dict[str, str], match: str) -> None:
    with pytest.raises(RuntimeError, match=match):
        demo.settings_from_env(environ)


def test_without_a_secret_the_apps_refuse_to_import(
    demo: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("SECRET_KEY_FILE", raising=False)
    for framework in VARIANTS:
        with pytest.raises(RuntimeError, match="SECRET_KEY"):
            load_variant(framework)


def test_the_dockerfile_runs_uvicorn_as_a_non_root_user_with_a_healthcheck() -> None:
    dockerfile = re.sub(r"\\\n\s*", " ", (EXAMPLE / "Dockerfile").read_text())  # join continued lines
    # The base image is a build argument (tests/swarm builds on a local stand-in); users get the default.
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.\d+-slim$", dockerfile, re.MULTILINE)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", dockerfile, re.MULTILINE)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert "EXPOSE 8000" in dockerfile
    assert re.search(r"^HEALTHCHECK .*/healthz", dockerfile, re.MULTILINE)
    assert re.search(r'^CMD \["uvicorn", "app:app"', dockerfile, re.MULTILINE)
    copies = re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE)
    assert copies
    for line in copies:
        *sources, _ = (word for word in line.split() if not word.startswith("--"))
        for source in sources:  # built with the repository root as context
            assert list(EXAMPLE.parent.parent.glob(source)), source


# -- a real server ---------------------------------------------------------------------


@pytest.fixture
def uvicorn_prefix(server_redis_url: str) -> Iterator[str]:
    prefix = f"sstest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(server_redis_url, prefix)


def test_the_starlette_example_under_uvicorn(
    server_redis_url: str, uvicorn_prefix: str, tmp_path: Path
) -> None:
    free_port = closed_port()  # free now; uvicorn binds it
    pytest.importorskip("uvicorn")
    env = {
        **os.environ,
        "REDIS_URL": server_redis_url,
        "SECRET_KEY": SECRET,
        "KEY_PREFIX": uvicorn_prefix,
        "REPLICA_ID": "uvicorn-1",
    }
    env.pop("SECRET_KEY_FILE", None)
    command = [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLE), "app:app"]
    command += ["--host", "127.0.0.1", "--port", str(free_port), "--no-proxy-headers"]
    base = f"http://127.0.0.1:{free_port}"
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "uvicorn did not answer in 30 s:\n" + log_path.read_text()
            try:
                if httpx.get(base + "/healthz", timeout=2).text == "ok":
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        username = f"user-{uuid.uuid4().hex[:8]}"
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.post("/login", json={"username": username}).json()["user"] == username
            assert client.post("/api/counter").json()["counter"] == 1
            assert client.post("/api/counter").json()["counter"] == 2
            state = client.get("/api/state").json()
            assert (state["user"], state["counter"]) == (username, 2)
            assert (state["replica"], state["framework"]) == ("uvicorn-1", "starlette")
            assert state["pid"] == server.pid
            assert client.get("/healthz").text == "ok"
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
    assert "Application shutdown complete" in log_path.read_text()
