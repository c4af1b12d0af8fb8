"""What both ASGI variants of the example share: settings from the environment,
form and JSON input, the pages and the JSON replies.

``app.py`` (Starlette) and ``fastapi_app.py`` (FastAPI) only route requests
here; the route table is in ``examples/README.md``. The module has a name of
its own (not ``common``) so that it never shadows the Flask example's modules.
"""

from __future__ import annotations

import html
import json
import math
import os
import socket
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from sharedsession import (
    AsyncSessionStore,
    Session,
    SessionConfig,
    SessionDataError,
    SessionInfo,
    StoreUnavailableError,
)

BindIp = Literal["off", "exact", "subnet"]
_BIND_IP: dict[str, BindIp] = {"off": "off", "exact": "exact", "subnet": "subnet"}
MAX_SLOW_SECONDS = 10.0
MAX_FIELD_LENGTH = 64


@dataclass(frozen=True)
class Settings:
    config: SessionConfig
    replica: str


def settings_from_env(environ: Mapping[str, str] = os.environ) -> Settings:
    """Read the variables of examples/README.md; a missing secret or a bad value refuses to start."""
    config = SessionConfig(
        secret_key=_secret_keys(environ),
        redis_url=environ.get("REDIS_URL", "redis://localhost:6379/1"),
        key_prefix=environ.get("KEY_PREFIX", "sharedsession:"),
        idle_timeout=_seconds(environ, "IDLE_TIMEOUT", 1800),
        absolute_timeout=_seconds(environ, "ABSOLUTE_TIMEOUT", 0) or None,
        bind_ip=_bind_ip(environ.get("SESSION_BIND_IP", "off")),
        trusted_proxies=[
            cidr.strip() for cidr in environ.get("TRUSTED_PROXIES", "").split(",") if cidr.strip()
        ],
        local_cache=_count(environ, "LOCAL_CACHE"),
        max_sessions_per_user=_count(environ, "MAX_SESSIONS_PER_USER") or None,
        on_session_limit="refuse" if _session_limit(environ) == "refuse" else "evict_oldest",
    )
    return Settings(config=config, replica=environ.get("REPLICA_ID") or socket.gethostname())


def _secret_keys(environ: Mapping[str, str]) -> list[str]:
    path = environ.get("SECRET_KEY_FILE")
    if path:
        with open(path, encoding="utf-8") as file:  # a Docker secret: /run/secrets/...
            text = file.read()
    else:
        text = environ.get("SECRET_KEY", "")
    keys = text.split()  # newest first; older ones still verify (rotation)
    if not keys:
        source = f"SECRET_KEY_FILE ({path})" if path else "SECRET_KEY"
        raise RuntimeError(f"{source} is empty: set SECRET_KEY or SECRET_KEY_FILE to sign session cookies")
    return keys


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise RuntimeError(f"{name} must be a number of seconds, got {raw!r}") from None


def _count(environ: Mapping[str, str], name: str) -> int:
    raw = environ.get(name) or "0"
    if not raw.isdigit():
        raise RuntimeError(f"{name} must be a whole number, got {raw!r}")
    return int(raw)


def _session_limit(environ: Mapping[str, str]) -> str:
    raw = environ.get("SESSION_LIMIT") or "evict_oldest"
    if raw not in ("evict_oldest", "refuse"):
        raise RuntimeError(f"SESSION_LIMIT must be evict_oldest or refuse, got {raw!r}")
    return raw


def _bind_ip(raw: str) -> BindIp:
    if raw not in _BIND_IP:
        raise RuntimeError(f"SESSION_BIND_IP must be off, exact or subnet, got {raw!r}")
    return _BIND_IP[raw]


# -- input -------------------------------------------------------------------


class BadInput(ValueError):
    """A request the app refuses with a 400."""


def wants_json(request: Request) -> bool:
    """A JSON body, or an Accept header that prefers JSON to HTML: the client gets JSON back."""
    if _is_json(request):
        return True
    accept = request.headers.get("accept", "")
    return _quality(accept, "application/json") > _quality(accept, "text/html")


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"


def _quality(accept: str, media: str) -> float:
    """The q-value Accept gives ``media``: from its most specific matching range (RFC 9110)."""
    kind = media.split("/")[0]
    specificity, quality = -1, 0.0
    for item in accept.split(","):
        media_range, *params = (part.strip().lower() for part in item.split(";"))
        rank = {media: 2, f"{kind}/*": 1, "*/*": 0}.get(media_range)
        if rank is None or rank <= specificity:
            continue
        specificity, quality = rank, 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
    return quality


async def read_fields(request: Request) -> dict[str, str]:
    """The string fields of a form, or of a JSON object body."""
    if _is_json(request):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadInput("expected a JSON object")
        return {k: v for k, v in body.items() if isinstance(v, str)}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def read_json(request: Request) -> object:
    try:
        body: object = await request.json()
    except ValueError:
        raise BadInput("the body is not JSON") from None
    return body


def text_field(fields: Mapping[str, str], name: str) -> str:
    value = fields.get(name, "").strip()
    if not value or len(value) > MAX_FIELD_LENGTH:
        raise BadInput(f"{name}: 1 to {MAX_FIELD_LENGTH} characters")
    return value


def slow_seconds(raw: str | None) -> float:
    """The ``seconds`` of /api/slow: a number, brought into 0 to 10."""
    try:
        seconds = float(raw if raw is not None else 1)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise BadInput("seconds: a number")
    return min(max(seconds, 0.0), MAX_SLOW_SECONDS)


