"""Start and stop the demo's processes: a Redis, app replicas, and nothing left behind.

Every child runs in a process group of its own (gunicorn's workers and
uvicorn's reloaders included), so stopping a child stops its whole tree:
SIGTERM to the group, then SIGKILL to whatever is still there after a grace
period. Used by ``sharedsession demo`` and by the replica tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sharedsession._urls import redact_url

Framework = Literal["flask", "starlette", "django"]
#: Each framework's example app, under examples/.
APP_DIRS: dict[Framework, str] = {"flask": "flask_app", "starlette": "starlette_app", "django": "django_app"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def examples_dir() -> Path:
    """Where the example apps are: shipped in the wheel, or the repository's examples/."""
    shipped = Path(__file__).resolve().parent.parent / "_examples"
    if shipped.is_dir():
        return shipped
    repo = Path(__file__).resolve().parents[3] / "examples"
    if repo.is_dir():
        return repo
    raise FileNotFoundError(
        "the example apps are missing: neither sharedsession/_examples (wheel) nor a "
        "repository checkout's examples/ folder was found"
    )


@dataclass
class Child:
    """A child process in a process group of its own."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash, for tests)."""
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def stop(self, grace_seconds: float = 5.0) -> None:
        """SIGTERM the whole group, then SIGKILL what is left after the grace period."""
        _signal_group(self.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_seconds)
        # Children of the leader (gunicorn workers) may outlive it briefly.
        deadline = time.monotonic() + grace_seconds
        while _group_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        _signal_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace_seconds)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str], log: Path | None = None) -> Child:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115  # owned by the child
    try:
        process = subprocess.Popen(  # noqa: S603  # our own command lines
            list(argv),
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() reaches the whole tree
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    return Child(name, process, log)


@dataclass
class Replica:
    framework: Framework
    replica_id: str
    port: int
    child: Child

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def replica_command(framework: Framework, port: int, workers: int = 1) -> list[str]:
    """The server command line for one replica of an example app (gunicorn, or uvicorn for Starlette)."""
    app_dir = examples_dir() / APP_DIRS[framework]
    bind = f"127.0.0.1:{port}"
    if framework != "starlette":
        app = "app:app" if framework == "flask" else "shop.wsgi"
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(app_dir),
            "-w",
            str(workers),
            "-b",
            bind,
            "--graceful-timeout",
            "2",
            app,
        ]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(app_dir),
        "app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--timeout-graceful-shutdown",
        "2",
    ]


def start_replica(
    framework: Framework,
    replica_id: str,
    env: Mapping[str, str],
    *,
    log_dir: Path | None = None,
    workers: int = 1,
) -> Replica:
    port = free_port()
    log = log_dir / f"{replica_id}.log" if log_dir else None
    child = spawn(
        replica_id, replica_command(framework, port, workers), {**env, "REPLICA_ID": replica_id}, log
    )
    return Replica(framework, replica_id, port, child)


def wait_healthy(url: str, child: Child | None = None, timeout_seconds: float = 30.0) -> None:
    """Wait until ``url``/healthz answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            hint = f" (log: {child.log})" if child.log else ""
            raise RuntimeError(f"{child.name} exited with code {child.process.returncode}{hint}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as reply:  # noqa: S310  # http only
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become healthy within {timeout_seconds:.0f} s")


# -- Redis -------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A Redis for the demo; ``kind`` says what it is, for the announcement."""

    url: str
    kind: str
    child: Child | None = None
    _stop: list[object] = field(default_factory=list)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
        for server in self._stop:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]


def redis_server_argv(binary: str, port: int, work_dir: Path) -> list[str]:
    """A throwaway redis-server on loopback: nothing saved, files in ``work_dir``."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(work_dir),
    ]


def start_redis(work_dir: Path, url: str | None = None) -> RedisServer:
    """The Redis at ``url``; else a local redis-server on a free port; else fakeredis's."""
    if url:
        return RedisServer(url, f"the Redis at {redact_url(url)} (REDIS_URL)")
    binary = shutil.which("redis-server")
    if binary:
        port = free_port()
        child = spawn(
            "redis-server",
            redis_server_argv(binary, port, work_dir),
            {},
            work_dir / "redis.log",
        )
        server = RedisServer(f"redis://127.0.0.1:{port}/1", f"a redis-server on port {port}", child)
        _wait_for_redis(port, child)
        return server
    try:
        import fakeredis
    except ImportError:
        raise RuntimeError(
            "no Redis: set REDIS_URL, install redis-server, or pip install 'sharedsession[test]' "
            "for fakeredis's in-memory server"
        ) from None
    fake = fakeredis.TcpFakeServer(("127.0.0.1", 0))
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    port = fake.server_address[1]
    return RedisServer(
        f"redis://127.0.0.1:{port}/1",
        f"fakeredis's embedded in-memory Redis-protocol server on port {port} "
        "(no redis-server found; nothing is persisted)",
        _stop=[fake],
    )


def _wait_for_redis(port: int, child: Child, timeout_seconds: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"redis-server exited (log: {child.log})")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.05)
    raise TimeoutError("redis-server did not answer PING")


@contextlib.contextmanager
def stopping(children: list[Child]) -> Iterator[list[Child]]:
    """Stop every child on the way out, whatever the way out is."""
    try:
        yield children
    finally:
        for child in reversed(children):
            child.stop()
