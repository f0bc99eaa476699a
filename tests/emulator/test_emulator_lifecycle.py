"""Run lifecycles in the Emulator: status over time, outcomes, results, resume, logs."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from codegen_async.testing import Emulator, result_for

from .test_emulator import api, check_response, org_url


async def create(c: httpx.AsyncClient, emu: Emulator, prompt: str, **extra: Any) -> dict[str, Any]:
    response = await c.post(org_url(emu, "/agent/run"), json={"prompt": prompt, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def get(c: httpx.AsyncClient, emu: Emulator, run_id: int) -> dict[str, Any]:
    return dict((await c.get(org_url(emu, f"/agent/run/{run_id}"))).json())


async def logs(c: httpx.AsyncClient, emu: Emulator, run_id: int, **params: Any) -> dict[str, Any]:
    url = f"/v1/alpha/organizations/{emu.org_id}/agent/run/{run_id}/logs"
    return dict(check_response(await c.get(url, params=params), "get_agent_run_logs"))


def fixed(**kwargs: Any) -> Emulator:
    """An Emulator whose clock only moves by advance() in practice (time_scale 1)."""
    return Emulator(rate_limits=False, pending_seconds=2, run_seconds=(10, 10), **kwargs)


@pytest.mark.anyio
async def test_pending_running_complete_as_time_passes() -> None:
    emu = fixed()
    async with api(emu) as c:
        run = await create(c, emu, "build the thing", repo_id=501)
        assert run["status"] == "PENDING"
        assert run["result"] is None
        emu.advance(2.5)
        assert (await get(c, emu, run["id"]))["status"] == "RUNNING"
        emu.advance(10)
        done = await get(c, emu, run["id"])
    assert done["status"] == "COMPLETE"
    assert done["result"] == result_for("build the thing")
    assert done["summary"]
    (pr,) = done["github_pull_requests"]
    assert pr["url"].startswith("https://github.com/")


@pytest.mark.anyio
async def test_reaches_complete_in_real_time_when_scaled() -> None:
    emu = Emulator(time_scale=0.001, rate_limits=False)  # 62 emulated seconds at most = 62 ms
    async with api(emu) as c:
        run = await create(c, emu, "fast")
        seen = set()
        with anyio.fail_after(10):
            while (current := await get(c, emu, run["id"]))["status"] != "COMPLETE":
                seen.add(current["status"])
                await anyio.sleep(0.005)
    assert seen <= {"PENDING", "RUNNING"}
    assert current["result"] == result_for("fast")


@pytest.mark.anyio
@pytest.mark.parametrize(("knob", "status"), [("failure_rate", "FAILED"), ("error_rate", "ERROR")])
async def test_certain_failure(knob: str, status: str) -> None:
    emu = fixed(**{knob: 1.0})
    async with api(emu) as c:
        run = await create(c, emu, "doomed")
        emu.advance(12)
        ended = await get(c, emu, run["id"])
        final = (await logs(c, emu, run["id"], reverse="true", limit=1))["logs"][0]
    assert ended["status"] == status
    assert ended["result"] is None
    assert final["message_type"] == "ERROR"


@pytest.mark.anyio
async def test_outcomes_and_durations_are_deterministic_per_seed() -> None:
    async def outcomes(seed: int) -> list[str]:
        emu = Emulator(rate_limits=False, failure_rate=0.3, error_rate=0.2, seed=seed)
        async with api(emu) as c:
            ids = [(await create(c, emu, f"task {i}"))["id"] for i in range(30)]
            emu.advance(20.0 + 25.0)  # the middle of the run_seconds range
            return [(await get(c, emu, i))["status"] for i in ids]

    first, again, other = await outcomes(1), await outcomes(1), await outcomes(2)
    assert first == again
    assert first != other
    assert {"COMPLETE", "FAILED", "ERROR", "RUNNING"} >= set(first)
    assert "RUNNING" in first  # durations spread over the range
    assert "COMPLETE" in first


@pytest.mark.anyio
async def test_resume_moves_a_finished_run_back_to_running() -> None:
    emu = fixed()
    async with api(emu) as c:
        run = await create(c, emu, "first")
        url = org_url(emu, "/agent/run/resume")
        early = await c.post(url, json={"agent_run_id": run["id"], "prompt": "second"})
        assert early.status_code == 422
        assert early.json()["detail"][0]["loc"] == ["body", "agent_run_id"]
        emu.advance(12)
        resumed = await c.post(url, json={"agent_run_id": run["id"], "prompt": "second"})
        assert resumed.json()["status"] == "RUNNING"
        assert resumed.json()["result"] is None
        emu.advance(10)
        done = await get(c, emu, run["id"])
        entries = (await logs(c, emu, run["id"]))["logs"]
    assert done["status"] == "COMPLETE"
    assert done["result"] == result_for("second")
    kinds = [e["message_type"] for e in entries]
    assert kinds.count("FINAL_ANSWER") == 2
    assert kinds[kinds.index("USER_MESSAGE") - 1] == "FINAL_ANSWER"
    assert emu.counters.runs_created == 1


@pytest.mark.anyio
async def test_logs_appear_over_the_run_and_page() -> None:
    emu = fixed()
    async with api(emu) as c:
        run = await create(c, emu, "log me")
        assert (await logs(c, emu, run["id"]))["total_logs"] == 0
        emu.advance(2 + 5)
        partial = await logs(c, emu, run["id"])
        emu.advance(5)
        full = await logs(c, emu, run["id"])
        page = await logs(c, emu, run["id"], skip=2, limit=2)
        backwards = await logs(c, emu, run["id"], reverse="true")
    entries = full["logs"]
    assert 0 < partial["total_logs"] < full["total_logs"] == len(entries)
    assert partial["logs"] == entries[: partial["total_logs"]]
    assert entries[0]["message_type"] == "PLAN_EVALUATION"
    assert "ACTION" in [e["message_type"] for e in entries]
    assert entries[-1]["message_type"] == "FINAL_ANSWER"
    assert entries[-1]["observation"] == result_for("log me")
    assert [e["created_at"] for e in entries] == sorted(e["created_at"] for e in entries)
    assert all(e["agent_run_id"] == run["id"] for e in entries)
    assert page["logs"] == entries[2:4]
    assert (page["page"], page["size"], page["pages"]) == (2, 2, -(-len(entries) // 2))
    assert backwards["logs"] == entries[::-1]
    assert full["status"] == "COMPLETE"


@pytest.mark.anyio
async def test_ban_stops_a_running_run_and_unban_does_not() -> None:
    emu = fixed()
    async with api(emu) as c:
        banned = await create(c, emu, "ban me")
        kept = await create(c, emu, "keep me")
        emu.advance(5)
        await c.post(org_url(emu, "/agent/run/ban"), json={"agent_run_id": banned["id"]})
        await c.post(org_url(emu, "/agent/run/unban"), json={"agent_run_id": kept["id"]})
        emu.advance(10)
        assert (await get(c, emu, banned["id"]))["status"] == "CANCELLED"
        assert (await get(c, emu, kept["id"]))["status"] == "COMPLETE"
        cut = await logs(c, emu, banned["id"])
    assert "FINAL_ANSWER" not in [e["message_type"] for e in cut["logs"]]


@pytest.mark.anyio
async def test_configure_changes_new_runs_only() -> None:
    emu = fixed()
    async with api(emu) as c:
        before = await create(c, emu, "before")
        emu.configure(failure_rate=1.0, run_seconds=30)
        after = await create(c, emu, "after")
        emu.advance(12)
        assert (await get(c, emu, before["id"]))["status"] == "COMPLETE"
        assert (await get(c, emu, after["id"]))["status"] == "RUNNING"
        emu.advance(30)
        assert (await get(c, emu, after["id"]))["status"] == "FAILED"
