"""The ``sharedsession`` command: look at and end sessions from a shell.

::

    sharedsession stats [--sample N] [--json]
    sharedsession sessions USER [--json]
    sharedsession revoke HANDLE [--json]
    sharedsession revoke-user USER [--json]
    sharedsession doctor [--cluster | --sentinel HOST:PORT ... [--service NAME]] [--json]
    sharedsession demo ...

In parts by job: ``commands`` (the command line and its handlers),
``diagnostics`` (what ``stats`` measures), ``doctor`` (what ``doctor`` reads
from the servers), ``probes`` (what it runs on them) and ``findings`` (what
it concludes).
``main`` returns the exit code; the console script and ``python -m
sharedsession`` exit with it.
"""

from __future__ import annotations

from sharedsession.cli.commands import (
    EXIT_BLOCKED,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    main,
)

__all__ = [
    "EXIT_BLOCKED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "main",
]
