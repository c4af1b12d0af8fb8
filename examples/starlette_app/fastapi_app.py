"""The sharedsession demo on FastAPI: the same routes as app.py, the session as a dependency.

SECRET_KEY=change-me uvicorn --app-dir examples/starlette_app fastapi_app:app --port 8002
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
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

from sharedsession import AsyncSessionStore, Session
from sharedsession.asgi import SessionMiddleware, get_session

FRAMEWORK = "fastapi"


def current_session(request: Request) -> Session:
    """``request.session``, typed: regenerate(), destroy() and user_id type-check."""
    return get_session(request)


SessionDep = Annotated[Session, Depends(current_session)]


def create_app(settings: Settings) -> FastAPI:
    store = AsyncSessionStore(settings.config)
    api = FastAPI(title="sharedsession demo", exception_handlers=EXCEPTION_HANDLERS)

    @api.get("/healthz", response_class=PlainTextResponse)
    async def healthz() -> str:
        return "ok"

    @api.get("/", response_class=HTMLResponse)
    async def home(session: SessionDep) -> str:
        return home_page(state(session, settings, FRAMEWORK))

    @api.post("/login")
    async def login(request: Request, session: SessionDep) -> Response:
        username = text_field(await read_fields(request), "username")
        log_in(session, username)
        return done(request, "/", {"user": username, **identity(settings, FRAMEWORK)})

    @api.post("/logout")
    async def logout(request: Request, session: SessionDep) -> Response:
        session.destroy()
        return done(request, "/", {"user": None, **identity(settings, FRAMEWORK)})

    @api.post("/cart")
    async def cart(request: Request, session: SessionDep) -> Response:
        add_to_cart(session, text_field(await read_fields(request), "item"))
        return done(request, "/", {"cart": session["cart"], **identity(settings, FRAMEWORK)})

    @api.get("/sessions", response_class=HTMLResponse)
    async def sessions(session: SessionDep) -> str:
        user = session.user_id
        rows = session_list(await store.sessions_of(user), session.handle) if user else []
        return sessions_page(user, rows, settings.replica)

    @api.post("/sessions/revoke-others")
    async def revoke(request: Request, session: SessionDep) -> Response:
        revoked = await revoke_others(store, session)
        return done(request, "/sessions", {"revoked": revoked, **identity(settings, FRAMEWORK)})

    @api.get("/api/state")
    async def api_state(session: SessionDep) -> dict[str, object]:
        return state(session, settings, FRAMEWORK)

    @api.post("/api/counter")
    async def api_counter(session: SessionDep) -> dict[str, object]:
        return {"counter": count(session), **identity(settings, FRAMEWORK)}

    @api.put("/api/kv/{key}")
    async def api_kv_put(key: str, request: Request, session: SessionDep) -> dict[str, object]:
        session["kv:" + key] = await read_json(request)
        return {"key": key, "replica": settings.replica}

    @api.get("/api/kv")
    async def api_kv(session: SessionDep) -> dict[str, object]:
        return kv(session)

    @api.post("/api/slow")
    async def api_slow(session: SessionDep, seconds: str | None = None) -> dict[str, object]:
        delay = slow_seconds(seconds)
        await asyncio.sleep(delay)
        session["slow"] = time.time()
        return {"slept": delay, **identity(settings, FRAMEWORK)}

    @api.get("/api/sessions")
    async def api_sessions(session: SessionDep) -> list[dict[str, object]]:
        user = session.user_id
        return session_list(await store.sessions_of(user), session.handle) if user else []

    api.add_middleware(SessionMiddleware, store=store, exclude_paths=["/healthz"])
    return api


app = create_app(settings_from_env())
