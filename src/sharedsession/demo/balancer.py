"""A round-robin HTTP balancer for the demo: every request to the next replica.

No stickiness of any kind, like Docker Swarm's routing mesh: each request is
sent to the next backend in turn. To balance per request rather than per
connection, it serves one request per client connection and asks both sides
for ``Connection: close``; browsers simply open a new connection each time.
Good enough to demonstrate with; use HAProxy or your platform's balancer for
anything real.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Sequence

MAX_HEAD = 64 * 1024
# How long close() lets hung-up connections wind down before it cancels them.
CLOSE_TIMEOUT_SECONDS = 5.0
Backend = tuple[str, int]


class RoundRobinBalancer:
    """Listens on ``port`` and hands each request to the next of ``backends``.

    ``on_request(method, path, backend_index)`` is called for each request.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        on_request: Callable[[str, str, int], None] | None = None,
    ) -> None:
        if not backends:
            raise ValueError("no backends")
        self.backends = list(backends)
        self._turn = itertools.cycle(range(len(self.backends)))
        self._on_request = on_request
        self._server: asyncio.Server | None = None
        # Strong references: the event loop keeps only weak ones to tasks.
        self._connections: set[asyncio.Task[None]] = set()
        # Both ends of every connection in flight, so that close() can hang them up.
        self._streams: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and hang up every connection; each handler then returns normally.

        Handlers are not cancelled: a connection whose reply has been relayed
        may still be waiting for its replica to hang up, and on Python 3.11
        asyncio's streams log a cancelled handler as an error (a CancelledError
        traceback). Closing the sockets ends their reads and writes instead.
        """
        if self._server is None:
            return
        self._server.close()
        for stream in list(self._streams):
            stream.transport.abort()
        if self._connections:
            # Every wait ends once its socket is closed; cancelling is the last resort.
            _, stuck = await asyncio.wait(set(self._connections), timeout=CLOSE_TIMEOUT_SECONDS)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)
        try:
            async with self._open(writer):
                await self._forward(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            return
        request_line, *header_lines = head[:-4].split(b"\r\n")
        headers = [line for line in header_lines if not line.lower().startswith(b"connection:")]
        length = 0
        for line in headers:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
            elif name.strip().lower() == b"transfer-encoding":
                writer.write(b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\n\r\n")
                return
        body = await reader.readexactly(length) if length else b""
        index = next(self._turn)
        if self._on_request is not None:
            method, _, rest = request_line.decode("latin-1").partition(" ")
            self._on_request(method, rest.rsplit(" ", 1)[0], index)
        host, port = self.backends[index]
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        async with self._open(up_writer):
            up_writer.write(b"\r\n".join([request_line, *headers, b"Connection: close", b"", b""]) + body)
            await up_writer.drain()
            while chunk := await up_reader.read(65536):
                writer.write(chunk)
                await writer.drain()

    @contextlib.asynccontextmanager
    async def _open(self, stream: asyncio.StreamWriter) -> AsyncIterator[None]:
        """Track ``stream`` while the block runs (close() may hang it up), then close it."""
        self._streams.add(stream)
        try:
            yield
        finally:
            self._streams.discard(stream)
            stream.close()
            with contextlib.suppress(ConnectionError):
                await stream.wait_closed()
