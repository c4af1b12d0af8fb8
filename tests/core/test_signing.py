"""Tests of sharedsession._core.signing: new sids and signed cookie values."""

from __future__ import annotations

import base64
import re

import pytest

from sharedsession._core.signing import CLOCK_SKEW_SECONDS, CookieSigner, new_sid
from tests.support import FakeClock

T0 = 1_700_000_000.25
MAX_AGE = 3600


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def signer(clock: FakeClock) -> CookieSigner:
    return CookieSigner(["k" * 32], clock)


# -- new_sid --------------------------------------------------------------------


def test_new_sid_shape() -> None:
    sid = new_sid()
    assert len(sid) == 43
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", sid)
    raw = base64.urlsafe_b64decode(sid + "=")
    assert len(raw) == 32  # 256 bits
    assert base64.urlsafe_b64encode(raw).decode().rstrip("=") == sid


def test_new_sid_unique() -> None:
    sids = {new_sid() for _ in range(1000)}
    assert len(sids) == 1000


# -- round trip -------------------------------------------------------------------


def test_round_trip(signer: CookieSigner) -> None:
    sid = new_sid()
    value = signer.sign(sid)
    assert value.startswith(sid + ".")
    assert value.isascii()
    assert signer.unsign(value, MAX_AGE) == (sid, 1_700_000_000)


@pytest.mark.parametrize("now", [1_700_000_000.0, 1_700_000_000.999, 1_800_000_123.5, 86_400.0])
def test_issue_time_comes_from_the_clock(now: float) -> None:
    clock = FakeClock(now)
    signer = CookieSigner(["key"], clock)
    sid = new_sid()
    assert signer.unsign(signer.sign(sid), MAX_AGE) == (sid, int(now))


def test_issue_time_is_when_signed_not_when_read(clock: FakeClock, signer: CookieSigner) -> None:
    sid = new_sid()
    value = signer.sign(sid)
    clock.advance(100)
    assert signer.unsign(value, MAX_AGE) == (sid, 1_700_000_000)


def test_same_sid_signed_at_different_times_differs(clock: FakeClock, signer: CookieSigner) -> None:
    sid = new_sid()
    first = signer.sign(sid)
    clock.advance(1)
    second = signer.sign(sid)
    assert first != second
    assert signer.unsign(second, MAX_AGE) == (sid, 1_700_000_001)


# -- refused values ----------------------------------------------------------------


def _replace_char(text: str, index: int) -> str:
    char = text[index]
    other = "A" if char != "A" else "B"
    return text[:index] + other + text[index + 1 :]


def test_tampered_signature(signer: CookieSigner) -> None:
    value = signer.sign(new_sid())
    signature_start = value.rindex(".") + 1
    for index in (signature_start, signature_start + 10, len(value) - 2):
        assert signer.unsign(_replace_char(value, index), MAX_AGE) is None


def test_truncated_or_extended_signature(signer: CookieSigner) -> None:
    value = signer.sign(new_sid())
    assert signer.unsign(value[:-1], MAX_AGE) is None
    assert signer.unsign(value[:-5], MAX_AGE) is None
    assert signer.unsign(value + "AAAA", MAX_AGE) is None


def test_tampered_sid(signer: CookieSigner) -> None:
    sid = new_sid()
    value = signer.sign(sid)
    for index in (0, 20, 42):
        assert signer.unsign(_replace_char(value, index), MAX_AGE) is None


def test_tampered_timestamp(signer: CookieSigner) -> None:
    value = signer.sign(new_sid())
    sid, timestamp, signature = value.split(".")
    assert signer.unsign(f"{sid}.{_replace_char(timestamp, 0)}.{signature}", MAX_AGE) is None


def test_sid_of_another_cookie_with_this_signature(signer: CookieSigner) -> None:
    first = signer.sign(new_sid())
    other_sid = new_sid()
    forged = other_sid + first[43:]
    assert signer.unsign(forged, MAX_AGE) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        ".",
        "..",
        "a.b.c",
        "a.b.c.d",
        "x" * 43,
        "x" * 43 + "..",
        "\x00",
        " ",
        "sid.AAAAAA.",
    ],
)
def test_garbage(signer: CookieSigner, value: str) -> None:
    assert signer.unsign(value, MAX_AGE) is None


def test_non_ascii(signer: CookieSigner) -> None:
    value = signer.sign(new_sid())
    assert signer.unsign(value + "é", MAX_AGE) is None
    assert signer.unsign("é" + value, MAX_AGE) is None
    assert signer.unsign("\u2603" * 40, MAX_AGE) is None


def test_huge_value(signer: CookieSigner) -> None:
    value = signer.sign(new_sid())
    assert signer.unsign(value + "A" * 10_240, MAX_AGE) is None
    assert signer.unsign("A" * 10_240, MAX_AGE) is None
    assert signer.unsign("A" * 10_240 + "." + value, MAX_AGE) is None


