"""SessionMiddleware: sharedsession for ASGI apps (Starlette, FastAPI, or any ASGI 3 app).

A pure ASGI middleware that needs only the ASGI spec (nothing here imports
Starlette). It replaces Starlette's cookie ``SessionMiddleware``: it sets
``scope["session"]``, so ``request.session`` and ``websocket.session`` work as
before, now holding a :class:`~sharedsession.Session` kept in Redis.

One request, for an ``http`` scope:

1. Before the app runs, the session is loaded: no cookie, or one that is not
   ours (bad signature, too old), costs nothing; a valid cookie costs one round
   trip. Views read the session synchronously, so it cannot be loaded later.
2. When the app sends ``http.response.start``, the session is saved (nothing
   written if nothing changed, else one round trip) before that message goes
   on, and ``Set-Cookie`` and ``Vary: Cookie`` are added to its headers.
   Changes made after that (in a streaming body or a background task) are not
   saved.
3. An app that raises saves nothing. A 5xx response is held until the app
   returns, so that a crash whose 500 was sent through this middleware (an app
   wrapped whole, ``SessionMiddleware(Starlette(...))``) saves nothing either;
   a 5xx the app sends deliberately is saved when it returns.

Redis unreachable: loading a session (a request with a valid cookie) answers
503 at once without calling the app; a save that fails replaces the app's
response with a 503 (its start has not gone out yet). A login refused by
``max_sessions_per_user`` (``on_session_limit="refuse"``) replaces it with a
403 the same way; to answer it yourself, save in the view first
(``await save_session(request)``) and catch
:class:`~sharedsession.SessionLimitError`. Requests without a session cookie,
and excluded paths, never touch Redis.

With ``token_header`` set (``SessionConfig(token_header="Authorization")``),
the session travels as ``Authorization: Bearer <token>`` rather than the
cookie: the cookie is neither read nor set; a new, regenerated or renewed
session's token goes out in a ``Session-Token`` response header (empty on
``destroy()``), with ``Vary: Authorization`` and, unless the app set its own,
``Cache-Control: no-store``. A request header given twice is not believed.

``websocket`` scopes get the session loaded the same way, but changes made
during a websocket are **not saved**: there is no response to carry a new
cookie. If Redis is unreachable, the handshake is denied (a 503 where the
server supports the ASGI websocket denial response, else a close before accept).

``lifespan`` passes through to the app; once the app's shutdown completes, the
Redis client the middleware built is closed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from sharedsession._core.config import SessionConfig, SessionFields
from sharedsession._core.errors import SessionLimitError, StoreUnavailableError
from sharedsession._core.http import (
    LIMIT_BODY,
    LIMIT_HEADERS,
    LIMIT_STATUS,
    UNAVAILABLE_BODY,
    UNAVAILABLE_HEADERS,
    UNAVAILABLE_STATUS,
    CookieAction,
    read_cookie,
)
from sharedsession._core.record import UNBOUND, Client
from sharedsession._core.session import Session
from sharedsession._core.tokens import TokenHeader
from sharedsession.store import AsyncSessionStore

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["SessionMiddleware", "get_session", "save_session"]

log = logging.getLogger(__name__)

# The ASGI 3 interface, as the spec defines it (the same shapes as starlette.types).
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _raw_headers(headers: Iterable[tuple[str, str]], body: bytes) -> tuple[tuple[bytes, bytes], ...]:
    """A plain answer's headers as ASGI sends them, with its Content-Length."""
    named = (*headers, ("content-length", str(len(body))))
    return tuple((name.encode("latin-1"), value.encode("latin-1")) for name, value in named)


_UNAVAILABLE_HEADERS = _raw_headers(UNAVAILABLE_HEADERS, UNAVAILABLE_BODY)
_LIMIT_HEADERS = _raw_headers(LIMIT_HEADERS, LIMIT_BODY)
_RESPONSE_KEY = "sharedsession.response"
# Before accept, a close is a denial (servers answer 403); 1013 is "try again later".
_WS_TRY_AGAIN_LATER = 1013


