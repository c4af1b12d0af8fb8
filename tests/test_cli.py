"""The ``sharedsession`` command, run in-process against a Redis other processes
can reach (a real one with REDIS_URL, else fakeredis's TCP server), each test
under a key prefix of its own."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from sharedsession import SessionConfig, SessionStore, SetCookie
from sharedsession._urls import redact_url
from sharedsession.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_UNAVAILABLE, EXIT_USAGE, main
from sharedsession.cli.diagnostics import collect_stats, eviction_risk, eviction_warning, render_stats
from tests.support import SECRET, delete_prefix

IDLE = 1800
# Generous: the client's timeouts are 1 s; a hang would take far longer.
BOUND_SECONDS = 5.0


class Cli:
    """Runs ``main`` with --redis-url and --prefix of the test's Redis; keeps what it printed."""

    def __init__(self, url: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.url = url
        self.prefix = prefix
        self._capsys = capsys
        self.out = ""
        self.err = ""

    def __call__(self, *argv: str, target: bool = True) -> int:
        extra = ["--redis-url", self.url, "--prefix", self.prefix, "--idle-timeout", str(IDLE)]
        self._capsys.readouterr()
        code = main([*argv, *(extra if target else [])])
        self.out, self.err = self._capsys.readouterr()
        return code

    def json(self, *argv: str) -> Any:
        assert self(*argv, "--json") == EXIT_OK, self.err
        return json.loads(self.out)


@pytest.fixture
def prefix(server_redis_url: str) -> Iterator[str]:
    prefix = f"sstest:cli:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(server_redis_url, prefix)


@pytest.fixture
def store(server_redis_url: str, prefix: str) -> Iterator[SessionStore]:
    config = SessionConfig(
        secret_key=SECRET,
        redis_url=server_redis_url,
        key_prefix=prefix,
        idle_timeout=IDLE,
        bind_ip="exact",
        bind_user_agent=True,
    )
    # A clock that moves on by 1 ms at every reading: sessions made one after
    # the other were created at different times, as "oldest first" needs.
    ticks = itertools.count()
    start = time.time()
    store = SessionStore(config, clock=lambda: start + next(ticks) / 1000)
    yield store
    store.close()


@pytest.fixture
def cli(server_redis_url: str, prefix: str, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(server_redis_url, prefix, capsys)


def create(
    store: SessionStore, user: str | None = None, *, ip: str = "203.0.113.5", agent: str = "curl/8.5"
) -> str:
    """Store a session (linked to ``user``); return its handle."""
    session = store.load(None, store.client(peer=ip, user_agent=agent))
    session["cart"] = ["apple"]
    session.user_id = user
    result = store.save(session)
    assert isinstance(result.cookie, SetCookie)
    assert session.handle is not None
    return session.handle


def is_alive(store: SessionStore, handle: str) -> bool:
    return bool(store.redis.exists(store.keys.session(handle)))


# -- stats -------------------------------------------------------------------------


def test_stats_counts_sessions_and_user_indexes(cli: Cli, store: SessionStore) -> None:
    create(store, "alice")
    create(store, "alice")
    create(store)
    assert cli("stats") == EXIT_OK
    assert "live sessions   3" in cli.out
    assert "user indexes    1" in cli.out
    assert cli.prefix in cli.out


def test_stats_json(cli: Cli, store: SessionStore) -> None:
    for user in ("alice", "bob", None):
        create(store, user)
    stats = cli.json("stats")
    assert stats["sessions"] == 3
    assert stats["user_indexes"] == 2
    assert stats["prefix"] == cli.prefix
    memory = stats["memory"]
    if memory["note"] is None:  # a server with MEMORY USAGE (real Redis)
        assert memory["sampled_keys"] == 3
        assert memory["estimated_bytes"] == memory["sampled_bytes"] > 0
    else:  # fakeredis has no MEMORY: said so, no made-up number
        assert memory["estimated_bytes"] is None
        assert "MEMORY" in memory["note"]
    if stats["server"] is None:  # fakeredis has no INFO either
        assert "INFO" in stats["server_error"]
        assert any("maxmemory-policy" in w for w in stats["warnings"])
    else:
        assert stats["server"]["redis_version"]
        assert stats["server"]["maxmemory_policy"]
        assert stats["server"]["keyspace"].startswith(f"db{stats['db']}:")


def test_stats_samples_at_most_n_keys(cli: Cli, store: SessionStore) -> None:
    for _ in range(4):
        create(store)
    memory = cli.json("stats", "--sample", "2")["memory"]
    if memory["note"] is None:
        assert memory["sampled_keys"] == 2
        assert memory["estimated_bytes"] == round(memory["sampled_bytes"] / 2 * 4)
    off = cli.json("stats", "--sample", "0")["memory"]
    assert off["sampled_keys"] == 0
    assert off["estimated_bytes"] is None
    assert "--sample 0" in off["note"]


def test_stats_of_an_empty_prefix(cli: Cli) -> None:
    stats = cli.json("stats")
    assert stats["sessions"] == stats["user_indexes"] == 0
    assert stats["memory"]["sampled_keys"] == 0


# -- eviction policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "risk"),
    [
        ("noeviction", "safe"),
        ("NoEviction", "safe"),
        ("allkeys-lru", "evicts-sessions"),
        ("allkeys-lfu", "evicts-sessions"),
        ("allkeys-random", "evicts-sessions"),
        # Every session carries a TTL: "volatile" keys are exactly the sessions.
        ("volatile-lru", "evicts-sessions"),
        ("volatile-lfu", "evicts-sessions"),
        ("volatile-random", "evicts-sessions"),
        ("volatile-ttl", "evicts-sessions"),
        ("some-future-policy", "unknown"),
    ],
)
def test_eviction_risk(policy: str, risk: str) -> None:
    assert eviction_risk(policy) == risk


def test_eviction_warning() -> None:
    assert eviction_warning("noeviction", 0) is None
    assert eviction_warning("noeviction", 10**9) is None
    warning = eviction_warning("volatile-ttl", 10**9)
    assert warning is not None
    assert "volatile-ttl" in warning
    assert "noeviction" in warning
    assert "no limit" not in warning
    unlimited = eviction_warning("allkeys-lru", 0)
    assert unlimited is not None
    assert "no limit" in unlimited
    unknown = eviction_warning("some-future-policy", 10**9)
    assert unknown is not None
    assert "some-future-policy" in unknown
    unread = eviction_warning(None, None)
    assert unread is not None
    assert "noeviction" in unread


class _EvictingRedis:
    """A fakeredis client that reports a server configured with an evicting policy."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.get_connection_kwargs = inner.get_connection_kwargs

    def pipeline(self, transaction: bool = True) -> Any:
        return self.inner.pipeline(transaction=transaction)

    def scan_iter(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.scan_iter(*args, **kwargs)

    def memory_usage(self, key: str, samples: int | None = None) -> int:
        return 100

    def info(self) -> dict[str, Any]:
        return {
            "redis_version": "7.2.4",
            "used_memory_human": "2.00M",
            "maxmemory": 100 * 1024 * 1024,
            "maxmemory_human": "100.00M",
            "maxmemory_policy": "volatile-lru",
            "connected_clients": 7,
            "db0": {"keys": 2, "expires": 2, "avg_ttl": 1000},
        }


def test_stats_warns_about_an_evicting_policy() -> None:
    client = _EvictingRedis(fakeredis.FakeRedis())
    store = SessionStore(SessionConfig(secret_key=SECRET, redis=client, key_prefix="p:"))
    create(store, "alice")
    stats = collect_stats(store)
    assert stats.server is not None
    assert stats.server.keyspace == "db0:keys=2,expires=2,avg_ttl=1000"
    assert stats.memory.estimated_bytes == 100
    text = render_stats(stats)
    assert "WARNING: maxmemory-policy is volatile-lru" in text
    assert "every session has a TTL" in text


# -- sessions ------------------------------------------------------------------------


def test_sessions_table(cli: Cli, store: SessionStore) -> None:
    one = create(store, "alice", ip="198.51.100.7", agent="Mozilla/5.0 (X11; Linux) Firefox/126.0")
    two = create(store, "alice")
    create(store, "bob")
    assert cli("sessions", "alice") == EXIT_OK
    lines = cli.out.splitlines()
    assert lines[0].split() == [
        "HANDLE",
        "CREATED",
        "LAST",
        "SEEN",
        "EXPIRES",
        "CLIENT",
        "IP",
        "USER",
        "AGENT",
    ]
    assert lines[1].startswith(one)
    assert lines[2].startswith(two)
    assert "198.51.100.7" in lines[1]
    assert "firefox" in lines[1].lower()
    assert "2 session(s)" in cli.out


def test_sessions_table_escapes_control_characters(cli: Cli, store: SessionStore) -> None:
    create(store, "alice", agent="evil\x1b]0;pwned\x07 agent")
    assert cli("sessions", "alice") == EXIT_OK
    assert "\x1b" not in cli.out
    assert "\x07" not in cli.out
    assert "\\x1b" in cli.out


def test_sessions_json(cli: Cli, store: SessionStore) -> None:
    handles = [create(store, "alice"), create(store, "alice")]
    listed = cli.json("sessions", "alice")
    assert [s["handle"] for s in listed] == handles
    first = listed[0]
    assert first["user_id"] == "alice"
    assert first["client_ip"] == "203.0.113.5"
    assert first["user_agent"]
    expires = time.time() + IDLE
    assert abs(_timestamp(first["expires"]) - expires) < 60
    assert _timestamp(first["created"]) <= _timestamp(first["last_seen"]) <= _timestamp(first["expires"])


def test_sessions_of_a_user_without_any(cli: Cli) -> None:
    assert cli.json("sessions", "nobody") == []
    assert cli("sessions", "nobody") == EXIT_OK
    assert "no live sessions" in cli.out


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


# -- revoke, revoke-user -------------------------------------------------------------


def test_revoke(cli: Cli, store: SessionStore) -> None:
    handle = create(store, "alice")
    other = create(store, "alice")
    assert cli("revoke", handle) == EXIT_OK
    assert handle in cli.out
    assert not is_alive(store, handle)
    assert is_alive(store, other)
    assert [info.handle for info in store.sessions_of("alice")] == [other]
    assert cli("revoke", handle) == EXIT_NOT_FOUND
    assert "no live session" in cli.err


def test_revoke_json(cli: Cli, store: SessionStore) -> None:
    handle = create(store)
    assert cli.json("revoke", handle) == {"handle": handle, "revoked": True}
    assert cli("revoke", handle, "--json") == EXIT_NOT_FOUND
    assert json.loads(cli.out) == {"handle": handle, "revoked": False}


@pytest.mark.parametrize("handle", ["xyz", "A" * 32, "0" * 31, "0" * 33, "sharedsession:s:" + "0" * 32, ""])
def test_revoke_refuses_a_malformed_handle(cli: Cli, handle: str, closed_port: int) -> None:
    assert cli("revoke", handle) == EXIT_USAGE
    assert "not a session handle" in cli.err
    # Checked before Redis is asked: the same answer with Redis down.
    cli.url = f"redis://127.0.0.1:{closed_port}/0"
    assert cli("revoke", handle) == EXIT_USAGE


def test_revoke_user(cli: Cli, store: SessionStore) -> None:
    create(store, "alice")
    create(store, "alice")
    bob = create(store, "bob")
    assert cli("revoke-user", "alice") == EXIT_OK
    assert "ended 2 session(s)" in cli.out
    assert store.sessions_of("alice") == []
    assert is_alive(store, bob)
    assert cli.json("revoke-user", "alice") == {"user": "alice", "ended": 0}


# -- where Redis is ------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["stats"], ["sessions", "alice"], ["revoke", "0" * 32], ["revoke-user", "alice"], ["stats", "--json"]],
)
def test_unreachable_redis_exits_3_fast(cli: Cli, closed_port: int, argv: list[str]) -> None:
    cli.url = f"redis://127.0.0.1:{closed_port}/0"
    started = time.monotonic()
    assert cli(*argv) == EXIT_UNAVAILABLE
    assert time.monotonic() - started < BOUND_SECONDS
    assert cli.err.startswith(f"sharedsession: cannot reach Redis at redis://127.0.0.1:{closed_port}/0: ")
    assert cli.out == ""


@pytest.mark.parametrize(
    "template",
    [
        "redis://:hunter2@127.0.0.1:{port}/0",
        "redis://admin:hunter2@127.0.0.1:{port}/0",
        "redis://hunter2@127.0.0.1:{port}/0",
        "redis://127.0.0.1:{port}/0?password=hunter2",
    ],
)
def test_the_password_is_never_printed(cli: Cli, closed_port: int, template: str) -> None:
    cli.url = template.format(port=closed_port)
    assert cli("stats") == EXIT_UNAVAILABLE
    assert "hunter2" not in cli.out + cli.err
    assert "***" in cli.err
    assert f"127.0.0.1:{closed_port}" in cli.err


def test_help_does_not_print_the_password_of_redis_url(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@redis:6379/1")
    assert main(["stats", "--help"]) == EXIT_OK
    assert "hunter2" not in capsys.readouterr().out


def test_redact_url() -> None:
    assert redact_url("redis://localhost:6379/1") == "redis://localhost:6379/1"
    assert redact_url("redis://:s3cret@redis:6379/1") == "redis://:***@redis:6379/1"
    assert redact_url("rediss://app:s3cret@redis:6380/0") == "rediss://app:***@redis:6380/0"
    assert redact_url("redis://s3cret@redis/0") == "redis://***@redis/0"
    assert (
        redact_url("unix:///run/redis.sock?db=1&password=s3cret")
        == "unix:///run/redis.sock?db=1&password=***"
    )


def test_redis_url_and_key_prefix_from_the_environment(
    cli: Cli, store: SessionStore, monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    create(store, "alice")
    monkeypatch.setenv("REDIS_URL", cli.url)
    monkeypatch.setenv("KEY_PREFIX", cli.prefix)
    assert cli("stats", "--json", target=False) == EXIT_OK
    assert json.loads(cli.out)["sessions"] == 1
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{closed_port}/0")
    assert cli("stats", target=False) == EXIT_UNAVAILABLE
    assert str(closed_port) in cli.err
    assert cli("stats") == EXIT_OK  # --redis-url wins over the environment


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nonsense"],
        ["stats", "--sample", "many"],
        ["stats", "--sample", "-1"],
        ["stats", "--idle-timeout", "0"],
        ["sessions"],
        ["sessions", ""],
        ["revoke-user", ""],
        ["stats", "--redis-url", "http://localhost:6379/1"],
        ["stats", "--redis-url", "redis://localhost:notaport/1"],
        ["stats", "--prefix", "{app}:"],
    ],
)
def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.strip()
    assert "Traceback" not in err


def test_bad_environment_exits_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDLE_TIMEOUT", "soon")
    assert main(["stats"]) == EXIT_USAGE
    assert "--idle-timeout" in capsys.readouterr().err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == EXIT_OK
    out = capsys.readouterr().out
    for line in ("0  done", "1  not found", "2  bad usage", "3  Redis unreachable"):
        assert line in out
    for command in ("stats", "sessions", "revoke", "revoke-user", "demo"):
        assert command in out
    assert main(["revoke", "--help"]) == EXIT_OK
    assert "3  Redis unreachable" in capsys.readouterr().out


def test_demo_is_wired_in(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == EXIT_OK
    assert "usage:" in capsys.readouterr().out


# -- installed entry points ----------------------------------------------------------


def test_console_script_and_python_dash_m(closed_port: int) -> None:
    script = Path(sys.executable).parent / "sharedsession"
    assert script.exists(), f"console script not installed next to {sys.executable}: pip install -e ."
    for command in ([str(script)], [sys.executable, "-m", "sharedsession"]):
        done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert "exit codes:" in done.stdout
        down = subprocess.run(
            [*command, "stats", "--redis-url", f"redis://127.0.0.1:{closed_port}/0"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert down.returncode == EXIT_UNAVAILABLE
        assert "cannot reach Redis" in down.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "sharedsession", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.stdout.startswith("usage: python -m sharedsession")
