"""health_check, with_options (shared pool, raw responses), as_curl, CODEGEN_LOG logging."""

from __future__ import annotations

import logging

import httpx
import pytest

import codegen_async as cg
from codegen_async._constants import ROLE_METADATA_KEY
from codegen_async._logging import configure_from_env
from codegen_async.testing import Emulator


@pytest.mark.anyio
async def test_health_check_reports_user_org_and_latency() -> None:
    async with Emulator(time_scale=0.001) as emu, cg.AsyncCodegen(**emu.client_options()) as client:
        health = await client.health_check()
    assert health.ok
    assert health.user.id == emu.user_id
    assert health.org_id == emu.org_id
    assert health.latency >= 0


@pytest.mark.anyio
async def test_with_options_shares_the_pool_and_exposes_raw_responses() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"id": 5, "organization_id": 1, "status": "RUNNING"}
        return httpx.Response(200, json=body, headers={"x-request-id": "rid-1"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    responses: list[cg.APIResponse] = []
    async with cg.AsyncCodegen(
        api_key="sk-secret", org_id=1, http_client=http, rate_limits=cg.RateLimits.off()
    ) as client:
        tuned = client.with_options(
            timeout=5, max_retries=0, headers={"X-Team": "search"}, on_response=responses.append
        )
        assert tuned._http.http_client is client._http.http_client
        assert tuned.settings.max_retries == 0
        run = await tuned.agent_runs.get(5)
        await tuned.aclose()  # closes nothing shared
        await client.agent_runs.get(5)
        with pytest.raises(ValueError, match="Authorization"):
            client.with_options(headers={"Authorization": "Bearer x"})
    assert run.id == 5
    assert seen[0].headers["x-team"] == "search"
    assert "x-team" not in seen[1].headers
    assert [(r.status_code, r.request_id, r.retries) for r in responses] == [(200, "rid-1", 0)]


@pytest.mark.anyio
async def test_as_curl_builds_the_request_without_sending_it() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    async with cg.AsyncCodegen(
        api_key="sk-secret",
        org_id=3,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    ) as client:
        curl = await client.as_curl(
            lambda c: c.agent_runs.create("it's a test", idempotency_key="k")
        )
        shown = await client.as_curl(lambda c: c.agent_runs.get(9), show_key=True)
    assert sent == []
    assert curl.startswith("curl -sS -X POST https://api.codegen.com/v1/organizations/3/agent/run")
    assert "sk-secret" not in curl
    assert "$CODEGEN_API_KEY" in curl
    assert "it'\"'\"'s a test" in curl  # shell-quoted
    assert "authorization: Bearer sk-secret" in shown


@pytest.mark.anyio
async def test_debug_logs_name_requests_but_never_the_key(caplog: pytest.LogCaptureFixture) -> None:
    async with Emulator(time_scale=0.001) as emu, cg.AsyncCodegen(**emu.client_options()) as client:
        with caplog.at_level(logging.DEBUG, logger="codegen_async"):
            await client.users.me()
            with pytest.raises(cg.NotFoundError):
                await client.agent_runs.get(424242)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "/v1/users/me -> 200" in text
    assert emu.api_key not in text


def test_codegen_log_env_is_validated() -> None:
    with pytest.raises(cg.ConfigurationError, match="CODEGEN_LOG"):
        configure_from_env({"CODEGEN_LOG": "loud"})


@pytest.mark.anyio
async def test_cancelling_multi_run_during_synthesis_names_the_synthesis_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import anyio

    caplog.set_level(logging.WARNING, logger="codegen_async")
    emu = Emulator(time_scale=0.001, run_seconds=1.0, failure_rate=0.0, seed=3)

    synthesis_created = anyio.Event()

    def on_progress(event: cg.ProgressEvent) -> None:
        if event.kind is cg.ProgressKind.FINISHED:  # the synthesis, created next, never ends
            emu.configure(run_seconds=1e6)

    def on_response(response: cg.APIResponse) -> None:
        if len(emu.runs) == 3:  # two candidates, then the synthesis run
            synthesis_created.set()

    async with emu, cg.AsyncCodegen(**emu.client_options()) as parent:
        client = parent.with_options(on_response=on_response)
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: client.multi_run("Explain", concurrency=2, on_progress=on_progress)
            )
            await synthesis_created.wait()
            tg.cancel_scope.cancel()
        synthesis = emu.runs[2]
    assert synthesis["metadata"][ROLE_METADATA_KEY] == "synthesis"
    key = synthesis["metadata"][cg.IDEMPOTENCY_METADATA_KEY]
    warnings = [r.getMessage() for r in caplog.records if "synthesis" in r.getMessage()]
    assert len(warnings) == 1
    assert str(synthesis["id"]) in warnings[0] or key in warnings[0]
