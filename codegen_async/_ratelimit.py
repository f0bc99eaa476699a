"""Client-side rate limiting: one bucket per `RateClass`, shared by every call of a client.

A bucket holds `requests` tokens. A request takes one before it is sent and gives it
back `per` seconds after its response has *finished*. Counting from the end of the
exchange (not its start) means two requests that share a token can never arrive at the
server less than `per` seconds apart, whatever the latency: a server that allows at most
`requests` in any window of `per` seconds never has reason to answer 429.

A 429 from the server slows the bucket (its capacity x0.7, and nothing is sent before the
server's Retry-After); each quiet window afterwards restores capacity by the same factor.
Waiting for a token is an ordinary anyio wait: cancel scopes and deadlines interrupt it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable

import anyio

from ._limits import Limit, RateClass, RateLimits

__all__ = ["Bucket", "RateLimiter"]

_SLOWDOWN = 0.7
_MIN_SCALE = 0.1


class Bucket:
    """At most `limit.requests` requests per `limit.per` seconds, counted conservatively."""

    __slots__ = (
        "_changed",
        "_clock",
        "_fifo",
        "_hold_until",
        "_in_flight",
        "_last_change",
        "_returns",
        "_scale",
        "limit",
    )

    def __init__(self, limit: Limit, *, clock: Callable[[], float] = anyio.current_time) -> None:
        self.limit = limit
        self._clock = clock
        self._in_flight = 0
        self._returns: deque[float] = deque()  # when each spent token comes back, ascending
        self._scale = 1.0
        self._last_change = 0.0
        self._hold_until = 0.0
        self._fifo = anyio.Lock()
        self._changed: anyio.Event | None = None

    @property
    def capacity(self) -> int:
        """Tokens available in a window now (lowered after a 429, recovering)."""
        return max(1, math.floor(self.limit.requests * self._scale))

    def _recover(self, now: float) -> None:
        if self._scale < 1.0 and now - self._last_change >= self.limit.per:
            self._scale = min(1.0, self._scale / _SLOWDOWN)
            self._last_change = now

    def _try_take(self, now: float) -> float:
        """Take a token and return 0, or return how long to wait before trying again."""
        if now < self._hold_until:
            return self._hold_until - now
        returns = self._returns
        while returns and returns[0] <= now:
            returns.popleft()
        self._recover(now)
        if self._in_flight + len(returns) < self.capacity:
            self._in_flight += 1
            return 0.0
        if len(returns) and self._in_flight < self.capacity:
            return returns[0] - now
        return math.inf  # every token is in flight: wait for one to finish

    async def acquire(self) -> None:
        """Take a token, waiting (first come, first served) until one is free."""
        if not self._fifo.locked() and self._try_take(self._clock()) == 0.0:
            return
        async with self._fifo:
            while True:
                delay = self._try_take(self._clock())
                if delay == 0.0:
                    return
                changed = self._changed = self._changed or anyio.Event()
                with anyio.move_on_after(delay):
                    await changed.wait()

    def release(self, *, sent: bool = True) -> None:
        """Give the token taken by `acquire` back: one window from now, or at once when
        its request was never sent."""
        self._in_flight -= 1
        if sent:
            self._returns.append(self._clock() + self.limit.per)
        self._wake()

    def slow_down(self, retry_after: float | None) -> None:
        """The server answered 429: lower capacity and hold off until Retry-After."""
        now = self._clock()
        self._scale = max(_MIN_SCALE, self._scale * _SLOWDOWN)
        self._last_change = now
        if retry_after is not None and retry_after > 0:
            self._hold_until = max(self._hold_until, now + retry_after)
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


class RateLimiter:
    """The buckets of one client, built from a `RateLimits` table."""

    __slots__ = ("_buckets", "limits")

    def __init__(
        self, limits: RateLimits, *, clock: Callable[[], float] = anyio.current_time
    ) -> None:
        self.limits = limits
        self._buckets = {rc: Bucket(limit, clock=clock) for rc, limit in limits.limits.items()}

    def bucket(self, rate_class: RateClass) -> Bucket | None:
        """The bucket for `rate_class`, or None when that class is not limited."""
        return self._buckets.get(rate_class)
