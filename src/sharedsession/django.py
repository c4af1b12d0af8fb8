"""Django: ``SESSION_ENGINE = "sharedsession.django"``, sessions kept in Redis and shared.

::

    # settings.py
    SESSION_ENGINE = "sharedsession.django"
    SESSION_COOKIE_NAME = "session"  # the name the Flask and ASGI adapters use
    SHAREDSESSION = {"redis_url": "redis://localhost:6379/1", "idle_timeout": 30 * 60}
    MIDDLEWARE = [
        "sharedsession.django.SessionMiddleware",  # instead of Django's SessionMiddleware
        ...
    ]

``request.session`` is a :class:`SessionStore`: Django's session API (what
``django.contrib.auth``, messages and your views already use) over the same
core, cookie and stored format as the Flask and ASGI adapters, so one login
holds across all three.

Settings
--------
:func:`config_from_settings` builds the :class:`~sharedsession.SessionConfig`:
``SECRET_KEY`` then ``SECRET_KEY_FALLBACKS`` sign cookies (rotation); Django's
``SESSION_COOKIE_NAME``, ``_AGE`` (the idle timeout), ``_DOMAIN``, ``_PATH``,
``_SECURE``, ``_HTTPONLY`` and ``_SAMESITE`` apply (Django's test client and
tools read them too); the ``SHAREDSESSION`` dict takes any SessionConfig field
by name and wins. Two more keys are Django's own: ``async_redis`` (the client
of the async API, see below) and ``unavailable_view`` (the answer when Redis
is down). A bad setting raises ``ImproperlyConfigured`` naming it, when the
middleware is loaded.

When Redis is used
------------------
Lazily. A request whose view never touches ``request.session`` (nor
``request.user``, which reads it) costs no Redis command; the first use loads
it (one round trip with a valid cookie, none without). The middleware saves it
when the response is ready: only the changed keys, nothing if nothing changed,
and a new session only once something is stored in it. ``cycle_key()``
(called by ``django.contrib.auth.login``) and ``flush()`` (``logout``) are
carried out at once, as Django documents them: the old key is dead when they
return.

Sync and async
--------------
Sync methods use a :class:`~sharedsession.SessionStore`; Django's async API
(``aget``, ``aset``, ``asave``, ``acycle_key``, ``aflush``...) uses an
:class:`~sharedsession.AsyncSessionStore` of the running event loop, never a
thread. Under an ASGI server the middleware saves through it too. Once a
session is loaded, by either API, its reads and writes are in memory.

Header tokens
-------------
With ``SHAREDSESSION = {"token_header": "Authorization"}`` the session travels
in a header instead of the cookie, for API and mobile clients (see
``sharedsession/_core/tokens.py``): the token is read from ``Authorization:
Bearer <token>`` (or the bare value of another header named there) and sent
back in ``Session-Token`` (or that header) when the session is created,
regenerated (``cycle_key()``, ``login()``) or renewed; an empty one when it
is destroyed (``flush()``, ``logout()``). The cookie is then neither read nor
set. A request that carries a token is exempt from Django's CSRF check
(browsers never add that header on their own, so a cross-site request cannot
carry it); cookie sessions keep Django's CSRF protection.

Redis down
----------
A view that uses the session meets :class:`~sharedsession.StoreUnavailableError`;
the middleware answers it with a short 503 and ``Retry-After`` (replace it
with ``SHAREDSESSION["unavailable_view"]``). Views that never touch the
session are unaffected.

Differences from Django's own backends (see the README): ``session_key`` is
only ever a cookie value this engine signed (anything else reads as no
session); Django's ``SESSION_SAVE_EVERY_REQUEST`` and ``SESSION_SERIALIZER``
are not used; a session expiry set with ``set_expiry()`` can shorten a
session's life, never extend it past ``idle_timeout`` or ``absolute_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from http.cookies import Morsel, SimpleCookie
from typing import Any, TypeAlias

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.auth import SESSION_KEY as AUTH_USER_KEY
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.module_loading import import_string
from redis.exceptions import RedisError

from sharedsession._core.config import SessionConfig
from sharedsession._core.errors import SessionLimitError, StoreUnavailableError
from sharedsession._core.http import (
    LIMIT_BODY,
    LIMIT_HEADERS,
    LIMIT_STATUS,
    UNAVAILABLE_BODY,
    UNAVAILABLE_HEADERS,
    UNAVAILABLE_STATUS,
    CookieAction,
    ExpireCookie,
    SetCookie,
    read_cookie,
)
from sharedsession._core.plan import SaveResult
from sharedsession._core.record import UNBOUND, Client
from sharedsession._core.session import Session
from sharedsession._core.tokens import TokenHeader
from sharedsession.store import AsyncSessionStore
from sharedsession.store import SessionStore as SyncStore

__all__ = [
    "SessionData",
    "SessionMiddleware",
    "SessionStore",
    "aget_session",
    "config_from_settings",
    "get_async_store",
    "get_session",
    "get_store",
    "store_unavailable",
]

log = logging.getLogger("sharedsession.django")

#: The settings dict read by :func:`config_from_settings`.
SETTING = "SHAREDSESSION"
# Django's session cookie settings and the SessionConfig fields they give.
_DJANGO_SETTINGS = {
    "SESSION_COOKIE_NAME": "cookie_name",
    "SESSION_COOKIE_AGE": "idle_timeout",
    "SESSION_COOKIE_DOMAIN": "cookie_domain",
    "SESSION_COOKIE_PATH": "cookie_path",
    "SESSION_COOKIE_SECURE": "cookie_secure",
    "SESSION_COOKIE_HTTPONLY": "cookie_httponly",
    "SESSION_COOKIE_SAMESITE": "cookie_samesite",
}
#: Keys of ``SHAREDSESSION`` that are not SessionConfig fields: Django's own.
DJANGO_KEYS = ("async_redis", "unavailable_view")
# Django's key of a per-session expiry (set_expiry), kept as Django keeps it.
EXPIRY_KEY = "_session_expiry"
# Stored for an instant by an explicit save() of an empty session; see _store_empty.
_PLACEHOLDER_KEY = "_sharedsession_created"

UnavailableView: TypeAlias = Callable[[HttpRequest, StoreUnavailableError], HttpResponseBase]
AsyncClientSource: TypeAlias = object  # an asyncio client, or a callable returning one per event loop


# -- settings -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DjangoSettings:
    """What the engine reads from ``settings.py``, checked once."""

    config: SessionConfig
    #: A redis.asyncio client, a callable making one per event loop, or None (from redis_url).
    async_redis: AsyncClientSource | None
    unavailable_view: UnavailableView
    #: Where the token travels with ``token_header``; None when sessions travel in the cookie.
    tokens: TokenHeader | None = None


def config_from_settings() -> DjangoSettings:
    """Read the session settings of the Django project; ``ImproperlyConfigured`` names a bad one.

    - Keys: ``[SECRET_KEY, *SECRET_KEY_FALLBACKS]``, newest first.
    - Django's ``SESSION_COOKIE_NAME``, ``_AGE`` (as ``idle_timeout``),
      ``_DOMAIN``, ``_PATH``, ``_SECURE``, ``_HTTPONLY``, ``_SAMESITE``
      (``False``: no SameSite attribute).
    - ``SHAREDSESSION``: any SessionConfig field by name (``redis_url``,
      ``absolute_timeout``, ``bind_ip``, ``trusted_proxies``, ``key_prefix``,
      ``redis``: a ready synchronous client...), winning over the above; plus
      ``async_redis`` (a ``redis.asyncio`` client, or a callable returning a
      new one, called once per event loop; required with ``redis``) and
      ``unavailable_view`` (a callable or dotted path: ``view(request,
      exception) -> HttpResponse``, the answer when Redis is down). A key
      that is neither raises (a typo must not pass silently).
    """
    given = getattr(settings, SETTING, {})
    if not isinstance(given, Mapping):
        raise ImproperlyConfigured(f"settings.{SETTING} must be a dict, got {type(given).__name__}")
    fields = {f.name for f in dataclasses.fields(SessionConfig) if f.init}
    unknown = sorted(set(given) - fields - set(DJANGO_KEYS))
    if unknown:
        known = ", ".join(sorted(fields | set(DJANGO_KEYS)))
        raise ImproperlyConfigured(f"settings.{SETTING} has unknown key(s) {unknown}; known: {known}")
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, field in _DJANGO_SETTINGS.items():
        value = getattr(settings, name)
        values[field] = None if field == "cookie_samesite" and value is False else value
        origin[field] = f"settings.{name}"
    values["secret_key"] = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", ())]
    origin["secret_key"] = "settings.SECRET_KEY / SECRET_KEY_FALLBACKS"  # noqa: S105  # names, not a key
    for key, value in given.items():
        if key in fields:
            values[key] = value
            origin[key] = f"settings.{SETTING}[{key!r}]"
    try:
        config = SessionConfig(**values)
        SyncStore(config).close()  # checks a ready client (SHAREDSESSION["redis"]) is a sync one
    except (TypeError, ValueError) as exc:
        found = re.search(r"SessionConfig\.(\w+)", str(exc))
        where = origin.get(found.group(1), f"settings.{SETTING}") if found else f"settings.{SETTING}"
        raise ImproperlyConfigured(f"{where}: {exc}") from exc
    return DjangoSettings(
        config=config,
        async_redis=_async_redis(given.get("async_redis"), config),
        unavailable_view=_unavailable_view(given.get("unavailable_view")),
        tokens=TokenHeader.of(config),
    )


def _async_redis(value: object, config: SessionConfig) -> AsyncClientSource | None:
    if value is None:
        return None
    if _is_async_client(value) or (callable(value) and not hasattr(value, "pipeline")):
        return value
    raise ImproperlyConfigured(
        f"settings.{SETTING}['async_redis'] must be a redis.asyncio client or a callable returning one, "
        f"got {type(value).__name__}"
    )


def _is_async_client(value: object) -> bool:
    return hasattr(value, "pipeline") and iscoroutinefunction(getattr(value, "execute_command", None))


def _unavailable_view(value: object) -> UnavailableView:
    if value is None:
        return store_unavailable
    if isinstance(value, str):
        try:
            value = import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(f"settings.{SETTING}['unavailable_view']: {exc}") from exc
    if not callable(value):
        raise ImproperlyConfigured(
            f"settings.{SETTING}['unavailable_view'] must be a view (request, exception) -> HttpResponse"
        )
    return value


# -- the stores of this process ---------------------------------------------------------------


class _Stores:
    """The process's stores, built from the settings on first use; rebuilt when a test changes them.

    One synchronous store, and one asyncio store per event loop: a redis.asyncio
    client belongs to the loop it first ran in. A client built here (from
    ``redis_url`` or by the ``async_redis`` callable) is closed when its loop
    finishes: asyncio.run, ASGI servers and asgiref cancel the tasks left at
    the end, and a task waiting for that closes the client.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._settings: DjangoSettings | None = None
        self._sync: SyncStore | None = None
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncSessionStore] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: set[asyncio.Task[None]] = set()

    def settings(self) -> DjangoSettings:
        found = self._settings
        if found is None:
            with self._lock:
                if self._settings is None:
                    self._settings = config_from_settings()
                found = self._settings
        return found

    def sync(self) -> SyncStore:
        found = self._sync
        if found is None:
            config = self.settings().config
            with self._lock:
                if self._sync is None:
                    self._sync = SyncStore(config)
                found = self._sync
        return found

    def for_running_loop(self) -> AsyncSessionStore:
        loop = asyncio.get_running_loop()
        found = self._async.get(loop)
        if found is not None:
            return found
        django_settings = self.settings()
        with self._lock:
            found = self._async.get(loop)
            if found is None:
                found, owned = _new_async_store(django_settings)
                self._async[loop] = found
                closer = loop.create_task(_close_when_the_loop_ends(found, owned))
                self._closers.add(closer)
                closer.add_done_callback(self._closers.discard)
        return found

    def reset(self) -> None:
        """Forget the settings and stores (a test changed the settings); close what can be closed now."""
        with self._lock:
            sync, self._sync, self._settings = self._sync, None, None
            self._async = weakref.WeakKeyDictionary()  # each closes when its loop ends
        if sync is not None:
            sync.close()


