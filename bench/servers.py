"""Start one app server for one variant: gunicorn (Flask) or uvicorn (Starlette), pinned to a CPU."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import http
from bench.model import Variant
from sharedsession.demo.processes import Child, free_port, spawn

REPO = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def server_command(framework: str, port: int) -> list[str]:
    """The same settings for every variant of a framework: one worker, loopback, quiet."""
    if framework == "flask":
        return [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            "1",
            "-k",
            "sync",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "--graceful-timeout",
            "2",
            "bench.apps.flask_app:app",
        ]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.apps.asgi_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
        "--timeout-graceful-shutdown",
        "2",
    ]


def pin_prefix(cpu: int | None) -> list[str]:
    """``taskset -c <cpu>``, when there is a CPU to pin to and taskset to do it."""
    taskset = shutil.which("taskset")
    if cpu is None or taskset is None:
        return []
    return [taskset, "-c", str(cpu)]


@dataclass
class AppServer:
    variant: Variant
    port: int
    child: Child

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: gunicorn's worker, or uvicorn itself."""
        if self.variant.framework == "asgi":
            return [self.child.pid]
        children = Path(f"/proc/{self.child.pid}/task/{self.child.pid}/children")
        try:
            return [int(pid) for pid in children.read_text().split()] or [self.child.pid]
        except OSError:
            return [self.child.pid]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the serving processes; 0 where /proc is missing."""
        total = 0.0
        for pid in self.worker_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            total += (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
        return total

    def stop(self) -> None:
        self.child.stop(grace_seconds=3)


def start(
    variant: Variant,
    redis_url: str,
    *,
    secret: str,
    prefix: str,
    cpu: int | None,
    log_dir: Path,
    src: str | None = None,
    timeout_s: float = 30,
) -> AppServer:
    """Start ``variant``'s app; ``src``: a folder holding another build of ``sharedsession`` to use."""
    port = free_port()
    argv: Sequence[str] = [*pin_prefix(cpu), *server_command(variant.framework, port)]
    env = {
        "BENCH_VARIANT": variant.name,
        "BENCH_REDIS_URL": redis_url,
        "BENCH_SECRET": secret,
        "BENCH_PREFIX": prefix,
        "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH"), str(REPO)) if p),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    log = log_dir / f"{variant.framework}-{variant.name}{variant.build}-{port}.log"
    server = AppServer(variant, port, spawn(variant.key, argv, env, log))
    deadline = time.monotonic() + timeout_s
    while True:
        if not server.child.alive():
            raise RuntimeError(f"{variant.key} server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if http.request(port, "GET", "/anon", timeout=2).status == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise TimeoutError(f"{variant.key} server did not answer within {timeout_s:.0f} s (log: {log})")
        time.sleep(0.05)
