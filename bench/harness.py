"""The benchmark's run: a counting pass, interleaved throughput rounds, and the lost-updates test.

0. **Delay line** (the ``delay`` network setting): :mod:`bench.delay` started
   between Redis and the apps, calibrated, and checked by timing PINGs
   straight to Redis and through it (again after the rounds).
1. **Counting pass** (sequential requests, through :class:`~bench.proxy.CountingProxy`):
   per variant, session shape and route, the commands sent, round trips and
   bytes per request, the fields a write sets, the commands Redis ran
   (``INFO commandstats``, scripts' inner commands included), then bytes in
   Redis and cookie bytes per session of each shape. It also checks that
   every variant answers before the long part starts.
2. **Rounds**: in each round, every variant of a framework in turn (A B C A B
   C ...), one server at a time (a server per network setting, each with
   its Redis URL: straight, or through the delay line), each route of each
   session shape measured by wrk for the same duration. Ratios are taken to
   the framework's floor *of the same round*.
3. **Lost updates**: per variant, two servers (two replicas) on one Redis;
   200 concurrent writes of distinct keys in one session, alternating between
   them; then the session is read back with the cookie a browser would hold.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import delay, http, proxy, redis_tools, servers, wrk
from bench.model import (
    FORGED,
    NETWORKS,
    ROUTES,
    SETTING_ROUTES,
    SHAPES,
    TINY_ONLY,
    VARIANTS,
    Framework,
    Network,
    Route,
    Shape,
    Variant,
    forge,
)

SECRET = "bench-secret-key-" + "0123456789abcdef" * 2

Log = Callable[[str], None]


@dataclass
class Options:
    duration_s: int = 2
    rounds: int = 5
    connections: int = 8
    threads: int = 1
    warmup_requests: int = 100
    count_requests: int = 50
    lost_writes: int = 200
    frameworks: tuple[Framework, ...] = ("flask", "asgi")
    # Variant names to run; () = all but the optional ones (the floor always runs).
    variants: tuple[str, ...] = ()
    routes: tuple[str, ...] = ()  # route names; () = all
    networks: tuple[Network, ...] = NETWORKS
    shapes: tuple[Shape, ...] = SHAPES
    rtt_ms: float = 0.5  # what the delay line adds to a round trip
    redis_url: str | None = None  # None: start a redis-server of our own
    pin: bool = True
    lost: bool = True
    command: str = "python -m bench"
    # Other builds of sharedsession (tag -> a src folder), run as extra variants
    # next to the installed one, in the same rounds: before/after comparisons.
    builds: dict[str, str] = field(default_factory=dict)

    def selected_variants(self) -> list[Variant]:
        chosen: list[Variant] = []
        for v in VARIANTS:
            if v.framework in self.frameworks and (
                v.is_floor or v.name in self.variants or (not self.variants and not v.optional)
            ):
                chosen.append(v)
                if v.name == "sharedsession":
                    chosen += [v.built(tag) for tag in self.builds]
        return chosen

    def selected_routes(self) -> list[Route]:
        return [r for r in ROUTES if not self.routes or r.name in self.routes]

    def networks_of(self, v: Variant) -> list[Network]:
        """Where ``v`` runs: every network setting, or loopback only if it does not use Redis."""
        return list(self.networks) if v.server_side else ["loopback"]

    def shapes_of(self, v: Variant) -> list[Shape]:
        """The session shapes wrk measures ``v`` with (the floor has no session: "tiny" stands for it)."""
        if v.is_floor:
            return ["tiny"]
        if v.name in TINY_ONLY:
            return ["tiny"] if "tiny" in self.shapes else []
        return list(self.shapes)

    def routes_of(self, v: Variant, network: Network, shape: Shape) -> list[Route]:
        """Every selected route on loopback with the tiny session; elsewhere those of SETTING_ROUTES.

        The floor has no session: its routes are those of every setting (each setting's
        ratios are taken to it).
        """
        routes = self.selected_routes()
        if v.is_floor or (network == "loopback" and shape == "tiny"):
            return routes
        return [r for r in routes if r.name in SETTING_ROUTES]

    def plan(self, v: Variant) -> list[tuple[Network, list[tuple[Shape, Route]]]]:
        """Per server of ``v`` (one per network setting): the (shape, route) pairs wrk measures."""
        out: list[tuple[Network, list[tuple[Shape, Route]]]] = []
        for network in self.networks_of(v):
            pairs = [(shape, r) for shape in self.shapes_of(v) for r in self.routes_of(v, network, shape)]
            if pairs:
                out.append((network, pairs))
        return out

    def measurements(self) -> int:
        """wrk runs per round."""
        return sum(len(pairs) for v in self.selected_variants() for _, pairs in self.plan(v))

    def servers_per_round(self) -> int:
        return sum(len(self.plan(v)) for v in self.selected_variants())


@dataclass
class Sample:
    """One wrk run: one variant, one route, one round."""

    round: int
    variant: str
    route: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    commands: dict[str, float]  # INFO commandstats calls per request (inner script commands included)
    redis_cpu_us: float  # Redis CPU per request
    server_cpu_us: float = 0.0  # the app server's CPU per request (user + system)
    network: str = "loopback"  # Network
    shape: str = "tiny"  # Shape


@dataclass
class Work:
    """Redis work per request, from the counting pass (sequential requests through the proxy)."""

    variant: str
    route: str
    requests: int
    failed: int  # answers other than 2xx/3xx
    round_trips: float
    sent: dict[str, float]  # commands sent, by name
    run: dict[str, float]  # commands Redis ran, scripts' inner commands included
    shape: str = "tiny"
    bytes_sent: float = 0.0  # app -> Redis, per request
    bytes_received: float = 0.0  # Redis -> app, per request
    fields_written: float = 0.0  # fields sharedsession's UPDATE set or deleted, per request
    listener: dict[str, float] = field(default_factory=dict)  # the local cache's listener, per request


@dataclass
class Footprint:
    """One session of one shape (made by ``POST /login``): in Redis, and in the cookie."""

    variant: str
    key: str | None
    memory_bytes: int  # MEMORY USAGE (key, value and Redis' overhead)
    key_bytes: int
    payload_bytes: int  # the stored value (a hash: its field names and values)
    cookie_bytes: int  # "session=<value>", as the browser sends it back on every request
    shape: str = "tiny"


@dataclass
class Lost:
    variant: str
    writes: int
    kept: int
    failed: int

    @property
    def lost(self) -> int:
        return self.writes - self.kept


@dataclass
class Results:
    meta: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)
    footprints: list[Footprint] = field(default_factory=list)
    lost: list[Lost] = field(default_factory=list)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Results:
        data = json.loads(text)
        return cls(
            meta=data["meta"],
            samples=[Sample(**s) for s in data["samples"]],
            work=[Work(**w) for w in data["work"]],
            footprints=[Footprint(**f) for f in data["footprints"]],
            lost=[Lost(**x) for x in data["lost"]],
        )


# -- where things run -----------------------------------------------------------------


@dataclass(frozen=True)
class Cpus:
    server: int | None
    load: int | None  # wrk
    redis: int | None

    @classmethod
    def plan(cls, pin: bool) -> Cpus:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if not pin or len(cpus) < 2:
            return cls(None, None, None)
        return cls(cpus[0], cpus[1], cpus[2] if len(cpus) > 2 else cpus[1])

    def describe(self) -> str:
        if self.server is None:
            return "not pinned"
        return f"app server on CPU {self.server}, wrk on CPU {self.load}, Redis on CPU {self.redis} (taskset)"


def session_key(variant: Variant, prefix: str, cookie: str | None) -> str | None:
    """The Redis key of the session a login cookie names, per library."""
    if cookie is None or not variant.server_side:
        return None
    value = cookie.split("=", 1)[1]
    if variant.name.startswith("sharedsession"):  # sharedsession, sharedsession-enc
        from sharedsession._core.keys import handle_of

        return f"{prefix}sharedsession:s:{handle_of(value.split('.', 1)[0])}"
    if variant.name == "flask-session":
        return f"{prefix}session:{value}"
    if variant.name == "starsessions":
        return f"{prefix}starsessions.{value}"
    return None


# The floor ignores cookies; it still gets one of a usual length, so requests are the same size.
FLOOR_COOKIE = f"{http.COOKIE_NAME}=" + "0" * 90


def login(server: servers.AppServer, shape: Shape = "tiny") -> str | None:
    reply = http.request(server.port, "POST", "/login" + ("?shape=realistic" if shape == "realistic" else ""))
    if reply.status != 200:
        raise RuntimeError(f"{server.variant.key}: POST /login answered {reply.status}: {reply.body[:200]!r}")
    if server.variant.is_floor:
        return FLOOR_COOKIE
    cookie = reply.session_cookie()
    if cookie is None:
        raise RuntimeError(f"{server.variant.key}: POST /login set no session cookie")
    return cookie


def cookie_for(route: Route, cookie: str | None) -> str | None:
    if route.cookie == "none" or cookie is None:
        return None
    return f"{http.COOKIE_NAME}={forge(cookie.split('=', 1)[1])}" if route.cookie == "forged" else cookie


# -- the run --------------------------------------------------------------------------


class Bench:
    def __init__(self, options: Options, log: Log = print) -> None:
        self.options = options
        self.log = log
        self.cpus = Cpus.plan(options.pin)
        self.wrk = wrk.find_wrk()
        self.work_dir = Path(tempfile.mkdtemp(prefix="sharedsession-bench-"))
        self.prefix = ""

    def run(self) -> Results:
        options = self.options
        variants = options.selected_variants()
        routes = options.selected_routes()
        with self._redis() as redis, self._delay_line(redis) as line:
            started = time.monotonic()
            results = Results(meta=self._meta(redis, variants, routes))
            self.log(f"Redis: {redis.url} ({'started by the benchmark' if redis.owned else 'REDIS_URL'})")
            self.log(f"pinning: {self.cpus.describe()}")
            urls: dict[Network, str] = {"loopback": redis.url}
            if line is not None:
                line_process, rtt = line
                urls["delay"] = redis.url_via("127.0.0.1", line_process.port)
                results.meta["delay"] = {
                    "rtt_ms": options.rtt_ms,
                    "hold_ms": line_process.hold_ms,
                    "ping_before": _ping_json(rtt),
                }
                self.log(
                    f"delay line: holds each chunk {line_process.hold_ms:.3f} ms either way; {rtt.describe()}"
                )
            self.log("counting pass: commands, round trips, bytes per request and per session")
            for variant in variants:
                # Every shape, the cookie session's too: its size says why it runs the tiny one only.
                shapes: list[Shape] = ["tiny"] if variant.is_floor else list(options.shapes)
                for shape in shapes:
                    counted = (
                        [*routes, FORGED]
                        if shape == "tiny"
                        else options.routes_of(variant, "loopback", shape)
                    )
                    work, footprint = self.count(redis, variant, counted, shape)
                    results.work += work
                    if footprint is not None:
                        results.footprints.append(footprint)
            # The 1-minute load average before the rounds and after each: other work on the
            # machine shows there (the benchmark itself keeps one to two CPUs busy).
            load = results.meta["load_average"] = [_load()]
            for round_ in range(options.rounds):
                self.log(f"round {round_ + 1}/{options.rounds} (load average {load[-1]:g})")
                for framework in options.frameworks:
                    for variant in (v for v in variants if v.framework == framework):
                        for network, pairs in options.plan(variant):
                            results.samples += self.measure(
                                redis, urls[network], variant, network, pairs, round_
                            )
                load.append(_load())
            if line is not None:
                line_process, _ = line
                after = delay.ping_rtt(redis.host_port, ("127.0.0.1", line_process.port))
                results.meta["delay"]["ping_after"] = _ping_json(after)
                self.log(f"delay line, after the rounds: {after.describe()}")
            if options.lost:
                self.log(f"lost updates: {options.lost_writes} concurrent writes over two replicas")
                for variant in variants:
                    if not variant.is_floor and not variant.build:
                        results.lost.append(self.lost_updates(redis, variant))
            results.meta["elapsed_s"] = round(time.monotonic() - started, 1)
        if line is not None:
            results.meta["delay"]["held"] = line[0].stats
            self.log(f"delay line: chunks held {_held(line[0].stats)}")
        return results

    @contextlib.contextmanager
    def _delay_line(
        self, redis: redis_tools.BenchRedis
    ) -> Iterator[tuple[delay.DelayProcess, delay.PingRtt] | None]:
        if "delay" not in self.options.networks:
            yield None
            return
        host, port = redis.host_port
        line, rtt = delay.calibrated(
            host, port, rtt_ms=self.options.rtt_ms, pin=servers.pin_prefix(self.cpus.redis)
        )
        try:
            yield line, rtt
        finally:
            line.__exit__()

    @contextlib.contextmanager
    def _redis(self) -> Iterator[redis_tools.BenchRedis]:
        redis = redis_tools.start(self.options.redis_url, pin=servers.pin_prefix(self.cpus.redis))
        if not redis.owned:
            # A shared server: keys of our own, deleted at the end; never a flush.
            self.prefix = f"bench-{secrets.token_hex(4)}:"
        try:
            yield redis
        finally:
            if not redis.owned:
                redis.delete_matching(self.prefix + "*")
            redis.close()

    @contextlib.contextmanager
    def _server(
        self, variant: Variant, redis_url: str, *, pinned: bool = True
    ) -> Iterator[servers.AppServer]:
        server = servers.start(
            variant,
            redis_url,
            secret=SECRET,
            prefix=self.prefix,
            cpu=self.cpus.server if pinned else None,
            log_dir=self.work_dir,
            src=self.options.builds.get(variant.build) if variant.build else None,
        )
        try:
            yield server
        finally:
            server.stop()

    def count(
        self, redis: redis_tools.BenchRedis, variant: Variant, routes: Sequence[Route], shape: Shape = "tiny"
    ) -> tuple[list[Work], Footprint | None]:
        n = self.options.count_requests
        work: list[Work] = []
        with (
            proxy.CountingProxy(*redis.host_port) as counter,
            self._server(variant, redis.url_via("127.0.0.1", counter.port)) as server,
        ):
            cookie = login(server, shape)
            footprint = self.footprint(redis, variant, cookie, shape) if variant.name != "none" else None
            if variant.name in TINY_ONLY and shape != "tiny":
                routes = []  # only its size is of interest: it is not measured with this shape
            for route in routes:
                sent = cookie_for(route, cookie)
                for _ in range(5):  # connections, scripts cached: the steady state
                    http.request(server.port, route.method, route.path, sent)
                before_stats, before_count = redis.snapshot(), counter.count()
                failed = 0
                for _ in range(n):
                    if http.request(server.port, route.method, route.path, sent).status >= 400:
                        failed += 1
                after_count, after_stats = counter.count(), redis.snapshot()
                trips = after_count.minus(before_count)
                usage = redis_tools.delta(before_stats, after_stats)
                work.append(
                    Work(
                        variant=variant.key,
                        route=route.name,
                        requests=n,
                        failed=failed,
                        round_trips=trips.round_trips / n,
                        sent={name: c / n for name, c in trips.commands.items()},
                        run=usage.per_request(n),
                        shape=shape,
                        bytes_sent=trips.bytes_sent / n,
                        bytes_received=trips.bytes_received / n,
                        fields_written=trips.fields_written / n,
                        listener={name: c / n for name, c in trips.listener.items()},
                    )
                )
        self.log(
            f"  {variant.key:28} {shape:9} "
            + "  ".join(f"{w.route}: {w.round_trips:g} trip{'s' if w.round_trips != 1 else ''}" for w in work)
            + (f"  (cookie {footprint.cookie_bytes} bytes)" if footprint is not None and not work else "")
        )
        return work, footprint

    def footprint(
        self, redis: redis_tools.BenchRedis, variant: Variant, cookie: str | None, shape: Shape = "tiny"
    ) -> Footprint:
        key = session_key(variant, self.prefix, cookie)
        if key is not None and not redis.client.exists(key):
            raise RuntimeError(f"{variant.key}: no session at {key} after a login")
        return Footprint(
            variant=variant.key,
            key=key,
            memory_bytes=redis.memory_usage(key) if key else 0,
            key_bytes=len(key.encode()) if key else 0,
            payload_bytes=redis.payload_bytes(key) if key else 0,
            cookie_bytes=len(cookie.encode()) if cookie else 0,
            shape=shape,
        )

    def measure(
        self,
        redis: redis_tools.BenchRedis,
        redis_url: str,
        variant: Variant,
        network: Network,
        pairs: Sequence[tuple[Shape, Route]],
        round_: int,
    ) -> list[Sample]:
        """One server of ``variant`` (its Redis at ``redis_url``), wrk on each (shape, route)."""
        options = self.options
        samples: list[Sample] = []
        with self._server(variant, redis_url) as server:
            cookies = {shape: login(server, shape) for shape in dict.fromkeys(shape for shape, _ in pairs)}
            url = f"http://127.0.0.1:{server.port}"
            for shape, route in pairs:
                sent = cookie_for(route, cookies[shape])
                http.many(
                    [(server.port, route.method, route.path, sent)] * options.warmup_requests,
                    concurrency=options.connections,
                )
                before = redis.snapshot()
                cpu_before = server.cpu_seconds()
                result = wrk.run(
                    self.wrk,
                    url + route.path,
                    method=route.method,
                    cookie=sent,
                    duration_s=options.duration_s,
                    threads=options.threads,
                    connections=options.connections,
                    work_dir=self.work_dir,
                    pin=servers.pin_prefix(self.cpus.load),
                )
                cpu = server.cpu_seconds() - cpu_before
                usage = redis_tools.delta(before, redis.snapshot())
                samples.append(
                    Sample(
                        round=round_,
                        variant=variant.key,
                        route=route.name,
                        rps=result.rps,
                        p50_ms=result.p50_ms,
                        p99_ms=result.p99_ms,
                        requests=result.requests,
                        errors=result.errors,
                        commands=usage.per_request(result.requests),
                        redis_cpu_us=usage.cpu_s * 1e6 / result.requests if result.requests else 0.0,
                        server_cpu_us=cpu * 1e6 / result.requests if result.requests else 0.0,
                        network=network,
                        shape=shape,
                    )
                )
        self.log(
            f"  {variant.key:28} {network:8} "
            + "  ".join(
                (f"{s.route}" if s.shape == "tiny" else f"{s.route}/{s.shape[:4]}")
                + f" {s.rps:,.0f}/s"
                + (f" ({s.errors} errors)" if s.errors else "")
                for s in samples
            )
        )
        return samples

    def lost_updates(self, redis: redis_tools.BenchRedis, variant: Variant) -> Lost:
        writes = self.options.lost_writes
        with (
            self._server(variant, redis.url, pinned=False) as a,
            self._server(variant, redis.url, pinned=False) as b,
        ):
            jar = login(a)
            ports = (a.port, b.port)
            calls = [(ports[i % 2], "POST", f"/kv/k{i:04d}", jar) for i in range(writes)]
            replies = http.many(calls, concurrency=writes)
            failed = sum(1 for r in replies if r.status >= 400)
            for reply in replies:  # completion order: the cookie a browser would end up with
                if reply.set_cookies:
                    jar = reply.session_cookie()
            dump = http.request(a.port, "GET", "/dump", jar)
            keys = json.loads(dump.body) if dump.status == 200 else []
            kept = sum(1 for k in keys if isinstance(k, str) and k.startswith("k"))
        self.log(f"  {variant.key:22} lost {writes - kept} of {writes}")
        return Lost(variant.key, writes, kept, failed)

    def _meta(
        self, redis: redis_tools.BenchRedis, variants: Sequence[Variant], routes: Sequence[Route]
    ) -> dict[str, Any]:
        o = self.options
        return {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": o.command,
            "settings": {
                "duration_s": o.duration_s,
                "rounds": o.rounds,
                "wrk": f"-t{o.threads} -c{o.connections} -d{o.duration_s}s",
                "warmup_requests": o.warmup_requests,
                "count_requests": o.count_requests,
                "lost_writes": o.lost_writes,
                "networks": list(o.networks),
                "shapes": list(o.shapes),
                "rtt_ms": o.rtt_ms,
            },
            "variants": [v.key for v in variants],
            "builds": dict(o.builds),
            "routes": [r.name for r in routes],
            "servers": {
                "flask": " ".join(servers.server_command("flask", 0)[1:]).replace(
                    "127.0.0.1:0", "127.0.0.1:PORT"
                ),
                "asgi": " ".join(servers.server_command("asgi", 0)[1:]).replace("--port 0", "--port PORT"),
            },
            "machine": machine_notes(self.cpus),
            "redis": {"version": redis.version(), "owned": redis.owned},
            "versions": library_versions(),
            "wrk": _wrk_version(self.wrk),
            "git": _git_describe(),
        }


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def _ping_json(rtt: delay.PingRtt) -> dict[str, float]:
    return {**asdict(rtt), "added_ms": round(rtt.added_ms, 3)}


def _held(stats: dict[str, Any]) -> str:
    parts = []
    for direction, label in (("up", "app→Redis"), ("down", "Redis→app")):
        d = stats.get(direction)
        if d:
            parts.append(f"{label} {d['chunks']:,} chunks, median {d['p50_ms']} ms, p99 {d['p99_ms']} ms")
    return "; ".join(parts) or "no figures"


def machine_notes(cpus: Cpus) -> dict[str, Any]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "pinning": cpus.describe(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def library_versions() -> dict[str, str]:
    names = [
        "sharedsession",
        "flask",
        "werkzeug",
        "gunicorn",
        "starlette",
        "uvicorn",
        "uvloop",
        "httptools",
        "redis",
        "flask-session",
        "msgspec",
        "starsessions",
        "itsdangerous",
    ]
    found: dict[str, str] = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _wrk_version(binary: str) -> str:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0] if first else "?"


def _git_describe() -> str:
    # Read-only: which commit the library was at (and whether the tree had local changes).
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
            cwd=servers.REPO,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
            cwd=servers.REPO,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + local changes in src/" if dirty else "")
