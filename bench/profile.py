"""Profile sharedsession's request path under load: py-spy on the app server while wrk runs.

``python -m bench profile`` samples the serving process (gunicorn's worker,
or uvicorn) on ``/read`` and ``/write`` (or the ``--variants`` and ``--routes``
given) and prints, per framework and route,
the functions where the CPU time goes (own time) and the share of time spent
under each of sharedsession's functions (inclusive). Only on-CPU time is
sampled: time spent waiting for Redis or for the next request is not.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import http, redis_tools, servers, wrk
from bench.harness import SECRET, Cpus, cookie_for, login
from bench.model import Framework, route, variant

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


@dataclass(frozen=True)
class Profile:
    label: str
    samples: int
    rps: float
    own: list[tuple[str, float]]  # function -> share of samples, top first
    inclusive: list[tuple[str, float]]  # sharedsession functions -> share of samples under them


def short(frame: str) -> str:
    """``f (/x/site-packages/sharedsession/_core/codec.py:12)`` -> ``f (sharedsession/_core/codec.py)``."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    if path.startswith(".") and "/" in path:  # lib/python3.x/...: the standard library
        path = "stdlib/" + path.split("/", 1)[1]
    return f"{match['func']} ({path})"


def summarize(raw: str, *, top: int = 15) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """Collapsed stacks (``a;b;c 12`` per line) -> (samples, own time top, sharedsession inclusive top)."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            if "sharedsession/" in name:
                inclusive[name] += count
    if not total:
        return 0, [], []
    return (
        total,
        [(name, n / total) for name, n in own.most_common(top)],
        [(name, n / total) for name, n in inclusive.most_common(top)],
    )


def profile_one(
    framework: Framework,
    route_name: str,
    *,
    redis: redis_tools.BenchRedis,
    duration_s: int,
    connections: int,
    cpus: Cpus,
    work_dir: Path,
    rate: int = 500,
    variant_name: str = "sharedsession",
) -> Profile:
    pyspy = shutil.which(
        "py-spy", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if pyspy is None:
        raise SystemExit("py-spy is missing: pip install -e '.[bench]'")
    v = variant(f"{framework}/{variant_name}")
    r = route(route_name)
    server = servers.start(v, redis.url, secret=SECRET, prefix="", cpu=cpus.server, log_dir=work_dir)
    try:
        cookie = cookie_for(r, login(server))
        http.many([(server.port, r.method, r.path, cookie)] * 200, concurrency=connections)
        result: list[wrk.WrkResult] = []

        def load() -> None:
            result.append(
                wrk.run(
                    wrk.find_wrk(),
                    f"http://127.0.0.1:{server.port}{r.path}",
                    method=r.method,
                    cookie=cookie,
                    duration_s=duration_s + 1,
                    threads=1,
                    connections=connections,
                    work_dir=work_dir,
                    pin=servers.pin_prefix(cpus.load),
                )
            )

        loader = threading.Thread(target=load)
        loader.start()
        out = work_dir / f"profile-{framework}-{route_name}.txt"
        pid = servers.AppServer.worker_pids(server)[0]
        argv: Sequence[str] = [
            pyspy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(duration_s),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ]
        subprocess.run(argv, capture_output=True, check=True, timeout=duration_s + 30)  # noqa: S603
        loader.join()
        samples, own, inclusive = summarize(out.read_text())
        return Profile(f"{v.label} {r.path}", samples, result[0].rps if result else 0.0, own, inclusive)
    finally:
        server.stop()


def markdown(profiles: Sequence[Profile]) -> str:
    out: list[str] = []
    for p in profiles:
        out += [
            f"### {p.label}: {p.rps:,.0f} req/s under py-spy, {p.samples} samples",
            "",
            "| own time | function |",
            "|---:|:---|",
            *(f"| {share * 100:.1f}% | `{name}` |" for name, share in p.own),
            "",
            "| under it (inclusive) | sharedsession function |",
            "|---:|:---|",
            *(f"| {share * 100:.1f}% | `{name}` |" for name, share in p.inclusive),
            "",
        ]
    return "\n".join(out)
