"""The example's settings from the environment (the variables of examples/README.md).

Kept apart from ``settings.py`` so that the tests read the same rules without
configuring Django.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BIND_IP = ("off", "exact", "subnet")


def settings_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Django settings for the environment; a missing secret or a bad value refuses to start."""
    if env.get("SECRET_KEY_FILE"):
        keys = Path(env["SECRET_KEY_FILE"]).read_text(encoding="utf-8").split()  # a Docker secret
    else:
        keys = env.get("SECRET_KEY", "").split()
    if not keys:
        raise RuntimeError(
            "Set SECRET_KEY (keys separated by spaces, newest first) or SECRET_KEY_FILE: "
            "the example refuses to start without a key to sign session cookies"
        )
    idle_timeout = _seconds(env, "IDLE_TIMEOUT", "1800")
    absolute_timeout = _seconds(env, "ABSOLUTE_TIMEOUT", "0") or None
    cache = env.get("LOCAL_CACHE") or "0"
    if not cache.isdigit():
        raise RuntimeError(f"LOCAL_CACHE must be a whole number, got {cache!r}")
    most = env.get("MAX_SESSIONS_PER_USER") or "0"
    if not most.isdigit():
        raise RuntimeError(f"MAX_SESSIONS_PER_USER must be a whole number, got {most!r}")
    limit = env.get("SESSION_LIMIT") or "evict_oldest"
    if limit not in ("evict_oldest", "refuse"):
        raise RuntimeError(f"SESSION_LIMIT must be evict_oldest or refuse, got {limit!r}")
    proxies = [cidr.strip() for cidr in env.get("TRUSTED_PROXIES", "").split(",") if cidr.strip()]
    bind_ip = env.get("SESSION_BIND_IP", "off")
    if bind_ip not in BIND_IP:
        raise RuntimeError(f"SESSION_BIND_IP must be off, exact or subnet, got {bind_ip!r}")
    return {
        "SECRET_KEY": keys[0],
        "SECRET_KEY_FALLBACKS": keys[1:],  # older keys still verify cookies (rotation)
        "REPLICA_ID": env.get("REPLICA_ID") or socket.gethostname(),
        "SHAREDSESSION": {
            "redis_url": env.get("REDIS_URL", "redis://localhost:6379/1"),
            "idle_timeout": idle_timeout,
            "absolute_timeout": absolute_timeout,
            "bind_ip": bind_ip,
            "trusted_proxies": proxies,
            "key_prefix": env.get("KEY_PREFIX", "sharedsession:"),
            "local_cache": int(cache),
            "max_sessions_per_user": int(most) or None,
            "on_session_limit": limit,
        },
    }


def _seconds(env: Mapping[str, str], name: str, default: str) -> float:
    given = env.get(name) or default
    try:
        return float(given)
    except ValueError:
        raise RuntimeError(f"{name} must be a number of seconds, got {given!r}") from None
