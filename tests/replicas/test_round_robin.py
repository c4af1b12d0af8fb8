"""One session, many replicas: three gunicorn (Flask), three uvicorn (Starlette) and
three gunicorn (Django) replicas behind HAProxy with ``balance roundrobin`` and no
stickiness, on a real Redis."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from sharedsession.demo.processes import Framework
from tests.replicas.conftest import Cluster, check_one_cookie_on_both_frameworks, login


def test_continuity_counter_counts_up_across_replicas(cluster: Cluster) -> None:
    with cluster.client() as client:
        login(client, "continuity")
        served: list[tuple[str, str]] = []
        for expected in range(1, 13):
            reply = client.post("/api/counter")
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert body["counter"] == expected
            served.append((body["replica"], body["framework"]))
    assert len({replica for replica, _ in served}) >= 3
    assert {framework for _, framework in served} == {"flask", "starlette", "django"}


def test_the_same_cookie_works_on_flask_and_asgi_replicas(cluster: Cluster) -> None:
    flask = next(r for r in cluster.replicas if r.framework == "flask")
    starlette = next(r for r in cluster.replicas if r.framework == "starlette")
    headers = {"Accept": "application/json"}
    with httpx.Client(base_url=flask.url, timeout=10, headers=headers) as on_flask:
        check_one_cookie_on_both_frameworks(
            on_flask,
            lambda cookies: httpx.Client(
                base_url=starlette.url, timeout=10, cookies=cookies, headers=headers
            ),
            "crossover",
        )


def test_the_same_cookie_works_on_django_flask_and_asgi_replicas(cluster: Cluster) -> None:
    replicas = {r.framework: r for r in reversed(cluster.replicas)}  # the first of each framework
    headers = {"Accept": "application/json"}
    with httpx.Client(base_url=replicas["django"].url, timeout=10, headers=headers) as on_django:
        login(on_django, "tri")
        on_django.post("/cart", json={"item": "from django"})
        others: tuple[Framework, ...] = ("flask", "starlette")
        for framework in others:
            with httpx.Client(
                base_url=replicas[framework].url, timeout=10, cookies=on_django.cookies, headers=headers
            ) as other:
                state = other.get("/api/state").json()
                assert (state["framework"], state["user"]) == (framework, "tri")
                other.post("/cart", json={"item": f"from {framework}"})
        state = on_django.get("/api/state").json()
        assert (state["framework"], state["cart"]) == (
            "django",
            ["from django", "from flask", "from starlette"],
        )
        cookie = on_django.cookies["session"]
        assert on_django.post("/logout").status_code == 200  # on Django: ends the session everywhere
    for framework in others:
        with httpx.Client(
            base_url=replicas[framework].url, timeout=10, cookies={"session": cookie}, headers=headers
        ) as other:
            assert other.get("/api/state").json()["user"] is None


def test_200_concurrent_writes_of_one_session_all_survive(cluster: Cluster) -> None:
    with cluster.client() as client:
        login(client, "concurrent")
        cookies = dict(client.cookies)

    def put(i: int) -> tuple[int, str]:
        with httpx.Client(base_url=cluster.url, timeout=30, cookies=cookies) as c:
            reply = c.put(f"/api/kv/key{i:03d}", json=i)
            return reply.status_code, str(reply.json().get("replica"))

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(put, range(200)))
    assert [status for status, _ in results] == [200] * 200
    assert len({replica for _, replica in results}) == len(cluster.replicas)
    with cluster.client() as client:
        client.cookies.update(cookies)
        stored = client.get("/api/kv").json()
    missing = [i for i in range(200) if stored.get(f"key{i:03d}") != i]
    assert missing == [], f"{len(missing)} updates lost"


def test_a_slow_request_does_not_undo_a_logout_on_another_replica(cluster: Cluster) -> None:
    with cluster.client() as client:
        login(client, "slowpoke")
        cookies = dict(client.cookies)
    slow: dict[str, Any] = {}

    def slow_request() -> None:
        with httpx.Client(base_url=cluster.url, timeout=30, cookies=cookies) as c:
            reply = c.post("/api/slow", params={"seconds": 2})
            slow["status"] = reply.status_code
            slow["set_cookie"] = reply.headers.get("set-cookie")

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.7)  # the slow request has loaded the session by now (generous)
    with cluster.client() as client:
        client.cookies.update(cookies)
        assert client.post("/logout").status_code == 200
    thread.join(30)
    assert slow["status"] == 200
    assert slow["set_cookie"] is None
    with cluster.client() as client:
        client.cookies.update(cookies)
        for _ in range(len(cluster.replicas)):  # ask every replica
            assert client.get("/api/state").json()["user"] is None


def test_redis_outage_fails_fast_and_recovers(own_cluster: Cluster) -> None:
    cluster = own_cluster
    with cluster.client() as client:
        login(client, "outage")
        client.post("/api/counter")
        cookies = dict(client.cookies)
    cluster.redis.stop()
    with cluster.client() as client:
        client.cookies.update(cookies)
        for _ in range(len(cluster.replicas)):
            assert client.get("/healthz").status_code == 200
        for _ in range(len(cluster.replicas)):
            started = time.monotonic()
            reply = client.get("/api/state")
            assert reply.status_code == 503
            assert time.monotonic() - started < 2.0
    cluster.redis.start()  # same port, same append-only file
    with cluster.client() as client:
        client.cookies.update(cookies)
        deadline = time.monotonic() + 20
        statuses: list[int] = []
        while time.monotonic() < deadline:
            statuses = [client.post("/api/counter").status_code for _ in cluster.replicas]
            if statuses == [200] * len(cluster.replicas):
                break
            time.sleep(0.2)
        assert statuses == [200] * len(cluster.replicas)
        state = client.get("/api/state").json()
    assert state["user"] == "outage"
    assert state["counter"] >= 1 + len(cluster.replicas)


def test_losing_a_replica_loses_nothing(own_cluster: Cluster) -> None:
    cluster = own_cluster
    with cluster.client() as client:
        login(client, "survivor")
        for expected in range(1, 7):
            assert client.post("/api/counter").json()["counter"] == expected
        victim = cluster.replica("starlette-2")
        victim.child.kill()  # gone without a goodbye
        served = set()
        for expected in range(7, 19):
            reply = client.post("/api/counter")
            assert reply.status_code == 200, reply.text
            assert reply.json()["counter"] == expected
            served.add(reply.json()["replica"])
        assert "starlette-2" not in served
        assert client.get("/api/state").json()["user"] == "survivor"
