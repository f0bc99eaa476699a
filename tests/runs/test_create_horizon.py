"""Issue 14, items 4 and 5: a late commit never becomes a second run, and one deadline
bounds each create (retries and lookups included)."""

from __future__ import annotations

import time

import anyio
import pytest

import codegen_async as cg
from codegen_async import IDEMPOTENCY_METADATA_KEY
from codegen_async.testing import Emulator

from ..conftest import make_client

SCALE = 0.1  # emulated seconds run 10 times faster than real ones
MARGIN = 1.5  # real seconds of slack on top of a deadline (CI machines are slow)

OFF = cg.RateLimits.off()


def _runs_by_key(emu: Emulator) -> dict[str, int]:
    counts: dict[str, int] = {}
    for run in emu.runs:
        key = (run.get("metadata") or {}).get(IDEMPOTENCY_METADATA_KEY)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    return counts


@pytest.mark.anyio
async def test_a_late_commit_never_becomes_a_second_run() -> None:
    # Every create commits 8 s (emulated) after it arrived; the client gives up after 1 s.
    # Before the fix, the SDK posted again after its three lookups (~4.75 s): two runs.
    scale = 0.25  # a timeout of 0.25 s real: room for lookups on a loaded machine
    async with Emulator(time_scale=scale, rate_limits=False) as emu:
        emu.faults.add("commit_delay", route="create_agent_run", seconds=8.0, times=None)
        keys = [f"late-{i}" for i in range(20)]
        async with make_client(emu, rate_limits=OFF, timeout=1.0 * scale) as client:
            await client.users.me()
            runs: dict[str, cg.AgentRun] = {}

            async def create(key: str) -> None:
                runs[key] = await client.agent_runs.create("late", idempotency_key=key)

            async with anyio.create_task_group() as tg:
                for key in keys:
                    tg.start_soon(create, key)
        per_key = _runs_by_key(emu)
        assert emu.counters.duplicate_creates == 0
        assert per_key == dict.fromkeys(keys, 1)
        assert emu.counters.requests_by_route["create_agent_run"] == 20
        for key, run in runs.items():
            assert run.metadata is not None
            assert run.metadata[IDEMPOTENCY_METADATA_KEY] == key


@pytest.mark.anyio
async def test_a_second_post_waits_for_the_commit_horizon() -> None:
    # A create that was lost for good is posted again, but only after lookups found
    # nothing for the whole commit horizon since the first POST went out.
    async with Emulator(time_scale=SCALE, rate_limits=False) as emu:
        emu.faults.add("error_before", route="create_agent_run", status=503)
        policy = cg.CreatePolicy(commit_horizon=5.0).scaled(SCALE)
        async with make_client(emu, rate_limits=OFF, create_policy=policy) as client:
            await client.users.me()
            emu.reset_counters()
            started = emu.now()
            run = await client.agent_runs.create("lost once", idempotency_key="lost")
            waited = emu.now() - started
    assert run.metadata is not None
    assert run.metadata[IDEMPOTENCY_METADATA_KEY] == "lost"
    assert emu.counters.requests_by_route["create_agent_run"] == 2
    assert emu.counters.requests_by_route["list_agent_runs"] >= 3
    assert waited >= 5.0  # emulated seconds: the horizon passed before the second POST


@pytest.mark.anyio
async def test_no_time_left_for_the_horizon_is_ambiguous_with_the_key() -> None:
    async with Emulator(time_scale=SCALE, rate_limits=False) as emu:
        emu.faults.add("error_before", route="create_agent_run", status=503)
        policy = cg.CreatePolicy(commit_horizon=60.0, deadline=3.0).scaled(SCALE)
        async with make_client(emu, rate_limits=OFF, create_policy=policy) as client:
            with pytest.raises(cg.AmbiguousCreateError) as info:
                await client.agent_runs.create("lost", idempotency_key="k-ambiguous")
            assert [u.idempotency_key for u in client.agent_runs.unconfirmed_creates] == [
                "k-ambiguous"
            ]
    assert info.value.idempotency_key == "k-ambiguous"
    assert "deadline" in str(info.value)
    assert emu.counters.requests_by_route["create_agent_run"] == 1


@pytest.mark.anyio
async def test_a_silent_server_never_holds_a_create_past_its_deadline() -> None:
    # Every request is answered with silence (a real socket: the client waits for its
    # timeout each time). Before the fix one create took about 10 times its timeout.
    timeout = 0.5
    policy = cg.CreatePolicy(commit_horizon=0.3, deadline=1.2)
    emu = Emulator(time_scale=0.01, rate_limits=False)
    async with (
        emu.serve(port=0),
        make_client(emu, rate_limits=OFF, timeout=timeout, create_policy=policy) as client,
    ):
        await client.users.me()
        emu.faults.add("silence_after_commit", times=None)
        started = time.monotonic()
        with pytest.raises(cg.AmbiguousCreateError) as info:
            await client.agent_runs.create("silence", idempotency_key="k-silent")
        elapsed = time.monotonic() - started
        emu.faults.clear()
    assert info.value.idempotency_key == "k-silent"
    assert elapsed <= 1.2 + MARGIN, elapsed


@pytest.mark.anyio
async def test_a_create_queued_past_its_deadline_sent_nothing() -> None:
    async with Emulator(time_scale=SCALE, rate_limits=False) as emu:
        policy = cg.CreatePolicy(deadline=0.05)
        limits = cg.RateLimits({cg.RateClass.CREATE: cg.Limit(1, 3600.0)})
        async with make_client(emu, create_policy=policy, rate_limits=limits) as client:
            await client.agent_runs.create("takes the only token")
            with pytest.raises(cg.APITimeoutError) as info:
                await client.agent_runs.create("queued")
            assert info.value.sent is False
            assert client.agent_runs.unconfirmed_creates == []
    assert len(emu.runs) == 1


def test_create_policy_checks_its_values_and_scales() -> None:
    policy = cg.CreatePolicy(grace=2.0, commit_horizon=60.0, deadline=100.0).scaled(0.5)
    assert (policy.grace, policy.commit_horizon, policy.deadline) == (1.0, 30.0, 50.0)
    assert cg.CreatePolicy().scaled(0.5).deadline is None
    resolved = cg.CreatePolicy(commit_horizon=10.0).resolved(call_timeout=3.0, max_retries=2)
    assert (resolved.deadline, resolved.max_posts) == (16.0, 3)
    for bad in (
        {"commit_horizon": -1.0},
        {"commit_horizon": float("inf")},
        {"deadline": float("nan")},
        {"growth": 0.5},
        {"checks": 0},
        {"max_posts": 0},
    ):
        with pytest.raises(ValueError):
            cg.CreatePolicy(**bad)
    with pytest.raises(TypeError):
        cg.CreatePolicy(commit_horizon="60")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="create_policy"):
        cg.AsyncCodegen(api_key="k", org_id=1, create_policy=60)  # type: ignore[arg-type]
