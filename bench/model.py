"""What is measured: variants (framework x session layer), routes, network settings, session shapes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Framework = Literal["flask", "asgi"]
Network = Literal["loopback", "delay"]
Shape = Literal["tiny", "realistic"]

FRAMEWORK_LABELS: dict[Framework, str] = {
    "flask": "Flask (gunicorn, 1 sync worker)",
    "asgi": "Starlette (uvicorn, 1 worker)",
}


@dataclass(frozen=True)
class Variant:
    framework: Framework
    name: str  # BENCH_VARIANT of the app
    label: str
    # Another build of sharedsession to run instead of the installed one (--build TAG=PATH).
    build: str = ""
    # Run only when named in --variants (not part of the default run).
    optional: bool = False

    @property
    def key(self) -> str:
        return f"{self.framework}/{self.name}" + (f"@{self.build}" if self.build else "")

    def built(self, tag: str) -> Variant:
        return replace(self, build=tag, label=f"{self.label} [{tag}]")

    @property
    def is_floor(self) -> bool:
        return self.name == "none"

    @property
    def server_side(self) -> bool:
        """Keeps sessions in Redis (so has Redis work, bytes in Redis, and lost updates to count)."""
        return self.name not in ("none", "cookie")


VARIANTS: tuple[Variant, ...] = (
    Variant("flask", "none", "Flask, no session (floor)"),
    Variant("flask", "cookie", "Flask cookie session"),
    Variant("flask", "sharedsession", "sharedsession (Flask)"),
    Variant("flask", "sharedsession-cached", "sharedsession, local cache (Flask)"),
    Variant("flask", "sharedsession-enc", "sharedsession, encrypted (Flask)", optional=True),
    Variant("flask", "flask-session", "Flask-Session (Redis)"),
    Variant("asgi", "none", "Starlette, no session (floor)"),
    Variant("asgi", "cookie", "Starlette cookie session"),
    Variant("asgi", "sharedsession", "sharedsession (ASGI)"),
    Variant("asgi", "sharedsession-cached", "sharedsession, local cache (ASGI)"),
    Variant("asgi", "sharedsession-enc", "sharedsession, encrypted (ASGI)", optional=True),
    Variant("asgi", "starsessions", "starsessions (Redis)"),
)

# The competitor each target compares sharedsession with, per framework.
COMPETITOR: dict[Framework, str] = {"flask": "flask-session", "asgi": "starsessions"}

NETWORKS: tuple[Network, ...] = ("loopback", "delay")
NETWORK_LABELS: dict[Network, str] = {
    "loopback": "loopback",
    "delay": "Redis behind the delay line (+0.5 ms per round trip)",
}
SHAPES: tuple[Shape, ...] = ("tiny", "realistic")
SHAPE_LABELS: dict[Shape, str] = {
    "tiny": 'tiny session ({"user", "n"})',
    "realistic": "realistic session (22 keys: those two, 20 of 200 bytes)",
}
# Routes measured in every setting; the others only on loopback with the tiny session
# (they do not touch the session's data, or only create it).
SETTING_ROUTES = ("read", "write")
# Variants without Redis are the same on any network: measured on loopback only. The cookie
# session only holds the tiny session: the realistic one is over the 4096 bytes browsers keep.
TINY_ONLY = ("cookie",)


@dataclass(frozen=True)
class Route:
    name: str
    method: Literal["GET", "POST"]
    path: str
    cookie: Literal["none", "valid", "forged"]
    label: str


ROUTES: tuple[Route, ...] = (
    Route("anon", "GET", "/anon", "none", "/anon, no cookie"),
    Route("anon-cookie", "GET", "/anon", "valid", "/anon, valid cookie"),
    Route("read", "GET", "/read", "valid", "/read (reads one key)"),
    Route("write", "POST", "/write", "valid", "/write (changes one key)"),
    Route("login", "POST", "/login", "none", "/login (creates a session)"),
)
# Measured for Redis work only (not for throughput): a cookie that names no session.
FORGED = Route("read-forged", "GET", "/read", "forged", "/read, forged cookie")


def variant(key: str) -> Variant:
    """The variant named ``framework/name`` or ``framework/name@build``."""
    base, _, build = key.partition("@")
    for v in VARIANTS:
        if v.key == base:
            return v.built(build) if build else v
    raise KeyError(key)


def route(name: str) -> Route:
    for r in (*ROUTES, FORGED):
        if r.name == name:
            return r
    raise KeyError(name)


def forge(cookie_value: str) -> str:
    """A cookie value of the same shape that names no session: its first character changed.

    Not the last: the last base64 character of a signature carries padding
    bits that decoders ignore, so changing it may leave the signature valid.
    """
    if not cookie_value:
        return "forged"
    first = cookie_value[0]
    return ("A" if first != "A" else "B") + cookie_value[1:]
