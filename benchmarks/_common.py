"""What the benchmark scripts share: a served Emulator in a child process, CPU timing,
percentiles and the JSON every script prints.

Every benchmark script prints one JSON object on its last stdout line: figure id ->
{"value", "goal" (None: no goal, reported only), "unit", "what", ...details}. A figure
passes when value <= goal. `run.py` collects them into RESULTS.md.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio

REPO = Path(__file__).resolve().parents[1]
STOP_TIMEOUT = 5.0

# The child: an Emulator served by uvicorn on 127.0.0.1 (no fault proxy) with `seeds` runs;
# prints its address, then answers each stdin line with its counters ("reset": and then
# zeroes them and forgets its rate-limit windows); exits when stdin closes.
_CHILD = """
import json, sys
from codegen_async.testing import Emulator
from codegen_async.testing._serve import serve_app_in_thread

options = json.loads(sys.argv[1])
seeds = options.pop("seeds")
emu = Emulator(**options)
run_ids = [emu.seed_run(f"benchmark seed {i}")["id"] for i in range(seeds)]
with serve_app_in_thread(emu.wire_app, faults=False) as url:
    info = {"url": url, "api_key": emu.api_key, "org_id": emu.org_id, "run_ids": run_ids}
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        c = emu.counters
        if line.strip() == "reset":
            emu.reset_counters()
            emu.reset_rate_limits()
        print(json.dumps({"requests": c.requests_by_route, "rate_limited": c.rate_limited,
                          "runs_created": c.runs_created, "duplicates": c.duplicate_creates}),
              flush=True)
"""


class ServedEmulator:
    """An Emulator served on 127.0.0.1 by a child process, and a line protocol to it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc
        self.info: dict[str, Any] = json.loads(self._read_line())

    @property
    def url(self) -> str:
        return str(self.info["url"])

    def client_kwargs(self) -> dict[str, Any]:
        """base_url, api_key, org_id for AsyncCodegen."""
        return {
            "base_url": self.url,
            "api_key": self.info["api_key"],
            "org_id": self.info["org_id"],
        }

    def counters(self, *, reset: bool = False) -> dict[str, Any]:
        """The Emulator's counters; with reset, zeroed afterwards (rate-limit windows too)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write("reset\n" if reset else "counters\n")
        self._proc.stdin.flush()
        result: dict[str, Any] = json.loads(self._read_line())
        return result

    def _read_line(self) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise SystemExit(f"the emulator child exited early (code {self._proc.poll()})")
        return line

    def stop(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=STOP_TIMEOUT)

    @classmethod
    def start(cls, *, seeds: int = 0, **options: Any) -> ServedEmulator:
        """Serve `Emulator(**options)` with `seeds` seeded runs in a child process."""
        path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps({"seeds": seeds, **options})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": path},
        )
        try:
            return cls(proc)
        except BaseException:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
            raise


@contextmanager
def served_emulator(*, seeds: int = 0, **options: Any) -> Iterator[ServedEmulator]:
    """`ServedEmulator.start(...)`, stopped on exit."""
    served = ServedEmulator.start(seeds=seeds, **options)
    try:
        yield served
    finally:
        served.stop()


async def cpu_per_call(call: Callable[[], Awaitable[object]], n: int, warm: int = 50) -> float:
    """Process CPU seconds per call over n sequential calls, after `warm` untimed ones."""
    for _ in range(min(warm, n)):
        await call()
    started = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - started) / n


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def figure(
    value: float, goal: float | None, unit: str, what: str, **details: Any
) -> dict[str, Any]:
    """One reported figure (see the module docstring)."""
    return {"value": value, "goal": goal, "unit": unit, "what": what, **details}


def emit(figures: dict[str, Any]) -> None:
    """Print the figures as the script's last stdout line."""
    print(json.dumps(figures), flush=True)


def profiled(call: Callable[[], Awaitable[Any]], top: int = 25) -> Any:
    """`anyio.run(call)` under cProfile; the top functions by own time go to stderr."""
    profile = cProfile.Profile()
    result = profile.runcall(anyio.run, call)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(top)
    print(out.getvalue(), file=sys.stderr)
    return result
