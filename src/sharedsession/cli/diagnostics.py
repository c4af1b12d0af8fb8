"""What ``sharedsession stats`` measures: sessions, their memory, the Redis settings that matter.

Built on the store (``count``, ``keys``, ``redis``) and plain redis-py
commands (SCAN, MEMORY USAGE, INFO); nothing here depends on how the command
line is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal

from redis.exceptions import ResponseError

from sharedsession._redis import unavailable_as_error
from sharedsession._urls import redact_url
from sharedsession.store import SCAN_PAGE, SessionStore

__all__ = [
    "DEFAULT_SAMPLE",
    "EvictionRisk",
    "MemoryEstimate",
    "ServerInfo",
    "Stats",
    "collect_stats",
    "eviction_risk",
    "eviction_warning",
    "human_bytes",
    "render_stats",
]

DEFAULT_SAMPLE = 200

EvictionRisk = Literal["safe", "evicts-sessions", "unknown"]


@dataclass(frozen=True)
class MemoryEstimate:
    """Memory of the session hashes, extrapolated from MEMORY USAGE of a sample."""

    sampled_keys: int
    sampled_bytes: int
    #: sampled_bytes / sampled_keys * sessions; None when nothing could be measured.
    estimated_bytes: int | None
    #: Why nothing was measured (MEMORY unsupported, sampling turned off).
    note: str | None = None


@dataclass(frozen=True)
class ServerInfo:
    """The INFO fields an operator of a session store needs."""

    redis_version: str | None
    used_memory_human: str | None
    maxmemory: int | None
    maxmemory_human: str | None
    maxmemory_policy: str | None
    connected_clients: int | None
    #: The INFO keyspace line of our database, e.g. "db1:keys=3,expires=3,avg_ttl=0".
    keyspace: str | None


@dataclass(frozen=True)
class Stats:
    """What ``stats`` reports; ``--json`` prints it as is."""

    redis_url: str  # password redacted
    prefix: str
    db: int | None
    sessions: int
    user_indexes: int
    memory: MemoryEstimate
    server: ServerInfo | None
    server_error: str | None
    warnings: tuple[str, ...]


def collect_stats(store: SessionStore, *, sample: int = DEFAULT_SAMPLE) -> Stats:
    """Gather what ``stats`` shows: a few SCANs over the keyspace, MEMORY USAGE of a sample, one INFO.

    A server without INFO or MEMORY (some managed or emulated Redis) leaves
    those parts empty with a note; an unreachable one raises StoreUnavailableError.
    """
    client: Any = store.redis
    keys = store.keys
    sessions = store.count()
    with unavailable_as_error():
        user_indexes = sum(1 for _ in client.scan_iter(match=keys.user_pattern, count=SCAN_PAGE))
        memory = _estimate_memory(client, keys.session_pattern, sample, sessions)
        server, server_error = _server_info(client)
    policy = server.maxmemory_policy if server else None
    warning = eviction_warning(policy, server.maxmemory if server else None)
    return Stats(
        redis_url=redact_url(store.config.redis_url),
        prefix=keys.prefix,
        db=_db_number(client),
        sessions=sessions,
        user_indexes=user_indexes,
        memory=memory,
        server=server,
        server_error=server_error,
        warnings=(warning,) if warning else (),
    )


def _estimate_memory(client: Any, pattern: str, sample: int, sessions: int) -> MemoryEstimate:
    if sample == 0:
        return MemoryEstimate(0, 0, None, "sampling turned off (--sample 0)")
    keys = list(islice(client.scan_iter(match=pattern, count=min(sample, SCAN_PAGE)), sample))
    if not keys:
        return MemoryEstimate(0, 0, 0 if sessions == 0 else None)
    # One key alone first: a server without MEMORY (an emulator, a locked-down
    # managed Redis) answers one clean error instead of one per pipelined key.
    try:
        first = client.memory_usage(keys[0], samples=0)  # 0: every field, exact for a hash
    except ResponseError as exc:
        return MemoryEstimate(0, 0, None, f"MEMORY USAGE failed: {exc}")
    pipe = client.pipeline(transaction=False)
    for key in keys[1:]:
        pipe.memory_usage(key, samples=0)
    replies = [first, *pipe.execute(raise_on_error=False)]
    errors = [reply for reply in replies if isinstance(reply, Exception)]
    if errors:
        raise errors[0]
    sizes = [reply for reply in replies if isinstance(reply, int)]  # None: the key expired meanwhile
    if not sizes:
        return MemoryEstimate(0, 0, None)
    return MemoryEstimate(len(sizes), sum(sizes), round(sum(sizes) / len(sizes) * sessions))


def _server_info(client: Any) -> tuple[ServerInfo | None, str | None]:
    try:
        info: dict[str, Any] = client.info()
    except ResponseError as exc:  # INFO disabled or unknown (renamed command, emulator)
        return None, f"INFO failed: {exc}"
    db = _db_number(client)
    space = info.get(f"db{db}") if db is not None else None
    keyspace = None
    if isinstance(space, dict):
        keyspace = f"db{db}:" + ",".join(f"{name}={value}" for name, value in space.items())
    elif db is not None:
        keyspace = f"db{db}: empty"

    def text(name: str) -> str | None:
        value = info.get(name)
        return None if value is None else str(value)

    def number(name: str) -> int | None:
        value = info.get(name)
        return value if isinstance(value, int) else None

    server = ServerInfo(
        redis_version=text("redis_version"),
        used_memory_human=text("used_memory_human"),
        maxmemory=number("maxmemory"),
        maxmemory_human=text("maxmemory_human"),
        maxmemory_policy=text("maxmemory_policy"),
        connected_clients=number("connected_clients"),
        keyspace=keyspace,
    )
    return server, None


def _db_number(client: Any) -> int | None:
    """The database the client selects; None for a client without one (Redis Cluster)."""
    kwargs = getattr(client, "get_connection_kwargs", None)
    db = kwargs().get("db", 0) if callable(kwargs) else None
    return db if isinstance(db, int) else None


def eviction_risk(policy: str) -> EvictionRisk:
    """Classify a ``maxmemory-policy`` by what it may do to sessions.

    Only ``noeviction`` is safe: a full Redis then refuses writes, which the
    apps report as errors. Every other policy deletes keys when Redis reaches
    ``maxmemory``, and every session key carries a TTL, so the ``volatile-*``
    policies (which choose among keys with a TTL) pick live sessions exactly
    as the ``allkeys-*`` ones do: users are silently logged out.
    """
    name = policy.strip().lower()
    if name == "noeviction":
        return "safe"
    # "eviction": what Dragonfly reports in cache mode (--cache_mode), where it evicts any key.
    if name.startswith(("allkeys-", "volatile-")) or name == "eviction":
        return "evicts-sessions"
    return "unknown"


def eviction_warning(policy: str | None, maxmemory: int | None) -> str | None:
    """The warning ``stats`` prints for this policy and limit (bytes, 0: none), or None if safe."""
    if policy is None:
        return "could not read maxmemory-policy: make sure it is noeviction, or Redis may evict live sessions"
    risk = eviction_risk(policy)
    if risk == "safe":
        return None
    if risk == "unknown":
        return f"unknown maxmemory-policy {policy!r}: make sure it cannot evict sessions (noeviction is safe)"
    message = (
        f"maxmemory-policy is {policy}: when Redis reaches maxmemory it deletes keys to make room, "
        "and live sessions are candidates (every session has a TTL, so volatile-* policies pick them "
        "too): users get logged out at random. Use noeviction (a full Redis then refuses writes "
        "loudly) and size maxmemory for the sessions, or give sessions a Redis of their own."
    )
    if maxmemory == 0:
        message += " Not in effect yet: maxmemory is 0 (no limit), but it will be once a limit is set."
    return message


def render_stats(stats: Stats) -> str:
    """``stats`` as text for a person."""
    lines = [
        f"redis           {stats.redis_url}",
        f"key prefix      {stats.prefix!r}",
        f"live sessions   {stats.sessions}",
        f"user indexes    {stats.user_indexes}",
        f"session memory  {_memory_text(stats.memory)}",
    ]
    server = stats.server
    if server is None:
        lines.append(f"redis info      unavailable ({stats.server_error})")
    else:
        limit = server.maxmemory_human or "?"
        if server.maxmemory == 0:
            limit += " (no limit)"
        lines += [
            f"redis version   {server.redis_version or '?'}",
            f"used memory     {server.used_memory_human or '?'} (whole server)",
            f"maxmemory       {limit}",
            f"eviction policy {server.maxmemory_policy or '?'}",
            f"clients         {server.connected_clients if server.connected_clients is not None else '?'}",
            f"keyspace        {server.keyspace or '?'}",
        ]
    lines += [f"\nWARNING: {warning}" for warning in stats.warnings]
    return "\n".join(lines)


def _memory_text(memory: MemoryEstimate) -> str:
    if memory.estimated_bytes is None:
        return f"unknown ({memory.note})" if memory.note else "unknown"
    if memory.sampled_keys == 0:
        return human_bytes(memory.estimated_bytes)
    average = memory.sampled_bytes / memory.sampled_keys
    return (
        f"~{human_bytes(memory.estimated_bytes)} (estimate: {human_bytes(round(average))} "
        f"average over {memory.sampled_keys} sampled key(s); user indexes not included)"
    )


def human_bytes(size: int) -> str:
    """``size`` bytes for a person: 512 B, 1.5 KiB, 3.2 MiB, 1.0 GiB."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
