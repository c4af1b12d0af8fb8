"""sharedsession: server-side web sessions in Redis, shared by every replica of an app.

Framework adapters live in ``sharedsession.flask`` and ``sharedsession.asgi``;
this package imports neither framework.
"""

from __future__ import annotations

from sharedsession._core.admin import SessionInfo
from sharedsession._core.config import SessionConfig
from sharedsession._core.errors import (
    SessionDataError,
    SessionError,
    SessionLimitError,
    SessionTooLargeError,
    StoreUnavailableError,
    UnserializableValueError,
)
from sharedsession._core.http import ExpireCookie, SetCookie
from sharedsession._core.plan import SaveResult
from sharedsession._core.record import Client
from sharedsession._core.session import Session
from sharedsession.store import AsyncSessionStore, SessionStore

__version__ = "0.1.0"

__all__ = [
    "AsyncSessionStore",
    "Client",
    "ExpireCookie",
    "SaveResult",
    "Session",
    "SessionConfig",
    "SessionDataError",
    "SessionError",
    "SessionInfo",
    "SessionLimitError",
    "SessionStore",
    "SessionTooLargeError",
    "SetCookie",
    "StoreUnavailableError",
    "UnserializableValueError",
    "__version__",
]
