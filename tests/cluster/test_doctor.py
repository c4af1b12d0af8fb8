"""``sharedsession doctor`` on real servers the tests start (tests/cluster/servers.py):
a well configured server, servers configured badly on purpose (evicting and
nearly full, shared with another app, snapshots failing, a replica, EVAL
renamed, a user without INFO), a three-master Cluster (whole, and with a
master lost), and a Sentinel group.

Each test checks the exit code, which checks failed and why, and that the
doctor left no key of its own behind.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sharedsession import SessionConfig, SessionStore, SetCookie
from sharedsession.cli import EXIT_BLOCKED, EXIT_OK, EXIT_USAGE
from tests.cluster.servers import (
    REDIS_SENTINEL,
    REDIS_SERVER,
    ClusterServers,
    SentinelServers,
    SingleServer,
    free_ports,
    start_cluster,
    start_sentinel_group,
    start_server,
    wait_until,
)
from tests.support import HAVE_CLUSTER_BINARIES, SECRET
from tests.support.doctor import Run, doctor

needs_server = pytest.mark.skipif(not REDIS_SERVER, reason="needs redis-server (.ci/run installs it)")
needs_cluster = pytest.mark.skipif(
    not HAVE_CLUSTER_BINARIES, reason="needs redis-server and redis-cli (.ci/run installs them)"
)
needs_sentinel = pytest.mark.skipif(
    not (REDIS_SERVER and REDIS_SENTINEL),
    reason="needs redis-server and redis-sentinel (.ci/run installs them)",
)

#: What the doctor checks of every master, whatever the topology.
MASTER_CHECKS = [
    "server",
    "mode",
    "lua-cjson",
    "hashes",
    "sorted-sets",
    "sessions",
    "eviction",
    "memory",
    "persistence",
    "persistence-errors",
    "replication",
    "latency",
    "clock",
    "shared-db",
]
#: Their verdicts depend on the machine the tests run on (a busy CI runner may be slow).
MACHINE_DEPENDENT = {"latency"}


@pytest.fixture
def prefix() -> str:
    return f"sstest:doctor:{uuid.uuid4().hex[:12]}:"


@contextlib.contextmanager
def server(tmp_path: Path, *settings: str) -> Iterator[SingleServer]:
    started = start_server(tmp_path, *settings)
    try:
        yield started
    finally:
        started.stop()


def store_sessions(url: str, prefix: str, count: int) -> None:
    """Sessions of the app under test, so that the database is not empty."""
    store = SessionStore(SessionConfig(secret_key=SECRET, redis_url=url, key_prefix=prefix))
    try:
        for i in range(count):
            session = store.load(None)
            session["n"] = i
            assert isinstance(store.save(session).cookie, SetCookie)
    finally:
        store.close()


def leftovers(client: redis.Redis, prefix: str) -> list[bytes]:
    """Keys the doctor wrote: probe keys, and any session or user index beyond the app's."""
    return list(client.scan_iter(match=f"{prefix}doctor:*")) + list(client.scan_iter(match=f"{prefix}u:*"))


def assert_ok_but(run: Run, expected: dict[str, str]) -> None:
    """Every check is ok, but those named (name -> status), and those that depend on the machine."""
    for name, status in run.statuses.items():
        if name in MACHINE_DEPENDENT:
            assert status in ("ok", "warn"), run.check(name)
        else:
            assert status == expected.get(name, "ok"), run.check(name)


# -- one server ---------------------------------------------------------------------------


