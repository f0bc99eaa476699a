"""B7: many processes, one token: 8 processes x 25 creates through each shared store.

An Emulator with the documented limits (time scale 0.01: a minute is 0.6 s) is served by
a child process on 127.0.0.1. Eight worker processes (`tests/_store_worker.py`) wait for a
common start time (their start-up is not measured), then each creates 25 runs at once
with `RateLimits.documented().scaled(0.01).shared(store)`: an SQLite file, then a real
`redis-server` started here on a free loopback port (skipped when the binary is missing),
then, for comparison, no store (each process on its own).

- 429s the Emulator sent: goal 0 with a store.
- wall (start to the last create's end) vs the lower bound: the create limit lets 10
  creates go at once and 10 more each window, so N creates need (ceil(N / 10) - 1)
  windows. Goal <= 1.1x.
- the store's added latency per request: the median `take` plus the median `finish`
  call (each a worker-thread hop and one transaction or Lua script), the two store calls
  on every request's path. Reported.

    python benchmarks/bench_stores.py [--processes 8] [--creates 25] [--scale 0.01] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, ServedEmulator, emit, figure, served_emulator

sys.path.insert(0, str(REPO))
from tests._redis import REDIS_SERVER, RedisServer

CREATES_PER_WINDOW, WINDOW = 10, 60.0  # the documented create limit (emulated seconds)
START_DELAY = 1.0  # seconds per worker to start up before the common start (2 cores)
WORKER_TIMEOUT = 300.0


def lower_bound(creates: int, scale: float) -> float:
    return (math.ceil(creates / CREATES_PER_WINDOW) - 1) * WINDOW * scale


def run_store(
    served: ServedEmulator, store: str, processes: int, creates: int, scale: float
) -> dict[str, Any]:
    served.counters(reset=True)
    start_at = time.time() + max(3.0, START_DELAY * processes)
    command = [
        sys.executable, "-m", "tests._store_worker", served.url, store, str(creates),
        "asyncio", str(scale), str(served.info["org_id"]), str(start_at),
    ]  # fmt: skip
    workers = [
        subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    reports = []
    for worker in workers:
        out, _ = worker.communicate(timeout=WORKER_TIMEOUT)
        if worker.returncode != 0:
            raise SystemExit(f"a worker failed (exit {worker.returncode}) on {store or 'no store'}")
        reports.append(json.loads(out.splitlines()[-1]))
    counters = served.counters()
    take = [r["store_median"].get("take", 0.0) for r in reports]
    finish = [r["store_median"].get("finish", 0.0) for r in reports]
    return {
        "wall": max(r["ended"] for r in reports) - start_at,
        "late": max(r["late"] for r in reports),
        "created": sum(r["created"] for r in reports),
        "errors": sum(len(r["errors"]) for r in reports),
        "rate_limited": counters["rate_limited"],
        "runs_created": counters["runs_created"],
        "added_ms": (sorted(take)[len(take) // 2] + sorted(finish)[len(finish) // 2]) * 1000,
        "calls": {k: sum(r["calls"].get(k, 0) for r in reports) for k in ("take", "finish")},
    }


def figures_for(name: str, result: dict[str, Any], total: int, scale: float) -> dict[str, Any]:
    bound = lower_bound(total, scale)
    details = {k: result[k] for k in ("created", "errors", "runs_created", "late", "calls")}
    label = f"{total // result['processes']} creates x {result['processes']} processes"
    return {
        f"B7-{name}-429": figure(
            result["rate_limited"], 0, "429s", f"429s the Emulator sent, {label}, {name} store"
        ),
        f"B7-{name}-wall": figure(
            round(result["wall"] / bound, 3),
            1.1,
            "x",
            f"{label} through one {name} store: wall vs lower bound",
            wall_s=round(result["wall"], 2),
            lower_bound_s=round(bound, 2),
            **details,
        ),
        f"B7-{name}-latency": figure(
            round(result["added_ms"], 2),
            None,
            "ms",
            f"{name} store's added latency per request (median take + median finish)",
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--creates", type=int, default=25)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--smoke", action="store_true", help="2 processes x 10 creates")
    args = parser.parse_args()
    processes, creates = (2, 10) if args.smoke else (args.processes, args.creates)
    total = processes * creates
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, served_emulator(time_scale=args.scale) as emu:
        stores = {"sqlite": f"sqlite:///{Path(folder) / 'limits.sqlite3'}"}
        server = RedisServer(Path(folder)) if REDIS_SERVER else None
        if server is not None:
            server.start()
            stores["redis"] = server.url
        else:
            print("redis-server not installed: the Redis store is not measured", file=sys.stderr)
        try:
            for name, store in stores.items():
                result = run_store(emu, store, processes, creates, args.scale)
                result["processes"] = processes
                figures.update(figures_for(name, result, total, args.scale))
            alone = run_store(emu, "", processes, creates, args.scale)
        finally:
            if server is not None:
                server.kill()
    figures["B7-none-429"] = figure(
        alone["rate_limited"], None, "429s",
        "the same without a store (each process limits itself): 429s the Emulator sent",
        wall_s=round(alone["wall"], 2), created=alone["created"], errors=alone["errors"],
    )  # fmt: skip
    emit(figures)


if __name__ == "__main__":
    main()
