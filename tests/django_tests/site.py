"""The views the Django tests drive (ROOT_URLCONF of tests/support/django_setup.py);
each uses the session in one way, sync or async."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import auth, messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from sharedsession import SessionLimitError
from sharedsession.django import aget_session, get_session, get_store


def body(request: HttpRequest) -> Any:
    return json.loads(request.body or b"null")


# -- sync --------------------------------------------------------------------------------------


def plain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("no session here")


def read(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dict(request.session.items()))


def set_(request: HttpRequest, key: str) -> HttpResponse:
    request.session[key] = body(request)
    return HttpResponse("ok")


def append(request: HttpRequest) -> HttpResponse:
    request.session.setdefault("cart", [])
    request.session["cart"].append(body(request))  # in place: Django would need modified = True
    return HttpResponse("ok")


def login(request: HttpRequest, user: str) -> HttpResponse:
    session = get_session(request)
    session.cycle_key()
    session.user_id = user
    session["user"] = user
    return HttpResponse("ok")


def logout(request: HttpRequest) -> HttpResponse:
    request.session.flush()
    return HttpResponse("ok")


def about(request: HttpRequest) -> JsonResponse:
    session = get_session(request)
    return JsonResponse(
        {
            "key": session.session_key,
            "handle": session.handle,
            "user_id": session.user_id,
            "expiry_age": session.get_expiry_age(),
            "browser_close": session.get_expire_at_browser_close(),
        }
    )


def fail(request: HttpRequest) -> HttpResponse:
    request.session["half"] = "written"
    raise RuntimeError("the view fails after changing the session")


def race(request: HttpRequest) -> HttpResponse:
    session = get_session(request)
    session.get("n")
    get_store().revoke(str(session.handle))  # logged out elsewhere meanwhile
    session["n"] = 99
    return HttpResponse("ok")


def expiry(request: HttpRequest, how: str) -> HttpResponse:
    if how == "browser":
        request.session.set_expiry(0)
    elif how == "default":
        request.session.set_expiry(None)
    elif how == "past":
        request.session.set_expiry(timedelta(seconds=-10))
    else:
        request.session.set_expiry(int(how))
    request.session["expiry"] = how
    return HttpResponse("ok")


def store_int(request: HttpRequest) -> HttpResponse:
    request.session["n"] = request.session.get("n", 0) + 1
    return HttpResponse(str(request.session["n"]))


# -- Django's auth ----------------------------------------------------------------------------------


def auth_login(request: HttpRequest, username: str) -> JsonResponse:
    user, _ = User.objects.get_or_create(username=username)
    auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"pk": user.pk, "user_id": get_session(request).user_id})


def auth_login_checked(request: HttpRequest, username: str) -> JsonResponse:
    """A login that answers a refusal by the session limit itself: saved in the view."""
    user, _ = User.objects.get_or_create(username=username)
    auth.login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    try:
        request.session.save()
    except SessionLimitError as refused:
        return JsonResponse({"error": "too many devices", "limit": refused.limit}, status=409)
    return JsonResponse({"pk": user.pk})


def auth_logout(request: HttpRequest) -> HttpResponse:
    auth.logout(request)
    messages.info(request, "logged out")  # stored in a new session after the flush
    return HttpResponse("ok")


def auth_me(request: HttpRequest) -> JsonResponse:
    user = request.user
    return JsonResponse({"username": user.get_username() if user.is_authenticated else None})


def my_sessions(request: HttpRequest) -> JsonResponse:
    user_id = get_session(request).user_id
    infos = get_store().sessions_of(user_id) if user_id else []
    return JsonResponse({"handles": [info.handle for info in infos]})


# -- async --------------------------------------------------------------------------------------------


async def aread(request: HttpRequest) -> JsonResponse:
    return JsonResponse(dict(await request.session.aitems()))


async def aset(request: HttpRequest, key: str) -> HttpResponse:
    await request.session.aset(key, body(request))
    return HttpResponse("ok")


async def alogin(request: HttpRequest, user: str) -> HttpResponse:
    session = await aget_session(request)
    await session.acycle_key()
    session.user_id = user  # loaded: in memory
    await session.aset("user", user)
    return HttpResponse("ok")


async def alogout(request: HttpRequest) -> HttpResponse:
    await request.session.aflush()
    return HttpResponse("ok")


async def aauth_login(request: HttpRequest, username: str) -> JsonResponse:
    user, _ = await User.objects.aget_or_create(username=username)
    await auth.alogin(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"pk": user.pk, "user_id": (await aget_session(request)).user_id})


async def aauth_logout(request: HttpRequest) -> HttpResponse:
    await auth.alogout(request)
    return HttpResponse("ok")


async def aplain(request: HttpRequest) -> HttpResponse:
    return HttpResponse("no session here")


# -- header tokens: the views of tests/test_tokens.py's body, under /api (sync) and /async/api --------


def api_read(request: HttpRequest) -> JsonResponse:
    session = get_session(request)
    return JsonResponse({"data": dict(session.items()), "user": session.user_id})


def api_write(request: HttpRequest, key: str) -> JsonResponse:
    request.session[key] = request.session.get(key, 0) + 1
    return JsonResponse({"ok": True})


def api_login(request: HttpRequest, user: str) -> JsonResponse:
    session = get_session(request)
    session.cycle_key()
    session.user_id = user
    return JsonResponse({"ok": True})


def api_logout(request: HttpRequest) -> JsonResponse:
    request.session.flush()
    return JsonResponse({"ok": True})


def api_cached(request: HttpRequest) -> JsonResponse:
    request.session["seen"] = True
    return JsonResponse({"ok": True}, headers={"Cache-Control": "private, max-age=60"})


async def aapi_read(request: HttpRequest) -> JsonResponse:
    session = await aget_session(request)
    return JsonResponse({"data": dict(session.items()), "user": session.user_id})


async def aapi_write(request: HttpRequest, key: str) -> JsonResponse:
    await request.session.aset(key, await request.session.aget(key, 0) + 1)
    return JsonResponse({"ok": True})


async def aapi_login(request: HttpRequest, user: str) -> JsonResponse:
    session = await aget_session(request)
    await session.acycle_key()
    session.user_id = user
    return JsonResponse({"ok": True})


async def aapi_logout(request: HttpRequest) -> JsonResponse:
    await request.session.aflush()
    return JsonResponse({"ok": True})


async def aapi_cached(request: HttpRequest) -> JsonResponse:
    await request.session.aset("seen", True)
    return JsonResponse({"ok": True}, headers={"Cache-Control": "private, max-age=60"})


urlpatterns = [
    path("plain", plain),
    path("read", read),
    path("set/<str:key>", set_),
    path("append", append),
    path("login/<str:user>", login),
    path("logout", logout),
    path("about", about),
    path("fail", fail),
    path("race", race),
    path("expiry/<str:how>", expiry),
    path("count", store_int),
    path("auth/login/<str:username>", auth_login),
    path("auth/login-checked/<str:username>", auth_login_checked),
    path("auth/logout", auth_logout),
    path("auth/me", auth_me),
    path("sessions", my_sessions),
    path("async/read", aread),
    path("async/set/<str:key>", aset),
    path("async/login/<str:user>", alogin),
    path("async/logout", alogout),
    path("async/auth/login/<str:username>", aauth_login),
    path("async/auth/logout", aauth_logout),
    path("async/plain", aplain),
    path("api/read", api_read),
    path("api/write/<str:key>", api_write),
    path("api/login/<str:user>", api_login),
    path("api/logout", api_logout),
    path("api/cached", api_cached),
    path("async/api/read", aapi_read),
    path("async/api/write/<str:key>", aapi_write),
    path("async/api/login/<str:user>", aapi_login),
    path("async/api/logout", aapi_logout),
    path("async/api/cached", aapi_cached),
]
