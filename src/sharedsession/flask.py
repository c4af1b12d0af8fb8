"""SharedSession: Flask's ``session``, kept in Redis and shared by every replica.

::

    from flask import Flask, session
    from sharedsession.flask import SharedSession

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "a long random string"
    app.config["SHAREDSESSION_REDIS_URL"] = "redis://localhost:6379/1"
    SharedSession(app)  # the one line: views keep using flask.session

Settings come from ``app.config`` (:func:`config_from_app`) unless a
:class:`~sharedsession.SessionConfig` is passed.

When Redis is used
------------------
Lazily. A request whose view never touches ``session`` costs no Redis command,
whatever cookie it brings; the first use loads the session (one round trip).
The session is saved when the app has produced its response (after the
``after_request`` functions): only what changed is written, and a Set-Cookie is
sent only when the session was created, regenerated or destroyed, or its
cookie is due for renewal (README, "Expiry").

When a view fails
-----------------
- An exception that no error handler takes (Flask's 500, which sends
  ``got_request_exception``): nothing is saved and no cookie is set. The
  session stays as it was before the request; a ``regenerate()`` or
  ``destroy()`` made by the view did not happen.
- ``abort()``, any other ``HTTPException``, and exceptions the app answers
  with its own error handler: the app chose that response, so the session is
  saved as with any response (as Flask's cookie sessions do).
- Redis unreachable (:class:`~sharedsession.StoreUnavailableError`, at load
  or at save): nothing is saved; the extension's error handler answers a
  short 503 with ``Retry-After``. Replace it with your own
  ``@app.errorhandler(StoreUnavailableError)`` (before or after
  ``init_app``). Views that do not use the session are not affected.
- A value that cannot be stored raises
  :class:`~sharedsession.SessionDataError` at the assignment. If an in-place
  edit (``session["cart"].append(...)``) made the session unstorable, it is
  raised at save: handled by an app error handler for ``SessionDataError``
  if there is one, else a 500; either way nothing is saved.

``session.permanent``
---------------------
Always True: the cookie carries a Max-Age derived from ``idle_timeout`` and
``absolute_timeout`` (README, "Expiry"), never a browser-session cookie, and
nothing is stored in the session's data for it. ``session.permanent = True``
is accepted (existing code keeps working); ``= False`` raises ``ValueError``
rather than silently keeping a persistent cookie. Flask's
``PERMANENT_SESSION_LIFETIME`` and ``SESSION_REFRESH_EACH_REQUEST`` are not
used; see ``SHAREDSESSION_IDLE_TIMEOUT`` and ``SHAREDSESSION_ABSOLUTE_TIMEOUT``.

Header tokens (API and mobile clients)
--------------------------------------
With ``SHAREDSESSION_TOKEN_HEADER = "Authorization"`` the session travels as
``Authorization: Bearer <token>`` instead of the cookie: the cookie is
neither read nor set, and a new, regenerated or renewed session's token is
sent back in a ``Session-Token`` response header (empty on ``destroy()``:
drop it), with ``Vary: Authorization`` and, unless the view set its own,
``Cache-Control: no-store`` (see ``_core/tokens.py``). Another
header name carries the bare token both ways. Servers that hide
Authorization from WSGI apps (Apache mod_wsgi: ``WSGIPassAuthorization On``)
must be told to pass it.

Client address (binding) and ProxyFix
-------------------------------------
The peer is the WSGI ``REMOTE_ADDR``; ``X-Forwarded-For`` is believed only
when that peer is in ``trusted_proxies`` (read from the right, skipping
trusted hops). ProxyFix is not needed. If the app already uses Werkzeug's
``ProxyFix``, ``REMOTE_ADDR`` is the client ProxyFix settled on and the
peer is no longer a proxy: leave ``trusted_proxies`` empty, ProxyFix's
``x_for`` count is then the trust rule.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import flask
from flask import Flask, Response, current_app, got_request_exception, has_app_context, has_request_context
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.exceptions import HTTPException

from sharedsession._core.config import SessionConfig
from sharedsession._core.errors import SessionError, SessionLimitError, StoreUnavailableError
from sharedsession._core.http import (
    LIMIT_BODY,
    LIMIT_HEADERS,
    LIMIT_STATUS,
    UNAVAILABLE_BODY,
    UNAVAILABLE_HEADERS,
    UNAVAILABLE_STATUS,
    CookieAction,
    read_cookie,
)
from sharedsession._core.record import UNBOUND, State
from sharedsession._core.session import Session
from sharedsession._core.tokens import TokenHeader
from sharedsession.store import SessionStore

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

    from flask.wrappers import Request

__all__ = [
    "FlaskSession",
    "SharedSession",
    "SharedSessionInterface",
    "config_from_app",
    "session",
    "store_unavailable",
]

log = logging.getLogger("sharedsession.flask")

EXTENSION_KEY = "sharedsession"
#: Prefix of the app.config keys read by :func:`config_from_app`.
CONFIG_PREFIX = "SHAREDSESSION_"

# Where open_session leaves the request's session, so that our hooks reach it
# without the flask.session proxy (which marks the session accessed, adding
# "Vary: Cookie" to responses that never used it).
_ENVIRON_KEY = "sharedsession.session"

# Flask's cookie settings and the SessionConfig fields they map to.
_FLASK_COOKIE_KEYS = {
    "SESSION_COOKIE_NAME": "cookie_name",
    "SESSION_COOKIE_DOMAIN": "cookie_domain",
    "SESSION_COOKIE_PATH": "cookie_path",
    "SESSION_COOKIE_SECURE": "cookie_secure",
    "SESSION_COOKIE_HTTPONLY": "cookie_httponly",
    "SESSION_COOKIE_SAMESITE": "cookie_samesite",
}


def config_from_app(app: Flask) -> SessionConfig:
    """Build the SessionConfig of ``app`` from ``app.config``; called by ``init_app``.

    - Keys: ``[SECRET_KEY, *SECRET_KEY_FALLBACKS]``, newest first. No
      secret raises ``ValueError`` here, not on the first request.
    - ``SHAREDSESSION_<FIELD>`` for any SessionConfig field
      (``SHAREDSESSION_REDIS_URL``, ``SHAREDSESSION_IDLE_TIMEOUT``,
      ``SHAREDSESSION_TRUSTED_PROXIES``...); it always wins. A key with that
      prefix that names no field raises ``ValueError`` (a typo must not pass
      silently). Values are checked by SessionConfig, not converted.
    - Flask's ``SESSION_COOKIE_NAME``, ``_DOMAIN``, ``_PATH`` (falling back to
      ``APPLICATION_ROOT``, as in Flask), ``_SECURE``, ``_HTTPONLY`` and
      ``_SAMESITE`` are used only where the app changed them from
      ``Flask.default_config``: Flask's defaults are not our defaults
      (SameSite: Flask None, ours "Lax"), and an untouched key states no wish.
      To drop SameSite, set ``SHAREDSESSION_COOKIE_SAMESITE = None``.
      ``SESSION_COOKIE_PARTITIONED = True`` is refused (not supported).
    """
    config = app.config
    defaults = Flask.default_config
    settings: dict[str, Any] = {}
    for key, name in _FLASK_COOKIE_KEYS.items():
        if key in config and config[key] != defaults.get(key):
            settings[name] = config[key]
    root = config.get("APPLICATION_ROOT")
    if "cookie_path" not in settings and root is not None and root != defaults.get("APPLICATION_ROOT"):
        settings["cookie_path"] = root
    if config.get("SESSION_COOKIE_PARTITIONED"):
        raise ValueError("SESSION_COOKIE_PARTITIONED is not supported by sharedsession; remove it")
    secret = config.get("SECRET_KEY")
    if secret:
        settings["secret_key"] = [secret, *(config.get("SECRET_KEY_FALLBACKS") or ())]

    fields = {f.name for f in dataclasses.fields(SessionConfig) if f.init}
    for key, value in config.items():
        if not key.startswith(CONFIG_PREFIX):
            continue
        name = key[len(CONFIG_PREFIX) :].lower()
        if name not in fields:
            known = ", ".join(CONFIG_PREFIX + f.upper() for f in sorted(fields))
            raise ValueError(f"app.config[{key!r}] is not a sharedsession setting; known: {known}")
        settings[name] = value
    if not settings.get("secret_key"):
        raise ValueError(
            "SharedSession needs a secret key to sign session cookies: set app.config['SECRET_KEY'] "
            "(or SHAREDSESSION_SECRET_KEY) to a long random string before init_app"
        )
    return SessionConfig(**settings)


class FlaskSession(Session, SessionMixin):
    """``flask.session`` under SharedSession: a :class:`~sharedsession.Session` loaded on first use.

    Made empty by :meth:`SharedSessionInterface.open_session`; the first use
    (any read or write, ``new``, ``user_id``, ``regenerate()``, ``destroy()``;
    with Flask 3.1.3 or newer any use of the ``flask.session`` proxy) loads it
    from Redis: one round trip with a valid cookie, none without.
    :class:`~sharedsession.StoreUnavailableError` is raised there; once a load
    has failed, later uses in the same request raise at once.

    Flask's flags: ``accessed`` (used in this request: ``Vary: Cookie``),
    ``modified`` (something was assigned; in-place edits are found at save
    anyway, so setting it is accepted and changes nothing), ``new`` (not
    stored yet), ``permanent`` (always True, see the module docstring).
    """

    __slots__ = ("_accessed", "_closed", "_cookie", "_load_error", "_pending", "_tokens")
    _accessed: bool
    _closed: bool
    _cookie: CookieAction | None
    _load_error: StoreUnavailableError | None
    _pending: tuple[SessionStore, Request] | None
    _tokens: TokenHeader | None

    def __init__(self, store: SessionStore, request: Request, tokens: TokenHeader | None = None) -> None:
        super().__init__(max_size=store.config.max_size)
        # Nothing is read from the request until the first use: a view that
        # never touches the session costs no cookie parsing either.
        self._pending = (store, request)
        self._tokens = tokens  # None: the cookie carries the session, else this header
        self._accessed = False
        self._closed = False  # no more saves: the view failed, or a save did
        self._cookie = None  # what the last save asked of the cookie
        self._load_error = None

    # -- loading ----------------------------------------------------------

    def _load(self) -> None:
        pending = self._pending
        if pending is None:
            return
        self._accessed = True
        if self._load_error is not None:
            # Do not wait for Redis twice in one request.
            raise StoreUnavailableError(*self._load_error.args) from self._load_error.__cause__
        store, request = pending
        client = UNBOUND
        if store.binds:
            headers = request.headers
            peer = request.environ.get("REMOTE_ADDR")
            client = store.client(peer, headers.getlist("X-Forwarded-For"), headers.get("User-Agent"))
        tokens = self._tokens
        if tokens is not None:  # a token session: the cookie is not even read
            cookie_value = tokens.read(request.environ.get(tokens.environ_key))
        else:
            # Only our cookie is wanted: read it from the header (as the ASGI adapter
            # does) rather than have werkzeug parse every cookie into a MultiDict.
            cookie_value = read_cookie(request.environ.get("HTTP_COOKIE"), store.config.cookie_name)
        try:
            store.load(cookie_value, client, into=self)  # fills this object, no copy
        except StoreUnavailableError as exc:
            self._load_error = exc
            raise
        self._pending = None

    # -- Flask's SessionMixin ------------------------------------------------

    @property
    def accessed(self) -> bool:
        return self._accessed

    @accessed.setter
    def accessed(self, value: bool) -> None:
        # Flask >= 3.1.3 sets this each time a view dereferences flask.session:
        # that is the first use, so load now. Every path into the object then
        # sees loaded data, even C code that reads the dict's storage directly
        # (json.dumps of a subclass of dict checks its size before items()).
        if value:
            self._load()
        self._accessed = bool(value)

    @property
    def permanent(self) -> bool:
        return True

    @permanent.setter
    def permanent(self, value: bool) -> None:
        if not value:
            raise ValueError(
                "sharedsession cookies always carry a Max-Age (from idle_timeout and "
                "absolute_timeout): session.permanent cannot be False"
            )

    @property
    def modified(self) -> bool:
        return self._pending is None and self._modified

    @modified.setter
    def modified(self, value: bool) -> None:
        # Flask code sets modified = True after editing a nested value; the
        # save compares encodings, so nothing more is needed.
        if self._pending is None:
            self._modified = bool(value)

    @property
    def new(self) -> bool:  # type: ignore[override]  # read-only, as in Session
        self._load()
        return super().new

    # -- the core Session's API, loading first ------------------------------

    @property
    def state(self) -> State:
        self._load()
        return super().state

    @property
    def handle(self) -> str | None:
        self._load()
        return super().handle

    @property
    def user_id(self) -> str | None:
        self._load()
        return super().user_id

    @user_id.setter
    def user_id(self, value: str | None) -> None:
        self._load()
        _SESSION_USER_ID.__set__(self, value)

    def regenerate(self) -> None:
        self._load()
        super().regenerate()

    def destroy(self) -> None:
        self._load()  # the stored session must be known to be deleted
        super().destroy()

    # -- the mapping, loading first -------------------------------------------

    def __getitem__(self, key: str) -> Any:
        self._load()
        return super().__getitem__(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._load()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._load()
        super().__delitem__(key)

    def __contains__(self, key: object) -> bool:
        self._load()
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._load()
        return super().__iter__()

    def __reversed__(self) -> Iterator[str]:
        self._load()
        return super().__reversed__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()

    def __eq__(self, other: object) -> bool:
        self._load()
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        self._load()
        return super().__ne__(other)

    def __or__(self, other: Any) -> Any:
        self._load()
        return super().__or__(other)

    def __ror__(self, other: Any) -> Any:
        self._load()
        return super().__ror__(other)

    def get(self, key: str, default: Any = None, /) -> Any:
        self._load()
        return super().get(key, default)

    def keys(self) -> dict_keys[str, Any]:
        self._load()
        return super().keys()

    def values(self) -> dict_values[str, Any]:
        self._load()
        return super().values()

    def items(self) -> dict_items[str, Any]:
        self._load()
        return super().items()

    def copy(self) -> dict[str, Any]:
        self._load()
        return super().copy()

    def pop(self, *args: Any, **kwargs: Any) -> Any:
        self._load()
        return super().pop(*args, **kwargs)

    def popitem(self) -> tuple[str, Any]:
        self._load()
        return super().popitem()

    def clear(self) -> None:
        self._load()
        super().clear()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._load()
        return super().setdefault(key, default)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        self._load()
        super().update(other, **kwargs)

    def __repr__(self) -> str:
        if self._pending is not None:
            return "<FlaskSession not loaded>"
        return "<Flask" + super().__repr__()[1:]


# The core's user_id property, whose setter the override above calls.
_SESSION_USER_ID: property = vars(Session)["user_id"]


class SharedSessionInterface(SessionInterface):
    """The ``app.session_interface`` that :class:`SharedSession` installs.

    ``open_session`` does no I/O (see :class:`FlaskSession`). The save
    happens in an ``after_request`` function of the extension, so that a
    failure can still be answered by an error handler, and again in
    ``save_session`` for anything changed later (by ``after_request``
    functions that run after ours, or in ``client.session_transaction()``);
    that second save writes nothing unless something changed. ``save_session``
    also sets or expires the cookie and adds ``Vary: Cookie``; with
    ``token_header``, it sends the token in a response header instead, with
    ``Vary`` naming the request header.
    """

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.config = store.config
        self.tokens = TokenHeader.of(store.config)

    def get_cookie_name(self, app: Flask) -> str:
        return self.config.cookie_name

    def get_cookie_domain(self, app: Flask) -> str | None:
        return self.config.cookie_domain

    def get_cookie_path(self, app: Flask) -> str:
        return self.config.cookie_path

    def get_cookie_httponly(self, app: Flask) -> bool:
        return self.config.cookie_httponly

    def get_cookie_secure(self, app: Flask) -> bool:
        return self.config.cookie_secure

    def get_cookie_samesite(self, app: Flask) -> str | None:
        return self.config.cookie_samesite

    def get_cookie_partitioned(self, app: Flask) -> bool:
        return False

    def open_session(self, app: Flask, request: Request) -> FlaskSession:
        session = FlaskSession(self.store, request, self.tokens)
        request.environ[_ENVIRON_KEY] = session
        return session

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, FlaskSession):
            return
        tokens = self.tokens
        vary = "Cookie" if tokens is None else tokens.name
        if session.accessed:
            _vary_on(response, vary)
        # Raises only for changes made after our after_request function (Flask
        # then answers 500); the usual save, in that function, has run by now.
        self.commit(session)
        action, session._cookie = session._cookie, None
        if action is not None:
            if tokens is None:
                response.headers.add("Set-Cookie", self.store.cookie_header(action))
            else:  # a token session: never Set-Cookie
                token = tokens.response_value(action)
                response.headers[tokens.response] = token
                if token and "Cache-Control" not in response.headers:
                    response.headers["Cache-Control"] = "no-store"  # no cache may keep a token
            _vary_on(response, vary)

    def commit(self, session: FlaskSession) -> None:
        """Write what changed, unless the session was never loaded or is closed.

        Remembers the cookie action for ``save_session``. A failure closes the
        session (no retry in this request) and is raised.
        """
        if session._closed or session._pending is not None or not self.store.needs_save(session):
            return
        try:
            result = self.store.save(session)
        except SessionError:
            session._closed = True
            raise
        if result.cookie is not None:
            session._cookie = result.cookie
        if result.outcome == "gone":
            # Ended elsewhere while this request ran: its changes were dropped; stop trying.
            session._closed = True


class SharedSession:
    """The Flask extension: ``SharedSession(app)`` or ``SharedSession()`` then ``init_app(app)``.

    ``init_app`` reads the settings (``config``, else :func:`config_from_app`),
    builds the app's :class:`~sharedsession.SessionStore` (no connection is
    made yet), installs :class:`SharedSessionInterface` as
    ``app.session_interface``, registers the save (an ``after_request``
    function), the 503 handler for
    :class:`~sharedsession.StoreUnavailableError` (unless the app has one),
    and stores the extension in ``app.extensions["sharedsession"]``.
    Bad settings and a missing secret raise there.
    """

    def __init__(self, app: Flask | None = None, config: SessionConfig | None = None) -> None:
        if config is not None and not isinstance(config, SessionConfig):
            raise TypeError(f"SharedSession: config must be a SessionConfig, got {type(config).__name__}")
        self.config = config
        self.app = app
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("SharedSession is already initialised on this app")
        store = SessionStore(self.config or config_from_app(app))
        interface = SharedSessionInterface(store)
        app.session_interface = interface
        app.extensions[EXTENSION_KEY] = self

        def save_session_now(response: Response) -> Response:
            return _save_in_after_request(interface, response)

        # Flask runs after_request functions last-registered first, blueprints'
        # before the app's: at the front of the app's list, the save runs after
        # every other one, those registered before init_app included. A
        # function that fails (a 500) then fails before anything was saved.
        app.after_request_funcs.setdefault(None, []).insert(0, save_session_now)
        got_request_exception.connect(_close_on_unhandled_error, app)
        handlers = app.error_handler_spec.get(None, {}).get(None, {})
        if StoreUnavailableError not in handlers:
            app.register_error_handler(StoreUnavailableError, store_unavailable)
        if SessionLimitError not in handlers:
            app.register_error_handler(SessionLimitError, session_limit)

    @property
    def store(self) -> SessionStore:
        """The app's SessionStore, for admin work: ``sessions_of``, ``revoke``, ``revoke_user``.

        The current app's in an app context (every view), else the app given
        to the constructor.
        """
        app = current_app if has_app_context() else self.app
        if app is None or app.extensions.get(EXTENSION_KEY) is not self:
            raise RuntimeError("SharedSession.store: no app context, or this app does not use this extension")
        interface = app.session_interface
        if not isinstance(interface, SharedSessionInterface):
            raise RuntimeError("SharedSession.store: app.session_interface was replaced after init_app")
        return interface.store


def store_unavailable(error: StoreUnavailableError) -> Response:
    """The default answer to :class:`~sharedsession.StoreUnavailableError`: a short 503.

    Registered by ``init_app`` unless the app has a handler; override it with
    ``@app.errorhandler(StoreUnavailableError)``.
    """
    log.warning("session store unavailable, answering 503: %s", error)
    return current_app.response_class(UNAVAILABLE_BODY, UNAVAILABLE_STATUS, UNAVAILABLE_HEADERS)


def session_limit(error: SessionLimitError) -> Response:
    """The default answer to :class:`~sharedsession.SessionLimitError` (a login refused by
    ``max_sessions_per_user``): a short 403, nothing saved. Registered by ``init_app``
    unless the app has a handler; override it with ``@app.errorhandler(SessionLimitError)``.
    """
    log.info("login refused by the session limit, answering 403: %s", error)
    return current_app.response_class(LIMIT_BODY, LIMIT_STATUS, LIMIT_HEADERS)


#: ``flask.session``, typed as :class:`FlaskSession` for type checkers
#: (``session.regenerate()``, ``session.user_id``). The very same proxy object.
session = cast(FlaskSession, flask.session)


def _vary_on(response: Response, name: str) -> None:
    """``response.vary.add(name)``, without a HeaderSet when there is no Vary yet."""
    headers = response.headers
    if "Vary" not in headers:
        headers["Vary"] = name
    else:
        response.vary.add(name)


def _request_session() -> FlaskSession | None:
    if not has_request_context():
        return None
    found = flask.request.environ.get(_ENVIRON_KEY)
    return found if isinstance(found, FlaskSession) else None


def _save_in_after_request(interface: SharedSessionInterface, response: Response) -> Response:
    # Saving here rather than only in save_session (which Flask calls inside
    # process_response, where an exception becomes a 500 no handler of ours
    # sees) lets a failure be answered by the app's error handler: the
    # registered 503 for StoreUnavailableError, or the app's own.
    session = _request_session()
    if session is None:
        return response
    try:
        interface.commit(session)
    except SessionError as exc:
        app = current_app
        # Re-raises exc when no handler matches: Flask then answers 500.
        answer = app.handle_user_exception(exc)
        if isinstance(answer, HTTPException):
            answer = answer.get_response()
        return app.make_response(answer)
    return response


def _close_on_unhandled_error(sender: Flask, exception: BaseException | None = None, **extra: object) -> None:
    # Flask is about to answer 500 for an exception nobody handled; it still
    # runs after_request and save_session for that 500. Save nothing of the
    # failed request.
    session = _request_session()
    if session is not None:
        session._closed = True
