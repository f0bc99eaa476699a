"""A bounded soak: many runs through `run_many` with faults of every kind, both backends.

Skipped unless CODEGEN_SOAK=1 (`nox -s soak` sets it). The Emulator is served on
127.0.0.1 by a child process, so this process holds only the client and its memory can
be measured alone. Size: CODEGEN_SOAK_RUNS per backend (default 300, what CI runs;
`nox -s soak -- 5000` is the full soak). The fan-out is bounded in time by a deadline that
grows with the size, and the test by pytest-timeout.

Asserts: every input gets exactly one outcome and every run succeeds; the server created
exactly one run per input and saw no duplicate create; every fault kind fired; no 429
but the forced ones (the client's limiter kept the documented limits); no request, task
or watch left behind and no connection left open; the client's memory flat after warm-up
(a fixed allowance for caches plus 100 bytes per run). Figures are printed (-s shows
them); with CODEGEN_SOAK_RECORD=<file.json> they are also written there, by backend, for
benchmarks/run.py to put into benchmarks/RESULTS.md.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import codegen_async as cg

RUNS = int(os.environ.get("CODEGEN_SOAK_RUNS", "300"))
WARM_UP = max(1, RUNS // 5)
SCALE = 0.001  # one emulated minute passes in 60 ms
FAULT_RATE = float(os.environ.get("CODEGEN_SOAK_FAULTS", "0.05"))
KINDS = (
    "error_before",
    "error_after_commit",
    "close_before",
    "close_after_commit",
    "reset",
    "truncate",
    "silence_after_commit",
    "drip",
    "latency",
    "rate_limited",
)
# Memory the client may keep after warm-up: caches that fill once (URL parsing, regexes,
# connections) plus the fan-out's `created` id list, about 40 bytes per run. One model or
# one dict kept per run would exceed it.
GROWTH_FIXED = 256 * 1024
GROWTH_PER_RUN = 100
# Wall-clock bound of the fan-out: measured about 45 ms per run with faults on 2 cores
# (30 ms of it waiting out silences and drips); 150 ms per run leaves room for a loaded host.
DEADLINE = 60.0 + 0.15 * RUNS
STOP_TIMEOUT = 10.0

pytestmark = [
    pytest.mark.soak,
    pytest.mark.network,
    pytest.mark.skipif(os.environ.get("CODEGEN_SOAK") != "1", reason="set CODEGEN_SOAK=1"),
    pytest.mark.timeout(DEADLINE + 60),
]

# The child: an Emulator (documented rate limits on) served on 127.0.0.1 with random
# faults, plus one of each kind on the first creates so that every kind fires at any size;
# prints its address, answers each stdin line with its counters, exits at EOF.
SERVER = f"""
import json, sys
from codegen_async.testing import Emulator
emu = Emulator(time_scale={SCALE}, seed=17, run_seconds=(20.0, 60.0))
emu.faults.random(rate={FAULT_RATE}, kinds={KINDS!r}, seed=5, seconds=0.05,
                  routes=["create_agent_run", "get_agent_run", "list_agent_runs"])
for kind in {KINDS!r}:
    emu.faults.add(kind, route="create_agent_run", seconds=0.05)
with emu.serve_in_thread(port=0) as url:
    print(json.dumps({{"base_url": url, "api_key": emu.api_key, "org_id": emu.org_id}}), flush=True)
    for line in sys.stdin:
        c = emu.counters
        print(json.dumps({{"runs_created": c.runs_created, "duplicates": c.duplicate_creates,
                          "requests": c.requests_by_route, "faults": c.faults_injected,
                          "rate_limited": c.rate_limited}}), flush=True)
