"""Session tokens in a header instead of a cookie: for API and mobile clients.

``SessionConfig(token_header="Authorization")``, the conventional form::

    request:   Authorization: Bearer <token>
    response:  Session-Token: <token>     when the session is created, regenerated or renewed
               Session-Token:             (empty) when it is destroyed: drop the token

``token_header="X-Session-Token"`` (any other name): the bare token, in that
header both ways.

The token is exactly the cookie value (the signed sid): the same signing, the
same store, the same cost rules (no token, or a forged one, costs no Redis
command), the same renewal (a token is refused once older than a session can
live, so a new one is sent about once per idle period, as a cookie's Max-Age
is extended). An adapter configured for tokens reads neither the cookie nor
sends Set-Cookie: a request's session travels one way only.

Why ``Authorization: Bearer``: it is the header HTTP defines for credentials
(RFC 9110, section 11.6.2) and the registered scheme for a token that works
for whoever holds it (RFC 6750); every HTTP client sets it in one line,
OpenAPI and FastAPI's ``HTTPBearer`` describe it, and the infrastructure
treats it as a secret: shared caches do not store responses to requests that
carry it (RFC 9111, section 3.5), clients drop it on cross-origin redirects,
and logging and tracing tools redact it by default. A custom header has none
of that. Authorization exists only in requests, so the token comes back in
``Session-Token``. An app that already uses Authorization (Basic auth in front
of it, its own bearer tokens) names another header instead.

Browsers never add these headers to a request by themselves, so a token
session cannot be ridden by a cross-site request (CSRF); cookie sessions still
need CSRF protection, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from sharedsession._core.config import SessionConfig
from sharedsession._core.http import CookieAction, SetCookie

__all__ = ["RESPONSE_HEADER", "TokenHeader"]

#: Where a token read from Authorization (a request header only) is sent back.
RESPONSE_HEADER = "Session-Token"
_AUTHORIZATION = "authorization"
_BEARER = "bearer"


@dataclass(frozen=True)
class TokenHeader:
    """Where an adapter reads the token and sends it back, for ``SessionConfig.token_header``."""

    #: The request header, as configured ("Authorization", "X-Session-Token").
    name: str
    #: The response header: "Session-Token" when ``name`` is Authorization, else ``name``.
    response: str
    #: Whether the request header holds ``Bearer <token>`` (Authorization) or the bare token.
    bearer: bool

    @classmethod
    def of(cls, config: SessionConfig) -> TokenHeader | None:
        """The token header of ``config``; None when sessions travel in the cookie."""
        name = config.token_header
        if name is None:
            return None
        bearer = name.lower() == _AUTHORIZATION
        return cls(name=name, response=RESPONSE_HEADER if bearer else name, bearer=bearer)

    @property
    def environ_key(self) -> str:
        """The request header's WSGI environ key (``HTTP_AUTHORIZATION``)."""
        return "HTTP_" + self.name.upper().replace("-", "_")

    @property
    def asgi_name(self) -> bytes:
        """The request header's name as ASGI servers give it: lowercase bytes."""
        return self.name.lower().encode("latin-1")

    def read(self, value: str | None) -> str | None:
        """The token a request header value carries; None if none (absent, empty, another scheme).

        Not checked here: the store verifies the signature, before any Redis
        command, as it does a cookie value's.
        """
        if not value:
            return None
        value = value.strip()
        if self.bearer:
            scheme, _, token = value.partition(" ")
            if scheme.lower() != _BEARER:  # Basic, or another scheme the app handles itself
                return None
            value = token.strip()
        return value or None

    def response_value(self, action: CookieAction) -> str:
        """The response header's value for a save's cookie action: the token, or "" (drop it)."""
        return action.value if isinstance(action, SetCookie) else ""
