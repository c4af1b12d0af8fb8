"""examples/flask_app: the route table of examples/README.md through Flask's test
client, its configuration by environment, and one run under a real gunicorn
with two workers sharing a session through Redis."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from sharedsession._core import scripts
from tests.support import SECRET, Backend, RecordingRedis, delete_prefix, valid_cookie

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "flask_app"
STATE_KEYS = {"replica", "framework", "pid", "user", "cart", "counter", "handle"}
JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    """examples/flask_app/app.py, imported from its path (its module-level app needs SECRET_KEY)."""
    name = "sharedsession_flask_example"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SECRET_KEY", SECRET)
        mp.setitem(sys.modules, name, module)  # Flask finds its templates through it
        spec.loader.exec_module(module)
        yield module


class Site:
    """The example app on the test backend, a browser on it, and the Redis log."""

    def __init__(self, example: ModuleType, backend: Backend, **env: str) -> None:
        self.redis = RecordingRedis(backend.sync_client())
        env = {"SECRET_KEY": SECRET, "KEY_PREFIX": backend.prefix, "REPLICA_ID": "replica-7", **env}
        self.app: Flask = example.create_app(env, SHAREDSESSION_REDIS=self.redis)
        self.client: FlaskClient = self.app.test_client()

    def browser(self) -> FlaskClient:
        return self.app.test_client()

    def state(self, client: FlaskClient | None = None) -> dict[str, Any]:
        reply = (client or self.client).get("/api/state")
        assert reply.status_code == 200
        body: dict[str, Any] = reply.get_json()
        return body


@pytest.fixture
def site(example: ModuleType, backend: Backend) -> Site:
    loader = backend.sync_client()
    for script in scripts.ALL:
        loader.script_load(script.source)
    return Site(example, backend)


def login(client: FlaskClient, username: str) -> None:
    assert client.post("/login", json={"username": username}).status_code == 200


# -- routes ---------------------------------------------------------------------------


def test_healthz_answers_without_touching_the_session(site: Site) -> None:
    login(site.client, "alice")
    site.redis.log.clear()
    reply = site.client.get("/healthz")
    assert (reply.status_code, reply.data, reply.mimetype) == (200, b"ok", "text/plain")
    assert site.redis.log.trips == []
    assert reply.headers.getlist("Set-Cookie") == []


def test_api_state_of_a_new_visitor(site: Site) -> None:
    state = site.state()
    assert set(state) == STATE_KEYS
    assert state["replica"] == "replica-7"
    assert state["framework"] == "flask"
    assert state["pid"] == os.getpid()
    assert (state["user"], state["cart"], state["counter"], state["handle"]) == (None, [], 0, None)


def test_index_page_shows_replica_user_cart_counter_and_forms(site: Site) -> None:
    page = site.client.get("/").get_data(as_text=True)
    assert "replica <strong>replica-7</strong>" in page
    for action in ('action="/login"', 'action="/cart"', 'action="/api/counter"', 'href="/sessions"'):
        assert action in page
    site.client.post("/login", data={"username": "<bob>"})
    site.client.post("/cart", data={"item": "pear"})
    page = site.client.get("/").get_data(as_text=True)
    assert "Hello, &lt;bob&gt;" in page  # escaped
    assert "<li>pear</li>" in page
    assert 'action="/logout"' in page


def test_login_by_form_regenerates_and_redirects(site: Site) -> None:
    site.client.post("/cart", data={"item": "apple"})
    before = site.state()
    reply = site.client.post("/login", data={"username": "alice"})
    assert reply.status_code == 303
    assert reply.headers["Location"] == "/"
    after = site.state()
    assert (after["user"], after["cart"]) == ("alice", ["apple"])
    assert after["handle"] != before["handle"]  # a new sid on login


def test_login_by_json_answers_json(site: Site) -> None:
    reply = site.client.post("/login", json={"username": "alice"})
    assert reply.status_code == 200
    assert reply.get_json()["user"] == "alice"
    assert site.state()["user"] == "alice"
    sessions = site.client.get("/api/sessions").get_json()
    assert len(sessions) == 1
    assert set(sessions[0]) == {"handle", "created", "last_seen", "expires", "current"}
    assert sessions[0]["current"] is True


@pytest.mark.parametrize("body", [{"username": ""}, {"username": "   "}, {"username": "x" * 65}, {}, None])
def test_login_refuses_a_bad_username(site: Site, body: dict[str, str] | None) -> None:
    assert site.client.post("/login", json=body).status_code == 400
    assert site.client.post("/login", data=body or {}).status_code == 400
    assert site.state()["user"] is None


def test_logout_destroys_the_session(site: Site) -> None:
    login(site.client, "alice")
    handle = site.state()["handle"]
    reply = site.client.post("/logout")
    assert reply.status_code == 303
    assert reply.headers["Location"] == "/"
    assert site.state()["user"] is None
    assert site.client.get_cookie("session") is None
    login(site.client, "alice")
    reply = site.client.post("/logout", headers=JSON)
    assert (reply.status_code, reply.get_json()["user"]) == (200, None)
    for accept in ("*/*", "text/html, application/json"):  # JSON only when preferred to HTML
        assert site.client.post("/logout", headers={"Accept": accept}).status_code == 303
    assert handle not in [
        info.handle for info in site.app.extensions["sharedsession"].store.sessions_of("alice")
    ]


def test_cart_appends_form_and_json_items(site: Site) -> None:
    reply = site.client.post("/cart", data={"item": "apple"})
    assert (reply.status_code, reply.headers["Location"]) == (303, "/")
    site.client.post("/cart", json={"item": "pear"})
    assert site.state()["cart"] == ["apple", "pear"]
    assert site.client.post("/cart", data={"item": ""}).status_code == 400


def test_counter_counts_and_says_who_served_it(site: Site) -> None:
    for expected in (1, 2, 3):
        reply = site.client.post("/api/counter")
        assert reply.status_code == 200
        body = reply.get_json()
        assert set(body) == {"counter", "replica", "framework", "pid"}
        assert (body["counter"], body["replica"], body["framework"]) == (expected, "replica-7", "flask")
    assert site.state()["counter"] == 3


def test_kv_each_request_writes_its_own_key(site: Site) -> None:
    site.client.post("/api/counter")
    reply = site.client.put("/api/kv/colour", json="blue")
    assert reply.status_code == 200
    assert reply.get_json() == {"key": "colour", "replica": "replica-7"}
    site.client.put("/api/kv/size", json={"w": [1, 2]})
    site.client.put("/api/kv/none", data="null")
    assert site.client.get("/api/kv").get_json() == {"colour": "blue", "size": {"w": [1, 2]}, "none": None}
    assert site.client.put("/api/kv/bad", data="{not json").status_code == 400
    assert site.state()["counter"] == 1


def test_slow_loads_sleeps_then_writes(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    site.client.post("/api/counter")
    for asked, expected in (("0.25", 0.25), ("99", 10.0), ("-3", 0.0)):
        reply = site.client.post(f"/api/slow?seconds={asked}")
        assert reply.status_code == 200
        assert reply.get_json()["slept"] == expected
    assert slept == [0.25, 10.0, 0.0]
    assert site.client.post("/api/slow?seconds=nan").status_code == 400
    assert site.client.post("/api/slow?seconds=soon").status_code == 400


def test_slow_request_does_not_undo_a_logout_meanwhile(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    login(site.client, "alice")
    cookie = site.client.get_cookie("session")
    assert cookie is not None
    other_tab = site.browser()
    other_tab.set_cookie("session", cookie.value)
    monkeypatch.setattr(time, "sleep", lambda seconds: other_tab.post("/logout"))  # logs out mid-request
    reply = site.client.post("/api/slow?seconds=1")
    assert reply.status_code == 200
    assert reply.headers.getlist("Set-Cookie") == []
    assert site.state()["user"] is None


def test_sessions_page_and_log_out_everywhere_else(site: Site) -> None:
    laptop, phone = site.browser(), site.browser()
    login(laptop, "carol")
    login(phone, "carol")
    login(site.browser(), "someone-else")
    listed = laptop.get("/api/sessions").get_json()
    assert len(listed) == 2
    assert [entry["current"] for entry in listed] == [True, False]
    page = laptop.get("/sessions").get_data(as_text=True)
    assert page.count("<tr") == 3  # header and two sessions
    assert "(this one)" in page
    assert 'action="/sessions/revoke-others"' in page
    reply = laptop.post("/sessions/revoke-others")
    assert (reply.status_code, reply.headers["Location"]) == (303, "/sessions")
    assert site.state(phone)["user"] is None
    assert site.state(laptop)["user"] == "carol"
    assert [entry["current"] for entry in laptop.get("/api/sessions").get_json()] == [True]
    assert laptop.post("/sessions/revoke-others", headers=JSON).get_json()["revoked"] == 0


def test_sessions_page_without_login(site: Site) -> None:
    assert "Log in to see your sessions" in site.client.get("/sessions").get_data(as_text=True)
    assert site.client.get("/api/sessions").get_json() == []


def test_an_oversized_session_value_is_refused(site: Site) -> None:
    reply = site.client.put("/api/kv/big", json="x" * 70_000)
    assert reply.status_code == 413
    assert site.client.get("/api/kv").get_json() == {}


def test_redis_outage_503_on_session_routes_healthz_still_ok(example: ModuleType) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app: Flask = example.create_app(
        {"SECRET_KEY": SECRET, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}, SHAREDSESSION_REDIS_TIMEOUT=0.5
    )
    client = app.test_client()
    client.set_cookie("session", valid_cookie(app.extensions["sharedsession"].store.config))
    assert client.get("/healthz").status_code == 200
    for method, path in (("GET", "/api/state"), ("POST", "/api/counter"), ("GET", "/sessions")):
        started = time.monotonic()
        assert client.open(path, method=method).status_code == 503
        assert time.monotonic() - started < 5
    app.extensions["sharedsession"].store.close()


# -- configuration by environment ------------------------------------------------------


def test_settings_from_env(example: ModuleType, tmp_path: Path) -> None:
    settings = example.settings_from_env(
        {
            "SECRET_KEY": "newest older oldest",
            "REDIS_URL": "redis://redis:6379/3",
            "REPLICA_ID": "web-2",
            "TRUSTED_PROXIES": "10.0.0.0/8, 172.16.0.0/12,",
            "SESSION_BIND_IP": "subnet",
            "IDLE_TIMEOUT": "900",
            "KEY_PREFIX": "shop:",
            "LOCAL_CACHE": "5000",
            "MAX_SESSIONS_PER_USER": "3",
            "SESSION_LIMIT": "refuse",
        }
    )
    assert settings == {
        "SECRET_KEY": "newest",
        "SECRET_KEY_FALLBACKS": ["older", "oldest"],
        "REPLICA_ID": "web-2",
        "SHAREDSESSION_REDIS_URL": "redis://redis:6379/3",
        "SHAREDSESSION_TRUSTED_PROXIES": ["10.0.0.0/8", "172.16.0.0/12"],
        "SHAREDSESSION_BIND_IP": "subnet",
        "SHAREDSESSION_IDLE_TIMEOUT": 900,
        "SHAREDSESSION_ABSOLUTE_TIMEOUT": None,
        "SHAREDSESSION_KEY_PREFIX": "shop:",
        "SHAREDSESSION_LOCAL_CACHE": 5000,
        "SHAREDSESSION_MAX_SESSIONS_PER_USER": 3,
        "SHAREDSESSION_ON_SESSION_LIMIT": "refuse",
    }
    secret_file = tmp_path / "session_key"
    secret_file.write_text("from-file\nolder-from-file\n")
    defaults = example.settings_from_env({"SECRET_KEY": "ignored", "SECRET_KEY_FILE": str(secret_file)})
    assert (defaults["SECRET_KEY"], defaults["SECRET_KEY_FALLBACKS"]) == ("from-file", ["older-from-file"])
    assert defaults["REPLICA_ID"] == socket.gethostname()
    assert defaults["SHAREDSESSION_REDIS_URL"] == "redis://localhost:6379/1"
    assert defaults["SHAREDSESSION_IDLE_TIMEOUT"] == 1800
    assert (defaults["SHAREDSESSION_BIND_IP"], defaults["SHAREDSESSION_TRUSTED_PROXIES"]) == ("off", [])
    assert defaults["SHAREDSESSION_KEY_PREFIX"] == "sharedsession:"
    assert defaults["SHAREDSESSION_LOCAL_CACHE"] == 0
    assert defaults["SHAREDSESSION_MAX_SESSIONS_PER_USER"] is None
    assert defaults["SHAREDSESSION_ON_SESSION_LIMIT"] == "evict_oldest"
    with pytest.raises(ValueError, match="SESSION_LIMIT"):
        example.settings_from_env({"SECRET_KEY": "k", "SESSION_LIMIT": "kick"})


def test_the_example_refuses_to_start_without_a_secret(example: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        example.create_app({})
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        example.create_app({"SECRET_KEY": "  "})
    with pytest.raises(ValueError, match="IDLE_TIMEOUT"):
        example.create_app({"SECRET_KEY": SECRET, "IDLE_TIMEOUT": "half an hour"})


def test_rotated_keys_still_read_old_cookies(example: ModuleType, backend: Backend) -> None:
    old = Site(example, backend, SECRET_KEY="old-key-0123456789abcdef")
    login(old.client, "dave")
    cookie = old.client.get_cookie("session")
    assert cookie is not None
    rotated = Site(example, backend, SECRET_KEY=f"new-key-0123456789abcdef {'old-key-0123456789abcdef'}")
    rotated.client.set_cookie("session", cookie.value)
    assert rotated.state()["user"] == "dave"


def test_binding_with_trusted_proxies(example: ModuleType, backend: Backend) -> None:
    site = Site(example, backend, SESSION_BIND_IP="exact", TRUSTED_PROXIES="10.0.0.0/8")
    proxy = {"REMOTE_ADDR": "10.0.0.2"}
    site.client.post(
        "/login", json={"username": "erin"}, environ_base=proxy, headers={"X-Forwarded-For": "203.0.113.5"}
    )
    same = site.client.get("/api/state", environ_base=proxy, headers={"X-Forwarded-For": "203.0.113.5"})
    assert same.get_json()["user"] == "erin"
    moved = site.client.get("/api/state", environ_base=proxy, headers={"X-Forwarded-For": "198.51.100.1"})
    assert moved.get_json()["user"] is None


# -- under gunicorn ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(port: int, method: str, path: str, cookie: str | None = None, body: object = None) -> Any:
    """One request on a new connection; returns (status, JSON or text, Set-Cookie session value or None)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Accept": "application/json"}
        if cookie:
            headers["Cookie"] = f"session={cookie}"
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=headers)
        reply = connection.getresponse()
        raw = reply.read().decode()
        new_cookie = None
        for header in reply.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            if name == "session":
                new_cookie = rest.split(";")[0]
        is_json = reply.headers.get("Content-Type", "").startswith("application/json")
        return reply.status, json.loads(raw) if is_json else raw, new_cookie
    finally:
        connection.close()


