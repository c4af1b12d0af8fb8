"""The interleavings and half-applied saves the state machine (test_model.py) found,
each pinned down as a plain test: two replicas, steps driven one round trip at a time.

Each of these failed before the fix it names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from sharedsession import SessionConfig, SessionStore, SetCookie, StoreUnavailableError
from sharedsession._core import admin
from tests.support import SECRET, Backend, FakeClock, Stepper, load_scripts


@pytest.fixture
def replicas(backend: Backend, clock: FakeClock) -> Callable[[], SessionStore]:
    load_scripts(backend.sync_client())

    def make() -> SessionStore:
        config = SessionConfig(secret_key=SECRET, redis=backend.sync_client(), key_prefix=backend.prefix)
        return SessionStore(config, clock=clock)

    return make


def login(store: SessionStore, user: str | None = None, **data: Any) -> str:
    session = store.load(None)
    session.update(data)
    session.user_id = user
    result = store.save(session)
    assert isinstance(result.cookie, SetCookie)
    return result.cookie.value


def saved_cookie(result: Any) -> str:
    assert isinstance(result.cookie, SetCookie)
    return str(result.cookie.value)


# -- a login drops an acknowledged update ------------------------------------------------


def test_a_login_carries_an_update_another_replica_saved_after_it_read(
    replicas: Callable[[], SessionStore],
) -> None:
    """Fixed by RETIRE's revision check: the successor is rebuilt from what is stored now."""
    one, two = replicas(), replicas()
    cookie = login(one, cart=["apple"])
    logging_in = one.load(cookie)
    elsewhere = two.load(cookie)
    elsewhere["cart"] = ["apple", "pear"]  # saved, and answered with success, first
    assert two.save(elsewhere).outcome == "updated"
    logging_in.regenerate()
    logging_in.user_id = "alice"
    logging_in["user"] = "alice"
    result = one.save(logging_in)
    assert result.outcome == "regenerated"
    assert dict(two.load(saved_cookie(result))) == {"cart": ["apple", "pear"], "user": "alice"}


def test_a_login_racing_an_update_between_its_round_trips_carries_it(
    replicas: Callable[[], SessionStore],
) -> None:
    one, two = replicas(), replicas()
    cookie = login(one, n=1)
    logging_in = one.load(cookie)
    logging_in.regenerate()
    step = Stepper(one, one._core.save(logging_in))
    step.trip()  # the successor exists
    elsewhere = two.load(cookie)
    elsewhere["n"] = 2
    assert two.save(elsewhere).outcome == "updated"
    result = step.finish()
    assert result.outcome == "regenerated"
    assert dict(two.load(saved_cookie(result))) == {"n": 2}


# -- a logout misses a session just regenerated -----------------------------------------------


def test_a_logout_in_flight_during_a_login_ends_the_new_session(replicas: Callable[[], SessionStore]) -> None:
    """Fixed by END following the tombstone to the successor."""
    one, two = replicas(), replicas()
    cookie = login(one, n=1)
    logging_out = two.load(cookie)  # still in flight with the old sid
    logging_in = one.load(cookie)
    logging_in.regenerate()
    new_cookie = saved_cookie(one.save(logging_in))
    logging_out.destroy()
    assert two.save(logging_out).outcome == "destroyed"
    assert one.load(new_cookie).new
    assert one.load(cookie).new


def test_revoke_of_a_regenerated_handle_ends_the_successor_and_says_so(
    replicas: Callable[[], SessionStore],
) -> None:
    one = replicas()
    cookie = login(one, "bob", n=1)
    session = one.load(cookie)
    old_handle = str(session.handle)
    session.regenerate()
    new_cookie = saved_cookie(one.save(session))
    assert one.revoke(old_handle) is True  # it reached the live successor
    assert one.load(new_cookie).new
    assert one.revoke(old_handle) is False  # a tombstone whose successor is gone: nothing alive
    assert one.sessions_of("bob") == []


# -- "log out everywhere" misses a session ----------------------------------------------------


