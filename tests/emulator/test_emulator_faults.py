"""The Emulator's rate limiter and injected faults, seen through responses and counters."""

from __future__ import annotations

import anyio
import httpx
import pytest

from codegen_async._config import RateLimits
from codegen_async._constants import IDEMPOTENCY_METADATA_KEY
from codegen_async._limits import Limit, RateClass
from codegen_async.testing import FAULT_KINDS, ROUTE_RATE_CLASSES, ROUTES, Emulator
from codegen_async.testing._faults import DRIP_CHUNK_BYTES, Action

from .test_emulator import api, check_response, org_url

RATE_BODY = {"message": "Rate limit exceeded. Please try again later.", "status_code": 429}


def test_routes_are_operation_ids_with_their_rate_classes() -> None:
    assert len(ROUTES) == 26  # 25 operations + legacy POST /v1/run
    assert ROUTE_RATE_CLASSES["create_agent_run"] is RateClass.CREATE
    assert ROUTE_RATE_CLASSES["get_agent_run_logs"] is RateClass.LOGS
    assert ROUTE_RATE_CLASSES["generate_setup_commands"] is RateClass.SETUP_COMMANDS
    assert ROUTE_RATE_CLASSES["analyze_sandbox_logs"] is RateClass.LOG_ANALYSIS
    assert ROUTE_RATE_CLASSES["edit_pull_request"] is RateClass.PR_EDIT
    assert ROUTE_RATE_CLASSES["get_cli_rules"] is RateClass.CLI_RULES
    assert ROUTE_RATE_CLASSES["resume_agent_run"] is RateClass.STANDARD  # no "Rate limit:" line


# -- rate limits -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_documented_create_limit_answers_429_with_headers() -> None:
    emu = Emulator()  # time_scale 1: ten creates a minute
    async with api(emu) as c:
        url = org_url(emu, "/agent/run")
        statuses = [(await c.post(url, json={"prompt": f"p{i}"})).status_code for i in range(10)]
        limited = await c.post(url, json={"prompt": "one too many"})
        read = await c.get(org_url(emu, "/agent/runs"))  # another class: unaffected
    assert statuses == [200] * 10
    assert check_response(limited, "create_agent_run", 429) == RATE_BODY
    retry_after = int(limited.headers["retry-after"])
    retry_ms = int(limited.headers["retry-after-ms"])
    assert 1 <= retry_after <= 60
    assert retry_after * 1000 - 1000 < retry_ms <= retry_after * 1000
    assert read.status_code == 200
    counters = emu.counters
    assert counters.rate_limited == 1
    assert counters.runs_created == 10
    assert counters.requests_by_route["create_agent_run"] == 11
    assert len(emu.runs) == 10


@pytest.mark.anyio
async def test_scaled_window_frees_up_and_rejections_take_no_slot() -> None:
    limits = RateLimits({RateClass.STANDARD: Limit(3, 1000.0)})
    emu = Emulator(time_scale=0.001, rate_limits=limits)  # a 1 s real window
    async with api(emu) as c:
        me = "/v1/users/me"
        first = [(await c.get(me)).status_code for _ in range(3)]
        rejected = [await c.get(me) for _ in range(5)]
        emu.advance(1000)  # the window slides past the first three
        after = [(await c.get(me)).status_code for _ in range(3)]
        again = await c.get(me)
    assert first == [200] * 3
    assert [r.status_code for r in rejected] == [429] * 5
    assert all(0 < int(r.headers["retry-after-ms"]) <= 1000 for r in rejected)
    assert all(r.headers["retry-after"] == "1" for r in rejected)
    assert after == [200] * 3  # the five rejections did not use up the new window
    assert again.status_code == 429
    assert emu.counters.rate_limited == 6
    assert emu.client_options()["rate_limits"] == limits.scaled(0.001)


@pytest.mark.anyio
async def test_rate_limits_can_be_off_and_counters_reset() -> None:
    emu = Emulator(rate_limits=False)
    async with api(emu) as c:
        statuses = {(await c.get("/v1/users/me")).status_code for _ in range(70)}
    assert statuses == {200}
    assert emu.counters.requests == 70
    emu.reset_counters()
    assert emu.counters.requests_by_route == {}


# -- faults ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_error_before_does_nothing() -> None:
    emu = Emulator(rate_limits=False)
    fault = emu.faults.add("error_before", route="create_agent_run", status=503)
    async with api(emu) as c:
        failed = await c.post(org_url(emu, "/agent/run"), json={"prompt": "p"})
        ok = await c.post(org_url(emu, "/agent/run"), json={"prompt": "p"})
    assert failed.status_code == 503
    assert failed.json() == {"message": "Service Unavailable", "status_code": 503}
    assert ok.status_code == 200
    assert len(emu.runs) == 1
    assert fault.fired == 1
    assert emu.faults.pending == []
    assert emu.counters.faults_injected == {"error_before": 1}


