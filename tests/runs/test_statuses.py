"""Issue 14, item 3: statuses as the docs spell them end waits; unknown ones never do."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

import codegen_async as cg
from codegen_async import models
from codegen_async._convert import structure
from codegen_async.models import AgentRun, AgentRunWithLogs, RunStatus
from codegen_async.testing import Emulator

FAST = 0.001  # one emulated minute passes in 60 ms
SPELLINGS = ["upper", "docs"]


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("COMPLETE", RunStatus.COMPLETE),
        ("complete", RunStatus.COMPLETE),
        ("completed", RunStatus.COMPLETE),
        ("Completed", RunStatus.COMPLETE),
        ("failed", RunStatus.FAILED),
        ("in_progress", RunStatus.RUNNING),
        ("In-Progress", RunStatus.RUNNING),
        ("queued", RunStatus.PENDING),
        ("running", RunStatus.RUNNING),
        ("canceled", RunStatus.CANCELLED),
        ("max_iterations_reached", RunStatus.MAX_ITERATIONS_REACHED),
        (" error ", RunStatus.ERROR),
    ],
)
def test_statuses_are_read_in_any_spelling(text: str, status: RunStatus) -> None:
    assert RunStatus.parse(text) is status
    assert RunStatus(text) is status
    assert structure({"id": 1, "organization_id": 1, "status": text}, AgentRun).status is status
    assert status.is_known


def test_run_status_says_what_it_is() -> None:
    assert RunStatus.COMPLETE.is_terminal
    assert RunStatus.COMPLETE.succeeded
    assert not RunStatus.COMPLETE.failed
    assert RunStatus.parse("failed").failed
    assert RunStatus.parse("TIMEOUT").failed
    for status in ("queued", "in_progress", "ACTIVE", "EVALUATION"):
        parsed = RunStatus.parse(status)
        assert not parsed.is_terminal
        assert not parsed.failed
    assert RunStatus("RUNNING") == "RUNNING"  # still a str-enum of the service's values


def test_an_unknown_status_is_kept_not_terminal_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="codegen_async")
    models._UNKNOWN_STATUSES_LOGGED.discard("Paused-For-Review-h14a")  # a rerun logs anew
    first = RunStatus.parse("Paused-For-Review-h14a")
    again = structure(
        {"id": 2, "organization_id": 1, "status": "Paused-For-Review-h14a"}, AgentRun
    ).status
    assert first == again == "Paused-For-Review-h14a"
    assert str(first) == "Paused-For-Review-h14a"
    assert not first.is_known
    assert not first.is_terminal
    assert not first.succeeded
    assert not first.failed
    logged = [r for r in caplog.records if "Paused-For-Review-h14a" in r.getMessage()]
    assert len(logged) == 1


class _ScriptedStatuses:
    """A server whose run 1 answers the given statuses in turn (the last one for ever)."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.reads = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/users/me":
            return httpx.Response(200, json={"id": 77, "github_user_id": "1"})
        status = self.statuses[min(self.reads, len(self.statuses) - 1)]
        self.reads += 1
        run: dict[str, Any] = {"id": 1, "organization_id": 1, "status": status}
        if path.endswith("/agent/runs"):
            page = {"items": [run], "total": 1, "page": 1, "size": 100, "pages": 1}
            return httpx.Response(200, content=json.dumps(page))
        if path.endswith("/agent/run/1"):
            return httpx.Response(200, json=run)
        raise AssertionError(f"unexpected {request.method} {path}")


def _scripted_client(api: _ScriptedStatuses) -> cg.AsyncCodegen:
    return cg.AsyncCodegen(
        api_key="sk-test",
        org_id=1,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(api.handler)),
        rate_limits=cg.RateLimits.off(),
        poll_policy=cg.PollPolicy().scaled(0.001),
    )


@pytest.mark.anyio
async def test_an_unknown_status_never_ends_a_wait() -> None:
    api = _ScriptedStatuses(["queued", "paused_h14a"])
    async with _scripted_client(api) as client:
        with pytest.raises(cg.WaitTimeoutError) as info:
            await client.agent_runs.wait(1, timeout=0.3)
    assert info.value.run is not None
    assert info.value.run.status == "paused_h14a"
    assert api.reads >= 3  # it kept looking