def test_a_session_survives_across_two_gunicorn_workers(server_redis_url: str, tmp_path: Path) -> None:
    port = free_port()
    prefix = f"sstest:{uuid.uuid4().hex[:12]}:"
    username = f"gunicorn-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "REDIS_URL": server_redis_url,
        "SECRET_KEY": SECRET,
        "KEY_PREFIX": prefix,
        "REPLICA_ID": "gunicorn-test",
    }
    command = [sys.executable, "-m", "gunicorn", "--chdir", str(EXAMPLE), "-w", "2"]
    command += ["-b", f"127.0.0.1:{port}", "--graceful-timeout", "2", "app:app"]
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"gunicorn exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"gunicorn did not answer:\n{log_path.read_text()}"
            try:
                if call(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)

        status, body, cookie = call(port, "POST", "/login", body={"username": username})
        assert (status, body["user"]) == (200, username), body
        assert cookie is not None

        def occupy_a_worker() -> None:
            # A sync worker sleeping here cannot take the next request: the other one must.
            call(port, "POST", "/api/slow?seconds=0.6")

        served: list[tuple[int, int]] = []  # (pid, counter) of each increment, in order
        deadline = time.monotonic() + 60
        while len({pid for pid, _ in served}) < 2 and len(served) < 60 and time.monotonic() < deadline:
            busy = threading.Thread(target=occupy_a_worker)
            busy.start()
            time.sleep(0.2)
            for _ in range(2):
                status, body, renewed = call(port, "POST", "/api/counter", cookie)
                assert status == 200, body
                assert renewed is None  # the same session: no new cookie
                served.append((body["pid"], body["counter"]))
            busy.join(30)
        pids = {pid for pid, _ in served}
        assert len(pids) == 2, f"only one worker answered: {served}"
        # Whichever worker answered, each increment saw every earlier one.
        assert [counter for _, counter in served] == list(range(1, len(served) + 1))
        status, state, _ = call(port, "GET", "/api/state", cookie)
        assert (status, state["user"], state["counter"]) == (200, username, len(served))
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        delete_prefix(server_redis_url, prefix)


def test_the_dockerfile_runs_gunicorn_as_a_non_root_user_with_a_healthcheck() -> None:
    dockerfile = re.sub(r"\\\n\s*", " ", (EXAMPLE / "Dockerfile").read_text())  # join continued lines
    # The base image is a build argument (tests/swarm builds on a local stand-in); users get the default.
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.\d+-slim$", dockerfile, re.MULTILINE)
    assert re.search(r"^FROM \$\{PYTHON_IMAGE\}$", dockerfile, re.MULTILINE)
    assert re.search(r'^RUN pip install "/build\[flask\]" "gunicorn', dockerfile, re.MULTILINE)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.MULTILINE)
    assert "EXPOSE 8000" in dockerfile
    assert re.search(r"^HEALTHCHECK .*urllib.*/healthz", dockerfile, re.MULTILINE)
    assert re.search(r'^CMD \["gunicorn", "app:app", "--bind", "0.0.0.0:8000"', dockerfile, re.MULTILINE)
    copies = re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE)
    assert copies
    for line in copies:
        *sources, _ = (word for word in line.split() if not word.startswith("--"))
        for source in sources:  # built with the repository root as context
            assert (EXAMPLE.parent.parent / source).exists(), source
    ignored = (EXAMPLE.parent.parent / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)
