"""The command line as people use it: in a real pseudo-terminal (rich tables and live
progress), with text that looks like markup, ANSI escapes and wide characters; the
emulator's state kept between commands; errors, --json for machines, Ctrl-C, help.

Subprocesses cost ~0.3 s each, so each test batches several checks per process and
in-process `main()` calls where a terminal is not the point.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codegen_async.cli import (
    API_ERROR,
    INTERNAL,
    INTERRUPTED,
    OK,
    RUN_FAILED,
    USAGE,
    _commands,
)
from codegen_async.cli._args import build_parser
from codegen_async.cli._emulated import state_path
from codegen_async.testing import Emulator
from codegen_async.testing._persist import dump, load

from .._terminal import cli, env_for, in_terminal, read_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")

# Markup-looking text, an ANSI escape, wide characters and an emoji name.
TRICKY = "Fix the [/] parser [bold]bug[/bold] \x1b[31mred\x1b[0m 日本語 :smile:"
SHOWN = "Fix the [/] parser [bold]bug[/bold] \\x1b[31mred\\x1b[0m 日本語 :smile:"


# -- text is text, in a real terminal ------------------------------------------------------


def test_markup_escapes_and_wide_text_in_a_terminal(home: Path) -> None:
    pytest.importorskip("rich")
    code, screen = in_terminal(home, "--emulator", "run", TRICKY)
    assert code == OK, screen
    assert "Traceback" not in screen
    assert "run:     1001" in screen  # the created run's id is printed
    assert SHOWN in screen  # brackets, escapes and emoji names as typed
    assert "\x1b[31mred" not in screen  # the prompt's escape never reaches the terminal
    assert "ELAPSED" in screen  # the live progress table was drawn
    # A run whose summary holds `[/]` does not break `runs list`; `[bold]` stays in
    # the table; the wide characters keep the columns aligned.
    code, screen = in_terminal(home, "--emulator", "runs", "list")
    assert code == OK, screen
    assert "Completed: Fix the [/] parser [bold]bug[/bold]" in screen
    assert "CREATED (EMULATOR CLOCK)" in screen
    code, screen = in_terminal(home, "--emulator", "multi-run", TRICKY, "--concurrency", "2")
    assert code == OK, screen
    assert "candidates done; synthesizing their 2 answers" in screen
    assert "3 runs: 3 complete" in screen  # the synthesis counted
    assert "1004 (synthesis)" in screen
    assert "candidate 1: Fix the [/] parser [bold]bug[/bold]" in screen


def test_plain_tables_align_wide_characters(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "--emulator", "-q", "run", "日本語のテスト", "--no-wait")[0] == OK
    assert cli(capsys, "--emulator", "-q", "run", "ascii only", "--no-wait")[0] == OK
    code, out, _ = cli(capsys, "--emulator", "runs", "list")
    assert code == OK
    header, *rows = out.splitlines()
    source = header.index("SOURCE")
    assert [row[source:].split()[0] for row in rows] == ["API", "API"]  # ascii rows
    # The wide row is measured in cells: its SOURCE column starts at the same cell.
    from codegen_async.cli._output import cell_width

    for row in rows:
        at = row.index("API")
        assert cell_width(row[:at]) == source


# -- errors ----------------------------------------------------------------------------------


def test_an_unexpected_error_is_one_line_and_a_hint(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(session: object) -> int:
        raise RuntimeError("boom [/] \x1b[2J")

    monkeypatch.setitem(_commands.HANDLERS, "orgs", broken)
    code, out, err = cli(capsys, "--emulator", "orgs")
    assert (code, out) == (INTERNAL, "")
    assert err.splitlines() == [
        "error: unexpected RuntimeError: boom [/] \\x1b[2J",
        "hint: this is a bug in codegen-async: run again with --debug to see the traceback, "
        "and report it",
    ]
    code, _, err = cli(capsys, "--emulator", "orgs", "--debug")
    assert code == INTERNAL
    assert err.startswith("Traceback (most recent call last)")
    # (the library's logging is left as it is: configured once per process)
    monkeypatch.setattr("codegen_async._logging._configured", True)
    monkeypatch.setenv("CODEGEN_LOG", "debug")
    assert "Traceback" in cli(capsys, "--emulator", "orgs")[2]
    monkeypatch.delenv("CODEGEN_LOG")
    code, out, err = cli(capsys, "--emulator", "--json", "orgs")
    assert (code, out) == (INTERNAL, "")
    problem = json.loads(err)
    assert problem["type"] == "RuntimeError"
    assert problem["message"].startswith("unexpected RuntimeError: boom [/]")


def test_errors_under_json_are_one_object_on_stderr(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "--json", "--emulator", "runs", "get", "5")
    assert (code, out) == (API_ERROR, "")
    problem = json.loads(err)
    assert problem["type"] == "NotFoundError"
    assert problem["status"] == 404
    assert problem["request_id"].startswith("emu-")
    assert problem["message"].startswith("run 5 not found: 404")
    code, out, err = cli(capsys, "--json", "runs", "get", "0")
    assert (code, out) == (USAGE, "")
    problem = json.loads(err)
    assert (problem["type"], problem["status"]) == ("UsageError", None)
    assert "must be a whole number > 0, got 0" in problem["message"]
    code, out, err = cli(capsys, "--json", "whoami")  # no key
    assert code == API_ERROR
    problem = json.loads(err)
    assert problem["type"] == "ConfigurationError"
    assert "--emulator" in problem["hint"]


def test_messages_say_what_happened(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = cli(capsys, "--emulator", "run", "x", "--timeout", "0")
    assert code == USAGE
    assert "--timeout: must be a number > 0 (seconds), got 0" in err
    assert err.startswith("usage: codegen-async run")
    code, out, _ = cli(capsys, "--emulator", "runs", "list", "--source-type", "api")
    assert (code, out.split()) == (OK, ["ID", "STATUS", "CREATED", "(EMULATOR", "CLOCK)", "SOURCE",
                                        "SUMMARY"])  # fmt: skip
    code, _, err = cli(capsys, "--emulator", "runs", "list", "--source-type", "fax")
    assert code == USAGE
    assert "LOCAL, SLACK" in err
    code, _, err = cli(capsys, "--api-key", "", "whoami")
    assert (code, err.splitlines()[0]) == (API_ERROR, "error: --api-key is empty")
    monkeypatch.setenv("CODEGEN_MAX_RETRIES", "0")
    code, _, err = cli(capsys, "--base-url", "http://127.0.0.1:9", "--api-key", "k", "orgs")
    assert code == API_ERROR
    assert err.startswith("error: APIConnectionError")
    assert err.splitlines()[-1] == "hint: check the network, or --base-url / CODEGEN_BASE_URL"
    monkeypatch.delenv("CODEGEN_MAX_RETRIES")
    code, _, err = cli(capsys, "--emulator", "run", "x", "--repo-id", "999")
    assert code == API_ERROR
    assert err.startswith("error: repository 999 not found (see `codegen-async repos`): 404")
    # A timeout: "timed out (still running)", counted as such, exit 1.
    argv = ["--emulator", "--emulator-time-scale", "1", "batch", "Slow", "--timeout", "0.3"]
    code, out, err = cli(capsys, *argv)
    assert code == RUN_FAILED
    assert "timed out (still running)" in out
    assert "1 run: 1 timed out" in err
    assert "failed" not in err


def test_no_synthesis_when_fewer_than_two_answers(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--emulator",
        "--emulator-failure-rate",
        "1",
        "multi-run",
        "Doomed",
        "--concurrency",
        "2",
    ]
    code, out, err = cli(capsys, *argv)
    assert code == RUN_FAILED
    assert "synthesizing" not in err
    assert "2 runs: 2 failed" in err
    assert "no final answer: no candidate succeeded" in out


# -- the emulator across commands -------------------------------------------------------------


def test_emulator_state_is_kept_validated_and_reset(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "--emulator", "--json", "run", "Keep me", "--no-wait")
    assert code == OK
    run_id = json.loads(out)["id"]
    code, out, _ = cli(capsys, "--emulator", "--json", "runs", "get", str(run_id))
    assert (code, json.loads(out)["id"]) == (OK, run_id)
    code, out, _ = cli(capsys, "--emulator", "runs", "get", str(run_id))
    assert "(emulator clock)" in out
    path = state_path()
    assert path == home / "cache" / "codegen-async" / "emulator.json"
    path.write_text('{"format": 1, "clock": {"now": "soon"}}')
    code, _, err = cli(capsys, "--emulator", "runs", "list")
    assert code == API_ERROR
    assert f"error: the emulator state file {path} is not valid: state.clock.now" in err
    assert "hint: run with --emulator-reset" in err
    path.write_text("{not json")
    assert "is not valid JSON" in cli(capsys, "--emulator", "runs", "list")[2]
    code, _, err = cli(capsys, "--emulator-reset")
    assert (code, err) == (OK, f"emulator state cleared ({path})\n")
    code, out, _ = cli(capsys, "--emulator", "--json", "runs", "list")
    assert (code, json.loads(out)) == (OK, [])


def test_persist_round_trip_and_field_errors() -> None:
    with Emulator(time_scale=0.001) as first:
        created = first.seed_run("Saved", metadata={"k": "v"}, repo_id=501)
        first.advance(120)
        data = json.loads(json.dumps(dump(first)))
    with Emulator(time_scale=0.001) as second:
        load(second, data)
        (run,) = second.runs
        assert (run["id"], run["status"], run["metadata"]) == (
            created["id"],
            "COMPLETE",
            {"k": "v"},
        )
        assert second.seed_run("Next")["id"] == created["id"] + 1
    data["runs"][0]["legs"][0]["start"] = "soon"
    with (
        Emulator() as third,
        pytest.raises(ValueError, match=r"state\.runs\[0\]\.legs\[0\]\.start"),
    ):
        load(third, data)


# -- curl ------------------------------------------------------------------------------------


def test_curl_sends_nothing_and_needs_no_key(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEGEN_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    code, out, err = cli(capsys, "curl", "runs", "get", "5")
    assert (code, err) == (OK, "")
    assert '"http://127.0.0.1:9/v1/organizations/${CODEGEN_ORG_ID}/agent/run/5"' in out
    assert '"Authorization: Bearer $CODEGEN_API_KEY"' in out
    code, out, err = cli(capsys, "curl", "--show-key", "run", "it's $HOME [/]", "--repo-id", "3")
    assert code == OK
    assert err == "no API key configured: it is shown as $CODEGEN_API_KEY\n"
    # The shell expands the organization and keeps the prompt as typed.
    expanded = subprocess.run(
        ["sh", "-c", "printf '%s\\n' " + out.strip().removeprefix("curl ")],
        env={**os.environ, "CODEGEN_ORG_ID": "42", "CODEGEN_API_KEY": "k-1"},
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert "http://127.0.0.1:9/v1/organizations/42/agent/run" in expanded
    assert "Authorization: Bearer k-1" in expanded
    body = json.loads(expanded[expanded.index("--data-raw") + 1])
    assert body["prompt"] == "it's $HOME [/]"
    monkeypatch.setenv("CODEGEN_ORG_ID", "7")
    monkeypatch.setenv("CODEGEN_API_KEY", "real-key-1")
    code, out, _ = cli(capsys, "curl", "--show-key", "runs", "list")
    assert code == OK
    assert "'http://127.0.0.1:9/v1/organizations/7/agent/runs?" in out
    assert "'authorization: Bearer real-key-1'" in out


# -- --json for machines: NDJSON as logs arrive --------------------------------------------------


def test_follow_json_streams_ndjson_as_logs_arrive(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--emulator", "--emulator-time-scale", "0.1", "--json"]
    code, out, _ = cli(capsys, *argv, "run", "Stream me", "--no-wait")
    assert code == OK
    run_id = json.loads(out)["id"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "codegen_async", *argv, "runs", "logs", str(run_id), "--follow"],
        env=env_for(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        running_at_first_line = proc.poll() is None
        rest = [json.loads(line) for line in proc.stdout]
        assert proc.wait(timeout=30) == OK
    finally:
        proc.kill()
        proc.wait()
    assert running_at_first_line  # the line came while the run was still going
    entries = [first, *rest]
    assert {entry["agent_run_id"] for entry in entries} == {run_id}
    assert entries[-1]["message_type"] == "FINAL_ANSWER"


# -- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_during_the_synthesis_names_every_run(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Candidates take 1-3 s; the synthesis as long: it is mid-flight at the interrupt.
    argv = [
        "--emulator",
        "--emulator-time-scale",
        "0.05",
        "multi-run",
        "Why?",
        "--concurrency",
        "2",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "codegen_async", *argv],
        env=env_for(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        seen = read_until(proc.stderr, "started, waiting for it", time.monotonic() + 30)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
        rest = proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert "synthesizing their 2 answers" in seen
    assert code == INTERRUPTED
    assert "Traceback" not in rest
    line = rest.splitlines()[-1]
    assert line == (
        "interrupted; runs created, still running on the server: 1003; "
        "runs that finished: 1001, 1002"
    )
    # The state was saved on the way out: the next command finds the synthesis run.
    code, out, _ = cli(capsys, "--emulator", "--json", "runs", "get", "1003")
    assert (code, json.loads(out)["metadata"]["codegen_sdk_role"]) == (OK, "synthesis")


# -- help ------------------------------------------------------------------------------------


def _leaves(parser: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    import argparse

    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*path, name))


def test_help_teaches(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys)
    assert code == OK
    assert out.startswith("usage: codegen-async")
    assert "examples:" in out
    leaves = list(_leaves(build_parser()))
    assert len(leaves) >= 20
    for path, parser in leaves:
        described = [a for a in parser._actions if a.help and a.help != "==SUPPRESS=="]
        assert len(described) == len(parser._actions), f"{path}: an argument without help"
        if "curl" not in path:
            assert "examples:" in parser.format_help(), path
    emulator = cli(capsys, "emulator", "--help")[1]
    for absent in (
        "--api-key",
        "--base-url",
        "--org-id",
        "[--emulator]",
        "--emulator-reset",
        "--quiet",
    ):
        assert absent not in emulator
    curl = cli(capsys, "curl", "--help")[1]
    assert "without sending" in curl
    assert "examples:" in curl
    assert "without sending anything" in cli(capsys, "curl", "runs", "get", "--help")[1]


def test_ctrl_c_tells_finished_runs_from_running_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from codegen_async.cli import _report
    from codegen_async.cli._output import Output
    from codegen_async.cli._session import Created

    created = Created()
    created.add(1001)
    created.watch([1001, 1002, 1003])
    created.ended(1002)
    assert _report(KeyboardInterrupt(), Output(json_mode=False), created) == INTERRUPTED
    assert capsys.readouterr().err == (
        "interrupted; runs created, still running on the server: 1001, 1003; "
        "runs that finished: 1002\n"
    )
    assert _report(KeyboardInterrupt(), Output(json_mode=True), created) == INTERRUPTED
    problem = json.loads(capsys.readouterr().err)
    assert (problem["type"], problem["running"], problem["finished"]) == (
        "Interrupted",
        [1001, 1003],
        [1002],
    )


def test_batch_shows_the_repository_when_repos_differ(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "--emulator", "-q", "batch", "Bump", "--repo-id", "501",
                       "--repo-id", "502")  # fmt: skip
    assert code == OK
    header, *rows = out.splitlines()
    assert header.split() == ["#", "RUN", "REPO", "STATUS", "RESULT", "PROMPT"]
    assert [row.split()[2] for row in rows] == ["501", "502"]
    code, out, _ = cli(capsys, "--emulator", "-q", "batch", "Bump", "--repo-id", "501")
    assert "REPO" not in out.splitlines()[0]


def test_shlex_quoting_of_readme_examples_is_what_help_shows() -> None:
    # The examples in help are valid shell: each parses back to a known command.
    names = {"run", "runs", "orgs", "users", "repos", "integrations", "whoami", "multi-run",
             "batch", "emulator", "curl"}  # fmt: skip
    for _, parser in _leaves(build_parser()):
        for line in re.findall(r"^  (codegen-async .*)$", parser.epilog or "", re.M):
            words = [w for w in shlex.split(line, comments=True) if not w.startswith("-")]
            assert words[1] in names, line
