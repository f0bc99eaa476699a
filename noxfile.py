"""Project tasks. `nox` runs the default set (what CI runs); `nox -s NAME` runs one.

Interpreters that are not installed are skipped, so `nox` works on a machine with one
Python; CI exposes 3.10-3.13 through pyenv and runs them all. The last session,
`test_pythons`, prints which Pythons ran the tests and which did not. Under `CI=true` a
missing interpreter fails the run, and so does any skipped test whose skip is not by
design (`BY_DESIGN` in tests/conftest.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import nox


def _ci() -> bool:
    """CI=true (or 1/yes): what was skipped fails the run (tests/conftest.py agrees)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


nox.options.sessions = [
    "lint",
    "types",
    "tests",
    "tests_httpx2",
    "tests_aiohttp",
    "contract",
    "soak",
    "docs",
    "browser",
    "package",
    "test_pythons",
]
nox.options.error_on_missing_interpreters = _ci()
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
# Each Python runs the whole suite once, on one HTTP stack: httpx on 3.10 (httpx2 needs
# 3.11) and 3.11, httpx2 on 3.12 and 3.13 (both stacks fully, in the CI time budget).
PYTHONS_HTTPX = ["3.10", "3.11"]
PYTHONS_HTTPX2 = ["3.12", "3.13"]
# One ruff for everyone: the generated facade is formatted by it and compared byte for byte.
RUFF = "ruff==0.17.6"
TEST_DEPS = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    "trio>=0.25",
    "hypothesis>=6.100",
    "uvicorn>=0.30",
    "fastapi>=0.110",  # the README's FastAPI recipe runs in the tests
    "pytest-xdist>=3.5",  # most tests wait on emulated time: two workers halve the wall
    "opentelemetry-sdk>=1.20",  # tracing tests (in-memory exporters; pulls opentelemetry-api)
    "redis>=5",  # shared rate limits against a real redis-server (tests/http/test_stores.py)
    "celery[redis]>=5.3",  # codegen_sync.celery against real workers (tests/celery/)
    "aiohttp>=3.10",  # the aiohttp transport's own tests (tests/http/test_stack.py) and its docs
    "rich>=13",  # the CLI's tables and live display (tests/cli: the pty tests need it)
    "tomli>=2; python_version < '3.11'",  # tests/project/test_repository.py reads TOML
    "nox>=2024.4",  # tests/project/test_ci_skips.py runs the `test_pythons` report
]
# The Pythons whose `tests` session ran in this nox process (`test_pythons` reports them).
_TESTED: list[str] = []


@nox.session(python=PYTHONS_HTTPX)
def tests(session: nox.Session) -> None:
    """The test suite on httpx, every async test under asyncio and trio (`-rs`: every
    skip and its reason is listed)."""
    _TESTED.append(str(session.python))
    session.notify("test_pythons")  # the report comes last, however the run was chosen
    session.install("-e", ".", *TEST_DEPS)
    args = session.posargs or ["-n", "2"]
    # The browser check needs mkdocs, playwright and Chromium: its own session runs it.
    ignore = ["--ignore=tests/api/test_contract.py", "--ignore=tests/docs/test_browser.py"]
    env = {"CODEGEN_EXPECT_STACK": "httpx"}  # tests/http/test_stack.py checks it
    session.run("pytest", *ignore, "-rs", *args, env=env)


@nox.session(python=PYTHONS_HTTPX2)
def tests_httpx2(session: nox.Session) -> None:
    """The whole suite with httpx2 installed, which the SDK then picks."""
    _TESTED.append(str(session.python))
    session.notify("test_pythons")
    session.install("-e", ".[httpx2]", *TEST_DEPS)
    args = session.posargs or ["-n", "2"]
    ignore = ["--ignore=tests/api/test_contract.py", "--ignore=tests/docs/test_browser.py"]
    env = {"CODEGEN_EXPECT_STACK": "httpx2"}
    session.run("pytest", *ignore, "-rs", *args, env=env)


@nox.session(python="3.11")
def tests_aiohttp(session: nox.Session) -> None:
    """The HTTP tests and a served walk on the aiohttp transport (asyncio only: aiohttp
    does not run under trio, which tests/http/test_stack.py checks says so)."""
    session.install("-e", ".[aiohttp]", *TEST_DEPS)
    env = {"CODEGEN_HTTP_STACK": "aiohttp", "CODEGEN_EXPECT_STACK": "aiohttp"}
    args = session.posargs or ["-n", "2"]
    session.run("pytest", "tests/http", "-rs", "-k", "not trio or test_the_sdk_runs_on_aiohttp",
                *args, env=env)  # fmt: skip


@nox.session(python=False)
def test_pythons(session: nox.Session) -> None:
    """Which Pythons ran the tests in this `nox` run and which did not (interpreter not
    found, or not selected). Under CI=true every one must have run."""
    ran = [python for python in PYTHONS if python in _TESTED]
    missing = [python for python in PYTHONS if python not in _TESTED]
    session.log(f"tests ran on Python: {', '.join(ran) or 'none'}")
    if not missing:
        return
    text = f"tests did NOT run on Python: {', '.join(missing)} (no interpreter, or not selected)"
    if _ci():
        session.error(f"{text}; CI=true needs all of {', '.join(PYTHONS)}")
    session.warn(text)


@nox.session(python="3.11")
def contract(session: nox.Session) -> None:
    """The Emulator against the OpenAPI spec, driven by schemathesis."""
    session.install("-e", ".", *TEST_DEPS, "schemathesis>=4")
    session.run("pytest", "tests/api/test_contract.py", *session.posargs)


