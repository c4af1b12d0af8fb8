"""What ``sharedsession doctor`` concludes from what it read: no I/O here.

Each function takes replies as redis-py returns them (INFO as a dict, HELLO
as a map or a flat list, CONFIG GET values) and returns a :class:`Finding`:
a status, one line saying what was found, and what to do about it. The
doctor (``doctor.py``) does the talking to servers; everything it decides is
here, so that tests can feed recorded replies of servers this machine does
not run (Valkey, Dragonfly, KeyDB, Garnet).

What is said about the other servers was read from their source and docs
(Valkey 8.0, Dragonfly 1.3x, KeyDB 6.3.4, Garnet 1.0/2.x), not from running
them; the doctor's probes run what sharedsession needs on whatever answers,
so a claim here never replaces a check.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from redis.exceptions import NoPermissionError, OutOfMemoryError, ReadOnlyError

from sharedsession.cli.diagnostics import eviction_risk, human_bytes

__all__ = [
    "LAG_WARN_SECONDS",
    "LATENCY_WARN_MS",
    "MEMORY_FAIL_RATIO",
    "MEMORY_WARN_RATIO",
    "SKEW_FAIL_SECONDS",
    "SKEW_WARN_SECONDS",
    "Finding",
    "Product",
    "ServerKind",
    "Status",
    "as_text",
    "assess_clock",
    "assess_cluster_masters",
    "assess_cluster_slots",
    "assess_cluster_state",
    "assess_eviction",
    "assess_latency",
    "assess_memory",
    "assess_mode",
    "assess_persistence",
    "assess_persistence_errors",
    "assess_replication",
    "assess_script_error",
    "assess_sentinel_master",
    "assess_sentinel_quorum",
    "assess_server",
    "assess_shared_db",
    "identify",
    "pairs",
    "severity",
    "short_error",
]

Status = Literal["ok", "warn", "fail"]
_SEVERITY: dict[Status, int] = {"ok": 0, "warn": 1, "fail": 2}

Product = Literal["Redis", "Valkey", "Dragonfly", "KeyDB", "Garnet", "unknown"]

MEMORY_WARN_RATIO = 0.80
MEMORY_FAIL_RATIO = 0.95
LATENCY_WARN_MS = 5.0
LAG_WARN_SECONDS = 10
# Deadlines are computed on the apps' clocks and sent as absolute times
# (PEXPIREAT): a server clock that differs moves every expiry by as much.
SKEW_WARN_SECONDS = 1.0
SKEW_FAIL_SECONDS = 60.0

_CLUSTER_SLOTS = 16384
# ZADD ... GT, which the user index uses, came with Redis 6.2.
_NEEDS = (6, 2)
_SUITE = "run sharedsession's test suite against it (REDIS_URL=redis://HOST:PORT/1 pytest)"


@dataclass(frozen=True)
class Finding:
    """One check's verdict: ``fix`` says what to do (empty when there is nothing to do)."""

    status: Status
    message: str
    fix: str = ""


def severity(status: Status) -> int:
    """0 for ok, 1 for warn, 2 for fail: to sort by, or pick the worst."""
    return _SEVERITY[status]


# -- telling servers apart ---------------------------------------------------------


@dataclass(frozen=True)
class ServerKind:
    """Which server answers, by what INFO and HELLO say about it."""

    product: Product
    #: The product's own version ("8.0.1" for Valkey 8.0.1), when it says.
    version: str | None
    #: The Redis version it reports for old clients (Valkey: 7.2.4; Dragonfly: 7.4.0).
    redis_version: str | None
    #: standalone, cluster or sentinel, when it says.
    mode: str | None

    @property
    def title(self) -> str:
        if self.product == "unknown":
            return "an unknown server"
        return f"{self.product} {self.version or '(version unknown)'}"


def pairs(reply: object) -> dict[str, str]:
    """A map reply as text: RESP3 maps, RESP2 flat name/value lists, bytes or str."""
    if isinstance(reply, Mapping):
        items = list(reply.items())
    elif isinstance(reply, (list, tuple)):
        items = list(zip(reply[::2], reply[1::2], strict=False))
    else:
        return {}
    return {as_text(name): as_text(value) for name, value in items}


