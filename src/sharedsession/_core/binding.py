"""Binding a session to the client's IP address and/or User-Agent.

When binding is on, a fingerprint of the client is stored with the session when
it is created; a later request whose fingerprint differs sees a new, empty
session (a stolen cookie is then useless from another network or browser).

Trust model for the client address
----------------------------------
The only address we *know* is the TCP peer's. ``X-Forwarded-For`` is an
ordinary header that any client can send with any content, so it is ignored
unless the peer is one of the configured ``trusted_proxies``. Each trusted
proxy *appends* the address it received the request from, so the header is
only reliable from the right: we walk it right to left, skipping our own
proxies, and the first address that is not one of them is the client. Whatever
lies further left was written by the client (or by proxies we know nothing
about) and could be forged, which is why the leftmost entry is not used. If
that first untrusted entry is not an IP address at all (``unknown``, an
obfuscated identifier, garbage) nothing it says can be believed, and the
client is taken to be the last trusted hop, the one that handed it to us.
Bad input never raises: a garbage header must not turn into a 500.

Addresses are normalized so that the same client always compares equal: ports
and brackets are removed, IPv6 is in compressed lowercase form, an
IPv4-mapped IPv6 address (``::ffff:1.2.3.4``, as reported by dual-stack
sockets) becomes the plain IPv4 address, and an IPv6 zone id (``%eth0``) is
dropped because it names an interface of the host that saw the address, not
part of the client's address. An unbracketed IPv6 address with a port cannot
be told apart from a plain IPv6 address and is taken as an address.

What is compared
----------------
``bind_ip="exact"`` compares the address itself. ``"subnet"`` compares the
/24 network for IPv4 and the /64 for IPv6: mobile clients and carrier-grade
NATs change address within their network from one request to the next, and a
/64 is what an IPv6 site or device is typically given (privacy extensions
rotate the lower 64 bits regularly). The User-Agent is compared without its
version numbers, see :func:`normalize_user_agent`.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Sequence
from typing import Literal, TypeAlias

__all__ = [
    "BIND_IP_MODES",
    "BindIp",
    "Network",
    "binds",
    "check_bind_ip",
    "client_ip",
    "fingerprint",
    "ip_scope",
    "normalize_user_agent",
    "parse_networks",
]

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
BindIp = Literal["off", "exact", "subnet"]
BIND_IP_MODES: tuple[BindIp, ...] = ("off", "exact", "subnet")
_Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

_IPV4_SUBNET_PREFIX = 24
_IPV6_SUBNET_PREFIX = 64
_MAX_USER_AGENT_LENGTH = 512
_UNKNOWN_IP = "?"
_FINGERPRINT_BYTES = 16
# Bumped if the digest input ever changes, so old and new fingerprints cannot
# match by accident.
_FINGERPRINT_VERSION = "sharedsession.binding.v1"

_BRACKETED = re.compile(r"\[([^\[\]]+)\](?::[0-9]{1,5})?")
_IPV4_WITH_PORT = re.compile(r"([0-9.]+):[0-9]{1,5}")
_VERSION_NUMBER = re.compile(r"[0-9]+(?:[._][0-9]+)*")
# Android's build id ("Build/TP1A.220624.014", "Build/UP1A.231005.007"): letters
# and digits that change with every system update, like a version number.
_ANDROID_BUILD = re.compile(r"\bbuild/[^;)\s]*")
_MAPPED_PREFIX = 96  # ::ffff:0:0/96 holds the IPv4-mapped addresses


def check_bind_ip(mode: object) -> BindIp:
    """Return ``mode`` if it is a ``bind_ip`` setting, else raise ``ValueError``."""
    if mode not in BIND_IP_MODES:
        raise ValueError(f"bind_ip must be 'off', 'exact' or 'subnet', not {mode!r}")
    return mode


def binds(bind_ip: BindIp, bind_user_agent: bool) -> bool:
    """Whether these settings bind sessions to their client at all.

    When not, nothing about a request's client is compared (the fingerprint
    is ``""``), so adapters need not even read its address or User-Agent.
    """
    return bind_ip != "off" or bind_user_agent


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Parse the ``trusted_proxies`` setting.

    Entries are networks (``"10.0.0.0/8"``, ``"fd00::/8"``) or single addresses
    (``"192.168.1.7"`` is a /32, an IPv6 address a /128); host bits are allowed.
    Raises ``ValueError`` naming the bad entry, and ``TypeError`` for a bare
    string (iterating it would yield single characters) or a non-string entry.
    """
    if isinstance(cidrs, (str, bytes)):
        raise TypeError(f"trusted_proxies: expected a list of networks, got the string {cidrs!r}")
    networks: list[Network] = []
    for entry in cidrs:
        # ipaddress also accepts ints and packed bytes, which are never what
        # the user meant.
        if not isinstance(entry, str):
            raise TypeError(f"trusted_proxies: {entry!r} is a {type(entry).__name__}, not a str")
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {entry!r} is not an IP network") from exc
        # Addresses are normalized from IPv4-mapped to IPv4 before the trust
        # check, so a mapped network must be converted too or it never matches.
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= _MAPPED_PREFIX:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:
                network = ipaddress.IPv4Network((mapped, network.prefixlen - _MAPPED_PREFIX))
        networks.append(network)
    return tuple(networks)