def _new_async_store(django_settings: DjangoSettings) -> tuple[AsyncSessionStore, object | None]:
    """An asyncio store for the running loop, and the client to close with the loop (if ours)."""
    config = django_settings.config
    source = django_settings.async_redis
    if source is None:
        if config.redis is not None:
            raise ImproperlyConfigured(
                f"settings.{SETTING}['redis'] is a synchronous client; Django's async session API "
                f"needs settings.{SETTING}['async_redis'] too (a redis.asyncio client, or a callable "
                "returning one)"
            )
        return AsyncSessionStore(config), None  # builds its client from redis_url; aclose() closes it
    if _is_async_client(source):
        return AsyncSessionStore(dataclasses.replace(config, redis=source)), None  # yours to close
    assert callable(source)  # checked by _async_redis
    client = source()
    try:
        return AsyncSessionStore(dataclasses.replace(config, redis=client)), client
    except TypeError as exc:
        raise ImproperlyConfigured(f"settings.{SETTING}['async_redis'] returned {client!r}: {exc}") from exc


async def _close_when_the_loop_ends(store: AsyncSessionStore, client: object | None) -> None:
    try:
        await asyncio.get_running_loop().create_future()  # until cancelled, at the loop's end
    finally:
        with contextlib.suppress(OSError, RedisError):
            if client is not None:
                await client.aclose()  # type: ignore[attr-defined]  # a redis.asyncio client
            else:
                await store.aclose()


