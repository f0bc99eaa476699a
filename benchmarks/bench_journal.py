"""B8: what the batch journal costs, and how fast a big journal resumes.

The Emulator is served by uvicorn in a child process on 127.0.0.1 (see _common.py), its
limits off; the client's limits are off too, so the client's own work is what is timed.

- B8a: `run_many` of N inputs (2,000), client process CPU (all threads: the journal's
  writes run in worker threads) with a journal / without. Runs alternate, `--rounds`
  pairs; the median of the pairs' ratios. Goal <= 1.15.
- B8b: resume a journal of 10,000 inputs, 9,000 finished, 500 in flight (runs live on
  the Emulator), 500 never started: seconds from `run_many(...)` to the first new create
  (goal <= 1 s), and the list requests the poller sent until every resumed run was
  refreshed, per 100 runs in flight (the 500 resumed and those created meanwhile, which
  are newer and so on the first pages too; goal <= 1).

    python benchmarks/bench_journal.py [--inputs 2000] [--rounds 3] [--smoke]
"""

from __future__ import annotations

import argparse
import datetime
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from _common import ServedEmulator, emit, figure, served_emulator

import codegen_async as cg
from codegen_async._fanout import spec_data
from codegen_async._journal import Caller, Journal, key_digest

SCALE = 0.001  # emulated runs of 20-60 s take 20-60 ms
MAX_CONCURRENCY = 100
RESUME_SCALE = 0.01  # B8b: runs of 10 min emulated last 6 s, so they are in flight


def client(served: ServedEmulator, scale: float = SCALE) -> cg.AsyncCodegen:
    """A client without limits, polling on the Emulator's time scale."""
    return cg.AsyncCodegen(
        **served.client_kwargs(),
        rate_limits=cg.RateLimits.off(),
        poll_policy=cg.PollPolicy().scaled(scale),
    )


async def one_batch(served: ServedEmulator, inputs: int, journal: Path | None) -> float:
    """Client CPU seconds for one run_many of `inputs` prompts (all must succeed)."""
    prompts = [f"b8a {journal is not None} {i} {time.time_ns()}" for i in range(inputs)]
    async with client(served) as sdk:
        await sdk.users.me()
        started = time.process_time()
        ok = 0
        async with sdk.run_many(prompts, max_concurrency=MAX_CONCURRENCY, journal=journal) as fan:
            async for outcome in fan:
                ok += outcome.ok
        cpu = time.process_time() - started
    if ok != inputs:
        raise SystemExit(f"B8a: {inputs - ok} of {inputs} runs did not succeed")
    return cpu


async def b8a(served: ServedEmulator, inputs: int, rounds: int, folder: Path) -> dict[str, Any]:
    with_journal: list[float] = []
    without: list[float] = []
    for number in range(rounds):
        without.append(await one_batch(served, inputs, None))
        with_journal.append(await one_batch(served, inputs, folder / f"b8a-{number}.sqlite3"))
        served.counters(reset=True)
    # Each pair runs back to back, under the same load of the machine: the median of the
    # pairs' ratios is steadier than a ratio of medians when other work shares the cores.
    ratio = statistics.median(w / wo for w, wo in zip(with_journal, without, strict=True))
    return {
        "B8a": figure(
            ratio,
            1.15,
            "x",
            f"run_many of {inputs} inputs, limits off: client CPU with a journal / without",
            cpu_with_s=[round(c, 3) for c in with_journal],
            cpu_without_s=[round(c, 3) for c in without],
        )
    }


