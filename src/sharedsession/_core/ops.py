"""What a step asks of Redis: operations, batches, and the step generators' type.

A *step* (``plan.py``, ``admin.py``) is a generator: it yields a :data:`Batch`
(one round trip), receives the replies in the same order, and finally returns
its result. The runners in ``_redis.py`` turn batches into redis-py calls.
Every operation names exactly one key, so each can go to its own node on
Redis Cluster (see ``keys.py``).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sharedsession._core.scripts import LuaScript

__all__ = ["Arg", "Batch", "Command", "Op", "Replies", "Script", "Steps"]

Arg = str | bytes | int


@dataclass(frozen=True)
class Command:
    """A plain Redis command, e.g. ``Command(("DEL", key))``; ``args[1]`` is its one key."""

    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Script:
    """A Lua script run on one key (EVALSHA, falling back to EVAL)."""

    script: LuaScript
    key: str
    args: tuple[Arg, ...]


Op = Command | Script
#: One round trip: operations sent together, not a transaction (each runs on
#: its own; on Cluster they may span nodes). Order them so that whatever lands
#: alone is harmless.
Batch = tuple[Op, ...]
Replies = Sequence[object]
T = TypeVar("T")
#: A step: yields batches, receives their replies, returns a T.
Steps = Generator[Batch, Replies, T]
