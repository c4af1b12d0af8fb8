"""Django is configured before any test module of this folder imports it (tests/support/django_setup.py)."""

from __future__ import annotations

from tests.support.django_setup import configure

configure()
