"""The benchmark's Redis: start one (or use REDIS_URL), and read what each request cost it.

Commands per request come from ``INFO commandstats`` deltas around a
measurement, divided by the requests made. Those counts include the commands
that Lua scripts run inside Redis (an EVALSHA that runs HGETALL counts both),
so they say how much work Redis did, not how many commands were sent: the
commands sent, and round trips, are counted by :mod:`bench.proxy`.
Redis CPU per request is the delta of ``used_cpu_user + used_cpu_sys``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from sharedsession.demo.processes import Child, free_port, redis_server_argv, spawn

# Sent by the harness itself around each measurement: not the apps' work.
HARNESS_COMMANDS = frozenset({"info"})


@dataclass(frozen=True)
class Snapshot:
    calls: Mapping[str, int]  # command name (lower case, "|" for subcommands) -> calls
    cpu_s: float


@dataclass(frozen=True)
class Usage:
    """What Redis did between two snapshots."""

    calls: Mapping[str, int]
    cpu_s: float

    def per_request(self, requests: int) -> dict[str, float]:
        if requests <= 0:
            return {}
        return {name: n / requests for name, n in sorted(self.calls.items()) if n}


def delta(before: Snapshot, after: Snapshot) -> Usage:
    names = set(before.calls) | set(after.calls)
    calls = {
        name: after.calls.get(name, 0) - before.calls.get(name, 0)
        for name in names
        if name not in HARNESS_COMMANDS
    }
    return Usage({k: v for k, v in sorted(calls.items()) if v > 0}, max(0.0, after.cpu_s - before.cpu_s))


def parse_commandstats(info: Mapping[str, Any]) -> dict[str, int]:
    """``INFO commandstats`` as redis-py parses it (``cmdstat_get: {calls: ...}``) -> name: calls."""
    calls: dict[str, int] = {}
    for key, value in info.items():
        if key.startswith("cmdstat_") and isinstance(value, Mapping):
            calls[key[len("cmdstat_") :].lower()] = int(value.get("calls", 0))
    return calls


@dataclass
class BenchRedis:
    """A Redis the apps and the harness share: our own redis-server, or the one at REDIS_URL."""

    url: str
    owned: bool
    child: Child | None = None
    work_dir: Path | None = None
    client: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.client = redis.Redis.from_url(self.url)

    @property
    def host_port(self) -> tuple[str, int]:
        kwargs = self.client.connection_pool.connection_kwargs
        return str(kwargs.get("host", "127.0.0.1")), int(kwargs.get("port", 6379))

    def url_via(self, host: str, port: int) -> str:
        """This Redis's URL (same database) reached through another address (the proxy)."""
        db = int(self.client.connection_pool.connection_kwargs.get("db", 0))
        return f"redis://{host}:{port}/{db}"

    def snapshot(self) -> Snapshot:
        info = self.client.info("commandstats")
        cpu = self.client.info("cpu")
        return Snapshot(parse_commandstats(info), float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]))

    def version(self) -> str:
        return str(self.client.info("server").get("redis_version", "?"))

    def memory_usage(self, key: str) -> int:
        used = self.client.memory_usage(key, samples=0)
        return int(used or 0)

    def payload_bytes(self, key: str) -> int:
        """Bytes of data stored under ``key``: a string's value, or a hash's field names and values."""
        kind = self.client.type(key)
        if kind == b"hash":
            return sum(len(f) + len(v) for f, v in self.client.hgetall(key).items())
        if kind == b"string":
            return int(self.client.strlen(key))
        return 0

    def keys(self, pattern: str) -> list[str]:
        return sorted(k.decode() for k in self.client.scan_iter(match=pattern, count=1000))

    def delete_matching(self, pattern: str) -> None:
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                self.client.delete(*batch)
                batch = []
        if batch:
            self.client.delete(*batch)

    def close(self) -> None:
        self.client.close()
        if self.child is not None:
            self.child.stop()
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)


def start(url: str | None, *, pin: Sequence[str] = ()) -> BenchRedis:
    """The Redis at ``url``; without one, a redis-server of our own on a free loopback port."""
    if url:
        return BenchRedis(url, owned=False)
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit(
            "no Redis: install redis-server (sudo apt-get install -y redis-server) "
            "or set REDIS_URL to a Redis the benchmark may use"
        )
    work = Path(tempfile.mkdtemp(prefix="sharedsession-bench-redis-"))
    port = free_port()
    argv = [*pin, *redis_server_argv(binary, port, work)]
    child = spawn("redis-server", argv, {}, work / "redis.log")
    server = BenchRedis(f"redis://127.0.0.1:{port}/0", owned=True, child=child, work_dir=work)
    deadline = time.monotonic() + 10
    while True:
        try:
            server.client.ping()
            return server
        except redis.ConnectionError:
            if not child.alive() or time.monotonic() > deadline:
                log = (work / "redis.log").read_text(errors="replace")[-2000:]
                server.close()
                raise RuntimeError(f"redis-server did not start:\n{log}") from None
            time.sleep(0.05)