_stores = _Stores()


def _settings_changed(*, setting: str, **kwargs: object) -> None:
    if setting == SETTING or setting in _DJANGO_SETTINGS or setting.startswith("SECRET_KEY"):
        _stores.reset()


setting_changed.connect(_settings_changed)


def get_store() -> SyncStore:
    """The process's synchronous :class:`~sharedsession.SessionStore`, for admin work in views.

    ``get_store().sessions_of(str(request.user.pk))``, ``revoke(handle)``,
    ``revoke_user(user_id)``.
    """
    return _stores.sync()


def get_async_store() -> AsyncSessionStore:
    """The :class:`~sharedsession.AsyncSessionStore` of the running event loop (async views)."""
    return _stores.for_running_loop()


# -- the session's data ----------------------------------------------------------------------------


class SessionData(Session):
    """The data of a Django session: a :class:`~sharedsession.Session` that follows Django's login.

    ``django.contrib.auth.login()`` stores the user's primary key (a string)
    under ``_auth_user_id``: that assignment links the session to the user
    (``user_id``), so ``sessions_of()`` and ``revoke_user()`` work for Django
    users, and the Flask and ASGI apps see who is logged in. Removing the key
    (``logout()`` flushes the session) unlinks it.
    """

    __slots__ = ()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        if key == AUTH_USER_KEY:
            self.user_id = _user_id_of(value)

    def __delitem__(self, key: str) -> None:
        with self._unlinking(key):
            super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        with self._unlinking(key):
            return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        with self._unlinking(next(reversed(self), None)):
            return super().popitem()

    def clear(self) -> None:
        with self._unlinking(AUTH_USER_KEY):
            super().clear()

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """All or nothing, the user link included."""
        user_id = self.user_id
        try:
            super().update(other, **kwargs)
        except BaseException:
            self.user_id = user_id
            raise

    @contextlib.contextmanager
    def _unlinking(self, key: str | None) -> Iterator[None]:
        """Unlink the user if this removes the login that linked it."""
        linked = key == AUTH_USER_KEY and key in self and self.user_id == _user_id_of(self.get(key))
        yield
        if linked and key not in self:
            self.user_id = None


