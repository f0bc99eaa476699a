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
from ._types import BucketState, StoreUnavailable, Take

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


class RedisStore:
    """Buckets in one Redis database, each change one Lua script."""

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

    def close(self) -> None:
        self._client.close()
