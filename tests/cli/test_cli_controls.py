"""Server text can neither reorder nor restyle the terminal (issue 21.4): bidi controls
(U+202E and the rest) and C1 controls (U+009B CSI and the rest) in a prompt, and so in
the emulated run's summary, result and logs, are shown as visible escapes by every
command, in a real pseudo-terminal; `--json` (NDJSON too) escapes them, and the JSON
parses back to the same text."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen_async.cli import INTERNAL, OK, USAGE, _commands
from codegen_async.cli._output import json_text, safe

from .._terminal import cli, in_terminal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX pseudo-terminals")

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
C1 = "".join(chr(code) for code in range(0x80, 0xA0))
# Every character a terminal must never receive raw from server text.
NEVER_RAW = frozenset(BIDI + C1)

# A prompt (so the emulated run's summary, result and log thoughts) that, drawn raw,
# would flip the line (RLO), open a CSI sequence (U+009B) and isolate text (LRI..PDI).
HOSTILE = "\u202eevil\u202c \x9b31mred \u2066iso\u2069 \u061c\u200e\u200f mark"
# How a terminal shows it.
SHOWN = ("\\u202eevil\\u202c", "\\x9b31mred", "\\u2066iso\\u2069", "\\u061c\\u200e\\u200f")


def raw_controls(text: str) -> list[str]:
    return sorted({f"U+{ord(char):04X}" for char in text if char in NEVER_RAW})


def assert_neutralised(screen: str, *shown: str) -> None:
    assert raw_controls(screen) == [], screen
    for escaped in shown:
        assert escaped in screen, (escaped, screen)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home whose emulator holds one COMPLETE run (1001) of the hostile prompt."""
    home = tmp_path_factory.mktemp("hostile")
    code, screen = in_terminal(home, "--emulator", "-q", "run", HOSTILE)
    assert code == OK, screen
    return home


# -- in a real terminal -----------------------------------------------------------------------


def test_run_and_its_live_table(tmp_path: Path) -> None:
    pytest.importorskip("rich")
    code, screen = in_terminal(tmp_path, "--emulator", "run", HOSTILE)
    assert code == OK, screen
    assert "ELAPSED" in screen  # the live table drew the prompt's label
    assert "summary: Completed: \\u202eevil" in screen
    assert "Result for: \\u202eevil" in screen
    assert_neutralised(screen, *SHOWN)


def test_run_follow_prints_log_lines(tmp_path: Path) -> None:
    code, screen = in_terminal(tmp_path, "--emulator", "run", HOSTILE, "--follow")
    assert code == OK, screen
    assert "Plan for: \\u202eevil" in screen
    assert_neutralised(screen, *SHOWN)


def test_runs_list(finished: Path) -> None:
    code, screen = in_terminal(finished, "--emulator", "runs", "list")
    assert code == OK, screen
    assert "Completed: \\u202eevil" in screen
    assert_neutralised(screen, *SHOWN)


def test_runs_get(finished: Path) -> None:
    code, screen = in_terminal(finished, "--emulator", "runs", "get", "1001")
    assert code == OK, screen
    assert "Result for: \\u202eevil" in screen
    assert_neutralised(screen, *SHOWN)


def test_runs_logs(finished: Path) -> None:
    code, screen = in_terminal(finished, "--emulator", "runs", "logs", "1001")
    assert code == OK, screen
    assert "Plan for: \\u202eevil" in screen
    assert_neutralised(screen, *SHOWN)


def test_batch_with_its_live_table(tmp_path: Path) -> None:
    pytest.importorskip("rich")
    code, screen = in_terminal(tmp_path, "--emulator", "batch", HOSTILE)
    assert code == OK, screen
    assert "ELAPSED" in screen
    assert "Result for: \\u202eevil" in screen  # the outcomes table's RESULT column
    assert_neutralised(screen, *SHOWN)


def test_errors(tmp_path: Path) -> None:
    missing = tmp_path / f"{HOSTILE}.txt"
    code, screen = in_terminal(tmp_path, "--emulator", "batch", "--file", str(missing))
    assert code == USAGE, screen
    assert "error: cannot read prompts from" in screen
    assert_neutralised(screen, *SHOWN)


