"""The Django engine and middleware through Django's test clients (WSGI: Client; ASGI:
AsyncClient), on fakeredis, the real Redis (REDIS_URL) and a Redis Cluster: laziness
and round trips, cookies, Django's auth, per-session expiry, the async API, Redis
outages, settings, binding."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages.storage.session import SessionStorage
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.test import AsyncClient, Client, override_settings
from django.test.client import RequestFactory

from sharedsession import SessionConfig, SessionStore, SetCookie, StoreUnavailableError
from sharedsession.django import (
    SessionData,
    _session_for,
    aget_session,
    config_from_settings,
    get_async_store,
    get_session,
    get_store,
)
from sharedsession.django import SessionStore as DjangoSessionStore
from tests.support import (
    SECRET,
    Backend,
    Log,
    RecordingAsyncRedis,
    RecordingRedis,
    load_scripts,
    valid_cookie,
)

OLD_KEY = "old-signing-key-0123456789abcdef"
# Generous: the clients' timeouts are 0.5 s; a hang would take much longer.
BOUND_SECONDS = 5.0
JSON = "application/json"


class Site:
    """The test views (tests/django_tests/site.py) with sessions on the backend; counts round trips."""

    def __init__(self, backend: Backend, **fields: Any) -> None:
        # Round-trip counts assume the server caches our scripts, as after a first request.
        load_scripts(backend.sync_client())
        self.backend = backend
        self.redis = RecordingRedis(backend.sync_client())
        self.async_logs: list[Log] = []
        self.settings: dict[str, Any] = {
            "redis": self.redis,
            "async_redis": self._async_client,
            "key_prefix": backend.prefix,
            **fields,
        }
        self._override = override_settings(SHAREDSESSION=self.settings)
        self._override.enable()
        self.client = Client(raise_request_exception=False)
        self.aclient = AsyncClient(raise_request_exception=False)

    def _async_client(self) -> RecordingAsyncRedis:
        client = RecordingAsyncRedis(self.backend.async_client())
        self.async_logs.append(client.log)
        return client

    def close(self) -> None:
        self._override.disable()

    @property
    def trips(self) -> list[list[str]]:
        return self.redis.log.trips

    @property
    def async_trips(self) -> list[list[str]]:
        return [trip for log in self.async_logs for trip in log.trips]

    def clear_logs(self) -> None:
        self.redis.log.clear()
        for log in self.async_logs:
            log.clear()

    @property
    def store(self) -> SessionStore:
        return get_store()

    @property
    def config(self) -> SessionConfig:
        return self.store.config

    def cookie(self, client: Client | AsyncClient | None = None) -> str | None:
        morsel = (client or self.client).cookies.get("session")
        return morsel.value if morsel is not None and morsel.value else None

    def create(self, **data: Any) -> str:
        """Store a session holding ``data``; return its cookie value, logs cleared."""
        for key, value in (data or {"n": 1}).items():
            assert self.client.post(f"/set/{key}", json.dumps(value), content_type=JSON).status_code == 200
        cookie = self.cookie()
        assert cookie is not None
        self.clear_logs()
        return cookie

    def stored(self, cookie: str) -> dict[str, Any]:
        """What Redis holds for a cookie, read by another client (not logged)."""
        config = SessionConfig(secret_key=SECRET, redis=self.redis.inner, key_prefix=self.backend.prefix)
        return dict(SessionStore(config).load(cookie))


@pytest.fixture
def site(backend: Backend) -> Iterator[Site]:
    s = Site(backend)
    yield s
    s.close()


def set_cookies(response: HttpResponseBase) -> list[str]:
    return [morsel.OutputString() for morsel in response.cookies.values()]


def attributes(header: str) -> dict[str, str]:
    """A Set-Cookie header's attributes, names lowercased."""
    name_value, *parts = (part.strip() for part in header.split(";"))
    found = {"": name_value}
    for part in parts:
        name, _, value = part.partition("=")
        found[name.lower()] = value
    return found


# -- laziness and round trips --------------------------------------------------------------------


