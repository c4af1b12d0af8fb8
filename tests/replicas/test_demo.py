"""`sharedsession demo`: the walkthrough, a clean exit, and Ctrl-C leaving no process behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sharedsession.demo.balancer import RoundRobinBalancer

SCRIPT = Path(sys.executable).with_name("sharedsession")
FINAL_LINE = re.compile(r"^(\d+) requests, (\d+) replicas, 1 session, 0 updates lost$", re.M)


def demo_env(redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def run_demo(redis_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "demo", "--port", "0"],
        env=demo_env(redis_url),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_demo_walks_one_session_through_nine_replicas(server_redis_url: str) -> None:
    done = run_demo(server_redis_url)
    assert done.returncode == 0, done.stdout + done.stderr
    match = FINAL_LINE.search(done.stdout)
    assert match, done.stdout
    assert int(match.group(2)) == 9
    for framework in ("flask", "starlette", "django"):
        assert f" {framework}-1 " in done.stdout, framework


def test_demo_exits_cleanly_run_after_run(server_redis_url: str) -> None:
    # Stopping the balancer used to cancel a connection still waiting for its
    # replica to hang up: most runs printed a CancelledError traceback after
    # the summary. Several runs, since it depended on timing.
    for _ in range(5):
        done = run_demo(server_redis_url)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stderr == ""
        last_line = done.stdout.rstrip("\n").rsplit("\n", 1)[-1]
        assert FINAL_LINE.fullmatch(last_line), done.stdout


async def test_closing_the_balancer_ends_open_connections_without_errors() -> None:
    # A replica that answers and keeps its connection open: the balancer, which
    # relays until the replica hangs up, is still reading from it at close().
    async def keep_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await reader.read()  # until the balancer hangs up
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    replica = await asyncio.start_server(keep_open, "127.0.0.1", 0)
    balancer = RoundRobinBalancer([("127.0.0.1", replica.sockets[0].getsockname()[1])])
    port = await balancer.start("127.0.0.1", 0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 200")
        assert await asyncio.wait_for(reader.readexactly(2), 10) == b"ok"
        await asyncio.wait_for(balancer.close(), 10)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # the client connection is closed
        writer.close()
        await writer.wait_closed()
        for _ in range(10):  # let done-callbacks run
            await asyncio.sleep(0)
    finally:
        await balancer.close()
        replica.close()
        await replica.wait_closed()
        loop.set_exception_handler(None)
    assert errors == []


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
        assert len(started) >= 10  # nine replicas (and their workers) and a Redis, at least
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
