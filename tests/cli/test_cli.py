"""The command line: every command against the Emulator, --json, progress in a terminal,
Ctrl-C, exit codes."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codegen_async.cli import API_ERROR, INTERRUPTED, OK, RUN_FAILED, USAGE
from codegen_async.cli._args import build_parser
from codegen_async.cli._commands import execute
from codegen_async.cli._output import Output
from codegen_async.cli._session import Created
from codegen_async.testing import Emulator

from .._terminal import cli, in_terminal, read_until

# Runs take 40-120 ms of real time.
FAST = ["--emulator", "--emulator-time-scale", "0.002"]
ROOT = Path(__file__).resolve().parents[2]
ENV_NAMES = (
    "CODEGEN_API_KEY",
    "CODEGEN_TOKEN",
    "CODEGEN_BASE_URL",
    "CODEGEN_ORG_ID",
    "CODEGEN_LOG",
    "CODEGEN_EMULATOR_TIME_SCALE",
    "XDG_CACHE_HOME",  # the emulator's state goes under the test's HOME
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no config file of the developer's


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code, out, _ = cli(capsys, "--json", *argv)
    return code, json.loads(out)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


# -- run ----------------------------------------------------------------------------------


def test_run_waits_and_shows_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, *FAST, "run", "Add type hints to utils.py")
    assert code == OK
    assert "status:  COMPLETE" in out
    assert "Result for: Add type hints to utils.py" in out
    # plain progress on stderr: one line per status, then the totals
    # (a loaded machine may first see it RUNNING: the emulated clock runs fast)
    assert re.search(r"run 1001  (PENDING|RUNNING)", err)
    assert "COMPLETE after" in err
    assert "1 run: 1 complete" in err


def test_run_json_is_one_document(capsys: pytest.CaptureFixture[str]) -> None:
    code, run = cli_json(capsys, *FAST, "run", "Fix the bug", "--repo-id", "501")
    assert code == OK
    assert run["status"] == "COMPLETE"
    assert run["id"] == 1001
    assert run["result"].startswith("Result for: Fix the bug")


def test_run_no_wait_prints_the_created_run(capsys: pytest.CaptureFixture[str]) -> None:
    code, run = cli_json(capsys, *FAST, "run", "Start only", "--no-wait")
    assert code == OK
    assert run["status"] in ("PENDING", "RUNNING")


def test_run_follow_streams_logs(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, *FAST, "-q", "run", "Follow me", "--follow")
    assert code == OK
    assert "PLAN_EVALUATION" in out
    assert out.index("PLAN_EVALUATION") < out.index("status:  COMPLETE")

    # --json: NDJSON, one {"log": entry} line as each entry comes, then {"run": ...}
    code, out, _ = cli(capsys, *FAST, "--json", "run", "Follow me", "--follow")
    assert code == OK
    *lines, last = [json.loads(line) for line in out.splitlines()]
    run = last["run"]
    assert run["status"] == "COMPLETE"
    assert run["logs"] == [line["log"] for line in lines]
    assert run["logs"][0]["agent_run_id"] == run["id"]


def test_run_that_fails_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, run = cli_json(capsys, *FAST, "--emulator-failure-rate", "1", "run", "Doomed")
    assert code == RUN_FAILED
    assert run["status"] == "FAILED"


def test_run_timeout_exits_1_and_says_it_keeps_running(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--emulator", "--emulator-time-scale", "1", "run", "Slow", "--timeout", "0.2"]
    code, out, err = cli(capsys, *argv)
    assert code == RUN_FAILED
    assert out == ""
    assert "error:" in err
    assert "keeps running" in err
    assert "timed out (still running)" in err
    code, _, err = cli(capsys, *argv, "--follow")  # the wait's error, out of a task group
    assert code == RUN_FAILED
    assert err.splitlines()[-1].startswith("error: timed out: agent run 1002 not finished")


# -- multi-run and batch ------------------------------------------------------------------


def test_multi_run_synthesizes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, *FAST, "--json", "multi-run", "Why slow?", "--concurrency", "2")
    assert code == OK
    result = json.loads(out)
    assert err == ""  # --json, stderr not a terminal: no progress lines
    assert len(result["candidates"]) == 2
    assert len(result["agent_runs"]) == 2
    assert result["synthesis_run"]["status"] == "COMPLETE"
    assert result["final"] == result["synthesis_run"]["result"]


def test_multi_run_without_synthesis(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["multi-run", "Why?", "--concurrency", "2", "--no-synthesize"]
    code, out, err = cli(capsys, *FAST, *argv)
    assert code == OK
    assert "(synthesis)" not in out
    assert "Result for: Why?" in out
    assert "[2/2] run" in err


def test_batch_from_a_file_across_repositories(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# a comment\nBump the version\n\nFix the docs\n")
    argv = ["batch", "--file", str(prompts), "--repo-id", "501", "--repo-id", "502"]
    code, outcomes = cli_json(capsys, *FAST, *argv, "--max-concurrency", "2")
    assert code == OK
    pairs = [(o["prompt"], o["repo_id"]) for o in outcomes]
    assert pairs == [
        ("Bump the version", 501),
        ("Bump the version", 502),
        ("Fix the docs", 501),
        ("Fix the docs", 502),
    ]
    assert all(o["ok"] and o["run"]["status"] == "COMPLETE" for o in outcomes)
    assert [o["index"] for o in outcomes] == [0, 1, 2, 3]


def test_batch_from_stdin_with_a_table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("one\ntwo\nthree\n"))
    code, out, err = cli(capsys, *FAST, "batch", "-f", "-")
    assert code == OK
    header, *rows = out.splitlines()
    assert header.split() == ["#", "RUN", "STATUS", "RESULT", "PROMPT"]
    assert len(rows) == 3
    assert all("COMPLETE" in row for row in rows)
    assert "3 runs: 3 complete" in err


def test_batch_with_failures_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*FAST, "--emulator-failure-rate", "1", "batch", "Do it", "--repo-id", "501"]
    code, outcomes = cli_json(capsys, *argv)
    assert code == RUN_FAILED
    assert [o["run"]["status"] for o in outcomes] == ["FAILED"]


def test_batch_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = cli(capsys, *FAST, "batch")
    assert code == USAGE
    assert "PROMPT or --file" in err
    code, _, err = cli(capsys, *FAST, "batch", "-f", str(tmp_path / "missing.txt"))
    assert code == USAGE
    assert err.startswith("error: cannot read prompts")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    code, _, err = cli(capsys, *FAST, "batch", "-f", str(tmp_path / "empty.txt"))
    assert (code, err.strip()) == (USAGE, f"error: no prompts in {tmp_path / 'empty.txt'}")


# -- reads --------------------------------------------------------------------------------


def test_reads_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, orgs = cli_json(capsys, *FAST, "orgs")
    assert (code, [org["id"] for org in orgs]) == (OK, [1])
    code, users = cli_json(capsys, *FAST, "users")
    assert code == OK
    assert users[0]["github_username"] == "ada-1"
    code, repos = cli_json(capsys, *FAST, "repos")
    assert code == OK
    assert repos[0]["full_name"] == "emulated-org/api-server"
    code, found = cli_json(capsys, *FAST, "integrations")
    assert code == OK
    assert found["total_active_integrations"] == 3
    code, health = cli_json(capsys, *FAST, "whoami")
    assert code == OK
    assert health["ok"] is True
    assert health["org_id"] == 1
    assert health["user"]["github_username"] == "ada-1"
    assert health["latency"] >= 0


def test_reads_as_aligned_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, *FAST, "repos")
    assert code == OK
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "FULL", "NAME", "LANGUAGE", "VISIBILITY", "SETUP"]
    column = lines[0].index("LANGUAGE")
    assert lines[1][column:].startswith("Python")
    code, out, _ = cli(capsys, *FAST, "whoami")
    assert code == OK
    assert "user:    @ada-1 (Ada Lovelace), id 101" in out
    code, out, _ = cli(capsys, *FAST, "integrations")
    assert "github  yes" in out


def test_curl_redacts_the_key_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--emulator", "curl", "runs", "get", "5")
    assert code == OK
    assert out.startswith("curl ")
    # For a served emulator: its URL and organization as the variables it prints.
    assert '"${CODEGEN_BASE_URL}/v1/organizations/${CODEGEN_ORG_ID}/agent/run/5"' in out
    assert "$CODEGEN_API_KEY" in out
    code, out, _ = cli(capsys, "--emulator", "curl", "--show-key", "run", "Hi", "--repo-id", "3")
    assert code == OK
    assert "emu-key-" in out
    assert "-X POST" in out
    assert '"repo_id":3' in out
    code, doc = cli_json(capsys, "--emulator", "curl", "whoami")
    assert code == OK
    assert doc["curl"].endswith("'accept: application/json'")


# -- runs, against a served emulator (state shared between invocations) --------------------


@pytest.fixture(scope="module")
def served() -> Iterator[Emulator]:
    pytest.importorskip("uvicorn")
    emu = Emulator(time_scale=0.001)
    with emu, emu.serve_in_thread():
        yield emu


@pytest.fixture
def served_env(served: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    monkeypatch.setenv("CODEGEN_BASE_URL", served.base_url)
    monkeypatch.setenv("CODEGEN_API_KEY", served.api_key)
    monkeypatch.setenv("CODEGEN_ORG_ID", str(served.org_id))
    return served


def _finished_run(emu: Emulator, prompt: str) -> int:
    run_id = int(emu.seed_run(prompt)["id"])
    emu.advance(120)
    return run_id


def test_runs_list_get_logs_resume(
    capsys: pytest.CaptureFixture[str], served_env: Emulator
) -> None:
    run_id = _finished_run(served_env, "Seeded work")
    code, runs = cli_json(capsys, "runs", "list", "--limit", "1")
    assert (code, [run["id"] for run in runs]) == (OK, [run_id])

    code, run = cli_json(capsys, "runs", "get", str(run_id))
    assert (code, run["id"], run["status"]) == (OK, run_id, "COMPLETE")
    code, out, _ = cli(capsys, "runs", "get", str(run_id))
    assert f"run:     {run_id}" in out

    code, logs = cli_json(capsys, "runs", "logs", str(run_id))
    assert code == OK
    assert logs
    assert {entry["agent_run_id"] for entry in logs} == {run_id}
    code, out, _ = cli(capsys, "runs", "logs", str(run_id), "--follow")
    assert code == OK
    assert "PLAN_EVALUATION" in out

    code, resumed = cli_json(capsys, "runs", "resume", str(run_id), "And the tests too")
    assert (code, resumed["id"]) == (OK, run_id)


def test_api_errors_exit_3_with_one_line(
    capsys: pytest.CaptureFixture[str], served_env: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = cli(capsys, "runs", "get", "999999")
    assert (code, out) == (API_ERROR, "")
    assert err.startswith("error: run 999999 not found: 404")
    assert err.count("\n") == 1  # one line, no hint
    monkeypatch.setenv("CODEGEN_API_KEY", "wrong-key-0000")
    code, out, err = cli(capsys, "whoami")
    assert (code, out) == (API_ERROR, "")
    assert err.startswith("error: AuthenticationError: 401")
    assert "hint: the API refused the key" in err
    assert "Traceback" not in err


def test_missing_key_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "whoami")
    assert code == API_ERROR
    assert err.startswith("error: api_key is not set; looked in: --api-key, env CODEGEN_API_KEY")
    assert "hint: no account needed to try it: add --emulator" in err
    assert "https://codegen.com/token" in err


# -- usage --------------------------------------------------------------------------------


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "run")[0] == USAGE
    assert cli(capsys, "run", "   ")[0] == USAGE
    assert cli(capsys, "no-such-command")[0] == USAGE
    assert cli(capsys, "batch", "x", "--max-concurrency", "0")[0] == USAGE
    code, _, err = cli(capsys, "--emulator", "--api-key", "k", "orgs")
    assert code == USAGE
    assert "--emulator cannot be combined" in err
    assert cli(capsys, *FAST, "run", "x", "--no-wait", "--follow")[0] == USAGE


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--version")
    assert (code, out.strip()) == (OK, "codegen-async 0.1.0")
    code, out, _ = cli(capsys, "--help")
    assert code == OK
    assert "exit codes:" in out
    assert "130" in out


def test_global_options_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "orgs", "--emulator", "--json")
    assert code == OK
    assert json.loads(out)[0]["id"] == 1


def test_emulator_command_needs_uvicorn(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a)
    )
    code, _, err = cli(capsys, "emulator")
    assert code == API_ERROR
    assert err == "error: the emulator command needs uvicorn: pip install 'codegen-async[serve]'\n"


# -- in an event loop of either backend ---------------------------------------------------


@pytest.mark.anyio
async def test_execute_runs_under_both_backends() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    args = build_parser().parse_args([*FAST, "--json", "run", "Hello"])
    code = await execute(args, Output(json_mode=True, stdout=stdout, stderr=stderr), Created())
    assert code == OK
    assert json.loads(stdout.getvalue())["status"] == "COMPLETE"


def test_plain_table_when_rich_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("codegen_async.cli._output.rich_available", lambda: False)
    out = Output(json_mode=False, stdout=Terminal(), stderr=Terminal())
    out.table(["A", "LONGER"], [["1", "x"], ["22", "y"]])
    assert out.stdout.getvalue() == "A   LONGER\n1   x\n22  y\n"  # type: ignore[attr-defined]


# -- subprocesses -------------------------------------------------------------------------


def test_python_m_and_lazy_import() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "codegen_async", *FAST, "--json", "run", "Add type hints"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == OK, result.stderr
    assert json.loads(result.stdout)["status"] == "COMPLETE"
    # httpx itself imports rich when its own CLI's dependencies (click, pygments) are
    # installed, so rich is blocked here: the core must import without it, and lazily.
    probe = (
        "import sys; sys.modules['rich'] = None; import codegen_async; "
        "print(*(name in sys.modules for name in ('codegen_async.cli', 'codegen_async.testing')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_a_batch_prints_the_created_runs() -> None:
    # A slow emulator (real time: runs take 20-60 s) so the batch is mid-flight.
    argv = ["--emulator", "--emulator-time-scale", "1", "batch", "-f", "-"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "codegen_async", *argv],
        env=subprocess_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None
        assert proc.stderr is not None
        proc.stdin.write("first\nsecond\n")
        proc.stdin.close()
        deadline = time.monotonic() + 20
        seen = read_until(proc.stderr, "[2/2] run", deadline)
        assert "[1/2] run" in seen
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
        assert proc.stdout is not None
        stdout, rest = proc.stdout.read(), proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(timeout=5)
    assert code == INTERRUPTED
    assert "Traceback" not in rest
    assert "runs created, still running on the server: 1001, 1002" in rest
    assert stdout == ""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")
def test_progress_is_a_live_table_in_a_terminal(tmp_path: Path) -> None:
    pytest.importorskip("rich")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Bump the version\nFix the docs\n")
    code, screen = in_terminal(tmp_path, *FAST, "batch", "--file", str(prompts), columns=120)
    assert code == OK, screen
    assert "ELAPSED" in screen  # the live table's header
    assert "2 runs: 2 complete" in screen  # its caption, the totals
    assert "\x1b[" in screen  # drawn with terminal control sequences
    assert "─" in screen or "━" in screen  # rich's box lines: the result table too


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_emulator_command_serves_until_ctrl_c() -> None:
    pytest.importorskip("uvicorn")
    proc = subprocess.Popen(
        [sys.executable, "-m", "codegen_async", "emulator", "--port", "0"],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        announced = read_until(proc.stdout, "CODEGEN_ORG_ID", time.monotonic() + 20)
        env = dict(line.removeprefix("export ").split("=", 1) for line in announced.splitlines())
        assert env["CODEGEN_BASE_URL"].startswith("http://127.0.0.1:")
        response = httpx.get(
            f"{env['CODEGEN_BASE_URL']}/v1/users/me",
            headers={"Authorization": f"Bearer {env['CODEGEN_API_KEY']}"},
            timeout=10,
        )
        assert response.status_code == 200
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
        proc.wait(timeout=5)
    assert proc.returncode == OK
    assert "Traceback" not in err


def test_ctrl_c_names_creates_of_unknown_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import datetime, timezone

    from codegen_async import IDEMPOTENCY_METADATA_KEY, UnconfirmedCreate
    from codegen_async.cli import _report

    created = Created()
    created.add(1001)
    created.unconfirmed = [UnconfirmedCreate("k-123", datetime.now(timezone.utc))]
    assert _report(KeyboardInterrupt(), Output(json_mode=False), created) == INTERRUPTED
    err = capsys.readouterr().err
    assert "still running on the server: 1001" in err
    assert f"creates of unknown outcome (metadata {IDEMPOTENCY_METADATA_KEY}): k-123" in err
