"""Encryption at rest in the Django engine (``SHAREDSESSION = {"encryption_keys": [...]}``):
nothing of its own, the store seals and opens; what is checked here is that the setting
reaches it, that what Redis holds is sealed and opens for the other adapters, and that a
missing ``encryption`` extra fails at startup. On fakeredis, the real Redis (REDIS_URL)
and a Redis Cluster."""

from __future__ import annotations

import base64
import os
import sys
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import override_settings

from sharedsession import SessionConfig, SessionStore
from sharedsession._core import keys as k
from sharedsession._core.sealing import MARKER
from sharedsession.django import SessionMiddleware
from tests.django_tests.test_engine import Site
from tests.support import SECRET, Backend

KEY_TEXT = base64.b64encode(os.urandom(32)).decode()


def test_django_seals_values_and_the_other_adapters_open_them(backend: Backend, raw: Any) -> None:
    site = Site(backend, encryption_keys=[KEY_TEXT])
    try:
        cookie = site.create(cart=["apple"])
        fields = raw.hgetall(f"{backend.prefix}s:{k.handle_of(cookie.split('.')[0])}")
        assert fields[b"cart"].startswith(MARKER.encode())
        assert b"apple" not in fields[b"cart"]
        assert site.client.get("/read").json() == {"cart": ["apple"]}
        # The Flask and ASGI adapters' store, with the same keys, opens it; without them, it cannot.
        keyed = SessionConfig(
            secret_key=SECRET, redis=raw, key_prefix=backend.prefix, encryption_keys=[KEY_TEXT]
        )
        assert dict(SessionStore(keyed).load(cookie)) == {"cart": ["apple"]}
        assert site.stored(cookie) == {}  # a store without keys: a fresh session
    finally:
        site.close()


def test_without_the_encryption_extra_the_middleware_fails_at_startup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As if cryptography were not installed: sharedsession._aead imported anew, and failing.
    monkeypatch.delitem(sys.modules, "sharedsession._aead", raising=False)
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    given = {"encryption_keys": [KEY_TEXT], "redis_url": "redis://127.0.0.1:1/0"}

    def view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    with (
        override_settings(SHAREDSESSION=given),
        pytest.raises(ImportError, match=r"sharedsession\[encryption\]"),
    ):
        SessionMiddleware(view)  # when Django loads MIDDLEWARE, not at the first request
