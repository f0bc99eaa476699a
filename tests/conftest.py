"""Every async test runs under both anyio backends; under `CI=true` a skipped test fails
the run unless its skip is by design (`BY_DESIGN`)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx
import pytest

import codegen_async as cg
from codegen_async.testing import Emulator

# Skips that are by design, by the start of their reason, each with why it is fine in CI.
BY_DESIGN = {
    "set CODEGEN_SOAK=1": "the soak has its own nox session (`nox -s soak`), which sets it",
    "asyncio.timeout is asyncio-only": "a test of asyncio's own timeout: its trio twin",
    "asyncio.timeout is 3.11+": "asyncio.timeout does not exist on Python 3.10",
    "no shared spec at": "a clone carries its own copy (tests/spec); the shared original "
    "it is checked against exists only in the project's home, not in a CI checkout",
    "httpx2 is not installed here": "a test of the httpx2 stack: the tests_httpx2 session "
    "(Python 3.12 and 3.13) installs httpx2 and runs it",
    "Impossible to generate negative test cases": "schemathesis has no invalid request to "
    "make for an operation without parameters or body (GET /v1/users/me, ...): the contract "
    "session checks their valid requests",
    # Platform twins: never skipped on the Linux CI, by design elsewhere.
    "POSIX signals": "no POSIX signals on Windows",
    "POSIX pseudo-terminals": "no pty on Windows",
    "POSIX fork": "no fork on Windows",
    "POSIX file modes": "no POSIX file modes on Windows",
    "kill -9": "no SIGKILL on Windows",
    "a Linux /sys": "no /sys outside Linux",
}


def strict_skips(env: Mapping[str, str] = os.environ) -> bool:
    """True under CI (`CI=true`, or 1/yes): there a skip not by design fails."""
    return env.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr: Any = report.longrepr
    text = str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix("Skipped: ")


def _fail_unless_by_design(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not strict_skips():
        return
    reason = _skip_reason(report)
    if any(reason.startswith(allowed) for allowed in BY_DESIGN):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"skipped under CI=true: {reason}\n(a skip fails in CI unless it is by design: "
        "see BY_DESIGN in tests/conftest.py)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    outcome: Any = yield
    _fail_unless_by_design(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None]:
    outcome: Any = yield
    _fail_unless_by_design(outcome.get_result())


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets its own cache directory: the CLI's `--emulator` keeps its state
    there, and tests must neither share it nor touch the user's own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


def make_client(
    target: Emulator | Callable[[httpx.Request], httpx.Response] | Any,
    /,
    **overrides: Any,
) -> cg.AsyncCodegen:
    """The one client factory of the tests.

    `target` is an Emulator (the client its `client_options()` describe, its rate limits
    and poll policy included), a handler for an `httpx.MockTransport`, or an ASGI app
    (another server, in-process); for the last two the key is "sk-test", the organization
    1 and rate limits are off. `overrides` are any other constructor arguments."""
    if isinstance(target, Emulator):
        options: dict[str, Any] = target.client_options()
    else:
        transport: httpx.AsyncBaseTransport = (
            httpx.MockTransport(target) if _is_handler(target) else httpx.ASGITransport(app=target)
        )
        options = {
            "api_key": "sk-test",
            "org_id": 1,
            "http_client": httpx.AsyncClient(transport=transport),
            "rate_limits": cg.RateLimits.off(),
        }
    options.update(overrides)
    return cg.AsyncCodegen(**options)


def _is_handler(target: Callable[..., Any]) -> bool:
    """A MockTransport handler takes one request; an ASGI app takes (scope, receive, send)."""
    try:
        return len(inspect.signature(target).parameters) == 1
    except (TypeError, ValueError):
        return False
