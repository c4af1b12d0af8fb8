"""Encoding of session values: tagged JSON.

Every session value is stored in its own Redis hash field, encoded on its own
as compact UTF-8 JSON text (``separators=(",", ":")``, no ASCII escaping). This
is the stored format shared by every framework adapter, so it must stay stable;
the format version is kept elsewhere, in the session hash, not in each value.
Nothing here can run code on load (no pickle): decoding only ever builds the
types listed below.

Plain JSON values are stored as they are, so the common case stays small and
readable: ``"alice"`` is stored as ``"alice"``, ``5`` as ``5``. Types that JSON
cannot represent exactly become a JSON object with a single key that starts
with a space (a *tag*); the tags are:

=========  ==============================  ===========================================
tag        Python type                     payload
=========  ==============================  ===========================================
``" t"``   :class:`tuple`                  JSON array of the (encoded) items
``" b"``   :class:`bytes`                  standard base64 text, with padding
``" dt"``  :class:`datetime.datetime`      ``datetime.isoformat()``
``" d"``   :class:`datetime.date`          ``YYYY-MM-DD``
``" u"``   :class:`uuid.UUID`              32 lowercase hex digits
``" n"``   :class:`decimal.Decimal`        ``str(decimal)``, finite only
``" i"``   :class:`int`, very large        hexadecimal text, e.g. ``"-1f"``
``" o"``   :class:`dict`, escaped          ``[key, value]``
=========  ==============================  ===========================================

``" i"`` is used only for ints of about 600 digits or more: Python refuses by
default to convert ints of more than 4300 digits to or from decimal text (and
a process may lower that limit to 640), hexadecimal is exempt.

``" o"`` escapes a user dict that has exactly one key and that key starts with a
space, e.g. ``{" t": 1}`` is stored as ``{" o":[" t",1]}``, so that it cannot be
taken for a tag. Its payload is a pair rather than the dict itself because the
JSON decoder rebuilds objects innermost first: an escaped dict nested inside
the tag would be read as a tag before the escape around it is seen. Any other
dict (several keys, or keys not starting with a space) is stored as is.

Datetimes keep their microseconds; a naive datetime comes back naive, an aware
one comes back with its UTC offset as a fixed-offset :class:`datetime.timezone`
(a ``zoneinfo`` zone name is not kept, nor is ``fold``).

Only exact types are accepted (``type(v) is str``, not ``isinstance``), plus
``bool``: a subclass would come back as its base type, silently losing what made
it different (an ``IntEnum`` member would become a bare int, an ``OrderedDict`` or
``defaultdict`` a plain dict), so subclasses are rejected instead and the caller
converts explicitly. Likewise dict keys must be ``str``: JSON would turn an int
key into a str. Floats must be finite and Decimals finite; strings must be
encodable as UTF-8 (no lone surrogates). Nesting is limited to
:data:`MAX_DEPTH` containers, which also catches cyclic structures.

:func:`encode` raises :class:`~sharedsession.UnserializableValueError`
(a ``TypeError`` and a ``ValueError``) naming the offending type and where it
is. :func:`decode` raises :class:`UndecodableValueError`, a ``ValueError``, for
anything malformed, and nothing else, so that callers can treat undecodable
stored data as no session at all.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import json
import math
import reprlib
import uuid
from collections.abc import Callable
from typing import Any, NoReturn, TypeAlias

from sharedsession._core.errors import UnserializableValueError

__all__ = ["MAX_DEPTH", "UndecodableValueError", "decode", "encode"]

MAX_DEPTH = 100
"""Deepest nesting of containers (list, dict, tuple) that :func:`encode` accepts."""

# Ints at or beyond this magnitude (about 600 decimal digits) go through the
# " i" tag; it stays below 640, the lowest limit sys.set_int_max_str_digits allows.
_BIG_INT = 1 << 1990

_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    # _to_json has already rejected cycles and non-finite floats and built a
    # fresh tree; the encoder's own checks would only cost time.
    check_circular=False,
    allow_nan=False,
)

_Segment: TypeAlias = str | int


class UndecodableValueError(ValueError):
    """Stored bytes are not a valid tagged-JSON value."""


class _Unstorable(Exception):
    """Internal: raised deep inside :func:`_to_json`; each container on the way
    out records where it was, so the happy path pays nothing for error paths."""

    def __init__(self, reason: str, *, too_deep: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_deep = too_deep
        # Innermost first: (key or index into the container, the container).
        self.trail: list[tuple[_Segment, object]] = []


def _type_name(value: object) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


_BASES: tuple[type, ...] = (
    str,
    int,
    float,
    list,
    dict,
    tuple,
    bytes,
    datetime.datetime,
    datetime.date,
    uuid.UUID,
    decimal.Decimal,
)


def _unsupported(value: object) -> _Unstorable:
    reason = f"cannot store value of type {_type_name(value)!r}"
    for base in _BASES:
        if isinstance(value, base):
            reason += (
                f" (a subclass of {base.__qualname__}: only exact types are stored,"
                f" convert it to {base.__qualname__} first)"
            )
            break
    return _Unstorable(reason)


def _to_json(value: Any, depth: int) -> object:
    """Return ``value`` as a structure json can encode, with tags applied."""
    cls = type(value)
    if cls is str or cls is bool or value is None:
        return value
    if cls is int:
        if -_BIG_INT < value < _BIG_INT:
            return value
        return {" i": format(value, "x")}
    if cls is float:
        if math.isfinite(value):
            return value
        raise _Unstorable(f"cannot store non-finite float {value!r}")

    if cls is dict or cls is list or cls is tuple:
        if depth >= MAX_DEPTH:
            raise _Unstorable(f"cannot store value nested more than {MAX_DEPTH} levels deep", too_deep=True)
        depth += 1
        if cls is dict:
            return _dict_to_json(value, depth)
        items: list[object] = []
        try:
            for item in value:
                items.append(_to_json(item, depth))
        except _Unstorable as exc:
            # The items converted so far are exactly those before the bad one.
            exc.trail.append((len(items), value))
            raise
        return items if cls is list else {" t": items}

    # Exact-type checks keep datetime apart from date, its base class, so a date
    # never gains a time and a datetime never loses one.
    if cls is datetime.datetime:
        return {" dt": value.isoformat()}
    if cls is datetime.date:
        return {" d": value.isoformat()}
    if cls is bytes:
        return {" b": base64.b64encode(value).decode("ascii")}
    if cls is uuid.UUID:
        return {" u": value.hex}
    if cls is decimal.Decimal:
        if value.is_finite():
            return {" n": str(value)}
        raise _Unstorable(f"cannot store non-finite Decimal {value!r}")
    raise _unsupported(value)


def _dict_to_json(value: dict[Any, Any], depth: int) -> object:
    out: dict[str, object] = {}
    for key, item in value.items():
        if type(key) is not str:
            raise _Unstorable(
                f"cannot store dict key {reprlib.repr(key)} of type {_type_name(key)!r}"
                " (dict keys must be str)"
            )
        try:
            out[key] = _to_json(item, depth)
        except _Unstorable as exc:
            exc.trail.append((key, value))
            raise
    if len(out) == 1:
        ((only, item),) = out.items()
        if only.startswith(" "):
            return {" o": [only, item]}
    return out


def _format_path(segments: list[_Segment]) -> str:
    if len(segments) > 12:
        # Keep messages readable when the problem is the depth itself.
        shown = "".join(f"[{segment!r}]" for segment in segments[:10])
        return f"{shown}...({len(segments)} levels)"
    return "".join(f"[{segment!r}]" for segment in segments)


def _encode_error(exc: _Unstorable, key: str | None) -> UnserializableValueError:
    steps = exc.trail[::-1]
    segments = _prefix(key) + [segment for segment, _ in steps]
    if exc.too_deep:
        # Only on this path is it worth finding out whether the depth comes from
        # a cycle: the first container met a second time is where it closes.
        offset = len(segments) - len(steps)
        seen: dict[int, int] = {}
        for index, (_, container) in enumerate(steps):
            if id(container) in seen:
                inner = _format_path(segments[: offset + index])
                outer = _format_path(segments[: offset + seen[id(container)]])
                return UnserializableValueError(
                    f"cannot store cyclic structure: the value at {inner} is the same"
                    f" object as its container at {outer or 'the top level'}"
                )
            seen[id(container)] = index
    path = _format_path(segments)
    return UnserializableValueError(f"{exc.reason} at {path}" if path else exc.reason)


def _prefix(key: str | None) -> list[_Segment]:
    return [] if key is None else [key]


def _find_unencodable_text(value: Any, path: list[_Segment]) -> str | None:
    """Describe where a str (or dict key) that is not valid UTF-8 text is, if any."""
    cls = type(value)
    if cls is str:
        return None if _is_utf8(value) else f"str at {_format_path(path) or 'the top level'}"
    if cls is list or cls is tuple:
        for index, item in enumerate(value):
            found = _find_unencodable_text(item, [*path, index])
            if found is not None:
                return found
    elif cls is dict:
        for key, item in value.items():
            if not _is_utf8(key):
                return f"dict key at {_format_path(path) or 'the top level'}"
            found = _find_unencodable_text(item, [*path, key])
            if found is not None:
                return found
    return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode(value: object, *, key: str | None = None) -> bytes:
    """Encode one session value as compact tagged JSON (UTF-8 bytes).

    ``key``, the session key the value is stored under, is used only in error
    messages, so that they read e.g. ``... at ['cart'][2]``.

    Raises :class:`~sharedsession.UnserializableValueError` if the value,
    or anything inside it, cannot be stored exactly.
    """
    try:
        tree = _to_json(value, 0)
    except _Unstorable as exc:
        raise _encode_error(exc, key) from None
    except RecursionError:
        # Called with the stack already nearly full; still a value we refuse.
        where = "" if key is None else f" at {_format_path([key])}"
        raise UnserializableValueError(f"cannot store value nested this deeply{where}") from None
    text = _ENCODER.encode(tree)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates survive in a Python str but are not UTF-8; looking for
        # them only now keeps the common case from checking every string.
        where = _find_unencodable_text(value, _prefix(key)) or "str"
        raise UnserializableValueError(
            f"cannot store {where}: it contains a lone surrogate, which is not valid UTF-8"
        ) from None


def _fail(message: str) -> NoReturn:
    raise UndecodableValueError(message)


def _payload_str(tag: str, payload: object) -> str:
    if type(payload) is not str:
        _fail(f"tag {tag!r} needs a string payload, got {type(payload).__name__}")
    return payload


def _decode_tuple(payload: object) -> object:
    if type(payload) is not list:
        _fail(f"tag ' t' needs an array payload, got {type(payload).__name__}")
    return tuple(payload)


def _decode_bytes(payload: object) -> object:
    text = _payload_str(" b", payload)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UndecodableValueError(f"tag ' b': invalid base64: {exc}") from exc


def _decode_datetime(payload: object) -> object:
    return datetime.datetime.fromisoformat(_payload_str(" dt", payload))


def _decode_date(payload: object) -> object:
    return datetime.date.fromisoformat(_payload_str(" d", payload))


def _decode_uuid(payload: object) -> object:
    return uuid.UUID(hex=_payload_str(" u", payload))


def _decode_decimal(payload: object) -> object:
    text = _payload_str(" n", payload)
    # Decimal() signals bad text with InvalidOperation (an ArithmeticError), or
    # returns NaN when the current context does not trap it; both are errors.
    try:
        number = decimal.Decimal(text)
    except decimal.DecimalException as exc:
        raise UndecodableValueError(f"tag ' n': invalid Decimal {text!r}") from exc
    if not number.is_finite():
        _fail(f"tag ' n': invalid Decimal {text!r}")
    return number


def _decode_big_int(payload: object) -> object:
    return int(_payload_str(" i", payload), 16)


def _decode_escaped_dict(payload: object) -> object:
    if (
        type(payload) is not list
        or len(payload) != 2
        or type(payload[0]) is not str
        or not payload[0].startswith(" ")
    ):
        _fail("tag ' o' needs a [key, value] payload whose key starts with a space")
    return {payload[0]: payload[1]}


_TAGS: dict[str, Callable[[object], object]] = {
    " t": _decode_tuple,
    " b": _decode_bytes,
    " dt": _decode_datetime,
    " d": _decode_date,
    " u": _decode_uuid,
    " n": _decode_decimal,
    " i": _decode_big_int,
    " o": _decode_escaped_dict,
}


def _object_hook(obj: dict[str, Any]) -> Any:
    if len(obj) != 1:
        return obj
    for tag in obj:
        if tag.startswith(" "):
            decoder = _TAGS.get(tag)
            if decoder is None:
                _fail(f"unknown tag {tag!r}")
            return decoder(obj[tag])
    return obj


# json accepts NaN and Infinity by default, and turns 1e400 into inf; encode
# never writes either, and decoded data must always be storable again.
def _reject_constant(name: str) -> NoReturn:
    _fail(f"invalid JSON constant {name}")


def _parse_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        _fail(f"float out of range: {text}")
    return number


_DECODER = json.JSONDecoder(
    object_hook=_object_hook, parse_constant=_reject_constant, parse_float=_parse_float
)


def decode(raw: bytes | str) -> Any:
    """Decode one stored session value.

    Accepts bytes, or str from a Redis client with ``decode_responses=True``.
    Raises :class:`UndecodableValueError` (a ``ValueError``) for anything that
    is not valid tagged JSON, and no other exception type for bad data.
    """
    try:
        # str() rather than json's own bytes handling, which would also guess
        # UTF-16 and UTF-32.
        text = raw if isinstance(raw, str) else str(raw, "utf-8")
        return _DECODER.decode(text)
    except UndecodableValueError:
        raise
    except (
        ValueError,
        TypeError,
        LookupError,
        AttributeError,
        ArithmeticError,
        RecursionError,
    ) as exc:
        # Each tag checks its payload, but a malformed value must never surface
        # as anything other than ValueError, whatever slipped through.
        raise UndecodableValueError(f"invalid stored value: {exc}") from exc
