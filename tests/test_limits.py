"""Session limits per user (``max_sessions_per_user``, ``on_session_limit``), on fakeredis,
a real Redis (REDIS_URL) and a Redis Cluster, through both stores; then the races and
half-applied saves, driven one round trip at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import flask
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sharedsession import (
    SessionConfig,
    SessionLimitError,
    SessionStore,
    SetCookie,
)
from sharedsession._core import keys as k
from sharedsession._core import limits
from sharedsession.asgi import SessionMiddleware, get_session, save_session
from sharedsession.flask import SharedSession, session
from tests.support import SECRET, Backend, FakeClock, Harness, Stepper, load_scripts
from tests.support.asgi import recording_client

MakeStore = Callable[..., Harness]


def login(store: Harness, user: str, cookie: str | None = None, **data: Any) -> str:
    """A login as apps write it: regenerate() (if there is a session), link, save; the new cookie."""
    session = store.load(cookie)
    if not session.new:
        session.regenerate()
    session.update(data)
    session.user_id = user
    result = store.save(session)
    assert isinstance(result.cookie, SetCookie)
    return result.cookie.value


def user_of(store: Harness, cookie: str) -> str | None:
    session = store.load(cookie)
    return None if session.new else session.user_id


def handle(store: Harness, cookie: str) -> str:
    parsed = store.signer.unsign(cookie, 10**9)
    assert parsed is not None
    return k.handle_of(parsed[0])


def listed(store: Harness, user: str) -> list[str]:
    return [info.handle for info in store.sessions_of(user)]


# -- the limit, through both stores -------------------------------------------------


def test_the_least_recently_renewed_session_is_ended_when_one_too_many_logs_in(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = make_store(max_sessions_per_user=2, idle_timeout=600)
    laptop = login(store, "ann")
    clock.advance(10)
    phone = login(store, "ann")
    clock.advance(10)
    tablet = login(store, "ann")
    assert user_of(store, laptop) is None  # ended: anonymous on its next request
    assert user_of(store, phone) == "ann"
    assert user_of(store, tablet) == "ann"
    assert listed(store, "ann") == [handle(store, phone), handle(store, tablet)]


def test_a_renewed_session_is_kept_over_one_that_was_not(make_store: MakeStore, clock: FakeClock) -> None:
    """'Oldest' is by the index entry: a session in use renews it (about once per idle period)."""
    store = make_store(max_sessions_per_user=2, idle_timeout=100)
    laptop = login(store, "ann")
    clock.advance(10)
    phone = login(store, "ann")
    clock.advance(150)  # the laptop is used again: its cookie and index entry are renewed
    used = store.load(laptop)
    assert store.save(used).outcome == "renewed"
    clock.advance(10)
    login(store, "ann")
    assert user_of(store, phone) is None  # the one not used since is the one that ends
    assert user_of(store, laptop) == "ann"


def test_refuse_raises_and_leaves_the_session_as_it_was(make_store: MakeStore) -> None:
    store = make_store(max_sessions_per_user=1, on_session_limit="refuse")
    first = login(store, "bob")
    before = store.load(None)
    before["cart"] = ["pear"]
    result = store.save(before)
    assert isinstance(result.cookie, SetCookie)
    anonymous = result.cookie.value
    with pytest.raises(SessionLimitError) as refused:
        login(store, "bob", anonymous)  # regenerate() and link: neither happens
    assert (refused.value.user_id, refused.value.limit) == ("bob", 1)
    kept = store.load(anonymous)
    assert dict(kept) == {"cart": ["pear"]}
    assert kept.user_id is None
    relinking = store.load(anonymous)
    relinking.user_id = "bob"  # a link without regenerate(): refused before anything is written
    with pytest.raises(SessionLimitError):
        store.save(relinking)
    assert store.load(anonymous).user_id is None
    with pytest.raises(SessionLimitError):
        login(store, "bob")  # a new session: created, then deleted again
    assert user_of(store, first) == "bob"
    assert listed(store, "bob") == [handle(store, first)]
    assert store.count() == 2  # bob's, and the anonymous one: nothing left behind


def test_the_limit_is_per_user_and_a_user_under_it_is_not_held_back(make_store: MakeStore) -> None:
    store = make_store(max_sessions_per_user=2, on_session_limit="refuse")
    for user in ("ann", "bob", "ann", "bob"):
        login(store, user)
    assert len(listed(store, "ann")) == len(listed(store, "bob")) == 2


def test_regenerating_a_linked_session_at_the_limit_is_not_a_new_session(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = make_store(max_sessions_per_user=1, on_session_limit="refuse")
    cookie = login(store, "cy", n=1)
    for _ in range(3):
        clock.advance(1)
        cookie = login(store, "cy", cookie)  # regenerate(), same user: replaces its entry
    assert store.load(cookie) == {"n": 1}
    assert listed(store, "cy") == [handle(store, cookie)]


def test_ended_and_regenerated_sessions_do_not_count(make_store: MakeStore, raw: Any) -> None:
    store = make_store(max_sessions_per_user=1, on_session_limit="refuse")
    gone = login(store, "dee")
    raw.delete(store.keys.session(handle(store, gone)))  # expired, or deleted by hand: still listed
    logged_out = login(store, "dee")
    ending = store.load(logged_out)
    ending.destroy()
    store.save(ending)
    again = login(store, "dee")  # neither the missing session nor the logged-out one counts
    assert listed(store, "dee") == [handle(store, again)]


def test_a_session_relinked_to_another_user_is_not_evicted_for_the_first(
    make_store: MakeStore, clock: FakeClock
) -> None:
    store = make_store(max_sessions_per_user=1)
    shared = login(store, "eve")
    moved = store.load(shared)
    moved.user_id = "fay"  # the same device, now another user's (without regenerate())
    store.save(moved)
    # Eve's entry names a session that is not hers: a link to her on its way, for all one
    # can tell yet. It counts, and is not hers to evict.
    with pytest.raises(SessionLimitError):
        login(store, "eve")
    clock.advance(limits.SETTLE_MS / 1000 + 1)  # no link takes that long: it is fay's for good
    again = login(store, "eve")
    assert user_of(store, shared) == "fay"
    assert listed(store, "eve") == [handle(store, again)]


def test_without_a_limit_nothing_changes(make_store: MakeStore) -> None:
    store = make_store()
    cookies = [login(store, "gus") for _ in range(5)]
    assert all(user_of(store, cookie) == "gus" for cookie in cookies)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_sessions_per_user": 0}, "max_sessions_per_user must be 1 or more"),
        ({"max_sessions_per_user": True}, "max_sessions_per_user"),
        ({"max_sessions_per_user": "3"}, "max_sessions_per_user"),
        ({"on_session_limit": "evict_newest"}, "on_session_limit must be one of evict_oldest, refuse"),
    ],
)
def test_bad_settings_are_refused_at_construction(settings: dict[str, Any], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        SessionConfig(secret_key=SECRET, **settings)


# -- races and half-applied saves, one round trip at a time ----------------------------


@pytest.fixture
def replicas(backend: Backend, clock: FakeClock) -> Callable[..., SessionStore]:
    load_scripts(backend.sync_client())

    def make(**settings: Any) -> SessionStore:
        config = SessionConfig(
            secret_key=SECRET, redis=backend.sync_client(), key_prefix=backend.prefix, **settings
        )
        return SessionStore(config, clock=clock)

    return make


def start_login(store: SessionStore, user: str) -> Stepper:
    session = store.load(None)
    session["who"] = user
    session.user_id = user
    return Stepper(store, store._core.save(session))


def cookie_of(result: Any) -> str:
    assert isinstance(result.cookie, SetCookie)
    return str(result.cookie.value)


def live_of(store: SessionStore, user: str) -> list[str]:
    """Handles of the live sessions linked to ``user``, from the keys themselves (not the index)."""
    client: Any = store.config.redis
    found = []
    for key in client.scan_iter(match=store.keys.session_pattern, count=500):
        fields = client.hmget(key, k.VERSION, k.USER)
        if fields[0] is not None and fields[1] == user.encode():
            found.append(key.decode().rpartition(":")[2])
    return sorted(found)


def linked(store: SessionStore, user: str) -> str:
    """A new session linked to ``user``, saved; its handle."""
    session = store.load(None)
    session.user_id = user
    store.save(session)
    assert session.handle is not None
    return session.handle


def handle_of_result(store: SessionStore, result: Any) -> str:
    assert isinstance(result.cookie, SetCookie)
    parsed = store._core.signer.unsign(result.cookie.value, 10**9)
    assert parsed is not None
    return k.handle_of(parsed[0])


@pytest.mark.parametrize("policy", ["evict_oldest", "refuse"])
def test_two_logins_racing_for_the_last_place_do_not_both_get_in(
    replicas: Callable[..., SessionStore], clock: FakeClock, policy: str
) -> None:
    """Both created their sessions and reach the index with one place left: one script decides."""
    one, two = (replicas(max_sessions_per_user=2, on_session_limit=policy) for _ in range(2))
    first = linked(one, "hal")
    clock.advance(1)
    a, b = start_login(one, "hal"), start_login(two, "hal")
    a.trip()  # CREATE
    b.trip()  # CREATE
    a.trip()  # INDEX_JOIN: the last place is a's
    assert a.done
    if policy == "refuse":
        with pytest.raises(SessionLimitError):
            b.finish()  # b's join finds it full: the first session and a's are live
        assert live_of(one, "hal") == sorted([first, handle_of_result(one, a.result)])
    else:
        b.finish()  # b ends the first session (its entry expires first) and gets in
        assert live_of(one, "hal") == sorted(
            [handle_of_result(one, a.result), handle_of_result(two, b.result)]
        )
    assert sorted(info.handle for info in one.sessions_of("hal")) == live_of(one, "hal")


def test_an_eviction_cut_short_leaves_the_evicted_session_ended_never_unlisted_alive(
    replicas: Callable[..., SessionStore], clock: FakeClock
) -> None:
    """The END comes before the index entry is dropped: a failure in between is harmless."""
    store = replicas(max_sessions_per_user=1)
    old = store.load(None)
    old.user_id = "ian"
    old_cookie = store.save(old).cookie
    assert isinstance(old_cookie, SetCookie)
    clock.advance(1)
    new = start_login(store, "ian")
    new.trip()  # CREATE
    new.trip()  # INDEX_JOIN: full
    new.trip()  # HMGET: the old session is live and ian's
    new.trip()  # END of the old session
    # Redis fails now: the join that drops its entry and lists the new session does not run
    # (the login answers 503; its new session, linked but unlisted, has no cookie out).
    assert store.load(old_cookie.value).new  # evicted for real, on any replica
    assert store.sessions_of("ian") == []  # its stale entry is dropped on sight
    done = new.finish()  # had it gone through
    assert [info.handle for info in store.sessions_of("ian")] == [handle_of_result(store, done)]


def test_a_refused_new_session_is_deleted_again(replicas: Callable[..., SessionStore]) -> None:
    store = replicas(max_sessions_per_user=1, on_session_limit="refuse")
    kept = linked(store, "jo")
    refused = start_login(store, "jo")
    refused.trip()  # CREATE
    refused.trip()  # INDEX_JOIN: full
    refused.trip()  # HMGET: the other session is live
    with pytest.raises(SessionLimitError):
        refused.trip()  # DEL of the refused session, then the error
    assert live_of(store, "jo") == [kept]
    assert store.count() == 1


# -- the adapters: a refused login is a 403, or the app's own answer -----------------------


def flask_app(backend: Backend, *, handle_it: bool, **settings: Any) -> flask.Flask:
    app = flask.Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    app.config.update({"SHAREDSESSION_" + name.upper(): value for name, value in settings.items()})
    app.config["SHAREDSESSION_REDIS"] = backend.sync_client()
    app.config["SHAREDSESSION_KEY_PREFIX"] = backend.prefix
    SharedSession(app)

    @app.post("/login/<user>")
    def login_view(user: str) -> dict[str, str]:
        session.regenerate()
        session.user_id = session["user"] = user
        return {"user": user}

    @app.get("/me")
    def me() -> dict[str, str | None]:
        return {"user": session.get("user")}

    if handle_it:

        @app.errorhandler(SessionLimitError)
        def too_many(error: SessionLimitError) -> tuple[dict[str, object], int]:
            return {"error": "too many devices", "limit": error.limit}, 409

    return app


def test_flask_answers_a_refused_login_with_a_403_or_the_apps_handler(backend: Backend) -> None:
    default = flask_app(backend, handle_it=False, max_sessions_per_user=1, on_session_limit="refuse")
    laptop, phone = default.test_client(), default.test_client()
    assert laptop.post("/login/lu").status_code == 200
    refused = phone.post("/login/lu")
    assert refused.status_code == 403
    assert b"log out of another one first" in refused.data
    assert refused.headers.get("Set-Cookie") is None  # nothing saved, no session made
    assert phone.get("/me").json == {"user": None}
    assert laptop.get("/me").json == {"user": "lu"}
    own = flask_app(backend, handle_it=True, max_sessions_per_user=1, on_session_limit="refuse")
    answer = own.test_client().post("/login/lu")
    assert (answer.status_code, answer.json) == (409, {"error": "too many devices", "limit": 1})


def test_flask_evicts_the_oldest_login(backend: Backend, clock: FakeClock) -> None:
    app = flask_app(backend, handle_it=False, max_sessions_per_user=1)
    laptop, phone = app.test_client(), app.test_client()
    assert laptop.post("/login/max").status_code == 200
    assert phone.post("/login/max").status_code == 200
    assert laptop.get("/me").json == {"user": None}  # logged out by the newer login
    assert phone.get("/me").json == {"user": "max"}


def asgi_app(client: Any, prefix: str, **settings: Any) -> Any:
    async def login_view(request: Request) -> JSONResponse:
        session = get_session(request)
        user = request.path_params["user"]
        session.regenerate()
        session.user_id = session["user"] = user
        if request.query_params.get("check"):
            try:
                await save_session(request)  # saved now: the view answers a refusal itself
            except SessionLimitError as error:
                return JSONResponse({"error": "too many devices", "limit": error.limit}, 409)
        return JSONResponse({"user": user})

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"user": get_session(request).get("user")})

    routes = [Route("/login/{user}", login_view, methods=["POST"]), Route("/me", me)]
    return SessionMiddleware(
        Starlette(routes=routes), secret_key=SECRET, redis=client, key_prefix=prefix, **settings
    )


def test_asgi_answers_a_refused_login_with_a_403_or_the_views_own_answer(backend: Backend) -> None:
    async def scenario() -> None:
        async with recording_client(backend) as client:
            app = asgi_app(client, backend.prefix, max_sessions_per_user=1, on_session_limit="refuse")
            transport = httpx.ASGITransport(app=app)
            base = "http://test"
            async with (
                httpx.AsyncClient(transport=transport, base_url=base) as laptop,
                httpx.AsyncClient(transport=transport, base_url=base) as phone,
            ):
                assert (await laptop.post("/login/nia?check=1")).json() == {"user": "nia"}
                assert "session" in laptop.cookies  # saved in the view, the cookie sent with the response
                refused = await phone.post("/login/nia")
                assert refused.status_code == 403
                assert "set-cookie" not in refused.headers
                own = await phone.post("/login/nia?check=1")
                assert (own.status_code, own.json()) == (409, {"error": "too many devices", "limit": 1})
                assert "set-cookie" not in own.headers
                assert (await phone.get("/me")).json() == {"user": None}
                assert (await laptop.get("/me")).json() == {"user": "nia"}

    asyncio.run(scenario())


def test_asgi_evicts_the_oldest_login(backend: Backend) -> None:
    async def scenario() -> None:
        async with recording_client(backend) as client:
            app = asgi_app(client, backend.prefix, max_sessions_per_user=1)
            transport = httpx.ASGITransport(app=app)
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://test") as laptop,
                httpx.AsyncClient(transport=transport, base_url="http://test") as phone,
            ):
                await laptop.post("/login/oli")
                await phone.post("/login/oli")
                assert (await laptop.get("/me")).json() == {"user": None}
                assert (await phone.get("/me")).json() == {"user": "oli"}

    asyncio.run(scenario())
