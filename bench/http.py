"""A minimal HTTP client for the harness's own requests (logins, counting runs, lost updates)."""

from __future__ import annotations

import http.client
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.cookies import SimpleCookie

COOKIE_NAME = "session"  # every variant's default


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    set_cookies: tuple[str, ...]

    def session_cookie(self) -> str | None:
        """``session=<value>`` from this reply's Set-Cookie headers, or None (not set, or expired)."""
        for header in self.set_cookies:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            morsel = jar.get(COOKIE_NAME)
            if morsel is not None:
                expired = morsel["max-age"] == "0" or morsel["expires"].startswith("Thu, 01 Jan 1970")
                if morsel.value in ("", "''", '""') or expired:
                    return None
                return f"{COOKIE_NAME}={morsel.value}"
        return None


def request(port: int, method: str, path: str, cookie: str | None = None, *, timeout: float = 30) -> Reply:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"}
        if cookie:
            headers["Cookie"] = cookie
        conn.request(method, path, body=b"" if method == "POST" else None, headers=headers)
        response = conn.getresponse()
        body = response.read()
        return Reply(response.status, body, tuple(response.headers.get_all("Set-Cookie") or ()))
    finally:
        conn.close()


def many(calls: Sequence[tuple[int, str, str, str | None]], *, concurrency: int) -> list[Reply]:
    """Make the requests ``(port, method, path, cookie)`` at once, ``concurrency`` at a time.

    Replies come back in completion order (what a browser's cookie jar sees).
    """
    replies: list[Reply] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = [pool.submit(request, port, method, path, cookie) for port, method, path, cookie in calls]
        from concurrent.futures import as_completed

        replies.extend(future.result() for future in as_completed(futures))
    return replies
