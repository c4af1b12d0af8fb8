"""The one fake clock of the tests."""

from __future__ import annotations

import time


class FakeClock:
    """A clock the tests move by hand; the core and the stores take it as ``clock``.

    Starts at the real time unless told otherwise, so that the absolute
    deadlines it yields still make sense to a real Redis. ``use_real_time()``
    makes it follow the wall clock, for tests of expiry done by Redis itself.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start
        self._real = False

    def __call__(self) -> float:
        return time.time() if self._real else self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def use_real_time(self) -> None:
        self._real = True
