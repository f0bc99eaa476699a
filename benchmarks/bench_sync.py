"""B3: the sync facade's cost per call, side by side with the async client in one run.

The Emulator is served by uvicorn in a child process on 127.0.0.1 (rate limits off);
this process measures, on the same GET of one run:

- async: wall time per `await client.agent_runs.get(id)` (AsyncCodegen, in `anyio.run`);
- sync: wall time per `client.agent_runs.get(id)` (codegen_sync.Codegen, private loop);
- hop: the bare thread hop of the portal, a call of a coroutine that returns at once.

Goals: sync / async <= 1.25; the median hop <= 100 us.

    python benchmarks/bench_sync.py [--calls 2000] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import anyio
from _common import emit, figure, served_emulator

import codegen_async as cg
import codegen_sync
from codegen_sync._portal import get_portal

ROUNDS = 3  # interleaved; the median of each side is reported


def async_wall_per_call(options: dict[str, Any], run_id: int, calls: int) -> float:
    async def measure() -> float:
        async with cg.AsyncCodegen(**options) as client:
            for _ in range(min(50, calls)):
                await client.agent_runs.get(run_id)
            started = time.perf_counter()
            for _ in range(calls):
                await client.agent_runs.get(run_id)
            return (time.perf_counter() - started) / calls

    return anyio.run(measure)


def sync_wall_per_call(client: codegen_sync.Codegen, run_id: int, calls: int) -> float:
    for _ in range(min(50, calls)):
        client.agent_runs.get(run_id)
    started = time.perf_counter()
    for _ in range(calls):
        client.agent_runs.get(run_id)
    return (time.perf_counter() - started) / calls


def hop_median(calls: int) -> float:
    """Median wall time of one portal call of a coroutine that returns at once."""
    portal = get_portal()

    async def nothing() -> None:
        return None

    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        portal.call(nothing)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def measure(options: dict[str, Any], run_id: int, calls: int) -> dict[str, Any]:
    async_s: list[float] = []
    sync_s: list[float] = []
    with codegen_sync.Codegen(**options) as client:
        for _ in range(ROUNDS):
            async_s.append(async_wall_per_call(options, run_id, calls))
            sync_s.append(sync_wall_per_call(client, run_id, calls))
    async_med, sync_med = statistics.median(async_s), statistics.median(sync_s)
    return {
        "B3": figure(
            sync_med / async_med,
            1.25,
            "x",
            "sync facade (codegen_sync) wall per agent_runs.get vs async client",
            async_us=round(async_med * 1e6, 1),
            sync_us=round(sync_med * 1e6, 1),
            calls=calls,
        ),
        "B3-hop": figure(
            hop_median(calls) * 1e6,
            100.0,
            "µs",
            "median bare portal hop (sync call of a coroutine returning at once)",
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    args = parser.parse_args()
    with served_emulator(seeds=1, time_scale=0.001, rate_limits=False) as served:
        options = {**served.client_kwargs(), "rate_limits": cg.RateLimits.off()}
        emit(measure(options, served.info["run_ids"][0], 100 if args.smoke else args.calls))


if __name__ == "__main__":
    main()
