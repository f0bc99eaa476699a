"""Where a journal may be resumed, and what a journal path may be.

A journal records the base URL, organization and user it was written for; resumed
anywhere else it raises `JournalMismatchError` (another server or organization before
any request; another user's key before any create), and a finished journal never
replays to a stranger. Two Emulators stand for server A and server B: their run ids
overlap (both count from the same first id). A path that is not a regular file (a
directory, a FIFO, a device, a symlink to /dev/null) is refused before SQLite opens it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path

import pytest

import codegen_async as cg
from codegen_async.testing import Emulator

from ..conftest import make_client

FAST = 0.001
PROMPTS = [f"task {i}" for i in range(4)]

OFF = cg.RateLimits.off()


async def stopped_batch(emu: Emulator, journal: Path) -> list[cg.RunOutcome]:
    """A batch on `emu` left with every run created and in flight (the fan-out's timeout
    ended this process's part; a resume awaits them)."""
    async with make_client(emu, rate_limits=OFF) as client:
        outcomes = await client.gather_many(PROMPTS, timeout=0.5, journal=journal)
    assert all(isinstance(o.error, cg.WaitTimeoutError) for o in outcomes)
    return outcomes


def other_users_runs(emu: Emulator, count: int) -> list[int]:
    """Runs of someone else on `emu`, with the ids server A gave our batch."""
    return [emu.seed_run(f"someone else's {i}")["id"] for i in range(count)]


@pytest.mark.anyio
async def test_a_journal_resumed_on_another_server_is_refused_before_any_request(
    tmp_path: Path,
) -> None:
    journal = tmp_path / "batch.sqlite3"
    server_a = Emulator(time_scale=FAST, rate_limits=False, pending_seconds=0, run_seconds=600)
    server_b = Emulator(time_scale=FAST, rate_limits=False, pending_seconds=0, run_seconds=0.01)
    async with server_a, server_b, server_a.serve(port=0), server_b.serve(port=0):
        first = await stopped_batch(server_a, journal)
        strangers = other_users_runs(server_b, len(PROMPTS))
        assert sorted(o.run_id for o in first) == strangers  # the same ids on B
        content = journal.read_bytes()
        server_b.reset_counters()
        async with make_client(server_b, rate_limits=OFF) as client:
            with pytest.raises(cg.JournalMismatchError, match="written for the server") as info:
                await client.gather_many(PROMPTS, journal=journal)
        assert server_b.counters.requests == 0
        assert info.value.index is None
        assert server_a.base_url in str(info.value)
        assert str(journal) in str(info.value)
        assert journal.read_bytes() == content
        server_a.advance(1200)
        again = await _gather(server_a, journal)
    assert [o.run_id for o in again] == [o.run_id for o in first]  # A's own runs
    assert all(o.ok for o in again)


async def _gather(emu: Emulator, journal: Path, **extra: object) -> list[cg.RunOutcome]:
    async with make_client(emu, rate_limits=OFF, **extra) as client:
        return await client.gather_many(PROMPTS, journal=journal)


@pytest.mark.anyio
async def test_a_journal_of_another_organization_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite3"
    async with (
        Emulator(time_scale=FAST, rate_limits=False, run_seconds=0.01) as org_1,
        Emulator(time_scale=FAST, rate_limits=False, run_seconds=0.01, org_id=2) as org_2,
    ):
        finished = await _gather(org_1, journal)  # a finished journal, org 1
        assert all(o.ok for o in finished)
        other_users_runs(org_2, len(PROMPTS))
        # The organization is configured: refused before any request.
        with pytest.raises(cg.JournalMismatchError, match="organization 1, not 2"):
            await _gather(org_2, journal)
        assert org_2.counters.requests == 0
        # Not configured: one read learns it (the caller's first organization), then
        # refused: nothing replayed, nothing created.
        with pytest.raises(cg.JournalMismatchError, match="organization 1, not 2"):
            await _gather(org_2, journal, org_id=None)
        assert org_2.counters.requests_by_route == {"get_organizations": 1}
        # Where it was written, it still replays with no request.
        org_1.reset_counters()
        again = await _gather(org_1, journal)
        assert all(o.replayed for o in again)
        assert org_1.counters.requests == 0


@pytest.mark.anyio
async def test_another_users_key_is_refused_before_any_create(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite3"
    async with (
        Emulator(time_scale=FAST, rate_limits=False, run_seconds=0.01) as mine,
        Emulator(time_scale=FAST, rate_limits=False, run_seconds=0.01, api_key="theirs") as theirs,
        Emulator(time_scale=FAST, rate_limits=False, run_seconds=0.01, api_key="mine-2") as mine_2,
    ):
        theirs._store.caller = theirs._store.users[1]  # that key belongs to another user
        assert theirs.user_id != mine.user_id == mine_2.user_id
        finished = await _gather(mine, journal)
        other_users_runs(theirs, len(PROMPTS))
        with pytest.raises(
            cg.JournalMismatchError, match=f"this API key belongs to user {theirs.user_id}"
        ):
            await _gather(theirs, journal)  # a finished journal: no replay to a stranger
        assert theirs.counters.requests_by_route == {"get_current_user_info": 1}
        # Another key of the same user: one read of the caller, then the replay.
        again = await _gather(mine_2, journal)
        assert mine_2.counters.requests_by_route == {"get_current_user_info": 1}
    assert [o.run for o in again] == [o.run for o in finished]
    assert all(o.replayed for o in again)


def _schema_1(path: Path) -> None:
    """A journal as codegen-async wrote it before it recorded where it ran."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "CREATE TABLE inputs (idx INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, "
            "idem_key TEXT, keyed_at TEXT, run_id INTEGER, status TEXT, outcome TEXT)"
        )
        meta = {"application": "codegen-async batch journal", "schema": "1", "count": "0"}
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        conn.commit()


@pytest.mark.anyio
async def test_an_old_journal_is_refused_not_trusted(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite3"
    _schema_1(journal)
    content = journal.read_bytes()
    async with Emulator(time_scale=FAST, rate_limits=False) as emu:
        with pytest.raises(cg.JournalError, match=r"older codegen-async \(schema 1\)") as info:
            await _gather(emu, journal)
        assert emu.counters.requests == 0
    assert "server, organization and user" in str(info.value)
    assert journal.read_bytes() == content


# -- paths that are not regular files ---------------------------------------------------


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def _dev_null_link(tmp_path: Path) -> Path:
    path = tmp_path / "batch.sqlite3"
    path.symlink_to("/dev/null")
    return path


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / "folder"
    path.mkdir()
    return path


@pytest.mark.anyio
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX paths")
@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (_fifo, "is a FIFO"),
        (_dev_null_link, r"\(a symlink to /dev/null\) is a character device"),
        (lambda tmp_path: Path("/dev/null"), "is a character device"),
        (_directory, "is a directory"),
    ],
    ids=["fifo", "symlink-to-dev-null", "device", "directory"],
)
async def test_a_path_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, make: object, kind: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    before = sorted(os.listdir(tmp_path))
    async with Emulator(time_scale=FAST, rate_limits=False) as emu:
        with pytest.raises(cg.JournalError, match=kind) as info:
            await _gather(emu, path)
        assert emu.counters.requests == 0
    assert type(info.value) is cg.JournalError
    assert str(path) in str(info.value)
    assert "not a regular file" in str(info.value)
    assert sorted(os.listdir(tmp_path)) == before  # no journal, -wal or -shm beside it
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.anyio
async def test_a_missing_file_behind_a_symlink_is_created(tmp_path: Path) -> None:
    target = tmp_path / "real.sqlite3"
    link = tmp_path / "batch.sqlite3"
    link.symlink_to(target)
    async with Emulator(time_scale=FAST, rate_limits=False, run_seconds=0.01) as emu:
        outcomes = await _gather(emu, link)
    assert all(o.ok for o in outcomes)
    assert target.is_file()
    assert link.is_symlink()


def test_the_sync_twin_refuses_strangers_and_odd_paths(tmp_path: Path) -> None:
    from codegen_sync import Codegen

    journal = tmp_path / "batch.sqlite3"
    with (
        Emulator(time_scale=FAST, rate_limits=False, run_seconds=0.01) as org_1,
        Emulator(time_scale=FAST, rate_limits=False, run_seconds=0.01, org_id=2) as org_2,
    ):
        with Codegen(**{**org_1.client_options(), "rate_limits": cg.RateLimits.off()}) as c:
            assert all(o.ok for o in c.gather_many(PROMPTS, journal=journal))
        with Codegen(**{**org_2.client_options(), "rate_limits": cg.RateLimits.off()}) as c:
            with pytest.raises(cg.JournalMismatchError, match="organization 1, not 2"):
                c.gather_many(PROMPTS, journal=journal)
            if hasattr(os, "mkfifo"):
                with pytest.raises(cg.JournalError, match="is a FIFO"):
                    c.gather_many(PROMPTS, journal=_fifo(tmp_path))
        assert org_2.counters.requests == 0


@pytest.mark.anyio
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX paths")
async def test_a_marks_file_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite3"
    os.mkfifo(tmp_path / "batch.sqlite3-sent")
    async with Emulator(time_scale=FAST, rate_limits=False) as emu:
        with pytest.raises(cg.JournalError, match=r"batch\.sqlite3-sent is a FIFO"):
            await _gather(emu, journal)
        assert emu.counters.requests_by_route.get("create_agent_run", 0) == 0
