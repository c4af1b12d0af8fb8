"""What sharedsession needs of a server, run rather than assumed from a version.

Three small Lua scripts, each on one throwaway key of its own, declared as
the library's scripts declare theirs (valid on a Cluster node, and on
Dragonfly, which by default refuses keys a script did not declare): cjson;
hash commands, PEXPIREAT and TYPE; sorted sets with ZADD GT. Then one
session's whole life through the library's own store: create (with a user
index), read, update, list, revoke. Every probe deletes what it wrote.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError, ResponseError

from sharedsession import SessionConfig, SetCookie, StoreUnavailableError
from sharedsession.cli.findings import Finding, as_text, assess_script_error
from sharedsession.store import SessionStore

__all__ = ["PROBES", "Probe", "probe_cjson", "probe_hashes", "probe_sorted_sets", "session_round_trip"]

#: A probe: a client of one server, a key under the prefix that lands on it -> the verdict.
Probe = Callable[[Any, str], Finding]

#: Idle timeout of the throwaway session: gone within a minute if the doctor dies midway.
_IDLE_SECONDS = 60
_TTL_MS = 60_000

# A script's writes are not rolled back when it fails: the body runs under
# pcall, and the key is deleted whatever happens.
_GUARDED = """
local key = KEYS[1]
local ok, result = pcall(function()
%s
end)
redis.call('DEL', key)
if not ok then
  if type(result) == 'table' then result = result.err or result.message end
  return redis.error_reply(tostring(result))
end
return result
"""

_CJSON = "return cjson.encode(cjson.decode(ARGV[1]))"

# TYPE answers a status reply, a table {ok = 'hash'} in Lua: the library's scripts read .ok.
_HASH = (
    _GUARDED
    % """
  redis.call('HSET', key, 'a', '1', '#b', 'x')
  redis.call('HINCRBY', key, 'a', 1)
  redis.call('HDEL', key, '#b')
  redis.call('PEXPIREAT', key, ARGV[1])
  local kind = redis.call('TYPE', key).ok or 'no status reply'
  local fields = redis.call('HGETALL', key)
  return {kind, fields[1], fields[2], redis.call('PTTL', key)}
"""
)

_ZSET = (
    _GUARDED
    % """
  redis.call('ZADD', key, 10, 'm')
  redis.call('ZADD', key, 'GT', 5, 'm')
  local kept = redis.call('ZSCORE', key, 'm')
  redis.call('ZADD', key, 'GT', 20, 'm')
  redis.call('ZADD', key, 1, 'old')
  redis.call('ZREMRANGEBYSCORE', key, '-inf', 1)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, ARGV[1])
  return {redis.call('TYPE', key).ok or 'no status reply', kept, last[1], last[2], redis.call('ZCARD', key)}
"""
)

_UPGRADE = "use Redis 6.2 or later, or Valkey"
# Between the round trip's steps a key can vanish: evicted (a full server with an
# evicting policy does exactly that to sessions), or deleted by something else.
_VANISHED = "keys vanished between steps: see eviction, memory and shared-db; else " + _UPGRADE


def probe_cjson(client: Any, key: str) -> Finding:
    """EVAL runs, and cjson turns a document into the same document."""
    document = '{"user":"alice","n":[1,2.5,true]}'
    try:
        reply = as_text(client.eval(_CJSON, 1, key, document))
    except ResponseError as exc:
        return assess_script_error("a Lua script using cjson", exc)
    try:
        same = json.loads(reply) == json.loads(document)
    except ValueError:
        same = False
    if not same:
        return Finding("fail", f"cjson turned a document into {reply[:80]!r}", _UPGRADE)
    return Finding("ok", "EVAL runs Lua, cjson encodes and decodes")


def probe_hashes(client: Any, key: str) -> Finding:
    """HSET, HINCRBY, HDEL, HGETALL, PEXPIREAT and TYPE's status reply, inside a script."""
    what = "hash commands in a script"
    parts = _run(client, _HASH, key, what)
    if isinstance(parts, Finding):
        return parts
    if parts[:3] != ["hash", "a", "2"] or not _ttl_set(parts[3:]):
        return Finding("fail", f"{what} answered {parts!r:.100} (expected TYPE hash, a=2, a TTL)", _UPGRADE)
    return Finding("ok", "HSET, HINCRBY, HDEL, HGETALL, PEXPIREAT, TYPE in a script (key deleted)")