def test_a_view_that_does_not_use_the_session_costs_nothing_even_with_a_valid_cookie(site: Site) -> None:
    site.create(n=1)
    response = site.client.get("/plain")
    assert response.status_code == 200
    assert site.trips == []
    assert set_cookies(response) == []
    assert not response.has_header("Vary")


def test_reading_is_one_round_trip_and_sets_no_cookie(site: Site) -> None:
    site.create(n=1, cart=["apple"])
    response = site.client.get("/read")
    assert response.json() == {"n": 1, "cart": ["apple"]}
    assert site.trips == [["EVALSHA"]]
    assert set_cookies(response) == []
    assert "Cookie" in response["Vary"]


def test_no_cookie_and_nothing_stored_costs_nothing(site: Site) -> None:
    response = site.client.get("/read")
    assert response.json() == {}
    assert site.trips == []
    assert set_cookies(response) == []


def test_a_forged_cookie_costs_nothing_and_is_never_adopted(site: Site) -> None:
    site.client.cookies["session"] = "x" * 40 + ".forged.cookie"
    assert site.client.get("/read").json() == {}
    assert site.client.get("/about").json()["key"] is None
    assert site.trips == []


def test_the_first_write_creates_the_session_with_the_cookie_every_adapter_sends(site: Site) -> None:
    response = site.client.post("/set/cart", ["apple"], content_type=JSON)
    assert site.trips == [["EVALSHA"]]  # CREATE
    (header,) = set_cookies(response)
    cookie = site.cookie()
    assert cookie is not None
    ours = attributes(site.store.cookie_header(SetCookie(cookie, 2 * 14 * 24 * 3600)))
    theirs = attributes(header)
    assert theirs.keys() == ours.keys()  # name, Max-Age, Expires, Path, HttpOnly, SameSite
    assert {k: v for k, v in theirs.items() if k != "expires"} == {
        k: v for k, v in ours.items() if k != "expires"
    }
    assert "Cookie" in response["Vary"]
    assert site.client.get("/read").json() == {"cart": ["apple"]}


def test_an_update_writes_once_and_sets_no_cookie(site: Site) -> None:
    cookie = site.create(n=1)
    response = site.client.post("/set/n", 2, content_type=JSON)
    assert site.trips == [["EVALSHA"], ["EVALSHA"]]  # load, then the guarded update
    assert set_cookies(response) == []
    assert site.stored(cookie) == {"n": 2}


def test_in_place_edits_are_saved_without_setting_modified(site: Site) -> None:
    cookie = site.create(cart=["apple"])
    site.client.post("/append", '"pear"', content_type=JSON)
    assert site.stored(cookie) == {"cart": ["apple", "pear"]}


# -- the session's life from views -----------------------------------------------------------------


def test_cycle_key_regenerates_at_once_and_links_the_user(site: Site) -> None:
    before = site.create(cart=["apple"])
    response = site.client.post("/login/alice")
    (header,) = set_cookies(response)
    after = site.cookie()
    assert after is not None
    assert after != before
    assert after in header
    assert site.stored(before) == {}  # the old key died at cycle_key()
    assert site.client.get("/read").json() == {"cart": ["apple"], "user": "alice"}
    about = site.client.get("/about").json()
    assert (about["key"], about["user_id"]) == (after, "alice")
    assert [info.handle for info in site.store.sessions_of("alice")] == [about["handle"]]


def test_flush_destroys_the_session_and_expires_the_cookie(site: Site) -> None:
    site.client.post("/login/bob")
    cookie = site.cookie()
    assert cookie is not None
    response = site.client.post("/logout")
    (header,) = set_cookies(response)
    assert header.startswith("session=;") or header.startswith('session="";')
    assert attributes(header)["max-age"] == "0"
    assert site.cookie() is None
    assert site.stored(cookie) == {}
    assert site.store.sessions_of("bob") == []


def test_a_view_that_raises_saves_nothing(site: Site) -> None:
    cookie = site.create(n=1)
    response = site.client.post("/fail")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert site.trips == [["EVALSHA"]]  # the load; no write
    assert site.stored(cookie) == {"n": 1}


