"""The Starlette app of the benchmark (uvicorn, one worker): ``bench.apps.asgi_app:app``.

Variants: ``none`` (no session middleware: the floor), ``cookie``
(Starlette's own signed-cookie ``SessionMiddleware``), ``sharedsession``,
``sharedsession-enc`` (with encryption at rest), ``sharedsession-cached``
(with the local cache), ``starsessions`` (with its ``RedisStore``; views load the session
explicitly, its cheapest use: requests that do not need it cost nothing).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from bench.apps import CACHE_ENTRIES, LIFETIME_SECONDS, AppSettings, login_data

VARIANTS = ("none", "cookie", "sharedsession", "sharedsession-enc", "sharedsession-cached", "starsessions")


def create_app(settings: AppSettings) -> Starlette:
    if settings.variant not in VARIANTS:
        raise ValueError(f"BENCH_VARIANT={settings.variant!r}: one of {', '.join(VARIANTS)}")
    middleware: list[Middleware] = []
    uses_session = settings.variant != "none"
    explicit_load = settings.variant == "starsessions"
    if settings.variant == "cookie":
        from starlette.middleware.sessions import SessionMiddleware as CookieSessions

        middleware.append(Middleware(CookieSessions, secret_key=settings.secret, max_age=LIFETIME_SECONDS))
    elif settings.variant.startswith("sharedsession"):
        from sharedsession.asgi import SessionMiddleware

        middleware.append(
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret,
                redis_url=settings.redis_url,
                key_prefix=settings.prefix + "sharedsession:",
                encryption_keys=settings.encryption_keys,
                local_cache=CACHE_ENTRIES if settings.variant == "sharedsession-cached" else 0,
            )
        )
    elif settings.variant == "starsessions":
        import redis.asyncio
        from starsessions import SessionMiddleware as StarSessions  # type: ignore[import-not-found, unused-ignore]
        from starsessions.stores.redis import RedisStore  # type: ignore[import-not-found, unused-ignore]

        store = RedisStore(
            connection=redis.asyncio.Redis.from_url(settings.redis_url),
            prefix=settings.prefix + "starsessions.",
        )
        middleware.append(
            Middleware(
                StarSessions, store=store, lifetime=LIFETIME_SECONDS, rolling=True, cookie_https_only=False
            )
        )

    async def load(request: Request) -> None:
        if explicit_load:
            from starsessions import load_session  # type: ignore[import-not-found, unused-ignore]

            await load_session(request)

    async def anon(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def read(request: Request) -> PlainTextResponse:
        if not uses_session:
            return PlainTextResponse("alice")
        await load(request)
        return PlainTextResponse(str(request.session.get("user")))

    async def write(request: Request) -> PlainTextResponse:
        if not uses_session:
            return PlainTextResponse("6")
        await load(request)
        n = request.session.get("n", 0) + 1
        request.session["n"] = n
        return PlainTextResponse(str(n))

    async def login(request: Request) -> PlainTextResponse:
        if uses_session:
            await load(request)
            request.session.update(login_data(request.query_params.get("shape")))
        return PlainTextResponse("alice")

    async def kv(request: Request) -> PlainTextResponse:
        key = request.path_params["key"]
        if uses_session:
            await load(request)
            request.session[key] = 1
        return PlainTextResponse(key)

    async def dump(request: Request) -> JSONResponse:
        if not uses_session:
            return JSONResponse([])
        await load(request)
        return JSONResponse(sorted(request.session.keys()))

    routes = [
        Route("/anon", anon),
        Route("/read", read),
        Route("/write", write, methods=["POST"]),
        Route("/login", login, methods=["POST"]),
        Route("/kv/{key}", kv, methods=["POST"]),
        Route("/dump", dump),
    ]
    return Starlette(routes=routes, middleware=middleware)


app = create_app(AppSettings.from_env())
