"""Idle and absolute deadlines, and the cookie lifetime that follows from them.

Times are integers in milliseconds since the epoch (``*_ms``) unless a name
says seconds. Nothing here reads a clock: callers pass ``now_ms``.

The rules, in one place:

- A session's Redis TTL slides to ``now + idle`` on every use, never past its
  *cap* (``#cap``): the absolute deadline, and for a session linked to a user,
  the horizon recorded in the user index.
- The *horizon* of a session at time ``now`` is ``now + 2 * idle``, never past
  the absolute deadline. Cookies are issued to live until the horizon, so a
  cookie always outlives the server-side session it names (a stale cookie just
  reads as "no session"; the reverse would log active users out).
- *Renewal* re-issues the cookie (and, for user-linked sessions, moves the cap
  and the index entry forward) once fewer than ``idle`` remain before the
  horizon: at most once per idle period per session, not on every request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HORIZON_IDLE_PERIODS = 2


@dataclass(frozen=True)
class Expiry:
    idle_ms: int
    absolute_ms: int | None

    @classmethod
    def of(cls, idle_seconds: float, absolute_seconds: float | None) -> Expiry:
        absolute_ms = None if absolute_seconds is None else round(absolute_seconds * 1000)
        return cls(round(idle_seconds * 1000), absolute_ms)

    def absolute_deadline_ms(self, created_ms: int) -> int | None:
        return None if self.absolute_ms is None else created_ms + self.absolute_ms

    def horizon_ms(self, now_ms: int, created_ms: int) -> int:
        horizon = now_ms + HORIZON_IDLE_PERIODS * self.idle_ms
        deadline = self.absolute_deadline_ms(created_ms)
        return horizon if deadline is None else min(horizon, deadline)

    def cap_ms(self, created_ms: int, user_horizon_ms: int | None) -> int | None:
        """The ``#cap`` to store: absolute deadline and user-index horizon, whichever is first."""
        caps = [c for c in (self.absolute_deadline_ms(created_ms), user_horizon_ms) if c is not None]
        return min(caps) if caps else None

    def ttl_deadline_ms(self, now_ms: int, cap_ms: int | None) -> int:
        """Where a use at ``now_ms`` slides the Redis TTL to (the Lua scripts do the same)."""
        deadline = now_ms + self.idle_ms
        return deadline if cap_ms is None else min(deadline, cap_ms)

    def cookie_max_age_seconds(self, now_ms: int, created_ms: int) -> int:
        """Max-Age of a cookie issued now: until the horizon, rounded up."""
        return max(1, math.ceil((self.horizon_ms(now_ms, created_ms) - now_ms) / 1000))

    def max_cookie_age_seconds(self) -> int:
        """Age beyond which no cookie can name a live session: refuse it unread.

        One second of slack covers the signer's whole-second timestamps.
        """
        longest = HORIZON_IDLE_PERIODS * self.idle_ms
        if self.absolute_ms is not None:
            longest = min(longest, self.absolute_ms)
        return math.ceil(longest / 1000) + 1

    def renewal_due(
        self, now_ms: int, cookie_issued_s: int, created_ms: int, cap_ms: int | None, linked: bool
    ) -> bool:
        """True when this request should extend the cookie (and the user-index horizon)."""
        deadline = self.absolute_deadline_ms(created_ms)
        cookie_horizon = cookie_issued_s * 1000 + HORIZON_IDLE_PERIODS * self.idle_ms
        if self._near(now_ms, cookie_horizon, deadline):
            return True
        return linked and cap_ms is not None and self._near(now_ms, cap_ms, deadline)

    def _near(self, now_ms: int, horizon_ms: int, deadline_ms: int | None) -> bool:
        if deadline_ms is not None and horizon_ms >= deadline_ms:
            return False  # already reaches the end of the session's life
        return horizon_ms - now_ms < self.idle_ms
