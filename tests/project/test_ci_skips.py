"""Issue 21.10: the test command hides nothing. Under `CI=true` a skip that is not by
design fails the run (tests/conftest.py), and `nox` reports which Pythons ran the tests
(the `test_pythons` session), failing under CI when one did not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE_SKIP = """
import pytest

pytest.importorskip("no_such_module_for_a_module_skip")
"""
CASES = """
import pytest

def test_passes():
    pass

def test_by_design():
    pytest.skip("set CODEGEN_SOAK=1 to run the soak")

def test_hidden():
    pytest.importorskip("no_such_module_anywhere")
"""


def _env(ci: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(ROOT)  # the copied conftest imports the package (its client factory)
    if ci is not None:
        env["CI"] = ci
    return env


def _pytest(folder: Path, ci: str | None, source: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "tests" / "conftest.py", folder / "conftest.py")
    (folder / "test_cases.py").write_text(source)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
    ]
    return subprocess.run(
        [*command, "--rootdir", str(folder), str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(ci),
        cwd=folder,
    )


def test_outside_ci_a_skip_is_listed_not_failed(tmp_path: Path) -> None:
    done = _pytest(tmp_path, None, CASES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 2 skipped" in done.stdout
    assert "could not import 'no_such_module_anywhere'" in done.stdout  # -rs lists it


@pytest.mark.parametrize("ci", ["true", "1"])
def test_under_ci_a_skip_not_by_design_fails(tmp_path: Path, ci: str) -> None:
    done = _pytest(tmp_path, ci, CASES)
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "skipped under CI=true: could not import 'no_such_module_anywhere'" in out
    assert "1 failed, 1 passed, 1 skipped" in out  # the soak's skip is by design
    module = _pytest(tmp_path, ci, MODULE_SKIP)  # a whole module skipped when collected
    assert module.returncode != 0, module.stdout
    assert "skipped under CI=true: could not import 'no_such_module_for_a_module_skip'" in (
        module.stdout
    )


def _nox(ci: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(ROOT / "noxfile.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(ci),
        cwd=ROOT,
    )


def test_nox_reports_the_pythons_that_did_not_run_the_tests(tmp_path: Path) -> None:
    envdir = ("--envdir", str(tmp_path / "nox"))
    quiet = _nox(None, "-s", "test_pythons", *envdir)
    assert quiet.returncode == 0, quiet.stderr
    assert "tests ran on Python: none" in quiet.stderr
    assert "tests did NOT run on Python: 3.10, 3.11, 3.12, 3.13" in quiet.stderr
    strict = _nox("true", "-s", "test_pythons", *envdir)
    assert strict.returncode == 1, strict.stderr
    assert "CI=true needs all of 3.10, 3.11, 3.12, 3.13" in strict.stderr


def test_nox_fails_on_a_missing_interpreter_only_under_ci() -> None:
    code = (
        "import runpy, nox; runpy.run_path('noxfile.py'); "
        "print(nox.options.error_on_missing_interpreters, 'rich>=13' in "
        "runpy.run_path('noxfile.py')['TEST_DEPS'])"
    )
    for ci, expected in ((None, "False True"), ("true", "True True")):
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env=_env(ci),
            cwd=ROOT,
        )
        assert done.stdout.split() == expected.split(), done.stderr
