"""The client-side limiter: its invariant, slow-down and recovery, cancellation."""

from __future__ import annotations

import anyio
import pytest

from codegen_async import Limit, PollPolicy, RateClass, RateLimits
from codegen_async._ratelimit import Bucket, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_documented_table_and_scaling() -> None:
    limits = RateLimits.documented()
    assert limits.get(RateClass.STANDARD) == Limit(60, 30.0)
    assert limits.get(RateClass.CREATE) == Limit(10, 60.0)
    assert limits.get(RateClass.SETUP_COMMANDS) == Limit(5, 60.0)
    assert limits.get(RateClass.LOG_ANALYSIS) == Limit(5, 60.0)
    fast = limits.scaled(0.01)
    assert fast.get(RateClass.CREATE) == Limit(10, 0.6)
    assert RateLimits.off().enabled is False
    assert RateLimiter(RateLimits.off()).bucket(RateClass.STANDARD) is None
    with pytest.raises(ValueError, match="factor"):
        limits.scaled(0)
    assert PollPolicy().scaled(0.01) == PollPolicy(first=0.015, maximum=0.3)
    with pytest.raises(ValueError, match="jitter"):
        PollPolicy(jitter=1.5)


def test_tokens_come_back_one_window_after_release() -> None:
    clock = FakeClock()
    bucket = Bucket(Limit(2, 10.0), clock=clock)
    assert bucket._try_take(clock()) == 0.0
    assert bucket._try_take(clock()) == 0.0
    assert bucket._try_take(clock()) == float("inf")  # both in flight
    clock.now += 3
    bucket.give_back()  # comes back at 113
    assert bucket._try_take(clock()) == pytest.approx(10.0)
    clock.now += 10
    assert bucket._try_take(clock()) == 0.0


def test_slow_down_lowers_capacity_holds_and_recovers() -> None:
    clock = FakeClock()
    bucket = Bucket(Limit(10, 10.0), clock=clock)
    bucket.hold(retry_after=4.0)
    assert bucket.capacity == 7
    assert bucket._try_take(clock()) == pytest.approx(4.0)
    clock.now += 4
    assert bucket._try_take(clock()) == 0.0
    bucket.give_back()
    clock.now += 10  # a quiet window
    bucket._try_take(clock())
    assert bucket.capacity == 10


@pytest.mark.anyio
async def test_no_two_requests_sharing_a_token_overlap_a_window() -> None:
    limit = Limit(3, 0.05)
    bucket = Bucket(limit)
    spans: list[tuple[float, float]] = []

    async def one() -> None:
        await bucket.acquire()
        start = anyio.current_time()
        await anyio.sleep(0.001)
        end = anyio.current_time()
        await bucket.release()
        spans.append((start, end))

    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(one)
    assert len(spans) == 12
    spans.sort()
    # Any request starts at least a window after the end of the one `requests` before it.
    for earlier, later in zip(spans, spans[limit.requests :], strict=False):
        assert later[0] >= earlier[1] + limit.per - 1e-6


@pytest.mark.anyio
async def test_waiting_for_a_token_is_cancellable() -> None:
    bucket = Bucket(Limit(1, 60.0))
    await bucket.acquire()
    await bucket.release()  # the only token is away for a minute
    with anyio.move_on_after(0.05) as scope:
        await bucket.acquire()
    assert scope.cancelled_caught
    assert bucket._in_flight == 0