def done(request: Request, to: str, reply: Mapping[str, object]) -> Response:
    """After a form post: JSON for JSON clients, else 303 to a page (post/redirect/get)."""
    if wants_json(request):
        return JSONResponse(dict(reply))
    return RedirectResponse(to, status_code=303)


async def bad_input(request: Request, exc: Exception) -> Response:
    if wants_json(request):
        return JSONResponse({"error": str(exc)}, status_code=400)
    return PlainTextResponse(f"{exc}\n", status_code=400)


async def too_large(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=413)


async def store_unavailable(request: Request, exc: Exception) -> Response:
    """Admin calls in views (sessions_of, revoke) meet an outage as the middleware does: 503."""
    return PlainTextResponse("session store unavailable; try again shortly\n", 503, {"retry-after": "5"})


# Typed as FastAPI wants it; Starlette takes it as is.
EXCEPTION_HANDLERS: dict[int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]] = {
    BadInput: bad_input,
    SessionDataError: too_large,  # e.g. PUT /api/kv with a body over max_size
    StoreUnavailableError: store_unavailable,
}


# -- what the routes do to a session -------------------------------------------


def log_in(session: Session, username: str) -> None:
    session.regenerate()  # a new id on login: a planted cookie is worthless
    session.user_id = username  # lists the session under the user (sessions_of, revoke_user)
    session["user"] = username


def add_to_cart(session: Session, item: str) -> None:
    session.setdefault("cart", []).append(item)  # in-place edits are saved too


def count(session: Session) -> int:
    counter = int(session.get("counter", 0)) + 1
    session["counter"] = counter
    return counter


def kv(session: Session) -> dict[str, object]:
    return {key.removeprefix("kv:"): value for key, value in session.items() if key.startswith("kv:")}


async def revoke_others(store: AsyncSessionStore, session: Session) -> int:
    """End the user's other sessions ("log out everywhere else"); this one stays."""
    if session.user_id is None:
        return 0
    others = [
        info.handle for info in await store.sessions_of(session.user_id) if info.handle != session.handle
    ]
    for handle in others:
        await store.revoke(handle)
    return len(others)


# -- replies -----------------------------------------------------------------


def identity(settings: Settings, framework: str) -> dict[str, object]:
    return {"replica": settings.replica, "framework": framework, "pid": os.getpid()}


def state(session: Session, settings: Settings, framework: str) -> dict[str, object]:
    return {
        **identity(settings, framework),
        "user": session.get("user"),
        "cart": session.get("cart", []),
        "counter": session.get("counter", 0),
        "handle": session.handle,
    }


def session_list(infos: Sequence[SessionInfo], current: str | None) -> list[dict[str, object]]:
    return [
        {
            "handle": info.handle,
            "created": info.created.isoformat(),
            "last_seen": info.last_seen.isoformat(),
            "expires": info.expires.isoformat(),
            "current": info.handle == current,
        }
        for info in infos
    ]


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body>{body}</body></html>"
    )


def _esc(value: object) -> str:
    return html.escape(value if isinstance(value, str) else json.dumps(value))


def home_page(now: Mapping[str, object]) -> str:
    served = (
        f"Served by replica <b>{_esc(now['replica'])}</b> ({_esc(now['framework'])}, pid {_esc(now['pid'])})"
    )
    if now["user"]:
        who = (
            f"<p>Logged in as <b>{_esc(now['user'])}</b>.</p>"
            '<form method="post" action="/logout"><button>Log out</button></form>'
            '<p><a href="/sessions">Your sessions</a></p>'
        )
    else:
        who = (
            "<p>Not logged in.</p>"
            '<form method="post" action="/login"><input name="username" placeholder="username" required>'
            "<button>Log in</button></form>"
        )
    cart = "".join(f"<li>{_esc(item)}</li>" for item in now["cart"]) if isinstance(now["cart"], list) else ""
    body = (
        f"<h1>sharedsession demo</h1><p>{served}</p>{who}"
        f"<h2>Cart</h2><ul>{cart}</ul>"
        '<form method="post" action="/cart"><input name="item" placeholder="item" required>'
        "<button>Add</button></form>"
        f"<h2>Counter: {_esc(now['counter'])}</h2>"
        '<form method="post" action="/api/counter"><button>+1 (JSON reply)</button></form>'
        '<p><a href="/api/state">/api/state</a></p>'
    )
    return _page("sharedsession demo", body)


def sessions_page(user: str | None, rows: Sequence[Mapping[str, object]], replica: str) -> str:
    if user is None:
        return _page("Sessions", '<p>Not logged in. <a href="/">Home</a></p>')
    items = "".join(
        f"<li><code>{_esc(row['handle'])}</code> created {_esc(row['created'])}, "
        f"last seen {_esc(row['last_seen'])}, expires {_esc(row['expires'])}"
        f"{' <b>(this session)</b>' if row['current'] else ''}</li>"
        for row in rows
    )
    body = (
        f"<h1>Sessions of {_esc(user)}</h1><p>Replica {_esc(replica)}</p><ul>{items}</ul>"
        '<form method="post" action="/sessions/revoke-others"><button>Log out everywhere else</button></form>'
        '<p><a href="/">Home</a></p>'
    )
    return _page("Sessions", body)