def test_a_request_never_revives_a_session_ended_while_it_ran(site: Site) -> None:
    cookie = site.create(n=1)
    response = site.client.post("/race")
    assert response.status_code == 200  # Django's own middleware would answer 400
    assert set_cookies(response) == []
    assert site.trips == [["EVALSHA"], ["EVALSHA"], ["EVALSHA"]]  # load, revoke, one refused update
    assert site.stored(cookie) == {}


def test_djangos_test_client_login_and_session_work(site: Site) -> None:
    user = User.objects.create(username="tess")
    try:
        site.client.force_login(user)
        assert site.client.get("/auth/me").json() == {"username": "tess"}
        session = site.client.session  # Django's idiom: change it, save it, send the next request
        session["note"] = "from the test"
        session.save()
        assert site.client.get("/read").json()["note"] == "from the test"
        other = Client()
        stored = other.session  # no cookie yet: Django's client makes and saves an empty session
        assert stored.session_key is not None
        assert other.cookies["session"].value == stored.session_key
    finally:
        user.delete()


# -- Django's auth ------------------------------------------------------------------------------------


@pytest.fixture
def users() -> Iterator[list[str]]:
    """Usernames a test creates; deleted afterwards (the database is shared by the run)."""
    names: list[str] = []
    yield names
    User.objects.filter(username__in=names).delete()


def test_auth_login_links_the_session_to_the_users_pk(site: Site, users: list[str]) -> None:
    users.append("dora")
    site.create(cart=["apple"])
    before = site.cookie()
    reply = site.client.post("/auth/login/dora").json()
    pk = str(reply["pk"])
    assert reply["user_id"] == pk  # linked in the view already
    assert site.cookie() != before
    assert site.client.get("/auth/me").json() == {"username": "dora"}
    (info,) = site.store.sessions_of(pk)
    assert info.handle == site.client.get("/about").json()["handle"]
    stored = site.stored(str(site.cookie()))
    assert stored["_auth_user_id"] == pk
    assert stored["cart"] == ["apple"]  # kept across login, as Django keeps it


def test_auth_logout_ends_the_session_and_a_message_survives_in_a_new_one(
    site: Site, users: list[str]
) -> None:
    users.append("eve")
    reply = site.client.post("/auth/login/eve").json()
    logged_in = site.cookie()
    assert logged_in is not None
    response = site.client.post("/auth/logout")
    assert response.status_code == 200
    assert site.stored(logged_in) == {}
    assert site.store.sessions_of(str(reply["pk"])) == []
    assert site.cookie() not in (None, logged_in)  # a new session, holding the message
    request = RequestFactory().get("/")
    request.session = DjangoSessionStore(site.cookie())
    assert [str(m) for m in SessionStorage(request)] == ["logged out"]
    assert site.client.get("/auth/me").json() == {"username": None}


def test_revoke_user_logs_a_django_user_out_everywhere(site: Site, users: list[str]) -> None:
    users.append("fay")
    laptop, phone = Client(), Client()
    pk = str(laptop.post("/auth/login/fay").json()["pk"])
    phone.post("/auth/login/fay")
    assert len(site.store.sessions_of(pk)) == 2
    assert site.store.revoke_user(pk) == 2
    for browser in (laptop, phone):
        assert browser.get("/auth/me").json() == {"username": None}


# -- per-session expiry (set_expiry) ---------------------------------------------------------------------


def test_set_expiry_zero_sends_a_browser_session_cookie(site: Site) -> None:
    (header,) = set_cookies(site.client.post("/expiry/0"))
    assert "max-age" not in attributes(header)
    assert "expires" not in attributes(header)
    assert site.client.get("/about").json()["browser_close"] is True


def test_expire_at_browser_close_applies_to_every_cookie(site: Site) -> None:
    with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=True):
        (header,) = set_cookies(site.client.post("/set/n", 1, content_type=JSON))
        assert "max-age" not in attributes(header)
        (header,) = set_cookies(site.client.post("/login/gus"))
        assert "max-age" not in attributes(header)