def _user_id_of(value: object) -> str | None:
    user_id = str(value) if value is not None else ""
    return user_id if 0 < len(user_id) <= 256 else None


# -- the engine ----------------------------------------------------------------------------------------


class SessionStore(SessionBase):
    """Django's ``request.session`` under ``SESSION_ENGINE = "sharedsession.django"``.

    Made by :class:`SessionMiddleware` for each request (which passes the
    request, for binding, and with ``token_header`` the header that carried
    the key), or directly: ``SessionStore(cookie_value)``, as
    Django's test client and tests do (no binding then: the client address is
    unknown). Nothing is read from Redis until the session is used.

    Django's API, mapped onto the core:

    - ``session_key`` is the cookie value (the signed sid). Reading it loads
      the session: a value this engine did not sign, or that names no live
      session, reads as ``None``; a client-chosen key is never adopted.
    - ``save()`` writes the changed keys (a new session: created, even empty,
      because Django's contract says so; the middleware stores nothing for a
      session nothing was put in). It raises ``UpdateError`` if the session
      was ended elsewhere meanwhile: its changes are dropped, never revived.
    - ``cycle_key()`` is :meth:`~sharedsession.Session.regenerate`, ``flush()``
      is :meth:`~sharedsession.Session.destroy`, both saved at once.
    - ``set_expiry()`` and ``get_expiry_*()`` are Django's (the expiry is kept
      in the session as Django keeps it); see the README for how it bounds the
      cookie and the server-side life.
    - ``clear_expired()`` does nothing: Redis expires sessions by itself.

    Besides Django's API: :attr:`user_id` and :attr:`handle`, as on every
    sharedsession session.
    """

    def __init__(
        self,
        session_key: str | None = None,
        *,
        request: HttpRequest | None = None,
        tokens: TokenHeader | None = None,
    ) -> None:
        super().__init__(session_key)
        self._request = request
        #: The header the session key came in and goes back out in; None: the cookie.
        self._tokens = tokens
        self._client: Client | None = None
        #: What the latest save asked of the cookie, for the middleware.
        self._cookie: CookieAction | None = None
        self._load_error: StoreUnavailableError | None = None
        self._closed = False  # ended elsewhere while this request ran: no more saves
        self._had_expiry = False  # loaded with its own set_expiry(): its cookie follows changes

    # -- loading ------------------------------------------------------------------

    @property
    def session_key(self) -> str | None:
        self._get_session()
        return self._session_key

    def _get_session(self, no_load: bool = False) -> SessionData:
        data = self._cached()
        if data is None:
            data = self._empty()
            with self._failing_once():
                _stores.sync().load(*self._load_args(), into=data)
            data = self._fill(data)
        return data

    async def _aget_session(self, no_load: bool = False) -> SessionData:
        data = self._cached()
        if data is None:
            data = self._empty()
            with self._failing_once():
                await _stores.for_running_loop().load(*self._load_args(), into=data)
            data = self._fill(data)
        return data

    _session = property(_get_session)

    def _cached(self) -> SessionData | None:
        """The loaded data, or None; raises at once if loading failed earlier in this request."""
        self.accessed = True
        data = self._loaded()
        if data is None and self._load_error is not None:
            raise StoreUnavailableError(*self._load_error.args) from self._load_error.__cause__
        return data

    @contextlib.contextmanager
    def _failing_once(self) -> Iterator[None]:
        try:
            yield
        except StoreUnavailableError as exc:
            self._load_error = exc  # do not wait for Redis twice in one request
            raise

    @staticmethod
    def _empty() -> SessionData:
        return SessionData(max_size=_stores.settings().config.max_size)

    def _load_args(self) -> tuple[str | None, Client | None]:
        return self._session_key, self._request_client()

    def _request_client(self) -> Client | None:
        """The client the session is bound to (binding on, and a request to read it from)."""
        if self._client is None:
            request = self._request
            if request is None or not _stores.settings().config.binds:
                self._client = UNBOUND
            else:
                meta = request.META
                self._client = _stores.sync().client(
                    meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"), meta.get("HTTP_USER_AGENT")
                )
        return self._client

    def _fill(self, data: SessionData) -> SessionData:
        """Take freshly loaded data as this session's; ends it if its Django expiry has passed."""
        if data.new:
            self._session_key = None  # no cookie, or one naming no live session: never adopted
        elif _expired(data.get(EXPIRY_KEY)):
            log.debug("session %s: its set_expiry() deadline has passed; ending it", data.handle)
            data.destroy()  # the stored session ends at the next save (the middleware's)
            self._session_key = None
        self._session_cache = data
        self._closed = False
        self._had_expiry = EXPIRY_KEY in data
        return data

    def load(self) -> SessionData:
        """Read the session from Redis now (one round trip with a valid key, else none)."""
        self.__dict__.pop("_session_cache", None)
        self._load_error = None
        return self._get_session()

    async def aload(self) -> SessionData:
        self.__dict__.pop("_session_cache", None)
        self._load_error = None
        return await self._aget_session()

    # -- Django's contract, through the core ----------------------------------------------

    def exists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        return not _stores.sync().load(session_key, self._request_client()).new

    async def aexists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        return not (await _stores.for_running_loop().load(session_key, self._request_client())).new

    def create(self) -> None:
        """Start a new session, stored at once even empty (Django's contract); the old one is left as is."""
        data = self._empty()
        _stores.sync().load(None, self._request_client(), into=data)  # no cookie: no round trip
        self._start(data)
        self._store_empty_sync(data)

    async def acreate(self) -> None:
        data = self._empty()
        await _stores.for_running_loop().load(None, self._request_client(), into=data)
        self._start(data)
        await self._astore_empty(data)

    def _start(self, data: SessionData) -> None:
        self._session_cache = data
        self._session_key = None
        self._closed = False
        self.accessed = self.modified = True

    def save(self, must_create: bool = False) -> None:
        """Write what changed; a new session is created, even empty.

        ``UpdateError`` if the session was ended elsewhere meanwhile (its changes are dropped).
        """
        data = self._get_session()
        if must_create and not data.new:
            raise CreateError("this session is stored already")
        if data.new and not data:
            self._store_empty_sync(data)
        elif self._apply(self._save_sync(data)) == "gone":
            raise UpdateError("the session was ended elsewhere while this request used it")

    async def asave(self, must_create: bool = False) -> None:
        data = await self._aget_session()
        if must_create and not data.new:
            raise CreateError("this session is stored already")
        if data.new and not data:
            await self._astore_empty(data)
        elif self._apply(await self._asave(data)) == "gone":
            raise UpdateError("the session was ended elsewhere while this request used it")

    def delete(self, session_key: str | None = None) -> None:
        """End a session: this one (no key, or its own), else the one ``session_key`` names."""
        if session_key is None or session_key == self._session_key:
            if self._session_key is None and "_session_cache" not in self.__dict__:
                return  # nothing stored, nothing loaded
            data = self._get_session()
            data.destroy()
            self._apply(self._save_sync(data))
            return
        store = _stores.sync()
        other = store.load(session_key, self._request_client())
        if not other.new:
            other.destroy()
            store.save(other)

    async def adelete(self, session_key: str | None = None) -> None:
        if session_key is None or session_key == self._session_key:
            if self._session_key is None and "_session_cache" not in self.__dict__:
                return
            data = await self._aget_session()
            data.destroy()
            self._apply(await self._asave(data))
            return
        store = _stores.for_running_loop()
        other = await store.load(session_key, self._request_client())
        if not other.new:
            other.destroy()
            await store.save(other)

    def flush(self) -> None:
        """Log out: the session's data and its stored copy are gone now, its cookie expired at the response.

        Anything stored afterwards (a message for the logged-out user) goes
        into a new session.
        """
        self.delete()
        self._session_key = None
        self.accessed = self.modified = True

    async def aflush(self) -> None:
        await self.adelete()
        self._session_key = None
        self.accessed = self.modified = True

    def cycle_key(self) -> None:
        """A new session key, same data, the old key dead: saved now (if the session is stored)."""
        data = self._get_session()
        if not data.new:
            data.regenerate()
            self._apply(self._save_sync(data))
        self.modified = True

    async def acycle_key(self) -> None:
        data = await self._aget_session()
        if not data.new:
            data.regenerate()
            self._apply(await self._asave(data))
        self.modified = True

    def clear(self) -> None:
        self._get_session().clear()
        self.accessed = self.modified = True

    def get_session_cookie_age(self) -> int:
        """The idle timeout (``SESSION_COOKIE_AGE`` unless ``SHAREDSESSION`` sets ``idle_timeout``)."""
        return int(_stores.settings().config.idle_timeout)

    @classmethod
    def clear_expired(cls) -> None:
        """Nothing to do: every session has a TTL in Redis."""

    @classmethod
    async def aclear_expired(cls) -> None:
        """Nothing to do: every session has a TTL in Redis."""

    # -- sharedsession's own ----------------------------------------------------------------

    @property
    def user_id(self) -> str | None:
        """The user this session is linked to (set by ``login()``; see :class:`SessionData`)."""
        return self._get_session().user_id

    @user_id.setter
    def user_id(self, value: str | None) -> None:
        self._get_session().user_id = value
        self.modified = True

    @property
    def handle(self) -> str | None:
        """The stored session's handle, as ``sessions_of()`` lists it; None while not stored."""
        return self._get_session().handle

    # -- saving ----------------------------------------------------------------------------

    def _save_sync(self, data: SessionData) -> SaveResult | None:
        if self._closed:
            return None
        store = _stores.sync()
        with self._closing_on_refusal():
            return store.save(data) if store.needs_save(data) else None

    async def _asave(self, data: SessionData) -> SaveResult | None:
        if self._closed:
            return None
        store = _stores.for_running_loop()
        with self._closing_on_refusal():
            return await store.save(data) if store.needs_save(data) else None

    @contextlib.contextmanager
    def _closing_on_refusal(self) -> Iterator[None]:
        """A save refused by the session limit is not tried again at the response: the
        view that called ``save()`` answers it (or the middleware, with a 403)."""
        try:
            yield
        except SessionLimitError:
            self._closed = True
            raise

    def _apply(self, result: SaveResult | None) -> str | None:
        """Follow a save: the new cookie value is the session key; returns the outcome."""
        if result is None:
            return None
        cookie = result.cookie
        if cookie is not None:
            self._cookie = cookie
        if isinstance(cookie, SetCookie):
            self._session_key = cookie.value
        elif result.outcome == "destroyed":
            self._session_key = None
        elif result.outcome == "gone":
            self._closed = True  # its changes were dropped; do not try again in this request
        return result.outcome

    def _store_empty_sync(self, data: SessionData) -> None:
        # Django's contract stores an empty session on save() and create(); the
        # core writes a session only once it holds something. Put a key in for
        # one write and take it out: the session is unreachable until its
        # cookie goes out, so nobody ever sees the key.
        data[_PLACEHOLDER_KEY] = True
        self._apply(self._save_sync(data))
        del data[_PLACEHOLDER_KEY]
        self._apply(self._save_sync(data))

    async def _astore_empty(self, data: SessionData) -> None:
        data[_PLACEHOLDER_KEY] = True
        self._apply(await self._asave(data))
        del data[_PLACEHOLDER_KEY]
        self._apply(await self._asave(data))

    # -- for the middleware -------------------------------------------------------------------

    def _commit(self) -> StoreUnavailableError | SessionLimitError | None:
        """Save what changed, if the session was loaded; the failure is returned, not raised."""
        data = self._loaded()
        try:
            if data is not None:
                self._apply(self._save_sync(data))
        except (StoreUnavailableError, SessionLimitError) as exc:
            return exc
        return None

    async def _acommit(self) -> StoreUnavailableError | SessionLimitError | None:
        data = self._loaded()
        try:
            if data is not None:
                self._apply(await self._asave(data))
        except (StoreUnavailableError, SessionLimitError) as exc:
            return exc
        return None

    def _loaded(self) -> SessionData | None:
        found = self.__dict__.get("_session_cache")
        return found if isinstance(found, SessionData) else None


