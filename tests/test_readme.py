"""Every Python block of the README runs, as written, against a served Emulator.

Each block is a complete program. It runs in its own interpreter with the environment a
user would have (`CODEGEN_API_KEY`, `CODEGEN_BASE_URL`, `CODEGEN_ORG_ID`) pointing at an
Emulator served on 127.0.0.1; a block that defines pytest tests is run by pytest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from codegen_async.testing import Emulator
from codegen_async.testing._serve import serve_app_in_thread

ROOT = Path(__file__).resolve().parent.parent
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