def test_revoke_user_racing_a_login_leaves_the_new_session_listed(
    replicas: Callable[[], SessionStore],
) -> None:
    """Fixed by revoke_user removing only the entries of sessions it ended (not the whole index)."""
    one, two = replicas(), replicas()
    first = login(one, "carol", n=1)
    everywhere = Stepper(two, admin.revoke_user(two.keys, "carol", two._core.now_ms()))
    everywhere.trip()  # it has read the index
    second = login(one, "carol", n=2)  # a login on another device meanwhile
    assert everywhere.finish() == 1
    assert one.load(first).new
    listed = [info.handle for info in one.sessions_of("carol")]
    assert listed == [one.load(second).handle]  # still listed...
    assert two.revoke_user("carol") == 1  # ...so a second "log out everywhere" ends it
    assert one.load(second).new


def test_revoke_user_racing_a_regenerate_ends_the_successor(replicas: Callable[[], SessionStore]) -> None:
    one, two = replicas(), replicas()
    cookie = login(one, "dave", n=1)
    everywhere = Stepper(two, admin.revoke_user(two.keys, "dave", two._core.now_ms()))
    everywhere.trip()  # it has read the index: the old handle
    session = one.load(cookie)
    session.regenerate()
    new_cookie = saved_cookie(one.save(session))
    assert everywhere.finish() == 1
    assert one.load(new_cookie).new


# -- a 503 hides a half-applied save ------------------------------------------------------------


class FailingClient:
    """A client whose next round trip applies only its first ``applied`` operations,
    then fails as a lost connection would (the state machine cuts batches the same way)."""

    #: No pool to reach past this wrapper: every round trip goes through run().
    connection_pool = None

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.applied: int | None = None

    def pipeline(self, transaction: bool = True) -> Any:
        return _FailingPipeline(self, self.inner.pipeline(transaction=transaction))

    def execute_command(self, *args: Any, **options: Any) -> Any:
        return self.run([(args, options)])[0]

    def run(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        applied, self.applied = self.applied, None
        if applied is None:
            return [self.inner.execute_command(*args, **options) for args, options in commands]
        for args, options in commands[:applied]:
            self.inner.execute_command(*args, **options)
        raise redis.ConnectionError("connection lost")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _FailingPipeline:
    def __init__(self, client: FailingClient, inner: Any) -> None:
        self.client = client
        self.commands: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def execute_command(self, *args: Any, **options: Any) -> None:
        self.commands.append((args, options))

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        return self.client.run(self.commands)


@pytest.mark.parametrize("applied", [0, 1])
def test_a_login_that_fails_halfway_leaves_the_session_as_it_was(
    backend: Backend, clock: FakeClock, applied: int
) -> None:
    """Fixed by ordering: the successor first (its own round trip), then the old sid retires."""
    load_scripts(backend.sync_client())
    client = FailingClient(backend.sync_client())
    store = SessionStore(
        SessionConfig(secret_key=SECRET, redis=client, key_prefix=backend.prefix), clock=clock
    )
    cookie = login(store, cart=["apple"])
    session = store.load(cookie)
    session.regenerate()
    session.user_id = "erin"
    step = Stepper(store, store._core.save(session))
    step.trip()  # the successor exists
    client.applied = applied  # the next round trip (index entry, then retire) fails
    with pytest.raises(StoreUnavailableError):
        step.trip()
    again = store.load(cookie)
    assert dict(again) == {"cart": ["apple"]}  # as before: not lost
    assert again.user_id is None


def test_a_link_that_fails_halfway_is_never_unlisted(backend: Backend, clock: FakeClock) -> None:
    """Fixed by writing the index entry, in a round trip of its own, before the link."""
    load_scripts(backend.sync_client())
    client = FailingClient(backend.sync_client())
    store = SessionStore(
        SessionConfig(secret_key=SECRET, redis=client, key_prefix=backend.prefix), clock=clock
    )
    cookie = login(store, n=1)
    session = store.load(cookie)
    session.user_id = "fay"
    step = Stepper(store, store._core.save(session))
    step.trip()  # the index entry
    client.applied = 1  # the link applies, and the answer is lost
    with pytest.raises(StoreUnavailableError):
        step.trip()
    assert store.load(cookie).user_id == "fay"
    assert [info.handle for info in store.sessions_of("fay")] == [store.load(cookie).handle]
