"""Helpers the test modules import (fixtures live in tests/conftest.py)."""

from __future__ import annotations

from tests.support.backends import (
    HAVE_CLUSTER_BINARIES,
    REDIS_URL,
    Backend,
    Log,
    RecordingAsyncRedis,
    RecordingPool,
    RecordingRedis,
    delete_prefix,
    load_scripts,
)
from tests.support.clock import FakeClock
from tests.support.ports import closed_port, silent_port
from tests.support.stores import SECRET, Harness, Stepper, signer, valid_cookie

__all__ = [
    "HAVE_CLUSTER_BINARIES",
    "REDIS_URL",
    "SECRET",
    "Backend",
    "FakeClock",
    "Harness",
    "Log",
    "RecordingAsyncRedis",
    "RecordingPool",
    "RecordingRedis",
    "Stepper",
    "closed_port",
    "delete_prefix",
    "load_scripts",
    "signer",
    "silent_port",
    "valid_cookie",
]
