"""Settings of the Django example: sessions in Redis, shared with the Flask and Starlette examples.

Everything that varies comes from the environment (examples/README.md,
``shop/environment.py``). There is no database: the session is the app's
only state, and it lives in Redis.
"""

from __future__ import annotations

import os
from pathlib import Path

from shop.environment import settings_from_env

_env = settings_from_env(os.environ)

SECRET_KEY = _env["SECRET_KEY"]
SECRET_KEY_FALLBACKS = _env["SECRET_KEY_FALLBACKS"]
#: Shown on every page, to make round robin visible.
REPLICA_ID = _env["REPLICA_ID"]

# The sessions: this engine, its middleware (instead of Django's), and the shared settings.
SESSION_ENGINE = "sharedsession.django"
SHAREDSESSION = _env["SHAREDSESSION"]
# The cookie name the Flask and Starlette examples use: one cookie, one session, three frameworks.
SESSION_COOKIE_NAME = "session"

DEBUG = False
# Behind a balancer the Host is whatever the balancer forwards (a container name,
# 127.0.0.1, the public name): a real deployment lists its own names here.
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "sharedsession.django.SessionMiddleware",  # in place of django.contrib.sessions' own
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The forms carry no CSRF token, as in the other examples: the session cookie is
# SameSite=Lax, so browsers do not send it with cross-site POSTs. A real app keeps
# django.middleware.csrf.CsrfViewMiddleware and {% csrf_token %}.
ROOT_URLCONF = "shop.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
    }
]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TIME_ZONE = "UTC"
WSGI_APPLICATION = "shop.wsgi.application"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"sharedsession": {"handlers": ["console"], "level": "WARNING"}},
}
