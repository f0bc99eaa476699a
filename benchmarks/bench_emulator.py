"""Throughput of the served Emulator: GET agent run over loopback.

A launcher subprocess serves an Emulator with uvicorn on 127.0.0.1 (no fault
proxy) and prints its address; the Emulator holds one seeded run, and this
process sends a bounded number of GETs for it over several concurrent
keep-alive connections, and prints one line with requests/s and latencies.

    python benchmarks/bench_emulator.py [--requests 3000] [--connections 8]

The launcher exits when its stdin closes (so it stops with this process) and
is killed if it has not exited a few seconds later.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx

REPO = Path(__file__).resolve().parents[1]
RUN_LIMIT_SECONDS = 120.0  # the whole benchmark gives up after this

LAUNCHER = """
import json, sys
from codegen_async.testing import Emulator
from codegen_async.testing._serve import serve_app_in_thread

emu = Emulator(time_scale=0.001, rate_limits=False)
run = emu.seed_run("benchmark seed")
with serve_app_in_thread(emu.wire_app, faults=False) as url:
    info = {"url": url, "api_key": emu.api_key, "org_id": emu.org_id, "run_id": run["id"]}
    print(json.dumps(info), flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
"""


def start_launcher(code: str = LAUNCHER) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        stop_launcher(proc)
        raise SystemExit(f"the emulator launcher exited early (code {proc.returncode})")
    return proc, json.loads(line)


def stop_launcher(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


async def drive(info: dict[str, Any], requests: int, connections: int) -> tuple[float, list[float]]:
    """Send `requests` GETs over `connections` clients; return wall seconds and latencies."""
    headers = {"Authorization": f"Bearer {info['api_key']}"}
    clients = [
        httpx.AsyncClient(
            base_url=info["url"],
            headers=headers,
            timeout=10,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )
        for _ in range(connections)
    ]
    latencies: list[float] = []
    remaining = requests
    try:
        path = f"/v1/organizations/{info['org_id']}/agent/run/{info['run_id']}"
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
        async with anyio.create_task_group() as tg:
            for client in clients:
                tg.start_soon(worker, client)
        return time.perf_counter() - began, latencies
    finally:
        for client in clients:
            await client.aclose()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if args.requests < 1 or args.connections < 1:
        parser.error("--requests and --connections must be positive")

    proc, info = start_launcher()
    try:

        async def bounded() -> tuple[float, list[float]]:
            with anyio.fail_after(RUN_LIMIT_SECONDS):
                return await drive(info, args.requests, args.connections)

        wall, latencies = anyio.run(bounded)
    finally:
        stop_launcher(proc)
    p50, p99 = (percentile(latencies, q) * 1e3 for q in (0.5, 0.99))
    print(
        f"emulator GET agent run: {len(latencies)} requests over {args.connections} connections "
        f"in {wall:.2f} s = {len(latencies) / wall:,.0f} req/s (p50 {p50:.2f} ms, p99 {p99:.2f} ms)"
    )


if __name__ == "__main__":
    main()
