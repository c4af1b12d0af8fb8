"""The local cache through the replica stack: a change answered by one replica is seen by
the client's next request on any other, even one holding the session in its cache.

Six replicas (three Flask, three Starlette, one process each, so each is one
cache) behind HAProxy's round robin, LOCAL_CACHE on. Every reply names its
replica, so the test knows which replicas hold which version of a session: a
*trial* is a request served by a replica that read the session before the
change, i.e. one that would answer stale data if an invalidation were late or
lost. Each kind of change runs at least 1000 trials; none may be stale.
"""

from __future__ import annotations

import concurrent.futures
import functools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sharedsession import SessionConfig, SessionStore
from tests.replicas.conftest import HAPROXY, REDIS_SERVER, Cluster, start_cluster

TRIALS = 1000
REPLICAS = 6

pytestmark = pytest.mark.skipif(
    not (HAPROXY and REDIS_SERVER), reason="needs haproxy and redis-server (.ci/run installs them)"
)


def start(work: Path, **env: str) -> Cluster:
    return start_cluster(work, workers=1, env={"LOCAL_CACHE": "1000", **env})


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = start(tmp_path_factory.mktemp("cached"))
    yield cluster
    cluster.stop()


def admin_store(cluster: Cluster) -> SessionStore:
    """What an admin script on another machine uses: the apps' Redis, secret and prefix."""
    return SessionStore(SessionConfig(secret_key=cluster.env["SECRET_KEY"], redis_url=cluster.redis.url))


class Browser:
    """One user agent; every request goes through the balancer, so to the next replica."""

    def __init__(self, cluster: Cluster) -> None:
        self.http = cluster.client()

    def state(self) -> dict[str, object]:
        reply = self.http.get("/api/state")
        assert reply.status_code == 200, reply.text
        state: dict[str, object] = reply.json()
        return state

    def post(self, path: str, **body: object) -> dict[str, object]:
        reply = self.http.post(path, json=body)
        assert reply.status_code == 200, reply.text
        answer: dict[str, object] = reply.json()
        return answer

    def with_cookie(self, cookie: str | None) -> None:
        self.http.cookies.clear()
        if cookie:
            self.http.cookies.set("session", cookie)

    def cookie(self) -> str | None:
        return self.http.cookies.get("session")


def warm(browser: Browser, expect: Callable[[dict[str, object]], bool], readers: set[str]) -> None:
    """Reads until every replica has served (and so cached) the session's current version, or
    a few rounds went by (other threads' requests take turns in the round robin too)."""
    for _ in range(3 * REPLICAS):
        if len(readers) == REPLICAS:
            return
        state = browser.state()
        assert expect(state), state
        readers.add(str(state["replica"]))


def check(browser: Browser, fresh: Callable[[dict[str, object]], bool], holders: set[str]) -> int:
    """One read per replica after a change; returns how many were trials (served by a holder)."""
    trials = 0
    for _ in range(2 * REPLICAS):
        if not holders:
            break
        state = browser.state()
        assert fresh(state), f"stale read from {state['replica']}: {state}"
        if state["replica"] in holders:
            trials += 1
            holders.discard(str(state["replica"]))
    return trials


def test_updates_are_seen_at_once_by_every_replica(cached: Cluster) -> None:
    browser = Browser(cached)
    browser.post("/login", username="updater")
    counted, last = 0, 0
    while counted < TRIALS:
        holders: set[str] = set()
        warm(browser, functools.partial(counter_is, last), holders)
        last = int(str(browser.post("/api/counter")["counter"]))  # every holder read the old value
        counted += check(browser, functools.partial(counter_is, last), holders)
    assert counted >= TRIALS


def counter_is(value: int, state: dict[str, object]) -> bool:
    return state["counter"] == value


def in_parallel(rounds: Callable[[int], int]) -> int:
    """Run rounds on four threads until their trials add up to TRIALS; return the total."""
    counted = 0
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        start = 0
        while counted < TRIALS:
            counted += sum(pool.map(rounds, range(start, start + 40)))
            start += 40
    return counted


@pytest.mark.parametrize("ending", ["logout", "regenerate", "revoke", "revoke_user", "revoke_others"])
def test_an_ended_session_is_dead_at_once_on_every_replica(cached: Cluster, ending: str) -> None:
    admin = admin_store(cached)

    def round_(number: int) -> int:
        user = f"{ending}-{number}"
        browser = Browser(cached)
        browser.post("/login", username=user)
        old = browser.cookie()
        holders: set[str] = set()
        warm(browser, functools.partial(user_is, user), holders)
        if ending == "logout":
            browser.post("/logout")
        elif ending == "regenerate":
            browser.post("/login", username=user)  # a new id: the old cookie dies
        elif ending == "revoke":
            (info,) = admin.sessions_of(user)
            assert admin.revoke(info.handle)
        elif ending == "revoke_user":
            assert admin.revoke_user(user) == 1
        else:
            other = Browser(cached)
            other.post("/login", username=user)
            other.post("/sessions/revoke-others")  # from another device: ends this one
        browser.with_cookie(old)  # the old cookie, as a request still in flight would carry it
        return check(browser, functools.partial(user_is, None), holders)

    try:
        assert in_parallel(round_) >= TRIALS
    finally:
        admin.close()


def user_is(user: str | None, state: dict[str, object]) -> bool:
    return state["user"] == user


@pytest.mark.parametrize("timeout", ["idle", "absolute"])
def test_an_expired_session_is_gone_on_every_replica(tmp_path: Path, timeout: str) -> None:
    """Many sessions cached everywhere, then expired (idle: left alone; absolute: kept busy)."""
    env = {"IDLE_TIMEOUT": "3"} if timeout == "idle" else {"IDLE_TIMEOUT": "600", "ABSOLUTE_TIMEOUT": "4"}
    cluster = start(tmp_path, **env)
    try:

        def warmed(number: int) -> tuple[Browser, set[str]]:
            browser = Browser(cluster)
            browser.post("/login", username=f"{timeout}-{number}")
            holders: set[str] = set()
            warm(browser, functools.partial(user_is, f"{timeout}-{number}"), holders)
            return browser, holders

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            browsers = list(pool.map(warmed, range(TRIALS // 4)))
        # Idle: left alone from here, all expire within 3 s. Absolute: the last one was
        # created just now and expires 4 s after; some are kept busy meanwhile.
        deadline = time.monotonic() + (3 if timeout == "idle" else 4) + 1.5  # generous
        while time.monotonic() < deadline:
            if timeout == "absolute":
                for browser, _ in browsers[:: REPLICAS * 4]:
                    browser.state()
            time.sleep(0.2)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            checks = pool.map(
                lambda pair: check(pair[0], functools.partial(user_is, None), pair[1]), browsers
            )
            counted = sum(checks)
        assert counted >= TRIALS
    finally:
        cluster.stop()
