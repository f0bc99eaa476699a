"""The client-side limiter: its invariant, slow-down and recovery, cancellation, and the
error of a wait that finds no token."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import anyio
import pytest

from codegen_async import (
    APITimeoutError,
    AsyncCodegen,
    Limit,
    PollPolicy,
    RateClass,
    RateLimits,
    RateLimitTimeoutError,
)
from codegen_async._ratelimit import Bucket, RateLimiter
from codegen_async.testing import Emulator


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


# -- a wait for a token that finds none says so (issue 21.8) ---------------------------


def _check_no_token(error: BaseException, rate_class: str, low: float, high: float) -> None:
    assert isinstance(error, RateLimitTimeoutError)
    assert isinstance(error, APITimeoutError)  # still caught where timeouts are
    assert error.sent is False
    assert error.rate_class == rate_class
    assert error.next_token_in is not None
    assert low < error.next_token_in <= high
    text = str(error)
    assert f"no {rate_class} rate-limit token" in text
    assert re.search(r"the next one frees in \d+(\.\d+)?s\)", text), text
    assert "within the 30s left before the call's deadline" in text
    assert "nothing was sent" in text
    assert "did not finish" not in text


@pytest.mark.anyio
@pytest.mark.parametrize("shared", [False, True], ids=["local", "sqlite-store"])
async def test_a_create_without_a_token_says_so(tmp_path: Path, shared: bool) -> None:
    """The second create of a 1-per-hour bucket fails at once, naming the missing token,
    when it frees, and that nothing was sent; a shared SQLite store says the same to
    another client (its own local bucket has a token: the store refuses it)."""
    limits = RateLimits({RateClass.CREATE: Limit(1, 3600.0)})
    if shared:
        limits = limits.shared(f"sqlite:///{tmp_path / 'limits.sqlite3'}")
    async with Emulator(time_scale=0.001, rate_limits=False) as emu:
        options = {**emu.client_options(), "rate_limits": limits, "timeout": 30.0}
        async with AsyncCodegen(**options) as client, AsyncCodegen(**options) as other:
            await client.agent_runs.create("takes the only token")
            with pytest.raises(RateLimitTimeoutError) as info:
                await client.agent_runs.create("finds none")
            _check_no_token(info.value, "create", 3500.0, 3600.0)
            if shared:
                with pytest.raises(RateLimitTimeoutError) as info:
                    await other.agent_runs.create("finds none in the store")
                _check_no_token(info.value, "create", 3500.0, 3600.0 + 0.02 * 3600.0)
            assert client.agent_runs.unconfirmed_creates == []
        assert sorted(emu.prompts.values()) == ["takes the only token"]


@pytest.mark.anyio
async def test_a_wait_while_every_token_is_in_flight_says_so() -> None:
    bucket = Bucket(Limit(1, 60.0), rate_class=RateClass.STANDARD)
    await bucket.acquire()  # held: its request never finishes
    with pytest.raises(RateLimitTimeoutError) as info:
        await bucket.acquire(0.05)
    error = info.value
    assert (error.rate_class, error.next_token_in, error.sent) == ("standard", None, False)
    assert "every token is held by a request in flight; each frees 60s after" in str(error)
    assert bucket._in_flight == 1


@pytest.mark.anyio
async def test_a_fan_out_create_without_a_token_waits_for_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A create that gives up at once (its token frees after its deadline) goes back in
    the queue and waits for that token: every input is created once, and it is put back
    a handful of times, not asked again in a busy loop (thousands of times before)."""
    caplog.set_level(logging.DEBUG, logger="codegen_async")
    limits = RateLimits({RateClass.CREATE: Limit(1, 0.6)})
    async with Emulator(time_scale=0.001, rate_limits=False) as emu:
        options = {**emu.client_options(), "rate_limits": limits, "timeout": 0.2}
        async with AsyncCodegen(**options) as client:
            outcomes = await client.gather_many(["a", "b", "c"], max_concurrency=3)
        assert all(outcome.ok for outcome in outcomes)
        assert sorted(emu.prompts.values()) == ["a", "b", "c"]
    put_back = [r for r in caplog.records if "waits for a create token" in r.getMessage()]
    assert 1 <= len(put_back) <= 12, len(put_back)