def test_debug_traceback(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(session: object) -> int:
        raise RuntimeError(HOSTILE)

    monkeypatch.setitem(_commands.HANDLERS, "orgs", broken)
    code, out, err = cli(capsys, "--emulator", "--debug", "orgs")
    assert (code, out) == (INTERNAL, "")
    assert "Traceback" in err
    assert_neutralised(err, *SHOWN)


# -- --json: escaped, and the same text once parsed ----------------------------------------


def _parsed(text: str) -> object:
    assert raw_controls(text) == [], text
    assert "\\u202e" in text
    assert "\\u009b" in text
    return json.loads(text)


def test_json_documents(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--emulator", "--json", "run", HOSTILE)
    assert code == OK
    run = _parsed(out)
    assert isinstance(run, dict)
    assert run["result"].startswith(f"Result for: {HOSTILE}")
    assert run["summary"] == f"Completed: {HOSTILE}"
    code, out, _ = cli(capsys, "--emulator", "--json", "runs", "get", "1001")
    assert code == OK
    assert _parsed(out) == run
    code, out, _ = cli(capsys, "--emulator", "--json", "runs", "list")
    assert code == OK
    assert _parsed(out) == [run]
    code, out, _ = cli(capsys, "--emulator", "--json", "runs", "logs", "1001")
    assert code == OK
    logs = _parsed(out)
    assert isinstance(logs, list)
    assert f"Plan for: {HOSTILE}" in [entry["thought"] for entry in logs]
    code, out, _ = cli(capsys, "--emulator", "--json", "batch", HOSTILE)
    assert code == OK
    (outcome,) = _parsed(out)  # type: ignore[misc]
    assert outcome["prompt"] == HOSTILE
    assert outcome["run"]["summary"] == f"Completed: {HOSTILE}"


def test_ndjson_lines(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "--emulator", "--json", "run", HOSTILE, "--follow")
    assert code == OK
    lines = out.splitlines()
    assert len(lines) > 2
    assert raw_controls(out) == []
    entries = [json.loads(line) for line in lines]
    thoughts = [entry["log"]["thought"] for entry in entries[:-1]]
    assert f"Plan for: {HOSTILE}" in thoughts
    assert entries[-1]["run"]["summary"] == f"Completed: {HOSTILE}"
    code, out, _ = cli(capsys, "--emulator", "--json", "runs", "logs", "1001", "--follow")
    assert code == OK
    assert raw_controls(out) == []
    thoughts = [json.loads(line)["thought"] for line in out.splitlines()]
    assert f"Plan for: {HOSTILE}" in thoughts


def test_json_error(home: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = str(tmp_path / f"{HOSTILE}.txt")
    code, out, err = cli(capsys, "--emulator", "--json", "batch", "--file", missing)
    assert (code, out) == (USAGE, "")
    error = _parsed(err)
    assert isinstance(error, dict)
    assert error["message"].startswith(f"cannot read prompts from {missing}: ")


# -- the rules themselves ------------------------------------------------------------------


@settings(deadline=None, max_examples=200)
@given(st.text(st.one_of(st.sampled_from(sorted(NEVER_RAW)), st.characters())))
def test_safe_and_json_text_for_any_text(text: str) -> None:
    shown = safe(text)
    assert not [c for c in shown if c in NEVER_RAW or (ord(c) < 0x20 and c not in "\n\t")]
    encoded = json_text({"v": text, "list": [text]}, indent=2)
    assert raw_controls(encoded) == []
    assert json.loads(encoded) == {"v": text, "list": [text]}


def test_every_bidi_and_c1_control_is_escaped() -> None:
    for char in NEVER_RAW:
        code = ord(char)
        assert safe(char) == (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
        assert json_text(char) == f'"\\u{code:04x}"'
    assert safe("日本語 → ok") == "日本語 → ok"  # other text stays as it is
    assert json_text("日本語") == '"日本語"'
