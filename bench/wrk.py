"""Drive wrk: a Lua script per route (method, fixed cookie) that prints a JSON summary."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MARKER = "BENCH-RESULT "

INSTALL_HINT = (
    "wrk is not installed. It is a Debian/Ubuntu package, not a Python one:\n"
    "    sudo apt-get install -y wrk        (Debian, Ubuntu)\n"
    "    brew install wrk                   (macOS)\n"
    "or build it from https://github.com/wg/wrk"
)

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,'
    .. '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    "MARKER", summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors, timeouts and non-2xx/3xx answers

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


def find_wrk() -> str:
    """The wrk binary, or SystemExit with how to install it."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(INSTALL_HINT)
    return path


def lua_script(method: str, cookie: str | None) -> str:
    lines = [f'wrk.method = "{method}"']
    if method == "POST":
        lines.append('wrk.headers["Content-Length"] = "0"')
    if cookie is not None:
        lines.append(f'wrk.headers["Cookie"] = {json.dumps(cookie)}')
    return "\n".join(lines) + "\n" + _DONE.replace("MARKER", MARKER)


def parse(output: str) -> WrkResult:
    """The summary our Lua ``done`` hook printed; ValueError if it is missing."""
    for line in output.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            errors = sum(int(data[k]) for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                requests=int(data["requests"]),
                duration_s=int(data["duration_us"]) / 1e6,
                p50_ms=int(data["p50_us"]) / 1000,
                p99_ms=int(data["p99_us"]) / 1000,
                errors=errors,
            )
    raise ValueError(f"no wrk summary in its output:\n{output}")


def command(
    wrk: str, url: str, script: Path, *, duration_s: int, threads: int, connections: int
) -> list[str]:
    return [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",  # wrk takes whole seconds
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]


def run(
    wrk: str,
    url: str,
    *,
    method: str,
    cookie: str | None,
    duration_s: int,
    threads: int,
    connections: int,
    work_dir: Path,
    pin: Sequence[str] = (),
) -> WrkResult:
    script = work_dir / f"wrk-{method.lower()}-{abs(hash(cookie)) % 10**8}.lua"
    script.write_text(lua_script(method, cookie))
    argv = [*pin, *command(wrk, url, script, duration_s=duration_s, threads=threads, connections=connections)]
    done = subprocess.run(  # noqa: S603  # our own command line
        argv, capture_output=True, text=True, timeout=duration_s + 30, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse(done.stdout)
