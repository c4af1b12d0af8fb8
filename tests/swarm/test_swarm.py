"""docker-compose.yml deployed on a one-node swarm, driven from the host.

Three Flask, three Starlette and three Django tasks, one Redis, and a balancer
standing in for the routing mesh (tests/swarm/stack.yml says why). Every request goes to
the balancer on 127.0.0.1; the tests scale, update and kill tasks under
traffic and check that no session, and no write to one, is lost.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
import threading
import time
from typing import Any

import httpx
import pytest

from sharedsession._core.signing import CookieSigner
from sharedsession.demo.walkthrough import CONCURRENT_WRITES, walk
from tests.replicas.conftest import check_one_cookie_on_both_frameworks, login
from tests.replicas.test_demo import FINAL_LINE
from tests.swarm.deployment import REPLICAS, App, Stack, Traffic, client, wait_for
from tests.swarm.images import docker

pytestmark = pytest.mark.swarm

APPS: tuple[App, ...] = ("flask", "starlette", "django")
SECRET_FILE = "/run/secrets/session_secret_key"


def test_the_demo_user_walks_through_every_replica(stack: Stack) -> None:
    replicas = set().union(*(stack.replicas(app) for app in APPS))
    assert len(replicas) == len(APPS) * REPLICAS
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        # Replies name their replica; the one that does not (GET /api/kv) shows "?".
        ok = walk(stack.url("all"), lambda: "?")
    output = printed.getvalue()
    assert ok, output
    assert FINAL_LINE.search(output), output  # 1 session, 0 updates lost
    writes = re.search(rf"{CONCURRENT_WRITES} concurrent PUT .* served by (\d+) replicas", output)
    assert writes, output
    assert int(writes.group(1)) == len(replicas), output
    rows = [line.split() for line in output.splitlines() if re.match(r"\s*\d+\s+(GET|POST|PUT) ", line)]
    assert {row[4] for row in rows} <= replicas | {"?"}, output
    assert {row[5] for row in rows} >= set(APPS), output


def test_one_cookie_on_every_published_port(stack: Stack) -> None:
    with client(stack.url("flask")) as on_flask:
        check_one_cookie_on_both_frameworks(
            on_flask, lambda cookies: client(stack.url("starlette"), cookies), "both-ports"
        )
    with client(stack.url("django")) as on_django:
        login(on_django, "django-port")
        on_django.post("/cart", json={"item": "from django"})
        with client(stack.url("flask"), on_django.cookies) as on_flask:
            state = on_flask.get("/api/state").json()
        assert (state["framework"], state["user"], state["cart"]) == ("flask", "django-port", ["from django"])


def test_the_signing_key_comes_from_the_docker_secret(stack: Stack) -> None:
    for app in APPS:
        secrets = json.loads(
            docker(
                "service",
                "inspect",
                "--format",
                "{{json .Spec.TaskTemplate.ContainerSpec.Secrets}}",
                stack.service(app),
            )
        )
        assert [s["SecretName"] for s in secrets] == [f"{stack.name}_session_secret_key"]
        for container in stack.containers(app):
            env = dict(item.split("=", 1) for item in container["Config"]["Env"])
            assert env["SECRET_KEY_FILE"] == SECRET_FILE
            assert "SECRET_KEY" not in env  # the key is not in the environment (docker inspect)
            assert docker("exec", container["Id"], "cat", SECRET_FILE).strip() == stack.secret_key
    with client(stack.url("all")) as browser:
        login(browser, "signed")
        cookie = browser.cookies["session"]
    assert CookieSigner([stack.secret_key], time.time).unsign(cookie, 3600) is not None
    assert CookieSigner(["another key"], time.time).unsign(cookie, 3600) is None


def stats(stack: Stack, app: App) -> dict[str, Any]:
    found = json.loads(stack.exec(app, "sharedsession", "stats", "--json"))
    assert isinstance(found, dict)
    return found


def test_sharedsession_stats_in_an_app_container_counts_the_live_sessions(stack: Stack) -> None:
    before = stats(stack, "flask")
    assert before["server"]["maxmemory_policy"] == "noeviction"
    assert before["warnings"] == []
    browsers = [client(stack.url("all")) for _ in range(5)]
    try:
        for i, browser in enumerate(browsers):
            login(browser, f"counted-{i}")
        assert stats(stack, "starlette")["sessions"] == before["sessions"] + 5
        for browser in browsers:
            assert browser.post("/logout").status_code == 200
        assert stats(stack, "flask")["sessions"] == before["sessions"]
    finally:
        for browser in browsers:
            browser.close()


def test_scaling_flask_to_five_during_traffic(stack: Stack) -> None:
    service = stack.service("flask")
    before = stack.replicas("flask")
    try:
        with Traffic(stack.url("flask"), prefix="scale") as traffic:
            wait_for("traffic to every task", lambda: before <= traffic.served_by(), timeout_seconds=60)
            docker("service", "scale", "--detach", f"{service}=5")
            new = stack.wait_converged("flask", 5) - before
            assert len(new) == 2
            since = len(traffic.outcomes)
            # The new tasks answer for sessions that existed before they did.
            wait_for("new tasks serving", lambda: new <= traffic.served_by(since), timeout_seconds=60)
        assert traffic.failures() == [], traffic.summary()
        assert list(traffic.lost()) == []
    finally:
        docker("service", "scale", "--detach", f"{service}={REPLICAS}")
        stack.wait_balanced("flask", stack.wait_converged("flask", REPLICAS))


def update_state(stack: Stack, app: App) -> str:
    return docker(
        "service",
        "inspect",
        "--format",
        "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}",
        stack.service(app),
    ).strip()


def test_a_rolling_update_keeps_every_session_and_fails_no_request(stack: Stack) -> None:
    before = {app: stack.replicas(app) for app in APPS}
    most_running = dict.fromkeys(APPS, 0)
    updating = threading.Event()
    updating.set()

    def count_tasks() -> None:
        while updating.is_set():
            for app in APPS:
                most_running[app] = max(most_running[app], len(stack.containers(app)))
            time.sleep(0.5)

    sampler = threading.Thread(target=count_tasks, daemon=True)
    sampler.start()
    try:
        with Traffic(stack.url("all"), prefix="update") as traffic:
            for app in APPS:  # all at once, as one deploy would
                docker("service", "update", "--force", "--detach", stack.service(app))
            for app in APPS:
                wait_for(
                    f"{app}: update completed",
                    functools.partial(_update_done, stack, app),
                    timeout_seconds=600,
                    step=2,
                )
    finally:
        updating.clear()
        sampler.join(30)
    after = {app: stack.wait_converged(app, REPLICAS) for app in APPS}
    for app in APPS:
        assert after[app].isdisjoint(before[app]), f"{app}: not every task was replaced"
        # order: start-first: a new task runs before an old one stops.
        assert most_running[app] > REPLICAS
    assert traffic.failures() == [], traffic.summary()
    assert list(traffic.lost()) == []
    # The traffic ran from before the update to after it.
    served = traffic.served_by()
    for app in APPS:
        assert served & before[app], f"{app}: no old task served"
        assert served & after[app], f"{app}: no new task served"
    stack.wait_balanced("all", set().union(*after.values()))


def _update_done(stack: Stack, app: App) -> bool:
    state = update_state(stack, app)
    if state in ("paused", "rollback_started", "rollback_paused", "rollback_completed"):
        raise AssertionError(f"{app}: update {state}")
    return state == "completed"


def test_a_killed_task_is_replaced_and_nothing_is_lost(stack: Stack) -> None:
    victim = stack.containers("flask")[0]
    with Traffic(stack.url("flask"), prefix="kill") as traffic:
        wait_for(
            "traffic to the victim",
            lambda: victim["Config"]["Hostname"] in traffic.served_by(),
            timeout_seconds=60,
        )
        docker("kill", victim["Id"])
        wait_for(
            "a task replacing the killed one",
            lambda: (
                victim["Config"]["Hostname"] not in stack.replicas("flask")
                and len(stack.replicas("flask")) == REPLICAS
            ),
            timeout_seconds=120,
        )
        replacement = stack.wait_converged("flask", REPLICAS)
        since = len(traffic.outcomes)
        wait_for("the new task serving", lambda: replacement <= traffic.served_by(since), timeout_seconds=60)
    assert traffic.failures() == [], traffic.summary()
    assert list(traffic.lost()) == []


def test_sessions_survive_a_redis_restart(stack: Stack) -> None:
    assert stack.exec("redis", "redis-cli", "config", "get", "appendonly").split() == ["appendonly", "yes"]
    browsers = [client(stack.url("all")) for _ in range(3)]
    try:
        expected = []
        for i, browser in enumerate(browsers):
            login(browser, f"durable-{i}")
            browser.post("/cart", json={"item": f"item-{i}"})
            for _ in range(i + 1):
                browser.post("/api/counter")
            expected.append((f"durable-{i}", [f"item-{i}"], i + 1))
        # appendfsync everysec: every write is on disk a second later.
        time.sleep(2)
        (redis,) = stack.containers("redis")
        docker("kill", redis["Id"])  # no clean shutdown: only the append-only file can keep the data
        wait_for(
            "Redis replaced",
            lambda: [c["Id"] for c in stack.containers("redis")] not in ([], [redis["Id"]]),
            timeout_seconds=120,
        )
        stack.wait_converged("redis", 1)
        for browser, (user, cart, counter) in zip(browsers, expected, strict=True):
            wait_for("the apps reach Redis again", functools.partial(_answers, browser), timeout_seconds=60)
            for _ in range(2 * len(APPS)):
                state = browser.get("/api/state").json()
                assert (state["user"], state["cart"], state["counter"]) == (user, cart, counter)
    finally:
        for browser in browsers:
            browser.close()


def _answers(browser: httpx.Client) -> bool:
    return all(browser.get("/api/state").status_code == 200 for _ in range(2 * len(APPS)))