def _expired(expiry: object) -> bool:
    """Whether Django's ``_session_expiry`` value names a time that has passed.

    A datetime (stored as ISO text by ``set_expiry``) is a deadline; a negative
    number of seconds is past at once. A positive number is an inactivity
    period the cookie's Max-Age carries (the server keeps ``idle_timeout``).
    """
    if isinstance(expiry, bool):
        return False
    if isinstance(expiry, int | float):
        return expiry < 0
    if not isinstance(expiry, str):
        return False
    try:
        deadline = datetime.fromisoformat(expiry)
    except ValueError:
        log.debug("session expiry %r is not a date; ignored", expiry)
        return False
    return deadline <= datetime.now(deadline.tzinfo)


def get_session(request: HttpRequest) -> SessionStore:
    """``request.session``, typed as this engine's :class:`SessionStore` (``user_id``, ``handle``).

    ``RuntimeError`` if the request has no such session: :class:`SessionMiddleware`
    is not in ``MIDDLEWARE``.
    """
    session = getattr(request, "session", None)
    if not isinstance(session, SessionStore):
        raise RuntimeError(
            "request.session is not a sharedsession session: put sharedsession.django.SessionMiddleware "
            "in MIDDLEWARE (in place of django.contrib.sessions.middleware.SessionMiddleware)"
        )
    return session


