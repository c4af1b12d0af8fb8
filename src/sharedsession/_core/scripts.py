"""Lua for the guarded steps: each script touches exactly one key.

One key per script keeps every script valid on Redis Cluster, and lets a
pipeline of them run in one round trip on a single server. Field names are
those of ``keys.py``.

Each script runs atomically, which is what makes the guards sound: an update
applies only to a session that still exists, so a request that loaded a
session before it was destroyed, revoked, regenerated or expired elsewhere
cannot bring it back when it saves; a regenerate moves the session only if
nothing was written to it since this request read it (its revision, ``#r``).

Every script checks the type of its key first: a key of another type where a
session or a user index belongs (written by something else under our prefix)
reads as "no session" or is replaced, never a ``WRONGTYPE`` error.

The order of the steps that use them, and why that order is safe, is in
``plan.py`` ("How a save stays safe").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LuaScript:
    name: str
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # noqa: S324


# HSET / HDEL of many fields: unpack() in chunks, as Lua's stack limits how
# many values one call may take.
_CHUNKED = """
local function chunked(command, key, first, last)
  for i = first, last, 1000 do
    redis.call(command, key, unpack(ARGV, i, math.min(i + 999, last)))
  end
end
"""

# KEYS: session. ARGV: now_ms, idle_ms, fingerprint.
# Returns the whole hash as one JSON object of field -> value (``{}``, or
# ``[]`` on some servers, if there is none): one bulk reply is far cheaper for
# a client to parse than the 2n-element array of HGETALL. Slides the TTL only
# for a session of ours whose fingerprint matches: a stolen cookie used from
# elsewhere must not keep its owner's session alive, and a tombstone must not
# linger. For a key that does not exist it still sends one write that changes
# nothing (PEXPIREAT of a missing key): a read-only replica (mid-failover, or a
# demoted master) refuses it with READONLY, so the request gets a 503 rather
# than a session that merely looks logged out because that replica lacks it.
# A key of another type answers "wrongtype", which the planner reads as
# undecodable data: a new session, and a warning.
LOAD = LuaScript(
    "load",
    """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
  return '{}'
end
if kind ~= 'hash' then return '"wrongtype"' end
local data = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #data, 2 do fields[data[i]] = data[i + 1] end
if fields['#v'] and (fields['#fp'] or '') == ARGV[3] then
  local deadline = tonumber(ARGV[1]) + tonumber(ARGV[2])
  local cap = tonumber(fields['#cap'])
  if cap and cap < deadline then deadline = cap end
  redis.call('PEXPIREAT', KEYS[1], deadline)
end
return cjson.encode(fields)
""",
)

# KEYS: session. ARGV: now_ms.
# LOAD for the local cache (SessionConfig.local_cache): the same reply, and
# when the key expires (ms since the epoch: PEXPIRETIME, or now + PTTL before
# Redis 7; -2 if there is no key), but a pure read: a write would
# make Redis invalidate the very entry this read fills. The TTL slides
# separately, now and then (TOUCH). A missing key still gets LOAD's no-op write,
# so that a read-only replica refuses rather than answering "no session".
READ = LuaScript(
    "read",
    """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then
  redis.call('PEXPIREAT', KEYS[1], ARGV[1])
  return {'{}', -2}
end
if kind ~= 'hash' then return {'"wrongtype"', -2} end
local data = redis.call('HGETALL', KEYS[1])
local fields = {}
for i = 1, #data, 2 do fields[data[i]] = data[i + 1] end
local deadline = redis.pcall('PEXPIRETIME', KEYS[1])
if type(deadline) ~= 'number' then deadline = tonumber(ARGV[1]) + redis.call('PTTL', KEYS[1]) end
return {cjson.encode(fields), deadline}
""",
)

# KEYS: session. ARGV: now_ms, idle_ms, fingerprint.
# Slides the TTL to now + idle, never past the cap, for a live session whose
# fingerprint matches (as LOAD does). Returns the new deadline (ms), or -2.
TOUCH = LuaScript(
    "touch",
    """
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return -2 end
local fields = redis.call('HMGET', KEYS[1], '#v', '#fp', '#cap')
if not fields[1] or (fields[2] or '') ~= ARGV[3] then return -2 end
local deadline = tonumber(ARGV[1]) + tonumber(ARGV[2])
local cap = tonumber(fields[3])
if cap and cap < deadline then deadline = cap end
redis.call('PEXPIREAT', KEYS[1], deadline)
return deadline
""",
)

# KEYS: a new session. ARGV: deadline_ms, replace ("1": overwrite what is
# there, "0": refuse an existing key), then field/value pairs.
# Creates the hash and its TTL in one step: a session never exists without a
# TTL, not even for a moment. Returns 1, or 0 if the key existed (and replace
# was "0"). Only for keys no client can name yet: a new handle, whose cookie is
# handed out once every write of the save succeeded.
CREATE = LuaScript(
    "create",
    _CHUNKED
    + """
if ARGV[2] == '1' then
  redis.call('DEL', KEYS[1])
