"""``sharedsession demo``: several replicas behind a round-robin balancer, one session.

Starts a Redis (``REDIS_URL``, else a local ``redis-server``, else fakeredis's
in-memory server), three replicas each of the Flask example (gunicorn), the
Starlette example (uvicorn) and the Django example (gunicorn), and a
round-robin balancer on one port; then walks a scripted user through them and
prints what each request saw. ``--serve`` keeps everything up for a browser until Ctrl-C.
Every process it started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from sharedsession.demo.balancer import RoundRobinBalancer
from sharedsession.demo.processes import (
    Child,
    Framework,
    Replica,
    start_redis,
    start_replica,
    stopping,
    wait_healthy,
)
from sharedsession.demo.walkthrough import walk

__all__ = ["add_arguments", "run"]

NEEDS = ("flask", "starlette", "django", "gunicorn", "uvicorn", "multipart")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--serve",
        action="store_true",
        help="after the walkthrough, keep everything up for a browser until Ctrl-C",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8080,
        help="port of the round-robin entry (default 8080; 0: any free port)",
    )
    parser.add_argument(
        "--replicas", type=int, default=3, metavar="N", help="replicas per framework (default 3)"
    )


def run(args: argparse.Namespace) -> int:
    missing = [name for name in NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        print(
            f"sharedsession demo needs {', '.join(missing)}: pip install 'sharedsession[examples]'",
            file=sys.stderr,
        )
        return 2
    if args.replicas < 1:
        print("--replicas must be at least 1", file=sys.stderr)
        return 2
    # Ctrl-C and SIGTERM both unwind through the finally blocks below.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
        return 130


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="sharedsession-demo-"))
    redis = start_redis(work, os.environ.get("REDIS_URL"))
    print(f"Redis: {redis.kind}")
    children: list[Child] = [redis.child] if redis.child else []
    try:
        with stopping(children):
            env = {
                "REDIS_URL": redis.url,
                # One random secret shared by every replica: what makes a cookie
                # issued by one replica valid on all the others.
                "SECRET_KEY": secrets.token_urlsafe(32),
                "KEY_PREFIX": f"demo:{secrets.token_hex(4)}:",
            }
            replicas = _start_replicas(args.replicas, env, work, children)
            served: list[str] = []
            port, stop_balancer = _start_balancer(replicas, args.port, served)
            try:
                url = f"http://127.0.0.1:{port}"
                print(f"Round-robin entry: {url} -> " + ", ".join(r.replica_id for r in replicas))
                print(f"Logs: {work}\n")
                ok = walk(url, lambda: served[-1] if served else "?")
                if args.serve:
                    print(f"\nServing on {url} (open it in a browser). Ctrl-C stops everything.", flush=True)
                    while True:
                        time.sleep(3600)
                return 0 if ok else 1
            finally:
                stop_balancer()
    finally:
        redis.stop()


def _start_replicas(n: int, env: dict[str, str], work: Path, children: list[Child]) -> list[Replica]:
    frameworks: list[Framework] = ["flask", "starlette", "django"]
    replicas: list[Replica] = []
    # Interleaved, so that consecutive requests alternate between frameworks.
    for i in range(1, n + 1):
        for framework in frameworks:
            replica = start_replica(framework, f"{framework}-{i}", env, log_dir=work)
            children.append(replica.child)
            replicas.append(replica)
    for replica in replicas:
        wait_healthy(replica.url, replica.child)
    return replicas


def _start_balancer(replicas: list[Replica], port: int, served: list[str]) -> tuple[int, Callable[[], None]]:
    """Start the balancer on a thread of its own; ``served`` collects who served each request."""
    loop = asyncio.new_event_loop()

    def record(method: str, path: str, index: int) -> None:
        served.append(replicas[index].replica_id)

    balancer = RoundRobinBalancer([("127.0.0.1", r.port) for r in replicas], on_request=record)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        bound = asyncio.run_coroutine_threadsafe(balancer.start("127.0.0.1", port), loop).result(10)
    except OSError:
        if port == 0:
            raise
        print(f"port {port} is taken; using a free one")
        bound = asyncio.run_coroutine_threadsafe(balancer.start("127.0.0.1", 0), loop).result(10)

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(balancer.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    return bound, stop
