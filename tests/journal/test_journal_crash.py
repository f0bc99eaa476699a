"""A journaled batch killed with SIGKILL at several moments, then resumed.

The batch runs in a child process against an Emulator served on 127.0.0.1 by this test;
the child is killed with `kill -9` while creating, while a create is committed on the
server but its answer is held on the wire, and while waiting. The resumed batch (in this
process, under the test's anyio backend) must leave exactly one run per input on the
Emulator (no duplicate create), and give exactly one outcome per input, all OK.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest

import codegen_async as cg
from codegen_async._journal import MARKS_SUFFIX
from codegen_async.testing import Emulator

pytestmark = [pytest.mark.network, pytest.mark.skipif(os.name != "posix", reason="kill -9")]

ROOT = Path(__file__).resolve().parents[2]
FAST = 0.001  # one emulated minute passes in 60 ms
N = 6

CHILD = """
import sys, anyio
import codegen_async as cg

url, key, org, journal, backend, n = sys.argv[1:7]
limit = int(sys.argv[7]) if len(sys.argv) > 7 else int(n)

async def main():
    client = cg.AsyncCodegen(
        base_url=url, api_key=key, org_id=int(org), rate_limits=cg.RateLimits.off(),
        poll_policy=cg.PollPolicy().scaled(0.001),
    )
    prompts = [f"input {i}" for i in range(int(n))]
    async with client, client.run_many(prompts, max_concurrency=limit, journal=journal) as fan:
        print("started", flush=True)
        async for outcome in fan:
            print("outcome", outcome.index, flush=True)

