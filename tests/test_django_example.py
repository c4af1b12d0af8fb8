"""examples/django_app: the route table of examples/README.md through Django's test client,
with the example's own settings module applied over the test settings; its configuration
by environment; and one run under a real gunicorn with two workers sharing a session
through Redis."""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support import SECRET, Backend, RecordingRedis, delete_prefix, load_scripts, valid_cookie
from tests.support.django_setup import configure

configure()

from django.test import Client, override_settings  # noqa: E402

from sharedsession.django import config_from_settings, get_store  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "django_app"
STATE_KEYS = {"replica", "framework", "pid", "user", "cart", "counter", "handle"}
JSON = "application/json"
# What the example's settings module sets that the tests apply (the rest is the test project's).
APPLIED = ("ROOT_URLCONF", "MIDDLEWARE", "TEMPLATES", "SESSION_COOKIE_NAME", "SESSION_ENGINE")


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    """examples/django_app/shop/settings.py, imported with SECRET_KEY set (it refuses to load without)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXAMPLE))
        mp.setenv("SECRET_KEY", SECRET)
        mp.setenv("REPLICA_ID", "replica-7")
        settings = importlib.import_module("shop.settings")
        yield settings
        for name in [name for name in sys.modules if name == "shop" or name.startswith("shop.")]:
            del sys.modules[name]


class Site:
    """The example's views with sessions on the test backend, a browser, and the Redis log."""

    def __init__(self, example: ModuleType, backend: Backend, **shared: Any) -> None:
        load_scripts(backend.sync_client())
        self.redis = RecordingRedis(backend.sync_client())
        fields = {key: value for key, value in example.SHAREDSESSION.items() if key != "redis_url"}
        fields.update(redis=self.redis, key_prefix=backend.prefix, **shared)
        applied = {name: getattr(example, name) for name in APPLIED}
        self._override = override_settings(REPLICA_ID=example.REPLICA_ID, SHAREDSESSION=fields, **applied)
        self._override.enable()
        self.client = self.browser()

    def browser(self) -> Client:
        return Client(HTTP_ACCEPT="text/html")

    def state(self, client: Client | None = None) -> dict[str, Any]:
        reply = (client or self.client).get("/api/state")
        assert reply.status_code == 200
        body: dict[str, Any] = reply.json()
        return body

    def close(self) -> None:
        self._override.disable()


@pytest.fixture
def site(example: ModuleType, backend: Backend) -> Iterator[Site]:
    s = Site(example, backend)
    yield s
    s.close()


def login(client: Client, username: str) -> None:
    assert client.post("/login", {"username": username}, content_type=JSON).status_code == 200


def page(client: Client, path: str) -> str:
    return client.get(path).content.decode()


# -- routes -----------------------------------------------------------------------------------


def test_healthz_answers_without_touching_the_session(site: Site) -> None:
    login(site.client, "alice")
    site.redis.log.clear()
    reply = site.client.get("/healthz")
    assert (reply.status_code, reply.content, reply["Content-Type"]) == (
        200,
        b"ok",
        "text/plain; charset=utf-8",
    )
    assert site.redis.log.trips == []
    assert not reply.cookies


def test_api_state_of_a_new_visitor(site: Site) -> None:
    state = site.state()
    assert set(state) == STATE_KEYS
    assert (state["replica"], state["framework"], state["pid"]) == ("replica-7", "django", os.getpid())
    assert (state["user"], state["cart"], state["counter"], state["handle"]) == (None, [], 0, None)


def test_index_page_shows_replica_user_cart_counter_and_forms(site: Site) -> None:
    home = page(site.client, "/")
    assert "replica <strong>replica-7</strong>" in home
    for action in ('action="/login"', 'action="/cart"', 'action="/api/counter"', 'href="/sessions"'):
        assert action in home
    site.client.post("/login", {"username": "<bob>"})
    site.client.post("/cart", {"item": "pear"})
    home = page(site.client, "/")
    assert "Hello, &lt;bob&gt;" in home  # escaped
    assert "<li>pear</li>" in home
    assert 'action="/logout"' in home


def test_login_by_form_regenerates_and_redirects(site: Site) -> None:
    site.client.post("/cart", {"item": "apple"})
    before = site.state()
    reply = site.client.post("/login", {"username": "alice"})
    assert (reply.status_code, reply["Location"]) == (303, "/")
    after = site.state()
    assert (after["user"], after["cart"]) == ("alice", ["apple"])
    assert after["handle"] != before["handle"]  # a new session key on login


