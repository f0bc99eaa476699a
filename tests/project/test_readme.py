"""Every Python block of the README runs, as written, against a served Emulator.

Each block is a complete program. It runs in its own interpreter with the environment a
user would have (`CODEGEN_API_KEY`, `CODEGEN_BASE_URL`, `CODEGEN_ORG_ID`) pointing at an
Emulator served on 127.0.0.1; a block that defines pytest tests is run by pytest.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from codegen_async.testing import Emulator
from codegen_async.testing._serve import serve_app_in_thread

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[str]:
    return BLOCK.findall(README.read_text())


def test_the_readme_has_python_blocks() -> None:
    assert len(blocks()) >= 8


@pytest.fixture(scope="module")
def served_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    emu = Emulator(time_scale=0.0005, seed=5)
    home = tmp_path_factory.mktemp("home")
    with serve_app_in_thread(emu.wire_app, port=0) as base_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODEGEN_")}
        env.update(
            {
                "CODEGEN_API_KEY": emu.api_key,
                "CODEGEN_BASE_URL": base_url,
                "CODEGEN_ORG_ID": str(emu.org_id),
                "HOME": str(home),
                "PYTHONPATH": str(ROOT),
            }
        )
        yield env


def _command(code: str, path: Path) -> list[str]:
    if re.search(r"^(async )?def test_", code, re.M):
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)]
    return [sys.executable, str(path)]


@pytest.fixture(scope="module")
def outcomes(
    served_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[int, tuple[int, str]]:
    """Run every block at once (most of their time is spent waiting on runs)."""
    folder = tmp_path_factory.mktemp("readme")
    running = {}
    for index, code in enumerate(blocks()):
        path = folder / f"test_readme_block_{index}.py"
        path.write_text(code)
        running[index] = subprocess.Popen(
            _command(code, path),
            env=served_env,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    results = {}
    for index, process in running.items():
        try:
            output, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        results[index] = (process.returncode, output)
    return results


@pytest.mark.parametrize("index", range(len(blocks())))
def test_readme_block_runs(index: int, outcomes: dict[int, tuple[int, str]]) -> None:
    code, (status, output) = blocks()[index], outcomes[index]
    assert status == 0, f"README block {index} failed:\n{code}\n--- output ---\n{output}"


# -- the command line section: every `codegen-async` line of its sh blocks ------------------

SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
# Lines of the section not run against the emulator, and why.
NOT_RUN = {
    "codegen-async runs get 1234": "run 1234 is an id on the real API; the emulator's lines "
    "above show `runs get` on a run it has",
    "codegen-async runs logs 1234 --follow": "as above (`runs logs` is run on run 1001 above)",
    "codegen-async emulator --port 8765": "serves until Ctrl-C; test_cli.py serves and stops it",
}
# Lines run as written, without --emulator: they need no key.
AS_WRITTEN = ("codegen-async curl runs get 1234",)


def cli_lines() -> list[str]:
    text = README.read_text()
    start = text.index("## Command line\n")
    section = text[start : text.index("\n## ", start + 1)]
    lines = [line for block in SH_BLOCK.findall(section) for line in block.splitlines()]
    return [line for line in lines if line.startswith("codegen-async")]


def _argv(line: str) -> list[str] | None:
    """The arguments the test runs a README line with (None: not run)."""
    words = shlex.split(line, comments=True)
    command = " ".join(words)
    if command in NOT_RUN:
        return None
    argv = words[1:]
    if command in AS_WRITTEN or {"--emulator", "--emulator-reset"} & set(argv):
        return argv
    return ["--emulator", *argv]


def test_the_cli_section_is_run_line_by_line(tmp_path: Path) -> None:
    lines = cli_lines()
    assert len(lines) >= 20
    commands = {" ".join(shlex.split(line, comments=True)) for line in lines}
    assert set(NOT_RUN) <= commands, "NOT_RUN names a line the README no longer has"
    (tmp_path / "prompts.txt").write_text("Fix the typos in README.md\nBump the version\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEGEN_", "XDG_"))}
    env.update(
        HOME=str(tmp_path),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PYTHONPATH=str(ROOT),
        CODEGEN_EMULATOR_TIME_SCALE="0.004",
    )
    for line in lines:
        argv = _argv(line)
        if argv is None:
            continue
        result = subprocess.run(
            [sys.executable, "-m", "codegen_async", *argv],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, f"{line}\n--- stdout ---\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