def as_text(value: object) -> str:
    """A reply as text (bytes decoded; anything else through str)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def identify(info: Mapping[str, object] | None, hello: object = None) -> ServerKind:
    """Tell Redis, Valkey, Dragonfly, KeyDB and Garnet apart from INFO and HELLO.

    ``redis_version`` names nothing: every one of them reports one for old
    clients. Their own fields do: ``valkey_version`` and ``server_name:valkey``
    (Valkey 7.2.5+), ``dragonfly_version`` (in INFO and HELLO), ``garnet_version``
    (likewise), and KeyDB's ``# KeyDB`` INFO section (``mvcc_depth``). Valkey 8
    says ``server: valkey`` in HELLO; 7.2 said ``redis``. ``info`` may be None
    (INFO refused), ``hello`` None (HELLO refused, or a server before Redis 6).
    """
    fields = {name: as_text(value) for name, value in (info or {}).items() if not isinstance(value, Mapping)}
    greeting = pairs(hello)
    server = greeting.get("server", "").lower()
    redis_version = fields.get("redis_version") or greeting.get("version") or None
    mode = fields.get("redis_mode") or greeting.get("mode") or None

    def kind(product: Product, version: str | None) -> ServerKind:
        return ServerKind(product, version or None, redis_version, mode)

    dragonfly = (
        fields.get("dragonfly_version") or greeting.get("dragonfly_version") or greeting.get("dfly_version")
    )
    if dragonfly:
        return kind("Dragonfly", re.sub(r"^df-v?", "", dragonfly))
    garnet = fields.get("garnet_version") or greeting.get("garnet_version")
    if garnet:
        return kind("Garnet", garnet)
    if "valkey_version" in fields or fields.get("server_name", "").lower() == "valkey" or server == "valkey":
        return kind("Valkey", fields.get("valkey_version") or greeting.get("version"))
    if "mvcc_depth" in fields or "keydb" in fields.get("executable", "").lower() or server == "keydb":
        return kind("KeyDB", redis_version)  # KeyDB reports its own version there
    if redis_version:
        return kind("Redis", redis_version)
    return kind("unknown", None)


def _version(text: str | None) -> tuple[int, int] | None:
    match = re.match(r"\s*v?(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


def assess_server(kind: ServerKind, *, info_error: str | None = None) -> Finding:
    """Whether this server can hold sessions at all, and what is known not to work on it."""
    version = _version(kind.version)
    if kind.product == "unknown":
        why = f"INFO refused: {info_error}" if info_error else "INFO names no version"
        return Finding("warn", f"an unknown server ({why}); the probes below decide", _SUITE)
    if kind.product in ("Redis", "KeyDB") and version is not None and version < _NEEDS:
        return Finding(
            "fail",
            f"{kind.title}: sharedsession needs Redis 6.2 or later (ZADD GT, used by the user index)",
            "upgrade to Redis 6.2 or later (7.x recommended), or Valkey",
        )
    if kind.product == "Redis":
        if version is None:
            return Finding("warn", f"Redis, unreadable version {kind.version!r}; the probes below decide")
        return Finding("ok", kind.title)
    if kind.product == "Valkey":
        claims = f" (reports Redis {kind.redis_version})" if kind.redis_version else ""
        return Finding("ok", f"{kind.title}{claims}: a fork of Redis 7.2, compatible")
    if kind.product == "KeyDB":
        return Finding(
            "warn",
            f"{kind.title}: a multithreaded fork of Redis 6.2, not tested with sharedsession; "
            "active-replica (multi-master) setups are unverified",
            _SUITE,
        )
    if kind.product == "Dragonfly":
        return Finding(
            "warn",
            f"{kind.title} (reports Redis {kind.redis_version or '?'}): not tested with sharedsession; "
            "Lua 5.4 with 5.1 functions polyfilled, scripts may touch only keys they declare (ours do), "
            "TTLs over 2^28 ms are rounded to seconds",
            _SUITE + "; do not run it with --cache_mode (it evicts keys)",
        )
    # Garnet
    return Finding(
        "warn",
        f"{kind.title}: Lua only with --lua (cjson since 1.0.60), and scripts run atomically only "
        "with --lua-transaction-mode (off by default; not visible from here): without it the "
        "guards that keep a logout from being undone do not hold",
        "start Garnet with --lua --lua-transaction-mode, and " + _SUITE,
    )


def assess_mode(
    kind: ServerKind,
    *,
    requested: Literal["single", "cluster", "sentinel"],
    cluster_enabled: bool,
    db: int | None,
    masters: int = 1,
    service: str | None = None,
) -> Finding:
    """Whether the server is what the command line (and so, presumably, the apps) expect."""
    if requested != "cluster" and cluster_enabled:
        return Finding(
            "fail",
            "a Redis Cluster node: a plain client gets MOVED for the keys of other nodes",
            "run the doctor with --cluster, and give the apps a RedisCluster client (README: Scaling Redis)",
        )
    if requested == "cluster":
        return Finding("ok", f"Redis Cluster, {masters} master(s), database 0")
    if requested == "sentinel":
        return Finding("ok", f"the master the Sentinels name for {service!r}, database {db}")
    return Finding("ok", f"standalone server, database {db}")


# -- settings ----------------------------------------------------------------------


def assess_eviction(policy: str | None, maxmemory: int | None) -> Finding:
    """``maxmemory-policy``: only ``noeviction`` keeps live sessions (see ``eviction_risk``)."""
    if policy is None:
        return Finding(
            "warn",
            "could not read maxmemory-policy",
            "make sure it is noeviction: any other policy may delete live sessions",
        )
    risk = eviction_risk(policy)
    if risk == "safe":
        return Finding("ok", "noeviction: a full Redis refuses writes (503s) rather than delete sessions")
    if risk == "unknown":
        return Finding(
            "warn",
            f"unknown maxmemory-policy {policy!r}",
            "make sure it cannot evict keys with a TTL (noeviction is safe)",
        )
    latent = " (not yet in effect: maxmemory is 0)" if maxmemory == 0 else ""
    return Finding(
        "fail",
        f"maxmemory-policy {policy}: at maxmemory Redis deletes keys, and every session has a TTL, "
        f"so users are logged out at random{latent}",
        "CONFIG SET maxmemory-policy noeviction (and in redis.conf), and size maxmemory for the sessions",
    )


def assess_memory(used: int | None, maxmemory: int | None) -> Finding:
    """Headroom: ``used_memory`` against ``maxmemory`` (0: no limit)."""
    if used is None or maxmemory is None:
        return Finding("warn", "could not read used_memory and maxmemory from INFO")
    if maxmemory == 0:
        return Finding(
            "warn",
            f"no maxmemory set ({human_bytes(used)} used): Redis grows until the machine or container "
            "runs out of memory, and is killed",
            "set maxmemory below what the server may use, with maxmemory-policy noeviction",
        )
    ratio = used / maxmemory
    text = f"{human_bytes(used)} of {human_bytes(maxmemory)} used ({ratio:.0%})"
    fix = "raise maxmemory, or give sessions a Redis of their own (a session takes about 220 bytes and up)"
    if ratio > MEMORY_FAIL_RATIO:
        return Finding("fail", f"{text}: new sessions are about to be refused (or evicted)", fix)
    if ratio > MEMORY_WARN_RATIO:
        return Finding("warn", f"{text}: little headroom", fix)
    return Finding("ok", text)


def assess_persistence(
    *, aof_enabled: bool | None, save: str | None, appendfsync: str | None = None, replicas: int = 0
) -> Finding:
    """AOF or RDB snapshots: without either, a restart logs every user out."""
    if aof_enabled:
        fsync = f", appendfsync {appendfsync}" if appendfsync else ""
        return Finding("ok", f"append-only file on{fsync}")
    if save:
        return Finding(
            "ok", f"RDB snapshots (save {save}); a restart loses what changed since the last snapshot"
        )
    if save is None:
        return Finding(
            "warn",
            "append-only file off, and the snapshot schedule (CONFIG GET save) could not be read",
            "make sure AOF or RDB snapshots are on, or a restart logs everyone out",
        )
    echo = " (and a master that restarts empty empties its replicas)" if replicas else ""
    return Finding(
        "warn",
        f"no persistence (no AOF, no RDB snapshots): a restart logs everyone out{echo}",
        "CONFIG SET appendonly yes (and in redis.conf), or set save points",
    )


def assess_persistence_errors(
    info: Mapping[str, object], *, stop_writes_on_bgsave_error: bool | None, save: str | None
) -> Finding:
    """Failing disk writes that make Redis refuse every write (MISCONF), as Redis decides it.

    Redis refuses writes when the AOF is on and its last write failed, or when
    snapshots are scheduled, ``stop-writes-on-bgsave-error`` is yes and the
    last snapshot failed.
    """
    aof_on = _int(info.get("aof_enabled")) == 1
    if aof_on and as_text(info.get("aof_last_write_status", "ok")) == "err":
        return Finding(
            "fail",
            "the last append-only file write failed: Redis refuses every write (MISCONF), no one can log in",
            "fix the disk (space, permissions of dir; see the Redis log)",
        )
    if as_text(info.get("rdb_last_bgsave_status", "ok")) == "err":
        if stop_writes_on_bgsave_error and save:
            return Finding(
                "fail",
                "the last snapshot failed and stop-writes-on-bgsave-error is yes: Redis refuses "
                "every write (MISCONF), no one can log in",
                "fix the disk (space, permissions of dir; see the Redis log), then BGSAVE",
            )
        return Finding(
            "warn",
            "the last snapshot failed: sessions are not being saved to disk",
            "fix the disk (space, permissions of dir; see the Redis log), then BGSAVE",
        )
    if aof_on and as_text(info.get("aof_last_bgrewrite_status", "ok")) == "err":
        return Finding("warn", "the last AOF rewrite failed", "see the Redis log")
    return Finding("ok", "no failed disk writes")


def assess_replication(info: Mapping[str, object], *, min_replicas_to_write: int | None = None) -> Finding:
    """The role (a replica refuses writes), and the lag of each replica a master reports."""
    role = as_text(info.get("role", "?"))
    if role in ("slave", "replica"):
        master = f"{as_text(info.get('master_host', '?'))}:{as_text(info.get('master_port', '?'))}"
        return Finding(
            "fail",
            f"a read-only replica (of {master}): every session write is refused",
            "point the apps (and --redis-url) at the master, or use Sentinel (--sentinel)",
        )
    replicas = [value for name, value in info.items() if re.fullmatch(r"slave\d+", name)]
    if min_replicas_to_write:
        good = _int(info.get("min_slaves_good_slaves"))
        if good is not None and good < min_replicas_to_write:
            return Finding(
                "fail",
                f"min-replicas-to-write is {min_replicas_to_write} but {good} replica(s) keep up: "
                "writes are refused (NOREPLICAS)",
                "bring the replicas back, or lower min-replicas-to-write",
            )
    if not replicas:
        return Finding("ok", "no replicas: losing this server loses its sessions")
    problems: list[str] = []
    lags: list[int] = []
    for replica in replicas:
        fields = pairs(replica) if isinstance(replica, Mapping) else {}
        where = f"{fields.get('ip', '?')}:{fields.get('port', '?')}"
        lag = _int(fields.get("lag"))
        if fields.get("state") != "online":
            problems.append(f"replica {where} is {fields.get('state', '?')}")
        elif lag is not None and lag > LAG_WARN_SECONDS:
            problems.append(f"replica {where} lags {lag} s")
        if lag is not None:
            lags.append(lag)
    if problems:
        return Finding(
            "warn",
            "; ".join(problems) + ": a failover now would lose recent logins, logouts and revocations",
            "see the replica's log (INFO replication on it)",
        )
    most = f", lag at most {max(lags)} s" if lags else ""
    return Finding("ok", f"{len(replicas)} replica(s) online{most}")


# -- measurements ------------------------------------------------------------------


def assess_latency(samples_ms: Sequence[float]) -> Finding:
    """The median round trip of a few PINGs: a request costs one or two of them."""
    if not samples_ms:
        return Finding("warn", "no PING answered")
    median = statistics.median(samples_ms)
    text = f"median round trip {median:.2f} ms over {len(samples_ms)} PINGs"
    if median > LATENCY_WARN_MS:
        return Finding(
            "warn",
            f"{text}: each request waits one or two of these",
            "run Redis close to the apps (same network, same zone)",
        )
    return Finding("ok", text)


def assess_clock(skew_seconds: float | None) -> Finding:
    """Server clock against this machine's: deadlines are sent as absolute times."""
    if skew_seconds is None:
        return Finding("warn", "could not read the server's clock (TIME)")
    text = (
        f"server clock {abs(skew_seconds):.2f} s {'ahead of' if skew_seconds > 0 else 'behind'} this machine"
    )
    fix = "run NTP (chrony, systemd-timesyncd) on the apps' machines and on Redis"
    if abs(skew_seconds) > SKEW_FAIL_SECONDS:
        return Finding(
            "fail", f"{text}: session expiry is off by as much (short idle timeouts expire at once)", fix
        )
    if abs(skew_seconds) > SKEW_WARN_SECONDS:
        return Finding("warn", f"{text}: session expiry is off by as much", fix)
    return Finding("ok", text)