def test_set_expiry_seconds_bounds_the_cookie_and_is_resent_on_change(site: Site) -> None:
    (header,) = set_cookies(site.client.post("/expiry/60"))
    assert attributes(header)["max-age"] == "60"
    cookie = site.cookie()
    assert set_cookies(site.client.get("/read")) == []  # unchanged: nothing to re-send
    (header,) = set_cookies(site.client.post("/count"))  # changed: re-sent, as Django does
    assert attributes(header)["max-age"] == "60"
    assert site.cookie() == cookie
    (header,) = set_cookies(site.client.post("/expiry/default"))
    assert attributes(header)["max-age"] == str(2 * 14 * 24 * 3600)


def test_a_session_past_its_set_expiry_date_is_ended(site: Site) -> None:
    site.client.post("/expiry/past")
    cookie = site.cookie()
    assert cookie is not None
    response = site.client.get("/read")
    assert response.json() == {}
    (header,) = set_cookies(response)
    assert attributes(header)["max-age"] == "0"
    assert site.stored(cookie) == {}


# -- the async API, under ASGI --------------------------------------------------------------------------


async def test_async_views_use_the_asyncio_store_only(site: Site) -> None:
    client = site.aclient
    response = await client.post("/async/set/n", 1, content_type=JSON)
    assert response.status_code == 200
    assert len(set_cookies(response)) == 1
    assert (await client.get("/async/read")).json() == {"n": 1}
    assert (await client.get("/async/plain")).status_code == 200
    site.clear_logs()
    assert (await client.get("/async/plain")).status_code == 200
    assert site.async_trips == []
    assert (await client.get("/async/read")).json() == {"n": 1}
    assert site.async_trips == [["EVALSHA"]]
    assert site.trips == []  # the sync store was never used


async def test_async_login_and_logout(site: Site) -> None:
    client = site.aclient
    await client.post("/async/set/cart", ["apple"], content_type=JSON)
    before = site.cookie(client)
    assert (await client.post("/async/login/hal")).status_code == 200
    after = site.cookie(client)
    assert after not in (None, before)
    assert (await client.get("/async/read")).json() == {"cart": ["apple"], "user": "hal"}
    store = get_async_store()
    (info,) = await store.sessions_of("hal")
    assert (await client.post("/async/logout")).status_code == 200
    assert site.cookie(client) is None
    assert await store.sessions_of("hal") == []
    assert info.handle
    assert site.trips == []


async def test_async_auth_login_links_the_user(site: Site, users: list[str]) -> None:
    users.append("ivy")
    reply = (await site.aclient.post("/async/auth/login/ivy")).json()
    assert reply["user_id"] == str(reply["pk"])
    assert len(await get_async_store().sessions_of(reply["user_id"])) == 1
    assert (await site.aclient.post("/async/auth/logout")).status_code == 200
    assert await get_async_store().sessions_of(reply["user_id"]) == []


async def test_sync_views_under_asgi_are_saved_by_the_asyncio_store(site: Site) -> None:
    response = await site.aclient.post(
        "/set/n", 5, content_type=JSON
    )  # a sync view, run by Django in a thread
    assert response.status_code == 200
    assert site.trips == []  # loaded lazily: nothing read, nothing written by the sync store
    assert site.async_trips == [["EVALSHA"]]  # the save, at the response
    assert (await site.aclient.get("/async/read")).json() == {"n": 5}


async def test_cookies_split_over_several_headers_are_read_under_asgi(site: Site) -> None:
    cookie = site.create(n=1)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [(b"cookie", b"theme=dark"), (b"cookie", f"session={cookie}".encode())],  # HTTP/2 style
    }
    request = ASGIRequest(scope, io.BytesIO())
    assert request.META["HTTP_COOKIE"] == f"theme=dark,session={cookie}"  # Django's join
    session = _session_for(request)
    assert (await session.aget("n"), session.session_key) == (1, cookie)


