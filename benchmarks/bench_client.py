"""B1, B2, B6: the SDK's client cost, side by side with raw httpx in the same run.

The Emulator is served by uvicorn in a child process on 127.0.0.1 (no fault proxy, rate
limits off), so the process CPU measured here is the client's alone.

- B1: process CPU per `agent_runs.get` (many sequential calls), SDK async client vs raw
  `httpx.AsyncClient` + `json.loads` on the same URL. Goal <= 1.15.
- B1-tracing: the same call with tracing on (opentelemetry-api installed, no provider
  set: the no-op one) vs tracing off. Goal <= 1.05. Reported as not measured when
  opentelemetry-api is missing.
- B2: one list page of 100 runs fetched and decoded, same comparison. Goal <= 1.3.
- B6: `import codegen_async` time vs `import httpx` time, fresh interpreters. Goal <= 1.25.
- B6-cli: `codegen-async --help` in a fresh interpreter (what the console script runs),
  whole process, median wall. Goal <= 0.3 s.

    python benchmarks/bench_client.py [--calls 2000] [--pages 300] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import anyio
import httpx
from _common import cpu_per_call, emit, figure, profiled, served_emulator

import codegen_async as cg

ROUNDS = 3  # interleaved rounds; the median of each is reported


async def measure(info: dict[str, Any], calls: int, pages: int) -> dict[str, Any]:
    base, key, org, run_id = info["url"], info["api_key"], info["org_id"], info["run_ids"][0]
    run_url = f"{base}/v1/organizations/{org}/agent/run/{run_id}"
    list_url = f"{base}/v1/organizations/{org}/agent/runs"
    headers = {"Authorization": f"Bearer {key}"}
    results: dict[str, list[float]] = {
        "raw_get": [], "sdk_get": [], "raw_page": [], "sdk_page": [], "traced_get": []
    }  # fmt: skip
    options: dict[str, Any] = {
        "api_key": key, "org_id": org, "base_url": base, "rate_limits": cg.RateLimits.off()
    }  # fmt: skip
    async with (
        httpx.AsyncClient(headers=headers) as raw,
        cg.AsyncCodegen(**options, tracing=False) as sdk,
        cg.AsyncCodegen(**options, tracing=True) as traced,
    ):

        async def raw_get() -> object:
            return json.loads((await raw.get(run_url)).content)

        async def raw_page() -> object:
            response = await raw.get(list_url, params={"skip": 0, "limit": 100})
            return json.loads(response.content)

        async def sdk_get() -> object:
            return await sdk.agent_runs.get(run_id)

        async def sdk_page() -> object:
            return await sdk.agent_runs.list_page(limit=100)

        async def traced_get() -> object:
            return await traced.agent_runs.get(run_id)

        tracing = traced._shared.telemetry is not None
        for _ in range(ROUNDS):
            results["raw_get"].append(await cpu_per_call(raw_get, calls))
            results["sdk_get"].append(await cpu_per_call(sdk_get, calls))
            if tracing:
                results["traced_get"].append(await cpu_per_call(traced_get, calls))
            results["raw_page"].append(await cpu_per_call(raw_page, pages))
            results["sdk_page"].append(await cpu_per_call(sdk_page, pages))
    med = {k: statistics.median(v) for k, v in results.items() if v}
    figures = {
        "B1": ratio_figure(
            "client CPU per agent_runs.get vs raw httpx.AsyncClient + json.loads",
            med["raw_get"],
            med["sdk_get"],
            1.15,
            calls=calls,
        ),
        "B2": ratio_figure(
            "one list page of 100 runs decoded vs raw",
            med["raw_page"],
            med["sdk_page"],
            1.3,
            pages=pages,
        ),
    }
    if tracing:
        figures["B1-tracing"] = figure(
            med["traced_get"] / med["sdk_get"],
            1.05,
            "x",
            "agent_runs.get with tracing on (no-op OpenTelemetry provider) vs tracing off",
            off_us=round(med["sdk_get"] * 1e6, 1),
            on_us=round(med["traced_get"] * 1e6, 1),
            calls=calls,
        )
    return figures


def ratio_figure(what: str, raw: float, sdk: float, goal: float, **details: Any) -> dict[str, Any]:
    return figure(
        sdk / raw,
        goal,
        "x",
        what,
        raw_us=round(raw * 1e6, 1),
        sdk_us=round(sdk * 1e6, 1),
        **details,
    )


def fresh_seconds(code: str, repeats: int) -> float:
    """Median wall time of a fresh interpreter running `code` (stdout discarded).

    As on a user's machine, bytecode is cached: PYTHONDONTWRITEBYTECODE (set on some
    machines) is dropped and one unmeasured run writes the caches first. Without
    that, an editable install recompiles every module of the SDK at each start while
    httpx (compiled by pip at install) does not, which is no comparison."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run() -> float:
        started = time.perf_counter()
        command = [sys.executable, "-c", code]
        subprocess.run(command, check=True, timeout=60, env=env, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started

    run()
    return statistics.median(run() for _ in range(repeats))


def import_seconds(module: str, repeats: int) -> float:
    """Median wall time of `import module` in a fresh interpreter, minus the bare start."""
    return fresh_seconds(f"import {module}", repeats) - fresh_seconds("pass", repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--profile", action="store_true", help="cProfile to stderr")
    args = parser.parse_args()
    calls, pages, repeats = (100, 20, 3) if args.smoke else (args.calls, args.pages, 7)
    with served_emulator(seeds=100, time_scale=0.001, rate_limits=False) as served:

        async def bench() -> dict[str, Any]:
            return await measure(served.info, calls, pages)

        result = profiled(bench) if args.profile else anyio.run(bench)
    httpx_s, sdk_s = import_seconds("httpx", repeats), import_seconds("codegen_async", repeats)
    result["B6"] = figure(
        sdk_s / httpx_s,
        1.25,
        "x",
        "import codegen_async vs import httpx (fresh interpreters)",
        httpx_ms=round(httpx_s * 1000, 1),
        codegen_async_ms=round(sdk_s * 1000, 1),
    )
    help_code = "from codegen_async.cli import main; raise SystemExit(main(['--help']))"
    result["B6-cli"] = figure(
        fresh_seconds(help_code, max(repeats, 20)),
        0.3,
        "s",
        "codegen-async --help, whole fresh process (median of 20)",
    )
    emit(result)


if __name__ == "__main__":
    main()