async def write_journal(
    path: Path, prompts: list[str], finished: int, in_flight_ids: list[int], sdk: cg.AsyncCodegen
) -> None:
    """A journal as an earlier process of this client would have left it."""
    inputs = [spec_data(cg.RunSpec(prompt)) for prompt in prompts]
    settings = sdk.settings
    user_id = (await sdk.users.me()).id

    async def user() -> int:
        return user_id

    digest = key_digest(settings.base_url, settings.api_key)
    caller = Caller(settings.base_url, digest, sdk.organization_id, user)
    journal = await Journal.open(str(path), inputs, "b8b", caller)
    at = datetime.datetime.now(datetime.timezone.utc)
    for index in range(finished):
        run = cg.AgentRun(
            id=10_000_000 + index, organization_id=1, status=cg.RunStatus.COMPLETE, result="done"
        )
        journal.stage_key(index, f"key-{index}", at)
        journal.stage_created(index, run.id, "RUNNING")
        journal.stage_outcome(index, run, None, run.id)
    for offset, run_id in enumerate(in_flight_ids):
        index = finished + offset
        journal.stage_key(index, f"key-{index}", at)
        journal.stage_created(index, run_id, "RUNNING")
    await journal.flush()
    await journal.aclose()


async def b8b(served: ServedEmulator, folder: Path, total: int, finished: int) -> dict[str, Any]:
    in_flight_ids = [int(i) for i in served.info["run_ids"]]
    prompts = [f"b8b input {i}" for i in range(total)]
    path = folder / "b8b.sqlite3"
    first_create: float | None = None
    async with client(served, RESUME_SCALE) as sdk:
        await write_journal(path, prompts, finished, in_flight_ids, sdk)
        served.counters(reset=True)
        started = time.perf_counter()

        def on_progress(event: cg.ProgressEvent) -> None:
            nonlocal first_create
            if event.kind is cg.ProgressKind.CREATED and first_create is None:
                first_create = time.perf_counter() - started

        fan = sdk.run_many(prompts, max_concurrency=2_000, journal=path, on_progress=on_progress)
        resumed = set(in_flight_ids)

        def resynced() -> bool:  # every run resumed in flight was refreshed once
            pending = fan._group.pending
            return all(pending[i].snapshot is not None for i in resumed if i in pending)

        async def drain() -> None:
            async for _ in fan:
                pass

        async with fan, anyio.create_task_group() as tg:
            assert fan.resumed == cg.ResumeCounts(
                finished, len(in_flight_ids), total - finished - len(in_flight_ids)
            ), fan.resumed
            tg.start_soon(drain)
            with anyio.fail_after(60):
                # Sampled every millisecond: the benchmark watches, the fan-out signals nothing.
                while first_create is None or not resynced():  # noqa: ASYNC110
                    await anyio.sleep(0.001)
            counters = served.counters()
            tg.cancel_scope.cancel()
    lists = counters["requests"].get("list_agent_runs", 0)
    gets = counters["requests"].get("get_agent_run", 0)
    creates = counters["requests"].get("create_agent_run", 0)
    flying = len(in_flight_ids) + creates  # the pages also cover the runs created meanwhile
    assert first_create is not None
    return {
        "B8b-first-create": figure(
            first_create,
            1.0,
            "s",
            f"resume of a {total:,}-input journal, {finished:,} finished: to the first new create",
        ),
        "B8b-resync": figure(
            lists / math.ceil(flying / 100),
            1.0,
            "lists/100 runs",
            f"list requests to re-sync {len(in_flight_ids)} resumed runs in flight (with the "
            "runs created meanwhile), per 100",
            list_requests=lists,
            get_requests=gets,
            resumed_in_flight=len(in_flight_ids),
            created_meanwhile=creates,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    args = parser.parse_args()
    inputs, rounds = (100, 1) if args.smoke else (args.inputs, args.rounds)
    total, finished, flying = (1_000, 900, 50) if args.smoke else (10_000, 9_000, 500)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with served_emulator(time_scale=SCALE, rate_limits=False, seed=11) as served:
            results.update(anyio.run(b8a, served, inputs, rounds, folder))
        # Long runs (10 min emulated, 6 s real) so the seeded ones are still in flight.
        with served_emulator(
            seeds=flying,
            time_scale=RESUME_SCALE,
            rate_limits=False,
            run_seconds=[600, 600],
            seed=11,
        ) as served:
            results.update(anyio.run(b8b, served, folder, total, finished))
    emit(results)


if __name__ == "__main__":
    main()
