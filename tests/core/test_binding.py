"""Tests of sharedsession._core.binding (pure functions, no Redis)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Sequence

import pytest

from sharedsession._core.binding import (
    BindIp,
    Network,
    client_ip,
    fingerprint,
    ip_scope,
    normalize_user_agent,
    parse_networks,
)

CHROME_120_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36"
)
CHROME_121_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/121.0.6167.85 Safari/537.36"
)
CHROME_120_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36"
)
CHROME_121_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/121.0.6167.85 Safari/537.36"
)
FIREFOX_120_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:120.0) Gecko/20100101 Firefox/120.0"
FIREFOX_121_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0"
CHROME_ANDROID_13 = (
    "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TP1A.220624.014) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/119.0.6045.163 Mobile Safari/537.36"
)
# The same phone after a system update (Android 14, a new build) and a browser update.
CHROME_ANDROID_14 = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/UP1A.231005.007) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36"
)
WEBVIEW_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.43 Mobile Safari/537.36"
)
SAFARI_17_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Safari/605.1.15"
)
SAFARI_17_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
)

PROXY = parse_networks(["10.0.0.0/8"])
PROXIES = parse_networks(["10.0.0.0/8", "192.168.1.7", "fd00::/8"])
NO_PROXIES: tuple[Network, ...] = ()


# --- parse_networks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cidrs", "expected"),
    [
        ([], ()),
        (["10.0.0.0/8"], (ipaddress.IPv4Network("10.0.0.0/8"),)),
        (["192.168.1.7"], (ipaddress.IPv4Network("192.168.1.7/32"),)),
        (["fd00::/8"], (ipaddress.IPv6Network("fd00::/8"),)),
        (["2001:db8::1"], (ipaddress.IPv6Network("2001:db8::1/128"),)),
        # strict=False: host bits are allowed and cleared
        (["10.1.2.3/8"], (ipaddress.IPv4Network("10.0.0.0/8"),)),
        (["2001:db8::1/32"], (ipaddress.IPv6Network("2001:db8::/32"),)),
        ([" 172.16.0.0/12 "], (ipaddress.IPv4Network("172.16.0.0/12"),)),
        # IPv4-mapped networks become IPv4, like the addresses checked against them
        (["::ffff:10.0.0.0/104"], (ipaddress.IPv4Network("10.0.0.0/8"),)),
        (["::ffff:1.2.3.4"], (ipaddress.IPv4Network("1.2.3.4/32"),)),
        (
            ["10.0.0.0/8", "192.168.1.7", "fd00::/8"],
            (
                ipaddress.IPv4Network("10.0.0.0/8"),
                ipaddress.IPv4Network("192.168.1.7/32"),
                ipaddress.IPv6Network("fd00::/8"),
            ),
        ),
    ],
)
def test_parse_networks(cidrs: list[str], expected: tuple[Network, ...]) -> None:
    assert parse_networks(cidrs) == expected


def test_parse_networks_accepts_any_iterable() -> None:
    assert parse_networks(c for c in ("10.0.0.0/8", "fd00::/8")) == (
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv6Network("fd00::/8"),
    )


@pytest.mark.parametrize(
    "bad",
    ["10.0.0.300", "10.0.0.0/33", "fd00::/129", "example.com", "", "10.0.0.0/8/8", "unknown"],
)
def test_parse_networks_names_bad_entry(bad: str) -> None:
    message = f"trusted_proxies: {bad!r} is not an IP network"
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_networks(["10.0.0.0/8", bad])


@pytest.mark.parametrize("bare", ["10.0.0.0/8", "", b"10.0.0.0/8"])
def test_parse_networks_rejects_bare_string(bare: object) -> None:
    with pytest.raises(TypeError, match="expected a list of networks"):
        parse_networks(bare)  # type: ignore[arg-type]


@pytest.mark.parametrize("entry", [10, None, b"\n\x00\x00\x01"])
def test_parse_networks_rejects_non_str_entry(entry: object) -> None:
    with pytest.raises(TypeError, match=r"trusted_proxies: .* not a str"):
        parse_networks(["10.0.0.0/8", entry])  # type: ignore[list-item]


# --- client_ip ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        # spoofing attempt: nobody is trusted, so the header is ignored
        ("203.0.113.5", "1.2.3.4", "203.0.113.5"),
        ("203.0.113.5", ["1.2.3.4", "5.6.7.8"], "203.0.113.5"),
        ("10.0.0.1", "1.2.3.4", "10.0.0.1"),
        ("2001:db8::5", "1.2.3.4", "2001:db8::5"),
    ],
)
def test_client_ip_without_trusted_proxies_ignores_header(
    peer: str, forwarded_for: str | list[str] | None, expected: str
) -> None:
    assert client_ip(peer, forwarded_for, NO_PROXIES) == expected


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # untrusted peer (not in 10/8) sends the header: ignored
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),
        ("203.0.113.9", "10.0.0.2", "203.0.113.9"),
        # single trusted proxy: the rightmost entry is the client
        ("10.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("10.0.0.1", "198.51.100.1, 203.0.113.5", "203.0.113.5"),
        # spoofed left part: the client wrote 6.6.6.6 itself
        ("10.0.0.1", "6.6.6.6, 203.0.113.5", "203.0.113.5"),
        # trusted proxy but no or empty header: the proxy itself
        ("10.0.0.1", None, "10.0.0.1"),
        ("10.0.0.1", "", "10.0.0.1"),
        ("10.0.0.1", [], "10.0.0.1"),
    ],
)
def test_client_ip_single_trusted_proxy(
    peer: str, forwarded_for: str | list[str] | None, expected: str
) -> None:
    assert client_ip(peer, forwarded_for, PROXY) == expected


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # client -> 192.168.1.7 -> 10.0.0.3 -> 10.0.0.1 -> us
        ("10.0.0.1", "203.0.113.5, 192.168.1.7, 10.0.0.3", "203.0.113.5"),
        ("10.0.0.1", "6.6.6.6, 203.0.113.5, 192.168.1.7, 10.0.0.3", "203.0.113.5"),
        # an untrusted hop in the middle is the client, even if trusted ones precede it
        ("10.0.0.1", "10.9.9.9, 198.51.100.7, 10.0.0.3", "198.51.100.7"),
        # 192.168.1.8 is not the trusted 192.168.1.7/32
        ("10.0.0.1", "203.0.113.5, 192.168.1.8, 10.0.0.3", "192.168.1.8"),
        # all trusted: the leftmost entry
        ("10.0.0.1", "10.1.1.1, 192.168.1.7, 10.0.0.3", "10.1.1.1"),
        ("192.168.1.7", "10.0.0.4", "10.0.0.4"),
        # IPv6 trusted network, IPv6 peer and entries
        ("fd00::1", "2001:db8::5", "2001:db8::5"),
        ("fd00::1", "2001:db8::6, 2001:DB8:0:0::5, fd12::3", "2001:db8::5"),
        ("fd00::1", "203.0.113.5, fd12::3", "203.0.113.5"),
        ("10.0.0.1", "2001:db8::5, fd12::3", "2001:db8::5"),
        ("fd00::1", "fd00::7, 10.0.0.2", "fd00::7"),
        ("2001:db8::9", "2001:db8::5", "2001:db8::9"),
    ],
)
def test_client_ip_chain_of_trusted_proxies(peer: str, forwarded_for: str, expected: str) -> None:
    assert client_ip(peer, forwarded_for, PROXIES) == expected


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # the first untrusted entry is garbage: believe the hop that handed it over
        ("10.0.0.1", "unknown", "10.0.0.1"),
        ("10.0.0.1", "203.0.113.5, unknown", "10.0.0.1"),
        ("10.0.0.1", "203.0.113.5, _hidden, 10.0.0.3", "10.0.0.3"),
        ("10.0.0.1", "1.2.3.4, garbage, 192.168.1.7, 10.0.0.3", "192.168.1.7"),
        ("10.0.0.1", "203.0.113.5, 10.0.0.300", "10.0.0.1"),
        ("10.0.0.1", "203.0.113.5, 10.0.0.3:port", "10.0.0.1"),
        # garbage left of the client is never looked at
        ("10.0.0.1", "garbage, 203.0.113.5", "203.0.113.5"),
        ("10.0.0.1", "garbage, 203.0.113.5, 10.0.0.3", "203.0.113.5"),
        # garbage left of trusted-only entries
        ("10.0.0.1", "unknown, 10.0.0.3", "10.0.0.3"),
    ],
)
def test_client_ip_garbage_entry(peer: str, forwarded_for: str, expected: str) -> None:
    assert client_ip(peer, forwarded_for, PROXIES) == expected


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        (["6.6.6.6", "203.0.113.5"], "203.0.113.5"),
        (["6.6.6.6, 203.0.113.5", "10.0.0.3"], "203.0.113.5"),
        (["203.0.113.5", "10.0.0.3, 192.168.1.7"], "203.0.113.5"),
        (("198.51.100.1", "203.0.113.5, 10.0.0.3"), "203.0.113.5"),
        (["10.0.0.4", "10.0.0.3"], "10.0.0.4"),
        (["203.0.113.5", ""], "203.0.113.5"),
        ([""], "10.0.0.1"),
    ],
)
def test_client_ip_multiple_header_lines(forwarded_for: Sequence[str], expected: str) -> None:
    assert client_ip("10.0.0.1", forwarded_for, PROXIES) == expected


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        (" 203.0.113.5 ", "203.0.113.5"),
        ("203.0.113.5 ,\t10.0.0.3", "203.0.113.5"),
        (", ,", "10.0.0.1"),
        (" ", "10.0.0.1"),
        ("203.0.113.5, , 10.0.0.3,", "203.0.113.5"),
        ("203.0.113.5,,10.0.0.3", "203.0.113.5"),
        (",203.0.113.5", "203.0.113.5"),
        ("10.0.0.4, ,", "10.0.0.4"),
    ],
)
def test_client_ip_whitespace_and_empty_entries(forwarded_for: str, expected: str) -> None:
    assert client_ip("10.0.0.1", forwarded_for, PROXIES) == expected


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.5:54321", None, "203.0.113.5"),
        ("[2001:db8::1]:443", None, "2001:db8::1"),
        ("[2001:db8::1]", None, "2001:db8::1"),
        ("10.0.0.1:8080", "203.0.113.5:1234", "203.0.113.5"),
        ("10.0.0.1", "[2001:db8::1]:443", "2001:db8::1"),
        ("10.0.0.1", "[2001:DB8::1]", "2001:db8::1"),
        ("10.0.0.1", "203.0.113.5, 10.0.0.3:80", "203.0.113.5"),
        ("10.0.0.1", "203.0.113.5, [fd00::3]:80", "203.0.113.5"),
        ("[fd00::1]:9000", "203.0.113.5", "203.0.113.5"),
    ],
)
def test_client_ip_ports_and_brackets(peer: str, forwarded_for: str | None, expected: str) -> None:
    assert client_ip(peer, forwarded_for, PROXIES) == expected


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", None, "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", None, "2001:db8::1:0:0:1"),
        ("::1", None, "::1"),
        # zone ids are dropped
        ("fe80::1%eth0", None, "fe80::1"),
        ("[fe80::1%eth0]:443", None, "fe80::1"),
        ("fd00::1", "fe80::2%en0", "fe80::2"),
        ("fd00::1%lo", "2001:db8::5", "2001:db8::5"),
    ],
)
def test_client_ip_ipv6_normalization(peer: str, forwarded_for: str | None, expected: str) -> None:
    assert client_ip(peer, forwarded_for, PROXIES) == expected


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("::ffff:203.0.113.5", None, "203.0.113.5"),
        ("::FFFF:cb00:7105", None, "203.0.113.5"),
        ("[::ffff:203.0.113.5]:443", None, "203.0.113.5"),
        # a mapped peer is checked against the IPv4 trusted networks
        ("::ffff:10.0.0.1", "203.0.113.5", "203.0.113.5"),
        ("10.0.0.1", "::ffff:203.0.113.5", "203.0.113.5"),
        ("10.0.0.1", "::ffff:203.0.113.5, ::ffff:10.0.0.3", "203.0.113.5"),
        ("10.0.0.1", "::ffff:10.0.0.4", "10.0.0.4"),
    ],
)
def test_client_ip_ipv4_mapped(peer: str, forwarded_for: str | None, expected: str) -> None:
    assert client_ip(peer, forwarded_for, PROXIES) == expected


@pytest.mark.parametrize("peer", [None, "", " ", "testclient", "/run/app.sock", "unknown", "::g"])
@pytest.mark.parametrize("forwarded_for", [None, "203.0.113.5"])
@pytest.mark.parametrize("trusted", [NO_PROXIES, PROXIES])
def test_client_ip_invalid_peer_is_none(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> None:
    assert client_ip(peer, forwarded_for, trusted) is None


@pytest.mark.parametrize(
    "garbage",
    [
        "[",
        "]",
        "[]",
        "[]:80",
        "[::1",
        "::1]:80",
        "1.2.3.4:",
        "1.2.3.4:99999999",
        ":::",
        "%",
        "fe80::1%",
        "1.2.3.4%eth0",
        "\x00",
        "\u0661.\u0662.\u0663.\u0664",
        "1" * 100_000,
        ",".join(["garbage"] * 10_000),
        "203.0.113.5;proto=https",
        'for="[2001:db8::1]"',
    ],
)
def test_client_ip_never_raises(garbage: str) -> None:
    assert client_ip(garbage, garbage, PROXIES) is None
    assert client_ip("10.0.0.1", garbage, PROXIES) == "10.0.0.1"
    assert client_ip("10.0.0.1", [garbage, garbage], PROXIES) == "10.0.0.1"


# --- ip_scope -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "mode", "expected"),
    [
        ("203.0.113.5", "exact", "203.0.113.5"),
        ("203.0.113.5", "subnet", "203.0.113.0/24"),
        ("203.0.113.255", "subnet", "203.0.113.0/24"),
        ("203.0.113.5", "off", ""),
        ("2001:db8:1:2:3:4:5:6", "exact", "2001:db8:1:2:3:4:5:6"),
        ("2001:DB8:1:2:3:4:5:6", "subnet", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "subnet", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:3:4:5:6", "off", ""),
        # normalized like client_ip's results
        (" 203.0.113.5:80 ", "exact", "203.0.113.5"),
        ("::ffff:203.0.113.5", "exact", "203.0.113.5"),
        ("::ffff:203.0.113.5", "subnet", "203.0.113.0/24"),
        ("fe80::1%eth0", "exact", "fe80::1"),
        # unknown address
        (None, "exact", "?"),
        (None, "subnet", "?"),
        (None, "off", ""),
        ("testclient", "exact", "?"),
        ("testclient", "subnet", "?"),
    ],
)
def test_ip_scope(ip: str | None, mode: BindIp, expected: str) -> None:
    assert ip_scope(ip, mode) == expected


@pytest.mark.parametrize("mode", ["Exact", "", "on", "subnet24"])
def test_ip_scope_rejects_unknown_mode(mode: str) -> None:
    with pytest.raises(ValueError, match="bind_ip must be"):
        ip_scope("203.0.113.5", mode)  # type: ignore[arg-type]


# --- normalize_user_agent -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (
            CHROME_120_WIN,
            "mozilla/ (windows nt ; win; x) applewebkit/ (khtml, like gecko) chrome/ safari/",
        ),
        (
            SAFARI_17_MAC,
            "mozilla/ (macintosh; intel mac os x ) applewebkit/ (khtml, like gecko) version/ safari/",
        ),
        (FIREFOX_121_WIN, "mozilla/ (windows nt ; win; x; rv:) gecko/ firefox/"),
        ("curl/8.4.0", "curl/"),
        ("  My  Bot\t/ 1.0 \n", "my bot /"),
        ("python-requests/2.31.0", "python-requests/"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalize_user_agent(user_agent: str | None, expected: str) -> None:
    assert normalize_user_agent(user_agent) == expected


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (CHROME_120_WIN, CHROME_121_WIN),
        (CHROME_120_MAC, CHROME_121_MAC),
        (FIREFOX_120_WIN, FIREFOX_121_WIN),
        (SAFARI_17_MAC, SAFARI_17_MAC.replace("17.1", "17.2.1")),
        (CHROME_120_WIN, CHROME_120_WIN.upper()),
        (CHROME_ANDROID_13, CHROME_ANDROID_14),  # a system update changes the build id too
    ],
)
def test_normalize_user_agent_ignores_browser_updates(old: str, new: str) -> None:
    assert old != new
    assert normalize_user_agent(old) == normalize_user_agent(new)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (FIREFOX_120_WIN, CHROME_120_WIN),  # browser
        (CHROME_120_WIN, CHROME_120_MAC),  # operating system
        (CHROME_120_MAC, SAFARI_17_MAC),  # browser on the same OS
        (SAFARI_17_MAC, SAFARI_17_IPHONE),  # device
        (CHROME_ANDROID_14, WEBVIEW_ANDROID),  # browser vs an app's web view, other phone
        (CHROME_ANDROID_14, SAFARI_17_IPHONE),
    ],
)
def test_normalize_user_agent_keeps_browser_and_platform(one: str, other: str) -> None:
    assert normalize_user_agent(one) != normalize_user_agent(other)


def test_normalize_user_agent_caps_length() -> None:
    result = normalize_user_agent("A" * 100_000)
    assert result == "a" * 512
    assert len(normalize_user_agent(CHROME_120_WIN + " x" * 100_000)) <= 512
    # no trailing space left by the cut
    assert normalize_user_agent("ab " * 1000) == ("ab " * 171)[:512].rstrip()


# --- fingerprint ----------------------------------------------------------------------------------


def _expected_fingerprint(bind_ip: str, scope: str, bind_user_agent: bool, normalized_user_agent: str) -> str:
    encoded = json.dumps(
        ["sharedsession.binding.v1", bind_ip, scope, bind_user_agent, normalized_user_agent],
        separators=(",", ":"),
    ).encode()
    digest = hashlib.sha256(encoded).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.mark.parametrize("ip", ["203.0.113.5", None, "garbage"])
@pytest.mark.parametrize("user_agent", [CHROME_120_WIN, None])
def test_fingerprint_empty_when_nothing_bound(ip: str | None, user_agent: str | None) -> None:
    assert fingerprint(ip, user_agent, bind_ip="off", bind_user_agent=False) == ""


def test_fingerprint_exact_values() -> None:
    # Pinned: changing them invalidates every bound session in production.
    assert (
        fingerprint("203.0.113.5", None, bind_ip="exact", bind_user_agent=False) == "0lhtNFvwoT0a9lqGj1irXw"
    )
    assert (
        fingerprint("203.0.113.5", FIREFOX_121_WIN, bind_ip="exact", bind_user_agent=False)
        == "0lhtNFvwoT0a9lqGj1irXw"
    )
    assert fingerprint(
        "203.0.113.5", CHROME_120_WIN, bind_ip="subnet", bind_user_agent=True
    ) == _expected_fingerprint("subnet", "203.0.113.0/24", True, normalize_user_agent(CHROME_121_WIN))
    assert fingerprint(None, SAFARI_17_MAC, bind_ip="off", bind_user_agent=True) == (
        _expected_fingerprint("off", "", True, normalize_user_agent(SAFARI_17_MAC))
    )


@pytest.mark.parametrize(
    ("bind_ip", "bind_user_agent"),
    [("exact", False), ("subnet", False), ("off", True), ("exact", True), ("subnet", True)],
)
@pytest.mark.parametrize("ip", ["203.0.113.5", "2001:db8::1", None])
@pytest.mark.parametrize("user_agent", [CHROME_120_WIN, None, ""])
def test_fingerprint_shape_and_stability(
    bind_ip: BindIp, bind_user_agent: bool, ip: str | None, user_agent: str | None
) -> None:
    first = fingerprint(ip, user_agent, bind_ip=bind_ip, bind_user_agent=bind_user_agent)
    again = fingerprint(ip, user_agent, bind_ip=bind_ip, bind_user_agent=bind_user_agent)
    assert first == again
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", first)


@pytest.mark.parametrize(
    ("ip1", "ip2", "bind_ip", "same"),
    [
        ("203.0.113.5", "203.0.113.200", "subnet", True),
        ("203.0.113.5", "203.0.114.5", "subnet", False),
        ("203.0.113.5", "198.51.100.5", "subnet", False),
        ("2001:db8:1:2::1", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "subnet", True),
        ("2001:db8:1:2::1", "2001:db8:1:3::1", "subnet", False),
        ("203.0.113.5", "203.0.113.200", "exact", False),
        ("203.0.113.5", "203.0.113.5:443", "exact", True),
        ("203.0.113.5", "::ffff:203.0.113.5", "exact", True),
        ("2001:db8::1", "2001:DB8:0::1", "exact", True),
        ("2001:db8::1", "2001:db8::2", "exact", False),
        ("203.0.113.5", None, "exact", False),
        ("203.0.113.5", None, "subnet", False),
        (None, None, "exact", True),
        (None, "testclient", "subnet", True),
    ],
)
def test_fingerprint_ip_binding(ip1: str | None, ip2: str | None, bind_ip: BindIp, same: bool) -> None:
    fp1 = fingerprint(ip1, CHROME_120_WIN, bind_ip=bind_ip, bind_user_agent=False)
    fp2 = fingerprint(ip2, FIREFOX_120_WIN, bind_ip=bind_ip, bind_user_agent=False)
    assert (fp1 == fp2) is same


@pytest.mark.parametrize(
    ("ua1", "ua2", "same"),
    [
        (CHROME_120_WIN, CHROME_121_WIN, True),
        (FIREFOX_120_WIN, FIREFOX_121_WIN, True),
        (CHROME_120_WIN, FIREFOX_120_WIN, False),
        (CHROME_120_WIN, CHROME_120_MAC, False),
        (SAFARI_17_MAC, SAFARI_17_IPHONE, False),
        (CHROME_120_WIN, None, False),
        (None, "", True),
    ],
)
@pytest.mark.parametrize("bind_ip", ["off", "exact", "subnet"])
def test_fingerprint_user_agent_binding(
    ua1: str | None, ua2: str | None, same: bool, bind_ip: BindIp
) -> None:
    fp1 = fingerprint("203.0.113.5", ua1, bind_ip=bind_ip, bind_user_agent=True)
    fp2 = fingerprint("203.0.113.5", ua2, bind_ip=bind_ip, bind_user_agent=True)
    assert (fp1 == fp2) is same


def test_fingerprint_setups_do_not_collide() -> None:
    ip, ua = "203.0.113.5", CHROME_120_WIN
    setups: list[tuple[BindIp, bool]] = [
        ("exact", False),
        ("subnet", False),
        ("off", True),
        ("exact", True),
        ("subnet", True),
    ]
    fingerprints = {
        fingerprint(ip, ua, bind_ip=bind_ip, bind_user_agent=bind_ua) for bind_ip, bind_ua in setups
    }
    assert len(fingerprints) == len(setups)
    # an unknown address with an empty User-Agent is still told apart per setup
    assert fingerprint(None, None, bind_ip="exact", bind_user_agent=False) != fingerprint(
        None, None, bind_ip="off", bind_user_agent=True
    )
    assert fingerprint(None, None, bind_ip="exact", bind_user_agent=False) != fingerprint(
        None, None, bind_ip="subnet", bind_user_agent=False
    )


def test_fingerprint_no_collision_when_ua_equals_ip_scope() -> None:
    # "abc::" is both an IPv6 address and a User-Agent that normalizes to itself
    assert ip_scope("abc::", "exact") == normalize_user_agent("abc::") == "abc::"
    exact_only = fingerprint("abc::", None, bind_ip="exact", bind_user_agent=False)
    ua_only = fingerprint(None, "abc::", bind_ip="off", bind_user_agent=True)
    assert exact_only != ua_only
