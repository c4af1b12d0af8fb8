"""Read our cookie from a Cookie header; render a Set-Cookie header.

The Flask adapter lets Werkzeug render cookies; the ASGI middleware uses
``render`` here. Both take their attributes from the same SessionConfig, so
the two frameworks issue the same cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sharedsession.config import SessionConfig


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
