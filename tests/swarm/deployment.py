"""The stack on a one-node swarm, as the Swarm tests drive it.

``docker stack deploy -c docker-compose.yml -c tests/swarm/stack.yml``: the
file users deploy, with what this machine kind lacks replaced by the second
file (see there). Every request from the host goes to the balancer's ports
on 127.0.0.1; the apps, Redis and the balancer talk over the stack's own
overlay network.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from tests.replicas.conftest import login
from tests.swarm.images import ROOT, DockerError, docker

STACK_FILES = (ROOT / "docker-compose.yml", ROOT / "tests" / "swarm" / "stack.yml")
Entry = Literal["flask", "starlette", "django", "all"]
App = Literal["flask", "starlette", "django"]
# The stack file's replicas per app.
REPLICAS = 3


def wait_for(what: str, check: Callable[[], bool], timeout_seconds: float, step: float = 0.5) -> None:
    """Poll ``check`` until it holds; TimeoutError naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_seconds:.0f} s")
        time.sleep(step)


def client(base_url: str, cookies: httpx.Cookies | None = None) -> httpx.Client:
    """A browser of JSON: a fresh connection per request, so nothing sticks to a replica."""
    return httpx.Client(
        base_url=base_url,
        timeout=30,
        cookies=cookies,
        headers={"Accept": "application/json"},
        limits=httpx.Limits(max_keepalive_connections=0),
    )


@dataclass
class Stack:
    """A deployed stack: its name, the balancer's ports on 127.0.0.1, the signing key."""

    name: str
    ports: dict[Entry, int]
    secret_key: str
    variables: dict[str, str]

    def url(self, entry: Entry) -> str:
        return f"http://127.0.0.1:{self.ports[entry]}"

    def service(self, short: str) -> str:
        return f"{self.name}_{short}"

    # -- deploy and remove ------------------------------------------------------------

    def deploy(self) -> None:
        files = [arg for path in STACK_FILES for arg in ("-c", str(path))]
        # Local images only: never ask a registry for digests.
        docker("stack", "deploy", *files, "--resolve-image", "never", self.name, env=self.variables)

    def remove(self) -> None:
        """Remove the stack, then its volume once no container holds it."""
        label = f"label=com.docker.stack.namespace={self.name}"
        if self.name in docker("stack", "ls", "--format", "{{.Name}}").split():
            docker("stack", "rm", self.name)
        wait_for(
            f"stack {self.name}: containers gone",
            lambda: not docker("ps", "-aq", "--filter", label).split(),
            timeout_seconds=120,
        )
        wait_for(
            f"stack {self.name}: networks gone",
            lambda: not docker("network", "ls", "-q", "--filter", label).split(),
            timeout_seconds=60,
        )
        for volume in docker("volume", "ls", "-q", "--filter", label).split():
            docker("volume", "rm", volume)

    # -- tasks ---------------------------------------------------------------------------

    def containers(self, short: str) -> list[dict[str, Any]]:
        """``docker inspect`` of the service's running containers."""
        ids = docker(
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            f"label=com.docker.swarm.service.name={self.service(short)}",
            "--filter",
            "status=running",
        ).split()
        if not ids:
            return []
        try:
            found = json.loads(docker("inspect", *ids))
        except DockerError:
            return []  # one went away in between: ask again
        assert isinstance(found, list)
        return found

    def replicas(self, short: str) -> set[str]:
        """The host names (what the apps report as ``replica``) of the service's healthy tasks."""
        return {
            str(container["Config"]["Hostname"])
            for container in self.containers(short)
            if container["State"].get("Health", {}).get("Status", "healthy") == "healthy"
        }

    def wait_converged(self, short: str, replicas: int, timeout_seconds: float = 180) -> set[str]:
        """Wait until exactly ``replicas`` tasks run, healthy; their host names."""
        found: set[str] = set()

        def converged() -> bool:
            nonlocal found
            found = self.replicas(short)
            return len(found) == replicas and len(self.containers(short)) == replicas

        wait_for(f"{self.service(short)}: {replicas} healthy tasks", converged, timeout_seconds)
        return found

    def wait_balanced(self, entry: Entry, expected: set[str], timeout_seconds: float = 120) -> None:
        """Wait until the balancer's ``entry`` spreads requests over ``expected`` and nothing else."""
        seen: list[str] = []

        def balanced() -> bool:
            with client(self.url(entry)) as browser:
                for _ in range(2 * len(expected)):
                    try:
                        reply = browser.get("/api/state")
                        seen.append(str(reply.json()["replica"]) if reply.status_code == 200 else "?")
                    except (httpx.HTTPError, ValueError):
                        seen.append("?")
            return set(seen[-2 * len(expected) :]) == expected

        try:
            wait_for(f"balancer {entry}: round robin over {sorted(expected)}", balanced, timeout_seconds)
        except TimeoutError as error:
            raise TimeoutError(f"{error}; last seen {seen[-2 * len(expected) :]}") from None

    def exec(self, short: str, *command: str) -> str:
        """Run ``command`` in one running task of the service (docker exec)."""
        containers = self.containers(short)
        assert containers, f"{self.service(short)}: no running task"
        return docker("exec", str(containers[0]["Id"]), *command)


