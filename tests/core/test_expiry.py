"""Tests of sharedsession._core.expiry: deadlines, horizons, cookie ages and renewal."""

from __future__ import annotations

import pytest

from sharedsession._core.expiry import Expiry

C = 1_700_000_000_000  # creation time, ms
C_S = C // 1000  # the same, in seconds (cookie timestamps)
IDLE = Expiry(600_000, None)  # 10 minutes, no absolute timeout
CAPPED = Expiry(600_000, 3_600_000)  # 10 minutes idle, 1 hour absolute


@pytest.mark.parametrize(
    ("idle_s", "absolute_s", "expected"),
    [
        (600, 3600, Expiry(600_000, 3_600_000)),
        (600, None, Expiry(600_000, None)),
        (1.5, 2.25, Expiry(1_500, 2_250)),
        (0.001, None, Expiry(1, None)),
        (14 * 24 * 3600, 30 * 24 * 3600, Expiry(1_209_600_000, 2_592_000_000)),
    ],
)
def test_of_converts_seconds_to_ms(idle_s: float, absolute_s: float | None, expected: Expiry) -> None:
    expiry = Expiry.of(idle_s, absolute_s)
    assert expiry == expected
    assert type(expiry.idle_ms) is int
    assert expiry.absolute_ms is None or type(expiry.absolute_ms) is int


def test_absolute_deadline() -> None:
    assert CAPPED.absolute_deadline_ms(C) == C + 3_600_000
    assert CAPPED.absolute_deadline_ms(0) == 3_600_000
    assert IDLE.absolute_deadline_ms(C) is None


@pytest.mark.parametrize(
    ("expiry", "now", "expected"),
    [
        (IDLE, C, C + 1_200_000),
        (IDLE, C + 5_000, C + 1_205_000),
        (IDLE, C + 100_000_000, C + 101_200_000),
        (CAPPED, C + 1_000, C + 1_201_000),
        (CAPPED, C + 2_399_999, C + 3_599_999),
        (CAPPED, C + 2_400_000, C + 3_600_000),  # exactly at the deadline
        (CAPPED, C + 3_000_000, C + 3_600_000),  # capped
        (CAPPED, C + 5_000_000, C + 3_600_000),  # past the deadline: still capped
    ],
)
def test_horizon(expiry: Expiry, now: int, expected: int) -> None:
    assert expiry.horizon_ms(now, C) == expected


@pytest.mark.parametrize(
    ("expiry", "user_horizon", "expected"),
    [
        (IDLE, None, None),
        (CAPPED, None, C + 3_600_000),
        (IDLE, C + 1_200_000, C + 1_200_000),
        (CAPPED, C + 1_200_000, C + 1_200_000),  # user horizon first
        (CAPPED, C + 3_600_000, C + 3_600_000),  # equal
        (CAPPED, C + 4_000_000, C + 3_600_000),  # deadline first
    ],
)
def test_cap(expiry: Expiry, user_horizon: int | None, expected: int | None) -> None:
    assert expiry.cap_ms(C, user_horizon) == expected


@pytest.mark.parametrize(
    ("now", "cap", "expected"),
    [
        (C, None, C + 600_000),
        (C + 7, None, C + 600_007),
        (C, C + 10_000_000, C + 600_000),
        (C, C + 600_000, C + 600_000),
        (C, C + 100, C + 100),  # cap near: the TTL stops there
        (C, C - 5, C - 5),  # cap already past
    ],
)
def test_ttl_deadline(now: int, cap: int | None, expected: int) -> None:
    assert IDLE.ttl_deadline_ms(now, cap) == expected


@pytest.mark.parametrize(
    ("expiry", "now", "expected"),
    [
        (IDLE, C, 1200),
        (IDLE, C + 123, 1200),
        (CAPPED, C, 1200),
        (CAPPED, C + 3_000_000, 600),  # horizon is the deadline
        (CAPPED, C + 3_598_999, 2),  # 1.001 s left: rounds up
        (CAPPED, C + 3_599_000, 1),  # exactly 1 s
        (CAPPED, C + 3_599_001, 1),  # 0.999 s: rounds up to 1
        (CAPPED, C + 3_600_000, 1),  # nothing left: at least 1
        (CAPPED, C + 9_000_000, 1),  # past the deadline: at least 1
        (Expiry(1_234, None), C, 3),  # 2.468 s
        (Expiry(1_500, None), C, 3),  # 3 s exactly
        (Expiry(1_209_600_000, None), C, 2_419_200),
    ],
)
def test_cookie_max_age(expiry: Expiry, now: int, expected: int) -> None:
    assert expiry.cookie_max_age_seconds(now, C) == expected