def assess_shared_db(
    *,
    sampled: int,
    foreign: int,
    db: int | None,
    prefix: str,
    keys_in_db: int | None = None,
    other_dbs: Mapping[str, int] | None = None,
) -> Finding:
    """Whether something else stores keys in the sessions' database (from a bounded SCAN sample)."""
    where = f"database {db}" if db is not None else "the database"
    size = f" ({keys_in_db} keys)" if keys_in_db is not None else ""
    others = ", ".join(f"{name}: {count} keys" for name, count in sorted((other_dbs or {}).items()))
    elsewhere = f"; other databases on this server: {others}" if others else ""
    if foreign:
        return Finding(
            "warn",
            f"{foreign} of {sampled} keys sampled in {where}{size} are not under {prefix!r}: "
            f"something else uses it{elsewhere}",
            "give sessions a database (better: a Redis) of their own: another app's FLUSHDB "
            "logs everyone out, and its keys take the sessions' memory",
        )
    if sampled == 0:
        return Finding("ok", f"{where} holds no keys yet{elsewhere}")
    return Finding("ok", f"all {sampled} keys sampled in {where}{size} are under {prefix!r}{elsewhere}")


# -- what the probes met ------------------------------------------------------------


def assess_script_error(what: str, error: BaseException) -> Finding:
    """A probe refused: why, said shortly, and the fix that fits the refusal.

    A script fails on a replica (READONLY), a full server (OOM), a failing
    disk (MISCONF) or a user without the right (NOPERM) as surely as on a
    server without Lua: each gets its own fix. ``error`` may be the
    library's StoreUnavailableError: its cause is what Redis said.
    """
    cause = error.__cause__ if error.__cause__ is not None else error
    text = short_error(cause)
    if isinstance(cause, ReadOnlyError) or "read only replica" in text:
        fix = "point the apps (and --redis-url) at the master: see replication"
    elif isinstance(cause, OutOfMemoryError) or text.startswith("OOM"):
        fix = "Redis is full: see memory"
    elif text.startswith("MISCONF"):
        fix = "Redis refuses writes while its disk writes fail: see persistence-errors"
    elif isinstance(cause, NoPermissionError) or text.startswith("NOPERM"):
        fix = (
            "grant the apps' user EVAL, EVALSHA and what the scripts call "
            "(ACL +@scripting +@hash +@sortedset +@keyspace)"
        )
    elif "unknown command" in text:
        fix = "the library's writes are Lua scripts: EVAL and EVALSHA must not be renamed or disabled"
    else:
        fix = "use a server with Lua and cjson (Redis 6.2 or later, or Valkey)"
    return Finding("fail", f"{what} failed: {text}", fix)


