"""``sharedsession doctor``: check a deployment's Redis before it bites.

Finds the servers (one server, every master of a Redis Cluster, or the
master a Sentinel group names), reads what matters from each (INFO, HELLO,
a few CONFIG GETs, PINGs, TIME, a bounded SCAN sample), runs what
sharedsession needs on each master (small Lua probes on a throwaway key under
the prefix, deleted by the probe itself) and one session's whole life through
the library's own store, then reports one :class:`Check` per concern.
What each reply means is decided in ``findings.py``; nothing here depends on
how the command line is parsed.

Writes: the probes' keys (``<prefix>doctor:<random>``, gone when each probe
returns) and one throwaway session with its user index, deleted at the end;
with an idle timeout of a minute, should the doctor be killed midway.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.connection import parse_url as _untyped_parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from sharedsession import SessionConfig
from sharedsession._urls import redact_url
from sharedsession.cli import findings as f
from sharedsession.cli.findings import Finding, Status
from sharedsession.cli.probes import PROBES, Probe, session_round_trip
from sharedsession.store import SCAN_PAGE

__all__ = [
    "PINGS",
    "SAMPLE",
    "BadTarget",
    "Check",
    "NodeResult",
    "Report",
    "Target",
    "Unreachable",
    "combine",
    "examine",
    "printable",
    "render",
]

Mode = Literal["single", "cluster", "sentinel"]

#: PINGs timed per master for the latency check.
PINGS = 10
#: Keys sampled per master (SCAN) to see whether something else uses the database.
SAMPLE = 1000
#: How long a server may take to answer one command.
TIMEOUT_SECONDS = 1.0

_CONNECTION_ERRORS = (RedisConnectionError, RedisTimeoutError)

#: redis-py's own reading of a Redis URL: host, port, db, username, password, TLS.
_parse_url: Callable[[str], dict[str, Any]] = _untyped_parse_url


class Unreachable(Exception):
    """No server to examine answers (exit code 3)."""


class BadTarget(Exception):
    """The command line names something the doctor cannot examine as asked (exit code 2)."""


@dataclass(frozen=True)
class Target:
    """Where to look: from the command line."""

    url: str
    prefix: str
    mode: Mode = "single"
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = "mymaster"


@dataclass(frozen=True)
class NodeResult:
    """One master's part of a check (on a Cluster, each master is checked on its own)."""

    node: str
    status: Status
    message: str
    fix: str


