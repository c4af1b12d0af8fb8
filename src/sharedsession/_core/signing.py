"""New sids, and the signed cookie value that carries one.

The cookie value is ``<sid>.<timestamp>.<signature>`` made by itsdangerous'
``TimestampSigner`` (HMAC-SHA256). A cookie that is missing, garbage, signed
with an unknown key or older than any live session could be is rejected here,
before Redis is asked anything.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Sequence

from itsdangerous import BadData, BadSignature, Signer, TimestampSigner
from itsdangerous.encoding import base64_decode, bytes_to_int, want_bytes

SID_BYTES = 32  # 256 bits from the OS's CSPRNG
_SID = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32), matched whole
# Replicas' clocks differ a little: a cookie stamped a moment "in the future"
# by a replica whose clock runs ahead is still ours.
CLOCK_SKEW_SECONDS = 60
_SALT = "sharedsession.cookie"
# Larger than any real cookie value; refuse to run HMAC over huge headers.
_MAX_COOKIE_LENGTH = 512


def new_sid() -> str:
    return secrets.token_urlsafe(SID_BYTES)


class _ClockSigner(TimestampSigner):
    """A TimestampSigner that reads the core's clock, so tests can move time."""

    def __init__(self, keys: list[bytes], clock: Callable[[], float]) -> None:
        super().__init__(keys, salt=_SALT, key_derivation="hmac", digest_method=hashlib.sha256)
        self._clock = clock
        self._derived: dict[bytes, bytes] = {}

    def get_timestamp(self) -> int:
        return int(self._clock())

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        # itsdangerous derives the signing key from the secret (an HMAC) each
        # time a value is signed or checked, per key tried; the result depends
        # only on the secret and the salt, so derive each key once.
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        derived = self._derived.get(secret)
        if derived is None:
            derived = self._derived[secret] = super().derive_key(secret)
        return derived

    def unsign_seconds(self, value: str) -> tuple[bytes, int]:
        """``unsign(value, return_timestamp=True)`` with the timestamp in whole seconds.

        The signature is checked by itsdangerous (``Signer.unsign``); only the
        timestamp's decoding is ours, skipping a datetime made just to be
        turned back into seconds. Raises BadSignature like ``unsign``.
        """
        signed = Signer.unsign(self, value)  # the signature over "<sid>.<timestamp>"
        sid, sep, stamp = signed.rpartition(want_bytes(self.sep))
        if not sep:
            raise BadSignature("timestamp missing")
        try:
            return sid, bytes_to_int(base64_decode(stamp))
        except BadData as exc:  # not base64
            raise BadSignature("malformed timestamp") from exc


class CookieSigner:
    """Turn a sid into a cookie value and back."""

    def __init__(self, secret_keys: Sequence[str | bytes], clock: Callable[[], float]) -> None:
        # Our config lists keys newest first; itsdangerous wants oldest first
        # and signs with the last one.
        keys = [key.encode() if isinstance(key, str) else key for key in reversed(secret_keys)]
        self._signer = _ClockSigner(keys, clock)

    def sign(self, sid: str) -> str:
        return self._signer.sign(sid).decode("ascii")

    def unsign(self, value: str, max_age_seconds: int) -> tuple[str, int] | None:
        """Return ``(sid, issued_at_seconds)``, or None if the value is not a live cookie of ours."""
        if not value or len(value) > _MAX_COOKIE_LENGTH or not value.isascii():
            return None
        try:
            raw, issued = self._signer.unsign_seconds(value)
        except BadSignature:
            return None
        sid = raw.decode("ascii")
        age = self._signer.get_timestamp() - issued
        if not _SID.fullmatch(sid) or not -CLOCK_SKEW_SECONDS <= age <= max_age_seconds:
            return None
        return sid, issued
