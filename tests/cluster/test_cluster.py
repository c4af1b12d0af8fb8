"""What only a real Redis Cluster shows: sessions spread over every master
and admin calls see them all; a flushed script cache is healed on each node
within one batch; a lost master is a fast StoreUnavailableError (a 503),
also once the cluster answers CLUSTERDOWN, never a hang or a 500.

The store, Flask and ASGI suites also run on the cluster (the "cluster"
backend of conftest.py); this module adds what they cannot see.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio.cluster
import redis.cluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from sharedsession import AsyncSessionStore, SessionConfig, SessionStore, SetCookie, StoreUnavailableError
from sharedsession._core import keys as k
from tests.cluster.servers import ClusterServers, start_cluster, wait_until
from tests.support import HAVE_CLUSTER_BINARIES, SECRET, Backend, Harness, signer

pytestmark = pytest.mark.skipif(
    not HAVE_CLUSTER_BINARIES, reason="needs redis-server and redis-cli (.ci/run installs them)"
)

MakeStore = Callable[..., Harness]
# Generous: the clients below time out after 0.5 s and retry once; a hang is far longer.
BOUND_SECONDS = 3.0


@pytest.fixture
def backend(redis_cluster: ClusterServers) -> Iterator[Backend]:
    """This module's tests run on the cluster only."""
    b = Backend("cluster", cluster_port=redis_cluster.port)
    yield b
    b.cleanup()


def node_of(raw: Any, key: str) -> int:
    return int(raw.get_node_from_key(key).port)


def create(store: Harness, user_id: str | None = None) -> str:
    session = store.load(None)
    session["n"] = 1
    session.user_id = user_id
    result = store.save(session)
    assert isinstance(result.cookie, SetCookie)
    return result.cookie.value


def key_of(store: Harness | SessionStore, cookie: str) -> str:
    parsed = signer(store.config, time.time).unsign(cookie, 10**9)
    assert parsed is not None
    return store.keys.session(k.handle_of(parsed[0]))


def test_sessions_on_every_master_are_all_counted_listed_and_revoked(
    make_store: MakeStore, raw: Any, redis_cluster: ClusterServers
) -> None:
    store = make_store()
    masters = {int(node.port) for node in raw.get_primaries()}
    assert len(masters) == 3
    hosts: set[int] = set()
    cookies: list[str] = []
    while hosts != masters or len(cookies) < 6:
        cookies.append(create(store, "spread"))
        hosts.add(node_of(raw, key_of(store, cookies[-1])))
        assert len(cookies) < 200
    anonymous = [create(store) for _ in range(3)]
    assert store.count() == len(cookies) + len(anonymous)
    infos = store.sessions_of("spread")
    assert len(infos) == len(cookies)
    assert {node_of(raw, store.keys.session(info.handle)) for info in infos} == masters
    assert store.revoke_user("spread") == len(cookies)
    assert all(store.load(cookie).new for cookie in cookies)
    assert store.count() == len(anonymous)


def test_a_flushed_script_cache_is_healed_on_every_node_in_one_more_trip(
    make_store: MakeStore, raw: Any
) -> None:
    store = make_store()
    cookie = create(store)
    session_node = node_of(raw, key_of(store, cookie))
    user = next(f"u{i}" for i in range(1000) if node_of(raw, store.keys.user(f"u{i}")) != session_node)
    raw.script_flush()  # on every master: this cluster is ours
    store.log.clear()
    session = store.load(cookie)
    assert store.log.trips == [["EVALSHA"], ["EVAL"]]
    store.log.clear()
    session["n"] = 2
    session.regenerate()
    session.user_id = user
    result = store.save(session)
    assert result.outcome == "regenerated"
    assert isinstance(result.cookie, SetCookie)
    # the successor; then its index entry and the retirement of the old sid: two nodes, one batch
    assert store.log.trips == [["EVALSHA"], ["EVAL"], ["EVALSHA", "EVALSHA"], ["EVAL", "EVAL"]]
    for n in (3, 4):  # the successor's node may not know LOAD and UPDATE yet: healed the first time
        store.log.clear()
        session = store.load(result.cookie.value)
        session["n"] = n
        store.save(session)
    assert store.log.trips == [["EVALSHA"], ["EVALSHA"]]  # for good
    assert dict(store.load(result.cookie.value)) == {"n": 4}
    assert [info.handle for info in store.sessions_of(user)] == [session.handle]


def test_scripts_go_straight_to_the_node_of_their_key(
    make_store: MakeStore, raw: Any, redis_cluster: ClusterServers
) -> None:
    def getkeys_calls() -> int:
        total = 0
        for port in redis_cluster.ports:
            with redis.Redis(port=port) as node:
                stats = node.info("commandstats")
            total += int(stats.get("cmdstat_command|getkeys", {}).get("calls", 0))
        return total

    store = make_store()
    before = getkeys_calls()
    cookie = create(store, "alice")
    session = store.load(cookie)
    session["n"] = 2
    store.save(session)
    assert store.sessions_of("alice")[0].handle == session.handle
    assert getkeys_calls() == before  # no hidden COMMAND GETKEYS round trip per script


