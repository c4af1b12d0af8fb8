"""The store's promises under any interleaving of replicas and any half-applied batch.

A Hypothesis state machine plays several browsers (cookie jars) against two
replicas (two stores, each with its own client, on one Redis): requests load
a session, change keys, log in (``user_id``, ``regenerate()``), log out
(``destroy()``) and save, one round trip at a time, interleaved in any order
with each other, with admin steps (``revoke``, ``revoke_user``,
``sessions_of``, ``count``), and with time passing (idle and absolute expiry).
Any round trip may fail halfway: only part of its operations apply (a prefix
on one server; any subset of the nodes it touches on a Cluster), then the step
raises ``StoreUnavailableError``.

A reference model records what each client was told. After every step, the
real Redis is held to it:

- an acknowledged update is never lost, unless its session ended after it;
  a regenerate carries it into the successor, or fails and leaves it where it was;
- nothing that ended is readable again: not its old sids, not a successor of a
  lineage that was destroyed or revoked;
- every live session linked to a user is in the user's index, with an entry
  that outlives it; ``revoke_user()`` ends every session of the user that was
  live when it began (unless linked to another user meanwhile);
- every key has a TTL, a session's never past its idle or absolute deadline;
- a save that raised left its session as before or as after, never lost.

It runs twice per backend: plain, and with encryption at rest (every value
in Redis must be sealed, and is opened for its session and key to be checked).

Time is the stores' clock, moved by the machine; Redis's own expiry is replayed
from the deadlines Redis holds (keys whose deadline passed are deleted), so
the machine needs no sleeping. ``HYPOTHESIS_PROFILE=soak pytest tests/test_model.py``
runs a long search; the default profile is CI's.
"""

from __future__ import annotations

import base64
import itertools
import os
import random
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from sharedsession import ExpireCookie, Session, SessionConfig, SessionStore, SetCookie
from sharedsession._aead import AesGcm
from sharedsession._core import admin, codec, plan
from sharedsession._core import keys as k
from sharedsession._core.expiry import Expiry
from sharedsession._core.record import State
from sharedsession._core.sealing import MARKER, Sealer
from sharedsession._redis import Call
from tests.support import SECRET, Backend, FakeClock, load_scripts, signer

IDLE_S = 100
ABSOLUTE_S = 450
USERS = ("alice", "bob")
APP_KEYS = ("a", "b", "c")
REPLICAS = 2
AGENTS = 3
MAX_IN_FLIGHT = 4
TOUCH_MS = IDLE_S * 100  # the default touch interval: a tenth of the idle timeout
ENCRYPTION_KEY = bytes(range(32))

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("MODEL_EXAMPLES", "75")),
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "soak",
    max_examples=5000,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Exchange = Generator[list[Call], list[object], Any]

#: Most round trips succeed; one in four fails halfway (the seed picks what applied).
FAULTS = st.one_of(st.none(), st.none(), st.none(), st.integers(0, 2**16))

#: What a view does with its session; setting keys and logging in most often.
EDITS = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(APP_KEYS)),
    st.tuples(st.just("set"), st.sampled_from(APP_KEYS)),
    st.tuples(st.just("del"), st.sampled_from(APP_KEYS)),
    st.tuples(st.just("user"), st.sampled_from((*USERS, None))),
    st.tuples(st.just("user"), st.sampled_from(USERS)),
    st.tuples(st.just("regenerate"), st.none()),
    st.tuples(st.just("destroy"), st.none()),
)


@dataclass
class Lineage:
    """One session as the clients know it, through its regenerations."""

    lid: int
    handle: str
    data: dict[str, Any]
    user: str | None
    created_ms: int
    #: The last use known to have slid its TTL; and the last one that may have
    #: (a save that failed), for the upper bound of its deadline.
    last_use_ms: int
    maybe_used_ms: int = 0
    handles: list[str] = field(default_factory=list)
    alive: bool = True
    #: Its current handle's cookie reached a client (not so after a regenerate
    #: whose answer was lost: the client kept the old cookie).
    reachable: bool = True

    def __repr__(self) -> str:
        state = "alive" if self.alive else "ended"
        return f"<L{self.lid} {state} {self.handle[:6]} user={self.user} {self.data}>"


