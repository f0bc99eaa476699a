"""Client-side rate limiting: one bucket per `RateClass`, shared by every call of a client.

A bucket holds `requests` tokens. A request takes one before it is sent and gives it
back `per` seconds after its response has *finished*. Counting from the end of the
exchange (not its start) means two requests that share a token can never arrive at the
server less than `per` seconds apart, whatever the latency: a server that allows at most
`requests` in any window of `per` seconds never has reason to answer 429.

A 429 from the server slows the bucket (its capacity x0.7, and nothing is sent before the
server's Retry-After, held at most one window `per`: the error still reports the whole
value); each quiet window afterwards restores capacity by the same factor. Waiting for a
token is an ordinary anyio wait: cancel scopes interrupt it, and `acquire(timeout)` raises
`RateLimitTimeoutError` (nothing was sent; it names the rate class and when the next
token frees) rather than wait past the call's deadline, at once when it can tell the
next token frees too late.

`Bucket` keeps its tokens in this process. `SharedBucket` also keeps them in a store
(`_stores`: SQLite or Redis) that other processes share, as leases with the same rule: a
request needs a token of both. When the store cannot be reached the client says so once
(WARNING) and the local bucket alone limits it until the store answers again; since the
local bucket saw every request of this process, neither switch lets this process exceed
its window.
"""

from __future__ import annotations

import logging
import math
import random
import secrets
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, Final

import anyio

from ._config import RateLimits, RateLimitStatus
from ._errors import RateLimitTimeoutError
from ._limits import Limit, RateClass
from ._stores import Store, StoreUnavailable, bucket_key, open_store, redact_url

__all__ = ["Bucket", "RateLimiter", "SharedBucket"]

logger = logging.getLogger("codegen_async")

_SLOWDOWN = 0.7
_MIN_SCALE = 0.1
STORE_RETRY: Final = 1.0  # seconds before a store that failed is asked again, doubling
STORE_RETRY_MAX: Final = 10.0  # up to this while it keeps failing
LEASE_BOUND: Final = 300.0  # a lease's bound on its request when the call has no deadline
JITTER: Final = 0.02  # a wait for a shared token is spread by up to this fraction of `per`


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value >= 100 else f"{value:.3g}s"


async def _wait_lock(lock: anyio.Lock, timeout: float) -> bool:
    """Take `lock` (first come, first served); False if not within `timeout`."""
    with anyio.move_on_after(timeout):
        await lock.acquire()
        return True
    return False


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
        "rate_class",
    )

    def __init__(
        self,
        limit: Limit,
        *,
        clock: Callable[[], float] = anyio.current_time,
        rate_class: RateClass | None = None,
    ) -> None:
        self.limit = limit
        self.rate_class = "" if rate_class is None else rate_class.value
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
        self._recover(self._clock())
        return max(1, math.floor(self.limit.requests * self._scale))

    def _recover(self, now: float) -> None:
        if self._scale < 1.0 and now - self._last_change >= self.limit.per:
            self._scale = min(1.0, self._scale / _SLOWDOWN)
            self._last_change = now

    def _wait_for(self, now: float) -> float:
        """Seconds until a token is free: 0 now, inf while every token is in flight (one
        frees a window after its request finishes)."""
        if now < self._hold_until:
            return self._hold_until - now
        returns = self._returns
        while returns and returns[0] <= now:
            returns.popleft()
        capacity = self.capacity
        if self._in_flight + len(returns) < capacity:
            return 0.0
        if len(returns) and self._in_flight < capacity:
            return returns[0] - now
        return math.inf

    def _try_take(self, now: float) -> float:
        """Take a token and return 0, or return how long to wait before trying again."""
        delay = self._wait_for(now)
        if delay == 0.0:
            self._in_flight += 1
        return delay

    def no_token(self, timeout: float, next_in: float | None = None) -> RateLimitTimeoutError:
        """The error of a wait for a token that gave up after (or, seeing the next token
        free too late, before) `timeout` seconds; `next_in`: when the next one frees
        (None: as the bucket sees it now)."""
        if next_in is None:
            next_in = self._wait_for(self._clock())
        known = None if math.isinf(next_in) else max(0.0, next_in)
        if known is None:
            when = (
                "every token is held by a request in flight; each frees "
                f"{_seconds(self.limit.per)} after its response"
            )
        else:
            when = f"the next one frees in {_seconds(known)}"
        name = f"{self.rate_class} " if self.rate_class else ""
        return RateLimitTimeoutError(
            f"no {name}rate-limit token within the {_seconds(timeout)} left before the call's "
            f"deadline ({when}); nothing was sent",
            rate_class=self.rate_class,
            next_token_in=known,
        )

    async def acquire(self, timeout: float = math.inf) -> None:
        """Take a token, waiting (first come, first served) until one is free; raise
        RateLimitTimeoutError rather than wait longer than `timeout` seconds."""
        if not self._fifo.locked() and self._try_take(self._clock()) == 0.0:
            return
        deadline = self._clock() + timeout
        if not await _wait_lock(self._fifo, timeout):
            raise self.no_token(timeout)
        try:
            while True:
                now = self._clock()
                delay = self._try_take(now)
                if delay == 0.0:
                    return
                if now + delay > deadline and not math.isinf(delay):
                    raise self.no_token(timeout, delay)  # it frees up too late: fail now
                changed = self._changed = self._changed or anyio.Event()
                with anyio.move_on_after(min(delay, deadline - now)):
                    await changed.wait()
                if self._clock() >= deadline:
                    raise self.no_token(timeout)
        finally:
            self._fifo.release()

    def give_back(self, *, sent: bool = True) -> None:
        """Return a token taken by `acquire`: one window from now, or at once when its
        request was never sent."""
        self._in_flight -= 1
        if sent:
            self._returns.append(self._clock() + self.limit.per)
        self._wake()

    def hold(self, retry_after: float | None) -> None:
        """The server answered 429: lower capacity and hold off until Retry-After, at
        most one window."""
        now = self._clock()
        self._scale = max(_MIN_SCALE, self._scale * _SLOWDOWN)
        self._last_change = now
        if retry_after is not None and retry_after > 0:
            self._hold_until = max(self._hold_until, now + min(retry_after, self.limit.per))
        self._wake()

    async def release(self, token: object = None, *, sent: bool = True) -> None:
        """`give_back`, with the interface `SharedBucket` has."""
        self.give_back(sent=sent)

    async def slow_down(self, retry_after: float | None) -> None:
        """`hold`, with the interface `SharedBucket` has."""
        self.hold(retry_after)

    async def status(self, rate_class: RateClass) -> RateLimitStatus:
        return self.snapshot(rate_class)

    def snapshot(self, rate_class: RateClass, store: str | None = None) -> RateLimitStatus:
        now = self._clock()
        while self._returns and self._returns[0] <= now:
            self._returns.popleft()
        capacity = self.capacity
        remaining = max(0, capacity - self._in_flight - len(self._returns))
        if remaining:
            next_in = 0.0
        elif self._returns and self._in_flight < capacity:
            next_in = self._returns[0] - now
        else:
            next_in = self.limit.per  # every token in flight: a window after a response
        return RateLimitStatus(
            rate_class=rate_class,
            limit=self.limit.requests,
            per=self.limit.per,
            capacity=capacity,
            remaining=remaining,
            next_token_in=next_in,
            paused_for=max(0.0, self._hold_until - now),
            store=store,
        )

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None