@pytest.mark.parametrize("expiry", [IDLE, CAPPED, Expiry(1_234, None), Expiry(999, 1_501)])
@pytest.mark.parametrize("offset", [0, 1, 499, 999, 1_000, 1_001, 1_234_567, 2_400_001, 3_599_999])
def test_cookie_never_dies_before_the_horizon(expiry: Expiry, offset: int) -> None:
    now = C + offset
    horizon = expiry.horizon_ms(now, C)
    max_age = expiry.cookie_max_age_seconds(now, C)
    if horizon <= now:
        assert max_age == 1  # past the absolute deadline: the shortest valid Max-Age
        return
    assert now + max_age * 1000 >= horizon
    assert now + max_age * 1000 < horizon + 1000  # rounded up by less than a second


@pytest.mark.parametrize(
    ("expiry", "expected"),
    [
        (IDLE, 1201),
        (CAPPED, 1201),  # 2 * idle comes first
        (Expiry(600_000, 1_200_000), 1201),
        (Expiry(600_000, 900_000), 901),  # absolute comes first
        (Expiry(600_000, 1_500), 3),  # ceil(1.5) + 1
        (Expiry(1_234, None), 4),  # ceil(2.468) + 1
        (Expiry(1_209_600_000, None), 2_419_201),
    ],
)
def test_max_cookie_age(expiry: Expiry, expected: int) -> None:
    assert expiry.max_cookie_age_seconds() == expected


# -- renewal ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (C, False),  # just issued
        (C + 1, False),
        (C + 599_999, False),
        (C + 600_000, False),  # exactly idle left
        (C + 600_001, True),  # less than idle left before the cookie's horizon
        (C + 1_000_000, True),
        (C + 1_199_999, True),
        (C + 5_000_000, True),  # past the horizon (a cookie that outlived it)
    ],
)
def test_renewal_due_by_cookie_age(now: int, expected: bool) -> None:
    assert IDLE.renewal_due(now, C_S, C, None, False) is expected
    # Being linked without a cap changes nothing.
    assert IDLE.renewal_due(now, C_S, C, None, True) is expected


def test_renewal_counts_from_the_cookie_not_the_session() -> None:
    issued_s = C_S + 3_000  # cookie re-issued 50 minutes after creation
    assert IDLE.renewal_due(C + 3_000_000 + 600_000, issued_s, C, None, False) is False
    assert IDLE.renewal_due(C + 3_000_000 + 600_001, issued_s, C, None, False) is True


@pytest.mark.parametrize(
    ("issued_s", "now", "expected"),
    [
        # Cookie horizon C + 3_200_000, before the deadline: renewal works as usual.
        (C_S + 2_000, C + 2_600_000, False),
        (C_S + 2_000, C + 2_600_001, True),
        # Cookie horizon exactly at the deadline: it already lives as long as the session can.
        (C_S + 2_400, C + 3_000_001, False),
        (C_S + 2_400, C + 3_599_999, False),
        # Cookie horizon past the deadline.
        (C_S + 3_000, C + 3_599_999, False),
        (C_S + 3_000, C + 3_700_000, False),
    ],
)
def test_renewal_due_with_absolute_deadline(issued_s: int, now: int, expected: bool) -> None:
    assert CAPPED.renewal_due(now, issued_s, C, None, False) is expected
    assert CAPPED.renewal_due(now, issued_s, C, None, True) is expected


@pytest.mark.parametrize(
    ("expiry", "now", "cap", "linked", "expected"),
    [
        # Cookie fresh (1.2M ms left); the stored cap has less than idle left.
        (IDLE, C + 1_000, C + 500_000, True, True),
        (IDLE, C + 1_000, C + 500_000, False, False),  # unlinked: the cap is not ours to move
        (IDLE, C + 1_000, None, True, False),
        (IDLE, C + 1_000, C + 601_000, True, False),  # exactly idle left
        (IDLE, C + 1_000, C + 600_999, True, True),
        (IDLE, C + 1_000, C + 1_200_000, True, False),  # cap far
        (CAPPED, C + 1_000, C + 500_000, True, True),  # cap before the deadline
        (CAPPED, C + 3_500_000, C + 3_600_000, True, False),  # cap is the deadline: never
        (CAPPED, C + 3_500_000, C + 3_700_000, True, False),  # cap beyond the deadline
    ],
)
def test_renewal_due_for_linked_sessions(
    expiry: Expiry, now: int, cap: int | None, linked: bool, expected: bool
) -> None:
    # The cookie was issued at ``now``, so only the cap can make renewal due.
    issued_s = now // 1000
    assert expiry.renewal_due(now, issued_s, C, cap, linked) is expected