@pytest.mark.anyio
async def test_error_after_commit_leaves_the_run() -> None:
    emu = Emulator(rate_limits=False)
    emu.faults.add(route="create_agent_run", kind="error_after_commit", status=502, times=1)
    token = {IDEMPOTENCY_METADATA_KEY: "token-1"}
    async with api(emu) as c:
        url = org_url(emu, "/agent/run")
        failed = await c.post(url, json={"prompt": "p", "metadata": token})
        retried = await c.post(url, json={"prompt": "p", "metadata": token})
        listed = (await c.get(org_url(emu, "/agent/runs"))).json()
    assert failed.status_code == 502
    assert retried.status_code == 200
    assert listed["total"] == 2
    assert all(r["metadata"] == token for r in listed["items"])
    counters = emu.counters
    assert counters.runs_created == 2
    assert counters.duplicate_creates == 1
    assert counters.faults_injected == {"error_after_commit": 1}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kind", "error", "runs"),
    [
        ("close_before", httpx.RemoteProtocolError, 0),
        ("reset", httpx.RemoteProtocolError, 0),
        ("close_after_commit", httpx.RemoteProtocolError, 1),
        ("truncate", httpx.RemoteProtocolError, 1),
        ("silence_after_commit", httpx.ReadTimeout, 1),
    ],
)
async def test_connection_faults_in_process_raise_what_httpx_would(
    kind: str, error: type[Exception], runs: int
) -> None:
    emu = Emulator(rate_limits=False)
    emu.faults.add(kind, route="create_agent_run")
    async with api(emu) as c:
        with pytest.raises(error):
            await c.post(org_url(emu, "/agent/run"), json={"prompt": "p"})
        assert (await c.get("/v1/users/me")).status_code == 200
    assert len(emu.runs) == runs
    assert emu.counters.faults_injected == {kind: 1}


@pytest.mark.anyio
async def test_connection_faults_are_signalled_by_header_on_the_wire_app() -> None:
    emu = Emulator(rate_limits=False)
    emu.faults.add("truncate", route="get_current_user_info")
    emu.faults.add("drip", route="get_organizations", seconds=0.25)
    headers = {"authorization": f"Bearer {emu.api_key}"}
    transport = httpx.ASGITransport(app=emu.wire_app)
    async with httpx.AsyncClient(transport=transport, base_url=emu.base_url, headers=headers) as c:
        truncated = await c.get("/v1/users/me")
        dripped = await c.get("/v1/organizations")
    assert truncated.headers["x-emulator-fault"] == "truncate"
    assert truncated.json()["id"] == emu.user_id  # the full response, for the proxy to cut
    assert dripped.headers["x-emulator-fault"] == "drip:0.25"


@pytest.mark.anyio
async def test_drip_and_latency_delay_the_answer_in_process() -> None:
    emu = Emulator(rate_limits=False)
    emu.faults.add("drip", route="get_current_user_info", seconds=0.001)
    emu.faults.add("latency", route="get_current_user_info", seconds=0.001)
    async with api(emu) as c:
        response = await c.get("/v1/users/me")
    assert response.status_code == 200
    assert response.json()["id"] == emu.user_id
    assert emu.counters.faults_injected == {"drip": 1, "latency": 1}
    assert Action("drip", seconds=0.5).drip_seconds(DRIP_CHUNK_BYTES + 1) == 1.0