@needs_server
def test_a_good_server_passes(tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    with server(
        tmp_path, "--appendonly", "yes", "--maxmemory", "64mb", "--maxmemory-policy", "noeviction"
    ) as good:
        store_sessions(good.url(1), prefix, 3)
        client = good.client(1)
        try:
            keys = client.dbsize()
            run = doctor(capsys, "--redis-url", good.url(1), "--prefix", prefix, "--json")
            assert run.code == EXIT_OK, run.out + run.err
            assert list(run.statuses) == MASTER_CHECKS
            assert_ok_but(run, {})
            report = run.report
            assert (report["mode"], report["db"], report["nodes"]) == (
                "single",
                1,
                [f"127.0.0.1:{good.port}"],
            )
            assert report["blocking"] == []
            assert run.check("server")["message"].startswith("Redis ")
            assert "append-only file on" in run.check("persistence")["message"]
            assert run.check("shared-db")["message"].startswith(
                "all 3 keys sampled in database 1 (3 keys) are under"
            )
            assert client.dbsize() == keys
            assert leftovers(client, prefix) == []

            text = doctor(capsys, "--redis-url", good.url(1), "--prefix", prefix)
            assert text.code == EXIT_OK
            lines = text.out.splitlines()
            assert lines[0] == f"sharedsession doctor: {good.url(1)}, prefix {prefix!r}"
            assert [line.split()[1] for line in lines[1:-1]] == MASTER_CHECKS
            assert lines[-1].startswith("nothing blocks; ")
        finally:
            client.close()


@needs_server
def test_a_badly_configured_server_blocks(
    tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Evicting (allkeys-lru), nearly full, no persistence, and another app's keys in the database."""
    with server(tmp_path, "--maxmemory-policy", "allkeys-lru") as bad:
        client = bad.client(1)
        try:
            pipe = client.pipeline(transaction=False)
            for i in range(20_000):
                pipe.set(f"cache:{i}", "x" * 100)
            pipe.execute()
            used = int(client.info("memory")["used_memory"])
            client.config_set("maxmemory", int(used / 0.97))  # 97 % full
            store_sessions(bad.url(1), prefix, 2)

            run = doctor(capsys, "--redis-url", bad.url(1), "--prefix", prefix, "--json")
            assert run.code == EXIT_BLOCKED, run.out + run.err
            # At its limit, this server may evict the doctor's own session between two steps:
            # the very failure it is about. Then the sessions check says so.
            evicted = run.statuses["sessions"]
            if evicted == "fail":
                assert "eviction" in run.check("sessions")["fix"]
            assert_ok_but(
                run,
                {
                    "eviction": "fail",
                    "memory": "fail",
                    "persistence": "warn",
                    "shared-db": "warn",
                    "sessions": evicted,
                },
            )
            assert [name for name in run.report["blocking"] if name != "sessions"] == ["eviction", "memory"]
            assert "allkeys-lru" in run.check("eviction")["message"]
            assert "noeviction" in run.check("eviction")["fix"]
            full = re.search(r"used \((\d+)%\)", run.check("memory")["message"])
            assert full is not None
            assert int(full[1]) > 95
            assert "restart logs everyone out" in run.check("persistence")["message"]
            shared = run.check("shared-db")["message"]
            # the sample may hold the app's own two sessions, or not
            pattern = r"(\d+) of 1000 keys sampled in database 1 \(\d+ keys\) are not under "
            sampled = re.match(pattern + re.escape(repr(prefix)), shared)
            assert sampled is not None, shared
            assert int(sampled[1]) >= 998

            text = doctor(capsys, "--redis-url", bad.url(1), "--prefix", prefix)
            assert text.code == EXIT_BLOCKED
            failing = [line for line in text.out.splitlines() if line.startswith("FAIL")]
            assert [name for name in (line.split()[1] for line in failing) if name != "sessions"] == [
                "eviction",
                "memory",
            ]
            assert all("  -> " in line for line in failing)
            assert "blocking (" in text.out.splitlines()[-1]
            assert leftovers(client, prefix) == []
        finally:
            client.close()


@needs_server
def test_failing_snapshots_that_stop_writes_block(
    tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """MISCONF: snapshots into /proc fail, and stop-writes-on-bgsave-error refuses every write."""
    with server(
        tmp_path, "--save", "3600 1", "--stop-writes-on-bgsave-error", "yes", "--dir", "/proc"
    ) as failing:
        client = failing.client()
        try:
            client.set("x", 1)
            client.bgsave()
            wait_until(
                "the snapshot failing",
                lambda: client.info("persistence")["rdb_last_bgsave_status"] == "err",
                10,
            )
            run = doctor(capsys, "--redis-url", failing.url(), "--prefix", prefix, "--json")
        finally:
            client.config_set("save", "")  # else shutdown tries a last snapshot, fails, waits for SIGKILL
            client.close()
    assert run.code == EXIT_BLOCKED
    assert run.check("persistence-errors")["status"] == "fail"
    assert "stop-writes-on-bgsave-error" in run.check("persistence-errors")["message"]
    assert run.check("lua-cjson")["status"] == "ok"  # reads still work
    for name in ("hashes", "sorted-sets", "sessions"):
        assert run.check(name)["status"] == "fail"
        assert "MISCONF" in run.check(name)["message"]
        assert "persistence-errors" in run.check(name)["fix"]


@needs_server
def test_a_replica_blocks(tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    (nowhere,) = free_ports(1)  # its master is gone: a replica cut off, still answering
    with server(tmp_path, "--replicaof", "127.0.0.1", str(nowhere)) as replica:
        run = doctor(capsys, "--redis-url", replica.url(), "--prefix", prefix, "--json")
    assert run.code == EXIT_BLOCKED
    assert run.check("replication")["status"] == "fail"
    assert f"replica (of 127.0.0.1:{nowhere})" in run.check("replication")["message"]
    for name in ("hashes", "sorted-sets", "sessions"):
        assert run.check(name)["status"] == "fail"
        assert "master" in run.check(name)["fix"]


@needs_server
def test_the_probes_run_rather_than_trust_the_version(
    tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Redis 7 whose EVAL is renamed away: the version says yes, the probes say no."""
    with server(tmp_path, "--rename-command", "EVAL", "") as crippled:
        run = doctor(capsys, "--redis-url", crippled.url(), "--prefix", prefix, "--json")
    assert run.code == EXIT_BLOCKED
    assert run.check("server")["status"] == "ok"
    assert run.report["blocking"] == ["lua-cjson", "hashes", "sorted-sets", "sessions"]
    for name in run.report["blocking"]:
        assert "unknown command" in run.check(name)["message"]
        assert "renamed" in run.check(name)["fix"]
        assert len(run.check(name)["message"]) < 220  # not the script's source


@needs_server
def test_a_user_without_info_or_config_gets_warnings(
    tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Managed Redis often refuses INFO and CONFIG: the doctor says what it could not read."""
    with server(tmp_path) as locked:
        admin: Any = locked.client()  # redis-py leaves execute_command untyped
        try:
            admin.execute_command("ACL", "SETUSER", "app", "on", ">app-pw", "~*", "+@all", "-@dangerous")
        finally:
            admin.close()
        url = f"redis://app:app-pw@127.0.0.1:{locked.port}/0"
        run = doctor(capsys, "--redis-url", url, "--prefix", prefix, "--json")
    assert run.code == EXIT_OK
    assert run.check("server")["message"].startswith("Redis ")  # from HELLO
    for name in ("eviction", "memory", "persistence-errors", "replication"):
        assert run.check(name)["status"] == "warn"
        assert "could not read INFO" in run.check(name)["message"]
    assert run.check("persistence")["status"] == "warn"
    for name in ("lua-cjson", "hashes", "sorted-sets", "sessions"):
        assert run.check(name)["status"] == "ok"
    assert "app-pw" not in run.out + run.err


@needs_server
def test_cluster_flag_on_a_plain_server_is_bad_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with server(tmp_path) as plain:
        run = doctor(capsys, "--redis-url", plain.url(), "--cluster")
    assert run.code == EXIT_USAGE
    assert "not a Redis Cluster node" in run.err


# -- Redis Cluster ---------------------------------------------------------------------------


@needs_cluster
def test_the_cluster_passes_on_every_master(
    redis_cluster: ClusterServers, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"redis://127.0.0.1:{redis_cluster.port}/0"
    run = doctor(capsys, "--redis-url", url, "--cluster", "--prefix", prefix, "--json")
    assert run.code == EXIT_OK, run.out + run.err
    report = run.report
    masters = sorted(f"127.0.0.1:{port}" for port in redis_cluster.ports)
    assert (report["mode"], report["db"], sorted(report["nodes"])) == ("cluster", 0, masters)
    assert list(run.statuses)[:2] == ["server", "mode"]
    assert [name for name in run.statuses if name.startswith("cluster-")] == [
        "cluster-state",
        "cluster-slots",
        "cluster-masters",
    ]
    # No replicas in this test cluster: a warning, not a block.
    shared = run.statuses["shared-db"]  # other tests' keys may be in db 0 of this cluster, or not
    assert_ok_but(
        run, {"cluster-masters": "warn", "memory": "warn", "persistence": "warn", "shared-db": shared}
    )
    for name in ("lua-cjson", "hashes", "sorted-sets"):  # each probe ran on each master, its key routed there
        nodes = run.check(name)["nodes"]
        assert sorted(node["node"] for node in nodes) == masters
        assert all(node["status"] == "ok" for node in nodes)
    assert "each of 3 masters" in run.check("hashes")["message"]
    for port in redis_cluster.ports:
        with redis.Redis(port=port) as node:
            assert leftovers(node, prefix) == []


@needs_cluster
def test_a_cluster_node_without_the_cluster_flag_blocks(
    redis_cluster: ClusterServers, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"redis://127.0.0.1:{redis_cluster.port}/0"
    run = doctor(capsys, "--redis-url", url, "--prefix", prefix, "--json")
    assert run.code == EXIT_BLOCKED
    assert list(run.statuses) == ["server", "mode"]  # nothing else would mean anything
    assert run.check("mode")["status"] == "fail"
    assert "--cluster" in run.check("mode")["fix"]


@needs_cluster
def test_a_lost_master_blocks(tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    # A long node timeout: the cluster stays up (cluster_state ok) while the doctor runs,
    # so what is seen is the lost master itself, not CLUSTERDOWN everywhere.
    cluster = start_cluster(tmp_path, node_timeout_ms=60_000)
    try:
        lost = cluster.ports[-1]
        cluster.children[-1].kill()  # a crash; cluster.port (the first) still answers
        url = f"redis://127.0.0.1:{cluster.port}/0"
        run = doctor(capsys, "--redis-url", url, "--cluster", "--prefix", prefix, "--json")
    finally:
        cluster.stop()
    assert run.code == EXIT_BLOCKED
    masters = run.check("cluster-masters")
    assert masters["status"] == "fail"
    assert f"127.0.0.1:{lost}" in masters["message"]
    assert f"127.0.0.1:{lost}" in run.report["nodes"]
    assert len(run.check("hashes")["nodes"]) == 2  # the masters that answer were still examined
    assert run.check("hashes")["status"] == "ok"


# -- Sentinel -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelServers]:
    servers = start_sentinel_group(tmp_path_factory.mktemp("doctor-sentinel"))
    yield servers
    servers.stop()


def sentinel_args(group: SentinelServers, url: str = "redis://ignored/0") -> list[str]:
    """--sentinel for each of the group's Sentinels; --redis-url for the database only (not $REDIS_URL)."""
    return [
        "--redis-url",
        url,
        *(arg for host, port in group.sentinels for arg in ("--sentinel", f"{host}:{port}")),
    ]


@needs_sentinel
def test_a_sentinel_group_passes(
    group: SentinelServers, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # --redis-url gives the database (and would give user and password); its host is not used
    run = doctor(capsys, *sentinel_args(group, "redis://nowhere.invalid/3"), "--prefix", prefix, "--json")
    assert run.code == EXIT_OK, run.out + run.err
    report = run.report
    assert (report["mode"], report["service"], report["db"]) == ("sentinel", "mymaster", 3)
    assert report["nodes"] == [f"127.0.0.1:{group.master_port}"]
    assert list(run.statuses) == ["sentinel-master", "sentinel-quorum", *MASTER_CHECKS]
    assert_ok_but(run, {"memory": "warn", "persistence": "warn"})
    assert f"all 3 Sentinels name 127.0.0.1:{group.master_port}" in run.check("sentinel-master")["message"]
    assert "1 replica(s) online" in run.check("replication")["message"]
    with redis.Redis(port=group.master_port, db=3) as master:
        assert leftovers(master, prefix) == []


@needs_sentinel
def test_one_sentinel_down_warns(
    group: SentinelServers, prefix: str, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*sentinel_args(group), "--sentinel", f"127.0.0.1:{closed_port}", "--prefix", prefix, "--json"]
    run = doctor(capsys, *argv)
    assert run.code == EXIT_OK
    assert run.check("sentinel-master")["status"] == "warn"
    assert f"127.0.0.1:{closed_port}" in run.check("sentinel-master")["message"]


@needs_sentinel
def test_an_unknown_service_blocks(
    group: SentinelServers, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = doctor(capsys, *sentinel_args(group), "--service", "nosuchservice", "--prefix", prefix, "--json")
    assert run.code == EXIT_BLOCKED
    assert list(run.statuses) == ["sentinel-master"]
    assert "no Sentinel names a master for 'nosuchservice'" in run.check("sentinel-master")["message"]


@needs_sentinel
def test_a_sentinel_given_as_the_redis_url_is_bad_usage(
    group: SentinelServers, capsys: pytest.CaptureFixture[str]
) -> None:
    port = group.sentinel_ports[0]
    run = doctor(capsys, "--redis-url", f"redis://127.0.0.1:{port}/0")
    assert run.code == EXIT_USAGE
    assert f"is a Sentinel: use --sentinel 127.0.0.1:{port}" in run.err
