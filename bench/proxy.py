"""A TCP proxy between the apps and Redis that counts round trips and the commands sent.

A *round trip* is a turn-around on one connection: the client sends (one
command, or a whole pipeline), then waits for the reply. The proxy counts
one each time bytes flow from client to server after the last flow went the
other way (or on a fresh connection). A pipeline of N commands written at
once is one round trip, as it is on the wire; N commands each awaiting its
reply are N round trips.

The client's stream is also parsed as RESP, so the commands sent are known
by name (EVALSHA named by the script it runs, when the script is one of
sharedsession's). Commands that scripts run inside Redis are not sent and do
not appear here; ``INFO commandstats`` counts them (see
:mod:`bench.redis_tools`).

It also counts the bytes each way, and the fields sharedsession's UPDATE
script sets or deletes (its ARGV says how many): what a write sends.

The local cache's listener (a connection that turns on ``CLIENT TRACKING``
or subscribes) is counted apart: its heartbeat PINGs are not the requests'
round trips.

The proxy adds latency, so it is used in a separate, sequential run, never
while throughput is measured (the ``delay`` network setting uses
:mod:`bench.delay`, which counts nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Count:
    round_trips: int
    commands: Mapping[str, int]
    bytes_sent: int = 0  # app -> Redis
    bytes_received: int = 0  # Redis -> app
    fields_written: int = 0  # set or deleted by EVALSHA update
    listener: Mapping[str, int] = field(default_factory=dict)  # commands on listener connections

    def minus(self, before: Count) -> Count:
        return Count(
            self.round_trips - before.round_trips,
            _diff(self.commands, before.commands),
            self.bytes_sent - before.bytes_sent,
            self.bytes_received - before.bytes_received,
            self.fields_written - before.fields_written,
            _diff(self.listener, before.listener),
        )


def _diff(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    names = set(after) | set(before)
    diff = {n: after.get(n, 0) - before.get(n, 0) for n in names}
    return {n: c for n, c in sorted(diff.items()) if c}


class RespCommands:
    """Incremental parser of a client's RESP stream: yields each command's words."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[list[bytes]]:
        self._buffer += data
        found: list[list[bytes]] = []
        while True:
            parsed = self._one()
            if parsed is None:
                return found
            found.append(parsed)

    def _one(self) -> list[bytes] | None:
        buf = self._buffer
        if not buf:
            return None
        if buf[:1] != b"*":  # an inline command: one line of words
            end = buf.find(b"\r\n")
            if end < 0:
                return None
            inline = bytes(buf[:end]).split()
            del buf[: end + 2]
            return inline
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        count = int(buf[1:end])
        pos = end + 2
        words: list[bytes] = []
        for _ in range(count):
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            size = int(buf[pos + 1 : end])  # "$<size>"
            start = end + 2
            if len(buf) < start + size + 2:
                return None
            words.append(bytes(buf[start : start + size]))
            pos = start + size + 2
        del buf[:pos]
        return words


def command_name(words: list[bytes], scripts: Mapping[str, str]) -> str:
    """``GET``, ``EVALSHA load`` (a known script), ``CLIENT SETINFO``..."""
    if not words:
        return "?"
    name = words[0].decode("ascii", "replace").upper()
    if name == "EVALSHA" and len(words) > 1:
        return f"EVALSHA {scripts.get(words[1].decode('ascii', 'replace'), 'script')}"
    if name == "EVAL" and len(words) > 1:
        return "EVAL (script source)"
    if name in ("CLIENT", "CONFIG", "SCRIPT", "MEMORY", "OBJECT") and len(words) > 1:
        return f"{name} {words[1].decode('ascii', 'replace').upper()}"
    return name


def fields_written(words: list[bytes], scripts: Mapping[str, str]) -> int:
    """Fields an ``EVALSHA update`` sets or deletes (ARGV: now, idle, n, n pairs, deletions); else 0."""
    if len(words) < 3 or words[0].upper() != b"EVALSHA":
        return 0
    if scripts.get(words[1].decode("ascii", "replace")) != "update":
        return 0
    try:
        argv = words[3 + int(words[2]) :]
        pairs = int(argv[2])
    except (ValueError, IndexError):
        return 0
    return pairs + max(0, len(argv) - 3 - 2 * pairs)


def is_listener_setup(name: str) -> bool:
    """A command that makes a connection the local cache's listener (not a data connection)."""
    return name in ("CLIENT TRACKING", "SUBSCRIBE")


def known_scripts() -> dict[str, str]:
    from sharedsession._core import scripts

    return {script.sha: script.name for script in scripts.ALL}


class CountingProxy:
    """Listens on a free loopback port and forwards to ``upstream``; counts as it goes.

    Runs its own event loop in a daemon thread: ``with CountingProxy(host, port) as proxy:``.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._lock = threading.Lock()
        self._round_trips = 0
        self._commands: Counter[str] = Counter()
        self._listener: Counter[str] = Counter()
        self._sent = 0
        self._received = 0
        self._fields = 0
        self._scripts = known_scripts()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the counting proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def count(self) -> Count:
        with self._lock:
            return Count(
                self._round_trips,
                dict(self._commands),
                self._sent,
                self._received,
                self._fields,
                dict(self._listener),
            )

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = int(self._server.sockets[0].getsockname()[1])

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()
        # Stopped: end every connection's task (each closes its sockets), then the loop.
        if self._server is not None:
            self._server.close()
        tasks = asyncio.all_tasks(self._loop)
        for task in tasks:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        self._loop.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        state = {"last": "server"}  # a fresh connection: the first send starts a round trip
        listener = False  # the local cache's listener: counted apart
        parser = RespCommands()

        async def upstream() -> None:
            nonlocal listener
            while data := await client_r.read(65536):
                commands = parser.feed(data)
                names = [command_name(words, self._scripts) for words in commands]
                listener = listener or any(is_listener_setup(n) for n in names)
                with self._lock:
                    if listener:
                        self._listener.update(names)
                    else:
                        if state["last"] != "client":
                            self._round_trips += 1
                        self._commands.update(names)
                        self._sent += len(data)
                        self._fields += sum(fields_written(words, self._scripts) for words in commands)
                state["last"] = "client"
                server_w.write(data)
                await server_w.drain()
            server_w.close()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                state["last"] = "server"
                if not listener:
                    with self._lock:
                        self._received += len(data)
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        try:
            with contextlib.suppress(OSError):
                await asyncio.gather(upstream(), downstream())
        finally:
            for writer in (client_w, server_w):
                writer.close()
