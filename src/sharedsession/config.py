"""SessionConfig: every setting, checked once at construction (defined in the core, public here)."""

from __future__ import annotations

from sharedsession._core.binding import BindIp
from sharedsession._core.config import SessionConfig, SessionFields

__all__ = ["BindIp", "SessionConfig", "SessionFields"]
