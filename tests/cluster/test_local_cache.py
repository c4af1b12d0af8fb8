"""The local cache (SessionConfig.local_cache) against a real redis-server of the test's own:
invalidations, the fill guard, losing the listener, and what it refuses.

(The replica stack's consistency trials, through HAProxy, are in
tests/replicas/test_local_cache.py; the store suite and the state machine also
run with the cache on, on the real Redis.)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import redis.cluster

from sharedsession import SessionConfig, SessionStore, SetCookie
from tests.cluster.servers import REDIS_SERVER, Topology, free_ports, wait_until
from tests.support import SECRET, FakeClock

pytestmark = pytest.mark.skipif(not REDIS_SERVER, reason="needs the redis-server binary")


@contextlib.contextmanager
def server(tmp_path: Path) -> Iterator[tuple[int, Topology]]:
    assert REDIS_SERVER
    (port,) = free_ports(1)
    servers = Topology(tmp_path)
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)]
    child = servers.start(f"redis-{port}", [*argv, "--appendonly", "yes"])
    try:
        servers.wait_up(child, port)
        yield port, servers
    finally:
        servers.stop()


def cached_store(port: int, clock: FakeClock | None = None, **settings: Any) -> SessionStore:
    config = SessionConfig(
        secret_key=SECRET, redis_url=f"redis://127.0.0.1:{port}/0", local_cache=100, **settings
    )
    return SessionStore(config, **({"clock": clock} if clock else {}))


def evals(port: int) -> int:
    """Scripts Redis ran so far (each load, save or touch is one)."""
    with redis.Redis(port=port) as admin:
        stats = admin.info("commandstats")
    return sum(int(v["calls"]) for name, v in stats.items() if name in ("cmdstat_evalsha", "cmdstat_eval"))


def stored(store: SessionStore, **data: Any) -> str:
    session = store.load(None)
    session.update(data)
    result = store.save(session)
    assert isinstance(result.cookie, SetCookie)
    return result.cookie.value


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    with server(tmp_path) as (port, _):
        yield port


def test_a_cached_session_costs_no_round_trip_until_another_replica_changes_it(redis_port: int) -> None:
    one, two = cached_store(redis_port), cached_store(redis_port)
    try:
        cookie = stored(one, n=1)
        assert dict(two.load(cookie)) == {"n": 1}  # read, and kept
        before = evals(redis_port)
        for _ in range(20):
            assert dict(two.load(cookie)) == {"n": 1}
        assert evals(redis_port) == before  # twenty reads, no round trip
        changing = one.load(cookie)
        changing["n"] = 2
        assert one.save(changing).outcome == "updated"
        assert dict(two.load(cookie)) == {"n": 2}  # the invalidation came first
        ending = one.load(cookie)
        ending.destroy()
        one.save(ending)
        assert two.load(cookie).new
    finally:
        one.close()
        two.close()


def test_a_read_racing_a_write_is_not_kept(redis_port: int) -> None:
    """The fill guard: an invalidation that arrives while a read is in flight wins."""
    one, two = cached_store(redis_port), cached_store(redis_port)
    try:
        cookie = stored(one, n=1)
        cache = two._cache
        assert cache is not None
        mark = cache.mark()
        assert mark is not None
        stale = two._core._parse_read  # what READ would have answered before the write:
        writer = one.load(cookie)
        writer["n"] = 2
        one.save(writer)
        with redis.Redis(port=redis_port) as raw:
            key = two.keys.session(str(writer.handle))
            entry = stale(
                str(writer.handle), [b'{"#v":"1","#c":"1","n":"1"}', int(time.time() * 1000) + 60_000]
            )
            assert entry is not None
            cache.fill(str(writer.handle), mark, entry)  # filled with the pre-write read: refused
            assert cache.get(str(writer.handle)) is None
            assert raw.exists(key)
        assert dict(two.load(cookie)) == {"n": 2}
    finally:
        one.close()
        two.close()


def test_losing_the_listener_flushes_and_requests_go_to_redis_at_once(redis_port: int) -> None:
    one, two = cached_store(redis_port), cached_store(redis_port)
    try:
        cookie = stored(one, n=1)
        two.load(cookie)
        assert two.cached == 1
        with redis.Redis(port=redis_port) as admin:
            assert admin.client_kill_filter(_type="pubsub") >= 1
        changing = one.load(cookie)
        changing["n"] = 2
        one.save(changing)  # no listener of two's hears this
        before = evals(redis_port)
        assert dict(two.load(cookie)) == {"n": 2}  # the loss was noticed: flushed, read from Redis
        assert two.cached == 0
        assert evals(redis_port) > before
        wait_until(
            "the listener back", lambda: two._cache is not None and (two._cache.mark() is not None), 10
        )
        two.load(cookie)
        assert two.cached == 1
    finally:
        one.close()
        two.close()


def test_a_restarted_redis_flushes_the_cache(tmp_path: Path) -> None:
    with server(tmp_path) as (port, servers):
        store = cached_store(port)
        try:
            cookie = stored(store, n=1)
            store.load(cookie)
            assert store.cached == 1
            (child,) = servers.children
            child.kill()  # everything of the old process is gone, its listener too
            with contextlib.suppress(Exception):
                store.load(cookie)
            assert store.cached == 0
        finally:
            store.close()


def test_flushdb_flushes_the_cache(redis_port: int) -> None:
    store = cached_store(redis_port)
    try:
        cookie = stored(store, n=1)
        store.load(cookie)
        with redis.Redis(port=redis_port) as admin:
            admin.flushdb()
        assert store.load(cookie).new
        assert store.cached == 0
    finally:
        store.close()


def test_a_quiet_listener_is_not_trusted_until_it_answers(redis_port: int) -> None:
    """After a silence longer than the heartbeat, a lookup goes to Redis and pings the listener."""
    ticks = FakeClock(0.0)
    store = cached_store(redis_port)
    try:
        cache = store._cache
        assert cache is not None
        cache.listener._clock = ticks  # the listener's own clock, for its heartbeat
        cookie = stored(store, n=1)
        store.load(cookie)
        assert cache.mark() is not None
        ticks.advance(5)  # quiet for longer than the heartbeat
        assert cache.mark() is None  # not trusted: this lookup goes to Redis; a PING is sent
        wait_until("the PONG", lambda: cache.mark() is not None, 5)
    finally:
        store.close()


def test_the_cache_keeps_no_more_than_asked(redis_port: int) -> None:
    store = cached_store(redis_port)
    try:
        cookies = [stored(store, n=i) for i in range(150)]
        for cookie in cookies:
            store.load(cookie)
        assert store.cached == 100
    finally:
        store.close()


def test_an_entry_is_not_served_past_the_deadline_its_read_saw(redis_port: int) -> None:
    """Redis reports expiry late: past the deadline, the lookup asks Redis again."""
    clock = FakeClock()
    store = cached_store(redis_port, clock, idle_timeout=60)
    try:
        cookie = stored(store, n=1)
        store.load(cookie)
        before = evals(redis_port)
        store.load(cookie)
        assert evals(redis_port) == before  # served from the cache
        clock.advance(61)  # past the TTL deadline the read saw (Redis' own clock has not moved)
        store.load(cookie)
        assert evals(redis_port) > before  # asked again, not served
    finally:
        store.close()


@pytest.mark.parametrize(
    ("client", "message"),
    [
        (lambda: fakeredis.FakeRedis(), "fakeredis has no CLIENT TRACKING"),
        (lambda: redis.cluster.RedisCluster.__new__(redis.cluster.RedisCluster), "not a Redis Cluster"),
    ],
)
def test_what_the_cache_cannot_keep_true_is_refused_at_construction(client: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SessionStore(SessionConfig(secret_key=SECRET, redis=client(), local_cache=10))


def test_sentinel_is_refused_at_construction() -> None:
    from redis.sentinel import Sentinel

    master = Sentinel([("127.0.0.1", free_ports(1)[0])]).master_for("mymaster")
    with pytest.raises(ValueError, match="Sentinel"):
        SessionStore(SessionConfig(secret_key=SECRET, redis=master, local_cache=10))
