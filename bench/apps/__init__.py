"""The benchmark's apps: one module per framework, every variant built from the environment.

``BENCH_VARIANT`` picks the session layer (``none`` is the floor: the same
routes with no session at all), ``BENCH_REDIS_URL`` the Redis, ``BENCH_SECRET``
the signing key and ``BENCH_PREFIX`` a prefix put in front of each library's
default key prefix (empty on the benchmark's own Redis, so key sizes are the
libraries' real ones).

``sharedsession-enc`` is sharedsession with encryption at rest
(``encryption_keys``: a key derived from ``BENCH_SECRET``);
``sharedsession-cached`` is sharedsession with its local cache
(``local_cache=10000``, other settings at their defaults).

Routes, identical in every variant:

- ``GET /anon``: does not touch the session.
- ``GET /read``: reads ``session["user"]``.
- ``POST /write``: ``session["n"] += 1``.
- ``POST /login``: stores ``{"user": "alice", "n": 5}`` in a new session (the
  tiny session); ``POST /login?shape=realistic``: those two keys and 20 more,
  of 200 bytes each (the realistic session). ``/read`` and ``/write`` are the
  same views for both: one key read, one key changed.
- ``POST /kv/<key>``: stores ``session[key] = 1`` (the lost-updates test).
- ``GET /dump``: the session's keys, as JSON (checks the lost-updates test).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

# Longest idle lifetime, for the libraries that take one (sharedsession's default).
LIFETIME_SECONDS = 14 * 24 * 3600
LOGIN_DATA: Mapping[str, object] = {"user": "alice", "n": 5}
#: Sessions kept per process by the ``sharedsession-cached`` variants.
CACHE_ENTRIES = 10_000
EXTRA_KEYS = 20
EXTRA_VALUE_BYTES = 200


def _text(i: int) -> str:
    """200 characters of base64 text, the same in every run: data that compresses as little as real data."""
    return base64.b64encode(hashlib.shake_256(f"bench value {i}".encode()).digest(150)).decode()


#: The realistic session: the tiny one's keys, and 20 more of 200 bytes each
#: (a profile, preferences, a cart, tokens...).
REALISTIC_DATA: Mapping[str, object] = {
    **LOGIN_DATA,
    **{f"r{i:02d}": _text(i) for i in range(EXTRA_KEYS)},
}


def login_data(shape: str | None) -> Mapping[str, object]:
    """What ``POST /login`` stores: the tiny session, or with ``?shape=realistic`` the realistic one."""
    return REALISTIC_DATA if shape == "realistic" else LOGIN_DATA


@dataclass(frozen=True)
class AppSettings:
    variant: str
    redis_url: str
    secret: str
    prefix: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AppSettings:
        return cls(
            variant=env.get("BENCH_VARIANT", "none"),
            redis_url=env.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
            secret=env.get("BENCH_SECRET", "bench-secret-key-0123456789abcdef"),
            prefix=env.get("BENCH_PREFIX", ""),
        )

    @property
    def encryption_keys(self) -> list[bytes]:
        """sharedsession's ``encryption_keys`` in the ``sharedsession-enc`` variant, else none."""
        if self.variant != "sharedsession-enc":
            return []
        return [hashlib.sha256(b"bench encryption key " + self.secret.encode()).digest()]