def short_error(error: BaseException, width: int = 160) -> str:
    """An error's message on one line, cut to ``width`` (Redis quotes a refused script's source)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= width else text[: width - 3] + "..."


# -- Cluster and Sentinel -------------------------------------------------------


_CLUSTER_FIX = "see CLUSTER NODES: bring failed masters back or fail over to their replicas"


def assess_cluster_state(states: Mapping[str, str]) -> Finding:
    """``cluster_state`` as each master reports it (``CLUSTER INFO``)."""
    bad = {node: state for node, state in states.items() if state != "ok"}
    if not states:
        return Finding("fail", "no master answered CLUSTER INFO")
    if bad:
        listed = ", ".join(f"{node}: {state}" for node, state in sorted(bad.items()))
        return Finding(
            "fail",
            f"cluster_state is not ok ({listed}): the cluster answers CLUSTERDOWN",
            _CLUSTER_FIX,
        )
    return Finding("ok", f"cluster_state ok on {len(states)} master(s)")


def assess_cluster_slots(info: Mapping[str, str]) -> Finding:
    """Slot coverage from one master's ``CLUSTER INFO``: every slot assigned to a master that works."""
    assigned = _int(info.get("cluster_slots_assigned"))
    healthy = _int(info.get("cluster_slots_ok"))
    if assigned is None or healthy is None:
        return Finding("warn", "could not read slot coverage from CLUSTER INFO")
    if assigned < _CLUSTER_SLOTS:
        return Finding(
            "fail",
            f"{_CLUSTER_SLOTS - assigned} of {_CLUSTER_SLOTS} slots are assigned to no master: "
            "sessions whose keys hash there cannot be stored",
            "assign the missing slots (redis-cli --cluster fix)",
        )
    if healthy < _CLUSTER_SLOTS:
        return Finding(
            "fail",
            f"{_CLUSTER_SLOTS - healthy} of {_CLUSTER_SLOTS} slots are served by failing masters",
            _CLUSTER_FIX,
        )
    return Finding(
        "ok",
        f"all {_CLUSTER_SLOTS} slots served; every script names one key and no key a hash tag, "
        "so no command spans slots",
    )


