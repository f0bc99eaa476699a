"""The batch journal in one process: replay, refusals, write failures, the background form.

Real SQLite files in tmp_path and the in-process Emulator; asserted by outcomes, the
journal's rows and the Emulator's counters, never by time.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

import codegen_async as cg
from codegen_async._journal import SCHEMA_VERSION, BatchJournal, Caller, key_digest
from codegen_async.testing import Emulator

from ..conftest import make_client

FAST = 0.001

OFF = cg.RateLimits.off()


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(time_scale=FAST, seed=3, rate_limits=False) as emu:
        yield emu


def rows(journal: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(journal)) as conn:
        query = "SELECT idx, idem_key, run_id, status, outcome FROM inputs ORDER BY idx"
        return conn.execute(query).fetchall()


PROMPTS = [f"task {i}" for i in range(8)]


def connection(fan_out: cg.RunMany) -> sqlite3.Connection:
    """The open journal's own SQLite connection (it sees what the batch committed)."""
    batch = fan_out._journal
    assert isinstance(batch, BatchJournal)
    return batch._journal._conn


def caller_of(emu: Emulator) -> Caller:
    """Where a client of this Emulator runs, as a journal records it."""

    async def org() -> int:
        return emu.org_id

    async def user() -> int:
        return emu.user_id

    base_url = emu.client_options()["base_url"]
    return Caller(base_url, key_digest(base_url, emu.client_options()["api_key"]), org, user)