@dataclass
class Request:
    rid: int
    replica: int
    agent: int
    session: Session
    lineage: Lineage | None  # what it loaded
    handle: str | None
    loaded_ms: int
    snapshot: dict[str, bytes]
    user_before: str | None
    exchange: Exchange | None = None
    calls: list[Call] | None = None
    ops: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"<R{self.rid} agent={self.agent} replica={self.replica} {self.ops} of {self.lineage}>"


@dataclass
class AdminOp:
    oid: int
    kind: str
    target: str
    exchange: Exchange
    calls: list[Call] | None
    #: revoke_user: the lineages linked to the user when it began, and those
    #: linked to someone else at some point since (exempt).
    owed: list[Lineage] = field(default_factory=list)
    relinked: set[int] = field(default_factory=set)


class Replicas(RuleBasedStateMachine):
    def __init__(self, backend: Backend, variant: str = "plain") -> None:
        super().__init__()
        self.backend = backend
        #: With the local cache on (the real server only), or encryption at rest.
        self.cached = variant == "cached"
        # Encryption at rest: the replicas seal every value; what Redis holds is opened to be checked.
        self.sealer = Sealer([ENCRYPTION_KEY], AesGcm) if variant == "encrypted" else None
        self.cluster = backend.name == "cluster"
        # A whole second, an hour ahead: cookie ages and renewals (whole seconds) fall the same way
        # in every replay, and Redis never expires a key by its own clock before the model does.
        self.clock = FakeClock(float(int(time.time()) + 3600))
        # Everything a replay could see differently is fixed: the key prefix (on Cluster it
        # decides the slots, so which nodes a cut-short batch reaches) and the session ids
        # (their order breaks ties in the user index, so which sessions a cut-short
        # revocation reaches). Machines run one after another; each starts on a clean prefix.
        self.prefix = f"{backend.prefix}m:"
        self.raw = backend.sync_client()
        self.backend.delete(self.raw, self.prefix)
        ids = random.Random(0)
        self.real_new_sid = vars(plan)["new_sid"]
        vars(plan)["new_sid"] = lambda: base64.urlsafe_b64encode(ids.randbytes(32)).rstrip(b"=").decode()
        load_scripts(self.raw)
        self.clients = [backend.sync_client() for _ in range(REPLICAS)]
        self.stores = [SessionStore(self.config(client), clock=self.clock) for client in self.clients]
        for store in self.stores:
            if store._cache is not None:
                # The listener's heartbeat on a clock that stands still: it is trusted whatever
                # the machine's pace, so a run replays exactly (Hypothesis shrinks by replaying).
                store._cache.listener._clock = FakeClock()
                store._cache.mark()  # the listener is up before anything happens
        self.keyspace = self.stores[0].keys
        self.signer = signer(self.stores[0].config, self.clock)
        self.expiry = Expiry.of(IDLE_S, ABSOLUTE_S)
        self.lineages: list[Lineage] = []
        self.jars: list[str | None] = [None] * AGENTS
        self.requests: dict[int, Request] = {}
        self.admin_ops: dict[int, AdminOp] = {}
        self.ids = itertools.count(1)

    def config(self, client: Any) -> SessionConfig:
        return SessionConfig(
            secret_key=SECRET,
            key_prefix=self.prefix,
            idle_timeout=IDLE_S,
            absolute_timeout=ABSOLUTE_S,
            redis=client,
            local_cache=100 if self.cached else 0,
            encryption_keys=[ENCRYPTION_KEY] if self.sealer else [],
        )

    def teardown(self) -> None:
        vars(plan)["new_sid"] = self.real_new_sid
        for store in self.stores:
            store.close()
        self.backend.delete(self.raw, self.prefix)
        for client in (*self.clients, self.raw):
            self.backend.release(client)

    # -- helpers ---------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def lineage_of(self, handle: str | None) -> Lineage | None:
        return next((lin for lin in self.lineages if lin.alive and lin.handle == handle), None)

    def handle_of_cookie(self, cookie: str | None) -> tuple[str | None, bool]:
        """The handle a cookie names, and whether it is young enough to be read at all."""
        if not cookie:
            return None, False
        parsed = self.signer.unsign(cookie, 10**9)
        assert parsed is not None
        sid, issued_s = parsed
        fresh = int(self.clock()) - issued_s <= self.expiry.max_cookie_age_seconds()
        return k.handle_of(sid), fresh

    def stored(self, handle: str) -> dict[str, str]:
        fields = {
            (f.decode() if isinstance(f, bytes) else f): (v.decode() if isinstance(v, bytes) else v)
            for f, v in self.raw.hgetall(self.keyspace.session(handle)).items()
        }
        if self.sealer is not None:  # every value sealed, for its session and key: opened here
            texts = {key: text for f, text in fields.items() if (key := k.key_of(f)) is not None}
            assert all(text.startswith(MARKER) for text in texts.values()), f"{handle}: not sealed: {texts}"
            opened = self.sealer.open_texts(handle, texts)
            fields.update({k.field_of(key): text for key, text in opened.items()})
        return fields

    def deadline_ms(self, key: str) -> int | None:
        """When Redis will expire ``key`` (ms since the epoch), None if it has no TTL, -1 if gone."""
        deadline = int(self.raw.execute_command("PEXPIRETIME", key))  # Redis 7; exact, unlike PTTL
        if deadline == -2:
            return -1
        return None if deadline == -1 else deadline

    def deliver(self, agent: int, cookie: object) -> None:
        if isinstance(cookie, SetCookie):
            self.jars[agent] = cookie.value
        elif isinstance(cookie, ExpireCookie):
            self.jars[agent] = None

    def observe(self, lineage: Lineage) -> str:
        """What Redis holds at a lineage's current handle: "live", "moved:<handle>" or "gone"."""
        fields = self.stored(lineage.handle)
        if k.VERSION in fields:
            return "live"
        if k.MOVED in fields:
            return "moved:" + fields[k.MOVED]
        return "gone"

    def end(self, lineage: Lineage) -> None:
        lineage.alive = False

    # -- rules: requests -------------------------------------------------------------

    @initialize(users=st.lists(st.sampled_from((*USERS, None)), min_size=AGENTS, max_size=AGENTS))
    def agents_have_sessions(self, users: list[str | None]) -> None:
        """Every agent starts with a session of two keys, some logged in."""
        for agent, user in enumerate(users):
            edits = [("set", "a"), ("set", "b"), ("user", user)]
            self.request(agent % REPLICAS, agent, edits)
            (request,) = self.requests.values()
            while request.rid in self.requests:
                self.save_trip(0, None)

    @precondition(lambda self: len(self.requests) < MAX_IN_FLIGHT)
    @rule(
        replica=st.integers(0, REPLICAS - 1),
        agent=st.integers(0, AGENTS - 1),
        edits=st.lists(EDITS, max_size=4),
    )
    def request(self, replica: int, agent: int, edits: list[tuple[str, str | None]]) -> None:
        """A request loads the session its agent's cookie names, and the view changes it (or not)."""
        cookie = self.jars[agent]
        handle, fresh = self.handle_of_cookie(cookie)
        expected = self.lineage_of(handle) if fresh else None
        session = self.stores[replica].load(cookie)
        if expected is None:
            assert session.new, f"loaded {session!r} where no live session is ({handle})"
            assert dict(session) == {}
        else:
            assert session.state is State.LOADED, f"{expected} did not load"
            assert dict(session) == expected.data, f"{expected} loaded as {session!r}"
            assert session.user_id == expected.user
            expected.last_use_ms = self.now_ms()
        record = session._record
        rid = next(self.ids)
        request = Request(
            rid=rid,
            replica=replica,
            agent=agent,
            session=session,
            lineage=expected,
            handle=handle if expected else None,
            loaded_ms=self.now_ms(),
            snapshot=dict(record.fields) if record else {},
            user_before=session.user_id,
        )
        self.requests[rid] = request
        for what, arg in edits:
            self.edit(request, what, arg)

    def edit(self, request: Request, what: str, arg: str | None) -> None:
        session = request.session
        if what == "set":
            assert arg is not None
            session[arg] = next(self.ids)
        elif what == "del":
            session.pop(arg or "", None)
        elif what == "user":
            session.user_id = arg
        elif what == "regenerate":
            session.regenerate()
        else:
            session.destroy()
        request.ops.append(f"{what} {arg}")

    @precondition(lambda self: bool(self.requests))
    @rule(index=st.integers(0, 100))
    def abandon(self, index: int) -> None:
        """The view crashed: nothing is saved."""
        requests = [r for r in self.requests.values() if r.exchange is None]
        if requests:
            del self.requests[requests[index % len(requests)].rid]

    @precondition(lambda self: bool(self.requests))
    @rule(index=st.integers(0, 100), fault=FAULTS)
    def save_trip(self, index: int, fault: int | None) -> None:
        """One round trip of a request's save (the first one starts it)."""
        request = list(self.requests.values())[index % len(self.requests)]
        store = self.stores[request.replica]
        if request.exchange is None:
            request.exchange = store._runner._exchange(store._core.save(request.session))
            try:
                request.calls = request.exchange.send(None)  # type: ignore[arg-type]
            except StopIteration as done:
                self.saved(request, done.value)
                return
        assert request.calls is not None
        if fault is not None:
            self.apply_part(request.calls, fault)
            del self.requests[request.rid]
            self.save_failed(request)
            return
        raw = store._runner._send(request.calls)
        try:
            request.calls = request.exchange.send(raw)
        except StopIteration as done:
            self.saved(request, done.value)
            return
        self.settle(request)

    def settle(self, request: Request) -> None:
        """After a round trip of a save that goes on: what it committed already counts."""
        lineage = request.lineage
        if lineage is None or not lineage.alive:
            return
        seen = self.observe(lineage)
        if seen == "live":
            return
        assert "destroy None" in request.ops, f"{lineage} is {seen} in the midst of {request}"
        self.end(lineage)  # a logout: the session ended at its END, before the index was tidied

    # -- what a save's outcome means ------------------------------------------------

    def changes(self, request: Request) -> tuple[dict[str, Any], list[str]]:
        session, before = request.session, request.snapshot
        changed = {
            key: value for key, value in dict(session).items() if before.get(key) != codec.encode(value)
        }
        return changed, [key for key in before if key not in session]

    def merged(self, lineage: Lineage, request: Request) -> tuple[dict[str, Any], str | None]:
        changed, removed = self.changes(request)
        data = {key: value for key, value in lineage.data.items() if key not in removed}
        data.update(changed)
        user = request.session.user_id if request.session.user_id != request.user_before else lineage.user
        return data, user

    def saved(self, request: Request, result: Any) -> None:
        self.requests.pop(request.rid, None)
        lineage = request.lineage
        outcome = result.outcome
        now = self.now_ms()
        current = lineage is not None and lineage.alive and lineage.handle == request.handle
        if outcome in ("updated", "renewed") and lineage is not None and self.wrote(request, outcome):
            assert current, f"{outcome} for {request}, whose session had ended or moved"
            self.set_data(lineage, *self.merged(lineage, request))
            lineage.last_use_ms = now
        elif outcome == "regenerated":
            assert current, f"regenerated {request}, whose session had ended or moved"
            assert lineage is not None
            self.set_data(lineage, *self.merged(lineage, request))
            lineage.handle = str(request.session.handle)
            lineage.handles.append(lineage.handle)
            lineage.last_use_ms = now
            lineage.reachable = True
        elif outcome == "gone":
            assert not current, f"{request} was refused, but its session is live and current"
        elif outcome in ("destroyed", "created") and request.session.state is not State.REGENERATED:
            if "destroy None" in request.ops and lineage is not None and lineage.alive:
                self.destroyed(request, lineage)
            if outcome == "created":
                handle = str(request.session.handle)
                self.lineages.append(
                    Lineage(
                        lid=next(self.ids),
                        handle=handle,
                        data=dict(request.session),
                        user=request.session.user_id,
                        created_ms=now,
                        last_use_ms=now,
                        handles=[handle],
                    )
                )
        self.deliver(request.agent, result.cookie)

    def wrote(self, request: Request, outcome: str) -> bool:
        """Whether a save that ended in ``outcome`` wrote to its session (UPDATE)."""
        changed, removed = self.changes(request)
        relinked = request.session.user_id != request.user_before
        renewed_link = outcome == "renewed" and request.session.user_id is not None
        return outcome == "updated" or bool(changed or removed) or relinked or renewed_link

    def set_data(self, lineage: Lineage, data: dict[str, Any], user: str | None) -> None:
        if user != lineage.user:
            for op in self.admin_ops.values():
                if op.kind == "revoke_user" and user != op.target:
                    op.relinked.add(lineage.lid)
        lineage.data, lineage.user = data, user

    def destroyed(self, request: Request, lineage: Lineage) -> None:
        """A logout of ``lineage`` (loaded by ``request``) was acknowledged."""
        # A request that ran longer than an idle period, its session regenerated meanwhile:
        # the tombstone leading to the successor may have expired (README).
        slow = request.handle != lineage.handle and self.now_ms() > request.loaded_ms + IDLE_S * 1000
        if not (slow and self.observe(lineage) == "live"):
            self.end(lineage)

    def save_failed(self, request: Request) -> None:
        """The save raised: its session must be as before, or as after."""
        lineage = request.lineage
        if lineage is None or not lineage.alive:
            return  # a new session that never reached its client, or one that had ended
        seen = self.observe(lineage)
        destroying = "destroy None" in request.ops
        if seen == "live":
            stored = self.stored(lineage.handle)
            after, after_user = self.merged(lineage, request)
            now_data = {key: codec.decode(v) for f, v in stored.items() if (key := k.key_of(f)) is not None}
            now_user = stored.get(k.USER)
            lineage.maybe_used_ms = self.now_ms()  # an update, had it applied, slid the TTL
            if (now_data, now_user) == (lineage.data, lineage.user):
                return  # as before
            assert request.session.state is State.LOADED, f"{lineage} changed by failed {request}: {now_data}"
            assert lineage.handle == request.handle, f"{lineage} changed by stale {request}: {now_data}"
            assert (now_data, now_user) == (after, after_user), f"{request} half-applied: {now_data}"
            self.set_data(lineage, after, after_user)
            lineage.last_use_ms = self.now_ms()
        elif seen.startswith("moved:"):
            assert request.session.state is State.REGENERATED, f"{lineage} moved by failed {request}"
            assert lineage.handle == request.handle, f"{lineage} moved by stale {request}"
            # As after: the successor holds everything, but its cookie never reached the client.
            self.set_data(lineage, *self.merged(lineage, request))
            lineage.last_use_ms = self.now_ms()
            lineage.handle = seen.partition(":")[2]
            lineage.handles.append(lineage.handle)
            lineage.reachable = False
        else:
            assert destroying, f"{lineage} lost by failed {request}"
            self.end(lineage)

    # -- faults ------------------------------------------------------------------------

    def apply_part(self, calls: list[Call], seed: int) -> None:
        """Apply part of a round trip, as a failing Redis might have, then "fail"."""
        if self.cluster:
            groups: dict[str, list[Call]] = {}
            for call in calls:
                groups.setdefault(self.raw.get_node_from_key(_key(call)).name, []).append(call)
            chosen = [call for i, group in enumerate(groups.values()) if seed >> i & 1 for call in group]
        else:
            chosen = calls[: seed % (len(calls) + 1)]
        for args, _ in chosen:
            self.raw.execute_command(*args)

    # -- rules: admin ------------------------------------------------------------------

    def handles(self) -> list[str]:
        return [handle for lineage in self.lineages for handle in lineage.handles]

    @precondition(lambda self: not self.admin_ops and bool(self.lineages))
    @rule(
        kind=st.sampled_from(("revoke", "revoke_user")),
        index=st.integers(0, 1000),
        user=st.sampled_from(USERS),
        replica=st.integers(0, REPLICAS - 1),
    )
    def admin_starts(self, kind: str, index: int, user: str, replica: int) -> None:
        """An admin revokes one session (any handle it ever had), or logs a user out everywhere."""
        store = self.stores[replica]
        if kind == "revoke":
            handles = self.handles()
            handle = handles[index % len(handles)]
            self.start_admin("revoke", handle, store._runner._exchange(admin.revoke(store.keys, handle)))
            return
        steps = admin.revoke_user(store.keys, user, self.now_ms())
        op = self.start_admin("revoke_user", user, store._runner._exchange(steps))
        if op is not None:
            # Sessions a client can reach; one whose successor's cookie was lost is nobody's.
            op.owed = [lin for lin in self.lineages if lin.alive and lin.reachable and lin.user == user]

    def start_admin(self, kind: str, target: str, exchange: Exchange) -> AdminOp | None:
        try:
            calls = exchange.send(None)  # type: ignore[arg-type]
        except StopIteration:
            return None
        oid = next(self.ids)
        op = AdminOp(oid, kind, target, exchange, calls)
        self.admin_ops[oid] = op
        return op

    @precondition(lambda self: bool(self.admin_ops))
    @rule(index=st.integers(0, 100), fault=FAULTS, replica=st.integers(0, 1))
    def admin_trip(self, index: int, fault: int | None, replica: int) -> None:
        op = list(self.admin_ops.values())[index % len(self.admin_ops)]
        assert op.calls is not None
        others = {lin.lid for lin in self.lineages if lin.alive and not self.touchable(op, lin)}
        if fault is not None:
            self.apply_part(op.calls, fault)
            del self.admin_ops[op.oid]
            self.admin_settled(op, others, done=False)
            return
        raw = self.stores[replica]._runner._send(op.calls)
        try:
            op.calls = op.exchange.send(raw)
        except StopIteration:
            del self.admin_ops[op.oid]
            self.admin_settled(op, others, done=True)
            return
        self.admin_settled(op, others, done=False)

    def touchable(self, op: AdminOp, lineage: Lineage) -> bool:
        if op.kind == "revoke":
            return op.target in lineage.handles
        return lineage.user == op.target or lineage in op.owed

    def admin_settled(self, op: AdminOp, others: set[int], *, done: bool) -> None:
        """After a round trip of an admin step: who ended is who it may end."""
        for lineage in self.lineages:
            if not lineage.alive:
                continue
            seen = self.observe(lineage)
            if seen == "live":
                continue
            assert lineage.lid not in others, f"{op.kind} {op.target} ended {lineage}"
            assert not seen.startswith("moved:"), f"{lineage} moved by {op.kind}"
            self.end(lineage)
        if done and op.kind == "revoke_user":
            for lineage in op.owed:
                if lineage.alive and lineage.lid not in op.relinked:
                    pytest.fail(f"revoke_user({op.target}) left {lineage} alive")

    # -- rules: reads ------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS), replica=st.integers(0, REPLICAS - 1))
    def listings(self, user: str, replica: int) -> None:
        """sessions_of() lists every live session of the user; count() counts live sessions."""
        store = self.stores[replica]
        listed = {info.handle for info in store.sessions_of(user)}
        for lineage in self.lineages:
            if lineage.alive and lineage.reachable and lineage.user == user:
                assert lineage.handle in listed, f"{lineage} not listed for {user}"
        for handle in listed:
            stored = self.stored(handle)
            assert k.VERSION in stored, f"listed {handle}, which is not a live session"
            assert stored.get(k.USER) == user
        live = [key for key in self.sessions_keys() if self.raw.hexists(key, k.VERSION)]
        assert store.count() == len(live)

    def sessions_keys(self) -> list[bytes]:
        return self.backend.keys(self.raw, self.keyspace.session_pattern)

    # -- rules: time ---------------------------------------------------------------------

    @precondition(lambda self: all(r.exchange is None for r in self.requests.values()) and not self.admin_ops)
    @rule(seconds=st.sampled_from((1, 10, 30, 60, 99, 101, 150)))
    def time_passes(self, seconds: int) -> None:
        """The clock moves on; Redis expires what its deadlines say (replayed, no sleeping)."""
        self.clock.advance(seconds)
        now = self.now_ms()
        for key in self.backend.keys(self.raw, self.prefix + "*"):
            deadline = self.deadline_ms(key.decode())
            if deadline is not None and 0 <= deadline <= now:
                self.raw.delete(key)
        for lineage in self.lineages:
            if lineage.alive and self.observe(lineage) != "live":
                # With the local cache, a use slides the TTL only once it is a touch interval late.
                idle = lineage.last_use_ms + IDLE_S * 1000 - (TOUCH_MS if self.cached else 0)
                deadline = min(idle, lineage.created_ms + ABSOLUTE_S * 1000)
                # (an index horizon may end a linked session earlier, if no request renewed it)
                assert deadline <= now or lineage.user is not None, f"{lineage} expired early"
                self.end(lineage)

    # -- what must always hold ---------------------------------------------------------

    @invariant()
    def live_sessions_hold_what_clients_were_told(self) -> None:
        for lineage in self.lineages:
            if not lineage.alive:
                continue
            stored = self.stored(lineage.handle)
            assert k.VERSION in stored, f"{lineage}: lost ({stored})"
            data = {key: codec.decode(v) for f, v in stored.items() if (key := k.key_of(f)) is not None}
            assert data == lineage.data, f"{lineage}: holds {data}"
            assert stored.get(k.USER) == lineage.user, f"{lineage}: linked to {stored.get(k.USER)}"

    @invariant()
    def nothing_ended_comes_back(self) -> None:
        for lineage in self.lineages:
            if lineage.alive:
                continue
            for handle in lineage.handles:
                assert k.VERSION not in self.stored(handle), f"{lineage} lives again at {handle}"

    @invariant()
    def linked_sessions_are_listed_for_as_long_as_they_live(self) -> None:
        for lineage in self.lineages:
            if not (lineage.alive and lineage.reachable and lineage.user):
                continue
            index = self.keyspace.user(lineage.user)
            score = self.raw.zscore(index, lineage.handle)
            assert score is not None, f"{lineage} is not in {index}"
            expires = self.deadline_ms(self.keyspace.session(lineage.handle))
            assert expires is not None
            assert expires <= score + 1, f"{lineage} outlives its index entry"
            index_expires = self.deadline_ms(index)
            assert index_expires is not None
            assert index_expires + 1 >= score

    @invariant()
    def every_key_expires_and_no_session_past_its_deadlines(self) -> None:
        for raw_key in self.backend.keys(self.raw, self.prefix + "*"):
            key = raw_key.decode()
            deadline = self.deadline_ms(key)
            assert deadline is not None, f"{key} has no TTL"
            if not key.startswith(self.keyspace.prefix + "s:"):
                continue
            handle = key.rpartition(":")[2]
            lineage = next((lin for lin in self.lineages if lin.alive and lin.handle == handle), None)
            fields = self.stored(handle)
            if k.CREATED in fields:
                assert deadline <= int(fields[k.CREATED]) + ABSOLUTE_S * 1000 + 1, (
                    f"{key} past its absolute deadline"
                )
            if lineage is not None:
                assert deadline <= max(lineage.last_use_ms, lineage.maybe_used_ms) + IDLE_S * 1000 + 1, (
                    f"{lineage} past its idle deadline"
                )


def _key(call: Call) -> str:
    args = call[0]
    return str(args[3] if str(args[0]).upper() in ("EVALSHA", "EVAL") else args[1])


@pytest.mark.parametrize("variant", ["plain", "cached", "encrypted"])
def test_replicas_keep_their_promises_under_any_interleaving_and_fault(
    backend: Backend, variant: str
) -> None:
    # (cached: with the real server only; conftest deselects the others)
    run_state_machine_as_test(
        lambda: Replicas(backend, variant),  # type: ignore[arg-type]  # a factory works too
        settings=settings(settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))),
    )
