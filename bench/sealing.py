"""What encryption at rest costs a request in CPU, measured in-process: ``python -m bench sealing``.

The HTTP benchmark compares the ``sharedsession`` and ``sharedsession-enc``
variants under wrk, where the difference is a few percent of a request and
easily lost in the noise of a shared machine. This measures it directly: the
core's load and save steps of ``/read`` and ``/write`` (the same session as
the benchmark's, ``{"user": "alice", "n": 5}``), driven with the replies Redis
would give, so that only the CPU work of sharedsession is timed, with and
without ``encryption_keys``. The best of several runs is kept.

Requests go round a thousand sessions, more than the sealer keeps the
derived keys of: each request derives its session's key once (its save
reuses what its load derived), as on a replica serving many users. The HTTP
benchmark's wrk, with one session, hits that cache on every request.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bench.harness import SECRET
from sharedsession import SessionConfig
from sharedsession._core import keys as k
from sharedsession._core.ops import Arg, Steps
from sharedsession._core.plan import SessionCore
from sharedsession._core.record import UNBOUND
from sharedsession._core.signing import CookieSigner, new_sid

T = TypeVar("T")
#: Sessions the requests go round (more than sealing.py keeps the keys of).
SESSIONS = 1000
LOGIN_DATA = {"user": b'"alice"', "n": b"5"}  # as the codec stores {"user": "alice", "n": 5}


@dataclass(frozen=True)
class Cost:
    route: str
    plain_us: float
    sealed_us: float

    @property
    def extra_us(self) -> float:
        return self.sealed_us - self.plain_us


def _drive(steps: Steps[T], replies: Sequence[Sequence[object]]) -> T:
    answers = iter(replies)
    sent: Sequence[object] | None = None
    while True:
        try:
            steps.send(sent)  # type: ignore[arg-type]  # None primes it
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        sent = next(answers)


def _requests(encrypted: bool, sessions: int = SESSIONS) -> dict[str, Callable[[], None]]:
    from sharedsession._aead import AesGcm

    keys = [bytes(range(32))] if encrypted else []
    config = SessionConfig(secret_key=SECRET, encryption_keys=keys)
    core = SessionCore(config, cipher=AesGcm)
    signer = CookieSigner(config.secret_keys, time.time)
    stored: list[tuple[str, bytes]] = []  # (cookie, what the LOAD script answers), per session
    for _ in range(sessions):
        sid = new_sid()
        pairs: list[Arg] = [arg for key, raw in LOGIN_DATA.items() for arg in (key, raw)]
        if core.sealer is not None:
            pairs = core.sealer.seal_pairs(k.handle_of(sid), pairs)
        fields = {k.VERSION: k.FORMAT_VERSION, k.CREATED: str(int(time.time() * 1000))}
        for i in range(0, len(pairs), 2):
            value = pairs[i + 1]
            fields[str(pairs[i])] = value.decode() if isinstance(value, bytes) else str(value)
        stored.append((signer.sign(sid), json.dumps(fields).encode()))
    turn = itertools.cycle(stored)

    def read() -> None:
        cookie, reply = next(turn)
        session = _drive(core.load(cookie, UNBOUND), [[reply]])
        session.get("user")
        _drive(core.save(session), [])

    def write() -> None:
        cookie, reply = next(turn)
        session = _drive(core.load(cookie, UNBOUND), [[reply]])
        session["n"] = session.get("n", 0) + 1
        _drive(core.save(session), [[1]])

    return {"read": read, "write": write}


def _best_us(request: Callable[[], None], n: int, runs: int) -> float:
    for _ in range(max(n // 10, 1)):  # warm up
        request()
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(n):
            request()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def measure(n: int = 20_000, runs: int = 5, sessions: int = SESSIONS) -> list[Cost]:
    """CPU µs per request of the core's steps for /read and /write, plain and encrypted."""
    plain, sealed = _requests(False, sessions), _requests(True, sessions)
    return [Cost(route, _best_us(plain[route], n, runs), _best_us(sealed[route], n, runs)) for route in plain]


def report(costs: Sequence[Cost]) -> str:
    lines = [
        "CPU per request of sharedsession's load and save steps (no I/O), best of runs:",
        "",
        "| route | plain µs | encrypted µs | encryption costs |",
        "|:---|---:|---:|---:|",
    ]
    lines += [f"| /{c.route} | {c.plain_us:.1f} | {c.sealed_us:.1f} | +{c.extra_us:.1f} µs |" for c in costs]
    return "\n".join(lines)


def main(n: int = 20_000) -> int:
    print(report(measure(n)))
    return 0