def test_login_by_json_answers_json(site: Site) -> None:
    reply = site.client.post("/login", {"username": "alice"}, content_type=JSON)
    assert (reply.status_code, reply.json()["user"], reply.json()["framework"]) == (200, "alice", "django")
    sessions = site.client.get("/api/sessions").json()
    assert len(sessions) == 1
    assert set(sessions[0]) == {"handle", "created", "last_seen", "expires", "current"}
    assert sessions[0]["current"] is True


@pytest.mark.parametrize("body", [{"username": ""}, {"username": "   "}, {"username": "x" * 65}, {}])
def test_login_refuses_a_bad_username(site: Site, body: dict[str, str]) -> None:
    assert site.client.post("/login", body, content_type=JSON).status_code == 400
    assert site.client.post("/login", body).status_code == 400
    assert site.client.post("/login", "{not json", content_type=JSON).status_code == 400
    assert site.state()["user"] is None


def test_logout_destroys_the_session(site: Site) -> None:
    login(site.client, "alice")
    handle = site.state()["handle"]
    reply = site.client.post("/logout")
    assert (reply.status_code, reply["Location"]) == (303, "/")
    assert site.state()["user"] is None
    assert not site.client.cookies["session"].value
    login(site.client, "alice")
    reply = site.client.post("/logout", HTTP_ACCEPT=JSON)
    assert (reply.status_code, reply.json()["user"]) == (200, None)
    for accept in ("*/*", "text/html, application/json"):  # JSON only when preferred to HTML
        assert site.client.post("/logout", HTTP_ACCEPT=accept).status_code == 303
    assert handle not in [info.handle for info in get_store().sessions_of("alice")]


def test_cart_appends_form_and_json_items(site: Site) -> None:
    reply = site.client.post("/cart", {"item": "apple"})
    assert (reply.status_code, reply["Location"]) == (303, "/")
    site.client.post("/cart", {"item": "pear"}, content_type=JSON)
    assert site.state()["cart"] == ["apple", "pear"]
    assert site.client.post("/cart", {"item": ""}).status_code == 400


def test_counter_counts_and_says_who_served_it(site: Site) -> None:
    for expected in (1, 2, 3):
        body = site.client.post("/api/counter").json()
        assert set(body) == {"counter", "replica", "framework", "pid"}
        assert (body["counter"], body["replica"], body["framework"]) == (expected, "replica-7", "django")
    assert site.state()["counter"] == 3


def test_kv_each_request_writes_its_own_key(site: Site) -> None:
    site.client.post("/api/counter")
    reply = site.client.put("/api/kv/colour", '"blue"', content_type=JSON)
    assert reply.json() == {"key": "colour", "replica": "replica-7"}
    site.client.put("/api/kv/size", {"w": [1, 2]}, content_type=JSON)
    site.client.put("/api/kv/none", "null", content_type=JSON)
    assert site.client.get("/api/kv").json() == {"colour": "blue", "size": {"w": [1, 2]}, "none": None}
    assert site.client.put("/api/kv/bad", "{not json", content_type=JSON).status_code == 400
    assert site.client.post("/api/kv/colour", '"red"', content_type=JSON).status_code == 405
    assert site.state()["counter"] == 1


def test_an_oversized_session_value_is_refused(site: Site) -> None:
    assert site.client.put("/api/kv/big", json.dumps("x" * 70_000), content_type=JSON).status_code == 413
    assert site.client.get("/api/kv").json() == {}