def new_stack(name: str, work: Path, ports: dict[Entry, int], images: dict[str, str]) -> Stack:
    """A stack's settings: a new signing key in a file of its own, the ports, the images."""
    key = secrets.token_urlsafe(32)
    key_file = work / "session_secret_key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    variables = {
        **images,
        "SWARM_FLASK_PORT": str(ports["flask"]),
        "SWARM_STARLETTE_PORT": str(ports["starlette"]),
        "SWARM_DJANGO_PORT": str(ports["django"]),
        "SWARM_ALL_PORT": str(ports["all"]),
        "SWARM_SECRET_FILE": str(key_file),
    }
    return Stack(name, ports, key, variables)


# -- traffic -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """One request of Traffic: who sent it, what it was, who answered, and how."""

    user: str
    request: str
    status: int | None
    replica: str | None = None
    # The user the reply's session belongs to (state reads only).
    session_of: str | None = None
    error: str | None = None


#: Distinct keys a Traffic user writes: about 20 KiB of session, well below max_size (64 KiB).
KEYS_PER_USER = 250


@dataclass
class Traffic:
    """Users sending requests through one entry until stopped, each in a thread.

    Each user logs in, then in turn writes one of its keys (``PUT``, safe for
    the balancer to retry) and reads its state back. ``failures`` lists every
    request that did not succeed, or saw another session than its own.

    The keys come round again after ``KEYS_PER_USER`` writes: a long run (a
    rolling update of every app) must not grow a session past ``max_size``,
    which answers 413. Each user writes in turn, so the last acknowledged
    value of each key is what must be stored.
    """

    url: str
    users: int = 4
    prefix: str = "traffic"
    outcomes: list[Outcome] = field(default_factory=list)
    cookies: dict[str, httpx.Cookies] = field(default_factory=dict)
    written: dict[str, dict[str, int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Traffic:
        for i in range(self.users):
            user = f"{self.prefix}-{i}"
            with client(self.url) as browser:
                login(browser, user)
                self.cookies[user] = browser.cookies
            self.written[user] = {}
            thread = threading.Thread(target=self._run, args=(user,), daemon=True)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, user: str) -> None:
        n = 0
        with client(self.url, self.cookies[user]) as browser:
            while not self._stop.is_set():
                n += 1
                key = f"{user}-{n % KEYS_PER_USER:03d}"
                sent = self._send(browser, user, "PUT", f"/api/kv/{key}", n)
                if sent.status == 200 and sent.error is None:
                    self.written[user][key] = n
                self._send(browser, user, "GET", "/api/state")
                time.sleep(0.02)

    def _send(self, browser: httpx.Client, user: str, method: str, path: str, body: object = None) -> Outcome:
        outcome = Outcome(user, f"{method} {path}", None)
        try:
            reply = browser.request(method, path, json=body)
            outcome.status = reply.status_code
            answer = reply.json()
            outcome.replica = str(answer.get("replica"))
            if "user" in answer:
                outcome.session_of = answer["user"]
                if answer["user"] != user:
                    outcome.error = f"the session of {answer['user']!r}"
        except (httpx.HTTPError, ValueError) as error:
            outcome.error = repr(error)
        with self._lock:
            self.outcomes.append(outcome)
        return outcome

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200 or o.error is not None]

    def summary(self) -> str:
        served = self.served_by()
        return (
            f"{len(self.outcomes)} requests by {self.users} users, {len(self.failures())} failed, "
            f"{len(served)} replicas served: {sorted(served)}"
        )

    def served_by(self, since: int = 0) -> set[str]:
        """Replicas that read a user's own session back, from outcome number ``since`` on."""
        with self._lock:
            outcomes = self.outcomes[since:]
        return {o.replica for o in outcomes if o.replica and o.status == 200 and o.session_of == o.user}

    def lost(self) -> Iterator[str]:
        """Every acknowledged write missing now, and every user no longer logged in."""
        for user, written in self.written.items():
            with client(self.url, self.cookies[user]) as browser:
                state = browser.get("/api/state").json()
                if state.get("user") != user:
                    yield f"{user}: logged out ({state})"
                stored = browser.get("/api/kv").json()
            yield from (f"{user}: {key}" for key, value in written.items() if stored.get(key) != value)
