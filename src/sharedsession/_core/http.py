"""What the adapters put on the wire: the session cookie, and the 503 answer.

Every adapter reads our cookie with :func:`read_cookie`, sends the
``Set-Cookie`` header :func:`render` makes (through the store, which knows the
clock), and answers :class:`~sharedsession.StoreUnavailableError` with the same
503: so every framework issues the same cookie and the same refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import formatdate

from sharedsession._core.config import SessionConfig

#: Seconds a client is asked to wait by the 503: long enough for a Redis
#: failover to finish; a client that obeys it will not hammer us.
RETRY_AFTER_SECONDS = 5
UNAVAILABLE_STATUS = 503
UNAVAILABLE_BODY = b"503 Service Unavailable: the session store cannot be reached; try again shortly.\n"
#: Headers of the 503, lowercase names, as an ASGI or WSGI server takes them.
UNAVAILABLE_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-type", "text/plain; charset=utf-8"),
    ("retry-after", str(RETRY_AFTER_SECONDS)),
    ("cache-control", "no-store"),
)

#: The answer to a login refused by the session limit (``on_session_limit="refuse"``)
#: that the app did not handle itself.
LIMIT_STATUS = 403
LIMIT_BODY = b"403 Forbidden: this account has as many sessions as it may; log out of another one first.\n"
LIMIT_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-type", "text/plain; charset=utf-8"),
    ("cache-control", "no-store"),
)


@dataclass(frozen=True)
class SetCookie:
    value: str
    max_age_seconds: int


@dataclass(frozen=True)
class ExpireCookie:
    pass


CookieAction = SetCookie | ExpireCookie


def read_cookie(header: str | None, name: str) -> str | None:
    """Return the value of cookie ``name`` in a Cookie header, or None.

    Lenient on purpose: a malformed pair elsewhere in the header must not hide
    ours. With duplicates, the first wins (browsers send the most specific first).
    """
    if not header:
        return None
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


def render(action: CookieAction, config: SessionConfig, now: float) -> str:
    """Render the Set-Cookie header value for ``action``."""
    if isinstance(action, SetCookie):
        value, max_age = action.value, action.max_age_seconds
    else:
        value, max_age = "", 0
    parts = [
        f"{config.cookie_name}={value}",
        f"Max-Age={max_age}",
        "Expires=" + formatdate(now + max_age if max_age else 0, usegmt=True),
        f"Path={config.cookie_path}",
    ]
    if config.cookie_domain:
        parts.append(f"Domain={config.cookie_domain}")
    if config.cookie_secure:
        parts.append("Secure")
    if config.cookie_httponly:
        parts.append("HttpOnly")
    if config.cookie_samesite:
        parts.append(f"SameSite={config.cookie_samesite}")
    return "; ".join(parts)
