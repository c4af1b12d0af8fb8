"""The Flask example of sharedsession: one replica of an app whose sessions live in Redis.

Run several replicas (and several gunicorn workers each) behind a round-robin
balancer: a user's session follows them whichever replica answers. Routes
and settings: examples/README.md; how to run it: README.md beside this file.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, current_app, jsonify, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from sharedsession import SessionDataError, SessionInfo
from sharedsession.flask import SharedSession, session

FRAMEWORK = "flask"
MAX_SLOW_SECONDS = 10.0
MAX_NAME_LENGTH = 64


def settings_from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The app.config entries for the environment variables of examples/README.md."""
    if env.get("SECRET_KEY_FILE"):
        keys = Path(env["SECRET_KEY_FILE"]).read_text().split()
    else:
        keys = env.get("SECRET_KEY", "").split()
    if not keys:
        raise RuntimeError(
            "Set SECRET_KEY (keys separated by spaces, newest first) or SECRET_KEY_FILE: "
            "the example refuses to start without a key to sign session cookies"
        )
    cache = env.get("LOCAL_CACHE") or "0"
    if not cache.isdigit():
        raise ValueError(f"LOCAL_CACHE must be a whole number, got {cache!r}")
    most = env.get("MAX_SESSIONS_PER_USER") or "0"
    if not most.isdigit():
        raise ValueError(f"MAX_SESSIONS_PER_USER must be a whole number, got {most!r}")
    limit = env.get("SESSION_LIMIT") or "evict_oldest"
    if limit not in ("evict_oldest", "refuse"):
        raise ValueError(f"SESSION_LIMIT must be evict_oldest or refuse, got {limit!r}")
    try:
        idle_timeout = float(env.get("IDLE_TIMEOUT", "1800"))
        absolute_timeout = float(env.get("ABSOLUTE_TIMEOUT") or 0) or None
    except ValueError:
        raise ValueError(
            f"IDLE_TIMEOUT and ABSOLUTE_TIMEOUT must be numbers of seconds, got "
            f"{env.get('IDLE_TIMEOUT')!r}, {env.get('ABSOLUTE_TIMEOUT')!r}"
        ) from None
    return {
        "SECRET_KEY": keys[0],
        "SECRET_KEY_FALLBACKS": keys[1:],
        "REPLICA_ID": env.get("REPLICA_ID") or socket.gethostname(),
        "SHAREDSESSION_REDIS_URL": env.get("REDIS_URL", "redis://localhost:6379/1"),
        "SHAREDSESSION_TRUSTED_PROXIES": [
            cidr.strip() for cidr in env.get("TRUSTED_PROXIES", "").split(",") if cidr.strip()
        ],
        "SHAREDSESSION_BIND_IP": env.get("SESSION_BIND_IP", "off"),
        "SHAREDSESSION_IDLE_TIMEOUT": idle_timeout,
        "SHAREDSESSION_ABSOLUTE_TIMEOUT": absolute_timeout,
        "SHAREDSESSION_KEY_PREFIX": env.get("KEY_PREFIX", "sharedsession:"),
        "SHAREDSESSION_LOCAL_CACHE": int(cache),
        "SHAREDSESSION_MAX_SESSIONS_PER_USER": int(most) or None,
        "SHAREDSESSION_ON_SESSION_LIMIT": limit,
    }


