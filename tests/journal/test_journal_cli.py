"""`codegen-async batch --journal FILE`: resuming, refusals and Ctrl-C, through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codegen_async.cli import API_ERROR, INTERRUPTED, OK, main
from codegen_async.testing import Emulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    emu = Emulator(time_scale=0.001, seed=3)
    with emu, emu.serve_in_thread() as url:
        monkeypatch.setenv("CODEGEN_BASE_URL", url)
        monkeypatch.setenv("CODEGEN_API_KEY", emu.api_key)
        monkeypatch.setenv("CODEGEN_ORG_ID", str(emu.org_id))
        yield emu


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.network
def test_running_the_same_batch_again_resumes_from_the_journal(
    capsys: pytest.CaptureFixture[str], served: Emulator, tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("first\nsecond\nthird\n")
    journal = tmp_path / "batch.sqlite3"
    argv = ["batch", "--file", str(prompts), "--journal", str(journal), "--json", "-q"]
    code, out, err = cli(capsys, *argv)
    assert code == OK, err
    assert "resuming" not in err
    first = json.loads(out)
    assert [o["replayed"] for o in first] == [False] * 3
    served.reset_counters()
    code, out, err = cli(capsys, *argv)
    assert code == OK, err
    assert err.splitlines()[0] == "resuming: 3 finished, 0 in flight, 0 to reconcile, 0 to start"
    again = json.loads(out)
    assert [o["replayed"] for o in again] == [True] * 3
    assert [o["run_id"] for o in again] == [o["run_id"] for o in first]
    assert served.counters.requests == 0
    prompts.write_text("first\nsecond\nanother\n")
    code, out, err = cli(capsys, *argv)
    assert code == API_ERROR
    assert "JournalMismatchError" in err
    assert "items[2]" in err
    assert "Traceback" not in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    journal = tmp_path / "batch.sqlite3"
    argv = ["--emulator", "--emulator-time-scale", "1", "batch", "first", "--journal"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("CODEGEN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "codegen_async", *argv, str(journal)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        seen = ""
        while "[1/1] run" not in seen and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, f"stderr ended early: {seen!r}"
            seen += line
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
        rest = proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(timeout=5)
    assert code == INTERRUPTED
    assert "Traceback" not in rest
    assert f"to resume, run the same command again (--journal {journal})" in rest
    assert journal.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_emulated_batch_killed_then_resumed_keeps_its_runs(tmp_path: Path) -> None:
    # `--emulator` saves its state before it answers a change, so a batch killed with
    # SIGKILL loses no run it was told about: the resumed batch finds them (no run id is
    # handed out twice, no input left with a run that is not its own).
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"input {i}\n" for i in range(4)))
    journal = tmp_path / "batch.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEGEN_")}
    env.update(PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "cache"))
    fast = ["--emulator", "--emulator-time-scale", "0.02", "--json", "-q"]
    batch = ["batch", "--file", str(prompts), "--journal", str(journal), "--max-concurrency", "4"]
    slow = ["--emulator", "--emulator-time-scale", "1", "-q"]  # runs take minutes: killed first
    proc = subprocess.Popen(
        [sys.executable, "-m", "codegen_async", *slow, *batch],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state = tmp_path / "cache" / "codegen-async" / "emulator.json"
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:  # until the state file holds the four runs
            if state.exists() and all(f"input {i}" in state.read_text() for i in range(4)):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the batch's runs never reached the emulator's state file")
    finally:
        proc.kill()
        proc.wait(timeout=10)
    run = [sys.executable, "-m", "codegen_async", *fast]
    other = subprocess.run([*run, "run", "--no-wait", "another"], env=env, capture_output=True)
    assert other.returncode == OK, other.stderr
    resumed = subprocess.run([*run, *batch], env=env, capture_output=True, text=True)
    assert resumed.returncode == OK, resumed.stderr
    outcomes = json.loads(resumed.stdout)
    assert sorted(o["index"] for o in outcomes) == [0, 1, 2, 3]
    ids = [o["run_id"] for o in outcomes]
    assert len(set(ids)) == 4
    assert json.loads(other.stdout)["id"] not in ids
    listed = subprocess.run([*run, "runs", "list"], env=env, capture_output=True, text=True)
    assert len(json.loads(listed.stdout)) == 5  # four inputs and the other run, no more
