"""Every Python and shell block of the README and of the pages under docs/ runs as written.

Python: each block is a complete program. It runs in its own interpreter and its own
folder, with the environment a user would have after `codegen-async emulator` (the
variables it prints: `CODEGEN_API_KEY`, `CODEGEN_BASE_URL`, `CODEGEN_ORG_ID`) pointing at
an Emulator served on 127.0.0.1; a block that defines pytest tests is run by pytest.

Shell: every line of every ```sh block is either run or named in NOT_RUN with the reason.
A `codegen-async` line runs against the emulator (`--emulator` is added unless the line
has it, or the line needs no key: AS_WRITTEN); any other line must be in NOT_RUN.

A whole block opts out with an HTML comment on the line before its fence, stating why:
`<!-- not run: the reason -->` (invisible on the site). Pages included with
`--8<-- "FILE"` (the changelog, ARCHITECTURE.md) are the repository's own files, not
examples: their indented excerpts of the package's source are not programs.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

from codegen_async.testing import Emulator
from codegen_async.testing._serve import serve_app_in_thread

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(python|sh)(?: [^\n]*)?\n(.*?)^```", re.S | re.M)  # attributes allowed
PARALLEL = 8
BLOCK_TIMEOUT = 120
OPT_OUT = re.compile(r"<!-- not run: (.+?) -->\n\Z")


class Block(NamedTuple):
    page: str  # relative to the repository root
    line: int  # of the opening fence, 1-based
    language: str
    code: str

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def all_blocks() -> tuple[list[Block], dict[str, str]]:
    """Every block that runs, and the ones opted out (name: reason)."""
    runs, skipped = [], {}
    for path in pages():
        text = path.read_text()
        for match in FENCE.finditer(text):
            block = Block(
                str(path.relative_to(ROOT)),
                text.count("\n", 0, match.start()) + 1,
                match.group(1),
                match.group(2),
            )
            opt_out = OPT_OUT.search(text, 0, match.start())
            if opt_out:
                skipped[block.name] = opt_out.group(1)
            else:
                runs.append(block)
    return runs, skipped


BLOCKS, SKIPPED = all_blocks()
PYTHON = [b for b in BLOCKS if b.language == "python"]


def test_the_docs_have_blocks_on_every_guide_page() -> None:
    assert len(PYTHON) >= 20
    assert all(reason.strip() for reason in SKIPPED.values())
    with_python = {b.page for b in PYTHON}
    assert {"README.md", "docs/guide/getting-started.md", "docs/guide/recipes.md"} <= with_python


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


def _run_block(block: Block, folder: Path, env: dict[str, str]) -> tuple[int, str]:
    path = folder / "test_docs_block.py"
    path.write_text(block.code)
    try:
        done = subprocess.run(
            _command(block.code, path),
            env=env,
            cwd=folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=BLOCK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:  # the process is killed by then
        output = exc.output if isinstance(exc.output, str) else ""
        return -1, f"{output}\n(still running after {BLOCK_TIMEOUT} s: killed)"
    return done.returncode, done.stdout


@pytest.fixture(scope="module")
def outcomes(
    served_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[int, str]]:
    """Run the Python blocks PARALLEL at a time (most of their time is waiting on runs)."""
    folders = [tmp_path_factory.mktemp(f"block{i}") for i in range(len(PYTHON))]
    with ThreadPoolExecutor(PARALLEL) as pool:
        results = pool.map(_run_block, PYTHON, folders, [served_env] * len(PYTHON))
        return {block.name: result for block, result in zip(PYTHON, results, strict=True)}


# The first test waits for every block: its timeout covers them all.
@pytest.mark.timeout(BLOCK_TIMEOUT * 8)
@pytest.mark.parametrize("block", PYTHON, ids=[b.name for b in PYTHON])
def test_python_block_runs(block: Block, outcomes: dict[str, tuple[int, str]]) -> None:
    status, output = outcomes[block.name]
    assert status == 0, f"{block.name} failed:\n{block.code}\n--- output ---\n{output}"


# -- shell blocks: every line run or named here ------------------------------------------

# Lines not run by this test, and why (as written in the docs, comments dropped).
_NOT_RUN = {
    "codegen-async runs get 1234": "run 1234 is an id on the real API; the emulator's lines "
    "show `runs get` on a run it has",
    "codegen-async runs logs 1234 --follow": "as above (`runs logs` is run on run 1001)",
    "codegen-async emulator --port 8765": "serves until Ctrl-C; tests/cli serves and stops it",
    "codegen-async emulator": "serves until Ctrl-C; tests/cli/test_cli_recipes.py serves it, "
    "exports what it prints and runs the cli-notes page against it",
    "codegen-async --emulator curl runs list | sh": "a pipe into sh against a served emulator: "
    "tests/cli/test_cli_recipes.py runs it so",
    "python3 -m venv .venv && .venv/bin/pip install -e '.[cli]' && .venv/bin/codegen-async "
    '--emulator run "Add type hints to utils.py"': "the main job: `nox -s package` runs this "
    "line verbatim in a copy of the repository",
    "python3 -m venv .venv && .venv/bin/pip install nox && .venv/bin/nox": "the test "
    "command itself: .ci/run runs it verbatim",
    "python3 -m venv .venv && .venv/bin/pip install nox && .venv/bin/nox -s docs": "builds "
    "the site: the `docs` session of the default list, which .ci/run runs",
    "nox -s docs": "a nox session, in the default list that .ci/run runs",
    "nox -s browser": "a nox session, in the default list that .ci/run runs",
    "nox -s package": "a nox session, in the default list that .ci/run runs",
}
NOT_RUN = {shlex.join(shlex.split(line)): reason for line, reason in _NOT_RUN.items()}
# `pip install` lines: each extra they name must exist (checked below), not installed here.
PIP_INSTALL = re.compile(r"^pip install '?codegen-async(\[(\w+)\])?'?$")
# Lines run as written, without --emulator: they need no key.
AS_WRITTEN = ("codegen-async curl runs get 1234",)


def shell_lines() -> list[tuple[str, str]]:
    """(block name, command) for every command line of every sh block."""
    lines = []
    for block in BLOCKS:
        if block.language != "sh":
            continue
        for line in block.code.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                lines.append((block.name, shlex.join(words)))
    return lines


def _argv(command: str) -> list[str] | None:
    """The arguments the test runs a `codegen-async` line with (None: not run)."""
    if command in NOT_RUN:
        return None
    argv = shlex.split(command)[1:]
    if command in AS_WRITTEN or {"--emulator", "--emulator-reset"} & set(argv):
        return argv
    return ["--emulator", *argv]


def test_every_shell_line_is_run_or_says_why_not() -> None:
    commands = [command for _, command in shell_lines()]
    assert set(NOT_RUN) <= set(commands), (
        f"NOT_RUN names lines the docs no longer have: {set(NOT_RUN) - set(commands)}"
    )
    unaccounted = [
        (name, command)
        for name, command in shell_lines()
        if not command.startswith("codegen-async ")
        and command not in NOT_RUN
        and not PIP_INSTALL.match(command)
    ]
    assert not unaccounted, f"shell lines neither run nor in NOT_RUN: {unaccounted}"


def test_install_lines_name_real_extras() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()  # no tomllib on 3.10
    section = pyproject.split("[project.optional-dependencies]\n")[1].split("\n[")[0]
    extras = set(re.findall(r"^(\w+) = \[", section, re.M))
    named = [
        match.group(2)
        for _, command in shell_lines()
        if (match := PIP_INSTALL.match(command)) and match.group(2)
    ]
    assert {"cli", "serve", "otel", "redis"} <= set(named)
    assert set(named) <= extras, set(named) - extras


def test_every_codegen_async_line_runs(tmp_path: Path) -> None:
    lines = [(n, c) for n, c in shell_lines() if c.startswith("codegen-async ")]
    assert len(lines) >= 20
    (tmp_path / "prompts.txt").write_text("Fix the typos in README.md\nBump the version\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODEGEN_", "XDG_"))}
    env.update(
        HOME=str(tmp_path),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        PYTHONPATH=str(ROOT),
        CODEGEN_EMULATOR_TIME_SCALE="0.004",
    )
    for name, command in lines:
        argv = _argv(command)
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
        assert result.returncode == 0, (
            f"{name}: {command}\n--- stdout ---\n{result.stdout}\n{result.stderr}"
        )
        assert "Traceback" not in result.stderr