def assess_cluster_masters(answers: Mapping[str, str | None], replicas: Mapping[str, int]) -> Finding:
    """Every master of the slot map answers (``answers``: node -> None, or its error), and has a replica."""
    silent = {node: error for node, error in answers.items() if error is not None}
    if silent:
        listed = "; ".join(f"{node}: {error}" for node, error in sorted(silent.items()))
        return Finding(
            "fail",
            f"{len(silent)} of {len(answers)} masters do not answer ({listed}): their sessions fail (503)",
            "bring them back, or fail over to their replicas",
        )
    alone = sorted(node for node in answers if not replicas.get(node))
    if alone:
        return Finding(
            "warn",
            f"{len(answers)} masters answer; {len(alone)} have no replica: losing one loses its "
            "sessions, and after cluster-node-timeout the whole cluster answers CLUSTERDOWN",
            "give every master a replica",
        )
    return Finding("ok", f"{len(answers)} masters answer, each with a replica")


def assess_sentinel_master(answers: Mapping[str, tuple[str, int] | str | None], service: str) -> Finding:
    """Where each Sentinel says the master of ``service`` is (an address, None: unknown, str: an error)."""
    addresses = {node: answer for node, answer in answers.items() if isinstance(answer, tuple)}
    unknown = sorted(node for node, answer in answers.items() if answer is None)
    errors = {node: answer for node, answer in answers.items() if isinstance(answer, str)}
    named = {f"{host}:{port}" for host, port in addresses.values()}
    if not addresses:
        detail = "; ".join(f"{node}: {error}" for node, error in sorted(errors.items()))
        return Finding(
            "fail",
            f"no Sentinel names a master for {service!r}" + (f" ({detail})" if detail else ""),
            "check --service against 'sentinel monitor' in sentinel.conf",
        )
    if len(named) > 1:
        listed = ", ".join(f"{node} -> {host}:{port}" for node, (host, port) in sorted(addresses.items()))
        return Finding(
            "fail",
            f"the Sentinels disagree on the master of {service!r} ({listed})",
            "wait for the failover to settle; if it persists, see each Sentinel's log",
        )
    (master,) = named
    missing = [*unknown, *sorted(errors)]
    if missing:
        return Finding(
            "warn",
            f"{len(addresses)} of {len(answers)} Sentinels name {master}; "
            f"{', '.join(missing)} did not (unreachable, or not monitoring {service!r})",
            "run at least three Sentinels that all monitor the service",
        )
    return Finding("ok", f"all {len(answers)} Sentinels name {master} as the master of {service!r}")


def assess_sentinel_quorum(replies: Mapping[str, str]) -> Finding:
    """``SENTINEL CKQUORUM`` as each Sentinel answered it (its reply or error text)."""
    if not replies:
        return Finding("fail", "no Sentinel answered CKQUORUM")
    refused = {node: reply for node, reply in replies.items() if not reply.startswith("OK")}
    if refused:
        node, reply = sorted(refused.items())[0]
        return Finding(
            "fail",
            f"{node}: {reply}: a failover cannot be authorized, a lost master stays lost",
            "run enough Sentinels to reach the quorum and a majority (three or more)",
        )
    sample = next(iter(replies.values()))
    return Finding("ok", f"{len(replies)} Sentinel(s): {sample}")


# -- small helpers -----------------------------------------------------------------


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(as_text(value)) if value is not None else None
    except ValueError:
        return None
