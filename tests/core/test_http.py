"""Tests of sharedsession._core.http: reading the Cookie header, rendering Set-Cookie."""

from __future__ import annotations

from typing import Any

import pytest

from sharedsession import SessionConfig
from sharedsession._core.http import ExpireCookie, SetCookie, read_cookie, render

KEY = "x" * 32
NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"

# -- read_cookie ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("session=abc", "abc"),
        ("a=1; session=abc; b=2", "abc"),
        ("a=1;session=abc;b=2", "abc"),
        ("  session  =  abc  ", "abc"),
        ("a=1;   session=abc   ; b=2", "abc"),
        ('session="abc"', "abc"),
        ('a=1; session="abc.def"; b=2', "abc.def"),
        ('session=""', ""),
        ('session="', '"'),  # a lone quote is not a quoted value
        ('session="abc', '"abc'),
        ("session=", ""),
        ("session=a=b", "a=b"),
        ("session=abc; session=def", "abc"),  # first wins
        ("a=1; session=first; b=2; session=second", "first"),
        ("garbage; session=abc", "abc"),
        ("=x; session=abc", "abc"),
        (";;; session=abc ;;", "abc"),
        ("a=1; b; session=abc", "abc"),
        ("session; session=abc", "abc"),  # a bare name is not a pair
        ("xsession=1; sessionx=2; session=3", "3"),
        ("Session=abc", None),  # names are case-sensitive
        ("a=1; b=2", None),
        ("session", None),
        ("garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_read_cookie(header: str | None, expected: str | None) -> None:
    assert read_cookie(header, "session") == expected


def test_read_cookie_other_name() -> None:
    header = "session=a; __Host-sid=b; my.app=c"
    assert read_cookie(header, "__Host-sid") == "b"
    assert read_cookie(header, "my.app") == "c"
    assert read_cookie(header, "sid") is None


# -- render ----------------------------------------------------------------------


def _config(**overrides: Any) -> SessionConfig:
    return SessionConfig(secret_key=KEY, **overrides)


def test_render_set_cookie_defaults() -> None:
    header = render(SetCookie("sid.ts.sig", 3600), _config(), NOW)
    assert header == (
        "session=sid.ts.sig; Max-Age=3600; Expires=Tue, 14 Nov 2023 23:13:20 GMT; "
        "Path=/; HttpOnly; SameSite=Lax"
    )


def test_render_expire_cookie_defaults() -> None:
    header = render(ExpireCookie(), _config(), NOW)
    assert header == f"session=; Max-Age=0; Expires={EPOCH}; Path=/; HttpOnly; SameSite=Lax"


@pytest.mark.parametrize(
    ("max_age", "now", "expires"),
    [
        (3600, NOW, "Tue, 14 Nov 2023 23:13:20 GMT"),
        (1_209_600, NOW, "Tue, 28 Nov 2023 22:13:20 GMT"),
        (1, NOW, "Tue, 14 Nov 2023 22:13:21 GMT"),
        (1, NOW + 0.9, "Tue, 14 Nov 2023 22:13:21 GMT"),
    ],
)
def test_render_expires_follows_max_age(max_age: int, now: float, expires: str) -> None:
    header = render(SetCookie("v", max_age), _config(), now)
    assert f"; Max-Age={max_age}; Expires={expires}; " in header


def test_render_all_attributes() -> None:
    config = _config(
        cookie_name="__Secure-sid",
        cookie_domain="example.com",
        cookie_path="/app",
        cookie_secure=True,
        cookie_httponly=True,
        cookie_samesite="strict",
    )
    assert render(SetCookie("v", 60), config, NOW) == (
        "__Secure-sid=v; Max-Age=60; Expires=Tue, 14 Nov 2023 22:14:20 GMT; Path=/app; "
        "Domain=example.com; Secure; HttpOnly; SameSite=Strict"
    )
    assert render(ExpireCookie(), config, NOW) == (
        f"__Secure-sid=; Max-Age=0; Expires={EPOCH}; Path=/app; "
        "Domain=example.com; Secure; HttpOnly; SameSite=Strict"
    )


def test_render_minimal_attributes() -> None:
    config = _config(cookie_httponly=False, cookie_samesite=None)
    assert render(SetCookie("v", 60), config, NOW) == (
        "session=v; Max-Age=60; Expires=Tue, 14 Nov 2023 22:14:20 GMT; Path=/"
    )
    assert render(ExpireCookie(), config, NOW) == f"session=; Max-Age=0; Expires={EPOCH}; Path=/"


def test_render_samesite_none_needs_secure() -> None:
    config = _config(cookie_samesite="none", cookie_secure=True)
    header = render(SetCookie("v", 60), config, NOW)
    assert header.endswith("; Secure; HttpOnly; SameSite=None")


@pytest.mark.parametrize(
    ("overrides", "present", "absent"),
    [
        ({}, ["HttpOnly", "SameSite=Lax"], ["Secure", "Domain="]),
        ({"cookie_secure": True}, ["Secure", "HttpOnly"], ["Domain="]),
        ({"cookie_domain": ".example.org"}, ["Domain=.example.org"], ["Secure"]),
        ({"cookie_httponly": False}, ["SameSite=Lax"], ["HttpOnly"]),
        ({"cookie_samesite": None}, ["HttpOnly"], ["SameSite"]),
        ({"cookie_samesite": "STRICT"}, ["SameSite=Strict"], ["SameSite=Lax"]),
    ],
)
def test_render_attributes_per_config(
    overrides: dict[str, Any], present: list[str], absent: list[str]
) -> None:
    for action in (SetCookie("v", 60), ExpireCookie()):
        parts = render(action, _config(**overrides), NOW).split("; ")
        for attribute in present:
            assert any(part.startswith(attribute) for part in parts), (attribute, parts)
        for attribute in absent:
            assert not any(part.startswith(attribute) for part in parts), (attribute, parts)


def test_rendered_cookie_reads_back() -> None:
    header = render(SetCookie("abc.def.ghi", 60), _config(cookie_name="sid"), NOW)
    name_value = header.split("; ")[0]
    assert read_cookie(f"other=1; {name_value}", "sid") == "abc.def.ghi"
