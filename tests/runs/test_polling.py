"""Waiting without blocking: one coalescing poller per client, against the Emulator.

Everything is asserted by counters (emulator request counts, poller stats), never by time.
"""

from __future__ import annotations

import math
import sys

import anyio
import pytest

import codegen_async as cg
from codegen_async.testing import Emulator

FAST = 0.001  # one emulated minute passes in 60 ms


def fast_emulator(**kwargs: object) -> Emulator:
    options: dict[str, object] = {"time_scale": FAST, "seed": 3}
    options.update(kwargs)
    return Emulator(**options)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_run_waits_until_complete_with_the_deterministic_result() -> None:
    async with fast_emulator() as emu, cg.AsyncCodegen(**emu.client_options()) as client:
        updates: list[cg.RunStatus | None] = []
        run = await client.run(
            "Summarize the README", timeout=30, on_update=lambda r: updates.append(r.status)
        )
        again = await client.run("Summarize the README", timeout=30)
    assert run.status == cg.RunStatus.COMPLETE
    assert run.succeeded
    assert run.is_terminal
    assert run.result is not None
    assert "Summarize the README" in run.result
    assert again.result == run.result
    assert updates[-1] == cg.RunStatus.COMPLETE
    assert len(updates) == len(set(updates))  # called on changes only


@pytest.mark.anyio
async def test_failed_run_is_returned_or_raised_on_request() -> None:
    async with (
        fast_emulator(failure_rate=1.0) as emu,
        cg.AsyncCodegen(**emu.client_options()) as client,
    ):
        run = await client.run("doomed", timeout=30)
        assert run.status == cg.RunStatus.FAILED
        assert not run.succeeded
        with pytest.raises(cg.AgentRunFailedError) as info:
            await client.run("doomed", timeout=30, raise_on_failure=True)
    assert info.value.run.status == cg.RunStatus.FAILED


@pytest.mark.anyio
async def test_wait_timeout_carries_the_last_snapshot() -> None:
    async with Emulator(time_scale=1.0, pending_seconds=0.0, run_seconds=600.0) as emu:
        options = emu.client_options()
        options["poll_policy"] = cg.PollPolicy(first=0.01, maximum=0.02)
        async with cg.AsyncCodegen(**options) as client:
            run = await client.agent_runs.create("slow")
            with pytest.raises(cg.WaitTimeoutError) as info:
                await client.agent_runs.wait(run, timeout=0.1)
            assert client._shared.engine.poller.watched == 0
    assert info.value.run is not None
    assert info.value.run.id == run.id
    assert info.value.run.status == cg.RunStatus.RUNNING


@pytest.mark.anyio
async def test_many_concurrent_waits_coalesce_into_list_reads() -> None:
    k = 300
    async with fast_emulator(rate_limits=True) as emu:
        ids = [emu.seed_run(f"seeded task {i}")["id"] for i in range(k)]
        async with cg.AsyncCodegen(**emu.client_options()) as client:
            results: dict[int, cg.AgentRun] = {}

            async def wait_one(run_id: int) -> None:
                results[run_id] = await client.agent_runs.wait(run_id, timeout=60)

            async with anyio.create_task_group() as tg:
                for run_id in ids:
                    tg.start_soon(wait_one, run_id)
            stats = dict(client._shared.engine.poller.stats)
        counters = emu.counters
    assert sorted(results) == sorted(ids)
    assert all(r.is_terminal for r in results.values())
    assert counters.rate_limited == 0
    reads = counters.requests_by_route.get("get_agent_run", 0) + counters.requests_by_route.get(
        "list_agent_runs", 0
    )
    # Naive polling costs at least one GET per run per check; the poller reads pages of
    # 100 for all of them together.
    assert reads < k / 3, (reads, stats)
    assert stats["list_pages"] >= math.ceil(k / 100)


@pytest.mark.anyio
async def test_as_completed_yields_each_run_once() -> None:
    async with (
        fast_emulator(failure_rate=0.3) as emu,
        cg.AsyncCodegen(**emu.client_options()) as client,
    ):
        runs = [await client.agent_runs.create(f"job {i}") for i in range(12)]
        seen = [run async for run in client.agent_runs.as_completed(runs + runs[:3], timeout=60)]
    assert sorted(r.id for r in seen) == sorted(r.id for r in runs)
    assert all(r.is_terminal for r in seen)