def create_app(env: Mapping[str, str] | None = None, **config: Any) -> Flask:
    """The app, configured from ``env`` (default: the process environment), then ``config``."""
    app = Flask(__name__)
    app.config.update(settings_from_env(os.environ if env is None else env))
    app.config.update(config)
    sessions = SharedSession(app)

    # -- helpers ---------------------------------------------------------------

    def served_by() -> dict[str, Any]:
        return {"replica": current_app.config["REPLICA_ID"], "framework": FRAMEWORK, "pid": os.getpid()}

    def state() -> dict[str, Any]:
        return {
            **served_by(),
            "user": session.get("user"),
            "cart": session.get("cart", []),
            "counter": session.get("counter", 0),
            "handle": session.handle,
        }

    def wants_json() -> bool:
        """A JSON body, or an Accept header that prefers JSON to HTML: the client gets JSON back."""
        if request.is_json:
            return True
        accept = request.accept_mimetypes
        return accept.quality("application/json") > accept.quality("text/html")

    def field(name: str) -> str | None:
        """A form or JSON field: stripped, non-empty, not too long; else None."""
        body = request.get_json(silent=True) if request.is_json else request.form
        value = body.get(name) if isinstance(body, Mapping) else None
        if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_NAME_LENGTH:
            return None
        return value.strip()

    def bad_request(message: str) -> ResponseReturnValue:
        if wants_json():
            return {"error": message}, 400
        return message + "\n", 400, {"Content-Type": "text/plain; charset=utf-8"}

    def done(to: str, **reply: Any) -> ResponseReturnValue:
        """After a form post: JSON for JSON clients, else 303 to a page (post/redirect/get)."""
        if wants_json():
            return {**reply, **served_by()}
        return redirect(url_for(to), 303)

    def infos() -> list[SessionInfo]:
        user = session.user_id
        return sessions.store.sessions_of(user) if user else []

    # -- routes ---------------------------------------------------------------------

    @app.get("/healthz")
    def healthz() -> ResponseReturnValue:
        return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}

    @app.get("/")
    def index() -> ResponseReturnValue:
        return render_template("index.html", **state())

    @app.post("/login")
    def login() -> ResponseReturnValue:
        username = field("username")
        if username is None:
            return bad_request(f"username: 1 to {MAX_NAME_LENGTH} characters")
        session.regenerate()  # a new sid on login: a planted cookie is worth nothing
        session.user_id = username  # listed under the user, for "log out everywhere else"
        session["user"] = username
        return done("index", user=username)

    @app.post("/logout")
    def logout() -> ResponseReturnValue:
        session.destroy()
        return done("index", user=None)

    @app.post("/cart")
    def cart() -> ResponseReturnValue:
        item = field("item")
        if item is None:
            return bad_request(f"item: 1 to {MAX_NAME_LENGTH} characters")
        session["cart"] = [*session.get("cart", []), item]
        return done("index", cart=session["cart"])

    @app.get("/sessions")
    def sessions_page() -> ResponseReturnValue:
        return render_template("sessions.html", sessions=infos(), **state())

    @app.post("/sessions/revoke-others")
    def revoke_others() -> ResponseReturnValue:
        current = session.handle
        others = [info.handle for info in infos() if info.handle != current]
        revoked = sum(sessions.store.revoke(handle) for handle in others)
        return done("sessions_page", revoked=revoked)

    @app.get("/api/state")
    def api_state() -> ResponseReturnValue:
        return state()

    @app.post("/api/counter")
    def api_counter() -> ResponseReturnValue:
        session["counter"] = session.get("counter", 0) + 1
        return {"counter": session["counter"], **served_by()}

    @app.put("/api/kv/<key>")
    def api_kv_put(key: str) -> ResponseReturnValue:
        session["kv:" + key] = request.get_json(force=True)  # invalid JSON: 400
        return {"key": key, "replica": current_app.config["REPLICA_ID"]}

    @app.get("/api/kv")
    def api_kv() -> ResponseReturnValue:
        return {key[3:]: value for key, value in session.items() if key.startswith("kv:")}

    @app.post("/api/slow")
    def api_slow() -> ResponseReturnValue:
        try:
            seconds = float(request.args.get("seconds", "1"))
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds):
            return bad_request("seconds: a number")
        seconds = min(max(seconds, 0.0), MAX_SLOW_SECONDS)
        session.get("slow")  # load now: the session may be ended elsewhere while we sleep
        time.sleep(seconds)
        session["slow"] = time.time()
        return {"slept": seconds, **served_by()}

    @app.get("/api/sessions")
    def api_sessions() -> ResponseReturnValue:
        current = session.handle
        return jsonify(
            [
                {
                    "handle": info.handle,
                    "created": info.created.isoformat(),
                    "last_seen": info.last_seen.isoformat(),
                    "expires": info.expires.isoformat(),
                    "current": info.handle == current,
                }
                for info in infos()
            ]
        )

    @app.errorhandler(SessionDataError)
    def too_much(error: SessionDataError) -> ResponseReturnValue:
        return {"error": str(error)}, 413

    return app


app = create_app()
