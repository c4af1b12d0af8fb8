"""Django's own contract for session backends: ``SessionTestsMixin`` from Django's
``tests/sessions_tests/tests.py`` (fetched from the sdist, see tests/support/django_setup.py),
run against ``sharedsession.django.SessionStore`` on fakeredis, the real Redis
(REDIS_URL) and a Redis Cluster.

Where this engine deliberately differs, the test is overridden below by one that
asserts what it does instead; the README lists each, with its reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from django.test import SimpleTestCase, override_settings

from sharedsession.django import SessionStore
from tests.conftest import BACKENDS
from tests.support import Backend
from tests.support.django_setup import session_tests, why_no_session_tests

if session_tests() is None:
    pytest.skip(why_no_session_tests(), allow_module_level=True)

from sessions_tests.tests import SessionTestsMixin  # type: ignore[import-not-found]

#: Django's tests this module replaces, and why (the README's list).
OVERRIDDEN = {
    "test_session_key_valid_string_saved": (
        "a session key is only ever a cookie value this engine signed: an arbitrary string, "
        "however long, reads as no session (a client-chosen key is never adopted)"
    ),
}


class SharedSessionContract(SessionTestsMixin, SimpleTestCase):  # type: ignore[misc]  # untyped mixin
    """SessionTestsMixin on one backend; the subclasses below pick which."""

    __test__ = False
    backend = SessionStore
    redis_backend: ClassVar[str]
    session: SessionStore

    @pytest.fixture(autouse=True)
    def _redis(self, request: pytest.FixtureRequest) -> Iterator[None]:
        if self.redis_backend == "cluster":
            b = Backend("cluster", cluster_port=request.getfixturevalue("redis_cluster").port)
        else:
            b = Backend(self.redis_backend)
        settings: dict[str, Any] = {
            "redis": b.sync_client(),
            # A client per event loop: Django runs each async test in a loop of its own.
            "async_redis": b.async_client,
            "key_prefix": b.prefix,
        }
        with override_settings(SHAREDSESSION=settings):
            yield
        b.cleanup()

    # -- deliberate differences (OVERRIDDEN) ------------------------------------------

    def test_session_key_valid_string_saved(self) -> None:
        self.session._session_key = "12345678"
        assert self.session.session_key is None
        forged = "x" * 80 + ".forged.signature"
        assert SessionStore(forged).session_key is None
        assert SessionStore(forged).exists(forged) is False


class TestOnFakeRedis(SharedSessionContract):
    __test__ = True
    redis_backend = "fake"


# The real server and the Cluster, where conftest.py's `backend` fixture has them too.
class TestOnRealRedis(SharedSessionContract):
    __test__ = "real" in BACKENDS
    redis_backend = "real"


class TestOnRedisCluster(SharedSessionContract):
    __test__ = "cluster" in BACKENDS
    redis_backend = "cluster"


def test_every_override_is_one_of_djangos_tests() -> None:
    for name in OVERRIDDEN:
        assert callable(getattr(SessionTestsMixin, name, None)), f"Django has no {name} any more"
        assert name in vars(SharedSessionContract), name
