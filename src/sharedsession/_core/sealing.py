"""Encryption at rest: every stored session value sealed with an AEAD, bound to its session and field.

The core decides what is sealed, with which key, and how a sealed value is
laid out; the AEAD itself (AES-256-GCM from the ``cryptography`` package, in
``sharedsession/_aead.py``) is plugged in from outside through :class:`Cipher`,
so that the core keeps to the standard library. ``plan.py`` seals at the
storage boundary (the values CREATE and UPDATE write) and opens where it reads
a stored hash: in memory, ``Record.fields`` and ``Session._encoded`` stay
plaintext codec bytes, so the delta of a save and lazy decoding work as without
encryption. Only app values are sealed: the metadata fields (``#v``, ``#c``,
``#cap``, ``#u``, ``#fp``, ``#r``...) stay plain, for the Lua scripts read them.

A sealed value is ASCII text (LOAD answers the hash as JSON, which carries text,
not arbitrary bytes)::

    "~" <key id, 4 chars> <base64url, unpadded: nonce (12 bytes) | ciphertext | tag (16 bytes)>

- ``~``: no JSON text starts with it (codec.py stores JSON), so a value stored
  plain before encryption was turned on is read as plain, and sealed when it
  next changes. A future layout would take another marker.
- key id: 3 bytes of HMAC-SHA256(key, "sharedsession key id"): opening picks
  its key at once. The first key seals, every key opens (rotation).
- per-session key: HKDF-Expand (RFC 5869, one block; the configured key is
  uniformly random already, so no Extract) of the key with the session's
  handle. Nonces are random, and AES-GCM's budget for random 96-bit nonces is
  about 2**32 seals per key: a busy site would spend that on one key in days,
  one session never will. The derived ciphers of the last few hundred
  sessions are kept, so a request's save reuses what its load derived.
- associated data: the handle and the hash field name, so a sealed value
  copied to another session or another field does not open.

A value that does not open (unknown key id, tampered, copied) raises
:class:`UnopenedValueError`, a ``ValueError``: the planner treats the session
as undecodable data (a fresh session and a warning), never a partial one.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Callable, Sequence
from typing import Protocol

from sharedsession._core.keys import field_of
from sharedsession._core.ops import Arg

__all__ = [
    "KEY_BYTES",
    "MARKER",
    "Cipher",
    "CipherFactory",
    "Sealer",
    "UnopenedValueError",
    "key_id",
    "sealer_of",
    "sealing_keys",
]

#: The first character of every sealed value; no JSON text starts with it.
MARKER = "~"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_KEY_ID_CHARS = 4  # 3 bytes, in base64
#: Per-session ciphers kept, so that a request's save reuses what its load
#: derived (and a session's next request on this process, if it comes soon).
_CIPHERS_KEPT = 512
_KEY_ID_INFO = b"sharedsession key id"
_SEAL_INFO = b"sharedsession seal\x00"


class UnopenedValueError(ValueError):
    """A sealed value did not open: unknown key, tampered with, or copied from another session or field."""


class Cipher(Protocol):
    """An AEAD under one 32-byte key, with 12-byte nonces and 16-byte tags (AES-256-GCM)."""

    def seal(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        """The ciphertext, followed by the tag."""
        ...

    def open(self, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes | None:
        """The plaintext; None if ``sealed`` does not authenticate under this key, nonce and data."""
        ...


#: Makes the Cipher of a key; ``sharedsession._aead.AesGcm`` is one.
CipherFactory = Callable[[bytes], Cipher]


def key_id(key: bytes) -> str:
    """The short id stored with each value sealed by ``key`` (4 base64url characters).

    An HMAC under the key itself: it tells keys apart, and reveals nothing
    of them.
    """
    digest = hmac.digest(key, _KEY_ID_INFO, "sha256")
    return base64.urlsafe_b64encode(digest[:3]).decode("ascii")


def sealing_keys(value: object) -> tuple[bytes, ...]:
    """``SessionConfig.encryption_keys`` as 32-byte keys, newest first; () for none.

    Takes one key or a list; a key is 32 bytes, or their base64 text (standard
    or URL-safe alphabet, padding optional). Raises TypeError or ValueError
    naming the field.
    """
    given: tuple[object, ...]
    if isinstance(value, str | bytes):
        given = (value,)
    elif isinstance(value, Sequence):
        given = tuple(value)
    else:
        raise TypeError(
            "SessionConfig.encryption_keys must be a list of keys (bytes or base64 str), "
            f"got {type(value).__name__}"
        )
    keys: list[bytes] = []
    for i, entry in enumerate(given):
        if isinstance(entry, str):
            text = entry.strip()
            try:
                key = base64.b64decode(
                    text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4), validate=True
                )
            except (binascii.Error, ValueError):
                raise ValueError(f"SessionConfig.encryption_keys[{i}] is not base64 text") from None
        elif isinstance(entry, bytes):
            key = entry
        else:
            raise TypeError(
                "SessionConfig.encryption_keys entries must be bytes or base64 str, "
                f"got {type(entry).__name__}"
            )
        if len(key) != KEY_BYTES:
            raise ValueError(
                f"SessionConfig.encryption_keys[{i}] must be {KEY_BYTES} bytes (or their base64 text), "
                f"got {len(key)} bytes"
            )
        if key in keys:
            raise ValueError(f"SessionConfig.encryption_keys[{i}] is listed twice")
        keys.append(key)
    return tuple(keys)


def sealer_of(keys: Sequence[bytes], cipher: CipherFactory | None) -> Sealer | None:
    """The Sealer of ``SessionConfig.encryption_keys``; None when there are none (values stored plain)."""
    if not keys:
        return None
    if cipher is None:
        raise ValueError(
            "SessionConfig.encryption_keys is set but no cipher was given "
            "(SessionStore and AsyncSessionStore plug in AES-256-GCM)"
        )
    return Sealer(keys, cipher)


class Sealer:
    """Seals app values for one set of keys (newest first: the first seals, all open)."""

    __slots__ = ("_cipher", "_ciphers", "_keys", "_newest")

    def __init__(self, keys: Sequence[bytes], cipher: CipherFactory) -> None:
        ids = [key_id(key) for key in keys]
        if not ids:
            raise ValueError("SessionConfig.encryption_keys: no key to seal with")
        if len(set(ids)) != len(ids):
            # Equal keys are refused by SessionConfig; distinct keys share an id once in 2**24 pairs.
            raise ValueError("SessionConfig.encryption_keys: two keys share a key id; replace one of them")
        self._keys = dict(zip(ids, keys, strict=True))
        self._newest = ids[0]
        self._cipher = cipher
        self._ciphers: dict[tuple[str, str], Cipher] = {}

    def seal_pairs(self, handle: str, pairs: Sequence[Arg]) -> list[Arg]:
        """Field/value pairs, as CREATE and UPDATE take them, with every value sealed for ``handle``."""
        if not pairs:
            return []
        cipher = self._session_cipher(self._newest, handle)
        head = MARKER + self._newest
        sealed: list[Arg] = []
        for i in range(0, len(pairs), 2):
            name, raw = pairs[i], pairs[i + 1]
            if not isinstance(name, str) or not isinstance(raw, bytes):
                raise TypeError(f"seal_pairs takes (field name, bytes) pairs, got {type(raw).__name__}")
            nonce = os.urandom(NONCE_BYTES)
            blob = nonce + cipher.seal(nonce, raw, _associated_data(handle, name))
            sealed += (name, head + base64.urlsafe_b64encode(blob).rstrip(b"=").decode("ascii"))
        return sealed

    def open_texts(self, handle: str, texts: dict[str, str]) -> dict[str, str]:
        """App key -> stored text, with every sealed value opened (plain ones as they are).

        ``texts`` itself when nothing in it is sealed. Raises UnopenedValueError
        (a ValueError) naming the key of a value that does not open.
        """
        opened: dict[str, str] | None = None
        for key, text in texts.items():
            if text[:1] != MARKER:
                continue
            if opened is None:
                opened = dict(texts)
            opened[key] = self._open(handle, key, text)
        return texts if opened is None else opened

    def _open(self, handle: str, key: str, text: str) -> str:
        kid = text[1 : 1 + _KEY_ID_CHARS]
        if kid not in self._keys:
            raise UnopenedValueError(f"session[{key!r}] was sealed with a key not configured (id {kid!r})")
        body = text[1 + _KEY_ID_CHARS :]
        try:
            blob = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            blob = b""
        plain = None
        if len(blob) >= NONCE_BYTES + TAG_BYTES:
            nonce, sealed = blob[:NONCE_BYTES], blob[NONCE_BYTES:]
            cipher = self._session_cipher(kid, handle)
            plain = cipher.open(nonce, sealed, _associated_data(handle, field_of(key)))
        if plain is None:
            raise UnopenedValueError(
                f"session[{key!r}]: sealed value does not open (tampered with, or copied from "
                "another session or field)"
            )
        try:
            return plain.decode("utf-8")
        except UnicodeDecodeError as exc:  # authentic, so ours: never happens short of a bug
            raise UnopenedValueError(f"session[{key!r}]: opened value is not UTF-8") from exc

    def _session_cipher(self, kid: str, handle: str) -> Cipher:
        cipher = self._ciphers.get((kid, handle))
        if cipher is None:
            if len(self._ciphers) >= _CIPHERS_KEPT:
                self._ciphers.clear()  # cheaper than keeping an order; most entries are one request's
            # HKDF-Expand, one block: T(1) = HMAC(key, info | 0x01).
            info = _SEAL_INFO + handle.encode("ascii") + b"\x01"
            cipher = self._ciphers[(kid, handle)] = self._cipher(hmac.digest(self._keys[kid], info, "sha256"))
        return cipher


def _associated_data(handle: str, field: str) -> bytes:
    # A handle is 32 hex digits: the NUL after it keeps the two parts apart.
    return f"{handle}\x00{field}".encode()