class SessionMiddleware:
    """Server-side sessions in Redis as ``scope["session"]`` (``request.session``).

    Configure it with a :class:`~sharedsession.SessionConfig`, or with that
    class's fields as keywords (``Middleware(SessionMiddleware, secret_key=...,
    redis_url=...)``), or with a ready :class:`~sharedsession.AsyncSessionStore`
    (``store=``) that your views also use for admin work (``sessions_of``,
    ``revoke``): exactly one of the three. Bad settings raise ``TypeError`` or
    ``ValueError`` naming the field, here.

    ``exclude_paths``: path prefixes (whole segments: ``"/static"`` covers
    ``/static`` and ``/static/app.css``, not ``/staticfiles``) whose requests
    skip sessions entirely: no Redis command, no cookie, and no
    ``scope["session"]``, so a view there that touches ``request.session``
    fails loudly instead of showing a logged-in user as anonymous.

    The Redis client (one connection pool per middleware) is built on first
    use, inside the server's event loop, and closed when the app's lifespan
    shutdown completes. A client passed as ``SessionConfig.redis`` is used as
    is, and yours to close.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: SessionConfig | None = None,
        *,
        store: AsyncSessionStore | None = None,
        exclude_paths: Iterable[str] = (),
        **fields: Unpack[SessionFields],
    ) -> None:
        given = [name for name, value in (("config", config), ("store", store)) if value is not None]
        if fields:
            given.append("SessionConfig fields as keywords")
        if len(given) > 1:
            raise TypeError(
                f"SessionMiddleware takes one of config, store, or fields; got {' and '.join(given)}"
            )
        if store is None:
            store = AsyncSessionStore(config if config is not None else SessionConfig(**fields))
        elif not isinstance(store, AsyncSessionStore):
            raise TypeError(
                f"SessionMiddleware store must be an AsyncSessionStore, got {type(store).__name__}"
            )
        self.app = app
        self.store = store
        self.config = store.config
        self.exclude_paths = _prefixes(exclude_paths)
        #: With ``token_header``: where the token travels instead of the cookie.
        self.tokens = TokenHeader.of(self.config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if (kind != "http" and kind != "websocket") or (
            self.exclude_paths and self._excluded(scope.get("path", ""))
        ):
            await self.app(scope, receive, send)
            return
        cookie, client = self._read_request(scope)
        try:
            session = await self.store.load(cookie, client)
        except StoreUnavailableError as exc:
            log.warning("session store unavailable, %s denied: %s", kind, exc)
            if kind == "http":
                await _send_unavailable(send)
            else:
                await _deny_websocket(scope, send)
            return
        scope["session"] = session
        if kind == "websocket":
            await self.app(scope, receive, send)  # loaded, never saved (see the module docstring)
            return
        response = _SavingResponse(
            self.store, session, send, had_cookie=cookie is not None, tokens=self.tokens
        )
        scope[_RESPONSE_KEY] = response  # for save_session()
        try:
            await self.app(scope, receive, response.send)
        except BaseException:
            await response.abandon()  # the app crashed: save nothing, let its error response out
            raise
        await response.finish()

    def _excluded(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.exclude_paths)

    def _read_request(self, scope: Scope) -> tuple[str | None, Client]:
        """The signed sid the request carries (its cookie value, or its token), and its client."""
        # Servers lowercase request header names (ASGI spec); values are bytes, latin-1.
        headers = scope.get("headers") or ()
        if self.tokens is not None:  # a token session: the cookie is not even read
            cookie = _read_token(headers, self.tokens)
        else:
            # HTTP/2 may split cookies over several headers.
            cookies = [value.decode("latin-1") for name, value in headers if name == b"cookie"]
            cookie = read_cookie("; ".join(cookies), self.config.cookie_name) if cookies else None
        if not self.store.binds:
            return cookie, UNBOUND  # nothing about the client is used
        forwarded: list[str] = []
        user_agent: str | None = None
        for name, value in headers:
            if name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
        peer = scope.get("client")
        return cookie, self.store.client(peer[0] if peer else None, forwarded or None, user_agent)

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                # After the app's own shutdown (which may still use Redis), before the server exits.
                await self.store.aclose()
            await send(message)

        return lifespan_send


class _SavingResponse:
    """The app's ``send`` for one request: saves the session as the response starts.

    A response with a 5xx status is held back until the app returns: an app
    wrapped whole (``SessionMiddleware(Starlette(...))``) sends the 500 of a
    crashed view through us (Starlette's ServerErrorMiddleware) and only then
    raises. Held, it is saved only if the app returns normally (a 5xx the app
    chose to send), and sent unsaved if the app raises. Other responses go
    out at once, saved at their start.
    """

    __slots__ = (
        "_closed",
        "_early",
        "_had_cookie",
        "_held",
        "_replaced",
        "_send",
        "_session",
        "_store",
        "_tokens",
    )

    def __init__(
        self,
        store: AsyncSessionStore,
        session: Session,
        send: Send,
        *,
        had_cookie: bool,
        tokens: TokenHeader | None = None,
    ) -> None:
        self._store = store
        self._session = session
        self._send = send
        self._had_cookie = had_cookie  # a cookie, or a token, came in
        self._tokens = tokens
        self._held: list[Message] | None = None
        self._replaced = False
        self._early: CookieAction | None = None  # the cookie of a save_session() in the view
        self._closed = False  # a save_session() failed: nothing more is saved

    async def send(self, message: Message) -> None:
        if self._replaced:
            return  # our 503 went out instead: drop the rest of the app's response
        if self._held is not None:
            self._held.append(message)
            return
        if message["type"] == "http.response.start":
            if message.get("status", 200) >= 500:
                self._held = [message]
                return
            message = await self._saved(message)
            if self._replaced:
                return
        await self._send(message)

    async def finish(self) -> None:
        """The app returned: send a held response, saved."""
        held, self._held = self._held, None
        if not held:
            return
        start = await self._saved(held[0])
        if self._replaced:
            return
        for message in (start, *held[1:]):
            await self._send(message)

    async def abandon(self) -> None:
        """The app raised: send a held response as it is, nothing saved."""
        held, self._held = self._held, None
        for message in held or ():
            await self._send(message)

    async def save_now(self) -> None:
        """Save in the view (``save_session``): errors go to the view; the cookie waits for the response."""
        if self._closed or not self._store.needs_save(self._session):
            return
        try:
            result = await self._store.save(self._session)
        except BaseException:
            self._closed = True  # as at the response: a failed save is not tried again
            raise
        if result.cookie is not None:
            self._early = result.cookie

    async def _saved(self, start: Message) -> Message:
        """Save the session; return the start message with the cookie headers (or send a 503)."""
        store, session = self._store, self._session
        action = None  # an anonymous request that stored nothing: nothing to save
        if not self._closed and store.needs_save(session):
            try:
                action = (await store.save(session)).cookie
            except StoreUnavailableError as exc:
                log.warning("session store unavailable, response replaced by a 503: %s", exc)
                self._replaced = True
                await _send_unavailable(self._send)
                return start
            except SessionLimitError as exc:  # a login refused by max_sessions_per_user
                log.info("login refused by the session limit, response replaced by a 403: %s", exc)
                self._replaced = True
                await _send_plain(self._send, LIMIT_STATUS, _LIMIT_HEADERS, LIMIT_BODY)
                return start
        if action is None:
            action = self._early  # saved in the view; nothing that changed since moved the cookie
        if action is None and not self._had_cookie:
            return start  # no cookie in or out: nothing to add
        headers = list(start.get("headers") or ())
        tokens = self._tokens
        if tokens is None:
            if action is not None:
                headers.append((b"set-cookie", store.cookie_header(action).encode("latin-1")))
            # The response depends on the cookie: shared caches must not hand it to others.
            _add_vary(headers, "Cookie")
            return {**start, "headers": headers}
        if action is not None:  # a token session: never Set-Cookie
            token = tokens.response_value(action)
            headers.append((tokens.response.lower().encode("latin-1"), token.encode("latin-1")))
            if token and not any(name.lower() == b"cache-control" for name, _ in headers):
                headers.append((b"cache-control", b"no-store"))  # no cache may keep a token
        _add_vary(headers, tokens.name)
        return {**start, "headers": headers}


def get_session(connection: Mapping[str, object]) -> Session:
    """The session of a request: ``get_session(request)`` (Starlette, FastAPI) or ``get_session(scope)``.

    The same object as ``request.session``, typed as a :class:`~sharedsession.Session`
    (so ``regenerate()``, ``destroy()`` and ``user_id`` type-check). Raises
    ``RuntimeError`` where there is none: the middleware is not installed, or
    the path is one of its ``exclude_paths``.
    """
    session = connection.get("session")
    if not isinstance(session, Session):
        raise RuntimeError(
            "no sharedsession session here: install sharedsession.asgi.SessionMiddleware, "
            "and check that this path is not in its exclude_paths"
        )
    return session


async def save_session(connection: Mapping[str, object]) -> None:
    """Save the request's session now, in the view: ``await save_session(request)``.

    For a view that must know the save went through before it answers: a
    login under ``max_sessions_per_user`` with ``on_session_limit="refuse"``
    catches :class:`~sharedsession.SessionLimitError` here and answers with its
    own message. Raises what a save raises (also
    :class:`~sharedsession.StoreUnavailableError`); after a failure nothing more
    of this request is saved. Changes made after it are saved with the
    response as usual, and the cookie goes out with the response.
    """
    response = connection.get(_RESPONSE_KEY)
    if not isinstance(response, _SavingResponse):
        raise RuntimeError(
            "save_session: no sharedsession session here (the middleware is not installed, the path is "
            "excluded, or this is a websocket, whose changes are never saved)"
        )
    await response.save_now()


def _prefixes(paths: Iterable[str]) -> tuple[str, ...]:
    if isinstance(paths, str | bytes):
        raise TypeError(
            "SessionMiddleware exclude_paths must be a list of path prefixes, not a single string"
        )
    prefixes: list[str] = []
    for path in paths:
        if not isinstance(path, str):
            raise TypeError(f"SessionMiddleware exclude_paths entries must be str, got {type(path).__name__}")
        if not path.startswith("/"):
            raise ValueError(f"SessionMiddleware exclude_paths entries must start with '/', got {path!r}")
        prefixes.append(path.rstrip("/"))
    return tuple(prefixes)


def _add_vary(headers: list[Any], header: str) -> None:
    """Name ``header`` in the response's Vary (unless it is there already, or ``*``)."""
    wanted = header.encode("latin-1")
    first = -1
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"vary":
            tokens = {token.strip().lower() for token in value.split(b",")}
            if wanted.lower() in tokens or b"*" in tokens:
                return
            if first < 0:
                first = i
    if first >= 0:
        name, value = headers[first]
        headers[first] = (name, value + b", " + wanted)
    else:
        headers.append((b"vary", wanted))


def _read_token(headers: Iterable[tuple[bytes, bytes]], tokens: TokenHeader) -> str | None:
    """The token of the request's token header; None if absent, or given more than once."""
    wanted = tokens.asgi_name
    values = [value for name, value in headers if name == wanted]
    # Two values (two proxies, or a client and a proxy, disagreeing): trust neither.
    return tokens.read(values[0].decode("latin-1")) if len(values) == 1 else None


async def _send_unavailable(send: Send) -> None:
    await _send_plain(send, UNAVAILABLE_STATUS, _UNAVAILABLE_HEADERS, UNAVAILABLE_BODY)


async def _send_plain(send: Send, status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def _deny_websocket(scope: Scope, send: Send) -> None:
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": UNAVAILABLE_STATUS,
                "headers": list(_UNAVAILABLE_HEADERS),
            }
        )
        await send({"type": "websocket.http.response.body", "body": UNAVAILABLE_BODY})
    else:
        await send({"type": "websocket.close", "code": _WS_TRY_AGAIN_LATER})