def test_slow_loads_sleeps_then_writes(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    for asked, expected in (("0.25", 0.25), ("99", 10.0), ("-3", 0.0)):
        reply = site.client.post(f"/api/slow?seconds={asked}")
        assert (reply.status_code, reply.json()["slept"]) == (200, expected)
    assert slept == [0.25, 10.0, 0.0]
    assert site.client.post("/api/slow?seconds=nan").status_code == 400
    assert site.client.post("/api/slow?seconds=soon").status_code == 400


def test_slow_request_does_not_undo_a_logout_meanwhile(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    login(site.client, "alice")
    other_tab = site.browser()
    other_tab.cookies["session"] = site.client.cookies["session"].value
    monkeypatch.setattr(time, "sleep", lambda seconds: other_tab.post("/logout"))  # logs out mid-request
    reply = site.client.post("/api/slow?seconds=1")
    assert reply.status_code == 200
    assert not reply.cookies
    assert site.state()["user"] is None


def test_sessions_page_and_log_out_everywhere_else(site: Site) -> None:
    laptop, phone = site.browser(), site.browser()
    login(laptop, "carol")
    login(phone, "carol")
    login(site.browser(), "someone-else")
    listed = laptop.get("/api/sessions").json()
    assert [entry["current"] for entry in listed] == [True, False]
    sessions = page(laptop, "/sessions")
    assert sessions.count("<tr") == 3  # header and two sessions
    assert "(this one)" in sessions
    assert 'action="/sessions/revoke-others"' in sessions
    reply = laptop.post("/sessions/revoke-others")
    assert (reply.status_code, reply["Location"]) == (303, "/sessions")
    assert site.state(phone)["user"] is None
    assert site.state(laptop)["user"] == "carol"
    assert laptop.post("/sessions/revoke-others", HTTP_ACCEPT=JSON).json()["revoked"] == 0


def test_sessions_page_without_login(site: Site) -> None:
    assert "Log in to see your sessions" in page(site.client, "/sessions")
    assert site.client.get("/api/sessions").json() == []


def test_redis_outage_503_on_session_routes_healthz_still_ok(example: ModuleType, closed_port: int) -> None:
    fields = {
        **example.SHAREDSESSION,
        "redis_url": f"redis://127.0.0.1:{closed_port}/0",
        "redis_timeout": 0.5,
    }
    applied = {name: getattr(example, name) for name in APPLIED}
    with override_settings(REPLICA_ID="replica-7", SHAREDSESSION=fields, **applied):
        client = Client(raise_request_exception=False)
        client.cookies["session"] = valid_cookie(config_from_settings().config)
        assert client.get("/healthz").status_code == 200
        for method, path in (("get", "/api/state"), ("post", "/api/counter"), ("get", "/sessions")):
            started = time.monotonic()
            assert getattr(client, method)(path).status_code == 503
            assert time.monotonic() - started < 5
        get_store().close()


def test_binding_with_trusted_proxies(example: ModuleType, backend: Backend) -> None:
    site = Site(example, backend, bind_ip="exact", trusted_proxies=["10.0.0.0/8"])
    try:
        proxy = "10.0.0.2"
        site.client.post(
            "/login",
            {"username": "erin"},
            content_type=JSON,
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR="203.0.113.5",
        )
        same = site.client.get("/api/state", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.5")
        assert same.json()["user"] == "erin"
        moved = site.client.get("/api/state", REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.1")
        assert moved.json()["user"] is None
    finally:
        site.close()


# -- configuration by environment ----------------------------------------------------------------


def environment() -> ModuleType:
    sys.path.insert(0, str(EXAMPLE))
    try:
        return importlib.import_module("shop.environment")
    finally:
        sys.path.remove(str(EXAMPLE))


def test_settings_from_env(example: ModuleType, tmp_path: Path) -> None:
    read = environment().settings_from_env
    settings = read(
        {
            "SECRET_KEY": "newest older oldest",
            "REDIS_URL": "redis://redis:6379/3",
            "REPLICA_ID": "web-2",
            "TRUSTED_PROXIES": "10.0.0.0/8, 172.16.0.0/12,",
            "SESSION_BIND_IP": "subnet",
            "IDLE_TIMEOUT": "900",
            "ABSOLUTE_TIMEOUT": "86400",
            "KEY_PREFIX": "shop:",
            "LOCAL_CACHE": "500",
        }
    )
    assert settings == {
        "SECRET_KEY": "newest",
        "SECRET_KEY_FALLBACKS": ["older", "oldest"],
        "REPLICA_ID": "web-2",
        "SHAREDSESSION": {
            "redis_url": "redis://redis:6379/3",
            "idle_timeout": 900,
            "absolute_timeout": 86400,
            "bind_ip": "subnet",
            "trusted_proxies": ["10.0.0.0/8", "172.16.0.0/12"],
            "key_prefix": "shop:",
            "local_cache": 500,
            "max_sessions_per_user": None,
            "on_session_limit": "evict_oldest",
        },
    }
    secret_file = tmp_path / "session_key"
    secret_file.write_text("from-file\nolder-from-file\n")
    defaults = read({"SECRET_KEY": "ignored", "SECRET_KEY_FILE": str(secret_file)})
    assert (defaults["SECRET_KEY"], defaults["SECRET_KEY_FALLBACKS"]) == ("from-file", ["older-from-file"])
    assert defaults["REPLICA_ID"] == socket.gethostname()
    assert defaults["SHAREDSESSION"] == {
        "redis_url": "redis://localhost:6379/1",
        "idle_timeout": 1800,
        "absolute_timeout": None,
        "bind_ip": "off",
        "trusted_proxies": [],
        "key_prefix": "sharedsession:",
        "local_cache": 0,
        "max_sessions_per_user": None,
        "on_session_limit": "evict_oldest",
    }
    for bad, message in (({}, "SECRET_KEY"), ({"SECRET_KEY": "  "}, "SECRET_KEY")):
        with pytest.raises(RuntimeError, match=message):
            read(bad)
    with pytest.raises(RuntimeError, match="IDLE_TIMEOUT"):
        read({"SECRET_KEY": SECRET, "IDLE_TIMEOUT": "half an hour"})
    with pytest.raises(RuntimeError, match="ABSOLUTE_TIMEOUT"):
        read({"SECRET_KEY": SECRET, "ABSOLUTE_TIMEOUT": "a day"})
    with pytest.raises(RuntimeError, match="LOCAL_CACHE"):
        read({"SECRET_KEY": SECRET, "LOCAL_CACHE": "lots"})
    with pytest.raises(RuntimeError, match="SESSION_LIMIT"):
        read({"SECRET_KEY": SECRET, "SESSION_LIMIT": "kick"})
    limited = read({"SECRET_KEY": SECRET, "MAX_SESSIONS_PER_USER": "2", "SESSION_LIMIT": "refuse"})
    assert limited["SHAREDSESSION"]["max_sessions_per_user"] == 2
    assert limited["SHAREDSESSION"]["on_session_limit"] == "refuse"
    with pytest.raises(RuntimeError, match="SESSION_BIND_IP"):
        read({"SECRET_KEY": SECRET, "SESSION_BIND_IP": "strict"})


def test_the_settings_module_shares_the_cookie_with_the_other_examples(example: ModuleType) -> None:
    assert example.SESSION_ENGINE == "sharedsession.django"
    assert example.SESSION_COOKIE_NAME == "session"
    assert "sharedsession.django.SessionMiddleware" in example.MIDDLEWARE
    assert "django.contrib.sessions.middleware.SessionMiddleware" not in example.MIDDLEWARE
    assert example.SECRET_KEY == SECRET
    assert example.DATABASES == {}


# -- under gunicorn ----------------------------------------------------------------------------------


def test_a_session_survives_across_two_gunicorn_workers(server_redis_url: str, tmp_path: Path) -> None:
    import httpx

    from sharedsession.demo.processes import free_port, replica_command, spawn, wait_healthy

    port = free_port()
    prefix = f"sstest:{uuid.uuid4().hex[:12]}:"
    env = {
        "REDIS_URL": server_redis_url,
        "SECRET_KEY": SECRET,
        "KEY_PREFIX": prefix,
        "REPLICA_ID": "gunicorn",
    }
    child = spawn("gunicorn", replica_command("django", port, workers=2), env, tmp_path / "gunicorn.log")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", child)
        pids: set[int] = set()
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Accept": JSON}, timeout=30
        ) as browser:
            assert browser.post("/login", json={"username": "gus"}).json()["user"] == "gus"
            deadline = time.monotonic() + 30
            counter = 0
            while len(pids) < 2 and time.monotonic() < deadline:
                # A new connection each time: gunicorn's workers take turns accepting.
                reply = httpx.post(
                    f"http://127.0.0.1:{port}/api/counter", cookies=browser.cookies, timeout=30
                ).json()
                counter += 1
                assert reply["counter"] == counter
                pids.add(reply["pid"])
            assert len(pids) == 2, "only one worker answered"
            state = browser.get("/api/state").json()
            assert (state["user"], state["counter"], state["framework"]) == ("gus", counter, "django")
    finally:
        child.stop()
        delete_prefix(server_redis_url, prefix)