@pytest.mark.anyio
async def test_forced_rate_limit() -> None:
    emu = Emulator(rate_limits=False)
    emu.faults.add("rate_limited", route="list_agent_runs", seconds=2.5, times=2)
    async with api(emu) as c:
        url = org_url(emu, "/agent/runs")
        responses = [await c.get(url) for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert responses[0].json() == RATE_BODY
    assert responses[0].headers["retry-after"] == "3"
    assert responses[0].headers["retry-after-ms"] == "2500"
    assert emu.counters.rate_limited == 2


@pytest.mark.anyio
async def test_list_delay_hides_a_new_run_for_a_while() -> None:
    emu = Emulator(rate_limits=False)
    emu.faults.add("list_delay", route="create_agent_run", seconds=30)
    async with api(emu) as c:
        run = (await c.post(org_url(emu, "/agent/run"), json={"prompt": "p"})).json()
        hidden = (await c.get(org_url(emu, "/agent/runs"))).json()
        direct = await c.get(org_url(emu, f"/agent/run/{run['id']}"))
        emu.advance(31)
        shown = (await c.get(org_url(emu, "/agent/runs"))).json()
    assert hidden["total"] == 0
    assert direct.status_code == 200
    assert [r["id"] for r in shown["items"]] == [run["id"]]


@pytest.mark.anyio
async def test_commit_delay_commits_late_even_when_the_client_gave_up() -> None:
    emu = Emulator(rate_limits=False, time_scale=0.01)
    emu.faults.add("commit_delay", route="create_agent_run", seconds=20)  # 0.2 s real
    async with api(emu) as c:
        with anyio.move_on_after(0.05) as scope:  # the client gives up, the handler too
            await c.post(org_url(emu, "/agent/run"), json={"prompt": "p"})
        assert scope.cancelled_caught
        hidden = (await c.get(org_url(emu, "/agent/runs"))).json()
        emu.advance(21)
        shown = (await c.get(org_url(emu, "/agent/runs"))).json()
        # Only the first create was delayed; an answered one comes back at once.
        answered = await c.post(org_url(emu, "/agent/run"), json={"prompt": "q"})
    assert hidden["total"] == 0
    assert shown["total"] == 1
    assert answered.status_code == 200
    assert emu.counters.faults_injected["commit_delay"] == 1


@pytest.mark.anyio
async def test_commit_delay_answers_once_committed() -> None:
    emu = Emulator(rate_limits=False, time_scale=0.01)
    emu.faults.add("commit_delay", route="create_agent_run", seconds=5)
    async with api(emu) as c:
        started = emu.now()
        response = await c.post(org_url(emu, "/agent/run"), json={"prompt": "p"})
        waited = emu.now() - started
        listed = (await c.get(org_url(emu, "/agent/runs"))).json()
    assert response.status_code == 200
    assert waited >= 5
    assert [r["id"] for r in listed["items"]] == [response.json()["id"]]


@pytest.mark.anyio
async def test_random_faults_are_reproducible() -> None:
    async def statuses(seed: int) -> list[int]:
        emu = Emulator(rate_limits=False)
        emu.faults.random(
            rate=0.5, kinds=["error_before"], routes=["get_current_user_info"], seed=seed
        )
        async with api(emu) as c:
            result = [(await c.get("/v1/users/me")).status_code for _ in range(40)]
            assert (await c.get("/v1/organizations")).status_code == 200  # other routes spared
        assert emu.counters.faults_injected["error_before"] == result.count(503)
        return result

    first = await statuses(7)
    assert first == await statuses(7)
    assert 5 < first.count(503) < 35


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"kind": "explode"}, "kind"),
        ({"kind": "error_before", "route": "nope"}, "route"),
        ({"kind": "list_delay", "route": "get_agent_run"}, "route"),
        ({"kind": "commit_delay", "route": "get_agent_run"}, "route"),
        ({"kind": "commit_delay", "seconds": float("inf")}, "seconds"),
        ({"kind": "error_before", "status": 200}, "status"),
        ({"kind": "latency", "seconds": -1}, "seconds"),
        ({"kind": "error_before", "times": 0}, "times"),
    ],
)
def test_fault_arguments_are_validated(kwargs: dict[str, object], name: str) -> None:
    emu = Emulator()
    with pytest.raises(ValueError, match=name):
        emu.faults.add(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        emu.faults.random(rate=2)
    with pytest.raises(ValueError, match="list_delay"):
        emu.faults.random(rate=0.1, kinds=["list_delay"])
    with pytest.raises(ValueError, match="commit_delay"):
        emu.faults.random(rate=0.1, kinds=["commit_delay"])
    assert "list_delay" in FAULT_KINDS
    assert "commit_delay" in FAULT_KINDS


@pytest.mark.network
@pytest.mark.anyio
async def test_served_on_loopback_with_connection_faults() -> None:
    pytest.importorskip("uvicorn")
    emu = Emulator(rate_limits=False)
    emu.faults.add("close_after_commit", route="create_agent_run")
    async with emu.serve() as url:
        assert url.startswith("http://127.0.0.1:")
        options = emu.client_options()
        assert options["base_url"] == url == emu.base_url
        assert "http_client" not in options
        headers = {"authorization": f"Bearer {emu.api_key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=5) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.post(org_url(emu, "/agent/run"), json={"prompt": "p"})
            runs = (await c.get(org_url(emu, "/agent/runs"))).json()
    assert runs["total"] == 1
    assert emu.base_url == "http://emulator.localhost"


@pytest.mark.network
def test_served_from_blocking_code() -> None:
    pytest.importorskip("uvicorn")
    with Emulator(rate_limits=False) as emu, emu.serve_in_thread() as url:
        assert emu.base_url == url
        headers = {"authorization": f"Bearer {emu.api_key}"}
        me = httpx.get(f"{url}/v1/users/me", headers=headers, timeout=5)
        with pytest.raises(ValueError, match="port"):
            emu.serve_in_thread(port=-1).__enter__()
    assert me.json()["id"] == emu.user_id