def _parse_ip(text: str | None) -> _Address | None:
    """The normalized address in ``text``, or None if it is not one."""
    if text is None:
        return None
    text = text.strip()
    match = _BRACKETED.fullmatch(text) or _IPV4_WITH_PORT.fullmatch(text)
    if match is not None:
        text = match.group(1)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(int(address))
    return address


def _is_trusted(address: _Address, trusted: Sequence[Network]) -> bool:
    # `in` is simply False across IP versions, no need to sort them out.
    return any(address in network for network in trusted)


def client_ip(
    peer: str | None,
    forwarded_for: str | Sequence[str] | None,
    trusted: Sequence[Network],
) -> str | None:
    """The client's address as far as it can be believed, normalized.

    ``peer`` is the TCP peer (``REMOTE_ADDR``, ASGI ``scope["client"][0]``);
    ``forwarded_for`` is the ``X-Forwarded-For`` value, or its lines in order.
    ``X-Forwarded-For`` is used only when the peer is in ``trusted`` (see the
    module docstring). Returns None when the peer is not an IP address (None,
    a unix socket path, ``"testclient"``). Never raises on bad input.
    """
    peer_address = _parse_ip(peer)
    if peer_address is None:
        return None
    if not _is_trusted(peer_address, trusted):
        return str(peer_address)

    if forwarded_for is None:
        lines: Sequence[str] = ()
    elif isinstance(forwarded_for, str):
        lines = (forwarded_for,)
    else:
        lines = forwarded_for
    # Several header lines are one list (RFC 9110 field combination).
    entries = [entry.strip() for line in lines for entry in line.split(",")]

    hop = peer_address
    for entry in reversed(entries):
        if not entry:
            continue
        address = _parse_ip(entry)
        if address is None:
            return str(hop)
        if not _is_trusted(address, trusted):
            return str(address)
        hop = address
    return str(hop)


def ip_scope(ip: str | None, mode: BindIp) -> str:
    """What IP binding compares: the address, its /24 or /64, or nothing.

    An unknown (or unparseable) address gives ``"?"``, so a session created
    without a known address only matches requests without one.
    """
    if check_bind_ip(mode) == "off":
        return ""
    address = _parse_ip(ip)
    if address is None:
        return _UNKNOWN_IP
    if mode == "exact":
        return str(address)
    prefix = _IPV4_SUBNET_PREFIX if address.version == 4 else _IPV6_SUBNET_PREFIX
    return str(ipaddress.ip_network((address, prefix), strict=False))


def normalize_user_agent(user_agent: str | None) -> str:
    """What User-Agent binding compares: the header without version numbers.

    Chrome, Firefox, Edge and Safari ship a new version every few weeks, and
    every update changes the User-Agent string; binding to the full string would
    log users out after each update. So the header is lowercased, every version
    number (a run of digits with the dots or underscores between them:
    ``120.0.6099.109``, ``10_15_7``, ``5.0``) and Android's build id
    (``Build/UP1A.231005.007``, which every system update changes) are removed
    and whitespace is collapsed. The product tokens and platform words remain, so switching to
    another browser or operating system still changes the result. The result is
    capped at 512 characters so that huge headers cannot bloat anything.
    ``None`` gives ``""``.
    """
    if user_agent is None:
        return ""
    without_versions = _VERSION_NUMBER.sub("", _ANDROID_BUILD.sub("", user_agent.lower()))
    collapsed = " ".join(without_versions.split())
    return collapsed[:_MAX_USER_AGENT_LENGTH].rstrip()


def fingerprint(
    ip: str | None,
    user_agent: str | None,
    *,
    bind_ip: BindIp,
    bind_user_agent: bool,
) -> str:
    """The value stored with a session and compared on every request.

    ``""`` when nothing is bound. Otherwise 22 URL-safe characters: the first 16
    bytes of SHA-256, base64url without padding, over a JSON array of the
    binding settings and the compared values. JSON keeps the encoding
    unambiguous, and including the settings means different setups (say, exact
    IP without User-Agent versus User-Agent only) can never collide. The digest
    keeps the stored value small and fixed-size; it does not hide the address
    (the IPv4 space is small enough to search).
    """
    if not binds(bind_ip, bind_user_agent):
        return ""
    parts = [
        _FINGERPRINT_VERSION,
        bind_ip,
        ip_scope(ip, bind_ip),
        bind_user_agent,
        normalize_user_agent(user_agent) if bind_user_agent else "",
    ]
    encoded = json.dumps(parts, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    digest = hashlib.sha256(encoded).digest()[:_FINGERPRINT_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
