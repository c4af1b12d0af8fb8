"""Tests of SessionConfig: defaults, secret keys, and every invalid setting."""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

import pytest

from sharedsession import SessionConfig

KEY = "x" * 32


def test_defaults() -> None:
    config = SessionConfig(secret_key=KEY)
    assert config.redis_url == "redis://localhost:6379/1"
    assert config.redis is None
    assert config.redis_timeout == 1.0
    assert config.key_prefix == "sharedsession:"
    assert config.idle_timeout == 14 * 24 * 3600
    assert config.absolute_timeout is None
    assert config.bind_ip == "off"
    assert config.bind_user_agent is False
    assert config.trusted_proxies == ()
    assert config.trusted_networks == ()
    assert config.cookie_name == "session"
    assert config.cookie_domain is None
    assert config.cookie_path == "/"
    assert config.cookie_secure is False
    assert config.cookie_httponly is True
    assert config.cookie_samesite == "Lax"
    assert config.max_size == 64 * 1024
    assert config.secret_keys == (KEY,)


def test_secret_key_not_in_repr() -> None:
    config = SessionConfig(secret_key="very-secret-signing-key")
    assert "very-secret-signing-key" not in repr(config)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("lax", "Lax"),
        ("LAX", "Lax"),
        ("Lax", "Lax"),
        ("strict", "Strict"),
        ("sTrIcT", "Strict"),
        (None, None),
    ],
)
def test_samesite_canonicalised(given: str | None, expected: str | None) -> None:
    assert SessionConfig(secret_key=KEY, cookie_samesite=given).cookie_samesite == expected


@pytest.mark.parametrize("given", ["none", "None", "NONE"])
def test_samesite_none_with_secure(given: str) -> None:
    config = SessionConfig(secret_key=KEY, cookie_samesite=given, cookie_secure=True)
    assert config.cookie_samesite == "None"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("k1", ("k1",)),
        (b"k1", (b"k1",)),
        (["new", "old"], ("new", "old")),
        (["new", "mid", "old"], ("new", "mid", "old")),
        (("new", b"old"), ("new", b"old")),
        ([b"only"], (b"only",)),
    ],
)
def test_secret_keys_newest_first(given: Any, expected: tuple[str | bytes, ...]) -> None:
    config = SessionConfig(secret_key=given)
    assert config.secret_keys == expected


def test_secret_keys_is_a_copy_of_the_list() -> None:
    keys = ["new", "old"]
    config = SessionConfig(secret_key=keys)
    keys.append("later")
    assert config.secret_keys == ("new", "old")


