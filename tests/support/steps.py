"""Drive the core's step generators with scripted replies: no Redis, no event loop."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TypeVar

from sharedsession._core.ops import Batch, Command, Op, Script, Steps

T = TypeVar("T")


class Scripted:
    """Runs one step generator, answering each batch with the next scripted reply list.

    ``batches`` records what the step asked, in order. A step that yields more
    batches than were scripted, or fewer, fails the test: the script *is* the
    expected conversation with Redis.
    """

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    def run(self, steps: Steps[T], *replies: Sequence[object]) -> T:
        answers = list(replies)
        sent: Sequence[object] | None = None
        while True:
            try:
                batch = steps.send(sent)  # type: ignore[arg-type]  # None primes it
            except StopIteration as done:
                assert not answers, f"{len(answers)} scripted reply list(s) left unused"
                return done.value  # type: ignore[no-any-return]
            self.batches.append(batch)
            assert answers, f"the step asked for one more round trip than scripted: {names(batch)}"
            sent = answers.pop(0)
            assert len(sent) == len(batch), f"{len(sent)} replies scripted for {names(batch)}"


def run(steps: Steps[T], *replies: Sequence[object]) -> tuple[T, list[Batch]]:
    """Drive ``steps`` with these reply lists; return its result and the batches it sent."""
    scripted = Scripted()
    return scripted.run(steps, *replies), scripted.batches


def name(op: Op) -> str:
    """``HSET``, ``DEL``... for a command, the script's name (``update``) for a script."""
    return op.script.name if isinstance(op, Script) else str(op.args[0])


def names(batch: Batch) -> list[str]:
    return [name(op) for op in batch]


def key(op: Op) -> str:
    """The one key an operation touches."""
    return op.key if isinstance(op, Script) else str(op.args[1])


def command(batch: Batch, wanted: str) -> Command:
    """The one command of that name in the batch."""
    found = [op for op in batch if isinstance(op, Command) and op.args[0] == wanted]
    assert len(found) == 1, names(batch)
    return found[0]


def script(batch: Batch, wanted: str) -> Script:
    """The one script of that name in the batch."""
    found = [op for op in batch if isinstance(op, Script) and op.script.name == wanted]
    assert len(found) == 1, names(batch)
    return found[0]


def hash_reply(fields: Mapping[str, str]) -> bytes:
    """What the LOAD script answers for a hash holding these fields (cjson, UTF-8)."""
    return json.dumps(dict(fields), ensure_ascii=False).encode()
