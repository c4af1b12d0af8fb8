"""The demo's scripted user: log in, fill a cart, count, write concurrently, log out.

Every request goes through the round-robin entry on a new connection, so it
lands on the next replica; the table shows which one served it and what the
session looked like there.
"""

from __future__ import annotations

import http.cookiejar
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

CONCURRENT_WRITES = 24


@dataclass
class Step:
    request: str
    status: int
    reply: dict[str, Any]


class User:
    """A browser: one cookie jar, JSON in and out."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def call(self, method: str, path: str, body: object = None) -> Step:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310  # base_url is our http://127.0.0.1 entry
            self.base_url + path,
            data=data,
            method=method,
            headers={"Accept": "application/json", "Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            reply = json.loads(raw) if raw else {}
        except ValueError:
            reply = {"text": raw.decode("utf-8", "replace")[:60]}
        return Step(f"{method} {path}", status, reply if isinstance(reply, dict) else {"value": reply})


def walk(base_url: str, last_served: Callable[[], str]) -> bool:
    """Run the script, print the table; True if nothing was lost.

    ``last_served()`` names the replica the balancer sent the latest request to.
    """
    user = User(base_url)
    steps: list[Step] = []
    handles: set[str] = set()

    def do(method: str, path: str, body: object = None) -> Step:
        step = user.call(method, path, body)
        step.reply.setdefault("replica", last_served())
        step.reply.setdefault("framework", str(step.reply["replica"]).split("-")[0])
        steps.append(step)
        _print_row(len(steps), step)
        if step.reply.get("user") and step.reply.get("handle"):
            handles.add(str(step.reply["handle"]))
        return step

    _print_header()
    do("GET", "/api/state")
    do("POST", "/login", {"username": "alice"})
    do("POST", "/cart", {"item": "apple"})
    do("GET", "/api/state")
    do("POST", "/cart", {"item": "pear"})
    do("POST", "/api/counter")
    do("GET", "/api/state")
    do("POST", "/api/counter")

    keys = [f"k{i:02d}" for i in range(CONCURRENT_WRITES)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        writes = list(pool.map(lambda key: user.call("PUT", f"/api/kv/{key}", key.upper()), keys))
    served_by = {str(w.reply.get("replica")) for w in writes}
    print(
        f"{'':>3}  {CONCURRENT_WRITES} concurrent PUT /api/kv/<key>, each its own key, "
        f"served by {len(served_by)} replicas"
    )
    stored = do("GET", "/api/kv").reply
    lost = sum(1 for key in keys if stored.get(key) != key.upper())
    final_state = do("GET", "/api/state").reply
    cart_ok = final_state.get("cart") == ["apple", "pear"] and final_state.get("counter") == 2
    do("POST", "/logout")
    after = do("GET", "/api/state").reply

    requests = len(steps) + len(writes)
    seen = {str(s.reply.get("replica")) for s in steps} | served_by
    seen.discard("None")
    print()
    print(f"{requests} requests, {len(seen)} replicas, {len(handles)} session, {lost} updates lost")
    ok = lost == 0 and cart_ok and len(handles) == 1 and not after.get("user")
    if not ok:
        print("something went wrong: see the table above and the replicas' logs")
    return ok


def _print_header() -> None:
    print(f"{'#':>3}  {'request':<24} {'status':>6}  {'replica':<12} {'framework':<10} session")
    print(f"{'-' * 3}  {'-' * 24} {'-' * 6}  {'-' * 12} {'-' * 10} {'-' * 30}")


def _print_row(n: int, step: Step) -> None:
    reply = step.reply
    parts = []
    if "user" in reply:
        parts.append(f"user={reply['user']}")
    if "cart" in reply:
        parts.append(f"cart={reply['cart']}")
    if "counter" in reply:
        parts.append(f"counter={reply['counter']}")
    if not parts:
        data = {k: v for k, v in reply.items() if k not in ("replica", "framework", "pid")}
        parts.append(f"{len(data)} keys: " + ", ".join(sorted(data))[:30] + "...")
    print(
        f"{n:>3}  {step.request:<24} {step.status:>6}  {reply.get('replica', '?')!s:<12} "
        f"{reply.get('framework', '?')!s:<10} {' '.join(parts)}"
    )
