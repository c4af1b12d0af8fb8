"""Tests for the tagged-JSON codec of session values."""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import json
import reprlib
import sys
import traceback
import uuid
from typing import Any

import pytest

from sharedsession._core.codec import MAX_DEPTH, UndecodableValueError, decode, encode
from sharedsession.errors import UnserializableValueError

UTC = datetime.timezone.utc
IST = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
SAMPLE_UUID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def _type_tree(value: Any) -> Any:
    """The value with every node replaced by (type, children), to compare types deeply.

    ``==`` alone would accept 1 for True, a list for a tuple or a datetime for a date.
    """
    if isinstance(value, (list, tuple)):
        return (type(value), [_type_tree(item) for item in value])
    if isinstance(value, dict):
        return (type(value), {key: _type_tree(item) for key, item in value.items()})
    if isinstance(value, datetime.datetime):
        return (type(value), value.utcoffset())
    if isinstance(value, decimal.Decimal):
        return (type(value), str(value))
    return type(value)


def _param_id(value: object) -> str:
    if type(value) is int and value.bit_length() > 64:
        return f"int of {value.bit_length()} bits"
    # reprlib, not repr: some parameters are nested 1000 levels deep.
    text = reprlib.repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _roundtrip(value: Any) -> Any:
    result = decode(encode(value))
    assert result == value
    assert _type_tree(result) == _type_tree(value)
    return result


SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    5,
    2**63,
    -(2**100),
    10**4000,
    -(10**5000) + 7,
    0.0,
    -0.0,
    1.5,
    1e-300,
    1e300,
    0.1 + 0.2,
    "",
    "alice",
    "héllo wörld ✓ 日本語 🎉",
    'quotes " and \\ backslash\n\t\x00',
    " starts with a space",
    (),
    (1,),
    (1, "a", None),
    b"",
    b"\x00\xff\xfe\x80 not utf-8",
    datetime.datetime(2024, 2, 29, 13, 45, 10, 123456),
    datetime.datetime(2024, 2, 29, 13, 45, 10, 123456, tzinfo=UTC),
    datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=IST),
    datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone(-datetime.timedelta(hours=8))),
    datetime.date(2024, 2, 29),
    datetime.date(1, 1, 1),
    SAMPLE_UUID,
    uuid.UUID(int=0),
    decimal.Decimal("1.10"),
    decimal.Decimal("-0"),
    decimal.Decimal("1E+2"),
    decimal.Decimal("123456789012345678901234567890.000000000000000000001"),
    [],
    {},
]


@pytest.mark.parametrize("value", SCALARS, ids=_param_id)
def test_roundtrip_alone(value: Any) -> None:
    _roundtrip(value)


@pytest.mark.parametrize("value", SCALARS, ids=_param_id)
def test_roundtrip_nested(value: Any) -> None:
    nested = {"outer": [1, (value, {"inner": value}), [value]], "x": value}
    result = _roundtrip(nested)
    assert type(result["outer"][1]) is tuple


def test_roundtrip_mixed_structure() -> None:
    value = {
        "user": {"id": 42, "name": "Zoë", "admin": False},
        "cart": [("sku-1", 2, decimal.Decimal("9.90")), ("sku-2", 1, decimal.Decimal("0.10"))],
        "seen": [datetime.date(2024, 1, 1), datetime.datetime(2024, 1, 1, 8, 30, tzinfo=UTC)],
        "token": b"\x01\x02",
        "ids": (SAMPLE_UUID, (SAMPLE_UUID,)),
        "empty": {"list": [], "tuple": (), "dict": {}},
    }
    _roundtrip(value)


def test_bool_stays_bool() -> None:
    assert decode(encode(True)) is True
    assert decode(encode(False)) is False
    result = decode(encode([1, True, 0, False]))
    assert [type(item) for item in result] == [int, bool, int, bool]