@dataclass(frozen=True)
class Check:
    """One line of the report: a name, a status (ok, warn, fail), what was found, what to do."""

    name: str
    status: Status
    message: str
    fix: str = ""
    nodes: tuple[NodeResult, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The check as ``--json`` prints it (README: Admin CLI)."""
        return {
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "fix": self.fix,
            "nodes": [
                {"node": n.node, "status": n.status, "message": n.message, "fix": n.fix} for n in self.nodes
            ],
        }


@dataclass
class Report:
    """Every check, in the order they ran; ``--json`` prints :meth:`to_json`."""

    target: Target
    db: int | None = None
    nodes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def blocking(self) -> list[str]:
        """Names of the failed checks: the deployment should not go on until they pass."""
        return [check.name for check in self.checks if check.status == "fail"]

    def count(self, status: Status) -> int:
        """How many checks ended with ``status``."""
        return sum(1 for check in self.checks if check.status == status)

    def to_json(self) -> dict[str, object]:
        """The report as ``--json`` prints it: one object (README: Admin CLI)."""
        target = self.target
        return {
            "redis_url": redact_url(target.url),
            "mode": target.mode,
            "prefix": target.prefix,
            "db": self.db,
            "nodes": self.nodes,
            "sentinels": [f"{host}:{port}" for host, port in target.sentinels],
            "service": target.service if target.mode == "sentinel" else None,
            "checks": [check.to_json() for check in self.checks],
            "summary": {status: self.count(status) for status in ("ok", "warn", "fail")},
            "blocking": self.blocking,
        }


def examine(target: Target) -> Report:
    """Run every check on ``target``: a few dozen round trips per master.

    Raises Unreachable when nothing answers (or a server stops answering
    midway), BadTarget when the target is not what the command line says
    (``--cluster`` on a plain server, a Sentinel given as ``--redis-url``).
    """
    try:  # the prefix as the apps' SessionConfig checks it (no braces: Cluster hash tags)
        SessionConfig(secret_key=secrets.token_urlsafe(32), key_prefix=target.prefix)
    except (TypeError, ValueError) as exc:
        raise BadTarget(str(exc)) from None
    report = Report(target)
    servers = _connect(target, report)
    try:
        if servers is not None:
            _check(servers, target, report)
    except _CONNECTION_ERRORS as exc:
        raise Unreachable(f"Redis stopped answering: {exc}") from exc
    finally:
        if servers is not None:
            servers.close()
    return report


# -- finding the servers -------------------------------------------------------------


@dataclass
class _Node:
    label: str  # host:port
    client: Any  # redis.Redis, on this one server


@dataclass
class _Servers:
    """The masters to examine, and the client the apps would use to reach them."""

    client: Any  # redis.Redis or RedisCluster
    masters: list[_Node]
    db: int | None
    #: On a Cluster, a master's node from a key (where a probe key lands).
    node_of: Callable[[str], str] | None = None
    #: Masters of the slot map that did not answer (Cluster): label -> error.
    silent: dict[str, str] = field(default_factory=dict)

    def close(self) -> None:
        self.client.close()


def _fast(retries: int = 1) -> dict[str, Any]:
    """Short timeouts, and retries without backoff: redis-py's defaults would stretch a dead port to seconds.

    One retry (as the library's own clients) heals a pooled connection the server closed.
    """
    return {
        "socket_timeout": TIMEOUT_SECONDS,
        "socket_connect_timeout": TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), retries),
    }


def _connect(target: Target, report: Report) -> _Servers | None:
    if target.mode == "cluster":
        servers = _connect_cluster(target)
    elif target.mode == "sentinel":
        master = _ask_sentinels(target, report)
        if master is None:
            return None  # the Sentinel checks say why
        servers = _connect_master(target, master)
    else:
        servers = _connect_single(target)
    report.db = servers.db
    report.nodes = [node.label for node in servers.masters] + sorted(servers.silent)
    return servers


def _connect_single(target: Target) -> _Servers:
    try:
        client = redis.Redis.from_url(target.url, **_fast())
    except ValueError as exc:  # a malformed URL
        raise BadTarget(str(exc)) from None
    node = _Node(_label(client), client)
    _reach(node, f"cannot reach Redis at {redact_url(target.url)}")
    _refuse_a_sentinel(node)
    return _Servers(client, [node], _db_of(client))


def _connect_master(target: Target, address: tuple[str, int]) -> _Servers:
    """The master the Sentinels name, with the database, user, password and TLS of --redis-url."""
    parts = urlsplit(target.url)
    if parts.scheme not in ("redis", "rediss"):
        raise BadTarget("with --sentinel, --redis-url must be redis:// or rediss:// (its host is not used)")
    host, port = address
    userinfo, at, _ = parts.netloc.rpartition("@")
    netloc = f"{userinfo}{at}{f'[{host}]' if ':' in host else host}:{port}"
    try:
        client = redis.Redis.from_url(urlunsplit(parts._replace(netloc=netloc)), **_fast())
    except ValueError as exc:
        raise BadTarget(str(exc)) from None
    node = _Node(f"{host}:{port}", client)
    _reach(node, f"cannot reach the master the Sentinels name, {host}:{port}")
    return _Servers(client, [node], _db_of(client))


def _connect_cluster(target: Target) -> _Servers:
    try:
        options = _parse_url(target.url)
    except ValueError as exc:
        raise BadTarget(str(exc)) from None
    if options.get("db", 0) != 0:
        raise BadTarget(f"a Redis Cluster has database 0 only; --redis-url names database {options['db']}")
    try:
        # Not require_full_coverage: uncovered slots are a finding, not a reason to stop.
        client: Any = RedisCluster.from_url(target.url, require_full_coverage=False, **_fast())
    except RedisClusterException as exc:
        _refuse_a_plain_server(target)
        raise Unreachable(f"cannot reach the Redis Cluster at {redact_url(target.url)}: {exc}") from None
    except _CONNECTION_ERRORS as exc:
        raise Unreachable(f"cannot reach the Redis Cluster at {redact_url(target.url)}: {exc}") from None
    masters: list[_Node] = []
    silent: dict[str, str] = {}
    for primary in sorted(client.get_primaries(), key=lambda node: str(node.name)):
        node = _Node(str(primary.name), client.get_redis_connection(primary))
        try:
            _ping(node.client)
        except _CONNECTION_ERRORS as exc:
            silent[node.label] = str(exc) or type(exc).__name__
            continue
        masters.append(node)
    if not masters:
        client.close()
        raise Unreachable(f"no master of the Redis Cluster at {redact_url(target.url)} answers")

    def node_of(key: str) -> str:
        return str(client.get_node_from_key(key).name)

    return _Servers(client, masters, 0, node_of=node_of, silent=silent)


def _refuse_a_plain_server(target: Target) -> None:
    """--cluster on a server that answers but is no Cluster node: a usage error, said plainly."""
    try:
        with redis.Redis.from_url(target.url, **_fast(retries=0)) as plain:
            enabled = plain.info("cluster").get("cluster_enabled")
    except RedisError:
        return
    if enabled == 0:
        raise BadTarget(f"{redact_url(target.url)} is not a Redis Cluster node: drop --cluster")


def _refuse_a_sentinel(node: _Node) -> None:
    try:
        mode = node.client.info("server").get("redis_mode")
    except ResponseError:
        return
    if mode == "sentinel":
        node.client.close()
        raise BadTarget(f"{node.label} is a Sentinel: use --sentinel {node.label} --service NAME")


def _reach(node: _Node, what: str) -> None:
    try:
        _ping(node.client)
    except _CONNECTION_ERRORS as exc:
        node.client.close()
        raise Unreachable(f"{what}: {exc}") from None


def _ping(client: Any) -> None:
    """One PING; an error reply is an answer too (Redis refuses PING with MISCONF while its disk fails)."""
    with contextlib.suppress(ResponseError):
        client.ping()


def _label(client: Any) -> str:
    kwargs = client.get_connection_kwargs()
    if kwargs.get("path"):
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _db_of(client: Any) -> int:
    db = client.get_connection_kwargs().get("db", 0)
    return db if isinstance(db, int) else int(db)


# -- Sentinel -------------------------------------------------------------------------


def _ask_sentinels(target: Target, report: Report) -> tuple[str, int] | None:
    """Ask each Sentinel where the master is and whether a failover could be authorized."""
    addresses: dict[str, tuple[str, int] | str | None] = {}
    quorum: dict[str, str] = {}
    silent: set[str] = set()
    for host, port in target.sentinels:
        label = f"{host}:{port}"
        with redis.Redis(host=host, port=port, decode_responses=True, **_fast(retries=0)) as sentinel:
            try:
                reply = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", target.service)
            except _CONNECTION_ERRORS as exc:
                addresses[label] = f"unreachable ({exc})"
                silent.add(label)
                continue
            except ResponseError as exc:
                addresses[label] = str(exc)
                continue
            if not reply:  # this Sentinel monitors no such service
                addresses[label] = None
                continue
            addresses[label] = (str(reply[0]), int(reply[1]))
            try:
                quorum[label] = str(sentinel.execute_command("SENTINEL", "CKQUORUM", target.service))
            except ResponseError as exc:
                quorum[label] = str(exc)
            except _CONNECTION_ERRORS as exc:
                quorum[label] = f"unreachable ({exc})"
    if len(silent) == len(addresses):
        listed = "; ".join(f"{node}: {answer}" for node, answer in addresses.items())
        raise Unreachable(f"no Sentinel answers ({listed})")
    master = f.assess_sentinel_master(addresses, target.service)
    report.checks.append(Check("sentinel-master", master.status, master.message, master.fix))
    if quorum:
        verdict = f.assess_sentinel_quorum(quorum)
        report.checks.append(Check("sentinel-quorum", verdict.status, verdict.message, verdict.fix))
    named = {answer for answer in addresses.values() if isinstance(answer, tuple)}
    return named.pop() if len(named) == 1 else None


# -- what each master says -------------------------------------------------------------

_CONFIG = ("save", "appendfsync", "stop-writes-on-bgsave-error", "min-replicas-to-write")


@dataclass
class _Facts:
    """What one master said, read before anything is written."""

    node: _Node
    info: dict[str, Any] | None
    info_error: str | None
    hello: object
    config: dict[str, str | None]
    pings_ms: list[float]
    skew_seconds: float | None
    sampled: int | None
    foreign: int
    scan_error: str | None


def _read(node: _Node, prefix: str) -> _Facts:
    client = node.client
    info: dict[str, Any] | None = None
    info_error = None
    try:
        info = dict(client.info())
    except ResponseError as exc:  # refused (ACL), renamed, or not implemented
        info_error = str(exc)
    try:
        hello: object = client.execute_command("HELLO")
    except ResponseError:  # before Redis 6, or refused
        hello = None
    config: dict[str, str | None] = {}
    for name in _CONFIG:
        try:
            value = client.config_get(name).get(name)
        except ResponseError:  # CONFIG refused: common on managed services
            value = None
        config[name] = None if value is None else f.as_text(value)
    pings_ms = []
    for _ in range(PINGS):
        started = time.perf_counter()
        _ping(client)
        pings_ms.append((time.perf_counter() - started) * 1000)
    skew = _skew(client)
    sampled, foreign, scan_error = _sample(client, prefix)
    return _Facts(node, info, info_error, hello, config, pings_ms, skew, sampled, foreign, scan_error)


def _skew(client: Any) -> float | None:
    before = time.time()
    try:
        seconds, micros = client.time()
    except ResponseError:
        return None
    after = time.time()
    return float(seconds) + float(micros) / 1e6 - (before + after) / 2


def _sample(client: Any, prefix: str) -> tuple[int | None, int, str | None]:
    """Up to SAMPLE keys of the database, and how many are not under the prefix."""
    mine = prefix.encode()
    try:
        keys = list(islice(client.scan_iter(count=SCAN_PAGE), SAMPLE))
    except ResponseError as exc:
        return None, 0, str(exc)
    foreign = sum(
        1 for key in keys if not (key if isinstance(key, bytes) else str(key).encode()).startswith(mine)
    )
    return len(keys), foreign, None


# -- the checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    """What every check may need besides one master's facts."""

    servers: _Servers
    target: Target
    token: str  # names this run's throwaway keys


def _check(servers: _Servers, target: Target, report: Report) -> None:
    facts = [_read(node, target.prefix) for node in servers.masters]
    context = _Context(servers, target, secrets.token_hex(8))

    def per_node(name: str, assess: Callable[[_Facts, _Context], Finding]) -> Check:
        check = combine(name, [(x.node.label, assess(x, context)) for x in facts])
        report.checks.append(check)
        return check

    per_node("server", _server)
    if per_node("mode", _mode).status == "fail":
        return  # everything else would fail for the same reason, less clearly
    if target.mode == "cluster":
        report.checks += _cluster_checks(servers, facts)
    for name, probe in PROBES:
        per_node(name, _on_each_master(probe))
    session = session_round_trip(servers.client, target.prefix, context.token)
    report.checks.append(Check("sessions", session.status, session.message, session.fix))
    for name, assess in _SETTINGS:
        per_node(name, assess)


def combine(name: str, results: list[tuple[str, Finding]]) -> Check:
    """One check over every master: the worst status; the message once if all agree, else the worst node's."""
    nodes = tuple(NodeResult(label, r.status, r.message, r.fix) for label, r in results)
    label, first = max(results, key=lambda item: f.severity(item[1].status))
    if len(results) == 1:
        return Check(name, first.status, first.message, first.fix, nodes)
    if all(r.message == first.message for _, r in results):
        return Check(
            name, first.status, f"{first.message} (each of {len(results)} masters)", first.fix, nodes
        )
    return Check(
        name, first.status, f"{label}: {first.message} (worst of {len(results)} masters)", first.fix, nodes
    )


def _on_each_master(probe: Probe) -> Callable[[_Facts, _Context], Finding]:
    """Run ``probe`` on a master, with a key of this run that lands on it."""

    def run(x: _Facts, c: _Context) -> Finding:
        return probe(x.node.client, _probe_key(c, x.node))

    return run


def _server(x: _Facts, c: _Context) -> Finding:
    return f.assess_server(f.identify(x.info, x.hello), info_error=x.info_error)


def _mode(x: _Facts, c: _Context) -> Finding:
    return f.assess_mode(
        f.identify(x.info, x.hello),
        requested=c.target.mode,
        cluster_enabled=_number(x.info, "cluster_enabled") == 1,
        db=c.servers.db,
        masters=len(c.servers.masters) + len(c.servers.silent),
        service=c.target.service,
    )


def _needs_info(assess: Callable[[_Facts, dict[str, Any]], Finding]) -> Callable[[_Facts, _Context], Finding]:
    def check(x: _Facts, c: _Context) -> Finding:
        if x.info is None:
            return Finding(
                "warn", f"could not read INFO ({x.info_error})", "allow INFO, or check this by hand"
            )
        return assess(x, x.info)

    return check


@_needs_info
def _eviction(x: _Facts, info: dict[str, Any]) -> Finding:
    return f.assess_eviction(_string(info, "maxmemory_policy"), _number(info, "maxmemory"))


@_needs_info
def _memory(x: _Facts, info: dict[str, Any]) -> Finding:
    return f.assess_memory(_number(info, "used_memory"), _number(info, "maxmemory"))


def _persistence(x: _Facts, c: _Context) -> Finding:
    return f.assess_persistence(
        aof_enabled=None if x.info is None else _number(x.info, "aof_enabled") == 1,
        save=x.config["save"],
        appendfsync=x.config["appendfsync"],
        replicas=_number(x.info, "connected_slaves") or 0,
    )


@_needs_info
def _persistence_errors(x: _Facts, info: dict[str, Any]) -> Finding:
    return f.assess_persistence_errors(
        info, stop_writes_on_bgsave_error=_yes(x.config["stop-writes-on-bgsave-error"]), save=x.config["save"]
    )


@_needs_info
def _replication(x: _Facts, info: dict[str, Any]) -> Finding:
    return f.assess_replication(info, min_replicas_to_write=_whole(x.config["min-replicas-to-write"]))


def _latency(x: _Facts, c: _Context) -> Finding:
    return f.assess_latency(x.pings_ms)


def _clock(x: _Facts, c: _Context) -> Finding:
    return f.assess_clock(x.skew_seconds)


def _shared_db(facts: _Facts, c: _Context) -> Finding:
    db, prefix = c.servers.db, c.target.prefix
    if facts.sampled is None:
        return Finding("warn", f"could not SCAN ({facts.scan_error})", "allow SCAN, or check this by hand")
    info = facts.info or {}
    ours = info.get(f"db{db}")
    others = {
        name: int(space.get("keys", 0))
        for name, space in info.items()
        if name.startswith("db") and name[2:].isdigit() and name != f"db{db}" and isinstance(space, Mapping)
    }
    return f.assess_shared_db(
        sampled=facts.sampled,
        foreign=facts.foreign,
        db=db,
        prefix=prefix,
        keys_in_db=int(ours.get("keys", 0)) if isinstance(ours, Mapping) else (0 if facts.info else None),
        other_dbs=others,
    )


#: The checks of a master's settings and measurements, in the order they are reported.
_SETTINGS: tuple[tuple[str, Callable[[_Facts, _Context], Finding]], ...] = (
    ("eviction", _eviction),
    ("memory", _memory),
    ("persistence", _persistence),
    ("persistence-errors", _persistence_errors),
    ("replication", _replication),
    ("latency", _latency),
    ("clock", _clock),
    ("shared-db", _shared_db),
)


def _cluster_checks(servers: _Servers, facts: list[_Facts]) -> list[Check]:
    """cluster_state and slot coverage as each master sees them; every master of the slot map answering."""
    infos: dict[str, dict[str, str]] = {}
    for node in servers.masters:
        try:
            reply = node.client.execute_command("CLUSTER INFO")
        except ResponseError as exc:  # refused (ACL)
            infos[node.label] = {"cluster_state": f"unreadable ({f.short_error(exc)})"}
            continue
        infos[node.label] = _colon_lines(reply) if isinstance(reply, (str, bytes)) else f.pairs(reply)
    state = f.assess_cluster_state({label: info.get("cluster_state", "?") for label, info in infos.items()})
    slots = f.assess_cluster_slots(next(iter(infos.values())))
    answers: dict[str, str | None] = {node.label: None for node in servers.masters}
    answers.update(servers.silent)
    replicas = {x.node.label: _number(x.info, "connected_slaves") or 0 for x in facts}
    masters = f.assess_cluster_masters(answers, replicas)
    return [
        Check("cluster-state", state.status, state.message, state.fix),
        Check("cluster-slots", slots.status, slots.message, slots.fix),
        Check("cluster-masters", masters.status, masters.message, masters.fix),
    ]


def _colon_lines(reply: str | bytes) -> dict[str, str]:
    text = reply.decode() if isinstance(reply, bytes) else reply
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


# -- probes ------------------------------------------------------------------------------


def _probe_key(c: _Context, node: _Node) -> str:
    """A fresh key under the prefix that lands on ``node`` (on a Cluster, by its slot)."""
    servers = c.servers
    base = f"{c.target.prefix}doctor:{c.token}"
    if servers.node_of is None:
        return base
    for i in range(100_000):  # a master holds a third of the slots: a few tries
        key = f"{base}:{i}"
        if servers.node_of(key) == node.label:
            return key
    raise AssertionError(f"no key lands on {node.label}")  # a master in the map holds slots


# -- reading replies -------------------------------------------------------------------


def _number(info: Mapping[str, Any] | None, name: str) -> int | None:
    value = (info or {}).get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _string(info: Mapping[str, Any], name: str) -> str | None:
    value = info.get(name)
    return None if value is None else f.as_text(value)


def _yes(value: str | None) -> bool | None:
    return None if value is None else value.lower() == "yes"


def _whole(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# -- output -----------------------------------------------------------------------------

_LABEL: dict[Status, str] = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}


def printable(text: str) -> str:
    """Escape control characters: replies and user agents must not drive the admin's terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def render(report: Report) -> str:
    """The report for a person: a header, one line per check, a verdict."""
    target = report.target
    where = redact_url(target.url)
    if target.mode == "sentinel":
        sentinels = ", ".join(f"{host}:{port}" for host, port in target.sentinels)
        where = f"service {target.service!r} via Sentinels {sentinels}"
    elif target.mode == "cluster":
        where = f"Redis Cluster via {where}"
    lines = [f"sharedsession doctor: {printable(where)}, prefix {target.prefix!r}"]
    width = max((len(check.name) for check in report.checks), default=0)
    for check in report.checks:
        line = f"{_LABEL[check.status]:<4}  {check.name:<{width}}  {printable(check.message)}"
        if check.fix and check.status != "ok":
            line += f"  -> {printable(check.fix)}"
        lines.append(line)
    blocking = report.blocking
    verdict = f"{len(blocking)} blocking ({', '.join(blocking)})" if blocking else "nothing blocks"
    lines.append(f"{verdict}; {report.count('warn')} warning(s), {report.count('ok')} ok")
    return "\n".join(lines)