async def test_aget_session_loads_once_then_everything_is_in_memory(site: Site) -> None:
    cookie = site.create(n=1)
    request = RequestFactory().get("/")
    request.session = DjangoSessionStore(cookie)
    session = await aget_session(request)
    assert session.get("n") == 1
    assert session.session_key == cookie
    assert session.handle is not None
    assert site.trips == []
    assert len(site.async_trips) == 1


# -- Redis down -------------------------------------------------------------------------------------------


@pytest.fixture
def down(closed_port: int) -> Iterator[Client]:
    dead = {"redis_url": f"redis://127.0.0.1:{closed_port}/0", "redis_timeout": 0.5}
    with override_settings(SHAREDSESSION=dead):
        client = Client(raise_request_exception=False)
        client.cookies["session"] = valid_cookie(config_from_settings().config)
        yield client
    get_store().close()


def test_redis_down_a_session_view_gets_a_fast_503(down: Client) -> None:
    for path in ("/read", "/append"):
        started = time.monotonic()
        response = down.post(path, '"x"', content_type=JSON)
        assert time.monotonic() - started < BOUND_SECONDS
        assert response.status_code == 503
        assert response["Retry-After"].isdigit()
        assert response["Content-Type"].startswith("text/plain")
        assert set_cookies(response) == []


def test_redis_down_a_failed_save_gets_a_503(down: Client) -> None:
    down.cookies.clear()  # no cookie: loading needs no Redis, saving does
    response = down.post("/set/n", 1, content_type=JSON)
    assert response.status_code == 503
    assert set_cookies(response) == []


def test_redis_down_views_without_the_session_keep_working(down: Client) -> None:
    response = down.get("/plain")
    assert response.status_code == 200
    assert response.content == b"no session here"


def test_redis_down_outside_a_view_is_a_503_too(down: Client) -> None:
    middleware = ["sharedsession.django.SessionMiddleware", "tests.django_tests.test_engine.touch_session"]
    with override_settings(MIDDLEWARE=middleware):
        response = down.get("/plain")
    assert response.status_code == 503


async def test_redis_down_async_views_get_a_503(closed_port: int) -> None:
    dead = {"redis_url": f"redis://127.0.0.1:{closed_port}/0", "redis_timeout": 0.5}
    with override_settings(SHAREDSESSION=dead):
        client = AsyncClient(raise_request_exception=False)
        client.cookies["session"] = valid_cookie(config_from_settings().config)
        assert (await client.get("/async/read")).status_code == 503
        assert (await client.get("/async/plain")).status_code == 200
        assert (await client.get("/read")).status_code == 503  # a sync view under ASGI


def unavailable(request: HttpRequest, exception: StoreUnavailableError) -> HttpResponse:
    return HttpResponse("sessions are down", status=503, headers={"Retry-After": "30"})


def test_the_unavailable_view_can_be_replaced(closed_port: int) -> None:
    dead = {
        "redis_url": f"redis://127.0.0.1:{closed_port}/0",
        "redis_timeout": 0.5,
        "unavailable_view": "tests.django_tests.test_engine.unavailable",
    }
    with override_settings(SHAREDSESSION=dead):
        client = Client(raise_request_exception=False)
        client.cookies["session"] = valid_cookie(config_from_settings().config)
        response = client.get("/read")
        assert (response.status_code, response.content, response["Retry-After"]) == (
            503,
            b"sessions are down",
            "30",
        )
    get_store().close()


def touch_session(get_response: Any) -> Any:
    """A middleware after ours that reads the session before the view runs."""

    def middleware(request: HttpRequest) -> HttpResponse:
        request.session.get("n")
        response: HttpResponse = get_response(request)
        return response

    return middleware


# -- settings ------------------------------------------------------------------------------------------------