def test_tuple_stays_tuple() -> None:
    result = decode(encode((1, (2, [3, (4,)]))))
    assert result == (1, (2, [3, (4,)]))
    assert type(result) is tuple
    assert type(result[1]) is tuple
    assert type(result[1][1]) is list
    assert type(result[1][1][1]) is tuple


def test_date_stays_date() -> None:
    result = decode(encode(datetime.date(2024, 5, 17)))
    assert type(result) is datetime.date
    assert result == datetime.date(2024, 5, 17)


def test_naive_datetime_stays_naive() -> None:
    value = datetime.datetime(2024, 5, 17, 8, 9, 10, 11)
    result = decode(encode(value))
    assert type(result) is datetime.datetime
    assert result.tzinfo is None
    assert result == value
    assert result.microsecond == 11


def test_aware_datetime_keeps_offset_and_microseconds() -> None:
    value = datetime.datetime(2024, 5, 17, 8, 9, 10, 654321, tzinfo=IST)
    result = decode(encode(value))
    assert type(result) is datetime.datetime
    assert result.utcoffset() == datetime.timedelta(hours=5, minutes=30)
    assert (result.hour, result.microsecond) == (8, 654321)
    assert result == value


def test_decimal_keeps_exponent() -> None:
    result = decode(encode(decimal.Decimal("1.10")))
    assert type(result) is decimal.Decimal
    assert str(result) == "1.10"
    assert encode(decimal.Decimal("1.10")) == b'{" n":"1.10"}'


def test_bytes_keep_non_utf8_content() -> None:
    value = bytes(range(256))
    result = decode(encode(value))
    assert type(result) is bytes
    assert result == value


def test_big_int() -> None:
    value = 3**20000  # about 9500 digits, beyond Python's 4300-digit str limit
    result = decode(encode(value))
    assert type(result) is int
    assert result == value
    assert decode(encode(-value)) == -value
    medium = 10**500  # stays a plain JSON number
    assert encode(medium) == b"1" + b"0" * 500


def test_unicode_is_stored_unescaped() -> None:
    assert encode("日本") == '"日本"'.encode()
    assert decode(encode("日本")) == "日本"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice", b'"alice"'),
        (5, b"5"),
        (None, b"null"),
        (True, b"true"),
        (1.5, b"1.5"),
        ([1, "a"], b'[1,"a"]'),
        ({"a": 1, "b": [True]}, b'{"a":1,"b":[true]}'),
        ((1, 2), b'{" t":[1,2]}'),
        (b"hi", b'{" b":"aGk="}'),
        (datetime.date(2024, 1, 2), b'{" d":"2024-01-02"}'),
        (
            datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
            b'{" dt":"2024-01-02T03:04:05.000006+00:00"}',
        ),
        (SAMPLE_UUID, b'{" u":"12345678123456781234567812345678"}'),
        ({" t": 1}, b'{" o":[" t",1]}'),
    ],
    ids=_param_id,
)
def test_exact_encoding(value: Any, expected: bytes) -> None:
    assert encode(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {" t": 1},
        {" t": [1, 2]},
        {" b": "aGk="},
        {" o": 1},
        {" o": [" t", 1]},
        {" zz": None},
        {" ": "just a space"},
        {" t": {" t": {" o": (1,)}}},
        [{" dt": "2024-01-01"}, ({" u": "x"},)],
        {" t": 1, " b": 2},
        {" t": 1, "other": 2},
    ],
    ids=_param_id,
)
def test_space_keys_are_escaped(value: Any) -> None:
    result = _roundtrip(value)
    assert type(result) is type(value)


def test_escape_only_for_single_space_key() -> None:
    assert encode({" t": 1, "x": 2}) == b'{" t":1,"x":2}'
    assert encode({"t": 1}) == b'{"t":1}'


def test_decode_accepts_str() -> None:
    assert decode('"alice"') == "alice"
    result = decode('{"a":{" t":[1,{" d":"2024-01-02"}]}}')
    assert result == {"a": (1, datetime.date(2024, 1, 2))}
    assert type(result["a"]) is tuple
    assert decode(encode({"x": "ü"}).decode("utf-8")) == {"x": "ü"}


