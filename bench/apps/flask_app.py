"""The Flask app of the benchmark (gunicorn, one sync worker): ``bench.apps.flask_app:app``.

Variants: ``none`` (no session: the floor), ``cookie`` (Flask's own signed
cookie), ``sharedsession``, ``sharedsession-enc`` (with encryption at rest),
``sharedsession-cached`` (with the local cache), ``flask-session``
(Flask-Session with Redis, its defaults otherwise).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request, session
from flask.sessions import SessionInterface, SessionMixin

from bench.apps import CACHE_ENTRIES, AppSettings, login_data

VARIANTS = ("none", "cookie", "sharedsession", "sharedsession-enc", "sharedsession-cached", "flask-session")


class _NoSession(SessionInterface):
    """The floor: no cookie read, nothing saved."""

    def open_session(self, app: Flask, request: Any) -> SessionMixin:
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Any) -> None:
        return None


def create_app(settings: AppSettings) -> Flask:
    if settings.variant not in VARIANTS:
        raise ValueError(f"BENCH_VARIANT={settings.variant!r}: one of {', '.join(VARIANTS)}")
    app = Flask(__name__)
    app.config["SECRET_KEY"] = settings.secret
    uses_session = settings.variant != "none"
    if settings.variant == "none":
        app.session_interface = _NoSession()
    elif settings.variant.startswith("sharedsession"):
        from sharedsession import SessionConfig
        from sharedsession.flask import SharedSession

        prefix = settings.prefix + "sharedsession:"
        config = SessionConfig(
            secret_key=settings.secret,
            redis_url=settings.redis_url,
            key_prefix=prefix,
            encryption_keys=settings.encryption_keys,
            local_cache=CACHE_ENTRIES if settings.variant == "sharedsession-cached" else 0,
        )
        SharedSession(app, config)
    elif settings.variant == "flask-session":
        import redis
        from flask_session import Session  # type: ignore[import-untyped, import-not-found, unused-ignore]

        app.config.update(
            SESSION_TYPE="redis",
            SESSION_REDIS=redis.Redis.from_url(settings.redis_url),
            SESSION_KEY_PREFIX=settings.prefix + "session:",
        )
        Session(app)

    @app.get("/anon")
    def anon() -> str:
        return "ok"

    @app.get("/read")
    def read() -> str:
        if not uses_session:
            return "alice"
        return str(session.get("user"))

    @app.post("/write")
    def write() -> str:
        if not uses_session:
            return "6"
        n = session.get("n", 0) + 1
        session["n"] = n
        return str(n)

    @app.post("/login")
    def login() -> str:
        if uses_session:
            session.update(login_data(request.args.get("shape")))
        return "alice"

    @app.post("/kv/<key>")
    def kv(key: str) -> str:
        if uses_session:
            session[key] = 1
        return key

    @app.get("/dump")
    def dump() -> Response:
        return jsonify(sorted(session.keys()) if uses_session else [])

    return app


app = create_app(AppSettings.from_env())