@nox.session(python="3.11")
def soak(session: nox.Session) -> None:
    """The bounded soak: run_many under faults of every kind, both backends.

    CI runs 300 runs per backend (about 35 s on 2 cores); `nox -s soak -- 5000` runs the
    full size (6.5 minutes measured). Figures are printed; see benchmarks/RESULTS.md."""
    size, *pytest_args = session.posargs or ["300"]
    session.install("-e", ".", *TEST_DEPS)
    env = {"CODEGEN_SOAK": "1", "CODEGEN_SOAK_RUNS": size}
    session.run("pytest", "tests/runs/test_soak.py", "-s", *pytest_args, env=env)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Every benchmark side by side with raw httpx; writes benchmarks/RESULTS.md.

    `nox -s bench -- --smoke`: tiny sizes in under 30 s, prints the table, writes nothing
    (CI may run it; no time is ever asserted)."""
    # otel: B1-tracing; httpx2 and aiohttp: B1's stacks; B1's goals are against httpx 0.28
    # celery: B9 (real workers on a real redis-server)
    deps = ["httpx==0.28.1", "uvicorn>=0.30", "redis>=5"]
    session.install("-e", ".[otel,httpx2,aiohttp,celery]", *deps)
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting; and codegen_sync is what its generator writes now."""
    session.install("-e", ".", RUFF)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "-m", "codegen_sync._generator", "--check")


@nox.session(python="3.11")
def generate_sync(session: nox.Session) -> None:
    """Regenerate codegen_sync from codegen_async (commit the result)."""
    session.install("-e", ".", RUFF)
    session.run("python", "-m", "codegen_sync._generator", *session.posargs)


@nox.session(python="3.11")
def types(session: nox.Session) -> None:
    """mypy --strict over the packages."""
    deps = ["mypy>=1.10", "uvicorn>=0.30", "rich>=13", "redis>=5"]
    session.install("-e", ".[httpx2,aiohttp]", *deps)  # typed against both stacks
    session.run("mypy", "--strict")


# -- the documentation site and the package as users get it --------------------------------
ROOT = Path(__file__).resolve().parent
QUIET_MKDOCS = {"NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml), built with --strict into site/: a broken link,
    a missing reference or a page left out of the nav fails."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "-d", "site", *session.posargs, env=QUIET_MKDOCS)


@nox.session(python="3.11")
def browser(session: nox.Session) -> None:
    """The built site in Chromium (Debian's, /usr/bin/chromium; no browser download):
    pages, links, search and copy buttons. Skipped without Chromium, except under CI=true."""
    session.install("-e", ".[docs]", "playwright>=1.45", "pytest>=8", "pytest-timeout>=2.3")
    session.run("pytest", "tests/docs/test_browser.py", *session.posargs, env=QUIET_MKDOCS)


def _main_job_line() -> str:
    """The README's set-up command for the main job, as printed."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"\*\*Run the main job\*\*.*?^```sh\n(.*?)\n```", readme, re.S | re.M)
    assert match, "README.md has no main-job command"
    return match.group(1)


@nox.session(python="3.11")
def package(session: nox.Session) -> None:
    """The package as users get it: sdist and wheel built and checked by twine; the wheel
    alone installed in a fresh venv outside the repository, where the main job and a smoke
    test run; then the README's main-job line verbatim in a fresh copy of the repository."""
    session.install("build>=1.2", "twine>=5")
    with tempfile.TemporaryDirectory(prefix="codegen-package-") as temp:
        tmp = Path(temp)
        dist = tmp / "dist"
        session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT))
        wheel, sdist = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
        if len(wheel) != 1 or len(sdist) != 1:
            session.error(f"expected one wheel and one sdist, got {sorted(dist.iterdir())}")
        session.run("twine", "check", "--strict", str(wheel[0]), str(sdist[0]))
        names = zipfile.ZipFile(wheel[0]).namelist()
        for required in ("codegen_async/py.typed", "codegen_sync/py.typed"):
            if required not in names:
                session.error(f"the wheel has no {required}")
        if stray := [n for n in names if n.startswith(("tests/", "docs/", "benchmarks/"))]:
            session.error(f"the wheel holds files that are not the packages: {stray[:5]}")
        # Everything below runs from the temporary folder, with nothing of the repository
        # on the path: only what the wheel installed.
        env = {"PYTHONPATH": "", "HOME": str(tmp), "XDG_CACHE_HOME": str(tmp / "cache")}
        venv = tmp / "venv"
        session.run("python", "-m", "venv", str(venv))
        bin_ = venv / "bin"
        pip = [str(bin_ / "pip"), "install", "-q", "--disable-pip-version-check"]
        session.run(*pip, f"{wheel[0]}[cli]", external=True, env=env)
        shutil.copy(ROOT / "tests" / "package" / "smoke.py", tmp / "smoke.py")
        with session.chdir(tmp):
            session.run(
                str(bin_ / "codegen-async"), "--emulator", "run", "Add type hints to utils.py",
                external=True, env=env,
            )  # fmt: skip
            session.run(str(bin_ / "python"), "smoke.py", str(ROOT), external=True, env=env)
        # The README's main-job line, as printed, in a clone of the committed tree plus
        # the working tree's changes (a fresh copy: no .venv, no build output).
        clone = tmp / "clone"
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, check=True,
        ).stdout.decode().split("\0")  # fmt: skip
        for name in filter(None, files):
            if (ROOT / name).is_file():
                (clone / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, clone / name)
        with session.chdir(clone):
            session.run("sh", "-c", _main_job_line(), external=True, env=env)
