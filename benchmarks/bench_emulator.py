"""Throughput of the served Emulator: GET agent run over loopback.

A child process serves an Emulator with uvicorn on 127.0.0.1 (no fault proxy, rate
limits off) holding one seeded run; this process sends a bounded number of GETs for it
over several concurrent keep-alive connections and reports requests/s and latencies.

    python benchmarks/bench_emulator.py [--requests 3000] [--connections 8] [--smoke]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import anyio
import httpx
from _common import emit, figure, percentile, served_emulator

RUN_LIMIT_SECONDS = 120.0  # the whole benchmark gives up after this


async def drive(info: dict[str, Any], requests: int, connections: int) -> tuple[float, list[float]]:
    """Send `requests` GETs over `connections` clients; return wall seconds and latencies."""
    headers = {"Authorization": f"Bearer {info['api_key']}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(base_url=info["url"], headers=headers, timeout=10, limits=limits)
        for _ in range(connections)
    ]
    latencies: list[float] = []
    remaining = requests
    try:
        path = f"/v1/organizations/{info['org_id']}/agent/run/{info['run_ids'][0]}"
        for client in clients:  # open every connection before timing
            (await client.get(path)).raise_for_status()

        async def worker(client: httpx.AsyncClient) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                began = time.perf_counter()
                response = await client.get(path)
                latencies.append(time.perf_counter() - began)
                response.raise_for_status()

        began = time.perf_counter()
        with anyio.fail_after(RUN_LIMIT_SECONDS):
            async with anyio.create_task_group() as tg:
                for client in clients:
                    tg.start_soon(worker, client)
        return time.perf_counter() - began, latencies
    finally:
        for client in clients:
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    args = parser.parse_args()
    if args.requests < 1 or args.connections < 1:
        parser.error("--requests and --connections must be positive")
    requests = 200 if args.smoke else args.requests
    with served_emulator(seeds=1, time_scale=0.001, rate_limits=False) as served:
        wall, latencies = anyio.run(drive, served.info, requests, args.connections)
    p50, p99 = (round(percentile(latencies, q) * 1e3, 2) for q in (0.5, 0.99))
    what = f"served Emulator, GET agent run over {args.connections} keep-alive connections"
    emit({"EMU": figure(len(latencies) / wall, None, "req/s", what, p50_ms=p50, p99_ms=p99)})


if __name__ == "__main__":
    main()
