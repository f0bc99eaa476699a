"""The command line's part of the recipes (issue 21.9, 21.11): `codegen-async emulator`
prints sh `export` lines, and `codegen-async --emulator curl ...` prints a curl that
runs against that served emulator when followed as printed; the help names the real
emulator state path; `${CODEGEN_ORG_ID}` is spelled one way. The curl's variables come
from the library (`_curl`): the blocking client writes them the same way."""

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

import pytest

import codegen_sync
from codegen_async import AsyncCodegen
from codegen_async._curl import BASE_URL_PLACEHOLDER, ORG_ID_PLACEHOLDER
from codegen_async.cli import OK, main

from .._terminal import ROOT, env_for, read_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell")


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith("CODEGEN_") or name == "XDG_CACHE_HOME":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def codegen(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codegen_async", *argv],
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Served:
    """`codegen-async emulator` running: the lines it printed on stdout, what it said on
    stderr."""

    def __init__(self, home: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codegen_async", "emulator"],
            env=env_for(home),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        self.exports = read_until(self.proc.stdout, "CODEGEN_ORG_ID", deadline)
        self.said = read_until(self.proc.stderr, "(Ctrl-C to stop)", deadline)

    def stop(self) -> str:
        """Ctrl-C; the rest of what it said on stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        # Read through the streams already read from (communicate would skip what
        # their buffers hold).
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                self.said += stream.read() if stream is self.proc.stderr else ""
                stream.close()
        return self.said


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    pytest.importorskip("uvicorn")
    emulator = Served(tmp_path)
    try:
        yield emulator
    finally:
        emulator.stop()


def follow(exports: str, command: str, home: Path) -> str:
    """Run, in a fresh sh without any CODEGEN_* variable, the export lines and then
    `command`, both as printed; its stdout (the package importable, as if installed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEGEN_")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    return subprocess.run(
        ["sh", "-c", exports + command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def test_emulator_curl_runs_as_printed_against_the_served_emulator(
    served: Served, tmp_path: Path
) -> None:
    exports = served.exports
    lines = exports.splitlines()
    assert [line.split("=")[0] for line in lines] == [
        "export CODEGEN_BASE_URL",
        "export CODEGEN_API_KEY",
        "export CODEGEN_ORG_ID",
    ]
    created = codegen(tmp_path, "--emulator", "curl", "run", "Fix it's $HOME bug")
    assert created.returncode == OK, created.stderr
    assert "http://emulator.localhost" not in created.stdout  # no URL that cannot run
    assert "`codegen-async emulator`" in created.stderr  # how to get one that runs
    run = json.loads(follow(exports, created.stdout, tmp_path))
    assert run["status"] in ("PENDING", "ACTIVE", "RUNNING")
    assert isinstance(run["id"], int)
    shown = codegen(tmp_path, "--emulator", "curl", "runs", "get", str(run["id"]))
    assert shown.returncode == OK, shown.stderr
    again = json.loads(follow(exports, shown.stdout, tmp_path))
    assert again["id"] == run["id"]
    # --show-key writes the key the served emulator accepts.
    keyed = codegen(tmp_path, "--emulator", "curl", "--show-key", "whoami")
    assert "$CODEGEN_API_KEY" not in keyed.stdout
    me = json.loads(follow(exports, keyed.stdout, tmp_path))
    assert isinstance(me["id"], int)
    # The exports also point the command line itself at the served emulator.
    command = f"{shlex.quote(sys.executable)} -m codegen_async runs list --json"
    listed = follow(exports, command, tmp_path)
    assert [item["id"] for item in json.loads(listed)] == [run["id"]]
    said = served.stop()
    assert "Codegen emulator listening on http://127.0.0.1:" in said
    assert "run the export lines above" in said  # what to do with them


def test_help_names_the_real_state_path(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--help"]) == OK
    default = capsys.readouterr().out
    assert f"{home}/.cache/codegen-async/emulator.json" in " ".join(default.split())
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg"))
    assert main(["--help"]) == OK
    moved = " ".join(capsys.readouterr().out.split())
    assert f"{home}/xdg/codegen-async/emulator.json" in moved
    assert ".cache" not in moved


def test_the_organization_variable_is_spelled_one_way(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    every = ""
    for argv in (["curl", "--help"], ["curl", "runs", "get", "--help"]):
        assert main(argv) == OK
        every += capsys.readouterr().out
    assert main(["curl", "runs", "get", "5"]) == OK
    printed = capsys.readouterr().out
    assert "${CODEGEN_ORG_ID}" in printed
    assert "${CODEGEN_ORG_ID}" in every
    assert not re.search(r"\$CODEGEN_ORG_ID", every + printed)


@pytest.mark.anyio
async def test_the_async_client_writes_the_variables() -> None:
    async with AsyncCodegen(
        api_key="k-1", base_url=BASE_URL_PLACEHOLDER, org_id=ORG_ID_PLACEHOLDER
    ) as client:
        curl = await client.as_curl(lambda c: c.agent_runs.get(5))
    assert '"${CODEGEN_BASE_URL}/v1/organizations/${CODEGEN_ORG_ID}/agent/run/5"' in curl


def test_the_blocking_client_writes_the_variables() -> None:
    with codegen_sync.Codegen(
        api_key="k-1", base_url=BASE_URL_PLACEHOLDER, org_id=ORG_ID_PLACEHOLDER
    ) as client:
        curl = client.as_curl(lambda c: c.agent_runs.get(5))
    assert '"${CODEGEN_BASE_URL}/v1/organizations/${CODEGEN_ORG_ID}/agent/run/5"' in curl


def test_the_cli_notes_page_runs_as_written(served: Served, tmp_path: Path) -> None:
    """docs/guide/cli-notes.md: its Python block and its `| sh` curl, after the exports
    `codegen-async emulator` printed (`codegen-async` as `python -m codegen_async`)."""
    page = (ROOT / "docs" / "guide" / "cli-notes.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"^```python\n(.*?)^```", page, re.S | re.M)
    script = tmp_path / "recipe.py"
    script.write_text(block, encoding="utf-8")
    python = shlex.quote(sys.executable)
    printed = follow(served.exports, f"{python} {shlex.quote(str(script))}", tmp_path)
    assert printed.startswith("COMPLETE Result for: Add type hints to utils.py")
    (line,) = [line for line in page.splitlines() if line.endswith("| sh")]
    command = line.replace("codegen-async", f"{python} -m codegen_async", 1)
    listed = json.loads(follow(served.exports, command, tmp_path))
    assert [item["summary"] for item in listed["items"]] == [
        "Completed: Add type hints to utils.py"
    ]