async def aget_session(request: HttpRequest) -> SessionStore:
    """:func:`get_session`, loaded through the asyncio store: then every use is in memory."""
    session = get_session(request)
    await session._aget_session()
    return session


# -- the middleware ------------------------------------------------------------------------------------


class SessionMiddleware(DjangoSessionMiddleware):
    """Puts a :class:`SessionStore` on each request and saves it with the response.

    Replaces ``django.contrib.sessions.middleware.SessionMiddleware`` in
    ``MIDDLEWARE`` (it subclasses it, so Django's admin checks accept it).
    Sync under WSGI, async under ASGI (saving through the asyncio store, no
    thread). Reads the settings when Django loads it: a bad setting fails
    at startup.

    At the response (status below 500; a crashed view saves nothing):

    - the session is saved if it was loaded: only what changed is written;
    - a ``Set-Cookie`` goes out when a save asked for one (created,
      regenerated, renewed: the same cookie the Flask and ASGI adapters send;
      destroyed: expired), without Max-Age for a browser-session cookie
      (``set_expiry(0)``, ``SESSION_EXPIRE_AT_BROWSER_CLOSE``), and again when a
      session with its own ``set_expiry()`` changes, as Django does;
    - ``Vary: Cookie`` when the session was used or a cookie was set.

    With ``token_header`` (``SHAREDSESSION = {"token_header": "Authorization"}``)
    the session key is the token of that request header (``Authorization:
    Bearer <token>``; the bare value of another header), and the cookie is
    neither read nor set. Instead:

    - the token goes out in a response header (``Session-Token``, or the
      configured header) when a save asked for a cookie: the new token when
      the session was created, regenerated or renewed, an empty value when it
      was destroyed (drop the token); Django's cookie lifetime rules
      (``set_expiry()``'s Max-Age, a browser-session cookie) have nothing to
      shape, as a token has no lifetime on the client;
    - ``Cache-Control: no-store`` with a token, unless the view set its own;
    - ``Vary: <the request header>`` when the session was used or a token
      goes out;
    - a request that carries a token is exempt from ``CsrfViewMiddleware``'s
      checks (no browser adds that header on its own, so a cross-site request
      cannot carry it, which is what CSRF protection guards against), as
      Django REST framework exempts its token authentication. A request
      without one (a client's first login) is checked as before, and cookie
      sessions keep Django's CSRF protection.

    The session ended elsewhere meanwhile: its changes are dropped, the
    response goes out as it is (Django's own middleware answers 400).
    :class:`~sharedsession.StoreUnavailableError`, raised by a view, by
    another middleware or by the save: the ``unavailable_view`` answers (a 503
    with ``Retry-After`` by default).
    """

    def __init__(self, get_response: Any) -> None:
        super(DjangoSessionMiddleware, self).__init__(get_response)  # not Django's: no engine import
        self.SessionStore = SessionStore
        _stores.sync()  # the settings, checked now

    def process_request(self, request: HttpRequest) -> None:
        request.session = _session_for(request)

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:  # type: ignore[override]
        session = request.session
        if not isinstance(session, SessionStore):
            return response
        failure = session._commit() if response.status_code < 500 else None
        return self._finish(request, session, response, failure)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        self.process_request(request)
        # In async mode (Django chose it: get_response is a coroutine function).
        response: HttpResponseBase = await self.get_response(request)  # type: ignore[misc]
        session = request.session
        if not isinstance(session, SessionStore):
            return response
        failure = await session._acommit() if response.status_code < 500 else None
        return self._finish(request, session, response, failure)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        # Django calls exception middleware synchronously, also under ASGI.
        if isinstance(exception, StoreUnavailableError):
            return self._unavailable(request, exception)
        if isinstance(exception, SessionLimitError):  # a request.session.save() in the view
            return session_limit(request, exception)
        return None

    def _unavailable(self, request: HttpRequest, exception: StoreUnavailableError) -> HttpResponseBase:
        log.warning("session store unavailable, answering with the unavailable view: %s", exception)
        return _stores.settings().unavailable_view(request, exception)

    def _finish(
        self,
        request: HttpRequest,
        session: SessionStore,
        response: HttpResponseBase,
        failure: StoreUnavailableError | SessionLimitError | None,
    ) -> HttpResponseBase:
        """The response to send: the save's 503 (or 403) if it failed, the session cookie (or token), Vary."""
        saved = response.status_code < 500 and failure is None
        if isinstance(failure, SessionLimitError):
            response = session_limit(request, failure)
        elif failure is not None:
            response = self._unavailable(request, failure)
        error = session._load_error
        if error is not None and response.status_code == 500:
            # Redis failed outside a view (another middleware, a template rendered
            # late): Django answered 500; the cause was the store.
            response = self._unavailable(request, error)
        tokens = session._tokens
        if tokens is not None:
            return _send_token(session, tokens, response)
        morsel = _cookie_morsel(session, saved=saved)
        if morsel is not None:
            response.cookies[morsel.key] = morsel
        if session.accessed or morsel is not None:
            patch_vary_headers(response, ("Cookie",))
        return response


