"""SessionConfig: every setting, checked once at construction.

Plain data: the core reads it, the store builds a Redis client from it, the
adapters read their cookie settings from it. Public as ``sharedsession.SessionConfig``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypedDict, get_args
from urllib.parse import urlsplit

from sharedsession._core.binding import BindIp, Network, binds, check_bind_ip, parse_networks
from sharedsession._core.sealing import sealing_keys

__all__ = ["SESSION_LIMIT", "SessionConfig", "SessionFields", "SessionLimit"]

#: What happens when a link would pass ``max_sessions_per_user``.
SessionLimit = Literal["evict_oldest", "refuse"]
SESSION_LIMIT: tuple[str, ...] = get_args(SessionLimit)

# RFC 6265 cookie-name token: no separators, no controls.
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}


@dataclass(frozen=True, kw_only=True)
class SessionConfig:
    """Settings shared by the Flask adapter, the ASGI middleware and the admin stores.

    Only ``secret_key`` is required. Invalid values raise ``ValueError`` or
    ``TypeError`` naming the field, here, not on the first request.

    Timeouts are in seconds:

    - ``idle_timeout``: the session's Redis TTL, slid forward on every use.
    - ``absolute_timeout``: hard cap on a session's age since creation (``None``: no cap).

    The cookie's Max-Age follows from them (see the README, "Expiry"): the
    cookie never dies before the server-side session, and a Set-Cookie is sent
    only when the session is created, regenerated, destroyed, or about once per
    idle period to extend the cookie.
    """

    #: Keys that sign cookies, newest first: the first signs, every one verifies
    #: (rotate by putting the new key in front and dropping the oldest later).
    secret_key: str | bytes | Sequence[str | bytes] = field(repr=False)
    #: Where sessions live. A database of its own keeps them apart from app data.
    redis_url: str = "redis://localhost:6379/1"
    #: A ready redis-py client (sync or asyncio; plain, Sentinel- or Cluster-backed).
    #: When given, ``redis_url`` and ``redis_timeout`` are not used.
    redis: object | None = field(default=None, repr=False, compare=False)
    #: Connect and read timeout of a client built from ``redis_url``, in seconds.
    redis_timeout: float = 1.0
    #: Prefix of every Redis key this library writes.
    key_prefix: str = "sharedsession:"
    idle_timeout: float = 14 * 24 * 3600
    absolute_timeout: float | None = None
    #: Bind a session to the client address: exactly, or to its /24 (IPv4) or /64 (IPv6).
    bind_ip: BindIp = "off"
    #: Bind a session to the browser (User-Agent with version numbers removed).
    bind_user_agent: bool = False
    #: Proxies (CIDRs or addresses) whose X-Forwarded-For header is believed.
    trusted_proxies: Sequence[str] = ()
    cookie_name: str = "session"
    cookie_domain: str | None = None
    cookie_path: str = "/"
    cookie_secure: bool = False
    cookie_httponly: bool = True
    #: "Lax", "Strict", "None" (any case) or None to omit the attribute.
    cookie_samesite: str | None = "Lax"
    #: Largest total size of the session's data, in bytes as stored.
    max_size: int = 64 * 1024
    #: Sessions a process keeps in memory, kept true by Redis' invalidation
    #: messages (client-side caching): a read-only request of a cached session
    #: costs no round trip. 0 (the default): off. Needs one server (not Cluster
    #: or Sentinel); see the README, "Local cache".
    local_cache: int = 0
    #: Bytes the local cache may hold at most (roughly: keys and stored values).
    local_cache_bytes: int = 32 * 1024 * 1024
    #: With the local cache on, a session's TTL slides at most this often per
    #: process (a write to Redis, which also invalidates the cached copy), so it
    #: may expire up to this much earlier than idle_timeout after its last use.
    #: Default: a tenth of idle_timeout.
    touch_interval: float | None = None
    #: Keys that seal every stored value (encryption at rest: AES-256-GCM, see
    #: sealing.py), newest first: 32 bytes each, or their base64 text. The first
    #: seals, every one opens. Needs the ``encryption`` extra (cryptography).
    #: Empty: values are stored plain.
    encryption_keys: str | bytes | Sequence[str | bytes] = field(default=(), repr=False)
    #: Carry the session token in this request header instead of the cookie (API and
    #: mobile clients; see tokens.py): "Authorization" (as ``Bearer <token>``) or
    #: another header name (the bare token). None: the cookie.
    token_header: str | None = None
    #: At most this many live sessions per user (``user_id``); None: no limit.
    #: Decided in one script on the user's index, so racing logins cannot both
    #: get past it (see the README, "Session limits").
    max_sessions_per_user: int | None = None
    #: When a link would pass the limit: "evict_oldest" ends the user's session
    #: closest to its end (the least recently renewed); "refuse" raises
    #: SessionLimitError at the save instead.
    on_session_limit: SessionLimit = "evict_oldest"

    trusted_networks: tuple[Network, ...] = field(init=False, repr=False, compare=False)
    secret_keys: tuple[str | bytes, ...] = field(init=False, repr=False, compare=False)
    #: ``encryption_keys`` as 32-byte keys, newest first; () when values are stored plain.
    sealing_keys: tuple[bytes, ...] = field(init=False, repr=False, compare=False)
    #: Whether sessions are bound to their client (``bind_ip`` or ``bind_user_agent``).
    #: When not, a request's client is never looked at.
    binds: bool = field(init=False, repr=False, compare=False)
    #: touch_interval, or its default.
    touch_seconds: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "secret_keys", _secret_keys(self.secret_key))
        if self.redis is None:
            _check_redis_url(self.redis_url)
        _check_seconds("redis_timeout", self.redis_timeout, minimum=0.001)
        _check_type("key_prefix", self.key_prefix, str)
        if "{" in self.key_prefix or "}" in self.key_prefix:
            # A hash tag in the prefix would pin every session to one Redis Cluster slot.
            raise ValueError("SessionConfig.key_prefix must not contain '{' or '}'")
        _check_seconds("idle_timeout", self.idle_timeout, minimum=1)
        if self.absolute_timeout is not None:
            _check_seconds("absolute_timeout", self.absolute_timeout, minimum=1)
        _check_type("bind_user_agent", self.bind_user_agent, bool)
        proxies = self.trusted_proxies
        if not isinstance(proxies, str | bytes):  # parse_networks refuses a bare string, by name
            proxies = tuple(proxies)
        try:
            check_bind_ip(self.bind_ip)
            networks = parse_networks(proxies)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"SessionConfig.{exc}") from None
        set_(self, "trusted_proxies", proxies)
        set_(self, "trusted_networks", networks)
        set_(self, "binds", binds(self.bind_ip, self.bind_user_agent))
        self._check_cookie()
        _check_type("max_size", self.max_size, int)
        if self.max_size < 1:
            raise ValueError(f"SessionConfig.max_size must be positive, got {self.max_size}")
        _check_type("local_cache", self.local_cache, int)
        if self.local_cache < 0:
            raise ValueError(f"SessionConfig.local_cache must be 0 (off) or more, got {self.local_cache}")
        _check_type("local_cache_bytes", self.local_cache_bytes, int)
        if self.local_cache_bytes < 1:
            raise ValueError(
                f"SessionConfig.local_cache_bytes must be positive, got {self.local_cache_bytes}"
            )
        touch = self.idle_timeout / 10 if self.touch_interval is None else self.touch_interval
        _check_seconds("touch_interval", touch, minimum=0.001)
        if touch >= self.idle_timeout:
            raise ValueError(
                f"SessionConfig.touch_interval must be shorter than idle_timeout "
                f"({self.idle_timeout}), got {touch}"
            )
        set_(self, "touch_seconds", float(touch))
        set_(self, "sealing_keys", sealing_keys(self.encryption_keys))  # encryption at rest
        _check_token_header(self.token_header)  # header tokens
        if self.max_sessions_per_user is not None:  # session limits
            _check_type("max_sessions_per_user", self.max_sessions_per_user, int)
            if self.max_sessions_per_user < 1:
                raise ValueError(
                    f"SessionConfig.max_sessions_per_user must be 1 or more (None: no limit), "
                    f"got {self.max_sessions_per_user}"
                )
        if self.on_session_limit not in SESSION_LIMIT:
            raise ValueError(
                f"SessionConfig.on_session_limit must be one of {', '.join(SESSION_LIMIT)}, "
                f"got {self.on_session_limit!r}"
            )

    def _check_cookie(self) -> None:
        _check_type("cookie_name", self.cookie_name, str)
        if not _COOKIE_NAME.match(self.cookie_name):
            raise ValueError(f"SessionConfig.cookie_name is not a valid cookie name: {self.cookie_name!r}")
        if self.cookie_domain is not None:
            _check_type("cookie_domain", self.cookie_domain, str)
            if not self.cookie_domain or any(c in self.cookie_domain for c in ";, \t\r\n"):
                raise ValueError(f"SessionConfig.cookie_domain is invalid: {self.cookie_domain!r}")
        _check_type("cookie_path", self.cookie_path, str)
        if not self.cookie_path.startswith("/") or any(c in self.cookie_path for c in "; \t\r\n"):
            raise ValueError(f"SessionConfig.cookie_path must start with '/': {self.cookie_path!r}")
        _check_type("cookie_secure", self.cookie_secure, bool)
        _check_type("cookie_httponly", self.cookie_httponly, bool)
        if self.cookie_samesite is not None:
            canonical = _SAMESITE.get(str(self.cookie_samesite).lower())
            if canonical is None:
                raise ValueError(
                    "SessionConfig.cookie_samesite must be 'Lax', 'Strict', 'None' or None, "
                    f"got {self.cookie_samesite!r}"
                )
            object.__setattr__(self, "cookie_samesite", canonical)
            if canonical == "None" and not self.cookie_secure:
                raise ValueError("SessionConfig.cookie_samesite='None' requires cookie_secure=True")
        if self.cookie_name.startswith("__Host-") and (
            not self.cookie_secure or self.cookie_path != "/" or self.cookie_domain is not None
        ):
            raise ValueError(
                "SessionConfig.cookie_name starts with '__Host-': browsers accept it only with "
                "cookie_secure=True, cookie_path='/' and no cookie_domain"
            )
        if self.cookie_name.startswith("__Secure-") and not self.cookie_secure:
            raise ValueError("SessionConfig.cookie_name starts with '__Secure-': needs cookie_secure=True")


class SessionFields(TypedDict, total=False):
    """SessionConfig's fields as keywords, for type checkers (``SessionMiddleware(app, **fields)``).

    Mirrors the ``init`` fields of SessionConfig; ``tests/test_config.py`` checks
    that the two agree, name for name and type for type.
    """

    secret_key: str | bytes | Sequence[str | bytes]
    redis_url: str
    redis: object | None
    redis_timeout: float
    key_prefix: str
    idle_timeout: float
    absolute_timeout: float | None
    bind_ip: BindIp
    bind_user_agent: bool
    trusted_proxies: Sequence[str]
    cookie_name: str
    cookie_domain: str | None
    cookie_path: str
    cookie_secure: bool
    cookie_httponly: bool
    cookie_samesite: str | None
    max_size: int
    local_cache: int
    local_cache_bytes: int
    touch_interval: float | None
    encryption_keys: str | bytes | Sequence[str | bytes]
    token_header: str | None
    max_sessions_per_user: int | None
    on_session_limit: SessionLimit


def _secret_keys(value: object) -> tuple[str | bytes, ...]:
    keys: tuple[object, ...]
    if isinstance(value, str | bytes):
        keys = (value,)
    elif isinstance(value, Sequence):
        keys = tuple(value)
    else:
        raise TypeError(
            f"SessionConfig.secret_key must be a str or a list of str, got {type(value).__name__}"
        )
    if not keys:
        raise ValueError("SessionConfig.secret_key is required (an empty list was given)")
    for key in keys:
        if not isinstance(key, str | bytes):
            raise TypeError(f"SessionConfig.secret_key entries must be str, got {type(key).__name__}")
        if not key:
            raise ValueError("SessionConfig.secret_key must not be empty")
    return keys  # type: ignore[return-value]  # narrowed by the loop above


def _check_type(name: str, value: object, kind: type) -> None:
    # bool is an int: refuse it where a number is meant, and vice versa.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"SessionConfig.{name} must be {kind.__name__}, got {type(value).__name__}")


def _check_seconds(name: str, value: object, *, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"SessionConfig.{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"SessionConfig.{name} must be at least {minimum} seconds, got {value}")


def _check_redis_url(url: object) -> None:
    if not isinstance(url, str):
        raise TypeError(f"SessionConfig.redis_url must be a str, got {type(url).__name__}")
    scheme = urlsplit(url).scheme
    if scheme not in _REDIS_SCHEMES:
        raise ValueError(
            f"SessionConfig.redis_url must start with redis://, rediss:// or unix://, got {url!r}"
        )


def _check_token_header(name: str | None) -> None:
    if name is None:
        return
    _check_type("token_header", name, str)
    # A header field name is an RFC 9110 token, as a cookie name is.
    if not _COOKIE_NAME.match(name):
        raise ValueError(f"SessionConfig.token_header is not a valid header name: {name!r}")
    if name.lower() in ("cookie", "set-cookie"):
        raise ValueError(
            "SessionConfig.token_header names a header of its own (a token instead of the cookie, "
            f"never both): not {name!r}"
        )