class Color(enum.IntEnum):
    RED = 1


class MyStr(str):
    pass


def _cycle_list() -> list[Any]:
    items: list[Any] = [1]
    items.append(items)
    return {"cart": [0, items]}["cart"]


def _cycle_dict() -> dict[str, Any]:
    inner: dict[str, Any] = {}
    inner["self"] = inner
    return {"a": inner}


def _deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "fragments"),
    [
        ({"cart": [1, 2, {3}]}, ["type 'set'", "['cart'][2]"]),
        (object(), ["type 'object'"]),
        ([1, object()], ["type 'object'", "[1]"]),
        ({"a": (1, frozenset())}, ["type 'frozenset'", "['a'][1]"]),
        ({"a": {1: "x"}}, ["dict key 1", "type 'int'", "['a']"]),
        ({("a",): 1}, ["dict key", "type 'tuple'"]),
        ({"x": [float("nan")]}, ["non-finite float nan", "['x'][0]"]),
        ({"x": float("inf")}, ["non-finite float inf", "['x']"]),
        ([float("-inf")], ["non-finite float -inf", "[0]"]),
        ({"d": decimal.Decimal("NaN")}, ["non-finite Decimal", "['d']"]),
        ([decimal.Decimal("Infinity")], ["non-finite Decimal", "[0]"]),
        ({"c": Color.RED}, ["Color", "subclass of int", "['c']"]),
        ([MyStr("x")], ["MyStr", "subclass of str", "[0]"]),
        (collections.OrderedDict(a=1), ["OrderedDict", "subclass of dict"]),
        ({"d": collections.defaultdict(list)}, ["defaultdict", "['d']"]),
        (bytearray(b"x"), ["type 'bytearray'"]),
        (datetime.time(12, 0), ["type 'datetime.time'"]),
        (datetime.timedelta(1), ["type 'datetime.timedelta'"]),
        ({"s": "\ud800"}, ["lone surrogate", "str at ['s']"]),
        ({"k": {"\udfff": 1}}, ["lone surrogate", "dict key at ['k']"]),
        (_cycle_list(), ["cyclic", "[1]"]),
        (_cycle_dict(), ["cyclic", "['a']['self']", "container at ['a']"]),
        (_deep(MAX_DEPTH + 1), ["nested more than 100 levels", "[0][0]"]),
        ({"x": _deep(1000)}, ["nested more than 100 levels", "['x'][0]"]),
    ],
    ids=_param_id,
)
def test_encode_errors(value: Any, fragments: list[str]) -> None:
    with pytest.raises(UnserializableValueError) as info:
        encode(value)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith("cannot store")
    for fragment in fragments:
        assert fragment in message


def test_encode_error_message_example() -> None:
    with pytest.raises(UnserializableValueError) as info:
        encode({"cart": [1, 2, {3}]})
    assert str(info.value) == "cannot store value of type 'set' at ['cart'][2]"


def test_encode_error_with_key() -> None:
    with pytest.raises(UnserializableValueError) as info:
        encode([1, 2, {3}], key="cart")
    assert str(info.value) == "cannot store value of type 'set' at ['cart'][2]"
    with pytest.raises(UnserializableValueError, match=r"at \['cart'\]$"):
        encode({3}, key="cart")


def test_cycle_error_messages() -> None:
    items: list[Any] = [1]
    items.append(items)
    with pytest.raises(UnserializableValueError) as info:
        encode(items)
    assert str(info.value) == (
        "cannot store cyclic structure: the value at [1] is the same object as its container at the top level"
    )
    with pytest.raises(UnserializableValueError) as info:
        encode({"a": [items]}, key="cart")
    assert str(info.value) == (
        "cannot store cyclic structure: the value at ['cart']['a'][0][1] is the same object"
        " as its container at ['cart']['a'][0]"
    )


