"""The Redis store (extra `codegen-async[redis]`): buckets shared by processes on any machine.

Client choice: the synchronous `redis.Redis` of redis-py, called from a worker thread
(`anyio.to_thread.run_sync`). redis-py's asyncio client runs on asyncio only; a blocking
client in a thread runs under asyncio and trio alike, and each call is one round trip of
one Lua script (EVALSHA, loaded once), so a thread hop is all it costs.

A bucket is a sorted set of leases scored by expiry (members `i:<id>` in flight,
`f:<id>` finished) and a string holding the end of a Retry-After pause; both expire
on their own. Times are Redis `TIME`, so every machine reads one clock.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .._validate import redact_url
from ._types import BucketState, Claim, StoreUnavailable, Take

__all__ = ["RedisStore"]

CONNECT_TIMEOUT = 1.0  # seconds; an unreachable store must not hold requests up
SOCKET_TIMEOUT = 2.0

_NOW = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
-- When the next token frees up: the oldest finished lease's expiry (a window at most).
local function next_free(key, per)
  local items = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #items, 2 do
    if string.sub(items[i], 1, 2) == 'f:' then
      return math.max(0, math.min(per, tonumber(items[i + 1]) - now))
    end
  end
  return per
end
"""

# Each script returns strings: Redis turns Lua numbers into integers.
_TAKE = (
    _NOW
    + """
local capacity, per, bound = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
if hold > now then return {0, tostring(hold - now)} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < capacity then
  redis.call('ZADD', KEYS[1], now + per + bound, 'i:' .. ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.ceil((per + bound) * 1000) + 1000)
  return {1, '0'}
end
return {0, tostring(next_free(KEYS[1], per))}
"""
)

_FINISH = (
    _NOW
    + """
local per = tonumber(ARGV[2])
redis.call('ZREM', KEYS[1], 'i:' .. ARGV[1])
redis.call('ZADD', KEYS[1], now + per, 'f:' .. ARGV[1])
if redis.call('PTTL', KEYS[1]) < per * 1000 + 1000 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(per * 1000) + 1000)
end
return 1
"""
)

_PAUSE = (
    _NOW
    + """
local untl = now + tonumber(ARGV[1])
local hold = tonumber(redis.call('GET', KEYS[1]) or '0')
if untl > hold then
  redis.call('SET', KEYS[1], tostring(untl), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""
)

_STATE = (
    _NOW
    + """
local per = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
local hold = tonumber(redis.call('GET', KEYS[2]) or '0')
local wait = 0
if count > 0 then wait = next_free(KEYS[1], per) end
return {tostring(count), tostring(wait), tostring(math.max(0, hold - now))}
"""
)


# The ledger: one hash per key, fields f (first claimed), r (reserved at; absent when
# nothing may have been sent), h (holder), l (its lease's end), i (run id).
_CLAIM = (
    _NOW
    + """
local holder, lease, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local e = redis.call('HMGET', KEYS[1], 'f', 'r', 'h', 'l', 'i')
local state
if not e[1] then
  redis.call('HSET', KEYS[1], 'f', tostring(now), 'r', tostring(now), 'h', holder,
    'l', tostring(now + lease))
  e[1], e[2], state = tostring(now), tostring(now), 'fresh'
elseif e[5] then
  state = 'done'
elseif not e[2] then
  redis.call('HSET', KEYS[1], 'r', tostring(now), 'h', holder, 'l', tostring(now + lease))
  e[2], state = tostring(now), 'fresh'
elseif tonumber(e[4]) > now and e[3] ~= holder then
  return {'held', e[1], tostring(now), e[2], '', tostring(tonumber(e[4]) - now)}
else
  redis.call('HSET', KEYS[1], 'h', holder, 'l', tostring(now + lease))
  state = 'orphaned'
end
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000))
return {state, e[1], tostring(now), e[2] or '', e[5] or '', '0'}
"""
)

_RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return '' end
redis.call('HSETNX', KEYS[1], 'i', ARGV[1])
return redis.call('HGET', KEYS[1], 'i')
"""

_RELEASE = """
local e = redis.call('HMGET', KEYS[1], 'h', 'i')
if e[1] ~= ARGV[1] or e[2] then return 0 end
redis.call('HSET', KEYS[1], 'l', '0')
if ARGV[2] == '0' then redis.call('HDEL', KEYS[1], 'r') end
return 1
"""


class RedisStore:
    """Buckets and the ledger in one Redis database, each change one Lua script."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Any = redis.Redis.from_url(
            url,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=SOCKET_TIMEOUT,
            retry=Retry(backoff=NoBackoff(), retries=0),  # no retry inside: fall back at once
        )
        self._take = self._client.register_script(_TAKE)
        self._finish = self._client.register_script(_FINISH)
        self._pause = self._client.register_script(_PAUSE)
        self._state = self._client.register_script(_STATE)
        self._claim = self._client.register_script(_CLAIM)
        self._record = self._client.register_script(_RECORD)
        self._release = self._client.register_script(_RELEASE)

    def _run(self, script: Any, keys: list[str], args: list[object]) -> Any:
        try:
            return script(keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            raise StoreUnavailable(
                f"{type(exc).__name__}: {redact_url(str(exc))}" if str(exc) else type(exc).__name__
            ) from exc

    def take(self, key: str, lease: str, capacity: int, per: float, bound: float) -> Take:
        taken, wait = self._run(
            self._take, [key, key + ":pause"], [lease, capacity, repr(per), repr(bound)]
        )
        return Take(bool(int(taken)), float(wait))

    def finish(self, key: str, lease: str, per: float) -> None:
        self._run(self._finish, [key], [lease, repr(per)])

    def cancel(self, key: str, lease: str) -> None:
        try:
            self._client.zrem(key, "i:" + lease)
        except (redis.RedisError, OSError) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    def pause(self, key: str, seconds: float) -> None:
        self._run(self._pause, [key + ":pause"], [repr(seconds)])

    def state(self, key: str, per: float) -> BucketState:
        count, wait, paused = self._run(self._state, [key, key + ":pause"], [repr(per)])
        return BucketState(int(count), float(wait), float(paused))

    def claim(self, key: str, holder: str, lease: float, ttl: float) -> Claim:
        state, first, now, reserved, run_id, wait = (
            item.decode() if isinstance(item, bytes) else str(item)
            for item in self._run(self._claim, [key], [holder, repr(lease), repr(ttl)])
        )
        return Claim(
            state,  # type: ignore[arg-type]  # one of ClaimState, written by the script
            float(first),
            float(now),
            float(reserved) if reserved else None,
            int(run_id) if run_id else None,
            float(wait),
        )

    def record(self, key: str, run_id: int) -> int:
        held = self._run(self._record, [key], [str(run_id)])
        return int(held) if held else run_id

    def release(self, key: str, holder: str, *, sent: bool) -> None:
        self._run(self._release, [key], [holder, "1" if sent else "0"])

    def close(self) -> None:
        self._client.close()
