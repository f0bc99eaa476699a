"""B3: the sync facade's cost per call, side by side with the async client in one run.

The Emulator is served by uvicorn in a launcher subprocess on 127.0.0.1 (rate limits
off); this process measures, on the same GET of one run:

- async: wall time per `await client.agent_runs.get(id)` (AsyncCodegen, in `anyio.run`);
- sync: wall time per `client.agent_runs.get(id)` (codegen_sync.Codegen, private loop);
- hop: the bare thread hop of the portal, a call of a coroutine that returns at once.

Goals: sync / async <= 1.25; the median hop <= 100 us.

    python benchmarks/bench_sync.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import anyio

import codegen_async as cg
import codegen_sync
from codegen_sync._portal import get_portal

try:
    from bench_client import LAUNCHER
    from bench_emulator import start_launcher, stop_launcher
except ImportError:  # imported as benchmarks.bench_sync
    from benchmarks.bench_client import LAUNCHER
    from benchmarks.bench_emulator import start_launcher, stop_launcher

ROUNDS = 3  # interleaved; the median of each side is reported


def client_options(info: dict[str, Any]) -> dict[str, Any]:
    return {
        "api_key": info["api_key"],
        "org_id": info["org_id"],
        "base_url": info["url"],
        "rate_limits": cg.RateLimits.off(),
    }


def async_wall_per_call(info: dict[str, Any], calls: int) -> float:
    async def measure() -> float:
        async with cg.AsyncCodegen(**client_options(info)) as client:
            for _ in range(min(50, calls)):
                await client.agent_runs.get(info["run_id"])
            started = time.perf_counter()
            for _ in range(calls):
                await client.agent_runs.get(info["run_id"])
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


def measure(info: dict[str, Any], calls: int) -> dict[str, Any]:
    async_s: list[float] = []
    sync_s: list[float] = []
    with codegen_sync.Codegen(**client_options(info)) as client:
        for _ in range(ROUNDS):
            async_s.append(async_wall_per_call(info, calls))
            sync_s.append(sync_wall_per_call(client, info["run_id"], calls))
    async_med, sync_med = statistics.median(async_s), statistics.median(sync_s)
    hop = hop_median(calls)
    return {
        "B3": {
            "async_us": async_med * 1e6,
            "sync_us": sync_med * 1e6,
            "ratio": sync_med / async_med,
            "goal": 1.25,
            "hop_median_us": hop * 1e6,
            "hop_goal_us": 100.0,
        }
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    proc, info = start_launcher(LAUNCHER)
    try:
        result = measure(info, args.calls)
    finally:
        stop_launcher(proc)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
