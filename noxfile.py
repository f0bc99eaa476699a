"""Project tasks. `nox` runs the default set (what CI runs); `nox -s NAME` runs one.

Interpreters that are not installed are skipped, so `nox` works on a machine with one
Python; CI exposes 3.10-3.13 through pyenv and runs them all.
"""

from __future__ import annotations

import nox

nox.options.sessions = [
    "lint", "types", "tests", "tests_httpx2", "tests_aiohttp", "contract", "soak"
]  # fmt: skip
nox.options.error_on_missing_interpreters = False
nox.options.reuse_existing_virtualenvs = True

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
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
]


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite, every async test under asyncio and trio."""
    session.install("-e", ".", *TEST_DEPS)
    args = session.posargs or ["-n", "2"]
    env = {"CODEGEN_EXPECT_STACK": "httpx"}  # tests/http/test_stack.py checks it
    session.run("pytest", "--ignore=tests/api/test_contract.py", *args, env=env)


@nox.session(python="3.11")  # 3.12/3.13 too when CI time allows (each run ~3 min)
def tests_httpx2(session: nox.Session) -> None:
    """The whole suite again with httpx2 installed, which the SDK then picks."""
    session.install("-e", ".[httpx2]", *TEST_DEPS)
    args = session.posargs or ["-n", "2"]
    env = {"CODEGEN_EXPECT_STACK": "httpx2"}
    session.run("pytest", "--ignore=tests/api/test_contract.py", *args, env=env)


@nox.session(python="3.11")
def tests_aiohttp(session: nox.Session) -> None:
    """The HTTP tests and a served walk on the aiohttp transport (asyncio only: aiohttp
    does not run under trio, which tests/http/test_stack.py checks says so)."""
    session.install("-e", ".[aiohttp]", *TEST_DEPS)
    env = {"CODEGEN_HTTP_STACK": "aiohttp", "CODEGEN_EXPECT_STACK": "aiohttp"}
    args = session.posargs or ["-n", "2"]
    session.run("pytest", "tests/http", "-k", "not trio or test_the_sdk_runs_on_aiohttp", *args,
                env=env)  # fmt: skip


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
    session.install("-e", ".[otel,httpx2,aiohttp]", "httpx==0.28.1", "uvicorn>=0.30", "redis>=5")
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
