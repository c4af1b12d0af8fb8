"""``sharedsession doctor`` without servers: what each reply means (findings.py), how the
report reads (text and JSON), and the command line's refusals and exit codes.

The doctor on real servers (a good one, badly configured ones, a Cluster, a
Sentinel group) is tests/cluster/test_doctor.py.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from redis.exceptions import NoPermissionError, OutOfMemoryError, ReadOnlyError, ResponseError

from sharedsession import StoreUnavailableError
from sharedsession.cli import EXIT_BLOCKED, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, main
from sharedsession.cli import findings as f
from sharedsession.cli.doctor import Check, Report, Target, combine, render
from sharedsession.cli.findings import Finding
from sharedsession.cli.probes import PROBES, Probe, probe_cjson, probe_hashes, probe_sorted_sets
from tests.support import server_replies as replies
from tests.support.doctor import assert_report_schema
from tests.support.server_replies import Replies

BOUND_SECONDS = 5.0

# -- telling servers apart -----------------------------------------------------------


@pytest.mark.parametrize("server", replies.ALL, ids=lambda r: f"{r.product}-{r.version}")
def test_identify_from_info_and_hello(server: Replies) -> None:
    kind = f.identify(server.info, server.hello)
    assert (kind.product, kind.version) == (server.product, server.version)


@pytest.mark.parametrize(
    "server",
    [
        replies.VALKEY_7_2_5,
        replies.VALKEY_8_0_1,
        replies.DRAGONFLY_1_40_0,
        replies.KEYDB_6_3_4,
        replies.GARNET_2_1_4,
    ],
    ids=lambda r: r.product,
)
def test_identify_from_info_alone(server: Replies) -> None:
    """HELLO refused (or a server before Redis 6): INFO alone tells them apart."""
    assert f.identify(server.info, None).product == server.product


@pytest.mark.parametrize(
    ("server", "product"),
    [
        (replies.REDIS_7_0_15, "Redis"),
        (replies.VALKEY_8_0_1, "Valkey"),  # says so in HELLO
        (replies.VALKEY_7_2_5, "Redis"),  # 7.2 said "redis": INFO is needed
        (replies.DRAGONFLY_1_40_0, "Dragonfly"),
        (replies.GARNET_2_1_4, "Garnet"),
        (replies.KEYDB_6_3_4, "Redis"),  # KeyDB says "redis" in HELLO: INFO is needed
    ],
    ids=lambda v: v if isinstance(v, str) else v.product,
)
def test_identify_from_hello_alone(server: Replies, product: str) -> None:
    """INFO refused (an ACL without @dangerous): HELLO tells only some apart, and says so."""
    assert f.identify(None, server.hello).product == product


def test_redis_version_is_not_what_names_a_server() -> None:
    """Every one of them reports a redis_version; a naive reader calls Valkey 8 "Redis 7.2.4"."""
    kind = f.identify(replies.VALKEY_8_0_1.info)
    assert kind.redis_version == "7.2.4"
    assert kind.title == "Valkey 8.0.1"
    assert f.identify(replies.DRAGONFLY_1_40_0.info).redis_version == "7.4.0"


def test_identify_nothing() -> None:
    kind = f.identify(None, None)
    assert kind.product == "unknown"
    assert kind.title == "an unknown server"


def test_pairs_reads_resp2_and_resp3_maps() -> None:
    assert f.pairs([b"server", b"redis", b"proto", 2]) == {"server": "redis", "proto": "2"}
    assert f.pairs({b"server": b"valkey"}) == {"server": "valkey"}
    assert f.pairs(None) == {}


@pytest.mark.parametrize(
    ("server", "status", "words"),
    [
        (replies.REDIS_7_0_15, "ok", ["Redis 7.0.15"]),
        (replies.REDIS_6_0_16, "fail", ["6.2", "ZADD GT"]),
        (replies.VALKEY_7_2_5, "ok", ["Valkey 7.2.5", "7.2.4", "compatible"]),
        (replies.VALKEY_8_0_1, "ok", ["Valkey 8.0.1"]),
        (replies.DRAGONFLY_1_40_0, "warn", ["Dragonfly 1.40.0", "not tested", "declare", "2^28"]),
        (replies.KEYDB_6_3_4, "warn", ["KeyDB 6.3.4", "not tested"]),
        (replies.GARNET_2_1_4, "warn", ["Garnet 2.1.4", "--lua", "--lua-transaction-mode", "atomic"]),
    ],
    ids=lambda v: v.version if isinstance(v, Replies) else None,
)
def test_assess_server(server: Replies, status: str, words: list[str]) -> None:
    finding = f.assess_server(f.identify(server.info, server.hello))
    assert finding.status == status, finding
    for word in words:
        assert word in finding.message
    if status != "ok":
        assert finding.fix


def test_assess_server_of_an_old_keydb_and_of_nothing() -> None:
    old = f.ServerKind("KeyDB", "6.0.16", "6.0.16", "standalone")
    assert f.assess_server(old).status == "fail"
    unknown = f.assess_server(f.identify(None, None), info_error="NOPERM INFO")
    assert unknown.status == "warn"
    assert "NOPERM INFO" in unknown.message


def test_assess_mode() -> None:
    redis7 = f.identify(replies.REDIS_7_0_15.info)
    single = f.assess_mode(redis7, requested="single", cluster_enabled=False, db=1)
    assert (single.status, single.message) == ("ok", "standalone server, database 1")
    stray = f.assess_mode(redis7, requested="single", cluster_enabled=True, db=0)
    assert stray.status == "fail"
    assert "--cluster" in stray.fix
    sentinel = f.assess_mode(redis7, requested="sentinel", cluster_enabled=False, db=2, service="web")
    assert "'web'" in sentinel.message
    cluster = f.assess_mode(redis7, requested="cluster", cluster_enabled=True, db=0, masters=3)
    assert cluster.message.startswith("Redis Cluster, 3 master(s)")


# -- settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "status"),
    [
        ("noeviction", "ok"),
        ("allkeys-lru", "fail"),
        ("allkeys-random", "fail"),
        ("volatile-lru", "fail"),  # every session has a TTL: volatile-* picks sessions
        ("volatile-ttl", "fail"),
        ("eviction", "fail"),  # Dragonfly in cache mode
        ("some-future-policy", "warn"),
        (None, "warn"),
    ],
)
def test_assess_eviction(policy: str | None, status: str) -> None:
    finding = f.assess_eviction(policy, 100 * 2**20)
    assert finding.status == status
    if status == "fail":
        assert "noeviction" in finding.fix
        assert "TTL" in finding.message


def test_an_evicting_policy_without_a_limit_still_fails_and_says_why() -> None:
    finding = f.assess_eviction("allkeys-lru", 0)
    assert finding.status == "fail"
    assert "maxmemory is 0" in finding.message


@pytest.mark.parametrize(
    ("used", "limit", "status"),
    [
        (10, 0, "warn"),  # no limit
        (50, 100, "ok"),
        (80, 100, "ok"),  # 80 % is not over 80 %
        (81, 100, "warn"),
        (95, 100, "warn"),
        (96, 100, "fail"),
        (120, 100, "fail"),  # over the limit: evicting, or refusing writes
        (None, 100, "warn"),
    ],
)
def test_assess_memory(used: int | None, limit: int, status: str) -> None:
    assert f.assess_memory(used, limit).status == status


def test_assess_memory_says_how_much() -> None:
    finding = f.assess_memory(97 * 2**20, 100 * 2**20)
    assert finding.message.startswith("97.0 MiB of 100.0 MiB used (97%)")
    assert "no maxmemory" in f.assess_memory(2**20, 0).message


def test_assess_persistence() -> None:
    assert f.assess_persistence(aof_enabled=True, save="", appendfsync="everysec").status == "ok"
    rdb = f.assess_persistence(aof_enabled=False, save="3600 1 300 100")
    assert rdb.status == "ok"
    assert "3600 1 300 100" in rdb.message
    none = f.assess_persistence(aof_enabled=False, save="")
    assert none.status == "warn"
    assert "restart logs everyone out" in none.message
    assert "replicas" in f.assess_persistence(aof_enabled=False, save="", replicas=1).message
    assert f.assess_persistence(aof_enabled=False, save=None).status == "warn"  # CONFIG refused


def test_assess_persistence_errors() -> None:
    failed = {"aof_enabled": 0, "rdb_last_bgsave_status": "err"}
    refusing = f.assess_persistence_errors(failed, stop_writes_on_bgsave_error=True, save="3600 1")
    assert refusing.status == "fail"
    assert "MISCONF" in refusing.message
    # Redis refuses writes only with snapshots scheduled and the option on
    assert (
        f.assess_persistence_errors(failed, stop_writes_on_bgsave_error=False, save="3600 1").status == "warn"
    )
    assert f.assess_persistence_errors(failed, stop_writes_on_bgsave_error=True, save="").status == "warn"
    aof = {"aof_enabled": 1, "aof_last_write_status": "err", "rdb_last_bgsave_status": "ok"}
    assert f.assess_persistence_errors(aof, stop_writes_on_bgsave_error=False, save="").status == "fail"
    fine = {"aof_enabled": 1, "aof_last_write_status": "ok", "rdb_last_bgsave_status": "ok"}
    assert f.assess_persistence_errors(fine, stop_writes_on_bgsave_error=True, save="3600 1").status == "ok"


def _replica(state: str = "online", lag: int = 0) -> dict[str, Any]:
    return {"ip": "10.0.0.2", "port": 6379, "state": state, "offset": 1234, "lag": lag}


def test_assess_replication() -> None:
    replica = f.assess_replication({"role": "slave", "master_host": "10.0.0.1", "master_port": 6379})
    assert replica.status == "fail"
    assert "10.0.0.1:6379" in replica.message
    alone = f.assess_replication({"role": "master", "connected_slaves": 0})
    assert alone.status == "ok"
    good = f.assess_replication({"role": "master", "connected_slaves": 1, "slave0": _replica(lag=1)})
    assert (good.status, good.message) == ("ok", "1 replica(s) online, lag at most 1 s")
    lagging = f.assess_replication({"role": "master", "slave0": _replica(lag=30)})
    assert lagging.status == "warn"
    assert "lags 30 s" in lagging.message
    syncing = f.assess_replication({"role": "master", "slave0": _replica(state="wait_bgsave")})
    assert syncing.status == "warn"
    refused = {"role": "master", "min_slaves_good_slaves": 0, "slave0": _replica(lag=30)}
    assert f.assess_replication(refused, min_replicas_to_write=1).status == "fail"
    assert f.assess_replication(refused, min_replicas_to_write=0).status == "warn"


# -- measurements ------------------------------------------------------------------


def test_assess_latency() -> None:
    assert f.assess_latency([0.1, 0.2, 9.0]).status == "ok"  # the median, not the worst
    slow = f.assess_latency([6.0, 7.0, 0.5])
    assert slow.status == "warn"
    assert "median round trip 6.00 ms over 3 PINGs" in slow.message
    assert f.assess_latency([]).status == "warn"


@pytest.mark.parametrize(
    ("skew", "status"),
    [
        (0.0, "ok"),
        (-0.9, "ok"),
        (1.5, "warn"),
        (-30.0, "warn"),
        (61.0, "fail"),
        (-3600.0, "fail"),
        (None, "warn"),
    ],
)
def test_assess_clock(skew: float | None, status: str) -> None:
    assert f.assess_clock(skew).status == status


def test_assess_clock_says_which_way() -> None:
    assert "ahead of" in f.assess_clock(5.0).message
    assert "behind" in f.assess_clock(-5.0).message


def test_assess_shared_db() -> None:
    shared = f.assess_shared_db(sampled=1000, foreign=990, db=1, prefix="app:", keys_in_db=20000)
    assert shared.status == "warn"
    assert shared.message.startswith(
        "990 of 1000 keys sampled in database 1 (20000 keys) are not under 'app:'"
    )
    assert "FLUSHDB" in shared.fix
    assert f.assess_shared_db(sampled=0, foreign=0, db=1, prefix="app:").status == "ok"
    ours = f.assess_shared_db(sampled=3, foreign=0, db=1, prefix="app:", other_dbs={"db0": 12})
    assert ours.status == "ok"
    assert "db0: 12 keys" in ours.message


# -- Cluster and Sentinel ------------------------------------------------------------


def test_assess_cluster() -> None:
    assert f.assess_cluster_state({"a:1": "ok", "b:2": "ok"}).status == "ok"
    down = f.assess_cluster_state({"a:1": "ok", "b:2": "fail"})
    assert down.status == "fail"
    assert "b:2: fail" in down.message
    full = {"cluster_slots_assigned": "16384", "cluster_slots_ok": "16384"}
    assert f.assess_cluster_slots(full).status == "ok"
    holes = f.assess_cluster_slots({"cluster_slots_assigned": "10000", "cluster_slots_ok": "10000"})
    assert holes.status == "fail"
    assert "6384 of 16384" in holes.message
    failing = f.assess_cluster_slots({"cluster_slots_assigned": "16384", "cluster_slots_ok": "10922"})
    assert failing.status == "fail"
    assert f.assess_cluster_slots({}).status == "warn"
    answering = {"a:1": None, "b:2": None}
    assert f.assess_cluster_masters(answering, {"a:1": 1, "b:2": 1}).status == "ok"
    assert f.assess_cluster_masters(answering, {"a:1": 1}).status == "warn"  # b:2 alone
    silent = f.assess_cluster_masters({"a:1": None, "b:2": "Connection refused"}, {})
    assert silent.status == "fail"
    assert "b:2: Connection refused" in silent.message


def test_assess_sentinel_master() -> None:
    here = ("10.0.0.1", 6379)
    agree = f.assess_sentinel_master({"s1:1": here, "s2:2": here, "s3:3": here}, "mymaster")
    assert agree.status == "ok"
    assert "all 3 Sentinels name 10.0.0.1:6379" in agree.message
    one_down = f.assess_sentinel_master(
        {"s1:1": here, "s2:2": "unreachable (refused)", "s3:3": here}, "mymaster"
    )
    assert one_down.status == "warn"
    assert "s2:2" in one_down.message
    split = f.assess_sentinel_master({"s1:1": here, "s2:2": ("10.0.0.2", 6379)}, "mymaster")
    assert split.status == "fail"
    assert "disagree" in split.message
    unknown = f.assess_sentinel_master({"s1:1": None, "s2:2": None}, "typo")
    assert unknown.status == "fail"
    assert "--service" in unknown.fix


def test_assess_sentinel_quorum() -> None:
    reached = "OK 3 usable Sentinels. Quorum and failover authorization can be reached"
    assert f.assess_sentinel_quorum({"s1:1": reached, "s2:2": reached}).status == "ok"
    lost = f.assess_sentinel_quorum({"s1:1": reached, "s2:2": "NOQUORUM 1 usable Sentinels. Not enough"})
    assert lost.status == "fail"
    assert "s2:2" in lost.message


# -- what the probes met ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        (ReadOnlyError("You can't write against a read only replica."), "master"),
        (OutOfMemoryError("command not allowed when used memory > 'maxmemory'."), "memory"),
        (ResponseError("MISCONF Redis is configured to save RDB snapshots"), "persistence-errors"),
        (NoPermissionError("this user has no permissions to run the 'eval' command"), "ACL"),
        (ResponseError("unknown command 'EVAL', with args beginning with: 'return 1'"), "renamed"),
        (
            ResponseError(
                "ERR user_script:1: Script attempted to access nonexistent global variable 'cjson'"
            ),
            "cjson",
        ),
    ],
)
def test_assess_script_error_fits_the_fix_to_the_refusal(error: Exception, fix: str) -> None:
    finding = f.assess_script_error("a probe", error)
    assert finding.status == "fail"
    assert fix in finding.fix
    assert finding.message.startswith("a probe failed: ")


def test_assess_script_error_reads_the_cause_of_the_library_error() -> None:
    try:
        try:
            raise ReadOnlyError("You can't write against a read only replica.")
        except ReadOnlyError as cause:
            raise StoreUnavailableError("Redis is unavailable") from cause
    except StoreUnavailableError as error:
        finding = f.assess_script_error("a session's creation", error)
    assert "master" in finding.fix
    assert "read only replica" in finding.message


def test_short_error_is_one_bounded_line() -> None:
    source = "local key = KEYS[1]\n" * 50
    text = f.short_error(ResponseError(f"unknown command 'EVAL', with args beginning with: '{source}'"))
    assert "\n" not in text
    assert len(text) == 160
    assert text.endswith("...")


class _Answers:
    """A server that answers every EVAL with the same reply (or error): probes judge what comes back."""

    def __init__(self, reply: object) -> None:
        self.reply = reply

    def eval(self, script: str, numkeys: int, *keys_and_args: object) -> object:
        assert numkeys == 1  # each probe declares its one key, as the library's scripts do
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


@pytest.mark.parametrize(
    ("probe", "reply", "status"),
    [
        (probe_cjson, '{"n":[1,2.5,true],"user":"alice"}', "ok"),  # key order is cjson's business
        (probe_cjson, "[]", "fail"),
        (probe_hashes, [b"hash", b"a", b"2", 59990], "ok"),
        (probe_hashes, [b"no status reply", b"a", b"2", 59990], "fail"),  # TYPE answered a plain string
        (probe_hashes, [b"hash", b"a", b"2", -1], "fail"),  # PEXPIREAT did nothing
        (probe_hashes, [b"hash", b"a", b"1", 59990], "fail"),  # HINCRBY did nothing
        (probe_hashes, b"OK", "fail"),
        (probe_sorted_sets, [b"zset", b"10", b"m", b"20", 1], "ok"),
        (probe_sorted_sets, [b"zset", b"10.0", b"m", b"2e1", 1], "ok"),  # scores formatted otherwise
        (probe_sorted_sets, [b"zset", b"5", b"m", b"20", 1], "fail"),  # GT ignored: the lower score won
        (probe_sorted_sets, [b"zset", b"10", b"m", b"20", 2], "fail"),  # ZREMRANGEBYSCORE did nothing
        (probe_sorted_sets, [b"zset"], "fail"),
    ],
)
def test_probes_judge_what_the_server_answers(probe: Probe, reply: object, status: str) -> None:
    finding = probe(_Answers(reply), "app:doctor:0")
    assert finding.status == status, finding
    if status == "fail":
        assert finding.fix


def test_probes_report_a_refusal_with_its_fix() -> None:
    refused = _Answers(ResponseError("ERR user_script:1: Unknown Redis command called from script"))
    for _, probe in PROBES:
        finding = probe(refused, "app:doctor:0")
        assert finding.status == "fail"
        assert "Unknown Redis command" in finding.message


# -- the report ----------------------------------------------------------------------------


def test_combine_says_a_shared_message_once_and_otherwise_the_worst_node() -> None:
    same = combine("eviction", [(f"n{i}", Finding("ok", "noeviction")) for i in range(3)])
    assert (same.status, same.message) == ("ok", "noeviction (each of 3 masters)")
    assert [n.node for n in same.nodes] == ["n0", "n1", "n2"]
    mixed = combine(
        "memory",
        [
            ("n0", Finding("ok", "1%")),
            ("n1", Finding("fail", "99%", "raise it")),
            ("n2", Finding("warn", "85%")),
        ],
    )
    assert (mixed.status, mixed.message, mixed.fix) == ("fail", "n1: 99% (worst of 3 masters)", "raise it")
    one = combine("memory", [("n0", Finding("warn", "85%", "look"))])
    assert (one.status, one.message, one.fix) == ("warn", "85%", "look")


def _report() -> Report:
    report = Report(
        Target(url="redis://:hunter2@10.0.0.1:6379/1", prefix="app:"), db=1, nodes=["10.0.0.1:6379"]
    )
    report.checks = [
        Check("server", "ok", "Redis 7.0.15"),
        Check("eviction", "fail", "maxmemory-policy allkeys-lru", "set noeviction"),
        Check("memory", "warn", "no maxmemory \x1b[31mset", "set one"),
    ]
    return report


def test_render_one_line_per_check() -> None:
    text = render(_report())
    lines = text.splitlines()
    assert lines[0] == "sharedsession doctor: redis://:***@10.0.0.1:6379/1, prefix 'app:'"
    assert lines[1].split() == ["ok", "server", "Redis", "7.0.15"]
    assert lines[2].startswith("FAIL  eviction")
    assert lines[2].endswith("  -> set noeviction")
    assert lines[3].startswith("WARN  memory")
    assert "\x1b" not in text  # a reply must not drive the terminal
    assert lines[4] == "1 blocking (eviction); 1 warning(s), 1 ok"
    assert len(lines) == 5
    assert "hunter2" not in text


def test_report_json_schema() -> None:
    document = json.loads(json.dumps(_report().to_json()))
    assert_report_schema(document)
    assert document["blocking"] == ["eviction"]
    assert document["summary"] == {"ok": 1, "warn": 1, "fail": 1}
    assert document["redis_url"] == "redis://:***@10.0.0.1:6379/1"


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["doctor", "--service", "mymaster"],  # without --sentinel
        ["doctor", "--sentinel", "nohost"],
        ["doctor", "--sentinel", "host:0"],
        ["doctor", "--sentinel", ":26379"],
        ["doctor", "--sentinel", "host:port"],
        ["doctor", "--cluster", "--sentinel", "127.0.0.1:26379"],
        ["doctor", "--prefix", "{app}:"],
        ["doctor", "--redis-url", "http://localhost:6379/1"],
        ["doctor", "--cluster", "--redis-url", "redis://localhost:6379/1"],  # a Cluster has db 0 only
        ["doctor", "--idle-timeout", "60"],  # not an option of the doctor
    ],
)
def test_doctor_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.strip()
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "where",
    [
        ["--redis-url", "redis://:hunter2@127.0.0.1:{port}/0"],
        ["--cluster", "--redis-url", "redis://:hunter2@127.0.0.1:{port}/0"],
        ["--sentinel", "127.0.0.1:{port}", "--sentinel", "127.0.0.1:{port}"],
    ],
    ids=["single", "cluster", "sentinel"],
)
def test_doctor_unreachable_exits_3_fast(
    capsys: pytest.CaptureFixture[str], closed_port: int, where: list[str]
) -> None:
    started = time.monotonic()
    code = main(["doctor", *(arg.format(port=closed_port) for arg in where)])
    out, err = capsys.readouterr()
    assert code == EXIT_UNAVAILABLE
    assert time.monotonic() - started < BOUND_SECONDS
    assert out == ""
    assert err.startswith("sharedsession: ")
    assert str(closed_port) in err
    assert "hunter2" not in err


def test_doctor_help_documents_its_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for line in ("0  done", "2  bad usage", "3  Redis unreachable", "4  doctor: a check failed"):
        assert line in out
    for option in (
        "--cluster",
        "--sentinel HOST:PORT",
        "--service NAME",
        "--json",
        "--redis-url",
        "--prefix",
    ):
        assert option in out
    assert EXIT_BLOCKED == 4