def test_value_signed_with_another_key(clock: FakeClock, signer: CookieSigner) -> None:
    other = CookieSigner(["another-key"], clock)
    value = other.sign(new_sid())
    assert signer.unsign(value, MAX_AGE) is None
    assert other.unsign(value, MAX_AGE) is not None


def test_str_and_bytes_keys_are_the_same_key(clock: FakeClock) -> None:
    sid = new_sid()
    value = CookieSigner(["same-key"], clock).sign(sid)
    assert CookieSigner([b"same-key"], clock).unsign(value, MAX_AGE) == (sid, 1_700_000_000)


# -- key rotation ------------------------------------------------------------------


def test_old_key_still_verifies_after_rotation(clock: FakeClock) -> None:
    sid = new_sid()
    old_cookie = CookieSigner(["old"], clock).sign(sid)
    rotated = CookieSigner(["new", "old"], clock)
    assert rotated.unsign(old_cookie, MAX_AGE) == (sid, 1_700_000_000)


def test_rotated_signer_signs_with_the_newest_key(clock: FakeClock) -> None:
    sid = new_sid()
    value = CookieSigner(["new", "old"], clock).sign(sid)
    assert CookieSigner(["new"], clock).unsign(value, MAX_AGE) == (sid, 1_700_000_000)
    assert CookieSigner(["old"], clock).unsign(value, MAX_AGE) is None
    assert value == CookieSigner(["new"], clock).sign(sid)


def test_dropped_key_no_longer_verifies(clock: FakeClock) -> None:
    old_cookie = CookieSigner(["oldest"], clock).sign(new_sid())
    assert CookieSigner(["new", "old"], clock).unsign(old_cookie, MAX_AGE) is None


def test_middle_key_verifies(clock: FakeClock) -> None:
    sid = new_sid()
    value = CookieSigner(["mid"], clock).sign(sid)
    assert CookieSigner(["new", "mid", "old"], clock).unsign(value, MAX_AGE) == (sid, 1_700_000_000)


# -- max age ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("elapsed", "accepted"),
    [
        (0, True),
        (1, True),
        (MAX_AGE - 1, True),
        (MAX_AGE - 0.5, True),
        (MAX_AGE, True),
        (MAX_AGE + 0.7, True),  # the signer counts whole seconds
        (MAX_AGE + 1, False),
        (MAX_AGE + 1000, False),
        (10 * MAX_AGE, False),
    ],
)
def test_max_age(clock: FakeClock, signer: CookieSigner, elapsed: float, accepted: bool) -> None:
    sid = new_sid()
    value = signer.sign(sid)
    clock.advance(elapsed)
    expected = (sid, 1_700_000_000) if accepted else None
    assert signer.unsign(value, MAX_AGE) == expected


def test_max_age_is_per_call(clock: FakeClock, signer: CookieSigner) -> None:
    sid = new_sid()
    value = signer.sign(sid)
    clock.advance(100)
    assert signer.unsign(value, 99) is None
    assert signer.unsign(value, 100) == (sid, 1_700_000_000)


def test_cookie_from_a_replica_slightly_ahead_is_accepted() -> None:
    sid = new_sid()
    value = CookieSigner(["k"], FakeClock(1_700_000_000.0005)).sign(sid)
    # Another replica, its clock 1 ms behind, reads the cookie at once.
    other = CookieSigner(["k"], FakeClock(1_699_999_999.9995))
    assert other.unsign(value, MAX_AGE) == (sid, 1_700_000_000)


@pytest.mark.parametrize(
    ("ahead", "accepted"),
    [
        (1, True),
        (CLOCK_SKEW_SECONDS - 1, True),
        (CLOCK_SKEW_SECONDS, True),
        (CLOCK_SKEW_SECONDS + 1, False),
        (86_400, False),
    ],
)
def test_cookie_from_the_future_within_clock_skew(ahead: int, accepted: bool) -> None:
    sid = new_sid()
    value = CookieSigner(["k"], FakeClock(1_700_000_000.0 + ahead)).sign(sid)
    reader = CookieSigner(["k"], FakeClock(1_700_000_000.0))
    expected = (sid, 1_700_000_000 + ahead) if accepted else None
    assert reader.unsign(value, MAX_AGE) == expected


# -- well signed, not a sid ----------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        "short",
        "",
        "x" * 42,
        "x" * 44,
        "a" * 42 + "+",
        "a" * 42 + "/",
        "a" * 42 + "=",
        "a" * 42 + "\n",
        "a" * 43 + "\n",  # a trailing newline must not pass for the end of the sid
        "\n" + "a" * 43,
        " " + "a" * 42,
    ],
)
def test_well_signed_non_sid_payload(signer: CookieSigner, payload: str) -> None:
    value = signer._signer.sign(payload).decode("ascii")
    assert signer.unsign(value, MAX_AGE) is None
