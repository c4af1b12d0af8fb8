"""Exceptions raised by sharedsession.

A bad or forged cookie, an unknown or expired session and a binding mismatch are
*not* errors: the request simply sees a new, empty session.
"""

from __future__ import annotations

__all__ = [
    "SessionDataError",
    "SessionError",
    "SessionLimitError",
    "SessionTooLargeError",
    "StoreUnavailableError",
    "UnserializableValueError",
]


class SessionError(Exception):
    """Base class of every error sharedsession raises on purpose."""


class SessionDataError(SessionError, ValueError):
    """A value cannot be stored in the session; the session is left unchanged.

    Raised at the assignment (``session[key] = value``), or at save time for an
    in-place edit of a nested value that made it unstorable.
    """


class UnserializableValueError(SessionDataError, TypeError):
    """The value (or something inside it) has a type the codec cannot store."""


class SessionTooLargeError(SessionDataError):
    """Storing the value would push the session's data over ``max_size`` bytes."""


class StoreUnavailableError(SessionError):
    """Redis is unreachable, timing out, or refusing writes (failover).

    Raised quickly (the client's timeouts bound it), never a hang; the redis-py
    error is chained as ``__cause__``. Adapters turn it into a 503.
    """


class SessionLimitError(SessionError):
    """The user has ``max_sessions_per_user`` live sessions already (``on_session_limit="refuse"``).

    Raised by the save that would link one more session to the user (a login),
    before anything of that save is applied: the session stays as it was
    before the request. Adapters answer 403 unless the app handles it.
    """

    def __init__(self, user_id: str, limit: int) -> None:
        super().__init__(f"user {user_id!r} has {limit} live session(s) already, the most allowed")
        self.user_id = user_id
        self.limit = limit