BAD_SETTINGS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    # (id, overrides, exception type, field named in the message)
    ("empty-str-key", {"secret_key": ""}, ValueError, "secret_key"),
    ("empty-bytes-key", {"secret_key": b""}, ValueError, "secret_key"),
    ("empty-list", {"secret_key": []}, ValueError, "secret_key"),
    ("empty-tuple", {"secret_key": ()}, ValueError, "secret_key"),
    ("empty-key-in-list", {"secret_key": ["good", ""]}, ValueError, "secret_key"),
    ("non-str-key-in-list", {"secret_key": ["good", 5]}, TypeError, "secret_key"),
    ("none-key-in-list", {"secret_key": [None]}, TypeError, "secret_key"),
    ("int-key", {"secret_key": 12345}, TypeError, "secret_key"),
    ("none-key", {"secret_key": None}, TypeError, "secret_key"),
    ("dict-key", {"secret_key": {"a": "b"}}, TypeError, "secret_key"),
    ("http-url", {"redis_url": "http://localhost:6379/0"}, ValueError, "redis_url"),
    ("no-scheme-url", {"redis_url": "localhost:6379"}, ValueError, "redis_url"),
    ("empty-url", {"redis_url": ""}, ValueError, "redis_url"),
    ("non-str-url", {"redis_url": 6379}, TypeError, "redis_url"),
    ("timeout-0", {"redis_timeout": 0}, ValueError, "redis_timeout"),
    ("timeout-negative", {"redis_timeout": -1.0}, ValueError, "redis_timeout"),
    ("timeout-str", {"redis_timeout": "1"}, TypeError, "redis_timeout"),
    ("timeout-bool", {"redis_timeout": True}, TypeError, "redis_timeout"),
    ("prefix-open-brace", {"key_prefix": "app{1}:"}, ValueError, "key_prefix"),
    ("prefix-brace", {"key_prefix": "{"}, ValueError, "key_prefix"),
    ("prefix-close-brace", {"key_prefix": "a}"}, ValueError, "key_prefix"),
    ("prefix-non-str", {"key_prefix": 1}, TypeError, "key_prefix"),
    ("idle-0", {"idle_timeout": 0}, ValueError, "idle_timeout"),
    ("idle-negative", {"idle_timeout": -1}, ValueError, "idle_timeout"),
    ("idle-under-1s", {"idle_timeout": 0.5}, ValueError, "idle_timeout"),
    ("idle-true", {"idle_timeout": True}, TypeError, "idle_timeout"),
    ("idle-str", {"idle_timeout": "10"}, TypeError, "idle_timeout"),
    ("idle-none", {"idle_timeout": None}, TypeError, "idle_timeout"),
    ("idle-nan", {"idle_timeout": float("nan")}, ValueError, "idle_timeout"),
    ("idle-inf", {"idle_timeout": float("inf")}, ValueError, "idle_timeout"),
    ("absolute-0", {"absolute_timeout": 0}, ValueError, "absolute_timeout"),
    ("absolute-negative", {"absolute_timeout": -5}, ValueError, "absolute_timeout"),
    ("absolute-true", {"absolute_timeout": True}, TypeError, "absolute_timeout"),
    ("absolute-inf", {"absolute_timeout": float("inf")}, ValueError, "absolute_timeout"),
    ("bind-ip-yes", {"bind_ip": "yes"}, ValueError, "bind_ip"),
    ("bind-ip-true", {"bind_ip": True}, ValueError, "bind_ip"),
    ("bind-ip-upper", {"bind_ip": "EXACT"}, ValueError, "bind_ip"),
    ("bind-ua-str", {"bind_user_agent": "true"}, TypeError, "bind_user_agent"),
    ("bind-ua-int", {"bind_user_agent": 1}, TypeError, "bind_user_agent"),
    ("proxies-bare-str", {"trusted_proxies": "10.0.0.0/8"}, TypeError, "trusted_proxies"),
    ("proxies-bare-bytes", {"trusted_proxies": b"10.0.0.0/8"}, TypeError, "trusted_proxies"),
    ("proxies-bad-cidr", {"trusted_proxies": ["10.0.0.0/33"]}, ValueError, "trusted_proxies"),
    ("proxies-not-ip", {"trusted_proxies": ["proxy.local"]}, ValueError, "trusted_proxies"),
    ("proxies-int-entry", {"trusted_proxies": [167772160]}, TypeError, "trusted_proxies"),
    ("cookie-name-space", {"cookie_name": "a b"}, ValueError, "cookie_name"),
    ("cookie-name-semicolon", {"cookie_name": "a;b"}, ValueError, "cookie_name"),
    ("cookie-name-equals", {"cookie_name": "a=b"}, ValueError, "cookie_name"),
    ("cookie-name-empty", {"cookie_name": ""}, ValueError, "cookie_name"),
    ("cookie-name-non-ascii", {"cookie_name": "sessión"}, ValueError, "cookie_name"),
    ("cookie-name-int", {"cookie_name": 1}, TypeError, "cookie_name"),
    ("cookie-path-relative", {"cookie_path": "x"}, ValueError, "cookie_path"),
    ("cookie-path-empty", {"cookie_path": ""}, ValueError, "cookie_path"),
    ("cookie-path-semicolon", {"cookie_path": "/a;b"}, ValueError, "cookie_path"),
    ("cookie-path-newline", {"cookie_path": "/a\r\nSet-Cookie: x=1"}, ValueError, "cookie_path"),
    ("cookie-domain-semicolon", {"cookie_domain": "a;b"}, ValueError, "cookie_domain"),
    ("cookie-domain-comma", {"cookie_domain": "a,b"}, ValueError, "cookie_domain"),
    ("cookie-domain-space", {"cookie_domain": "example .com"}, ValueError, "cookie_domain"),
    ("cookie-domain-empty", {"cookie_domain": ""}, ValueError, "cookie_domain"),
    ("cookie-domain-int", {"cookie_domain": 1}, TypeError, "cookie_domain"),
    ("cookie-secure-str", {"cookie_secure": "yes"}, TypeError, "cookie_secure"),
    ("cookie-httponly-int", {"cookie_httponly": 1}, TypeError, "cookie_httponly"),
    ("samesite-bogus", {"cookie_samesite": "bogus"}, ValueError, "cookie_samesite"),
    ("samesite-empty", {"cookie_samesite": ""}, ValueError, "cookie_samesite"),
    (
        "samesite-none-insecure",
        {"cookie_samesite": "None", "cookie_secure": False},
        ValueError,
        "cookie_samesite",
    ),
    ("samesite-none-lower-insecure", {"cookie_samesite": "none"}, ValueError, "cookie_samesite"),
    ("host-prefix-insecure", {"cookie_name": "__Host-sid"}, ValueError, "cookie_name"),
    (
        "host-prefix-domain",
        {"cookie_name": "__Host-sid", "cookie_secure": True, "cookie_domain": "example.com"},
        ValueError,
        "cookie_name",
    ),
    (
        "host-prefix-path",
        {"cookie_name": "__Host-sid", "cookie_secure": True, "cookie_path": "/app"},
        ValueError,
        "cookie_name",
    ),
    ("secure-prefix-insecure", {"cookie_name": "__Secure-sid"}, ValueError, "cookie_name"),
    ("max-size-0", {"max_size": 0}, ValueError, "max_size"),
    ("max-size-negative", {"max_size": -1}, ValueError, "max_size"),
    ("max-size-true", {"max_size": True}, TypeError, "max_size"),
    ("max-size-float", {"max_size": 1024.0}, TypeError, "max_size"),
    ("max-size-str", {"max_size": "1024"}, TypeError, "max_size"),
]