def test_a_script_sent_to_the_wrong_node_is_redirected(
    make_store: MakeStore, redis_cluster: ClusterServers
) -> None:
    """A slot map gone stale (slots moved since): MOVED, and redis-py resends by slot.

    Both runners route scripts by the slot map (``make_store`` gives each mode).
    """

    def moved_replies() -> int:
        total = 0
        for port in redis_cluster.ports:
            with redis.Redis(port=port) as node:
                total += int(node.info("errorstats").get("errorstat_MOVED", {}).get("count", 0))
        return total

    store = make_store()
    assert store.sessions_of("nobody") == []  # the client learns the slot map
    client = store.store.redis

    def wrong_node(key: str) -> object:
        right = client.get_node_from_key(key)
        return next(node for node in client.get_primaries() if node.name != right.name)

    before = moved_replies()
    store.store._runner._node_of = wrong_node
    session = store.load(None)
    session["n"] = 1
    session.user_id = "moved"  # the index entry is a script too
    result = store.save(session)
    assert isinstance(result.cookie, SetCookie)
    session = store.load(result.cookie.value)
    assert dict(session) == {"n": 1}
    session["n"] = 2
    assert store.save(session).outcome == "updated"
    assert [info.handle for info in store.sessions_of("moved")] == [session.handle]
    assert moved_replies() - before >= 3  # load, update, index entry: each redirected once


# -- a master lost -------------------------------------------------------------------


def fail_fast_sync(port: int) -> Any:
    """A cluster client as the README recommends: short timeouts, one immediate retry."""
    return redis.cluster.RedisCluster(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=Retry(NoBackoff(), 1),
    )


def fail_fast_async(port: int) -> Any:
    return redis.asyncio.cluster.RedisCluster(
        host="127.0.0.1",
        port=port,
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=AsyncRetry(NoBackoff(), 1),
    )


def unavailable_within_bound(call: Callable[[], Any]) -> BaseException | None:
    """Call; it must raise StoreUnavailableError within BOUND_SECONDS. Returns the redis-py cause."""
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        call()
    assert time.monotonic() - started < BOUND_SECONDS
    return info.value.__cause__


def test_a_lost_master_is_a_fast_unavailable_error_even_once_the_cluster_is_down(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path, node_timeout_ms=1000)
    client = fail_fast_sync(cluster.port)
    async_client = fail_fast_async(cluster.port)
    loop = asyncio.new_event_loop()
    try:
        store = SessionStore(SessionConfig(secret_key=SECRET, redis=client))
        async_store = AsyncSessionStore(SessionConfig(secret_key=SECRET, redis=async_client))
        by_node: dict[int, str] = {}
        while len(by_node) < 3:
            session = store.load(None)
            session["n"] = 1
            cookie = store.save(session).cookie
            assert isinstance(cookie, SetCookie)
            by_node.setdefault(node_of(client, key_of(store, cookie.value)), cookie.value)
        # The victim: the node redis-py sends keyless questions to, which once took
        # every script down with it (see _redis._script_router).
        victim = int(client.get_default_node().port)
        assert loop.run_until_complete(async_store.load(by_node[victim])) == {"n": 1}
        alive = [port for port in cluster.ports if port != victim]
        cluster.children[cluster.ports.index(victim)].kill()
        # Its slots fail fast; the other masters keep serving until the cluster gives up on it.
        for load in (store.load, lambda c: loop.run_until_complete(async_store.load(c))):
            cause = unavailable_within_bound(lambda load=load: load(by_node[victim]))  # type: ignore[misc]
            assert isinstance(cause, RedisConnectionError | ClusterDownError)
        for port in alive:
            assert dict(store.load(by_node[port])) == {"n": 1}
            assert loop.run_until_complete(async_store.load(by_node[port])) == {"n": 1}

        # Then the cluster marks it failed and, with no replica to promote, answers
        # CLUSTERDOWN for every slot: still a StoreUnavailableError (a 503), not a 500.
        def cluster_down() -> bool:
            try:
                store.load(by_node[alive[0]])
            except StoreUnavailableError as exc:
                return isinstance(exc.__cause__, ClusterDownError)
            except ClusterDownError:
                pytest.fail("CLUSTERDOWN escaped as a redis-py error: a 500, not a 503")
            return False

        wait_until("CLUSTERDOWN on the surviving masters", cluster_down, 20, step=0.2)
        for value in by_node.values():
            cause = unavailable_within_bound(lambda value=value: store.load(value))  # type: ignore[misc]
            assert isinstance(cause, RedisConnectionError | ClusterDownError)
        cause = unavailable_within_bound(lambda: loop.run_until_complete(async_store.load(by_node[alive[1]])))
        assert isinstance(cause, RedisConnectionError | ClusterDownError)
        session = store.load(None)
        session["n"] = 2
        unavailable_within_bound(lambda: store.save(session))
    finally:
        client.close()
        loop.run_until_complete(async_client.aclose())
        loop.close()
        cluster.stop()
