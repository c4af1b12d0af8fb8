"""The sharedsession demo on Starlette: run several replicas behind a round-robin balancer.

    SECRET_KEY=change-me uvicorn --app-dir examples/starlette_app app:app --port 8001

Settings come from the environment (examples/README.md); ``fastapi_app.py``
is the same app on FastAPI.
"""

from __future__ import annotations

import asyncio
import time

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette_demo import (
    EXCEPTION_HANDLERS,
    Settings,
    add_to_cart,
    count,
    done,
    home_page,
    identity,
    kv,
    log_in,
    read_fields,
    read_json,
    revoke_others,
    session_list,
    sessions_page,
    settings_from_env,
    slow_seconds,
    state,
    text_field,
)

from sharedsession import AsyncSessionStore
from sharedsession.asgi import SessionMiddleware, get_session

FRAMEWORK = "starlette"


def create_app(settings: Settings) -> Starlette:
    # One store (one Redis pool) for the middleware and the admin calls below;
    # the middleware closes it at shutdown.
    store = AsyncSessionStore(settings.config)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")  # excluded from sessions: answers while Redis is down

    async def home(request: Request) -> Response:
        return HTMLResponse(home_page(state(get_session(request), settings, FRAMEWORK)))

    async def login(request: Request) -> Response:
        username = text_field(await read_fields(request), "username")
        log_in(get_session(request), username)
        return done(request, "/", {"user": username, **identity(settings, FRAMEWORK)})

    async def logout(request: Request) -> Response:
        get_session(request).destroy()
        return done(request, "/", {"user": None, **identity(settings, FRAMEWORK)})

    async def cart(request: Request) -> Response:
        item = text_field(await read_fields(request), "item")
        session = get_session(request)
        add_to_cart(session, item)
        return done(request, "/", {"cart": session["cart"], **identity(settings, FRAMEWORK)})

    async def sessions(request: Request) -> Response:
        session = get_session(request)
        user = session.user_id
        rows = session_list(await store.sessions_of(user), session.handle) if user else []
        return HTMLResponse(sessions_page(user, rows, settings.replica))

    async def revoke(request: Request) -> Response:
        revoked = await revoke_others(store, get_session(request))
        return done(request, "/sessions", {"revoked": revoked, **identity(settings, FRAMEWORK)})

    async def api_state(request: Request) -> Response:
        return JSONResponse(state(get_session(request), settings, FRAMEWORK))

    async def api_counter(request: Request) -> Response:
        counter = count(get_session(request))
        return JSONResponse({"counter": counter, **identity(settings, FRAMEWORK)})

    async def api_kv_put(request: Request) -> Response:
        key = request.path_params["key"]
        request.session["kv:" + key] = await read_json(request)
        return JSONResponse({"key": key, "replica": settings.replica})

    async def api_kv(request: Request) -> Response:
        return JSONResponse(kv(get_session(request)))

    async def api_slow(request: Request) -> Response:
        seconds = slow_seconds(request.query_params.get("seconds"))
        await asyncio.sleep(seconds)  # the session was loaded before: it may end elsewhere meanwhile
        request.session["slow"] = time.time()
        return JSONResponse({"slept": seconds, **identity(settings, FRAMEWORK)})

    async def api_sessions(request: Request) -> Response:
        session = get_session(request)
        user = session.user_id
        return JSONResponse(session_list(await store.sessions_of(user), session.handle) if user else [])

    routes = [
        Route("/healthz", healthz),
        Route("/", home),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/cart", cart, methods=["POST"]),
        Route("/sessions", sessions),
        Route("/sessions/revoke-others", revoke, methods=["POST"]),
        Route("/api/state", api_state),
        Route("/api/counter", api_counter, methods=["POST"]),
        Route("/api/kv/{key}", api_kv_put, methods=["PUT"]),
        Route("/api/kv", api_kv),
        Route("/api/slow", api_slow, methods=["POST"]),
        Route("/api/sessions", api_sessions),
    ]
    middleware = [Middleware(SessionMiddleware, store=store, exclude_paths=["/healthz"])]
    return Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS)


app = create_app(settings_from_env())