def test_top_level_error_has_no_path() -> None:
    with pytest.raises(UnserializableValueError) as info:
        encode({1})
    assert str(info.value) == "cannot store value of type 'set'"


def test_depth_limit_is_exact() -> None:
    assert decode(encode(_deep(MAX_DEPTH))) == _deep(MAX_DEPTH)
    with pytest.raises(UnserializableValueError):
        encode(_deep(MAX_DEPTH + 1))


def test_shared_references_are_not_cycles() -> None:
    shared = [1, 2]
    assert decode(encode({"a": shared, "b": shared, "c": (shared, shared)})) == {
        "a": [1, 2],
        "b": [1, 2],
        "c": ([1, 2], [1, 2]),
    }


def test_recursion_error_is_not_leaked() -> None:
    # Leave too little stack for the codec's own recursion over a value that is
    # within the depth limit: the RecursionError must still become our error.
    depth = len(traceback.extract_stack())
    value = _deep(MAX_DEPTH)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 30)
    try:
        with pytest.raises(UnserializableValueError, match="nested this deeply"):
            encode(value)
    finally:
        sys.setrecursionlimit(limit)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff",
        b'"\xc3"',
        b"",
        b"   ",
        b"{",
        b"[1,",
        b'"alice',
        b"1 2",
        b"undefined",
        b"NaN",
        b"[Infinity]",
        b"-Infinity",
        b"1e400",
        b"\xef\xbb\xbf1",
        "1".encode("utf-16"),
        b"1" * 5000,
        b"[" * 100000 + b"]" * 100000,
        b'{" t":5}',
        b'{" t":"abc"}',
        b'{" t":{"a":1,"b":2}}',
        b'{" b":3}',
        b'{" b":"!!"}',
        b'{" b":"aGk"}',
        b'{" b":"\xc3\xa9"}',
        b'{" b":null}',
        b'{" dt":"nope"}',
        b'{" dt":20240101}',
        b'{" dt":"2024-13-01T00:00:00"}',
        b'{" d":"2024-02-30"}',
        b'{" d":"nope"}',
        b'{" d":[2024,1,1]}',
        b'{" zz":1}',
        b'{" ":1}',
        b'[1,{" T":[1]}]',
        b'{" u":"xyz"}',
        b'{" u":5}',
        b'{" u":"1234567812345678123456781234567"}',
        b'{" n":"abc"}',
        b'{" n":1.5}',
        b'{" n":"NaN"}',
        b'{" n":"-Infinity"}',
        b'{" n":"sNaN"}',
        b'{" i":"xyz"}',
        b'{" i":12}',
        b'{" o":5}',
        b'{" o":[]}',
        b'{" o":["x",1]}',
        b'{" o":[1,2]}',
        b'{" o":[" t",1,2]}',
        b'{"a":{" t":5}}',
    ],
    ids=_param_id,
)
def test_decode_errors(raw: bytes) -> None:
    with pytest.raises(ValueError, match=r".") as info:
        decode(raw)
    assert isinstance(info.value, UndecodableValueError)


@pytest.mark.parametrize("raw", [b'{" t":5}', b"\xff", b'{" zz":1}'])
def test_decode_errors_from_str(raw: bytes) -> None:
    with pytest.raises(UndecodableValueError):
        decode(raw.decode("utf-8", "replace"))


def test_decode_error_with_decimal_context_not_trapping() -> None:
    with decimal.localcontext() as context:
        context.traps[decimal.InvalidOperation] = False
        with pytest.raises(UndecodableValueError):
            decode(b'{" n":"abc"}')


def test_decode_plain_json_untouched() -> None:
    raw = json.dumps({"a": [1, 2.5, "x", None, True], "b": {"c": {}}}).encode()
    assert decode(raw) == {"a": [1, 2.5, "x", None, True], "b": {"c": {}}}


def test_decode_ignores_non_space_single_keys() -> None:
    assert decode(b'{"t":[1]}') == {"t": [1]}
    assert decode(b'{"":1}') == {"": 1}