def probe_sorted_sets(client: Any, key: str) -> Finding:
    """ZADD GT keeps the higher score; ZREMRANGEBYSCORE, ZRANGE WITHSCORES, inside a script."""
    what = "sorted-set commands in a script"
    parts = _run(client, _ZSET, key, what)
    if isinstance(parts, Finding):
        return parts
    if _numbers(parts) != ["zset", 10.0, "m", 20.0, 1.0]:
        return Finding(
            "fail",
            f"{what} answered {parts!r:.100} (expected TYPE zset, a score GT kept at 10, then m=20)",
            _UPGRADE,
        )
    return Finding("ok", "ZADD GT keeps the higher score; ZREMRANGEBYSCORE, ZRANGE WITHSCORES (key deleted)")


def _run(client: Any, script: str, key: str, what: str) -> list[str] | Finding:
    """EVAL ``script`` on ``key`` (ARGV[1]: a deadline a minute away); its reply as text, or the failure."""
    try:
        reply = client.eval(script, 1, key, int(time.time() * 1000) + _TTL_MS)
    except ResponseError as exc:
        return assess_script_error(what, exc)
    if not isinstance(reply, list):
        return Finding("fail", f"{what} answered {reply!r:.100}", _UPGRADE)
    return [as_text(part) for part in reply]


def _ttl_set(parts: list[str]) -> bool:
    """PTTL of the key: set, and no longer than the minute PEXPIREAT asked."""
    return len(parts) == 1 and parts[0].isdigit() and 0 < int(parts[0]) <= _TTL_MS


def _numbers(parts: list[str]) -> list[str | float]:
    """Scores as numbers ("10" and "10.0" alike: servers format them differently)."""

    def number(text: str) -> str | float:
        try:
            return float(text)
        except ValueError:
            return text

    return [number(part) for part in parts]


PROBES: tuple[tuple[str, Probe], ...] = (
    ("lua-cjson", probe_cjson),
    ("hashes", probe_hashes),
    ("sorted-sets", probe_sorted_sets),
)


def session_round_trip(client: Any, prefix: str, token: str) -> Finding:
    """One session's life through the library's own store, on ``client`` (what the apps would use).

    Create (CREATE and INDEX_ADD), read (LOAD), update (UPDATE), list the
    user's sessions (INDEX_READ), revoke them (END): every script the library
    has but the regenerate step's, by EVALSHA with the NOSCRIPT fallback, as
    requests run them. ``token`` names the throwaway user.
    """
    config = SessionConfig(
        secret_key=secrets.token_urlsafe(32),  # nothing signed with it leaves this process
        redis=client,
        key_prefix=prefix,
        idle_timeout=_IDLE_SECONDS,
    )
    store = SessionStore(config)
    user = f"doctor:{token}"
    handle: str | None = None
    step = "creation"
    try:
        session = store.load(None)
        session["doctor"] = 1
        session.user_id = user
        created = store.save(session)
        handle = session.handle
        if not isinstance(created.cookie, SetCookie):
            return Finding("fail", f"a new session was not stored (save: {created.outcome})", _UPGRADE)
        step = "reading"
        again = store.load(created.cookie.value)
        if dict(again) != {"doctor": 1}:
            return Finding("fail", f"a stored session read back as {dict(again)!r:.80}", _VANISHED)
        step = "update"
        again["doctor"] = 2
        store.save(again)
        step = "listing"
        if [info.handle for info in store.sessions_of(user)] != [handle]:
            return Finding("fail", "a session linked to a user was not listed under the user", _VANISHED)
        step = "revocation"
        if store.revoke_user(user) != 1 or not store.load(created.cookie.value).new:
            return Finding("fail", "revoking a user's session did not end it", _VANISHED)
    except (StoreUnavailableError, RedisError) as exc:
        return assess_script_error(f"a session's {step}", exc)
    finally:
        keys = [store.keys.user(user), *([store.keys.session(handle)] if handle else [])]
        for key in keys:  # one by one: on a Cluster they may live on different nodes
            with contextlib.suppress(RedisError):  # it expires within a minute anyway
                client.delete(key)
    return Finding("ok", "a session created, read, updated, listed and revoked through the library (deleted)")
