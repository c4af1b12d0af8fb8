"""SessionCore: decides what to read and write; never talks to Redis.

Each request step is a generator (sans-I/O, see ``ops.py``): it yields
batches of operations, receives their replies, and returns its result. A
batch is one round trip. The sync and asyncio runners in ``_redis.py`` drive
the same generators, so the logic exists once::

    session = runner.drive(core.load(cookie_value, client))   # 0 or 1 round trip
    result = runner.drive(core.save(session))                 # 0, 1, rarely 2

Every operation names exactly one key (see ``keys.py`` on Redis Cluster).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from sharedsession._core import binding
from sharedsession._core import keys as k
from sharedsession._core.admin import end_op, end_sessions, unlist
from sharedsession._core.cache import Cached, SessionCache
from sharedsession._core.config import SessionConfig
from sharedsession._core.errors import SessionLimitError, StoreUnavailableError
from sharedsession._core.expiry import Expiry
from sharedsession._core.http import CookieAction, ExpireCookie, SetCookie
from sharedsession._core.limits import join_index
from sharedsession._core.ops import Arg, Batch, Command, Script, Steps
from sharedsession._core.record import UNBOUND, Client, Record, State
from sharedsession._core.scripts import CREATE, INDEX_ADD, LOAD, READ, RETIRE, TOUCH, UPDATE
from sharedsession._core.sealing import CipherFactory, UnopenedValueError, sealer_of
from sharedsession._core.session import Session
from sharedsession._core.signing import CookieSigner, new_sid

log = logging.getLogger("sharedsession")

Outcome = Literal["unchanged", "created", "updated", "renewed", "regenerated", "destroyed", "gone"]

#: How many times a regenerate rebuilds its successor when other replicas keep
#: writing to the session meanwhile, before it gives up (StoreUnavailableError).
REGENERATE_ATTEMPTS = 8


@dataclass(frozen=True)
class SaveResult:
    """What a save did, and what the adapter must do with the cookie (None: nothing)."""

    outcome: Outcome
    cookie: CookieAction | None = None


# The results without a cookie action, made once (most saves change nothing).
UNCHANGED = SaveResult("unchanged")
UPDATED = SaveResult("updated")
GONE = SaveResult("gone")


class SessionCore:
    """All the decisions of loading and saving sessions, for one SessionConfig."""

    def __init__(
        self,
        config: SessionConfig,
        *,
        clock: Callable[[], float] = time.time,
        cipher: CipherFactory | None = None,
    ) -> None:
        self.config = config
        # Encryption at rest (sealing.py): None when values are stored plain.
        self.sealer = sealer_of(config.sealing_keys, cipher)
        self.keys = k.KeySpace(config.key_prefix)
        self.expiry = Expiry.of(config.idle_timeout, config.absolute_timeout)
        self.signer = CookieSigner(config.secret_keys, clock)
        self._clock = clock
        self._max_cookie_age = self.expiry.max_cookie_age_seconds()
        self._touch_ms = round(config.touch_seconds * 1000)

    def now(self) -> float:
        """The core's clock, in seconds since the epoch."""
        return self._clock()

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- the client -------------------------------------------------------

    def client(
        self,
        peer: str | None = None,
        forwarded_for: str | Sequence[str] | None = None,
        user_agent: str | None = None,
    ) -> Client:
        """Resolve the client of a request: its address (trusted proxies only) and fingerprint.

        :data:`UNBOUND` when binding is off: nothing about the client is used then.
        """
        config = self.config
        if not config.binds:
            return UNBOUND
        ip = binding.client_ip(peer, forwarded_for, config.trusted_networks)
        fp = binding.fingerprint(
            ip, user_agent, bind_ip=config.bind_ip, bind_user_agent=config.bind_user_agent
        )
        return Client(ip, user_agent, fp)

    # -- load -------------------------------------------------------------

    def load(
        self,
        cookie_value: str | None,
        client: Client,
        *,
        into: Session | None = None,
        cache: SessionCache | None = None,
    ) -> Steps[Session]:
        """Load the session a cookie names. No cookie, or one not ours: no round trip.

        ``into``: an empty session object to fill instead of making a new one
        (a lazy adapter session, loaded on first use). ``cache``: the process's
        local cache (``SessionConfig.local_cache``): a session found there costs
        no round trip, except the TTL's slide now and then (``touch_interval``).
        """
        parsed = self.signer.unsign(cookie_value, self._max_cookie_age) if cookie_value else None
        if parsed is None:
            if cookie_value:
                log.debug("session cookie refused: bad signature, malformed or too old")
            return self._loaded(into, None, client, had_cookie=cookie_value is not None)
        sid, issued_s = parsed
        handle = k.handle_of(sid)
        key = self.keys.session(handle)
        now = self.now_ms()
        mark = cache.mark() if cache is not None else None
        if cache is None or mark is None:  # no cache, or it is off until its listener is back
            (reply,) = yield (Script(LOAD, key, (now, self.expiry.idle_ms, client.fingerprint)),)
            stored = self._parse(handle, reply, now + self.expiry.idle_ms)
        else:
            stored = cache.get(handle)
            if stored is None or stored.deadline_ms <= now:
                # A pure read (a write would invalidate what it fills), then kept
                # unless an invalidation of it arrived meanwhile.
                (reply,) = yield (Script(READ, key, (now,)),)
                stored = self._parse_read(handle, reply)
                if stored is not None:
                    cache.fill(handle, mark, stored)
            if (
                stored is not None
                and stored.fingerprint == client.fingerprint
                and self._touch_due(stored, now)
            ):
                yield (Script(TOUCH, key, (now, self.expiry.idle_ms, client.fingerprint)),)
        record = self._record(sid, handle, issued_s, stored, client)
        return self._loaded(into, record, client, had_cookie=True)

    def _touch_due(self, stored: Cached, now: int) -> bool:
        """Whether a use now must slide the TTL: it would move it by a touch interval or more."""
        return self.expiry.ttl_deadline_ms(now, stored.cap_ms) - stored.deadline_ms >= self._touch_ms

    def _loaded(
        self, into: Session | None, record: Record | None, client: Client, *, had_cookie: bool
    ) -> Session:
        max_size = self.config.max_size
        if into is None:
            return Session(max_size=max_size, record=record, client=client, had_cookie=had_cookie)
        into._fill(None, max_size=max_size, record=record, client=client, had_cookie=had_cookie)
        return into

    def _parse_read(self, handle: str, reply: object) -> Cached | None:
        """READ's reply: [the hash as JSON, when it expires (ms)]."""
        if not isinstance(reply, list) or len(reply) != 2 or not isinstance(reply[1], int):
            log.warning("session %s: the store's reply cannot be decoded; starting anew", handle)
            return None
        return self._parse(handle, reply[0], reply[1])

    def _parse(self, handle: str, reply: object, deadline_ms: int) -> Cached | None:
        """The stored session a reply holds; None if there is none of ours.

        Values stay encoded: the session decodes each on its first read.
        """
        stored = _stored(reply)
        if stored is None:
            log.warning("session %s: the store's reply cannot be decoded; starting anew", handle)
            return None
        if not stored:
            log.debug("session %s: not found (expired, destroyed or revoked)", handle)
            return None
        meta, texts = _split(stored)
        if k.VERSION not in meta:
            if k.MOVED in meta:
                log.debug("session %s: regenerated, the old sid is dead", handle)
            else:
                log.warning("session %s: stored data is not a session of ours; starting anew", handle)
            return None
        if meta[k.VERSION] != k.FORMAT_VERSION:
            log.warning("session %s: unknown format version %r; starting anew", handle, meta[k.VERSION])
            return None
        try:
            created_ms = int(meta[k.CREATED])
            cap_ms = int(meta[k.CAP]) if k.CAP in meta else None
            if self.sealer is not None:  # encryption at rest: opened here, plain in memory
                texts = self.sealer.open_texts(handle, texts)  # UnopenedValueError: a ValueError
            # Kept as stored, to tell at save which values changed (UnicodeError
            # for text that cannot be stored as it came, a ValueError too).
            fields = {key: text.encode("utf-8") for key, text in texts.items()}
        except (KeyError, ValueError) as exc:
            log.warning("session %s: stored data cannot be decoded (%s); starting anew", handle, exc)
            return None
        return Cached(
            fields=fields,
            created_ms=created_ms,
            cap_ms=cap_ms,
            user_id=meta.get(k.USER),
            fingerprint=meta.get(k.FINGERPRINT, ""),
            client_ip=meta.get(k.CLIENT_IP),
            user_agent=meta.get(k.USER_AGENT),
            revision=meta.get(k.REVISION, "0"),
            deadline_ms=deadline_ms,
        )

    def _record(
        self, sid: str, handle: str, issued_s: int, stored: Cached | None, client: Client
    ) -> Record | None:
        """The session as this request sees it; None if there is none, or it is bound to another client."""
        if stored is None:
            return None
        if stored.fingerprint != client.fingerprint:
            log.debug("session %s: client fingerprint differs (binding); starting anew", handle)
            return None
        return Record(
            sid=sid,
            handle=handle,
            created_ms=stored.created_ms,
            cap_ms=stored.cap_ms,
            user_id=stored.user_id,
            fields=stored.fields,
            fingerprint=stored.fingerprint,
            client_ip=stored.client_ip,
            user_agent=stored.user_agent,
            cookie_issued_s=issued_s,
            revision=stored.revision,
        )

    # -- save -------------------------------------------------------------
    #
    # How a save stays safe, when two replicas interleave and when Redis fails
    # halfway (a batch is not a transaction: on Cluster its operations run on
    # several nodes at once, and any of them may fail alone):
    #
    # - What changes a session clients can reach is one single-key script
    #   (UPDATE, RETIRE, END): it applies whole or not at all.
    # - A new session (created, or the successor of a regenerate) cannot be
    #   reached until its cookie goes out, which happens only once every
    #   operation of the save succeeded. Its hash and TTL are one script
    #   (CREATE); until then, what lands of it alone is an unreachable copy
    #   that expires.
    # - A user index lists every live session linked to its user: an entry is
    #   added after its session's hash exists and before the link (or a later
    #   cap) is written, in an earlier round trip; entries are removed only for
    #   sessions dead for good (admin.py). So a link never exists unlisted, and
    #   an entry never outlives the cap of the session it lists.
    # - regenerate() commits with RETIRE, sent after the successor exists and
    #   is listed; RETIRE refuses if anything was written to the old session
    #   since this request read it, and the successor is rebuilt from what is
    #   stored now, so no update another replica saved meanwhile is dropped.
    # - destroy() and revoke follow tombstones: a logout that lands on a
    #   session regenerated meanwhile ends its successor too.
    #
    # A 503 can still hide a change that was applied when Redis answered but
    # the answer was lost: an update, a logout (both harmless: as asked), or a
    # regenerate (the user, who was logging in, keeps the old cookie of a
    # session that ended, and logs in again).

    @staticmethod
    def needs_save(session: Session) -> bool:
        """False for a new session nothing was stored in: saving it would do nothing.

        Lets an adapter skip the save of most anonymous requests altogether
        (``save`` would return an "unchanged" result without any I/O).
        """
        return session._state is not State.NEW or session._modified

    def save(self, session: Session) -> Steps[SaveResult]:
        """Write what changed. Raises SessionDataError (before any I/O) for unstorable data."""
        state = session._state
        if state is State.LOADED:
            return (yield from self._update(session))
        if state is State.REGENERATED:
            return (yield from self._regenerate(session))
        fields = session._stored_fields()
        # destroy() ends the stored session (and what it was regenerated into meanwhile).
        ending = session._record.handle if state is State.DESTROYED and session._record else None
        ended: Batch = (end_op(self.keys, ending),) if ending else ()
        if not fields and session._user_id is None:
            if ending:
                replies = yield ended
                found = yield from end_sessions(self.keys, [ending], first=replies)
                yield from unlist(self.keys, found.ended)
            session._adopt(None, State.NEW)
            if ending or (state is State.DESTROYED and session._had_cookie):
                return SaveResult("destroyed", ExpireCookie())
            return UNCHANGED
        # A new session (maybe after destroy(): a message for the logged-out user).
        now = self.now_ms()
        created = self._new_record(session, fields, now, created_ms=now, like=None)
        replies = yield (*ended, self._create_op(created, now))
        if ending:
            found = yield from end_sessions(self.keys, [ending], first=replies[:1])
            yield from unlist(self.keys, found.ended)
        if replies[-1] != 1:
            # A handle of 128 random bits that exists already: never seen; refuse rather than merge.
            raise StoreUnavailableError("a new session's key exists already; not overwritten")
        if created.user_id is not None:
            yield from self._list(created, now, undo=True)
        session._adopt(created, State.LOADED)
        return SaveResult("created", self._set_cookie(created, now))

    def _update(self, session: Session) -> Steps[SaveResult]:
        record = session._record
        assert record is not None  # LOADED implies a record
        now = self.now_ms()
        fields = session._stored_fields()
        user = session._user_id
        relinked = user != record.user_id
        linked = user is not None
        renew = self.expiry.renewal_due(now, record.cookie_issued_s, record.created_ms, record.cap_ms, linked)
        sets, dels = _delta(*_changes(record.fields, fields))
        if self.sealer is not None and sets:  # encryption at rest: sealed on the way out
            sets = self.sealer.seal_pairs(record.handle, sets)
        cap = record.cap_ms
        if relinked or (renew and linked):
            horizon = self.expiry.horizon_ms(now, record.created_ms) if linked else None
            cap = self.expiry.cap_ms(record.created_ms, horizon)
            if cap is None:
                dels.append(k.CAP)
            else:
                sets += [k.CAP, cap]
            if relinked:
                if user is None:
                    dels.append(k.USER)
                else:
                    sets += [k.USER, user]
            if user is not None and cap is not None:
                # The entry, with its new horizon, before the link or cap it reflects
                # (a new link within the session limit, if there is one).
                listed = record._replace(user_id=user, cap_ms=cap)
                yield from self._list(listed, now, limited=relinked)
        if not sets and not dels:
            if not renew:
                session._modified = False
                return UNCHANGED
            session._adopt(record._replace(cookie_issued_s=now // 1000), State.LOADED)
            return SaveResult("renewed", self._set_cookie(record, now))
        key = self.keys.session(record.handle)
        (done,) = yield (Script(UPDATE, key, (now, self.expiry.idle_ms, len(sets) // 2, *sets, *dels)),)
        if done != 1:
            # Destroyed, revoked, regenerated or expired since we loaded it: never revive it.
            # (An index entry just added for it is dropped by the next listing: its session is gone.)
            log.debug("session %s: gone before this request saved; changes dropped", record.handle)
            return GONE
        issued = now // 1000 if renew else record.cookie_issued_s
        saved = record._replace(
            fields=fields, user_id=user, cap_ms=cap, cookie_issued_s=issued, revision=_next(record.revision)
        )
        session._adopt(saved, State.LOADED)
        return SaveResult("renewed", self._set_cookie(saved, now)) if renew else UPDATED

    def _regenerate(self, session: Session) -> Steps[SaveResult]:
        old = session._record
        assert old is not None  # REGENERATED implies a record
        now = self.now_ms()
        fields = session._stored_fields()
        new = self._new_record(session, fields, now, created_ms=old.created_ms, like=old)
        changed, removed = _changes(old.fields, fields)
        relinked = session._user_id != old.user_id
        replace = False
        for _ in range(REGENERATE_ATTEMPTS):
            # 1. The successor exists (unreachable: nobody has its cookie yet).
            (created,) = yield (self._create_op(new, now, replace=replace),)
            if created != 1:
                raise StoreUnavailableError("a new session's key exists already; not overwritten")
            # 2. Listed, then the commit: the old sid dies, if nothing was written to it since.
            index: Batch = ()
            if new.user_id is not None:
                if self.config.max_sessions_per_user is None:
                    index = (self._index_op(new, now),)  # sent with the commit
                else:  # listed within the limit first, in trips of its own
                    same_user = old.user_id == new.user_id
                    yield from self._list(new, now, undo=True, replaced=old.handle if same_user else None)
            # The tombstone stays an idle period (never past the absolute deadline).
            tombstone = self.expiry.ttl_deadline_ms(now, self.expiry.absolute_deadline_ms(old.created_ms))
            retire = (new.handle, old.revision, tombstone)
            replies = yield (*index, Script(RETIRE, self.keys.session(old.handle), retire))
            retired = replies[-1]
            if retired == 1:
                session._adopt(new, State.LOADED)
                return SaveResult("regenerated", self._set_cookie(new, now))
            current = _stored(retired) if retired != 0 else None
            if not current or k.VERSION not in current:
                # Destroyed, revoked, expired or regenerated by another request first: undo our copy.
                log.debug("session %s: gone before regenerate() saved; not revived", old.handle)
                yield (Command(("DEL", self.keys.session(new.handle))),)
                return GONE
            # Written meanwhile by another replica: carry what is stored now, plus our changes.
            relink = session._user_id if relinked else None
            try:
                old, new = self._rebuild(old, new, current, changed, removed, relink, now)
            except UnopenedValueError as exc:
                # Encryption at rest: what is stored now does not open, as at load: not carried on.
                log.warning("session %s: %s; regenerate() dropped", old.handle, exc)
                yield (Command(("DEL", self.keys.session(new.handle))),)
                return GONE
            replace = True
        yield (Command(("DEL", self.keys.session(new.handle))),)
        raise StoreUnavailableError(f"session {old.handle} kept changing while regenerate() saved; try again")

    def _rebuild(
        self,
        old: Record,
        new: Record,
        current: dict[str, str],
        changed: Mapping[str, bytes],
        removed: Sequence[str],
        relink: str | None,
        now: int,
    ) -> tuple[Record, Record]:
        """The old session as stored now, and the successor: what is stored now plus this request's changes.

        The same merge an UPDATE makes: this request's changed and removed keys
        win, every other key is as stored now. The user is this request's if it
        set one, else the stored one.
        """
        meta, texts = _split(current)
        if self.sealer is not None:  # encryption at rest
            texts = self.sealer.open_texts(old.handle, texts)
        stored = {key: text.encode("utf-8") for key, text in texts.items()}
        merged = {key: raw for key, raw in stored.items() if key not in removed}
        merged.update(changed)
        user = relink if relink is not None else meta.get(k.USER)
        horizon = self.expiry.horizon_ms(now, new.created_ms) if user is not None else None
        old = old._replace(fields=stored, user_id=meta.get(k.USER), revision=meta.get(k.REVISION, "0"))
        new = new._replace(fields=merged, user_id=user, cap_ms=self.expiry.cap_ms(new.created_ms, horizon))
        return old, new

    def _new_record(
        self,
        session: Session,
        fields: dict[str, bytes],
        now: int,
        *,
        created_ms: int,
        like: Record | None,
    ) -> Record:
        sid = new_sid()
        user = session._user_id
        horizon = self.expiry.horizon_ms(now, created_ms) if user is not None else None
        client = session._client
        bind_ip = self.config.bind_ip != "off"
        bind_ua = self.config.bind_user_agent
        return Record(
            sid=sid,
            handle=k.handle_of(sid),
            created_ms=created_ms,
            cap_ms=self.expiry.cap_ms(created_ms, horizon),
            user_id=user,
            fields=fields,
            fingerprint=like.fingerprint if like else client.fingerprint,
            client_ip=(like.client_ip if like else client.ip) if bind_ip else None,
            user_agent=(like.user_agent if like else client.user_agent) if bind_ua else None,
            cookie_issued_s=now // 1000,
        )

    def _create_op(self, record: Record, now: int, *, replace: bool = False) -> Script:
        """CREATE: the whole hash and its TTL, in one step."""
        pairs: list[Arg] = [k.VERSION, k.FORMAT_VERSION, k.CREATED, record.created_ms]
        optional = (
            (k.CAP, record.cap_ms),
            (k.USER, record.user_id),
            (k.FINGERPRINT, record.fingerprint or None),
            (k.CLIENT_IP, record.client_ip),
            (k.USER_AGENT, record.user_agent),
        )
        pairs += [arg for name, value in optional if value is not None for arg in (name, value)]
        values: list[Arg] = [arg for key_, raw in record.fields.items() for arg in (k.field_of(key_), raw)]
        pairs += values if self.sealer is None else self.sealer.seal_pairs(record.handle, values)
        deadline = self.expiry.ttl_deadline_ms(now, record.cap_ms)
        return Script(CREATE, self.keys.session(record.handle), (deadline, "1" if replace else "0", *pairs))

    def _list(
        self,
        record: Record,
        now: int,
        *,
        limited: bool = True,
        undo: bool = False,
        replaced: str | None = None,
    ) -> Steps[None]:
        """List a linked session in its user's index: INDEX_ADD, or within ``max_sessions_per_user``.

        ``limited``: a new link (not a renewal), held to the limit. ``undo``:
        the session was just created for this link; if the limit refuses it,
        it is deleted again (nobody has its cookie yet) before the error is raised.
        """
        limit = self.config.max_sessions_per_user
        if limit is None or not limited:
            yield (self._index_op(record, now),)
            return
        assert record.user_id is not None  # a linked session
        assert record.cap_ms is not None  # has a horizon
        steps = join_index(
            self.keys,
            record.user_id,
            record.handle,
            record.cap_ms,
            now,
            self.expiry,
            limit=limit,
            evict=self.config.on_session_limit == "evict_oldest",
            replaced=replaced,
        )
        try:
            evicted = yield from steps
        except SessionLimitError:
            if undo:
                yield (Command(("DEL", self.keys.session(record.handle))),)
            raise
        if evicted:
            log.info("user %s: over %d session(s); ended %s", record.user_id, limit, ", ".join(evicted))

    def _index_op(self, record: Record, now: int) -> Script:
        assert record.user_id is not None  # only linked sessions are indexed
        assert record.cap_ms is not None  # and they have a cap: the index horizon
        return Script(INDEX_ADD, self.keys.user(record.user_id), (now, record.handle, record.cap_ms))

    def _set_cookie(self, record: Record, now: int) -> SetCookie:
        max_age = self.expiry.cookie_max_age_seconds(now, record.created_ms)
        return SetCookie(self.signer.sign(record.sid), max_age)


def _changes(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    """The app keys whose stored bytes differ (with the new bytes), and the keys removed."""
    if after == before:  # most requests only read: one comparison
        return {}, []
    changed = {key: raw for key, raw in after.items() if before.get(key) != raw}
    return changed, [key for key in before if key not in after]


def _delta(changed: Mapping[str, bytes], removed: Sequence[str]) -> tuple[list[Arg], list[Arg]]:
    """UPDATE's arguments: field/value pairs to set, fields to delete."""
    sets: list[Arg] = [arg for key, raw in changed.items() for arg in (k.field_of(key), raw)]
    return sets, [k.field_of(key) for key in removed]


def _next(revision: str) -> str:
    return str(int(revision) + 1) if revision.isdigit() else revision


def _split(stored: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """A stored hash as (metadata field -> value, app key -> stored text)."""
    meta: dict[str, str] = {}
    texts: dict[str, str] = {}
    for name, text in stored.items():
        key = k.key_of(name)
        if key is None:
            meta[name] = text
        else:
            texts[key] = text
    return meta, texts


_JSON = json.JSONDecoder()


def _stored(reply: object) -> dict[str, str] | None:
    """Narrow LOAD's reply (a JSON object, as bytes or str) to field -> value.

    ``{}`` when there is no such hash (an empty Lua table is ``{}`` or ``[]``
    depending on the server); None when the reply is not what LOAD returns
    (text that is not UTF-8 JSON, or values that are not strings).
    """
    try:
        if isinstance(reply, bytes | bytearray):
            reply = str(reply, "utf-8")
        if not isinstance(reply, str):
            return None
        parsed = _JSON.decode(reply)
    except ValueError:  # not UTF-8, not JSON
        return None
    if parsed == []:
        return {}
    if not isinstance(parsed, dict) or not all(type(value) is str for value in parsed.values()):
        return None
    return parsed