def _session_for(request: HttpRequest) -> SessionStore:
    django_settings = _stores.settings()
    tokens = django_settings.tokens
    if tokens is None:
        name = django_settings.config.cookie_name
        return SessionStore(read_cookie(_cookie_header(request), name), request=request)
    # A token session: the cookie is not even read.
    token = tokens.read(_token_header(request, tokens))
    if token is not None:
        # Only a request's own code can put a token in this header (no browser adds
        # it by itself, and a cross-site script needs CORS's consent): nothing
        # for CSRF protection to guard. Django's CsrfViewMiddleware honours this
        # flag (its test client sets it; so does Django REST framework for
        # non-session authentication). A request without a token is checked.
        request._dont_enforce_csrf_checks = True  # type: ignore[attr-defined]
    return SessionStore(token, request=request, tokens=tokens)


def _token_header(request: HttpRequest, tokens: TokenHeader) -> str | None:
    """The value of the request's token header, None if absent.

    A header given twice reaches Django joined with "," (by the WSGI server, or
    by Django under ASGI): no token this engine signed looks like that, so it
    is refused by its signature, before any Redis command.
    """
    value = request.META.get(tokens.environ_key)
    return value if isinstance(value, str) else None


def _send_token(session: SessionStore, tokens: TokenHeader, response: HttpResponseBase) -> HttpResponseBase:
    """Put the token a save asked for in its response header: never a cookie."""
    action, session._cookie = session._cookie, None
    if action is not None:
        token = tokens.response_value(action)  # "" when the session was destroyed: drop it
        response[tokens.response] = token
        if token and not response.has_header("Cache-Control"):
            response["Cache-Control"] = "no-store"  # no cache may keep a token
    if session.accessed or action is not None:
        patch_vary_headers(response, (tokens.name,))
    return response