anyio.run(main, backend=backend)
"""


def prompts() -> list[str]:
    return [f"input {i}" for i in range(N)]


def start_child(
    emu: Emulator, journal: Path, backend: str, limit: int = N
) -> subprocess.Popen[str]:
    args = [emu.base_url, emu.api_key, str(emu.org_id), str(journal), backend, str(N), str(limit)]
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool]) -> None:
    """SIGKILL the child as soon as `ready()` holds (within 20 s)."""
    try:
        with anyio.fail_after(20):
            while not ready():
                assert proc.poll() is None, proc.communicate()
                await anyio.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def journal_keys(journal: Path) -> dict[str, int | None]:
    """idempotency key -> run id, as the killed child left the journal."""
    with contextlib.closing(sqlite3.connect(journal)) as conn:
        rows = conn.execute("SELECT idem_key, run_id FROM inputs WHERE idem_key IS NOT NULL")
        return dict(rows.fetchall())


async def resume_and_check(
    emu: Emulator, journal: Path, resumed: cg.ResumeCounts | None = None, **extra: object
) -> list[cg.RunOutcome]:
    options = {k: v for k, v in emu.client_options().items() if k != "rate_limits"}
    options.update(extra)
    async with cg.AsyncCodegen(**options, rate_limits=cg.RateLimits.off()) as client:
        fan_out = client.run_many(prompts(), max_concurrency=N, journal=journal)
        async with fan_out:
            assert fan_out.resumed is not None
            if resumed is not None:
                assert fan_out.resumed == resumed
            outcomes = [outcome async for outcome in fan_out]
    assert sorted(o.index for o in outcomes) == list(range(N))
    assert [(o.index, o.error) for o in outcomes if not o.ok] == []
    assert emu.counters.duplicate_creates == 0
    assert Counter(emu.prompts.values()) == Counter(prompts())  # one run per input
    assert sorted(o.unwrap().id for o in outcomes) == sorted(emu.prompts)
    return outcomes


@pytest.mark.anyio
async def test_killed_while_creating(tmp_path: Path, anyio_backend: str) -> None:
    journal = tmp_path / "batch.sqlite3"
    emu = Emulator(time_scale=FAST, rate_limits=False, pending_seconds=0, run_seconds=600)
    async with emu, emu.serve(port=0):
        emu.faults.add("latency", route="create_agent_run", seconds=0.3, times=None)
        proc = start_child(emu, journal, anyio_backend)
        await kill_when(proc, lambda: emu.counters.runs_created >= 1)
        assert emu.counters.runs_created < N
        emu.faults.clear()
        await anyio.sleep(0.5)  # creates the server was still processing commit (or not)
        emu.advance(1200)
        outcomes = await resume_and_check(emu, journal)
    assert not any(o.replayed for o in outcomes)


@pytest.mark.anyio
async def test_killed_with_a_committed_create_held_on_the_wire(
    tmp_path: Path, anyio_backend: str
) -> None:
    journal = tmp_path / "batch.sqlite3"
    emu = Emulator(time_scale=FAST, rate_limits=False, pending_seconds=0, run_seconds=600)
    async with emu, emu.serve(port=0):
        emu.faults.add("silence_after_commit", route="create_agent_run", times=1)
        proc = start_child(emu, journal, anyio_backend)
        (held,) = emu.faults.pending
        await kill_when(proc, lambda: held.fired >= 1)
        # The run the fault held is committed on the server; its answer never arrived.
        # Every key on the server was in the journal before its POST went out.
        keys = journal_keys(journal)
        assert emu.runs
        assert all(r["metadata"][cg.IDEMPOTENCY_METADATA_KEY] in keys for r in emu.runs)
        emu.advance(1200)
        await resume_and_check(emu, journal)


@pytest.mark.anyio
async def test_killed_while_waiting(tmp_path: Path, anyio_backend: str) -> None:
    journal = tmp_path / "batch.sqlite3"
    emu = Emulator(time_scale=FAST, rate_limits=False, pending_seconds=0, run_seconds=3600)
    async with emu, emu.serve(port=0):
        proc = start_child(emu, journal, anyio_backend)
        seen: list[float] = []

        def a_second_after_the_last_create() -> bool:
            if not seen and emu.counters.runs_created == N:
                seen.append(anyio.current_time())
            return bool(seen) and anyio.current_time() - seen[0] > 1.0

        await kill_when(proc, a_second_after_the_last_create)
        # Each run id reached the journal as soon as its create answered.
        keys = journal_keys(journal)
        assert len(keys) == N
        assert sorted(run_id or 0 for run_id in keys.values()) == sorted(emu.prompts)
        created = emu.counters.runs_created
        emu.advance(7200)  # every run is finished by now
        await resume_and_check(emu, journal)
        assert emu.counters.runs_created == created  # awaited, not created again


def sent_marks(journal: Path) -> list[int]:
    """The inputs whose POST the killed child marked as about to go out (one byte per
    input in the marks file beside the journal, written with no fsync)."""
    marks = Path(f"{journal}{MARKS_SUFFIX}").read_bytes()
    return [index for index, mark in enumerate(marks) if mark == 1]


@pytest.mark.anyio
async def test_after_a_process_crash_inputs_never_sent_start_at_once(
    tmp_path: Path, anyio_backend: str
) -> None:
    journal = tmp_path / "batch.sqlite3"
    emu = Emulator(time_scale=FAST, rate_limits=False, pending_seconds=0, run_seconds=3600)
    async with emu, emu.serve(port=0):
        proc = start_child(emu, journal, anyio_backend, limit=2)
        seen: list[float] = []

        def a_second_after_two_creates() -> bool:
            if not seen and emu.counters.runs_created == 2:
                seen.append(anyio.current_time())
            return bool(seen) and anyio.current_time() - seen[0] > 1.0

        await kill_when(proc, a_second_after_two_creates)
        # Every key was reserved (one fsync for all six); two POSTs went out.
        assert len(journal_keys(journal)) == N
        assert len(sent_marks(journal)) == 2
        emu.advance(7200)  # the two runs are finished by now
        emu.configure(run_seconds=0.01)
        # The real commit horizon (60 s, not scaled): a key reconciled would wait it out
        # (the bound below); the four keys never sent are posted at once instead.
        with anyio.fail_after(30):
            await resume_and_check(
                emu,
                journal,
                cg.ResumeCounts(finished=0, in_flight=2, to_start=N - 2, to_reconcile=0),
                create_policy=cg.CreatePolicy(),
            )
    assert emu.counters.runs_created == N
    assert emu.counters.requests_by_route["create_agent_run"] == N


@pytest.mark.anyio
async def test_a_journal_held_by_a_live_process_is_refused_then_taken_over(
    tmp_path: Path, anyio_backend: str
) -> None:
    journal = tmp_path / "batch.sqlite3"
    emu = Emulator(time_scale=FAST, rate_limits=False, pending_seconds=0, run_seconds=3600)
    async with emu, emu.serve(port=0):
        proc = start_child(emu, journal, anyio_backend)
        assert proc.stdout is not None
        try:
            line = await anyio.to_thread.run_sync(proc.stdout.readline)
            assert line.strip() == "started", proc.communicate()
            sent: list[httpx.Request] = []

            async def note(request: httpx.Request) -> None:
                sent.append(request)

            async with (
                httpx.AsyncClient(event_hooks={"request": [note]}) as http,
                cg.AsyncCodegen(**emu.client_options(), http_client=http) as client,
            ):
                with pytest.raises(cg.JournalInUseError, match="held by another live batch"):
                    await client.gather_many(prompts(), journal=journal)
            assert sent == []  # refused before any request
        finally:
            await kill_when(proc, lambda: True)
        emu.advance(7200)
        await resume_and_check(emu, journal)  # the dead owner's journal is taken over