@pytest.mark.anyio
async def test_a_finished_journal_replays_with_no_request(emu: Emulator, tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite3"
    emu.faults.add("error_before", route="create_agent_run", status=402, times=1)
    async with make_client(emu, rate_limits=OFF) as client:
        first = await client.gather_many(PROMPTS, max_concurrency=3, journal=journal)
        assert sum(o.ok for o in first) == len(PROMPTS) - 1
        assert not any(o.replayed for o in first)
        emu.reset_counters()
        fan_out = client.run_many(PROMPTS, journal=journal)
        events = [event async for event in fan_out.events()]
    assert emu.counters.requests == 0
    assert fan_out.resumed == cg.ResumeCounts(finished=len(PROMPTS), in_flight=0, to_start=0)
    again = sorted((e.outcome for e in events if e.outcome is not None), key=lambda o: o.index)
    assert [o.replayed for o in again] == [True] * len(PROMPTS)
    for before, after in zip(first, again, strict=True):
        assert (after.index, after.input, after.run_id, after.run) == (
            before.index,
            before.input,
            before.run_id,
            before.run,
        )
        assert type(after.error) is type(before.error)  # the 402 comes back as itself
    refused = [o for o in again if o.error is not None]
    assert isinstance(refused[0].error, cg.AgentRunLimitReachedError)
    assert [r[4] is not None for r in rows(journal)] == [True] * len(PROMPTS)


@pytest.mark.anyio
async def test_the_key_is_in_the_journal_before_the_post(emu: Emulator, tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite3"
    fan_out: cg.RunMany | None = None
    checked: list[str] = []

    async def before_send(request: httpx.Request) -> None:
        if request.method == "POST" and request.url.path.endswith("/agent/run"):
            key = json.loads(request.content)["metadata"][cg.IDEMPOTENCY_METADATA_KEY]
            assert fan_out is not None
            conn = connection(fan_out)  # the batch's own connection: committed rows
            found = conn.execute("SELECT idx FROM inputs WHERE idem_key = ?", (key,))
            assert found.fetchone() is not None, f"key {key} sent before it was journaled"
            checked.append(key)

    http = httpx.AsyncClient(transport=emu.transport(), event_hooks={"request": [before_send]})
    async with http, make_client(emu, rate_limits=OFF, http_client=http) as client:
        fan_out = client.run_many(PROMPTS, max_concurrency=4, journal=journal)
        outcomes = await fan_out.gather()
    assert all(o.ok for o in outcomes)
    assert len(checked) == len(PROMPTS)
    assert {r[1] for r in rows(journal)} == set(checked)
    assert "batch.sqlite3-sent" not in os.listdir(tmp_path)  # its marks folded in at close
    assert [r[2] for r in rows(journal)] == [o.run_id for o in outcomes]


@pytest.mark.anyio
async def test_stopped_inputs_are_taken_up_by_a_resume(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite3"
    emu = Emulator(time_scale=1.0, rate_limits=False, pending_seconds=0, run_seconds=600)
    async with emu, make_client(emu, rate_limits=OFF) as client:
        first = await client.gather_many(PROMPTS, max_concurrency=3, timeout=0.3, journal=journal)
        assert [type(o.error) for o in first].count(cg.WaitTimeoutError) == 3
        assert [type(o.error) for o in first].count(cg.RunNotStartedError) == 5
        emu.advance(1200)  # the three runs in flight are finished now
        emu.configure(run_seconds=0.01)
        in_flight, peak = 3, 3  # max_concurrency counts the runs the first batch left

        def track(event: cg.ProgressEvent) -> None:
            nonlocal in_flight, peak
            if event.kind is cg.ProgressKind.CREATED:
                in_flight += 1
                peak = max(peak, in_flight)
            elif event.outcome is not None:
                in_flight -= 1

        fan_out = client.run_many(PROMPTS, max_concurrency=3, journal=journal, on_progress=track)
        async with fan_out:
            assert fan_out.resumed == cg.ResumeCounts(finished=0, in_flight=3, to_start=5)
            second = await fan_out.gather()
    assert peak == 3
    assert all(o.ok and not o.replayed for o in second)
    assert emu.counters.runs_created == len(PROMPTS)
    assert emu.counters.duplicate_creates == 0


@pytest.mark.anyio
async def test_a_journal_for_other_inputs_is_refused_before_any_request(
    emu: Emulator, tmp_path: Path
) -> None:
    journal = tmp_path / "batch.sqlite3"
    async with make_client(emu, rate_limits=OFF) as client:
        await client.gather_many(PROMPTS[:3], journal=journal)
        content = journal.read_bytes()
        emu.reset_counters()
        with pytest.raises(cg.JournalMismatchError, match=r"items\[3\]") as more:
            await client.gather_many(PROMPTS[:4], journal=journal)
        with pytest.raises(cg.JournalMismatchError, match=r"items\[1\] differs") as differs:
            await client.gather_many([PROMPTS[0], "another", PROMPTS[2]], journal=journal)
        spec = cg.RunSpec(PROMPTS[1], model="another-model")
        with pytest.raises(cg.JournalMismatchError) as field:
            await client.gather_many([PROMPTS[0], spec, PROMPTS[2]], journal=journal)
    assert (more.value.index, differs.value.index, field.value.index) == (3, 1, 1)
    assert isinstance(more.value, ValueError)
    assert emu.counters.requests == 0
    assert journal.read_bytes() == content


def _other_sqlite(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.commit()


def _newer_schema(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (SCHEMA_VERSION + 1,))
        conn.commit()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("spoil", "match"),
    [
        (lambda p: p.write_text("prompt one\nprompt two\n"), "is not a codegen-async batch"),
        (lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\x07" * 300), "codegen-async"),
        (_other_sqlite, "has no codegen-async tables"),
        (_newer_schema, "newer codegen-async"),
    ],
    ids=["text", "corrupt", "other-sqlite", "newer-schema"],
)
async def test_a_file_that_is_not_our_journal_is_refused_and_kept(
    emu: Emulator, tmp_path: Path, spoil: object, match: str
) -> None:
    journal = tmp_path / "batch.sqlite3"
    async with make_client(emu, rate_limits=OFF) as client:
        if spoil is _newer_schema:
            await client.gather_many(PROMPTS[:2], journal=journal)
        spoil(journal)  # type: ignore[operator]
        content = journal.read_bytes()
        emu.reset_counters()
        with pytest.raises(cg.JournalError, match=match) as info:
            await client.gather_many(PROMPTS[:2], journal=journal)
    assert str(journal) in str(info.value)
    assert type(info.value) is cg.JournalError
    assert journal.read_bytes() == content
    assert emu.counters.requests == 0


@pytest.mark.anyio
async def test_an_unwritable_place_is_a_clear_error(emu: Emulator, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    async with make_client(emu, rate_limits=OFF) as client:
        for journal in (tmp_path / "missing" / "batch.sqlite3", tmp_path / "a-file" / "j"):
            with pytest.raises(cg.JournalError, match="cannot open journal") as info:
                await client.gather_many(PROMPTS[:2], journal=journal)
            assert str(journal) in str(info.value)
        with pytest.raises(cg.JournalError, match="is a directory"):
            await client.gather_many(PROMPTS[:2], journal=tmp_path)
    assert emu.counters.requests == 0


@pytest.mark.anyio
@pytest.mark.skipif(not Path("/sys").is_dir(), reason="a Linux /sys")
async def test_a_read_only_directory_is_a_clear_error(emu: Emulator, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:  # root writes anywhere but in sysfs
        folder = Path("/sys")
    try:
        async with make_client(emu, rate_limits=OFF) as client:
            with pytest.raises(cg.JournalError, match="journal") as info:
                await client.gather_many(PROMPTS[:2], journal=folder / "batch.sqlite3")
    finally:
        (tmp_path / "ro").chmod(0o700)
    assert str(folder / "batch.sqlite3") in str(info.value)


@pytest.mark.anyio
async def test_a_full_disk_stops_the_batch_with_a_clear_error(
    emu: Emulator, tmp_path: Path
) -> None:
    journal = tmp_path / "batch.sqlite3"
    big = [cg.RunSpec(f"task {i}", metadata={"pad": "x" * 3000}) for i in range(6)]
    async with make_client(emu, rate_limits=OFF) as client:
        fan_out = client.run_many(big, max_concurrency=2, journal=journal)
        async with fan_out:
            conn = connection(fan_out)
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")  # no room to grow
            with pytest.raises(cg.JournalError, match="full") as info:
                await fan_out.gather()
        assert str(journal) in str(info.value)
        created = emu.counters.runs_created
        assert created <= 2  # the batch stopped
        assert client._shared.engine.poller.watched == 0


@pytest.mark.anyio
async def test_bad_journal_arguments(emu: Emulator) -> None:
    async with make_client(emu, rate_limits=OFF) as client:
        with pytest.raises(TypeError, match="journal must be a path"):
            client.run_many(["a"], journal=5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="non-empty path"):
            client.run_many(["a"], journal=" ")


# -- the background form (async with) ---------------------------------------------------


@pytest.mark.anyio
async def test_a_slow_body_does_not_stop_the_fan_out_and_the_queue_is_bounded(
    emu: Emulator,
) -> None:
    prompts = [f"p{i}" for i in range(12)]
    async with make_client(emu, rate_limits=OFF) as client:
        fan_out = client.run_many(prompts, max_concurrency=3)
        async with fan_out:
            first = await fan_out.__anext__()
            created = emu.counters.runs_created
            await anyio.sleep(0.5)  # a slow body: runs take 20-60 ms here
            assert emu.counters.runs_created > created  # went on meanwhile
            assert len(fan_out._outcomes) + len(fan_out._flights) <= 3  # bounded
            rest = [outcome async for outcome in fan_out]
        plain = client.run_many([f"q{i}" for i in range(6)], max_concurrency=3)
        await plain.__anext__()
        before = emu.counters.runs_created
        await anyio.sleep(0.3)
        assert emu.counters.runs_created == before  # the plain form works only when asked
        await plain.aclose()
    assert sorted(o.index for o in [first, *rest]) == list(range(12))
    assert all(o.ok for o in [first, *rest])


@pytest.mark.anyio
async def test_an_outcome_does_not_wait_behind_a_stuck_create(emu: Emulator) -> None:
    emu.configure(pending_seconds=0, run_seconds=1)
    async with make_client(emu, rate_limits=OFF, timeout=30) as client:
        await client.users.me()
        emu.faults.add("latency", route="create_agent_run", seconds=5.0, times=1)
        fan_out = client.run_many(["quick", "stuck"], max_concurrency=2)
        async with fan_out:
            with anyio.fail_after(4):
                outcome = await fan_out.__anext__()  # while the other create hangs
            assert outcome.ok
        # Leaving the block cancelled the stuck create: nothing left running here.
        assert client._shared.engine.poller.watched == 0
        assert len(fan_out.unconfirmed) == 1


# -- a key journaled, its answer never seen ---------------------------------------------


async def journal_with_keys(
    emu: Emulator, path: Path, prompts: list[str], keys: dict[int, str], sent: set[int]
) -> None:
    """A journal as a process killed right after committing these keys leaves it, the
    POSTs of `sent` marked as about to go out."""
    from datetime import datetime, timezone

    from codegen_async._fanout import spec_data
    from codegen_async._journal import Journal

    inputs = [spec_data(cg.RunSpec(p)) for p in prompts]
    journal = await Journal.open(str(path), inputs, "g", caller_of(emu))
    for index, key in keys.items():
        journal.stage_key(index, key, datetime.now(timezone.utc))
        if index in sent:
            journal.stage_sent(index)
    await journal.aclose()


@pytest.mark.anyio
async def test_a_journaled_key_is_reconciled_not_posted_blindly(
    emu: Emulator, tmp_path: Path
) -> None:
    journal = tmp_path / "batch.sqlite3"
    prompts = ["posted before the crash", "never posted", "never keyed"]
    await journal_with_keys(emu, journal, prompts, {0: "key-posted", 1: "key-unsent"}, {0})
    seeded = emu.seed_run(prompts[0], metadata={cg.IDEMPOTENCY_METADATA_KEY: "key-posted"})
    async with make_client(emu, rate_limits=OFF) as client:
        fan_out = client.run_many(prompts, journal=journal)
        async with fan_out:
            # On this boot, the key never marked sent is started at once (with its key).
            assert fan_out.resumed == cg.ResumeCounts(
                finished=0, in_flight=0, to_start=2, to_reconcile=1
            )
            outcomes = await fan_out.gather()
    assert all(o.ok for o in outcomes)
    assert outcomes[0].run_id == seeded["id"]  # found by its key: not created again
    assert emu.counters.runs_created == 2
    by_id = {run["id"]: run for run in emu.runs}
    keys = [by_id[o.run_id]["metadata"][cg.IDEMPOTENCY_METADATA_KEY] for o in outcomes]
    assert keys[:2] == ["key-posted", "key-unsent"]  # posted with the journaled key
    assert [r[2] for r in rows(journal)] == [o.run_id for o in outcomes]


@pytest.mark.anyio
async def test_an_undecided_key_stays_unconfirmed_for_the_next_resume(
    emu: Emulator, tmp_path: Path
) -> None:
    journal = tmp_path / "batch.sqlite3"
    prompts = ["maybe posted"]
    await journal_with_keys(emu, journal, prompts, {0: "key-maybe"}, {0})
    async with make_client(emu, rate_limits=OFF, max_retries=0) as client:
        await client.users.me()
        emu.faults.add("error_before", route="list_agent_runs", status=503, times=None)
        fan_out = client.run_many(prompts, journal=journal)
        (outcome,) = await fan_out.gather()
        assert isinstance(outcome.error, cg.AmbiguousCreateError)
        assert [u.idempotency_key for u in fan_out.unconfirmed] == ["key-maybe"]
        assert emu.counters.requests_by_route.get("create_agent_run", 0) == 0
        assert rows(journal)[0][1:] == ("key-maybe", None, None, None)  # checked next time
        emu.faults.clear()
        (outcome,) = await client.gather_many(prompts, journal=journal)
    assert outcome.ok
    assert emu.counters.runs_created == 1


def _sent_column(fan_out: cg.RunMany) -> list[int]:
    rows = connection(fan_out).execute("SELECT sent FROM inputs ORDER BY idx")
    return [row[0] for row in rows]


def _another_boot(journal: Path) -> None:
    with contextlib.closing(sqlite3.connect(journal)) as conn:
        conn.execute("UPDATE meta SET value = 'another-boot' WHERE name = 'boot_id'")
        conn.commit()


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["another-boot", "no-boot-id"])
async def test_after_a_machine_crash_every_keyed_input_is_reconciled(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A sent mark is not fsynced: after a reboot (another boot id) or where the system
    has no boot id, its absence proves nothing, so every keyed input is looked up."""
    journal = tmp_path / "batch.sqlite3"
    prompts = ["posted before the crash", "maybe posted", "never keyed"]
    await journal_with_keys(emu, journal, prompts, {0: "key-posted", 1: "key-unmarked"}, set())
    seeded = emu.seed_run(prompts[0], metadata={cg.IDEMPOTENCY_METADATA_KEY: "key-posted"})
    if how == "another-boot":
        _another_boot(journal)
    else:
        monkeypatch.setattr("codegen_async._journal._BOOT_ID_FILE", str(tmp_path / "none"))
    async with make_client(emu, rate_limits=OFF) as client:
        fan_out = client.run_many(prompts, journal=journal)
        async with fan_out:
            assert fan_out.resumed == cg.ResumeCounts(
                finished=0, in_flight=0, to_start=1, to_reconcile=2
            )
            # Marked on disk at once: a crash now still finds them maybe sent.
            assert _sent_column(fan_out)[:2] == [1, 1]
            outcomes = await fan_out.gather()
    assert all(o.ok for o in outcomes)
    assert outcomes[0].run_id == seeded["id"]  # found by its key: not created again
    assert emu.counters.runs_created == 2
    assert emu.counters.duplicate_creates == 0


def test_the_sync_twin_starts_an_unsent_key_at_once(tmp_path: Path) -> None:
    from codegen_sync import Codegen

    journal = tmp_path / "batch.sqlite3"
    prompts = PROMPTS[:4]
    with Emulator(time_scale=FAST, rate_limits=False, run_seconds=0.01) as emu:
        emu.faults.add("error_before", route="create_agent_run", status=402, times=1)
        options = {**emu.client_options(), "rate_limits": cg.RateLimits.off()}
        with Codegen(**options) as client:
            first = client.gather_many(prompts, journal=journal, max_concurrency=1, fail_fast=True)
            assert [type(o.error) for o in first[1:]] == [cg.RunNotStartedError] * 3
            # As a process killed after reserving keys leaves it: keyed, never sent.
            with contextlib.closing(sqlite3.connect(journal)) as conn:
                conn.execute(
                    "UPDATE inputs SET idem_key = 'unsent-' || idx, keyed_at = ? "
                    "WHERE outcome IS NULL",
                    ("2026-01-01T00:00:00+00:00",),
                )
                conn.commit()
            emu.reset_counters()
            fan_out = client.run_many(prompts, journal=journal)
            with fan_out:
                assert fan_out.resumed == cg.ResumeCounts(
                    finished=1, in_flight=0, to_start=3, to_reconcile=0
                )
                outcomes = fan_out.gather()
        assert [o.ok for o in outcomes] == [False, True, True, True]
        keys = sorted(run["metadata"][cg.IDEMPOTENCY_METADATA_KEY] for run in emu.runs)
        assert keys == ["unsent-1", "unsent-2", "unsent-3"]
