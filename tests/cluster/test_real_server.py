"""What only a real redis-server shows (fakeredis cannot): memory, and refusals.

A Redis that answers but refuses (a read-only replica, a server busy with a
long script, one whose persistence fails, one out of memory) means "cannot
serve now": StoreUnavailableError (a 503 in the adapters), never an empty
session that looks logged out, never a plain redis error (a 500)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sharedsession import SessionConfig, SessionStore, SessionTooLargeError, SetCookie, StoreUnavailableError
from tests.cluster.servers import REDIS_SERVER, Topology, free_ports, wait_until
from tests.support import SECRET, valid_cookie

pytestmark = pytest.mark.skipif(not REDIS_SERVER, reason="needs the redis-server binary")


@contextlib.contextmanager
def server(tmp_path: Path, *settings: str) -> Iterator[int]:
    """A redis-server of this test's own on a free port, with these settings; stopped after."""
    assert REDIS_SERVER
    (port,) = free_ports(1)
    servers = Topology(tmp_path)
    child = servers.start(
        f"redis-{port}", [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *settings]
    )
    try:
        servers.wait_up(child, port)
        yield port
    finally:
        servers.stop()


def store_on(port: int) -> SessionStore:
    return SessionStore(SessionConfig(secret_key=SECRET, redis_url=f"redis://127.0.0.1:{port}/0"))


def stored_session(store: SessionStore) -> str:
    session = store.load(None)
    session["n"] = 1
    result = store.save(session)
    assert isinstance(result.cookie, SetCookie)
    return result.cookie.value


def test_a_read_only_replica_refuses_a_load_of_what_it_lacks(tmp_path: Path) -> None:
    """Mid-failover, a client may reach a replica (or a demoted master) that lacks the
    session: the load must fail, not answer "no such session" (the user would look
    logged out, and a new session would be written over nothing)."""
    (nowhere,) = free_ports(1)  # its master is gone: a replica cut off, still serving reads
    with server(tmp_path, "--replicaof", "127.0.0.1", str(nowhere)) as port:
        store = store_on(port)
        try:
            cookie = valid_cookie(store.config)  # a session this replica does not have
            with pytest.raises(StoreUnavailableError) as info:
                store.load(cookie)
            assert isinstance(info.value.__cause__, redis.exceptions.ReadOnlyError)
            assert store.load(None).new  # no cookie: nothing asked, nothing refused
        finally:
            store.close()


def test_a_busy_server_is_unavailable(tmp_path: Path) -> None:
    with server(tmp_path, "--busy-reply-threshold", "50") as port:
        store = store_on(port)
        cookie = stored_session(store)
        blocker = redis.Redis(port=port)
        # A script that runs for two seconds; past 50 ms everyone else gets BUSY.
        busy = threading.Thread(
            target=blocker.eval,
            args=("local t = redis.call('TIME'); while redis.call('TIME')[1] - t[1] < 2 do end", 0),
            daemon=True,
        )
        try:
            busy.start()
            wait_until("the script blocking", lambda: _busy(port), 5)
            with pytest.raises(StoreUnavailableError) as info:
                store.load(cookie)
            assert "BUSY" in str(info.value)
        finally:
            busy.join(timeout=10)
            blocker.close()
            store.close()
        assert not busy.is_alive()


def _busy(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=1) as probe:
        try:
            probe.ping()
        except redis.ResponseError as exc:
            return str(exc).startswith("BUSY")
    return False


def test_failing_persistence_is_unavailable_not_a_500(tmp_path: Path) -> None:
    """MISCONF: the last snapshot failed and stop-writes-on-bgsave-error refuses writes."""
    # Snapshots on (the rule applies only then), into /proc, where none can be written, even as root.
    settings = ("--save", "3600 1", "--stop-writes-on-bgsave-error", "yes", "--dir", "/proc")
    with server(tmp_path, *settings) as port:
        store = store_on(port)
        admin = redis.Redis(port=port)
        try:
            cookie = stored_session(store)
            admin.bgsave()
            wait_until("the snapshot failing", lambda: _last_bgsave(admin) == "err", 10)
            with pytest.raises(StoreUnavailableError, match="MISCONF"):
                store.load(cookie)  # LOAD slides the TTL: a write, refused
        finally:
            admin.close()
            store.close()


def _last_bgsave(client: redis.Redis) -> str:
    return str(client.info("persistence")["rdb_last_bgsave_status"])


def test_out_of_memory_refuses_new_sessions_cleanly(tmp_path: Path) -> None:
    with server(tmp_path, "--maxmemory", "1mb", "--maxmemory-policy", "noeviction") as port:
        store = store_on(port)
        filler = redis.Redis(port=port)
        try:
            cookie = stored_session(store)
            with contextlib.suppress(redis.exceptions.OutOfMemoryError):
                for i in range(10_000):
                    filler.set(f"filler:{i}", "x" * 1000)
            session = store.load(None)
            session["n"] = 1
            with pytest.raises(StoreUnavailableError):
                store.save(session)
            # What was stored before stays readable (a load only slides a TTL).
            assert dict(store.load(cookie)) == {"n": 1}
        finally:
            filler.close()
            store.close()


@pytest.mark.parametrize("value", ["", "x" * 100])
def test_max_size_bounds_the_memory_a_session_takes_in_redis(tmp_path: Path, value: str) -> None:
    """Many tiny keys: each costs FIELD_COST besides its bytes, about what a hash field
    costs Redis, so a full session takes about max_size of Redis memory, not ten times it."""
    max_size = 64 * 1024
    with server(tmp_path) as port:
        store = store_on(port)
        admin = redis.Redis(port=port)
        try:
            session = store.load(None)
            with contextlib.suppress(SessionTooLargeError):
                for i in range(100_000):
                    session[f"{i:x}"] = value
            keys = len(session)
            result = store.save(session)
            assert isinstance(result.cookie, SetCookie)
            used = admin.memory_usage(store.keys.session(str(session.handle)), samples=0)
            assert isinstance(used, int)
            assert used <= 1.25 * max_size, f"{keys} keys take {used} bytes"
        finally:
            admin.close()
            store.close()
