"""Exceptions raised by sharedsession (defined in the core, public here).

A bad or forged cookie, an unknown or expired session and a binding mismatch are
*not* errors: the request simply sees a new, empty session.
"""

from __future__ import annotations

from sharedsession._core.errors import (
    SessionDataError,
    SessionError,
    SessionLimitError,
    SessionTooLargeError,
    StoreUnavailableError,
    UnserializableValueError,
)

__all__ = [
    "SessionDataError",
    "SessionError",
    "SessionLimitError",
    "SessionTooLargeError",
    "StoreUnavailableError",
    "UnserializableValueError",
]
