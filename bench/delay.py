"""A userspace delay line between the apps and Redis: Redis "on another node", on one machine.

This kernel has no netem (``tc qdisc ... netem delay``), so in the ``delay``
network setting the benchmark puts a TCP proxy of its own between every app
(every variant, the competitors too) and Redis. It runs in a process of its
own, pinned beside Redis, on one thread with one ``select()`` loop:

- **Per chunk, per direction.** Whatever one ``recv()`` returns, from either
  side (a command, a pipeline, a reply, or part of one), is stamped when it
  arrives and forwarded ``--hold-ms`` later: client→Redis chunks and
  Redis→client chunks (replies, and the invalidation messages of the local
  cache's listener) alike, so a round trip waits twice the hold, as it would
  over a network.
- **A delay line, not a rate limit.** Reading never waits for earlier chunks
  to leave; chunks keep their order; bandwidth is not limited.
- **Precise enough.** ``select()`` takes its timeout in microseconds (epoll,
  and so asyncio and libuv, round it up to whole milliseconds), and the
  process's timer slack is set to 1 µs, so a chunk leaves within tens of
  microseconds of its due time. It asks for a higher scheduling priority
  (nice -10, where allowed): a network is not held up by the load on the
  CPU it shares with wrk and Redis.
- **Calibrated, and checked.** The extra hop and the loop's wake-ups add
  their own few tens of microseconds, so :func:`calibrated` starts the line
  with a hold of half the wanted round trip, times PINGs straight to Redis
  and through the line (:func:`ping_rtt`), and while a PING gains more (or
  less) than wanted, restarts it with the hold corrected by half the error.
  The harness prints the PING figures before and after the run, and the
  hold times each chunk actually got.

On SIGTERM it prints how long chunks were actually held, per direction
(count, median, p99, max), as one JSON line, and exits.

``python -m bench.delay --upstream 127.0.0.1:6379 [--hold-ms 0.25]`` prints
``PORT <n>`` once it listens on a free loopback port.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import math
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, Any

# Hold times are counted in buckets of 10 µs, up to 100 ms (the last bucket: longer).
BUCKET_US = 10
BUCKETS = 10_001
# A chunk due within this much is sent now rather than after one more select().
EARLY_S = 10e-6
PR_SET_TIMERSLACK = 29


class _Stopped(Exception):
    pass


@dataclass
class Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    n: int = 0
    max_us: float = 0.0

    def add(self, held_s: float) -> None:
        us = held_s * 1e6
        self.counts[min(BUCKETS - 1, int(us // BUCKET_US))] += 1
        self.n += 1
        self.max_us = max(self.max_us, us)

    def percentile(self, p: float) -> float:
        """The p-th percentile in µs (nearest rank; the middle of its bucket); 0 when empty."""
        if not self.n:
            return 0.0
        rank = max(1, math.ceil(p / 100 * self.n))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return (i + 0.5) * BUCKET_US
        return self.max_us

    def summary(self) -> dict[str, float]:
        return {
            "chunks": self.n,
            "p50_ms": round(self.percentile(50) / 1000, 3),
            "p99_ms": round(self.percentile(99) / 1000, 3),
            "max_ms": round(self.max_us / 1000, 3),
        }


class _Link:
    """One direction of one proxied connection: chunks read from ``src`` wait, then go to ``dst``."""

    __slots__ = ("closed", "delay", "done", "dst", "hist", "out", "queue", "shut", "src")

    def __init__(self, src: socket.socket, dst: socket.socket, delay: float, hist: Histogram) -> None:
        self.src = src
        self.dst = dst
        self.delay = delay
        self.hist = hist
        # (due, arrived, data); data None: the source closed, shut the destination's write side.
        self.queue: deque[tuple[float, float, bytes | None]] = deque()
        self.out = bytearray()
        self.closed = False  # src said EOF
        self.shut = False  # the EOF is due: shut dst's write side once ``out`` is sent
        self.done = False  # dst's write side shut


class DelayLine:
    """The loop: accept on ``listener``, connect each client to ``upstream``, delay both ways."""

    def __init__(self, listener: socket.socket, upstream: tuple[str, int], hold_s: float) -> None:
        self.listener = listener
        self.upstream = upstream
        self.half = hold_s
        self.up = Histogram()  # client -> Redis
        self.down = Histogram()  # Redis -> client
        self.links: dict[socket.socket, _Link] = {}  # by source socket
        self.peer: dict[socket.socket, socket.socket] = {}

    def stats(self) -> dict[str, Any]:
        return {
            "hold_ms": round(self.half * 1e3, 3),
            "nice": os.getpriority(os.PRIO_PROCESS, 0),
            "up": self.up.summary(),
            "down": self.down.summary(),
        }

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        try:
            server = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
        self.links[client] = _Link(client, server, self.half, self.up)
        self.links[server] = _Link(server, client, self.half, self.down)
        self.peer[client], self.peer[server] = server, client

    def _close(self, sock: socket.socket) -> None:
        other = self.peer.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            self.links.pop(s, None)
            self.peer.pop(s, None)
            with contextlib.suppress(OSError):
                s.close()

    def _read(self, link: _Link, now: float) -> None:
        try:
            data = link.src.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            self._close(link.src)
            return
        if not data:
            link.closed = True
            link.queue.append((now + link.delay, now, None))
            return
        link.queue.append((now + link.delay, now, data))

    def _flush(self, link: _Link) -> bool:
        """Send what is due; False if the connection broke (both sides are then closed)."""
        if link.out:
            try:
                sent = link.dst.send(link.out)
            except BlockingIOError:
                return True
            except OSError:
                self._close(link.src)
                return False
            del link.out[:sent]
        return True

    def _release(self, now: float) -> float | None:
        """Move due chunks to their sockets; the seconds until the next one is due (None: none waits)."""
        wait: float | None = None
        for link in list(self.links.values()):
            if link.src not in self.links:  # closed meanwhile
                continue
            while link.queue and link.queue[0][0] <= now + EARLY_S:
                _, arrived, data = link.queue.popleft()
                if data is None:
                    link.shut = True
                else:
                    link.out += data
                    link.hist.add(time.monotonic() - arrived)
            if not self._flush(link):
                continue
            if link.shut and not link.out and not link.done:
                link.done = True
                with contextlib.suppress(OSError):
                    link.dst.shutdown(socket.SHUT_WR)
            if link.done:
                back = self.links.get(link.dst)
                if back is None or back.done:
                    self._close(link.src)
                    continue
            if link.queue:
                due = link.queue[0][0] - now
                wait = due if wait is None else min(wait, due)
        return wait

    def run(self) -> None:
        while True:
            wait = self._release(time.monotonic())
            readers = [self.listener, *(s for s, link in self.links.items() if not link.closed)]
            writers = [link.dst for link in self.links.values() if link.out]
            readable, _, _ = select.select(readers, writers, [], None if wait is None else max(0.0, wait))
            now = time.monotonic()
            for sock in readable:
                if sock is self.listener:
                    self._accept()
                    continue
                link = self.links.get(sock)
                if link is not None and not link.closed:
                    self._read(link, now)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.delay", description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="HOST:PORT of Redis")
    p.add_argument("--hold-ms", type=float, default=0.25, help="how long each chunk waits, either way (0.25)")
    args = p.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0)  # 1 µs
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    line = DelayLine(listener, (host, int(port)), args.hold_ms / 1000)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    with contextlib.suppress(_Stopped):
        line.run()
    print(json.dumps(line.stats()), flush=True)
    return 0


# -- used by the harness ---------------------------------------------------------------


class DelayProcess:
    """``with DelayProcess(host, port, hold_ms=0.25) as line:``: ``line.port``, then ``line.stats``."""

    def __init__(
        self, upstream_host: str, upstream_port: int, *, hold_ms: float, pin: Sequence[str] = ()
    ) -> None:
        self.argv = [
            *pin,
            sys.executable,
            "-m",
            "bench.delay",
            "--upstream",
            f"{upstream_host}:{upstream_port}",
            "--hold-ms",
            f"{hold_ms:.4f}",
        ]
        self.upstream = (upstream_host, upstream_port)
        self.hold_ms = hold_ms
        self.port = 0
        self.stats: dict[str, Any] = {}
        self._child: subprocess.Popen[str] | None = None

    def __enter__(self) -> DelayProcess:
        if self._child is not None:  # started already (as calibrated() returns it)
            return self
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), _repo()) if p),
        }
        self._child = subprocess.Popen(  # noqa: S603  # our own command line
            self.argv, stdout=subprocess.PIPE, text=True, env=env
        )
        first = _readline(self._child.stdout, 10)
        if not first.startswith("PORT "):
            self.__exit__()
            raise RuntimeError(f"the delay line did not start: {first!r}")
        self.port = int(first.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
        try:
            out, _ = child.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            out, _ = child.communicate()
        for text in out.splitlines():
            with contextlib.suppress(ValueError):
                self.stats = json.loads(text)


def _repo() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readline(stream: IO[str] | None, timeout_s: float) -> str:
    if stream is None:
        return ""
    ready, _, _ = select.select([stream], [], [], timeout_s)
    return stream.readline().strip() if ready else ""


PING = b"*1\r\n$4\r\nPING\r\n"


def _ping_once(sock: socket.socket) -> float:
    start = time.perf_counter()
    sock.sendall(PING)
    got = b""
    while not got.endswith(b"\r\n"):
        chunk = sock.recv(64)
        if not chunk:
            raise ConnectionError("Redis closed the connection")
        got += chunk
    took = time.perf_counter() - start
    if got != b"+PONG\r\n":
        raise ConnectionError(f"unexpected reply to PING: {got!r}")
    return took


@dataclass(frozen=True)
class PingRtt:
    """PING round trips, straight to Redis and through the delay line, interleaved one by one."""

    n: int
    direct_ms: float  # medians
    via_ms: float
    direct_p90_ms: float
    via_p90_ms: float

    @property
    def added_ms(self) -> float:
        return self.via_ms - self.direct_ms

    def describe(self) -> str:
        return (
            f"+{self.added_ms:.2f} ms per round trip (PING, median of {self.n}: "
            f"{self.direct_ms:.3f} ms straight to Redis, {self.via_ms:.3f} ms through the delay line; "
            f"p90 {self.direct_p90_ms:.3f} / {self.via_p90_ms:.3f} ms)"
        )


def ping_rtt(direct: tuple[str, int], via: tuple[str, int], n: int = 300) -> PingRtt:
    """Time ``n`` PINGs each way over raw sockets (no client library), alternating."""
    times: dict[str, list[float]] = {"direct": [], "via": []}
    with (
        socket.create_connection(direct, timeout=5) as a,
        socket.create_connection(via, timeout=5) as b,
    ):
        for s in (a, b):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _ping_once(s)  # connected, warm
        for _ in range(n):
            times["direct"].append(_ping_once(a) * 1e3)
            times["via"].append(_ping_once(b) * 1e3)

    def p90(xs: list[float]) -> float:
        return statistics.quantiles(xs, n=10)[-1] if len(xs) > 1 else xs[0]

    return PingRtt(
        n=n,
        direct_ms=statistics.median(times["direct"]),
        via_ms=statistics.median(times["via"]),
        direct_p90_ms=p90(times["direct"]),
        via_p90_ms=p90(times["via"]),
    )


def calibrated(
    upstream_host: str,
    upstream_port: int,
    *,
    rtt_ms: float,
    pin: Sequence[str] = (),
    pings: int = 300,
    tries: int = 3,
    tolerance_ms: float = 0.03,
) -> tuple[DelayProcess, PingRtt]:
    """A started delay line whose PING round trip gains about ``rtt_ms``, and that measure.

    Started with half of ``rtt_ms`` each way (the hold); while a PING gains
    more or less than ``rtt_ms`` by over ``tolerance_ms`` (the extra hop and
    the wake-ups cost a little), restarted with the hold corrected by half the
    error, ``tries`` times at most; the closest is kept. The caller stops it
    (``__exit__``).
    """
    direct = (upstream_host, upstream_port)
    hold = rtt_ms / 2
    best: tuple[float, DelayProcess, PingRtt] | None = None
    for _ in range(tries):
        line = DelayProcess(upstream_host, upstream_port, hold_ms=hold, pin=pin).__enter__()
        try:
            rtt = ping_rtt(direct, ("127.0.0.1", line.port), pings)
        except BaseException:
            line.__exit__()
            if best is not None:
                best[1].__exit__()
            raise
        error = rtt.added_ms - rtt_ms
        if best is None or abs(error) < best[0]:
            if best is not None:
                best[1].__exit__()
            best = (abs(error), line, rtt)
        else:
            line.__exit__()
        if abs(error) <= tolerance_ms:
            break
        hold = max(0.0, hold - error / 2)
    if best is None:
        raise ValueError(f"tries must be 1 or more, got {tries}")
    return best[1], best[2]


if __name__ == "__main__":
    raise SystemExit(main())