@pytest.mark.anyio
async def test_a_thousand_concurrent_waits_return_without_429() -> None:
    k = 1000
    async with fast_emulator(rate_limits=True, run_seconds=(60.0, 300.0)) as emu:
        ids = [emu.seed_run(f"bulk {i}")["id"] for i in range(k)]
        async with cg.AsyncCodegen(**emu.client_options()) as client:
            done = 0

            async def wait_one(run_id: int) -> None:
                nonlocal done
                await client.agent_runs.wait(run_id, timeout=120)
                done += 1

            async with anyio.create_task_group() as tg:
                for run_id in ids:
                    tg.start_soon(wait_one, run_id)
        counters = emu.counters
    assert done == k
    assert counters.rate_limited == 0


async def _cancel_wait_by_scope(client: cg.AsyncCodegen, run_id: int) -> None:
    with anyio.move_on_after(0.05):
        await client.agent_runs.wait(run_id)


async def _cancel_as_completed_by_scope(client: cg.AsyncCodegen, run_id: int) -> None:
    with anyio.move_on_after(0.05):
        async for _ in client.agent_runs.as_completed([run_id]):
            pass


async def _cancel_logs_by_scope(client: cg.AsyncCodegen, run_id: int) -> None:
    with anyio.move_on_after(0.05):
        async for _ in client.agent_runs.logs(run_id, follow=True):
            pass


async def _cancel_wait_by_task_group(client: cg.AsyncCodegen, run_id: int) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(client.agent_runs.wait, run_id)
        await anyio.sleep(0.05)
        tg.cancel_scope.cancel()


@pytest.mark.anyio
@pytest.mark.parametrize(
    "cancel",
    [
        _cancel_wait_by_scope,
        _cancel_as_completed_by_scope,
        _cancel_logs_by_scope,
        _cancel_wait_by_task_group,
    ],
)
async def test_cancellation_is_clean_over_a_real_socket(cancel: object) -> None:
    emu = Emulator(time_scale=1.0, pending_seconds=0.0, run_seconds=600.0)
    async with emu.serve(port=0):
        options = emu.client_options()
        options["poll_policy"] = cg.PollPolicy(first=0.005, maximum=0.01)
        async with cg.AsyncCodegen(**options) as client:
            run = await client.agent_runs.create("never finishes in this test")
            for _ in range(3):
                await cancel(client, run.id)  # type: ignore[operator]
                poller = client._shared.engine.poller
                assert poller.watched == 0
                assert not poller._leading
                pool = client._http.http_client._transport._pool  # type: ignore[attr-defined]
                assert all(c.is_idle() or c.is_closed() for c in pool.connections)
                assert pool._requests == []
                # The next request succeeds.
                assert (await client.agent_runs.get(run.id)).id == run.id


@pytest.mark.anyio
@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
async def test_asyncio_timeout_cancels_a_wait_cleanly(anyio_backend: str) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("asyncio.timeout is asyncio-only")
    import asyncio

    async with Emulator(time_scale=1.0, run_seconds=600.0) as emu:
        options = emu.client_options()
        options["poll_policy"] = cg.PollPolicy(first=0.005, maximum=0.01)
        async with cg.AsyncCodegen(**options) as client:
            run = await client.agent_runs.create("long")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await client.agent_runs.wait(run)
            assert client._shared.engine.poller.watched == 0
            task = asyncio.create_task(client.agent_runs.wait(run))
            await asyncio.sleep(0.03)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client._shared.engine.poller.watched == 0
            assert (await client.agent_runs.get(run.id)).id == run.id


@pytest.mark.anyio
async def test_log_follow_yields_each_entry_once_and_ends() -> None:
    async with fast_emulator() as emu, cg.AsyncCodegen(**emu.client_options()) as client:
        run = await client.agent_runs.create("narrate your work")
        followed = [log async for log in client.agent_runs.logs(run.id, follow=True)]
        final = await client.agent_runs.get(run.id)
        everything = await client.agent_runs.logs_page(run.id)
    assert final.is_terminal
    assert len(followed) == everything.total_logs == len(everything.logs)
    assert [(e.created_at, e.message_type) for e in followed] == [
        (e.created_at, e.message_type) for e in everything.logs
    ]
    assert followed[-1].message_type == "FINAL_ANSWER"


@pytest.mark.anyio
async def test_waiting_for_an_unknown_run_raises_not_found() -> None:
    async with fast_emulator() as emu, cg.AsyncCodegen(**emu.client_options()) as client:
        with pytest.raises(cg.NotFoundError):
            await client.agent_runs.wait(999_999, timeout=10)
        assert client._shared.engine.poller.watched == 0
