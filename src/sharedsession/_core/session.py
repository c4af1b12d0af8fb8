"""Session: the mapping views see as ``session`` / ``request.session``, and its state.

Public as ``sharedsession.Session``. The planner (``plan.py``) reads and moves
its state through the underscored members below; nothing outside the core does.
"""

from __future__ import annotations

import datetime
import decimal
import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from sharedsession._core import codec
from sharedsession._core.errors import SessionTooLargeError, UnserializableValueError
from sharedsession._core.keys import field_of
from sharedsession._core.record import UNBOUND, Client, Record, State

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

__all__ = ["Session"]

log = logging.getLogger("sharedsession")

_MISSING: Any = object()


class _Undecoded:
    """What the mapping holds for a loaded value no one has read yet (its bytes are in _encoded)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not decoded yet>"


_UNDECODED: Any = _Undecoded()

#: What each key costs besides its name and encoded value, in bytes: about what
#: Redis spends per field of a hash (measured: 50-60 bytes per field once a
#: hash holds more than 128 fields). ``max_size`` counts it, so that it bounds
#: the memory a session takes in Redis, not only the bytes sent: without it,
#: thousands of one-letter keys would fit 64 KiB and take ten times that.
FIELD_COST = 64

# Values of these types cannot change in place: their encoding made at
# assignment (or load) stays valid, so a save need not encode them again.
_IMMUTABLE = frozenset(
    {str, int, float, bool, type(None), bytes, datetime.datetime, datetime.date, uuid.UUID, decimal.Decimal}
)


class Session(dict[str, Any]):
    """A dict of str to storable values, with a server-side life.

    Every mutator encodes the value at once: an unstorable value, or one that
    would take the session over ``max_size`` bytes, raises
    :class:`~sharedsession.SessionDataError` at the assignment and leaves the
    session unchanged. In-place edits of nested values (``session["cart"].append(x)``)
    are found at save, by encoding again the mutable values that were read.

    Loaded values are decoded when first read (``session[key]``, ``get``,
    ``items()``...), not at load: a request pays for the keys it touches, not
    for every key of the session. A stored value that cannot be decoded (not
    written by this library) reads as absent, with a warning, and is dropped
    at the next save that writes.

    Besides the mapping: :meth:`regenerate` (on login), :meth:`destroy` (on
    logout), :attr:`user_id` (lists the session under a user, for "log out
    everywhere"), and the flags adapters need (:attr:`new`, :attr:`modified`).
    Sessions are made by the store; views only use them.
    """

    __slots__ = (
        "_baseline",
        "_client",
        "_encoded",
        "_had_cookie",
        "_max_size",
        "_modified",
        "_record",
        "_sizes",
        "_state",
        "_total",
        "_user_id",
    )
    _client: Client
    _encoded: dict[str, bytes]
    _had_cookie: bool
    _baseline: int
    _max_size: int
    _modified: bool
    _record: Record | None
    _sizes: dict[str, int]
    _state: State
    _total: int
    _user_id: str | None

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        max_size: int = 64 * 1024,
        record: Record | None = None,
        client: Client | None = None,
        had_cookie: bool = False,
    ) -> None:
        super().__init__()
        self._fill(data, max_size=max_size, record=record, client=client or UNBOUND, had_cookie=had_cookie)

    def _fill(
        self,
        data: Mapping[str, Any] | None,
        *,
        max_size: int,
        record: Record | None,
        client: Client,
        had_cookie: bool,
    ) -> None:
        """Initialise an empty session: at construction, or when a lazy adapter session loads."""
        self._max_size = max_size
        self._client = client
        self._had_cookie = had_cookie
        self._total = 0
        self._adopt(record, State.LOADED if record else State.NEW)
        if record is not None:
            # Decoded on first read; sized as stored.
            dict.update(self, dict.fromkeys(record.fields, _UNDECODED))
            self._encoded = dict(record.fields)
            self._sizes = {key: _size(key, raw) for key, raw in self._encoded.items()}
            self._total = self._baseline = sum(self._sizes.values())
            if data is not None:
                self.update(data)
                self._adopt(record, State.LOADED)
            return
        self._encoded = {}
        self._sizes = {}
        self._total = self._baseline = 0
        if data is not None:
            self.update(data)

    # -- lifecycle --------------------------------------------------------

    @property
    def new(self) -> bool:
        """True until the session has been stored (no cookie of a live session came in)."""
        return self._record is None

    @property
    def modified(self) -> bool:
        """True once anything was assigned, deleted, regenerated, destroyed or linked.

        In-place edits of nested values are not seen here, only at save.
        """
        return self._modified

    @property
    def state(self) -> State:
        return self._state

    @property
    def handle(self) -> str | None:
        """The stored session's handle (as listed by ``sessions_of``), or None if not stored."""
        return self._record.handle if self._record else None

    @property
    def user_id(self) -> str | None:
        """The user this session is linked to, for listing and revoking a user's sessions.

        Set it on login (after :meth:`regenerate`); set it to None to unlink.
        """
        return self._user_id

    @user_id.setter
    def user_id(self, value: str | None) -> None:
        if value is not None and (not isinstance(value, str) or not value or len(value) > 256):
            raise TypeError("session.user_id must be a non-empty str of at most 256 chars, or None")
        if value != self._user_id:
            self._user_id = value
            self._modified = True

    def regenerate(self) -> None:
        """Give the session a new sid at save, keeping its data; the old sid dies at once.

        Call it on login and on any change of privilege (prevents session fixation).
        """
        if self._state is State.LOADED:
            self._state = State.REGENERATED
            self._modified = True

    def destroy(self) -> None:
        """Delete the session's data now and the stored session at save; the cookie is expired.

        The session stays usable: anything stored afterwards (a "logged out"
        message) goes into a brand-new session with a new sid.
        """
        dict.clear(self)
        self._encoded.clear()
        self._sizes.clear()
        self._total = 0
        self._user_id = None
        self._state = State.DESTROYED
        self._modified = True

    # -- the mapping ------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        if value is _UNDECODED:
            value = self._decoded(key)
            if value is _MISSING:
                raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None, /) -> Any:
        value = dict.get(self, key, _MISSING)
        if value is _UNDECODED:
            value = self._decoded(key)
        return default if value is _MISSING else value

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not dict.__contains__(self, key):
            return False
        return dict.__getitem__(self, key) is not _UNDECODED or self._decoded(key) is not _MISSING

    def __iter__(self) -> Iterator[str]:
        # Overridden so that C code copying the mapping, dict(session) or
        # {**session}, goes through keys() and __getitem__ rather than the storage.
        self._decode_all()
        return dict.__iter__(self)

    def keys(self) -> dict_keys[str, Any]:
        self._decode_all()
        return dict.keys(self)

    def values(self) -> dict_values[str, Any]:
        self._decode_all()
        return dict.values(self)

    def items(self) -> dict_items[str, Any]:
        self._decode_all()
        return dict.items(self)

    def copy(self) -> dict[str, Any]:
        self._decode_all()
        return dict.copy(self)

    def __eq__(self, other: object) -> bool:
        self._decode_all()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        self._decode_all()
        return dict.__ne__(self, other)

    def __or__(self, other: Any) -> Any:
        self._decode_all()
        return dict.__or__(self, other)

    def __ror__(self, other: Any) -> Any:
        self._decode_all()
        return dict.__ror__(self, other)

    __hash__ = None  # a mutable mapping, as dict

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise UnserializableValueError(f"session keys must be str, got {type(key).__name__}: {key!r}")
        if not _storable_text(key):
            raise UnserializableValueError(f"session key {key!r} cannot be stored: not encodable as UTF-8")
        try:
            raw = codec.encode(value)
        except UnserializableValueError as exc:
            raise UnserializableValueError(f"session[{key!r}]: {exc}") from None
        size = _size(key, raw)
        total = self._total - self._sizes.get(key, 0) + size
        # Never grow past max_size. A session stored under a larger limit (a
        # deploy lowered it) can still be read, and shrunk, just not grown.
        if total > self._max_size and total > self._total:
            raise SessionTooLargeError(
                f"session[{key!r}]: storing {len(raw)} bytes would make the session "
                f"{total} bytes (counting {FIELD_COST} per key), over max_size={self._max_size}"
            )
        dict.__setitem__(self, key, value)
        self._encoded[key] = raw
        self._sizes[key] = size
        self._total = total
        self._modified = True

    def __delitem__(self, key: str) -> None:
        dict.__delitem__(self, key)
        self._forget(key)

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            dict.__delitem__(self, key)
            self._forget(key)
            return value
        if default is _MISSING:
            raise KeyError(key)
        return default

    def popitem(self) -> tuple[str, Any]:
        self._decode_all()
        key, value = dict.popitem(self)
        self._forget(key)
        return key, value

    def clear(self) -> None:
        if self:
            dict.clear(self)
            self._encoded.clear()
            self._sizes.clear()
            self._total = 0
            self._modified = True

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like dict.update, all or nothing: a bad value leaves the session unchanged."""
        items = dict(other, **kwargs)
        before = (dict.copy(self), dict(self._encoded), dict(self._sizes), self._total, self._modified)
        try:
            for key, value in items.items():
                self[key] = value
        except BaseException:
            dict.clear(self)
            dict.update(self, before[0])
            self._encoded, self._sizes, self._total, self._modified = before[1:]
            raise

    def __ior__(self, other: Any) -> Session:  # type: ignore[override]
        self.update(other)
        return self

    def __repr__(self) -> str:
        self._decode_all()
        return f"<Session {self._state.value} {dict.__repr__(self)}>"

    def __reduce__(self) -> Any:
        # A Session is bound to one request; copying it out yields a plain dict.
        return (dict, (dict(self),))

    # -- for the store and the adapters ----------------------------------

    def _adopt(self, record: Record | None, state: State) -> None:
        """Take ``record`` as what is stored now (after a load or a save)."""
        self._record = record
        self._state = state
        self._user_id = record.user_id if record else None
        self._modified = False
        self._baseline = self._total

    def _stored_fields(self) -> dict[str, bytes]:
        """Encode what is to be stored now: app key -> bytes. Raises SessionDataError.

        Values never read are stored as they came; values read that cannot
        change in place keep the encoding made at assignment or load; only the
        mutable ones that were read are encoded again (an in-place edit shows).
        """
        fields: dict[str, bytes] = {}
        total = 0
        for key, value in dict.items(self):
            raw = self._encoded.get(key)
            if raw is None or (value is not _UNDECODED and type(value) not in _IMMUTABLE):
                try:
                    raw = codec.encode(value)
                except UnserializableValueError as exc:
                    raise UnserializableValueError(f"session[{key!r}]: {exc}") from None
                self._account(key, raw)
            fields[key] = raw
            total += self._sizes[key]
        if total > self._max_size and total > self._baseline:
            raise SessionTooLargeError(
                f"session data is {total} bytes after in-place edits (counting {FIELD_COST} per key), "
                f"over max_size={self._max_size}"
            )
        return fields

    def _decoded(self, key: str) -> Any:
        """Decode a loaded value on its first read; an undecodable one is dropped (_MISSING)."""
        try:
            value = codec.decode(self._encoded[key])
        except ValueError as exc:
            log.warning("session[%r]: stored value cannot be decoded (%s); ignored", key, exc)
            dict.__delitem__(self, key)
            self._encoded.pop(key, None)
            self._total -= self._sizes.pop(key, 0)
            return _MISSING
        dict.__setitem__(self, key, value)
        return value

    def _decode_all(self) -> None:
        for key, value in list(dict.items(self)):
            if value is _UNDECODED:
                self._decoded(key)

    def _account(self, key: str, raw: bytes) -> None:
        size = _size(key, raw)
        self._total += size - self._sizes.get(key, 0)
        self._encoded[key] = raw
        self._sizes[key] = size

    def _forget(self, key: str) -> None:
        self._encoded.pop(key, None)
        self._total -= self._sizes.pop(key, 0)
        self._modified = True


def _size(key: str, raw: bytes) -> int:
    return len(field_of(key).encode()) + len(raw) + FIELD_COST


def _storable_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True
