"""The session limit through the replica stack: logins of one user racing on several
replicas (Flask, Starlette and Django processes behind HAProxy, one real Redis) never
leave more live sessions than ``MAX_SESSIONS_PER_USER``, and every evicted or refused
browser is anonymous on its next request, wherever it lands."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator

import httpx
import pytest

from sharedsession import SessionConfig, SessionStore
from tests.replicas.conftest import HAPROXY, REDIS_SERVER, Cluster, start_cluster

LIMIT = 2
RACERS = 12
ROUNDS = 5

pytestmark = pytest.mark.skipif(
    not (HAPROXY and REDIS_SERVER), reason="needs haproxy and redis-server (.ci/run installs them)"
)


@pytest.fixture(scope="module", params=["evict_oldest", "refuse"])
def limited(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {"MAX_SESSIONS_PER_USER": str(LIMIT), "SESSION_LIMIT": request.param}
    cluster = start_cluster(tmp_path_factory.mktemp("limited"), replicas_per_framework=1, env=env)
    yield cluster
    cluster.stop()


def race(cluster: Cluster, username: str) -> list[tuple[int, dict[str, object]]]:
    """RACERS browsers log in as one user at once; each one's status, and its state once all
    are done (an eviction may end a session just after its login was answered)."""
    start = threading.Barrier(RACERS)
    browsers = [cluster.client() for _ in range(RACERS)]

    def log_in(http: httpx.Client) -> int:
        start.wait(timeout=30)
        return http.post("/login", json={"username": username}).status_code

    try:
        with concurrent.futures.ThreadPoolExecutor(RACERS) as pool:
            statuses = list(pool.map(log_in, browsers))
        states = [http.get("/api/state") for http in browsers]
        assert all(state.status_code == 200 for state in states), [s.text for s in states]
        return [(status, state.json()) for status, state in zip(statuses, states, strict=True)]
    finally:
        for http in browsers:
            http.close()


def test_racing_logins_never_leave_more_live_sessions_than_the_limit(limited: Cluster) -> None:
    admin = SessionStore(SessionConfig(secret_key=limited.env["SECRET_KEY"], redis_url=limited.redis.url))
    policy = limited.env["SESSION_LIMIT"]
    try:
        for round_ in range(ROUNDS):
            user = f"racer-{round_}"
            results = race(limited, user)
            statuses = sorted(status for status, _ in results)
            logged_in = {str(state["handle"]) for _, state in results if state["user"] == user}
            listed = {info.handle for info in admin.sessions_of(user)}
            if policy == "refuse":
                # The first LIMIT joins get in; every other login is answered 403, nothing saved.
                assert statuses == [200] * LIMIT + [403] * (RACERS - LIMIT), statuses
                assert len(logged_in) == LIMIT
            else:
                assert statuses == [200] * RACERS, statuses
                assert 1 <= len(logged_in) <= LIMIT  # the others were ended by later logins
            assert listed == logged_in  # what is live is listed, and only that
    finally:
        admin.close()
