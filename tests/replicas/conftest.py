"""Several real replicas behind a real round-robin balancer (HAProxy), on a
Redis server of the test's own (so that it can be stopped and restarted).

These tests need the ``haproxy`` and ``redis-server`` binaries; ``.ci/run``
installs both. Without them (a laptop) the tests are skipped, saying why.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from sharedsession.demo.processes import (
    Child,
    Framework,
    Replica,
    free_port,
    spawn,
    start_replica,
    wait_healthy,
)

HAPROXY = shutil.which("haproxy")
REDIS_SERVER = shutil.which("redis-server")

needs_binaries = pytest.mark.skipif(
    not (HAPROXY and REDIS_SERVER), reason="needs haproxy and redis-server (.ci/run installs them)"
)


@dataclass
class RedisProcess:
    """A redis-server of our own, with an append-only file so a restart keeps sessions."""

    port: int
    work: Path
    child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/1"

    def start(self) -> None:
        assert REDIS_SERVER
        self.child = spawn(
            "redis-server",
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.work),
            ],
            {},
            self.work / "redis.log",
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("redis-server did not start")

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()  # SIGTERM: a clean shutdown that flushes the AOF
            self.child = None


@dataclass
class Cluster:
    """Flask, Starlette and Django replicas behind HAProxy (balance roundrobin, no stickiness)."""

    redis: RedisProcess
    replicas: list[Replica]
    port: int
    work: Path
    haproxy: Child | None = None
    children: list[Child] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        # A fresh connection per request: nothing sticks to a replica.
        return httpx.Client(
            base_url=self.url,
            timeout=15,
            headers={"Accept": "application/json"},
            limits=httpx.Limits(max_keepalive_connections=0),
        )

    def replica(self, replica_id: str) -> Replica:
        return next(r for r in self.replicas if r.replica_id == replica_id)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop(grace_seconds=3)
        self.redis.stop()


def login(client: httpx.Client, username: str) -> None:
    """Log in (JSON); the next request, wherever it lands, sees the user."""
    reply = client.post("/login", json={"username": username})
    assert reply.status_code == 200, reply.text
    assert client.get("/api/state").json()["user"] == username


def check_one_cookie_on_both_frameworks(
    on_flask: httpx.Client, starlette_client: Callable[[httpx.Cookies], httpx.Client], username: str
) -> None:
    """Log in on Flask; the cookie carries the session to Starlette, and its changes back."""
    login(on_flask, username)
    on_flask.post("/cart", json={"item": "from flask"})
    with starlette_client(on_flask.cookies) as on_starlette:
        state = on_starlette.get("/api/state").json()
        assert (state["framework"], state["user"], state["cart"]) == ("starlette", username, ["from flask"])
        on_starlette.post("/cart", json={"item": "from starlette"})
    state = on_flask.get("/api/state").json()
    assert (state["framework"], state["cart"]) == ("flask", ["from flask", "from starlette"])


HAPROXY_CONFIG = """\
global
    maxconn 1024
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    # A replica that dies between health checks: try the request on another one.
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    option http-server-close
frontend entry
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /healthz
    default-server check inter 300ms fall 2 rise 1
{servers}
"""


def start_cluster(
    work: Path, replicas_per_framework: int = 3, *, workers: int = 2, env: dict[str, str] | None = None
) -> Cluster:
    """Replicas of both examples behind HAProxy, on a Redis of their own; ``env`` adds settings."""
    assert HAPROXY
    redis = RedisProcess(free_port(), work)
    redis.start()
    env = {
        "REDIS_URL": redis.url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "IDLE_TIMEOUT": "600",
        **(env or {}),
    }
    cluster = Cluster(redis, [], free_port(), work, env=env)
    try:
        frameworks: list[Framework] = ["flask", "starlette", "django"]
        for i in range(1, replicas_per_framework + 1):
            for framework in frameworks:
                replica = start_replica(framework, f"{framework}-{i}", env, log_dir=work, workers=workers)
                cluster.replicas.append(replica)
                cluster.children.append(replica.child)
        for replica in cluster.replicas:
            wait_healthy(replica.url, replica.child)
        servers = "\n".join(f"    server {r.replica_id} 127.0.0.1:{r.port}" for r in cluster.replicas)
        config = work / "haproxy.cfg"
        config.write_text(HAPROXY_CONFIG.format(port=cluster.port, servers=servers))
        subprocess.run([HAPROXY, "-c", "-q", "-f", str(config)], check=True)
        cluster.haproxy = spawn("haproxy", [HAPROXY, "-db", "-f", str(config)], {}, work / "haproxy.log")
        cluster.children.append(cluster.haproxy)
        wait_healthy(cluster.url, cluster.haproxy)
        # Let HAProxy's health checks see every server up.
        time.sleep(1)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not (HAPROXY and REDIS_SERVER):
        pytest.skip("needs haproxy and redis-server (.ci/run installs them)")
    c = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster for a test that breaks things (stops Redis, kills a replica)."""
    if not (HAPROXY and REDIS_SERVER):
        pytest.skip("needs haproxy and redis-server (.ci/run installs them)")
    c = start_cluster(tmp_path)
    yield c
    c.stop()
