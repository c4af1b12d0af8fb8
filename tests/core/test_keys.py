"""Tests of sharedsession._core.keys: handles, field names and Redis key names."""

from __future__ import annotations

import re

import pytest

from sharedsession._core import keys as k
from sharedsession._core.keys import KeySpace, field_of, handle_of, is_handle, key_of
from sharedsession._core.signing import new_sid

# -- handles ---------------------------------------------------------------------


def test_handle_known_value() -> None:
    # The first 128 bits of SHA-256("abc").
    assert handle_of("abc") == "ba7816bf8f01cfea414140de5dae2223"


def test_handle_shape_and_determinism() -> None:
    sid = new_sid()
    handle = handle_of(sid)
    assert len(handle) == 32
    assert re.fullmatch(r"[0-9a-f]{32}", handle)
    assert handle_of(sid) == handle
    assert is_handle(handle)


def test_handle_is_not_the_sid() -> None:
    for _ in range(50):
        sid = new_sid()
        handle = handle_of(sid)
        assert handle != sid
        assert not sid.startswith(handle)
        assert handle not in sid


def test_handles_differ_per_sid() -> None:
    sids = [new_sid() for _ in range(500)]
    assert len({handle_of(sid) for sid in sids}) == 500


def test_handle_of_similar_sids_differ() -> None:
    base = "A" * 43
    assert handle_of(base) != handle_of("A" * 42 + "B")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0123456789abcdef0123456789abcdef", True),
        ("f" * 32, True),
        ("0" * 32, True),
        ("0123456789ABCDEF0123456789ABCDEF", False),  # uppercase
        ("0" * 31, False),
        ("0" * 33, False),
        ("g" * 32, False),
        ("", False),
        (" " + "0" * 31, False),
        ("0" * 32 + " ", False),
        ("0" * 16 + "-" + "0" * 15, False),
        (b"0" * 32, False),
        (None, False),
        (12345678901234567890123456789012, False),
        (["0" * 32], False),
    ],
)
def test_is_handle(value: object, expected: bool) -> None:
    assert is_handle(value) is expected


def test_a_sid_is_not_a_handle() -> None:
    assert is_handle(new_sid()) is False


def test_is_handle_refuses_trailing_newline() -> None:
    assert is_handle("0" * 32 + "\n") is False


# -- fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "field"),
    [
        ("a", "a"),
        ("cart", "cart"),
        ("#a", "##a"),
        ("##a", "###a"),
        ("#", "##"),
        ("", ""),
        ("a#", "a#"),
        (" #a", " #a"),
        ("#v", "##v"),  # an app key that looks like our metadata
        ("#cap", "##cap"),
        ("ключ", "ключ"),
    ],
)
def test_field_round_trip(key: str, field: str) -> None:
    assert field_of(key) == field
    assert key_of(field) == key


@pytest.mark.parametrize(
    "name",
    [k.VERSION, k.CREATED, k.CAP, k.USER, k.FINGERPRINT, k.CLIENT_IP, k.USER_AGENT, k.MOVED, "#"],
)
def test_metadata_fields_are_not_app_keys(name: str) -> None:
    assert key_of(name) is None


def test_metadata_names() -> None:
    assert (k.VERSION, k.CREATED, k.CAP, k.USER) == ("#v", "#c", "#cap", "#u")
    assert (k.FINGERPRINT, k.CLIENT_IP, k.USER_AGENT, k.MOVED) == ("#fp", "#ip", "#ua", "#moved")
    for name in (k.VERSION, k.CREATED, k.CAP, k.USER, k.FINGERPRINT, k.CLIENT_IP, k.USER_AGENT, k.MOVED):
        assert name.startswith("#")
        assert not name.startswith("##")


def test_app_fields_never_collide_with_metadata() -> None:
    app_keys = ["#v", "#c", "#cap", "#u", "#fp", "#ip", "#ua", "#moved", "v", "c"]
    fields = {field_of(key) for key in app_keys}
    metadata = {k.VERSION, k.CREATED, k.CAP, k.USER, k.FINGERPRINT, k.CLIENT_IP, k.USER_AGENT, k.MOVED}
    assert fields.isdisjoint(metadata)
    assert len(fields) == len(app_keys)


# -- key space ----------------------------------------------------------------------


def test_keyspace_names() -> None:
    keys = KeySpace("app:")
    handle = "0123456789abcdef0123456789abcdef"
    assert keys.prefix == "app:"
    assert keys.session(handle) == "app:s:0123456789abcdef0123456789abcdef"
    assert keys.user("alice") == "app:u:alice"
    assert keys.session_pattern == "app:s:*"


def test_keyspace_default_prefix() -> None:
    keys = KeySpace("sharedsession:")
    assert keys.session("ab") == "sharedsession:s:ab"
    assert keys.user("42") == "sharedsession:u:42"


def test_keyspace_empty_prefix() -> None:
    keys = KeySpace("")
    assert keys.session("h") == "s:h"
    assert keys.user("u") == "u:u"
    assert keys.session_pattern == "s:*"


@pytest.mark.parametrize(
    ("prefix", "pattern"),
    [
        ("a*b:", "a\\*b:s:*"),
        ("a?b:", "a\\?b:s:*"),
        ("[ab]:", "\\[ab\\]:s:*"),
        ("a\\b:", "a\\\\b:s:*"),
        ("*?[]\\", "\\*\\?\\[\\]\\\\s:*"),
        ("plain-prefix.1:", "plain-prefix.1:s:*"),
    ],
)
def test_session_pattern_escapes_glob_characters(prefix: str, pattern: str) -> None:
    assert KeySpace(prefix).session_pattern == pattern


def test_session_pattern_matches_only_its_own_sessions() -> None:
    keys = KeySpace("a*b:")
    # Read the pattern as Redis does (backslash escapes the next character).
    regex = _redis_glob_to_regex(keys.session_pattern)
    assert regex.fullmatch(keys.session("0" * 32))
    assert not regex.fullmatch("aXb:s:" + "0" * 32)
    assert not regex.fullmatch("a*b:u:alice")


def _redis_glob_to_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.DOTALL)