@pytest.mark.anyio
async def test_the_docs_words_end_a_wait() -> None:
    # Before the fix "completed" was an unknown status: this wait ran to its timeout.
    api = _ScriptedStatuses(["queued", "in_progress", "weird_h14a", "completed"])
    async with _scripted_client(api) as client:
        run = await client.agent_runs.wait(1, timeout=30)
    assert run.status is RunStatus.COMPLETE
    assert run.succeeded


@pytest.mark.anyio
async def test_the_emulator_answers_in_the_docs_spelling_on_request() -> None:
    async with Emulator(time_scale=FAST, status_spelling="docs", rate_limits=False) as emu:
        options = emu.client_options()
        http = options["http_client"]
        path = f"/v1/organizations/{emu.org_id}/agent/run"
        headers = {"authorization": f"Bearer {emu.api_key}"}
        created = (await http.post(path, json={"prompt": "p"}, headers=headers)).json()
        emu.advance(10_000)
        done = (await http.get(f"{path}/{created['id']}", headers=headers)).json()
        logs_path = f"/v1/alpha/organizations/{emu.org_id}/agent/run/{created['id']}/logs"
        logs = (await http.get(logs_path, headers=headers)).json()
    assert created["status"] == "queued"
    assert done["status"] == "completed"
    assert [r["status"] for r in emu.runs] == ["completed"]
    assert logs["status"] == "completed"
    assert structure(logs, AgentRunWithLogs).status is RunStatus.COMPLETE
    with pytest.raises(ValueError, match="status_spelling"):
        Emulator(status_spelling="lower")


@pytest.mark.anyio
@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_every_wait_ends_in_both_spellings(spelling: str) -> None:
    emulator = Emulator(time_scale=FAST, seed=5, status_spelling=spelling)
    async with emulator as emu, cg.AsyncCodegen(**emu.client_options()) as client:
        # run(): create, then wait (the poller's list reads and gets)
        run = await client.run("one", timeout=60)
        assert run.status is RunStatus.COMPLETE
        # wait() on a created run
        created = await client.agent_runs.create("two")
        waited = await client.agent_runs.wait(created, timeout=60)
        assert waited.status is RunStatus.COMPLETE
        # as_completed
        runs = [await client.agent_runs.create(f"many {i}") for i in range(3)]
        seen = [r async for r in client.agent_runs.as_completed(runs, timeout=60)]
        assert sorted(r.id for r in seen) == sorted(r.id for r in runs)
        assert all(r.status is RunStatus.COMPLETE for r in seen)
        # run_many
        outcomes = [o async for o in client.run_many(["a", "b", "c"], timeout=60)]
        assert [o.error for o in outcomes] == [None, None, None]
        assert all(o.run is not None and o.run.succeeded for o in outcomes)
        # logs(follow=True) ends once the run is terminal
        entries = [e async for e in client.agent_runs.logs(run.id, follow=True)]
        assert entries
        assert client._shared.engine.poller.stats["cycles"] > 0


@pytest.mark.anyio
@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_failed_runs_are_failed_in_both_spellings(spelling: str) -> None:
    emulator = Emulator(time_scale=FAST, failure_rate=1.0, status_spelling=spelling)
    async with emulator as emu, cg.AsyncCodegen(**emu.client_options()) as client:
        run = await client.run("doomed", timeout=60)
        with pytest.raises(cg.AgentRunFailedError):
            await client.run("doomed", timeout=60, raise_on_failure=True)
    assert run.status is RunStatus.FAILED
    assert run.status.failed


@pytest.mark.anyio
@pytest.mark.parametrize("bad_id", [0, -5])
async def test_a_run_id_below_one_from_the_server_is_a_response_validation_error(
    bad_id: int,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": bad_id, "organization_id": 1, "status": "queued"})

    client = cg.AsyncCodegen(
        api_key="sk-test",
        org_id=1,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        rate_limits=cg.RateLimits.off(),
    )
    async with client:
        with pytest.raises(cg.ResponseValidationError, match="id > 0") as info:
            await client.agent_runs.get(3)
    assert not isinstance(info.value, ValueError)
