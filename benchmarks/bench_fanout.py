"""B4: 1,000 runs through `client.run_many` with the documented rate limits on.

The Emulator (documented limits on, at a fast time scale) is served by uvicorn in a child
process on 127.0.0.1: the client and the server then each have a core of their own, as
against a real API, and the server's CPU never delays the client's event loop. The client
uses `RateLimits.documented().scaled(scale)` and `PollPolicy().scaled(scale)`.

- wall time vs the lower bound: the create limit (10 per 60 s) lets the first 10 creates
  go at once and 10 more each window, so N creates need (ceil(N / 10) - 1) windows; the
  last run then takes up to pending + the longest run (2 + 60 s). Goal <= 1.1x.
- 429s the Emulator sent: goal 0.
- polling requests (GET run + list runs) vs naive per-run polling measured in the same
  process against the same Emulator right after (counters and rate-limit windows reset):
  create each run through the same client (limits on, same max_concurrency), then one
  GET + sleep loop per run on the PollPolicy cadence. Goal <= 1/20.

    python benchmarks/bench_fanout.py [--runs 1000] [--scale 0.01] [--profile] [--smoke]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import anyio
from _common import ServedEmulator, emit, figure, profiled, served_emulator

import codegen_async as cg

CREATES_PER_WINDOW, WINDOW = 10, 60.0  # the documented create limit (emulated seconds)
PENDING, RUN_SECONDS = 2.0, (20.0, 60.0)  # the Emulator's run lifecycle (emulated seconds)
MAX_CONCURRENCY = 50  # above what the create limit lets be in flight: not the bottleneck
# Creates at once in the naive loop, as run_many does (before commit a83d151 a create
# waiting for its token also held a connection slot, so more would have stalled the GETs).
PARALLEL_CREATES = 4
POLLING_ROUTES = ("get_agent_run", "list_agent_runs")


def lower_bound(runs: int, scale: float) -> float:
    windows = math.ceil(runs / CREATES_PER_WINDOW) - 1
    return (windows * WINDOW + PENDING + RUN_SECONDS[1]) * scale


def client(served: ServedEmulator, scale: float) -> cg.AsyncCodegen:
    return cg.AsyncCodegen(
        **served.client_kwargs(),
        rate_limits=cg.RateLimits.documented().scaled(scale),
        poll_policy=cg.PollPolicy().scaled(scale),
        create_policy=cg.CreatePolicy().scaled(scale),
    )


def polling(counters: dict[str, Any]) -> int:
    return sum(counters["requests"].get(route, 0) for route in POLLING_ROUTES)


async def fan_out(sdk: cg.AsyncCodegen, runs: int) -> dict[str, Any]:
    """Every run through run_many; wall, outcomes, and when the last create returned."""
    last_created = 0.0
    started = time.perf_counter()

    def on_progress(event: cg.ProgressEvent) -> None:
        nonlocal last_created
        if event.kind is cg.ProgressKind.CREATED:
            last_created = time.perf_counter() - started

    ok = 0
    prompts = [f"fan-out {i}" for i in range(runs)]
    many = sdk.run_many(prompts, max_concurrency=MAX_CONCURRENCY, on_progress=on_progress)
    async for outcome in many:
        ok += outcome.ok
    return {"wall_s": time.perf_counter() - started, "ok": ok, "last_create_s": last_created}


async def naive(sdk: cg.AsyncCodegen, runs: int, policy: cg.PollPolicy) -> dict[str, Any]:
    """The same fan-out written by hand: at most MAX_CONCURRENCY runs in flight, at most
    PARALLEL_CREATES creates at once (as run_many), then one GET + sleep loop per run."""
    in_flight = anyio.Semaphore(MAX_CONCURRENCY)
    creating = anyio.Semaphore(PARALLEL_CREATES)
    started = time.perf_counter()

    async def one(i: int) -> None:
        async with in_flight:
            async with creating:
                run = await sdk.agent_runs.create(f"naive {i}")
            interval = policy.first
            while not run.is_terminal:
                await anyio.sleep(interval)
                interval = min(policy.maximum, interval * policy.factor)
                run = await sdk.agent_runs.get(run.id)

    async with anyio.create_task_group() as tg:
        for i in range(runs):
            tg.start_soon(one, i)
    return {"wall_s": time.perf_counter() - started}


async def measure(served: ServedEmulator, runs: int, scale: float, deadline: float) -> Any:
    async with client(served, scale) as sdk:
        await sdk.users.me()  # resolve the caller once, outside the counts
        served.counters(reset=True)
        with anyio.fail_after(deadline):
            ours = await fan_out(sdk, runs)
        ours["counters"] = served.counters(reset=True)
        with anyio.fail_after(deadline):
            theirs = await naive(sdk, runs, cg.PollPolicy().scaled(scale))
        theirs["counters"] = served.counters()
    return ours, theirs


def figures(ours: dict[str, Any], theirs: dict[str, Any], runs: int, scale: float) -> Any:
    bound = lower_bound(runs, scale)
    polls, naive_polls = polling(ours["counters"]), polling(theirs["counters"])
    return {
        "B4-wall": figure(
            ours["wall_s"] / bound,
            1.1,
            "x",
            f"{runs} runs through run_many, documented limits on (scale {scale}): wall vs "
            "lower bound",
            wall_s=round(ours["wall_s"], 2),
            lower_bound_s=round(bound, 2),
            last_create_s=round(ours["last_create_s"], 2),
            succeeded=ours["ok"],
        ),
        "B4-429": figure(
            ours["counters"]["rate_limited"], 0, "429s", "429s the Emulator sent during run_many"
        ),
        "B4-polling": figure(
            polls / max(1, naive_polls),
            1 / 20,
            "x",
            "polling requests of run_many vs naive per-run polling (same K, same Emulator)",
            requests=polls,
            by_route={r: ours["counters"]["requests"].get(r, 0) for r in POLLING_ROUTES},
            naive_requests=naive_polls,
            naive_wall_s=round(theirs["wall_s"], 2),
            naive_429=theirs["counters"]["rate_limited"],
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--profile", action="store_true", help="cProfile to stderr")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    args = parser.parse_args()
    runs = 30 if args.smoke else args.runs
    deadline = 30.0 + 5 * lower_bound(runs, args.scale)
    with served_emulator(
        time_scale=args.scale,
        rate_limits=True,
        pending_seconds=PENDING,
        run_seconds=list(RUN_SECONDS),
        seed=11,
    ) as served:

        async def bench() -> Any:
            return await measure(served, runs, args.scale, deadline)

        ours, theirs = profiled(bench) if args.profile else anyio.run(bench)
    emit(figures(ours, theirs, runs, args.scale))


if __name__ == "__main__":
    main()
