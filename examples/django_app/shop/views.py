"""The routes of examples/README.md on Django: the same behaviour as the Flask and Starlette examples.

``request.session`` is sharedsession's (``SESSION_ENGINE = "sharedsession.django"``):
Django's session API, kept in Redis and shared with the other apps. Logging in
is the other examples' kind (a name, no password, no database): ``cycle_key()``
gives a new session key, ``user_id`` lists the session under the user.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sharedsession import SessionDataError, SessionInfo
from sharedsession.django import SessionStore, get_session, get_store

FRAMEWORK = "django"
MAX_SLOW_SECONDS = 10.0
MAX_NAME_LENGTH = 64

# -- helpers -------------------------------------------------------------------------------


def served_by() -> dict[str, Any]:
    return {"replica": settings.REPLICA_ID, "framework": FRAMEWORK, "pid": os.getpid()}


def state(session: SessionStore) -> dict[str, Any]:
    return {
        **served_by(),
        "user": session.get("user"),
        "cart": session.get("cart", []),
        "counter": session.get("counter", 0),
        "handle": session.handle,
    }


def is_json(request: HttpRequest) -> bool:
    return request.content_type == "application/json"


def wants_json(request: HttpRequest) -> bool:
    """A JSON body, or an Accept header that prefers JSON to HTML: the client gets JSON back."""
    return (
        is_json(request)
        or request.get_preferred_type(["text/html", "application/json"]) == "application/json"
    )


def field(request: HttpRequest, name: str) -> str | None:
    """A form or JSON field: stripped, non-empty, not too long; else None."""
    body: object = request.POST
    if is_json(request):
        try:
            body = json.loads(request.body)
        except ValueError:
            return None
    value = body.get(name) if isinstance(body, Mapping) else None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_NAME_LENGTH:
        return None
    return value.strip()


def bad_request(request: HttpRequest, message: str) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"error": message}, status=400)
    return HttpResponse(message + "\n", status=400, content_type="text/plain; charset=utf-8")


def done(request: HttpRequest, to: str, **reply: Any) -> HttpResponseBase:
    """After a form post: JSON for JSON clients, else 303 to a page (post/redirect/get)."""
    if wants_json(request):
        return JsonResponse({**reply, **served_by()})
    response = redirect(to)
    response.status_code = 303
    return response


def infos(session: SessionStore) -> list[SessionInfo]:
    user = session.user_id
    return get_store().sessions_of(user) if user else []


# -- routes ------------------------------------------------------------------------------------


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse(
        "ok", content_type="text/plain; charset=utf-8"
    )  # no session: answers while Redis is down


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/index.html", state(get_session(request)))


@require_POST
def login(request: HttpRequest) -> HttpResponseBase:
    username = field(request, "username")
    if username is None:
        return bad_request(request, f"username: 1 to {MAX_NAME_LENGTH} characters")
    session = get_session(request)
    session.cycle_key()  # a new session key on login: a planted cookie is worth nothing
    session.user_id = username  # listed under the user, for "log out everywhere else"
    session["user"] = username
    return done(request, "index", user=username)


@require_POST
def logout(request: HttpRequest) -> HttpResponseBase:
    request.session.flush()
    return done(request, "index", user=None)


@require_POST
def cart(request: HttpRequest) -> HttpResponseBase:
    item = field(request, "item")
    if item is None:
        return bad_request(request, f"item: 1 to {MAX_NAME_LENGTH} characters")
    session = request.session
    session["cart"] = [*session.get("cart", []), item]
    return done(request, "index", cart=session["cart"])


@require_GET
def sessions_page(request: HttpRequest) -> HttpResponse:
    session = get_session(request)
    return render(request, "shop/sessions.html", {"sessions": infos(session), **state(session)})


@require_POST
def revoke_others(request: HttpRequest) -> HttpResponseBase:
    session = get_session(request)
    current = session.handle
    others = [info.handle for info in infos(session) if info.handle != current]
    revoked = sum(get_store().revoke(handle) for handle in others)
    return done(request, "sessions", revoked=revoked)


@require_GET
def api_state(request: HttpRequest) -> JsonResponse:
    return JsonResponse(state(get_session(request)))


@require_POST
def api_counter(request: HttpRequest) -> JsonResponse:
    session = request.session
    session["counter"] = session.get("counter", 0) + 1
    return JsonResponse({"counter": session["counter"], **served_by()})


@require_http_methods(["PUT"])
def api_kv_put(request: HttpRequest, key: str) -> JsonResponse:
    try:
        value = json.loads(request.body)
    except ValueError:
        return JsonResponse({"error": "the body is not JSON"}, status=400)
    try:
        request.session["kv:" + key] = value
    except SessionDataError as error:
        return JsonResponse({"error": str(error)}, status=413)
    return JsonResponse({"key": key, "replica": settings.REPLICA_ID})


@require_GET
def api_kv(request: HttpRequest) -> JsonResponse:
    return JsonResponse({key[3:]: value for key, value in request.session.items() if key.startswith("kv:")})


@require_POST
def api_slow(request: HttpRequest) -> HttpResponseBase:
    try:
        seconds = float(request.GET.get("seconds", "1"))
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        return bad_request(request, "seconds: a number")
    seconds = min(max(seconds, 0.0), MAX_SLOW_SECONDS)
    session = request.session
    session.get("slow")  # load now: the session may be ended elsewhere while we sleep
    time.sleep(seconds)
    session["slow"] = time.time()
    return JsonResponse({"slept": seconds, **served_by()})


@require_GET
def api_sessions(request: HttpRequest) -> JsonResponse:
    session = get_session(request)
    current = session.handle
    listed = [
        {
            "handle": info.handle,
            "created": info.created.isoformat(),
            "last_seen": info.last_seen.isoformat(),
            "expires": info.expires.isoformat(),
            "current": info.handle == current,
        }
        for info in infos(session)
    ]
    return JsonResponse(listed, safe=False)