"""

Server = tuple[subprocess.Popen[str], dict[str, Any]]


@pytest.fixture
def server() -> Iterator[Server]:
    if RUNS < 10:
        pytest.fail(f"CODEGEN_SOAK_RUNS must be at least 10, got {RUNS}")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        yield proc, json.loads(read_line(proc))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        pytest.fail(f"the emulator child exited (code {proc.poll()})")
    return line


def counters(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdin is not None
    proc.stdin.write("counters\n")
    proc.stdin.flush()
    result: dict[str, Any] = json.loads(read_line(proc))
    return result


class Tally:
    """What the fan-out handed out, without keeping the outcomes themselves."""

    def __init__(self) -> None:
        self.seen = bytearray(RUNS)  # outcomes per input
        self.succeeded = 0
        self.errors: list[str] = []
        self.growth: int | None = None  # bytes traced from warm-up to the end

    @property
    def done(self) -> int:
        return self.succeeded + len(self.errors)

    def add(self, outcome: cg.RunOutcome) -> None:
        self.seen[outcome.index] += 1
        self.succeeded += outcome.ok
        if outcome.error is not None or not outcome.ok:
            self.errors.append(f"{outcome.index}: {outcome.error or outcome.run}")


async def soak(client: cg.AsyncCodegen, tally: Tally) -> list[int]:
    """Every input through run_many; tracemalloc from warm-up to the end."""
    fan_out = client.run_many([f"soak {i}" for i in range(RUNS)], max_concurrency=50)
    try:
        async for outcome in fan_out:
            tally.add(outcome)
            if tally.done == WARM_UP:
                gc.collect()
                tracemalloc.start()
        gc.collect()
        tally.growth = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None
    finally:
        tracemalloc.stop()
    return fan_out.created


@pytest.mark.anyio
async def test_soak_every_input_once_no_duplicates_memory_flat(
    server: Server, anyio_backend: str
) -> None:
    proc, address = server
    client = cg.AsyncCodegen(
        **address,
        timeout=2.0,
        max_retries=5,
        rate_limits=cg.RateLimits.documented().scaled(SCALE),
        poll_policy=cg.PollPolicy().scaled(SCALE),
        create_policy=cg.CreatePolicy().scaled(SCALE),
    )
    tally = Tally()
    started = time.monotonic()
    async with client:
        await client.users.me()
        tasks_before = len(anyio.get_running_tasks())
        with anyio.fail_after(DEADLINE):
            created = await soak(client, tally)
        pool = client._http.http_client._transport._pool  # type: ignore[attr-defined]
        assert pool._requests == []
        assert len(anyio.get_running_tasks()) == tasks_before
        assert client._shared.engine.poller.watched == 0
        unconfirmed = list(client.agent_runs.unconfirmed_creates)
    assert pool.connections == []
    elapsed = time.monotonic() - started
    stats = counters(proc)
    figures = report(anyio_backend, elapsed, tally, stats)

    assert set(tally.seen) == {1}
    assert tally.errors == []
    assert unconfirmed == []
    assert stats["duplicates"] == 0
    assert stats["runs_created"] == len(created) == tally.succeeded == RUNS
    assert sorted(stats["faults"]) == sorted(KINDS), "every fault kind fires at least once"
    assert stats["rate_limited"] == stats["faults"]["rate_limited"], "a real 429 was sent"
    assert tally.growth is not None
    assert tally.growth < GROWTH_FIXED + GROWTH_PER_RUN * (RUNS - WARM_UP), figures


def report(backend: str, elapsed: float, tally: Tally, stats: dict[str, Any]) -> dict[str, Any]:
    """Print the figures; write them to CODEGEN_SOAK_RECORD when set."""
    figures = {
        "backend": backend,
        "runs": RUNS,
        "wall_s": round(elapsed, 1),
        "succeeded": tally.succeeded,
        "errors": len(tally.errors),
        "runs_created": stats["runs_created"],
        "duplicates": stats["duplicates"],
        "faults": stats["faults"],
        "rate_limited_429": stats["rate_limited"],
        "requests": stats["requests"],
        "client_growth_kib": None if tally.growth is None else round(tally.growth / 1024),
        "client_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"\nsoak {json.dumps(figures)}")
    record = os.environ.get("CODEGEN_SOAK_RECORD")
    if record:
        path = Path(record)
        recorded = json.loads(path.read_text()) if path.exists() else {}
        recorded[backend] = figures
        path.write_text(json.dumps(recorded, indent=2) + "\n")
    return figures
