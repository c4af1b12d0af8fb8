"""The Flask adapter through Flask's test client, on fakeredis and (with
REDIS_URL) a real Redis: laziness and round trips, cookies, the session's
life from views, what a failing view saves, Redis outages, settings from
app.config, and the client address behind proxies."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import flask
import pytest
from flask import Flask, abort, jsonify, request
from flask.testing import FlaskClient
from werkzeug.middleware.proxy_fix import ProxyFix

from sharedsession import SessionConfig, SessionDataError, SessionStore, StoreUnavailableError
from sharedsession._core import scripts
from sharedsession.flask import FlaskSession, SharedSession, SharedSessionInterface, config_from_app, session
from tests.support import SECRET, Backend, FakeClock, RecordingRedis, valid_cookie

OLD_KEY = "old-signing-key-0123456789abcdef"
# Generous: the client's timeouts are 0.5 s; a hang would take much longer.
BOUND_SECONDS = 5.0


class Teapot(Exception):
    """An error the test app answers with its own handler."""


def add_routes(app: Flask) -> None:
    """The views the tests drive; each uses the session in one way."""

    @app.get("/plain")
    def plain() -> str:
        return "no session here"

    @app.get("/read")
    def read() -> Any:
        return jsonify(dict(session))

    @app.post("/set/<key>")
    def set_(key: str) -> str:
        session[key] = request.get_json()
        return "ok"

    @app.post("/append")
    def append() -> str:
        session.setdefault("cart", [])
        session["cart"].append(request.get_json())  # in place, no modified = True
        return "ok"

    @app.post("/login/<user>")
    def login(user: str) -> str:
        session.regenerate()
        session.user_id = user
        session["user"] = user
        return "ok"

    @app.post("/logout")
    def logout() -> str:
        session.destroy()
        return "ok"

    @app.get("/about")
    def about() -> Any:
        return jsonify(
            new=session.new,
            handle=session.handle,
            user_id=session.user_id,
            permanent=session.permanent,
            modified=session.modified,
        )

    @app.post("/fail")
    def fail() -> str:
        session["half"] = "written"
        session.regenerate()
        raise RuntimeError("the view fails after changing the session")

    @app.post("/abort")
    def abort_() -> str:
        session["attempts"] = session.get("attempts", 0) + 1
        abort(403)

    @app.post("/teapot")
    def teapot() -> str:
        session["brewed"] = True
        raise Teapot

    @app.errorhandler(Teapot)
    def on_teapot(error: Teapot) -> tuple[str, int]:
        return "short and stout", 418

    @app.post("/race")
    def race() -> str:
        session.get("n")
        ext: SharedSession = app.extensions["sharedsession"]
        ext.store.revoke(str(session.handle))  # logged out elsewhere meanwhile
        session["n"] = 99
        return "ok"

    @app.post("/unstorable")
    def unstorable() -> str:
        session["ok"] = 1
        session.setdefault("bag", []).append({1, 2})  # a set: found unstorable at save
        return "ok"


class Harness:
    """An app with SharedSession on the backend, a test client, and the Redis log."""

    def __init__(self, backend: Backend, **settings: Any) -> None:
        # Round-trip counts assume the server caches our scripts, as it does
        # after the first request (the first use costs one more trip).
        loader = backend.sync_client()
        for script in scripts.ALL:
            loader.script_load(script.source)
        self.redis = RecordingRedis(backend.sync_client())
        self.config = SessionConfig(
            secret_key=settings.pop("secret_key", SECRET),
            redis=self.redis,
            key_prefix=backend.prefix,
            **settings,
        )
        self.app = Flask(__name__)
        self.ext = SharedSession(self.app, self.config)
        add_routes(self.app)
        self.client = self.app.test_client()

    @property
    def trips(self) -> list[list[str]]:
        return self.redis.log.trips

    @property
    def store(self) -> SessionStore:
        return self.ext.store

    def cookie(self) -> str | None:
        cookie = self.client.get_cookie(self.config.cookie_name)
        return None if cookie is None else cookie.value

    def create(self, **data: Any) -> str:
        """Store a session holding ``data``; return its cookie value, log cleared."""
        for key, value in (data or {"n": 1}).items():
            assert self.client.post(f"/set/{key}", json=value).status_code == 200
        cookie = self.cookie()
        assert cookie is not None
        self.redis.log.clear()
        return cookie

    def stored(self, cookie: str) -> dict[str, Any]:
        """What Redis holds for a cookie, read by another client (no log)."""
        return dict(SessionStore(dataclasses.replace(self.config, redis=self.redis.inner)).load(cookie))


@pytest.fixture
def h(backend: Backend) -> Harness:
    return Harness(backend)


def set_cookies(response: Any) -> list[str]:
    return list(response.headers.getlist("Set-Cookie"))


# -- laziness and round trips -------------------------------------------------------


def test_a_view_that_does_not_use_the_session_costs_nothing_even_with_a_valid_cookie(h: Harness) -> None:
    h.create(n=1)
    response = h.client.get("/plain")
    assert response.status_code == 200
    assert h.trips == []
    assert set_cookies(response) == []
    assert "Cookie" not in response.headers.get("Vary", "")


def test_reading_is_one_round_trip_and_sets_no_cookie(h: Harness) -> None:
    h.create(n=1, cart=["apple"])
    response = h.client.get("/read")
    assert response.get_json() == {"n": 1, "cart": ["apple"]}
    assert h.trips == [["EVALSHA"]]
    assert set_cookies(response) == []
    assert "Cookie" in response.headers["Vary"]


def test_no_cookie_and_nothing_stored_costs_nothing(h: Harness) -> None:
    response = h.client.get("/read")
    assert response.get_json() == {}
    assert h.trips == []
    assert set_cookies(response) == []


def test_a_forged_cookie_costs_nothing(h: Harness) -> None:
    h.client.set_cookie("session", "forged.cookie.value")
    assert h.client.get("/read").get_json() == {}
    assert h.trips == []


def test_the_first_write_creates_the_session_and_sets_the_cookie(h: Harness) -> None:
    response = h.client.post("/set/cart", json=["apple"])
    assert h.trips == [["EVALSHA"]]  # CREATE
    (header,) = set_cookies(response)
    assert header.startswith("session=")
    attributes = {part.strip().split("=")[0] for part in header.split(";")[1:]}
    assert attributes >= {"Expires", "Max-Age", "Path", "HttpOnly", "SameSite"}
    assert f"Max-Age={2 * 14 * 24 * 3600}" in header
    assert "SameSite=Lax" in header
    assert "Cookie" in response.headers["Vary"]
    assert h.client.get("/read").get_json() == {"cart": ["apple"]}


def test_an_update_writes_once_and_sets_no_cookie(h: Harness) -> None:
    cookie = h.create(n=1)
    response = h.client.post("/set/n", json=2)
    assert h.trips == [["EVALSHA"], ["EVALSHA"]]  # load, then the guarded update
    assert set_cookies(response) == []
    assert h.stored(cookie) == {"n": 2}


def test_in_place_edits_are_saved_without_setting_modified(h: Harness) -> None:
    cookie = h.create(cart=["apple"])
    h.client.post("/append", json="pear")
    assert h.stored(cookie) == {"cart": ["apple", "pear"]}


def test_the_cookie_is_renewed_once_it_is_older_than_the_idle_timeout(backend: Backend) -> None:
    h = Harness(backend, idle_timeout=100)
    clock = FakeClock()
    interface = h.app.session_interface
    assert isinstance(interface, SharedSessionInterface)
    interface.store = SessionStore(h.config, clock=clock)  # the same store, on a clock we move
    h.create(n=1)
    clock.advance(50)
    assert set_cookies(h.client.get("/read")) == []
    clock.advance(60)
    (header,) = set_cookies(h.client.get("/read"))
    assert "Max-Age=200" in header
    assert h.client.get("/read").get_json() == {"n": 1}


# -- the test client's session_transaction -------------------------------------------


def test_session_transaction_writes_and_reads_the_stored_session(h: Harness) -> None:
    with h.client.session_transaction() as sess:
        assert isinstance(sess, FlaskSession)
        assert sess.new
        sess["cart"] = ["apple"]
    assert h.client.get("/read").get_json() == {"cart": ["apple"]}
    h.client.post("/set/n", json=3)
    with h.client.session_transaction() as sess:
        assert dict(sess) == {"cart": ["apple"], "n": 3}
        assert not sess.new


# -- the session's life from views -------------------------------------------------------


def test_flags_permanent_new_modified(h: Harness) -> None:
    assert h.client.get("/about").get_json() == {
        "new": True,
        "handle": None,
        "user_id": None,
        "permanent": True,
        "modified": False,
    }
    h.create(n=1)
    about = h.client.get("/about").get_json()
    assert (about["new"], about["modified"]) == (False, False)
    with h.client.session_transaction() as sess:
        sess.permanent = True  # accepted: the cookie always has a Max-Age
        with pytest.raises(ValueError, match="permanent"):
            sess.permanent = False
        sess["x"] = 1
        assert sess.modified
        assert "_permanent" not in sess


def test_login_regenerates_links_the_user_and_kills_the_old_cookie(h: Harness) -> None:
    before = h.create(cart=["apple"])
    response = h.client.post("/login/alice")
    (header,) = set_cookies(response)
    after = h.cookie()
    assert after is not None
    assert after != before
    assert after in header
    assert h.client.get("/read").get_json() == {"cart": ["apple"], "user": "alice"}
    about = h.client.get("/about").get_json()
    assert about["user_id"] == "alice"
    assert [info.handle for info in h.store.sessions_of("alice")] == [about["handle"]]
    assert h.stored(before) == {}


def test_logout_destroys_the_session_and_expires_the_cookie(h: Harness) -> None:
    h.client.post("/login/bob")
    cookie = h.cookie()
    assert cookie is not None
    response = h.client.post("/logout")
    (header,) = set_cookies(response)
    assert header.startswith("session=;")
    assert "Max-Age=0" in header
    assert h.cookie() is None
    assert h.stored(cookie) == {}
    assert h.store.sessions_of("bob") == []


def test_the_typed_proxy_is_flasks_session() -> None:
    assert session is flask.session


# -- what a failing view saves --------------------------------------------------------------


def test_a_view_that_raises_saves_nothing(h: Harness) -> None:
    cookie = h.create(n=1)
    response = h.client.post("/fail")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert h.trips == [["EVALSHA"]]  # the load; no write
    assert h.stored(cookie) == {"n": 1}  # nor was it regenerated
    assert h.cookie() == cookie


def test_a_new_session_is_not_created_by_a_view_that_raises(h: Harness) -> None:
    response = h.client.post("/fail")
    assert response.status_code == 500
    assert set_cookies(response) == []
    assert h.trips == []


def test_abort_saves_the_session_like_any_response(h: Harness) -> None:
    cookie = h.create(n=1)
    assert h.client.post("/abort").status_code == 403
    assert h.client.post("/abort").status_code == 403
    assert h.stored(cookie) == {"n": 1, "attempts": 2}


def test_a_request_never_revives_a_session_ended_while_it_ran(h: Harness) -> None:
    cookie = h.create(n=1)
    response = h.client.post("/race")
    assert response.status_code == 200
    assert set_cookies(response) == []
    assert h.trips == [
        ["EVALSHA"],
        ["EVALSHA"],
        ["EVALSHA"],
    ]  # load, revoke, one refused update (not retried)
    assert h.stored(cookie) == {}


def test_an_error_the_app_handles_saves_the_session(h: Harness) -> None:
    response = h.client.post("/teapot")
    assert response.status_code == 418
    assert len(set_cookies(response)) == 1
    assert h.client.get("/read").get_json() == {"brewed": True}


@pytest.mark.parametrize("handled", [False, True])
def test_an_unstorable_in_place_edit_fails_the_request_and_saves_nothing(
    backend: Backend, handled: bool
) -> None:
    h = Harness(backend)
    if handled:

        @h.app.errorhandler(SessionDataError)
        def unstorable(error: SessionDataError) -> tuple[str, int]:
            return f"cannot store: {error}", 422

    cookie = h.create(n=1)
    response = h.client.post("/unstorable")
    assert response.status_code == (422 if handled else 500)
    if handled:
        assert b"bag" in response.data
    assert set_cookies(response) == []
    assert h.trips == [["EVALSHA"]]  # the load only
    assert h.stored(cookie) == {"n": 1}


def test_changes_made_by_after_request_functions_are_saved(backend: Backend) -> None:
    config = SessionConfig(secret_key=SECRET, redis=backend.sync_client(), key_prefix=backend.prefix)
    app = Flask(__name__)

    @app.after_request
    def registered_before(response: flask.Response) -> flask.Response:
        session["before"] = True  # runs after the extension's save: saved by save_session
        return response

    SharedSession(app, config)

    @app.after_request
    def registered_after(response: flask.Response) -> flask.Response:
        session["after"] = True
        return response

    add_routes(app)
    client = app.test_client()
    client.get("/plain")
    assert client.get("/read").get_json() == {"before": True, "after": True}


def test_an_after_request_function_that_fails_leaves_nothing_saved(backend: Backend) -> None:
    """Registered before the extension, it runs before the save: its 500 saves nothing."""
    config = SessionConfig(secret_key=SECRET, redis=backend.sync_client(), key_prefix=backend.prefix)
    app = Flask(__name__)
    failing = {"on": False}

    @app.after_request
    def audit(response: flask.Response) -> flask.Response:
        if failing["on"]:
            raise RuntimeError("audit log unreachable")
        return response

    SharedSession(app, config)
    add_routes(app)
    client = app.test_client()
    client.post("/set/n", json=1)
    failing["on"] = True
    response = client.post("/set/n", json=2)
    assert response.status_code == 500
    assert set_cookies(response) == []
    failing["on"] = False
    assert client.get("/read").get_json() == {"n": 1}


def test_the_save_runs_after_blueprint_after_request_functions(backend: Backend) -> None:
    config = SessionConfig(secret_key=SECRET, redis=backend.sync_client(), key_prefix=backend.prefix)
    app = Flask(__name__)
    SharedSession(app, config)
    shop = flask.Blueprint("shop", __name__)

    @shop.route("/buy", methods=["POST"])
    def buy() -> str:
        session["bought"] = True
        return "ok"

    @shop.after_request
    def fails(response: flask.Response) -> flask.Response:
        raise RuntimeError("after the view")

    app.register_blueprint(shop)
    add_routes(app)
    client = app.test_client()
    client.post("/set/n", json=1)
    assert client.post("/buy").status_code == 500
    assert client.get("/read").get_json() == {"n": 1}


# -- Redis down ----------------------------------------------------------------------------------


@pytest.fixture
def down(closed_port: int) -> Iterator[tuple[Flask, FlaskClient]]:
    config = SessionConfig(
        secret_key=SECRET, redis_url=f"redis://127.0.0.1:{closed_port}/0", redis_timeout=0.5
    )
    app = Flask(__name__)
    ext = SharedSession(app, config)
    add_routes(app)
    client = app.test_client()
    client.set_cookie("session", valid_cookie(ext.store.config))  # valid, so it must be looked up
    yield app, client
    ext.store.close()


def test_redis_down_a_session_view_gets_a_fast_503(down: tuple[Flask, FlaskClient]) -> None:
    _, client = down
    for method, path in [("GET", "/read"), ("POST", "/append")]:
        started = time.monotonic()
        response = client.open(path, method=method, json="x")
        assert time.monotonic() - started < BOUND_SECONDS
        assert response.status_code == 503
        assert response.headers["Retry-After"].isdigit()
        assert response.mimetype == "text/plain"
        assert len(response.data) < 200
        assert set_cookies(response) == []


def test_redis_down_a_failed_save_gets_a_503(down: tuple[Flask, FlaskClient]) -> None:
    _, client = down
    client.delete_cookie("session")  # no cookie: loading needs no Redis, saving does
    response = client.post("/set/n", json=1)
    assert response.status_code == 503
    assert set_cookies(response) == []


def test_redis_down_views_without_the_session_keep_working(down: tuple[Flask, FlaskClient]) -> None:
    _, client = down
    response = client.get("/plain")
    assert response.status_code == 200
    assert response.data == b"no session here"


def test_redis_silent_a_second_use_in_the_request_fails_at_once(silent_port: int) -> None:
    config = SessionConfig(
        secret_key=SECRET, redis_url=f"redis://127.0.0.1:{silent_port}/0", redis_timeout=0.2
    )
    app = Flask(__name__)
    ext = SharedSession(app, config)

    @app.get("/retry")
    def retry() -> dict[str, float]:
        timings = []
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError):
                session.get("n")
            timings.append(time.monotonic() - started)
        return {"first": timings[0], "second": timings[1]}

    client = app.test_client()
    client.set_cookie("session", valid_cookie(ext.store.config))
    response = client.get("/retry")
    assert response.status_code == 200  # the view handled it: nothing to save, no 503
    timings = response.get_json()
    assert timings["first"] >= 0.2  # waited for Redis
    assert timings["second"] < 0.1  # did not wait again
    ext.store.close()


@pytest.mark.parametrize("order", ["before", "after"])
def test_the_app_can_replace_the_503_handler(closed_port: int, order: str) -> None:
    config = SessionConfig(
        secret_key=SECRET, redis_url=f"redis://127.0.0.1:{closed_port}/0", redis_timeout=0.5
    )
    app = Flask(__name__)

    def ours(error: StoreUnavailableError) -> tuple[dict[str, str], int]:
        return {"error": "sessions are down"}, 503

    if order == "before":
        app.register_error_handler(StoreUnavailableError, ours)
    ext = SharedSession(app, config)
    if order == "after":
        app.register_error_handler(StoreUnavailableError, ours)
    add_routes(app)
    client = app.test_client()
    client.set_cookie("session", valid_cookie(ext.store.config))
    for response in (client.get("/read"), client.post("/set/n", json=1)):
        assert response.status_code == 503
        assert response.get_json() == {"error": "sessions are down"}
    ext.store.close()


# -- settings from app.config ------------------------------------------------------------------


def flask_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    return app


def test_config_from_app_defaults_and_sharedsession_keys() -> None:
    app = flask_app(
        SECRET_KEY=SECRET,
        SHAREDSESSION_REDIS_URL="redis://redis.internal:6379/4",
        SHAREDSESSION_IDLE_TIMEOUT=600,
        SHAREDSESSION_ABSOLUTE_TIMEOUT=3600,
        SHAREDSESSION_BIND_IP="subnet",
        SHAREDSESSION_TRUSTED_PROXIES=["10.0.0.0/8"],
        SHAREDSESSION_KEY_PREFIX="app:",
    )
    config = config_from_app(app)
    assert config.secret_keys == (SECRET,)
    assert (config.redis_url, config.idle_timeout, config.absolute_timeout) == (
        "redis://redis.internal:6379/4",
        600,
        3600,
    )
    assert (config.bind_ip, config.trusted_proxies, config.key_prefix) == ("subnet", ("10.0.0.0/8",), "app:")
    # Flask's untouched cookie defaults are not ours: SameSite stays Lax, HttpOnly on.
    assert (config.cookie_name, config.cookie_samesite, config.cookie_httponly) == ("session", "Lax", True)
    assert (config.cookie_secure, config.cookie_path, config.cookie_domain) == (False, "/", None)


def test_config_from_app_honours_changed_flask_cookie_keys() -> None:
    app = flask_app(
        SECRET_KEY=SECRET,
        SESSION_COOKIE_NAME="sid",
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_HTTPONLY=True,  # Flask's default: states nothing
        SESSION_COOKIE_DOMAIN="example.org",
        APPLICATION_ROOT="/shop",
    )
    config = config_from_app(app)
    assert (config.cookie_name, config.cookie_secure, config.cookie_samesite) == ("sid", True, "Strict")
    assert (config.cookie_domain, config.cookie_path) == ("example.org", "/shop")
    app.config["SESSION_COOKIE_PATH"] = "/shop/cart"
    assert config_from_app(app).cookie_path == "/shop/cart"


def test_sharedsession_keys_win_over_flask_keys() -> None:
    app = flask_app(
        SECRET_KEY="flask-secret-key-0123456789abcdef",
        SHAREDSESSION_SECRET_KEY=[SECRET, OLD_KEY],
        SESSION_COOKIE_SAMESITE="Strict",
        SHAREDSESSION_COOKIE_SAMESITE=None,
        SESSION_COOKIE_NAME="flask_name",
        SHAREDSESSION_COOKIE_NAME="ours",
    )
    config = config_from_app(app)
    assert config.secret_keys == (SECRET, OLD_KEY)
    assert (config.cookie_samesite, config.cookie_name) == (None, "ours")


def test_config_from_app_refuses_what_it_cannot_honour() -> None:
    with pytest.raises(ValueError, match=r"SHAREDSESSION_IDLE_TIMOUT.*known: .*SHAREDSESSION_IDLE_TIMEOUT"):
        config_from_app(flask_app(SECRET_KEY=SECRET, SHAREDSESSION_IDLE_TIMOUT=60))
    with pytest.raises(ValueError, match="PARTITIONED"):
        config_from_app(flask_app(SECRET_KEY=SECRET, SESSION_COOKIE_PARTITIONED=True))
    with pytest.raises(TypeError, match="idle_timeout"):
        config_from_app(flask_app(SECRET_KEY=SECRET, SHAREDSESSION_IDLE_TIMEOUT="600"))


@pytest.mark.parametrize("secret", [None, ""])
def test_a_missing_secret_fails_at_init_app(secret: str | None) -> None:
    app = flask_app(SECRET_KEY=secret)
    with pytest.raises(ValueError, match=r"secret key.*SECRET_KEY"):
        SharedSession(app)
    assert not isinstance(app.session_interface, SharedSessionInterface)


def test_settings_from_app_config_end_to_end(backend: Backend) -> None:
    app = flask_app(
        SECRET_KEY=SECRET,
        SHAREDSESSION_REDIS=backend.sync_client(),
        SHAREDSESSION_KEY_PREFIX=backend.prefix,
        SHAREDSESSION_IDLE_TIMEOUT=600,
        SESSION_COOKIE_NAME="shop_session",
        SESSION_COOKIE_SECURE=True,
    )
    SharedSession(app)
    add_routes(app)
    client = app.test_client()
    (header,) = set_cookies(client.post("/set/n", json=1, base_url="https://localhost"))
    assert header.startswith("shop_session=")
    assert "Secure" in header
    assert "Max-Age=1200" in header
    assert client.get("/read", base_url="https://localhost").get_json() == {"n": 1}


def test_secret_key_fallbacks_rotate_keys(backend: Backend) -> None:
    def app_with(**keys: Any) -> FlaskClient:
        app = flask_app(
            SHAREDSESSION_REDIS=backend.sync_client(), SHAREDSESSION_KEY_PREFIX=backend.prefix, **keys
        )
        SharedSession(app)
        add_routes(app)
        return app.test_client()

    old = app_with(SECRET_KEY=OLD_KEY)
    old.post("/set/n", json=1)
    old_cookie = old.get_cookie("session")
    assert old_cookie is not None
    rotated = app_with(SECRET_KEY=SECRET, SECRET_KEY_FALLBACKS=[OLD_KEY])
    rotated.set_cookie("session", old_cookie.value)
    assert rotated.get("/read").get_json() == {"n": 1}  # the old key still verifies
    rotated.post("/login/carol")  # a new cookie: signed with the new key
    new_cookie = rotated.get_cookie("session")
    assert new_cookie is not None
    only_new = app_with(SECRET_KEY=SECRET)
    only_new.set_cookie("session", new_cookie.value)
    assert only_new.get("/read").get_json() == {"n": 1, "user": "carol"}
    old.set_cookie("session", new_cookie.value)
    assert old.get("/read").get_json() == {}  # the retired key alone cannot read it


# -- the extension ------------------------------------------------------------------------------------


def test_extension_shape_and_app_factories(backend: Backend) -> None:
    ext = SharedSession()
    apps = []
    for name in ("one", "two"):
        app = flask_app(
            SECRET_KEY=SECRET,
            SHAREDSESSION_REDIS=backend.sync_client(),
            SHAREDSESSION_KEY_PREFIX=f"{backend.prefix}{name}:",
        )
        ext.init_app(app)
        add_routes(app)
        assert app.extensions["sharedsession"] is ext
        assert isinstance(app.session_interface, SharedSessionInterface)
        apps.append(app)
    for app in apps:
        with app.app_context():
            assert ext.store.config.key_prefix == app.config["SHAREDSESSION_KEY_PREFIX"]
    with pytest.raises(RuntimeError, match="no app context"):
        _ = ext.store
    with pytest.raises(RuntimeError, match="already initialised"):
        ext.init_app(apps[0])
    client = apps[0].test_client()
    client.post("/set/n", json=1)
    other = apps[1].test_client()
    other.set_cookie("session", client.get_cookie("session").value)  # type: ignore[union-attr]
    assert other.get("/read").get_json() == {}  # separate prefixes, separate sessions


def test_an_extension_made_without_an_app_has_no_store_until_init_app() -> None:
    ext = SharedSession()
    assert ext.app is None
    with pytest.raises(RuntimeError, match="no app context"):
        _ = ext.store
    with pytest.raises(TypeError, match="SessionConfig"):
        SharedSession(config={"secret_key": SECRET})  # type: ignore[arg-type]


# -- the client's address behind proxies ---------------------------------------------------------------


def test_binding_believes_x_forwarded_for_only_from_trusted_proxies(backend: Backend) -> None:
    h = Harness(backend, bind_ip="exact", trusted_proxies=["10.0.0.0/8"])

    def via(peer: str, forwarded_for: str | None = None) -> Any:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        return h.client.get("/read", environ_base={"REMOTE_ADDR": peer}, headers=headers).get_json()

    h.client.post(
        "/set/n", json=1, environ_base={"REMOTE_ADDR": "10.1.2.3"}, headers={"X-Forwarded-For": "203.0.113.5"}
    )
    assert via("10.9.9.9", "198.51.100.1, 203.0.113.5") == {"n": 1}  # another proxy hop; left is forgeable
    assert via("203.0.113.5") == {"n": 1}  # the client itself, no proxy
    assert via("198.51.100.1", "203.0.113.5") == {}  # an untrusted peer cannot claim an address
    assert via("10.1.2.3", "198.51.100.7") == {}  # a different client behind our proxy


def test_binding_behind_proxyfix_uses_the_address_proxyfix_settled_on(backend: Backend) -> None:
    h = Harness(backend, bind_ip="exact")  # no trusted_proxies: ProxyFix does the trusting
    h.app.wsgi_app = ProxyFix(h.app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    h.client.post(
        "/set/n", json=1, environ_base={"REMOTE_ADDR": "10.1.2.3"}, headers={"X-Forwarded-For": "203.0.113.5"}
    )
    other_hop = {"REMOTE_ADDR": "10.4.4.4"}
    assert h.client.get(
        "/read", environ_base=other_hop, headers={"X-Forwarded-For": "203.0.113.5"}
    ).get_json() == {"n": 1}
    assert (
        h.client.get("/read", environ_base=other_hop, headers={"X-Forwarded-For": "203.0.113.9"}).get_json()
        == {}
    )