def test_settings_come_from_djangos_session_settings_and_sharedsession() -> None:
    with override_settings(
        SESSION_COOKIE_AGE=600,
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_DOMAIN="example.org",
        SECRET_KEY_FALLBACKS=[OLD_KEY],
        SHAREDSESSION={
            "redis_url": "redis://redis.internal:6379/4",
            "absolute_timeout": 3600,
            "bind_ip": "subnet",
        },
    ):
        config = config_from_settings().config
    assert config.secret_keys == (SECRET, OLD_KEY)
    assert (config.cookie_name, config.idle_timeout, config.cookie_secure) == ("session", 600, True)
    assert (config.cookie_samesite, config.cookie_domain, config.cookie_httponly) == (
        "Strict",
        "example.org",
        True,
    )
    assert (config.redis_url, config.absolute_timeout, config.bind_ip) == (
        "redis://redis.internal:6379/4",
        3600,
        "subnet",
    )


def test_sharedsession_keys_win_and_samesite_false_drops_the_attribute() -> None:
    with override_settings(
        SESSION_COOKIE_SAMESITE=False,
        SESSION_COOKIE_NAME="sessionid",
        SHAREDSESSION={"cookie_name": "ours", "idle_timeout": 60, "secret_key": ["k" * 32]},
    ):
        config = config_from_settings().config
    assert (config.cookie_samesite, config.cookie_name, config.idle_timeout) == (None, "ours", 60)
    assert config.secret_keys == ("k" * 32,)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"SHAREDSESSION": {"idle_timout": 60}},
            r"unknown key\(s\) \['idle_timout'\]; known: .*idle_timeout",
        ),
        ({"SHAREDSESSION": {"idle_timeout": "60"}}, r"SHAREDSESSION\['idle_timeout'\].*number of seconds"),
        ({"SESSION_COOKIE_AGE": 0}, r"settings.SESSION_COOKIE_AGE.*idle_timeout"),
        ({"SESSION_COOKIE_SAMESITE": "Sideways"}, r"settings.SESSION_COOKIE_SAMESITE"),
        ({"SHAREDSESSION": ["redis_url"]}, r"must be a dict"),
        ({"SHAREDSESSION": {"bind_ip": "sometimes"}}, r"bind_ip"),
        ({"SHAREDSESSION": {"async_redis": 42}}, r"async_redis"),
        ({"SHAREDSESSION": {"unavailable_view": "no.such.view"}}, r"unavailable_view"),
    ],
)
def test_a_bad_setting_is_improperly_configured_naming_it(settings: dict[str, Any], message: str) -> None:
    with override_settings(**settings), pytest.raises(ImproperlyConfigured, match=message):
        config_from_settings()


def test_a_bad_setting_fails_when_the_middleware_loads() -> None:
    with override_settings(SHAREDSESSION={"idle_timeout": -1}), pytest.raises(ImproperlyConfigured):
        Client().get("/plain")


async def test_a_ready_sync_client_needs_an_async_one_for_the_async_api(backend: Backend) -> None:
    sync_only = {"redis": backend.sync_client(), "key_prefix": backend.prefix}
    with override_settings(SHAREDSESSION=sync_only), pytest.raises(ImproperlyConfigured, match="async_redis"):
        get_async_store()
    async_only = {"redis": backend.async_client()}
    with (
        override_settings(SHAREDSESSION=async_only),
        pytest.raises(ImproperlyConfigured, match="synchronous"),
    ):
        config_from_settings()


def test_secret_key_fallbacks_rotate_keys(backend: Backend) -> None:
    fields = {"redis": backend.sync_client(), "key_prefix": backend.prefix}
    browser = Client()
    with override_settings(SECRET_KEY=OLD_KEY, SHAREDSESSION=fields):
        browser.post("/set/n", 1, content_type=JSON)
    with override_settings(SECRET_KEY=SECRET, SECRET_KEY_FALLBACKS=[OLD_KEY], SHAREDSESSION=fields):
        assert browser.get("/read").json() == {"n": 1}  # the old key still verifies
        browser.post("/login/carol")  # a new cookie: signed with the new key
    with override_settings(SECRET_KEY=SECRET, SHAREDSESSION=fields):
        assert browser.get("/read").json() == {"n": 1, "user": "carol"}
    with override_settings(SECRET_KEY=OLD_KEY, SHAREDSESSION=fields):
        assert browser.get("/read").json() == {}  # the retired key alone cannot read it