def _cookie_header(request: HttpRequest) -> str | None:
    scope = getattr(request, "scope", None)
    if isinstance(scope, Mapping):
        # ASGI: HTTP/2 may split cookies over several headers, which Django joins
        # with "," in META (a separator cookies do not use): join them as one header.
        cookies = [value.decode("latin-1") for name, value in scope.get("headers") or () if name == b"cookie"]
        return "; ".join(cookies) if cookies else None
    header = request.META.get("HTTP_COOKIE")
    return header if isinstance(header, str) else None


def _cookie_morsel(session: SessionStore, *, saved: bool) -> Morsel[str] | None:
    """The session cookie the response must carry, or None.

    Rendered by the store (the one Set-Cookie every adapter sends), then
    shaped by Django's expiry: no Max-Age for a browser-session cookie, the
    session's own ``set_expiry()`` age when that is shorter.
    """
    action, session._cookie = session._cookie, None
    data = session._loaded()
    custom = data.get(EXPIRY_KEY) if data is not None else None
    if action is None:
        # Django re-sends the cookie whenever a session with its own expiry changes
        # (or loses it: the browser's copy still has the old lifetime).
        key = session._session_key
        own_expiry = custom is not None or session._had_expiry
        if not (saved and own_expiry and session.modified and key and data is not None and not data.new):
            return None
        action = SetCookie(key, session.get_session_cookie_age() * 2)
    if data is not None and isinstance(action, SetCookie):
        if session.get_expire_at_browser_close():
            return _morsel(action, browser_session=True)
        if custom is not None:
            action = SetCookie(action.value, max(0, min(action.max_age_seconds, session.get_expiry_age())))
    return _morsel(action, browser_session=False)


def _morsel(action: CookieAction, *, browser_session: bool) -> Morsel[str]:
    store = _stores.sync()
    jar: SimpleCookie = SimpleCookie()
    jar.load(store.cookie_header(action))
    morsel = jar[store.config.cookie_name]
    if browser_session and not isinstance(action, ExpireCookie):
        morsel["max-age"] = ""
        morsel["expires"] = ""
    return morsel


def session_limit(request: HttpRequest, exception: SessionLimitError) -> HttpResponse:
    """The answer to a login refused by ``max_sessions_per_user`` (``on_session_limit="refuse"``)
    that the view did not handle: a short 403, nothing saved. To answer it yourself, call
    ``request.session.save()`` after ``login()`` and catch :class:`~sharedsession.SessionLimitError`.
    """
    log.info("login refused by the session limit, answering 403: %s", exception)
    return HttpResponse(LIMIT_BODY, status=LIMIT_STATUS, headers=dict(LIMIT_HEADERS))


def store_unavailable(request: HttpRequest, exception: StoreUnavailableError) -> HttpResponse:
    """The default answer when Redis cannot be reached: a short 503 with ``Retry-After``.

    Replace it with ``SHAREDSESSION["unavailable_view"]``.
    """
    return HttpResponse(UNAVAILABLE_BODY, status=UNAVAILABLE_STATUS, headers=dict(UNAVAILABLE_HEADERS))