class _Down:
    """The store did not answer this time."""


_DOWN: Final = _Down()


class StoreLink:
    """One client's connection to its store: opened lazily, every call in a worker
    thread. A failure makes it report `_DOWN` for `STORE_RETRY` seconds, doubling up to
    `STORE_RETRY_MAX` while the store stays away, with one WARNING per outage; then one
    call at a time probes it (a store that does not answer at all costs that one call
    its connect timeout, not every call)."""

    def __init__(self, url: str, *, clock: Callable[[], float] = anyio.current_time) -> None:
        self.url = url
        self.shown = redact_url(url)
        self._clock = clock
        self._store: Store | None = None
        self._opening = threading.Lock()
        self._down_until = -math.inf
        self._retry = STORE_RETRY
        self._probing = False
        self._warned = False

    @property
    def up(self) -> bool:
        return not self._probing and self._clock() >= self._down_until

    def _invoke(self, name: str, *args: Any) -> Any:
        with self._opening:
            if self._store is None:
                try:
                    self._store = open_store(self.url)
                except Exception as exc:  # a store that cannot even be set up is unavailable
                    raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return getattr(self._store, name)(*args)

    async def call(self, name: str, *args: Any) -> Any:
        """The store method's answer, or `_DOWN`."""
        if not self.up:
            return _DOWN
        probe = self._probing = self._warned  # in an outage, this call alone asks
        try:
            answer = await anyio.to_thread.run_sync(partial(self._invoke, name, *args))
        except StoreUnavailable as exc:
            self._down_until = self._clock() + self._retry
            self._retry = min(STORE_RETRY_MAX, self._retry * 2)
            if not self._warned:
                self._warned = True
                logger.warning(
                    "rate-limit store %s cannot be reached (%s): limiting in this process "
                    "only until it answers",
                    self.shown,
                    redact_url(str(exc)),
                )
            return _DOWN
        finally:
            if probe:
                self._probing = False
        self._retry = STORE_RETRY
        if self._warned:
            self._warned = False
            logger.info("rate-limit store %s answers again: limits are shared again", self.shown)
        return answer

    async def aclose(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(store.close)


class _Local:
    """A token taken from the local fallback bucket."""


_LOCAL: Final = _Local()


class SharedBucket:
    """A bucket whose tokens are leases in a shared store (see `_stores`), backed by a
    local `Bucket` that counts this process's own requests.

    One task per process asks the store at a time (the others queue here, first come
    first served); a refused take waits until the store says a token can free up, plus
    a little jitter, then asks again: no polling in between."""

    __slots__ = ("_clock", "_fifo", "_key", "_link", "_local", "limit")

    def __init__(
        self,
        limit: Limit,
        link: StoreLink,
        key: str,
        *,
        clock: Callable[[], float] = anyio.current_time,
        rate_class: RateClass | None = None,
    ) -> None:
        self.limit = limit
        self._link = link
        self._key = key
        self._clock = clock
        # The fallback, and the 429 slow-down.
        self._local = Bucket(limit, clock=clock, rate_class=rate_class)
        self._fifo = anyio.Lock()

    @property
    def capacity(self) -> int:
        return self._local.capacity

    async def acquire(self, timeout: float = math.inf) -> object:
        """Take a token and return it for `release`: one of this process's own bucket
        (which also counts what this process sent while the store was away) and, while
        the store answers, a lease in the store. Raise RateLimitTimeoutError rather than
        wait longer than `timeout`."""
        deadline = self._clock() + timeout
        if not await _wait_lock(self._fifo, timeout):
            raise self._local.no_token(timeout)
        try:
            await self._local.acquire(deadline - self._clock())
            try:
                return await self._take_lease(deadline, timeout)
            except BaseException:
                self._local.give_back(sent=False)
                raise
        finally:
            self._fifo.release()

    async def _take_lease(self, deadline: float, timeout: float) -> object:
        while self._link.up:
            now = self._clock()
            lease = secrets.token_hex(8)
            bound = deadline - now if math.isfinite(deadline) else LEASE_BOUND
            answer = await self._link.call(
                "take", self._key, lease, self.capacity, self.limit.per, bound
            )
            if answer is _DOWN:
                break
            if answer.taken:
                return lease
            delay = answer.wait + random.uniform(0.0, JITTER * self.limit.per)
            if self._clock() + delay > deadline:  # the store's next token frees too late
                raise self._local.no_token(timeout, answer.wait)
            await anyio.sleep(delay)
        return _LOCAL  # the store is away: the local token alone limits this request

    async def release(self, token: object, *, sent: bool = True) -> None:
        """Give the token back: it lasts one window from now (or ends at once when its
        request was never sent), locally and in the store."""
        self._local.give_back(sent=sent)
        if isinstance(token, str):
            with anyio.CancelScope(shield=True):
                if sent:
                    await self._link.call("finish", self._key, token, self.limit.per)
                else:
                    await self._link.call("cancel", self._key, token)
            # A lease the store could not hear about expires on its own.

    async def slow_down(self, retry_after: float | None) -> None:
        """A 429: slow this process down and pause the bucket for every process."""
        self._local.hold(retry_after)
        if retry_after is not None and retry_after > 0:
            with anyio.CancelScope(shield=True):
                await self._link.call("pause", self._key, min(retry_after, self.limit.per))

    async def status(self, rate_class: RateClass) -> RateLimitStatus:
        state = await self._link.call("state", self._key, self.limit.per)
        if state is _DOWN:
            return self._local.snapshot(rate_class)
        capacity = self.capacity
        remaining = max(0, capacity - state.in_use)
        return RateLimitStatus(
            rate_class=rate_class,
            limit=self.limit.requests,
            per=self.limit.per,
            capacity=capacity,
            remaining=remaining,
            next_token_in=0.0 if remaining else state.next_free_in,
            paused_for=state.paused_for,
            store=self._link.shown,
        )


class RateLimiter:
    """The buckets of one client, built from a `RateLimits` table.

    With `limits.store` set, `identity` (base URL, API key) names the client's buckets
    in the store (hashed); without it, or without a store, the buckets are local."""

    __slots__ = ("_buckets", "_link", "limits")

    def __init__(
        self,
        limits: RateLimits,
        *,
        clock: Callable[[], float] = anyio.current_time,
        identity: tuple[str, str] | None = None,
    ) -> None:
        self.limits = limits
        self._buckets: dict[RateClass, Bucket | SharedBucket]
        self._link: StoreLink | None = None
        if limits.store is not None and identity is not None and limits.enabled:
            self._link = StoreLink(limits.store, clock=clock)
        link = self._link
        if link is None or identity is None:
            self._buckets = {
                rc: Bucket(lim, clock=clock, rate_class=rc) for rc, lim in limits.limits.items()
            }
        else:
            self._buckets = {
                rc: SharedBucket(
                    lim,
                    link,
                    bucket_key(identity[0], identity[1], rc.value),
                    clock=clock,
                    rate_class=rc,
                )
                for rc, lim in limits.limits.items()
            }

    def bucket(self, rate_class: RateClass) -> Bucket | SharedBucket | None:
        """The bucket for `rate_class`, or None when that class is not limited."""
        return self._buckets.get(rate_class)

    async def status(self) -> dict[RateClass, RateLimitStatus]:
        """Every limited class's bucket as it is now (read from the store when shared)."""
        return {rc: await bucket.status(rc) for rc, bucket in self._buckets.items()}

    async def aclose(self) -> None:
        """Close the store connection, if any (a later call opens it again)."""
        if self._link is not None:
            await self._link.aclose()
