"""AES-256-GCM from the ``cryptography`` package: the cipher of encryption at rest.

The core (``_core/sealing.py``) decides what is sealed and how; it defines the
small :class:`~sharedsession._core.sealing.Cipher` interface this module fills,
so that the core imports only the standard library. The stores import this
module only when ``SessionConfig.encryption_keys`` is set: without the
``encryption`` extra installed, that is where a clear ImportError is raised.

Why AES-256-GCM: the most widely deployed AEAD, hardware-accelerated on every
server CPU (AES-NI, ARMv8 crypto extensions), FIPS-approved, and measured here
a little faster than ChaCha20-Poly1305 for session-sized values. Its limit,
about 2**32 seals per key with random 96-bit nonces, is met by sealing under
a key per session (sealing.py).
"""

from __future__ import annotations

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:
    raise ImportError(
        "SessionConfig.encryption_keys needs the cryptography package: "
        "pip install 'sharedsession[encryption]'"
    ) from exc

__all__ = ["AesGcm"]


class AesGcm:
    """The core's Cipher (``sealing.Cipher``) as AES-256-GCM: 12-byte nonces, 16-byte tags."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        return self._aead.encrypt(nonce, plaintext, associated_data)

    def open(self, nonce: bytes, sealed: bytes, associated_data: bytes) -> bytes | None:
        try:
            return self._aead.decrypt(nonce, sealed, associated_data)
        except InvalidTag:
            return None
