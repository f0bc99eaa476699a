"""Issue 4 / B5: what waiting for K runs costs, coalesced vs naive per-run polling.

For K = 10, 100, 1,000 awaited runs (seeded in an in-process Emulator at a fast time
scale, rate limits off so both strategies are measured on equal terms), count the
requests each strategy sends until every run is terminal:

- coalesced: `client.agent_runs.wait()` for every run at once (one shared poller);
- naive: one loop per run doing GET + sleep on the same cadence (the seeds' approach).

Then B5: memory per awaited run with 10,000 concurrent waits (tracemalloc, beyond the
snapshot; goal <= 4 KiB), and the poller's CPU per refresh cycle for the largest K, with
the Emulator served by a child process on 127.0.0.1 so that only the client's CPU counts.

    python benchmarks/bench_poller.py [--sizes 10,100,1000] [--waits 10000] [--smoke]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from typing import Any

import anyio
from _common import ServedEmulator, emit, figure, served_emulator

import codegen_async as cg
from codegen_async.testing import Emulator

SCALE = 0.001  # emulated seconds per real second: a minute passes in 60 ms
RUN_SECONDS = (120.0, 600.0)  # 2-10 emulated minutes: several refresh cycles


def emulator() -> Emulator:
    return Emulator(time_scale=SCALE, rate_limits=False, run_seconds=RUN_SECONDS, seed=7)


def reads(emu: Emulator) -> int:
    by_route = emu.counters.requests_by_route
    return by_route.get("get_agent_run", 0) + by_route.get("list_agent_runs", 0)


async def coalesced(k: int) -> dict[str, Any]:
    async with emulator() as emu:
        ids = [emu.seed_run(f"task {i}")["id"] for i in range(k)]
        options = emu.client_options()
        async with cg.AsyncCodegen(**options) as client:
            await client.users.me()
            emu.reset_counters()
            async with anyio.create_task_group() as tg:
                for run_id in ids:
                    tg.start_soon(client.agent_runs.wait, run_id)
            stats = dict(client._shared.engine.poller.stats)
        total = reads(emu)
    return {
        "requests": total,
        "cycles": stats["cycles"],
        "per_cycle": total / max(1, stats["cycles"]),
    }


async def naive(k: int) -> dict[str, Any]:
    async with emulator() as emu:
        ids = [emu.seed_run(f"task {i}")["id"] for i in range(k)]
        options = emu.client_options()
        policy: cg.PollPolicy = options["poll_policy"]
        async with cg.AsyncCodegen(**options) as client:
            emu.reset_counters()

            async def poll(run_id: int) -> None:
                interval = policy.first
                while not (await client.agent_runs.get(run_id)).is_terminal:
                    await anyio.sleep(interval)
                    interval = min(policy.maximum, interval * policy.factor)

            async with anyio.create_task_group() as tg:
                for run_id in ids:
                    tg.start_soon(poll, run_id)
        total = reads(emu)
    return {"requests": total}


async def memory_per_wait(n: int) -> dict[str, Any]:
    """Bytes held per awaited run while n waits are parked on the poller."""
    async with Emulator(time_scale=1.0, rate_limits=False, run_seconds=3600.0) as emu:
        ids = [emu.seed_run(f"long {i}")["id"] for i in range(n)]
        options = emu.client_options()
        options["poll_policy"] = cg.PollPolicy(first=600.0, maximum=600.0)  # no refresh meanwhile
        async with cg.AsyncCodegen(**options) as client:
            # The snapshots exist before the waits (wait() given a model skips the first GET):
            # what is measured is what waiting adds beyond them.
            runs = [
                cg.AgentRun(id=i, organization_id=emu.org_id, status=cg.RunStatus.RUNNING)
                for i in ids
            ]
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            started = time.process_time()
            async with anyio.create_task_group() as tg:
                for run in runs:
                    tg.start_soon(client.agent_runs.wait, run)
                await anyio.sleep(0.5)
                watched = client._shared.engine.poller.watched
                during = tracemalloc.get_traced_memory()[0]
                cpu = time.process_time() - started
                tg.cancel_scope.cancel()
            tracemalloc.stop()
    return {
        "waits": n,
        "watched": watched,
        "bytes_per_wait": (during - before) / n,
        "cpu_to_park_all_s": cpu,
    }


async def bare_task_baseline(n: int) -> float:
    """Bytes per task for n bare anyio tasks each parked on its own Event: what any
    task-per-wait design costs before the SDK adds anything."""

    async def parked() -> None:
        await anyio.Event().wait()

    gc.collect()
    tracemalloc.start()
    async with anyio.create_task_group() as tg:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(n):
            tg.start_soon(parked)
        await anyio.sleep(0.2)
        during = tracemalloc.get_traced_memory()[0]
        tg.cancel_scope.cancel()
    tracemalloc.stop()
    return (during - before) / n


async def memory_per_run_in_as_completed(n: int) -> dict[str, Any]:
    """Bytes the poller itself holds per awaited run (one task awaiting all n)."""
    async with Emulator(time_scale=1.0, rate_limits=False, run_seconds=3600.0) as emu:
        ids = [emu.seed_run(f"long {i}")["id"] for i in range(n)]
        options = emu.client_options()
        options["poll_policy"] = cg.PollPolicy(first=600.0, maximum=600.0)
        async with cg.AsyncCodegen(**options) as client:
            runs = [
                cg.AgentRun(id=i, organization_id=emu.org_id, status=cg.RunStatus.RUNNING)
                for i in ids
            ]
            gc.collect()
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            during = before
            with anyio.move_on_after(0.5):
                iterator = client.agent_runs.as_completed(runs)
                async with anyio.create_task_group() as tg:

                    async def measure() -> None:
                        nonlocal during
                        await anyio.sleep(0.3)
                        during = tracemalloc.get_traced_memory()[0]

                    tg.start_soon(measure)
                    async for _ in iterator:
                        pass
            tracemalloc.stop()
    return {"runs": n, "bytes_per_run": (during - before) / n}


async def cycle_cpu(served: ServedEmulator, scale: float) -> dict[str, Any]:
    """Client process CPU per refresh cycle while waiting for every seeded run."""
    options = {"rate_limits": cg.RateLimits.off(), "poll_policy": cg.PollPolicy().scaled(scale)}
    async with cg.AsyncCodegen(**served.client_kwargs(), **options) as client:
        await client.users.me()
        started = time.process_time()
        async with anyio.create_task_group() as tg:
            for run_id in served.info["run_ids"]:
                tg.start_soon(client.agent_runs.wait, run_id)
        cpu = time.process_time() - started
        stats = dict(client._shared.engine.poller.stats)
    return {"cpu_s": cpu, **stats}


async def polling_rows(sizes: list[int]) -> list[dict[str, Any]]:
    rows = []
    for k in sizes:
        c, n = await coalesced(k), await naive(k)
        rows.append({"k": k, "coalesced": c, "naive": n, "ratio": c["requests"] / n["requests"]})
    return rows


def b5_figures(waits: int, k: int) -> dict[str, Any]:
    rows = anyio.run(polling_rows, [size for size in (10, 100) if size < k] + [k])
    memory = anyio.run(memory_per_wait, waits)
    bare = anyio.run(bare_task_baseline, waits)
    one_iterator = anyio.run(memory_per_run_in_as_completed, waits)
    with served_emulator(
        seeds=k, time_scale=SCALE, rate_limits=False, run_seconds=list(RUN_SECONDS), seed=7
    ) as served:
        cycles = anyio.run(cycle_cpu, served, SCALE)
    per_cycle_ms = 1000 * cycles["cpu_s"] / max(1, cycles["cycles"])
    per_wait = memory["bytes_per_wait"]
    memory_figures = {
        "B5-memory": figure(
            per_wait,
            4096,
            "B",
            f"memory per awaited run, {waits:,} concurrent wait() tasks",
            cpu_to_park_all_s=round(memory["cpu_to_park_all_s"], 3),
        ),
        "B5-memory-sdk": figure(
            per_wait - bare,
            4096,
            "B",
            "the same, beyond what a bare anyio task parked on an Event costs",
            bare_task_b=round(bare),
        ),
        "B5-memory-iter": figure(
            one_iterator["bytes_per_run"],
            4096,
            "B",
            f"memory per awaited run, {waits:,} runs in one as_completed()",
        ),
    }
    cycle_figure = figure(
        per_cycle_ms,
        None,
        "ms",
        f"client CPU per poller refresh cycle, {k:,} awaited runs (served Emulator)",
        cycles=cycles["cycles"],
        list_pages=cycles["list_pages"],
        gets=cycles["gets"],
    )
    polling_figure = figure(
        rows[-1]["ratio"],
        None,
        "x",
        f"requests of coalesced wait() vs naive per-run polling, K={k} (limits off)",
        rows=[
            {c: r[c] if c == "k" else r[c]["requests"] for c in ("k", "coalesced", "naive")}
            for r in rows
        ],
    )
    return {**memory_figures, "B5-cycle": cycle_figure, "B5-polling": polling_figure}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="K awaited runs, the largest")
    parser.add_argument("--waits", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    args = parser.parse_args()
    waits, k = (500, 20) if args.smoke else (args.waits, args.runs)
    emit(b5_figures(waits, k))