elseif redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
chunked('HSET', KEYS[1], 3, #ARGV)
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
return 1
""",
)

# KEYS: session. ARGV: now_ms, idle_ms, n, then n field/value pairs to set,
# then the fields to delete. Returns 1, or 0 if the session no longer exists
# (nothing is written then). Every update moves the revision (#r) on, which a
# regenerate that read the session earlier then notices (see RETIRE). Slides
# the TTL to now + idle, never past the cap.
UPDATE = LuaScript(
    "update",
    _CHUNKED
    + """
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' or redis.call('HEXISTS', KEYS[1], '#v') == 0 then
  return 0
end
local last_set = 3 + 2 * tonumber(ARGV[3])
chunked('HSET', KEYS[1], 4, last_set)
chunked('HDEL', KEYS[1], last_set + 1, #ARGV)
redis.call('HINCRBY', KEYS[1], '#r', 1)
local deadline = tonumber(ARGV[1]) + tonumber(ARGV[2])
local cap = tonumber(redis.call('HGET', KEYS[1], '#cap'))
if cap and cap < deadline then deadline = cap end
redis.call('PEXPIREAT', KEYS[1], deadline)
return 1
""",
)

# KEYS: old session. ARGV: new handle, the revision this request read, the
# tombstone's deadline (ms).
# regenerate()'s commit: the old sid dies at once and a tombstone naming the
# new handle replaces it, for an idle period (never past the absolute
# deadline): a request still in flight with the old sid, whose logout must
# reach the successor, finds it. Only if nothing was written since this request read it: a
# revision that moved means another replica saved something the new session
# must carry, so the current hash is returned (JSON, as LOAD returns it) and
# nothing changes; the caller rebuilds the new session and tries again.
# Returns 1 if this regeneration owns the old session (again, for a retry of
# the same step), 0 if it was destroyed, revoked, expired or regenerated by
# another request.
RETIRE = LuaScript(
    "retire",
    """
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
local moved = redis.call('HGET', KEYS[1], '#moved')
if moved then
  if moved == ARGV[1] then return 1 end
  return 0
end
if redis.call('HEXISTS', KEYS[1], '#v') == 0 then return 0 end
if (redis.call('HGET', KEYS[1], '#r') or '0') ~= ARGV[2] then
  local data = redis.call('HGETALL', KEYS[1])
  local fields = {}
  for i = 1, #data, 2 do fields[data[i]] = data[i + 1] end
  return cjson.encode(fields)
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '#moved', ARGV[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
""",
)

# KEYS: session. ARGV: user id the session must be linked to ("": any).
# Ends a session: destroy(), revoke(), revoke_user(). Returns {1, user id or ""}
# when it deleted a live session; {2, new handle} for a tombstone, whose
# successor the caller ends next (a logout or revocation that lands on a
# session regenerated meanwhile ends the successor too); 0 when there is
# nothing to end (gone, not ours, or linked to another user than required).
END = LuaScript(
    "end",
    """
if redis.call('TYPE', KEYS[1]).ok ~= 'hash' then return 0 end
local moved = redis.call('HGET', KEYS[1], '#moved')
if moved then return {2, moved} end
if redis.call('HEXISTS', KEYS[1], '#v') == 0 then return 0 end
local user = redis.call('HGET', KEYS[1], '#u') or ''
if ARGV[1] ~= '' and user ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return {1, user}
""",
)

# KEYS: user index. ARGV: now_ms, handle, horizon_ms.
# Adds an entry, or moves it later (never earlier: GT), drops entries of
# sessions that can no longer be alive, and lets the index itself expire with
# its last entry: an index never outlives the sessions it lists. A key of
# another type is not an index of ours: it is replaced.
INDEX_ADD = LuaScript(
    "index_add",
    """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], 'GT', ARGV[3], ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
""",
)

# KEYS: user index. ARGV: now_ms, handle, horizon_ms, limit, replaced handle
# ("": none), then handles to drop first. INDEX_ADD under max_sessions_per_user:
# drops the entries given (sessions the caller found dead or just ended), then
# adds the entry only if the handle is listed already or the index holds fewer
# than ``limit`` entries (the replaced one, the session a regenerate retires,
# not counted). Returns 1 when listed; else every entry and its score, the
# first to expire first, for the caller to choose from (nothing added). One script, so two
# logins racing on two replicas cannot both get past the limit.
INDEX_JOIN = LuaScript(
    "index_join",
    """
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for i = 6, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  local count = redis.call('ZCARD', KEYS[1])
  if ARGV[5] ~= '' and redis.call('ZSCORE', KEYS[1], ARGV[5]) then count = count - 1 end
  if count >= tonumber(ARGV[4]) then return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES') end
end
redis.call('ZADD', KEYS[1], 'GT', ARGV[3], ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return 1
""",
)

# KEYS: user index. ARGV: now_ms. Prunes expired entries, then lists the handles.
INDEX_READ = LuaScript(
    "index_read",
    """
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then return {} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
return redis.call('ZRANGE', KEYS[1], 0, -1)
""",
)

ALL = (LOAD, READ, TOUCH, CREATE, UPDATE, RETIRE, END, INDEX_ADD, INDEX_JOIN, INDEX_READ)
