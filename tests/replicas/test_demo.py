"""`sharedsession demo`: the walkthrough, and Ctrl-C leaving no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).with_name("sharedsession")
FINAL_LINE = re.compile(r"^(\d+) requests, (\d+) replicas, 1 session, 0 updates lost$", re.M)


def demo_env(redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def test_demo_walks_one_session_through_six_replicas(server_redis_url: str) -> None:
    done = subprocess.run(
        [str(SCRIPT), "demo", "--port", "0"],
        env=demo_env(server_redis_url),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    match = FINAL_LINE.search(done.stdout)
    assert match, done.stdout
    assert int(match.group(2)) == 6
    assert "flask" in done.stdout
    assert "starlette" in done.stdout


def children_of(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc), whatever its process group."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_every_process_the_demo_started() -> None:
    # No REDIS_URL: the demo starts a Redis of its own too, which must also stop.
    process = subprocess.Popen(
        [str(SCRIPT), "demo", "--serve", "--port", "0"],
        env=demo_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 180
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Serving on"):
                break
        assert any(line.startswith("Serving on") for line in lines), "".join(lines)
        started = children_of(process.pid)
        assert len(started) >= 7  # six replicas (and their workers) and a Redis, at least
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(pid) for pid in started):
            time.sleep(0.1)
        assert [pid for pid in started if alive(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
