"""B1, B2, B6: the SDK's client cost, side by side with raw httpx in the same run.

The Emulator is served by uvicorn in a launcher subprocess on 127.0.0.1 (no fault proxy,
rate limits off); this process measures.

- B1: process CPU per `agent_runs.get` (many sequential calls), SDK async client vs raw
  `httpx.AsyncClient` + `json.loads` on the same URL. Goal <= 1.15.
- B2: one list page of 100 runs fetched and decoded, same comparison. Goal <= 1.3.
- B6: `import codegen_async` time vs `import httpx` time, fresh interpreters. Goal <= 1.3.

    python benchmarks/bench_client.py [--calls 2000] [--pages 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

import codegen_async as cg

try:
    from bench_emulator import start_launcher, stop_launcher
except ImportError:  # imported as benchmarks.bench_client
    from benchmarks.bench_emulator import start_launcher, stop_launcher

LAUNCHER = """
import json, sys
from codegen_async.testing import Emulator
from codegen_async.testing._serve import serve_app_in_thread

emu = Emulator(time_scale=0.001, rate_limits=False)
runs = [emu.seed_run(f"benchmark seed {i}") for i in range(100)]
with serve_app_in_thread(emu.wire_app, faults=False) as url:
    info = {"url": url, "api_key": emu.api_key, "org_id": emu.org_id, "run_id": runs[0]["id"]}
    print(json.dumps(info), flush=True)
    sys.stdin.read()
"""


async def cpu_per_call(call: Callable[[], Awaitable[object]], n: int) -> float:
    for _ in range(min(50, n)):  # warm connections and caches
        await call()
    started = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - started) / n


async def measure(info: dict[str, Any], calls: int, pages: int) -> dict[str, Any]:
    base, key, org = info["url"], info["api_key"], info["org_id"]
    run_url = f"{base}/v1/organizations/{org}/agent/run/{info['run_id']}"
    list_url = f"{base}/v1/organizations/{org}/agent/runs"
    headers = {"Authorization": f"Bearer {key}"}
    results: dict[str, list[float]] = {"raw_get": [], "sdk_get": [], "raw_page": [], "sdk_page": []}
    async with (
        httpx.AsyncClient(headers=headers) as raw,
        cg.AsyncCodegen(
            api_key=key, org_id=org, base_url=base, rate_limits=cg.RateLimits.off()
        ) as sdk,
    ):

        async def raw_get() -> object:
            return json.loads((await raw.get(run_url)).content)

        async def raw_page() -> object:
            response = await raw.get(list_url, params={"skip": 0, "limit": 100})
            return json.loads(response.content)

        async def sdk_get() -> object:
            return await sdk.agent_runs.get(info["run_id"])

        async def sdk_page() -> object:
            return await sdk.agent_runs.list_page(limit=100)

        for _ in range(3):  # interleaved rounds; the median of each is reported
            results["raw_get"].append(await cpu_per_call(raw_get, calls))
            results["sdk_get"].append(await cpu_per_call(sdk_get, calls))
            results["raw_page"].append(await cpu_per_call(raw_page, pages))
            results["sdk_page"].append(await cpu_per_call(sdk_page, pages))
    med = {k: statistics.median(v) for k, v in results.items()}
    return {
        "B1": {
            "raw_us": med["raw_get"] * 1e6,
            "sdk_us": med["sdk_get"] * 1e6,
            "ratio": med["sdk_get"] / med["raw_get"],
            "goal": 1.15,
        },
        "B2": {
            "raw_us": med["raw_page"] * 1e6,
            "sdk_us": med["sdk_page"] * 1e6,
            "ratio": med["sdk_page"] / med["raw_page"],
            "goal": 1.3,
        },
    }


def import_seconds(module: str, repeats: int = 7) -> float:
    """Median wall time of `import module` in a fresh interpreter, minus the bare start."""

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    bare = statistics.median(run("pass") for _ in range(repeats))
    return statistics.median(run(f"import {module}") for _ in range(repeats)) - bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=300)
    args = parser.parse_args()
    proc, info = start_launcher(LAUNCHER)
    try:
        result = anyio.run(measure, info, args.calls, args.pages)
    finally:
        stop_launcher(proc)
    httpx_s, sdk_s = import_seconds("httpx"), import_seconds("codegen_async")
    result["B6"] = {
        "httpx_ms": httpx_s * 1000,
        "codegen_async_ms": sdk_s * 1000,
        "ratio": sdk_s / httpx_s,
        "goal": 1.3,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
