"""B1, B2, B6: the SDK's client cost, side by side with raw httpx in the same run.

The Emulator is served by uvicorn in a child process on 127.0.0.1 (no fault proxy, rate
limits off), so the process CPU measured here is the client's alone.

- B1: process CPU per `agent_runs.get` (many sequential calls), SDK async client on its
  default stack (httpx2 where installed, else httpx) vs raw `httpx.AsyncClient` +
  `json.loads` on the same URL. Goal <= 1.00 (against httpx 0.28: `nox -s bench` pins it).
- B1-httpx: the SDK pinned to httpx (`CODEGEN_HTTP_STACK=httpx`) vs raw httpx. Reported.
- B1-httpx2: the SDK on httpx2 vs raw `httpx2.AsyncClient` + `json.loads`. Goal <= 1.10;
  raw httpx2 against raw httpx is in its details. Not measured without httpx2.
- B1-aiohttp: the SDK on the aiohttp transport (`CODEGEN_HTTP_STACK=aiohttp`) vs raw
  httpx. Goal <= 0.60; raw `aiohttp.ClientSession` (the floor under it) in its details.
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
from codegen_async._stack import default_stack

ROUNDS = 3  # interleaved rounds; the median of each is reported


def installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def on_stack(stack: str | None, **options: Any) -> cg.AsyncCodegen:
    """An SDK client built on `stack` (None: the default), as CODEGEN_HTTP_STACK chooses."""
    saved = os.environ.pop("CODEGEN_HTTP_STACK", None)
    try:
        if stack is not None:
            os.environ["CODEGEN_HTTP_STACK"] = stack
        return cg.AsyncCodegen(**options, tracing=False)
    finally:
        os.environ.pop("CODEGEN_HTTP_STACK", None)
        if saved is not None:
            os.environ["CODEGEN_HTTP_STACK"] = saved


async def stack_gets(info: dict[str, Any], calls: int) -> dict[str, float]:
    """Median CPU per GET of one run: raw httpx, raw httpx2, raw aiohttp, and the SDK on
    each stack, interleaved round by round."""
    base, key, org, run_id = info["url"], info["api_key"], info["org_id"], info["run_ids"][0]
    run_url = f"{base}/v1/organizations/{org}/agent/run/{run_id}"
    headers = {"Authorization": f"Bearer {key}"}
    options: dict[str, Any] = {
        "api_key": key, "org_id": org, "base_url": base, "rate_limits": cg.RateLimits.off()
    }  # fmt: skip
    calls_by_name: dict[str, Any] = {}
    closers: list[Any] = []
    raw = httpx.AsyncClient(headers=headers)
    closers.append(raw.aclose)

    async def raw_httpx() -> object:
        return json.loads((await raw.get(run_url)).content)

    calls_by_name["raw_httpx"] = raw_httpx
    stacks: list[str | None] = [None, "httpx"]
    if installed("httpx2"):
        import httpx2

        raw2 = httpx2.AsyncClient(headers=headers)
        closers.append(raw2.aclose)

        async def raw_httpx2() -> object:
            return json.loads((await raw2.get(run_url)).content)

        calls_by_name["raw_httpx2"] = raw_httpx2
        stacks.append("httpx2")
    if installed("aiohttp"):
        import aiohttp

        session = aiohttp.ClientSession(headers=headers)
        closers.append(session.close)

        async def raw_aiohttp() -> object:
            async with session.get(run_url) as response:
                return json.loads(await response.read())

        calls_by_name["raw_aiohttp"] = raw_aiohttp
        stacks.append("aiohttp")
    for stack in stacks:
        sdk = on_stack(stack, **options)
        closers.append(sdk.aclose)

        async def sdk_get(sdk: cg.AsyncCodegen = sdk) -> object:
            return await sdk.agent_runs.get(run_id)

        calls_by_name[f"sdk_{stack or 'default'}"] = sdk_get
    results: dict[str, list[float]] = {name: [] for name in calls_by_name}
    try:
        for _ in range(ROUNDS):
            for name, call in calls_by_name.items():
                results[name].append(await cpu_per_call(call, calls))
    finally:
        for close in closers:
            await close()
    return {name: statistics.median(values) for name, values in results.items()}


def stack_figures(med: dict[str, float], calls: int) -> dict[str, Any]:
    raw = med["raw_httpx"]
    default = default_stack().name
    us = {f"{name}_us": round(value * 1e6, 1) for name, value in med.items()}
    figures = {
        "B1": figure(
            med["sdk_default"] / raw,
            1.00,
            "x",
            f"client CPU per agent_runs.get, SDK on its default stack ({default}) vs raw "
            f"httpx {httpx.__version__}.AsyncClient + json.loads",
            calls=calls,
            **us,
        ),
        "B1-httpx": figure(
            med["sdk_httpx"] / raw,
            None,
            "x",
            f"the SDK pinned to httpx {httpx.__version__} vs raw httpx",
            calls=calls,
        ),
    }
    if "sdk_httpx2" in med:
        import httpx2

        figures["B1-httpx2"] = figure(
            med["sdk_httpx2"] / med["raw_httpx2"],
            1.10,
            "x",
            f"the SDK on httpx2 {httpx2.__version__} vs raw httpx2 + json.loads",
            raw_httpx2_vs_raw_httpx=round(med["raw_httpx2"] / raw, 3),
            sdk_httpx2_vs_raw_httpx=round(med["sdk_httpx2"] / raw, 3),
            calls=calls,
        )
    if "sdk_aiohttp" in med:
        import aiohttp

        figures["B1-aiohttp"] = figure(
            med["sdk_aiohttp"] / raw,
            0.60,
            "x",
            f"the SDK on the aiohttp {aiohttp.__version__} transport vs raw httpx",
            raw_aiohttp_vs_raw_httpx=round(med["raw_aiohttp"] / raw, 3),
            calls=calls,
        )
    return figures


async def measure(info: dict[str, Any], calls: int, pages: int) -> dict[str, Any]:
    base, key, org, run_id = info["url"], info["api_key"], info["org_id"], info["run_ids"][0]
    list_url = f"{base}/v1/organizations/{org}/agent/runs"
    headers = {"Authorization": f"Bearer {key}"}
    results: dict[str, list[float]] = {
        "sdk_get": [], "raw_page": [], "sdk_page": [], "traced_get": []
    }  # fmt: skip
    options: dict[str, Any] = {
        "api_key": key, "org_id": org, "base_url": base, "rate_limits": cg.RateLimits.off()
    }  # fmt: skip
    async with (
        httpx.AsyncClient(headers=headers) as raw,
        cg.AsyncCodegen(**options, tracing=False) as sdk,
        cg.AsyncCodegen(**options, tracing=True) as traced,
    ):

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
            results["sdk_get"].append(await cpu_per_call(sdk_get, calls))
            if tracing:
                results["traced_get"].append(await cpu_per_call(traced_get, calls))
            results["raw_page"].append(await cpu_per_call(raw_page, pages))
            results["sdk_page"].append(await cpu_per_call(sdk_page, pages))
    med = {k: statistics.median(v) for k, v in results.items() if v}
    figures = {
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

        async def stacks() -> dict[str, float]:
            return await stack_gets(served.info, calls)

        result.update(stack_figures(anyio.run(stacks), calls))
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