@pytest.mark.parametrize(
    ("overrides", "error", "field_name"),
    [pytest.param(o, e, f, id=i) for i, o, e, f in BAD_SETTINGS],
)
def test_invalid_setting_raises_naming_the_field(
    overrides: dict[str, Any], error: type[Exception], field_name: str
) -> None:
    settings: dict[str, Any] = {"secret_key": KEY, **overrides}
    with pytest.raises(error) as excinfo:
        SessionConfig(**settings)
    # Exactly the documented type: a ValueError must not pass as a TypeError or vice versa.
    assert type(excinfo.value) is error
    assert f"SessionConfig.{field_name}" in str(excinfo.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"cookie_name": "__Host-sid", "cookie_secure": True},
        {"cookie_name": "__Secure-sid", "cookie_secure": True},
        {"cookie_name": "__Secure-sid", "cookie_secure": True, "cookie_domain": "example.com"},
        {"cookie_name": "my_app.sid-1"},
        {"cookie_domain": ".example.com", "cookie_path": "/app/"},
        {"redis_url": "rediss://user:pw@cache.example:6380/2"},
        {"redis_url": "unix:///var/run/redis.sock"},
        {"redis_timeout": 0.001},
        {"idle_timeout": 1},
        {"idle_timeout": 1.5, "absolute_timeout": 2.5},
        {"bind_ip": "exact", "bind_user_agent": True},
        {"bind_ip": "subnet"},
        {"key_prefix": ""},
        {"max_size": 1},
    ],
)
def test_valid_settings_are_accepted(overrides: dict[str, Any]) -> None:
    config = SessionConfig(secret_key=KEY, **overrides)
    for name, value in overrides.items():
        assert getattr(config, name) == value


def test_frozen() -> None:
    config = SessionConfig(secret_key=KEY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.cookie_name = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.secret_keys = ("other",)  # type: ignore[misc]
    assert config.cookie_name == "session"
    assert config.secret_keys == (KEY,)


def test_redis_client_given_skips_url_validation() -> None:
    client = object()
    config = SessionConfig(secret_key=KEY, redis=client, redis_url="http://not-redis")
    assert config.redis is client
    assert config.redis_url == "http://not-redis"


def test_redis_client_given_still_checks_other_fields() -> None:
    with pytest.raises(ValueError, match=r"SessionConfig\.idle_timeout"):
        SessionConfig(secret_key=KEY, redis=object(), idle_timeout=0)


def test_trusted_networks_parsed() -> None:
    config = SessionConfig(
        secret_key=KEY,
        trusted_proxies=["10.0.0.0/8", " 192.168.1.7 ", "fd00::/8", "172.16.5.9/12"],
    )
    assert config.trusted_proxies == ("10.0.0.0/8", " 192.168.1.7 ", "fd00::/8", "172.16.5.9/12")
    assert config.trusted_networks == (
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv4Network("192.168.1.7/32"),
        ipaddress.IPv6Network("fd00::/8"),
        ipaddress.IPv4Network("172.16.0.0/12"),
    )


def test_trusted_proxies_from_a_generator_become_a_tuple() -> None:
    config = SessionConfig(secret_key=KEY, trusted_proxies=(p for p in ["127.0.0.1"]))  # type: ignore[arg-type]
    assert config.trusted_proxies == ("127.0.0.1",)
    assert config.trusted_networks == (ipaddress.IPv4Network("127.0.0.1/32"),)
