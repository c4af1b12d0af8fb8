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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from sharedsession._core import binding, codec
from sharedsession._core import keys as k
from sharedsession._core.config import SessionConfig
from sharedsession._core.expiry import Expiry
from sharedsession._core.http import CookieAction, ExpireCookie, SetCookie
from sharedsession._core.ops import Arg, Batch, Command, Script, Steps
from sharedsession._core.record import UNBOUND, Client, Record, State
from sharedsession._core.scripts import INDEX_ADD, LOAD, RETIRE, UPDATE
from sharedsession._core.session import Session
from sharedsession._core.signing import CookieSigner, new_sid

log = logging.getLogger("sharedsession")

Outcome = Literal["unchanged", "created", "updated", "renewed", "regenerated", "destroyed", "gone"]

# How long a regenerated sid's tombstone stays (see scripts.RETIRE).
TOMBSTONE_MS = 60_000


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

    def __init__(self, config: SessionConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.keys = k.KeySpace(config.key_prefix)
        self.expiry = Expiry.of(config.idle_timeout, config.absolute_timeout)
        self.signer = CookieSigner(config.secret_keys, clock)
        self._clock = clock
        self._max_cookie_age = self.expiry.max_cookie_age_seconds()

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
        self, cookie_value: str | None, client: Client, *, into: Session | None = None
    ) -> Steps[Session]:
        """Load the session a cookie names. No cookie, or one not ours: no round trip.

        ``into``: an empty session object to fill instead of making a new one
        (a lazy adapter session, loaded on first use).
        """
        parsed = self.signer.unsign(cookie_value, self._max_cookie_age) if cookie_value else None
        if parsed is None:
            if cookie_value:
                log.debug("session cookie refused: bad signature, malformed or too old")
            return self._loaded(into, None, None, client, had_cookie=cookie_value is not None)
        sid, issued_s = parsed
        handle = k.handle_of(sid)
        (reply,) = yield (
            Script(LOAD, self.keys.session(handle), (self.now_ms(), self.expiry.idle_ms, client.fingerprint)),
        )
        found = self._decode(sid, handle, issued_s, reply, client)
        if found is None:
            return self._loaded(into, None, None, client, had_cookie=True)
        record, data = found
        return self._loaded(into, data, record, client, had_cookie=True)

    def _loaded(
        self,
        into: Session | None,
        data: dict[str, object] | None,
        record: Record | None,
        client: Client,
        *,
        had_cookie: bool,
    ) -> Session:
        max_size = self.config.max_size
        if into is None:
            return Session(data, max_size=max_size, record=record, client=client, had_cookie=had_cookie)
        into._fill(data, max_size=max_size, record=record, client=client, had_cookie=had_cookie)
        return into

    def _decode(
        self, sid: str, handle: str, issued_s: int, reply: object, client: Client
    ) -> tuple[Record, dict[str, object]] | None:
        stored = _stored(reply)
        if stored is None:
            log.warning("session %s: the store's reply cannot be decoded; starting anew", handle)
            return None
        if not stored:
            log.debug("session %s: not found (expired, destroyed or revoked)", handle)
            return None
        meta: dict[str, str] = {}
        texts: dict[str, str] = {}
        for name, text in stored.items():
            key = k.key_of(name)
            if key is None:
                meta[name] = text
            else:
                texts[key] = text
        if k.VERSION not in meta:
            if k.MOVED in meta:
                log.debug("session %s: regenerated, the old sid is dead", handle)
            else:
                log.warning("session %s: stored data is not a session of ours; starting anew", handle)
            return None
        if meta[k.VERSION] != k.FORMAT_VERSION:
            log.warning("session %s: unknown format version %r; starting anew", handle, meta[k.VERSION])
            return None
        if meta.get(k.FINGERPRINT, "") != client.fingerprint:
            log.debug("session %s: client fingerprint differs (binding); starting anew", handle)
            return None
        try:
            created_ms = int(meta[k.CREATED])
            cap_ms = int(meta[k.CAP]) if k.CAP in meta else None
            data = {key: codec.decode(text) for key, text in texts.items()}
            # Kept as stored, to tell at save which values changed (UnicodeError
            # for text that cannot be stored as it came, a ValueError too).
            fields = {key: text.encode("utf-8") for key, text in texts.items()}
        except (KeyError, ValueError) as exc:
            log.warning("session %s: stored data cannot be decoded (%s); starting anew", handle, exc)
            return None
        record = Record(
            sid=sid,
            handle=handle,
            created_ms=created_ms,
            cap_ms=cap_ms,
            user_id=meta.get(k.USER),
            fields=fields,
            fingerprint=client.fingerprint,
            client_ip=meta.get(k.CLIENT_IP),
            user_agent=meta.get(k.USER_AGENT),
            cookie_issued_s=issued_s,
        )
        return record, data

    # -- save -------------------------------------------------------------

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
        record = session._record
        if state is State.DESTROYED and record is not None:
            drop: Batch = (Command(("DEL", self.keys.session(record.handle))),)
            if record.user_id is not None:
                drop += (Command(("ZREM", self.keys.user(record.user_id), record.handle)),)
        else:
            drop = ()
        if not fields and session._user_id is None:
            if drop:
                yield drop
            session._adopt(None, State.NEW)
            if state is State.DESTROYED and (record is not None or session._had_cookie):
                return SaveResult("destroyed", ExpireCookie())
            return UNCHANGED
        # A new session (maybe after destroy(): a message for the logged-out user).
        now = self.now_ms()
        created = self._new_record(session, fields, now, created_ms=now, like=None)
        yield drop + self._create_ops(created, now)
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
        sets: list[Arg] = []
        dels: list[Arg] = []
        # One comparison of the encodings first: most requests only read.
        if fields != record.fields:
            sets += [
                arg
                for key, raw in fields.items()
                if record.fields.get(key) != raw
                for arg in (k.field_of(key), raw)
            ]
            dels += [k.field_of(key) for key in record.fields if key not in fields]
        index: Batch = ()
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
                if record.user_id is not None:
                    index += (Command(("ZREM", self.keys.user(record.user_id), record.handle)),)
            if user is not None and cap is not None:
                index += (Script(INDEX_ADD, self.keys.user(user), (now, record.handle, cap)),)
        if not sets and not dels:
            if not renew:
                session._modified = False
                return UNCHANGED
            session._adopt(record._replace(cookie_issued_s=now // 1000), State.LOADED)
            return SaveResult("renewed", self._set_cookie(record, now))
        key = self.keys.session(record.handle)
        update = Script(UPDATE, key, (now, self.expiry.idle_ms, len(sets) // 2, *sets, *dels))
        replies = yield (update, *index)
        if replies[0] != 1:
            # Destroyed, revoked, regenerated or expired since we loaded it: never revive it.
            log.debug("session %s: gone before this request saved; changes dropped", record.handle)
            if user is not None and relinked:
                yield (Command(("ZREM", self.keys.user(user), record.handle)),)
            return GONE
        issued = now // 1000 if renew else record.cookie_issued_s
        saved = record._replace(fields=fields, user_id=user, cap_ms=cap, cookie_issued_s=issued)
        session._adopt(saved, State.LOADED)
        return SaveResult("renewed", self._set_cookie(saved, now)) if renew else UPDATED

    def _regenerate(self, session: Session) -> Steps[SaveResult]:
        old = session._record
        assert old is not None  # REGENERATED implies a record
        now = self.now_ms()
        fields = session._stored_fields()
        new = self._new_record(session, fields, now, created_ms=old.created_ms, like=old)
        retire = Script(RETIRE, self.keys.session(old.handle), (new.handle, TOMBSTONE_MS))
        unlink: Batch = ()
        if old.user_id is not None:
            unlink = (Command(("ZREM", self.keys.user(old.user_id), old.handle)),)
        replies = yield (retire, *unlink, *self._create_ops(new, now))
        if replies[0] != 1:
            # Another request destroyed or regenerated it first: undo our copy.
            log.debug("session %s: gone before regenerate() saved; not revived", old.handle)
            undo: Batch = (Command(("DEL", self.keys.session(new.handle))),)
            if new.user_id is not None:
                undo += (Command(("ZREM", self.keys.user(new.user_id), new.handle)),)
            yield undo
            return GONE
        session._adopt(new, State.LOADED)
        return SaveResult("regenerated", self._set_cookie(new, now))

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

    def _create_ops(self, record: Record, now: int) -> Batch:
        key = self.keys.session(record.handle)
        pairs: list[Arg] = [k.VERSION, k.FORMAT_VERSION, k.CREATED, record.created_ms]
        optional = (
            (k.CAP, record.cap_ms),
            (k.USER, record.user_id),
            (k.FINGERPRINT, record.fingerprint or None),
            (k.CLIENT_IP, record.client_ip),
            (k.USER_AGENT, record.user_agent),
        )
        pairs += [arg for name, value in optional if value is not None for arg in (name, value)]
        pairs += [arg for key_, raw in record.fields.items() for arg in (k.field_of(key_), raw)]
        ops: Batch = (
            Command(("HSET", key, *pairs)),
            Command(("PEXPIREAT", key, self.expiry.ttl_deadline_ms(now, record.cap_ms))),
        )
        if record.user_id is not None and record.cap_ms is not None:
            user_key = self.keys.user(record.user_id)
            ops += (Script(INDEX_ADD, user_key, (now, record.handle, record.cap_ms)),)
        return ops

    def _set_cookie(self, record: Record, now: int) -> SetCookie:
        max_age = self.expiry.cookie_max_age_seconds(now, record.created_ms)
        return SetCookie(self.signer.sign(record.sid), max_age)


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