# -- binding and the request's client ----------------------------------------------------------------------


def test_binding_believes_x_forwarded_for_only_from_trusted_proxies(backend: Backend) -> None:
    site = Site(backend, bind_ip="exact", trusted_proxies=["10.0.0.0/8"])
    try:

        def via(peer: str, forwarded_for: str | None = None) -> Any:
            if forwarded_for is None:
                return site.client.get("/read", REMOTE_ADDR=peer).json()
            return site.client.get("/read", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded_for).json()

        site.client.post(
            "/set/n", 1, content_type=JSON, REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.5"
        )
        assert via("10.9.9.9", "198.51.100.1, 203.0.113.5") == {"n": 1}  # another proxy hop
        assert via("203.0.113.5") == {"n": 1}  # the client itself, no proxy
        assert via("198.51.100.1", "203.0.113.5") == {}  # an untrusted peer cannot claim an address
        assert via("10.1.2.3", "198.51.100.7") == {}  # a different client behind our proxy
    finally:
        site.close()


def test_get_session_explains_a_missing_middleware() -> None:
    request = RequestFactory().get("/")
    with pytest.raises(RuntimeError, match=r"sharedsession.django.SessionMiddleware"):
        get_session(request)


def test_the_session_data_follows_djangos_login_key() -> None:
    data = SessionData()
    data["_auth_user_id"] = "42"
    assert data.user_id == "42"
    data.update({"other": 1})
    assert data.user_id == "42"
    with pytest.raises(TypeError):
        data.update({"_auth_user_id": "7", "bad": {1, 2}})  # all or nothing, the link included
    assert (data.user_id, data["_auth_user_id"]) == ("42", "42")
    assert data.pop("_auth_user_id") == "42"
    assert data.user_id is None
    data["_auth_user_id"] = 9
    data.user_id = "someone else"  # set by hand: removing the login key leaves it
    del data["_auth_user_id"]
    assert data.user_id == "someone else"
    data["_auth_user_id"] = "5"
    data.clear()
    assert data.user_id is None


def test_the_cookie_morsel_renders_what_the_store_renders(site: Site) -> None:
    response = site.client.post("/set/n", 1, content_type=JSON)
    (header,) = set_cookies(response)
    jar: SimpleCookie = SimpleCookie()
    jar.load(header)
    assert jar["session"].value == site.cookie()


# -- session limits ------------------------------------------------------------------------------------


def test_a_login_past_the_session_limit_is_a_403_or_the_views_own_answer(
    backend: Backend, users: list[str]
) -> None:
    users.append("una")
    site = Site(backend, max_sessions_per_user=1, on_session_limit="refuse")
    try:
        laptop, phone = Client(raise_request_exception=False), Client(raise_request_exception=False)
        assert laptop.post("/auth/login/una").status_code == 200
        refused = phone.post("/auth/login/una")  # saved by the middleware: refused there
        assert refused.status_code == 403
        assert b"log out of another one first" in refused.content
        assert "session" not in refused.cookies
        answered = phone.post("/auth/login-checked/una")  # request.session.save() in the view
        assert (answered.status_code, answered.json()) == (409, {"error": "too many devices", "limit": 1})
        assert "session" not in answered.cookies  # nothing saved after the refusal
        assert phone.get("/auth/me").json() == {"username": None}
        assert laptop.get("/auth/me").json() == {"username": "una"}
    finally:
        site.close()


def test_a_login_past_the_session_limit_ends_the_oldest_session(backend: Backend, users: list[str]) -> None:
    users.append("vic")
    site = Site(backend, max_sessions_per_user=1)
    try:
        laptop, phone = Client(raise_request_exception=False), Client(raise_request_exception=False)
        assert laptop.post("/auth/login/vic").status_code == 200
        assert phone.post("/auth/login/vic").status_code == 200
        assert laptop.get("/auth/me").json() == {"username": None}  # evicted: anonymous now
        assert phone.get("/auth/me").json() == {"username": "vic"}
    finally:
        site.close()
