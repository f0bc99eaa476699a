"""The Emulator's server-side rate limiter: a sliding log per API key and rate class.

"At most N requests in any window of W seconds", measured on the emulated clock
with the unscaled table, which is the same as real seconds with every window
multiplied by the time scale. Rejected requests take no slot.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from .._config import RateLimits
from .._limits import RateClass

__all__ = ["ServerRateLimiter"]


class ServerRateLimiter:
    """Admits or rejects requests; `acquire` returns None or the emulated wait."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._logs: dict[tuple[str, RateClass], deque[float]] = {}

    @property
    def enabled(self) -> bool:
        return self.limits.enabled

    def acquire(self, key: str, rate_class: RateClass) -> float | None:
        """Take a slot now, or return the emulated seconds until one frees up."""
        limit = self.limits.get(rate_class)
        if limit is None:
            return None
        now = self._clock()
        with self._lock:
            log = self._logs.get((key, rate_class))
            if log is None:
                log = self._logs[(key, rate_class)] = deque()
            horizon = now - limit.per
            while log and log[0] <= horizon:
                log.popleft()
            if len(log) >= limit.requests:
                return log[0] + limit.per - now
            log.append(now)
            return None

    def reset(self) -> None:
        """Forget every request seen so far."""
        with self._lock:
            self._logs.clear()
