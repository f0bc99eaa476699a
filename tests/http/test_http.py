"""The request pipeline: error mapping, retry policy (fake clock), deadlines, headers."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import anyio
import httpx
import pytest

import codegen_async as cg
from codegen_async._config import backoff_delays
from codegen_async._http import parse_retry_after

Handler = Callable[[httpx.Request], Any]


class Recorder:
    """Sleeps recorded instead of slept."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def make_client(
    handler: Handler, *, max_retries: int = 3, timeout: float = 30.0
) -> cg.AsyncCodegen:
    client = cg.AsyncCodegen(
        api_key="sk-secret-key-123",
        org_id=1,
        max_retries=max_retries,
        timeout=timeout,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        rate_limits=cg.RateLimits.off(),
    )
    client._http._sleep = Recorder()
    return client


def sleeps(client: cg.AsyncCodegen) -> list[float]:
    recorder = client._http._sleep
    assert isinstance(recorder, Recorder)
    return recorder.sleeps


RUN = {"id": 5, "organization_id": 1, "status": "RUNNING"}


def scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    script = iter(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = next(script)
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, cg.BadRequestError),
        (401, cg.AuthenticationError),
        (402, cg.AgentRunLimitReachedError),
        (403, cg.PermissionDeniedError),
        (404, cg.NotFoundError),
        (409, cg.APIStatusError),
        (422, cg.ValidationError),
        (500, cg.ServerError),
        (503, cg.ServerError),
    ],
)
async def test_status_maps_to_error_class(status: int, cls: type[cg.APIStatusError]) -> None:
    body = {"message": f"nope {status}", "status_code": status}
    handler, seen = scripted(
        *[httpx.Response(status, json=body, headers={"x-request-id": "rid-9"})] * 10
    )
    async with make_client(handler, max_retries=0) as client:
        with pytest.raises(cls) as info:
            await client.agent_runs.get(5)
    error = info.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.message == f"nope {status}"
    assert error.body == body
    assert error.request_id == "rid-9"
    assert "rid-9" in str(error)
    assert len(seen) == 1


@pytest.mark.anyio
async def test_validation_detail_becomes_the_message() -> None:
    detail = [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]
    handler, _ = scripted(httpx.Response(422, json={"detail": detail}))
    async with make_client(handler) as client:
        with pytest.raises(cg.ValidationError, match="prompt: field required"):
            await client.agent_runs.get(5)


@pytest.mark.anyio
async def test_get_retries_transient_failures_then_succeeds() -> None:
    handler, seen = scripted(
        httpx.ConnectError("refused"),
        httpx.Response(502, json={"message": "bad gateway"}),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=RUN),
    )
    async with make_client(handler) as client:
        run = await client.agent_runs.get(5)
    assert run.id == 5
    assert len(seen) == 4
    delays = sleeps(client)
    assert len(delays) == 3
    for n, delay in enumerate(delays):
        cap = min(8.0, 0.5 * 2**n)
        assert cap / 2 <= delay <= cap


@pytest.mark.anyio
async def test_retries_stop_at_max_retries() -> None:
    handler, seen = scripted(*[httpx.Response(500, json={"message": "boom"})] * 10)
    async with make_client(handler, max_retries=2) as client:
        with pytest.raises(cg.ServerError):
            await client.agent_runs.get(5)
    assert len(seen) == 3


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500, json={"message": "boom"}),
        httpx.Response(502, json={"message": "boom"}),
        httpx.Response(408, json={"message": "timeout"}),
        httpx.ReadTimeout("slow"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("closed"),
        httpx.WriteError("broken pipe"),
    ],
)
async def test_post_is_not_retried_after_ambiguous_failures(
    failure: httpx.Response | Exception,
) -> None:
    # The pipeline never re-sends a non-idempotent POST whose outcome is unknown
    # (create reconciles on top of this; see test_create.py).
    handler, seen = scripted(failure, httpx.Response(200, json=RUN))
    async with make_client(handler) as client:
        with pytest.raises(cg.CodegenError):
            await client.agent_runs.resume(5, "go on")
    assert len(seen) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("no route"),
        httpx.Response(429, json={"message": "slow down", "status_code": 429}),
    ],
)
async def test_post_is_retried_when_nothing_was_processed(
    failure: httpx.Response | Exception,
) -> None:
    handler, seen = scripted(failure, httpx.Response(200, json=RUN))
    async with make_client(handler) as client:
        run = await client.agent_runs.create("do it")
    assert run.id == 5
    assert len(seen) == 2
    # The same body (and so the same idempotency token) is sent again.
    assert seen[0].content == seen[1].content


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "0.25", "retry-after-ms": "bogus"}, 0.25),
    ],
)
async def test_retry_after_is_honoured(headers: dict[str, str], expected: float) -> None:
    handler, seen = scripted(
        httpx.Response(429, json={"message": "slow"}, headers=headers),
        httpx.Response(200, json=RUN),
    )
    async with make_client(handler) as client:
        await client.agent_runs.get(5)
    assert sleeps(client) == [expected]
    assert len(seen) == 2


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 22, 12, 0, 0, tzinfo=timezone.utc)
    when = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": when}, now=now.timestamp()) == 30.0
    assert parse_retry_after({"retry-after": "not a date"}) is None
    assert parse_retry_after({"retry-after": "-3"}) is None
    assert parse_retry_after({}) is None


@pytest.mark.anyio
async def test_retry_after_above_cap_raises_with_the_hint() -> None:
    handler, seen = scripted(
        httpx.Response(429, json={"message": "later"}, headers={"retry-after": "120"}),
        httpx.Response(200, json=RUN),
    )
    async with make_client(handler) as client:
        with pytest.raises(cg.RateLimitError) as info:
            await client.agent_runs.get(5)
    assert info.value.retry_after == 120.0
    assert len(seen) == 1
    assert sleeps(client) == []


@pytest.mark.anyio
async def test_x_should_retry_is_obeyed() -> None:
    handler, seen = scripted(
        httpx.Response(500, json={"message": "no"}, headers={"x-should-retry": "false"}),
    )
    async with make_client(handler) as client:
        with pytest.raises(cg.ServerError):
            await client.agent_runs.get(5)
    assert len(seen) == 1

    handler, seen = scripted(
        httpx.Response(409, json={"message": "busy"}, headers={"x-should-retry": "true"}),
        httpx.Response(200, json=RUN),
    )
    async with make_client(handler) as client:
        await client.agent_runs.create("x")
    assert len(seen) == 2


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
async def test_client_errors_are_never_retried(status: int) -> None:
    handler, seen = scripted(*[httpx.Response(status, json={"message": "no"})] * 4)
    async with make_client(handler) as client:
        with pytest.raises(cg.APIStatusError):
            await client.agent_runs.get(5)
        with pytest.raises(cg.APIStatusError):
            await client.agent_runs.create("x")
        with pytest.raises(cg.APIStatusError):
            await client.agent_runs.resume(5, "x")
    assert len(seen) == 3


@pytest.mark.anyio
async def test_a_slow_body_cannot_hold_a_call_past_its_timeout() -> None:
    calls = itertools.count()

    async def handler(request: httpx.Request) -> httpx.Response:
        next(calls)
        await anyio.sleep(10)
        return httpx.Response(200, json=RUN)

    client = cg.AsyncCodegen(
        api_key="sk-x",
        org_id=1,
        timeout=0.2,
        max_retries=0,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        rate_limits=cg.RateLimits.off(),
    )
    async with client:
        with anyio.fail_after(5):
            with pytest.raises(cg.APITimeoutError):
                await client.agent_runs.get(5)


@pytest.mark.anyio
async def test_undecodable_success_is_a_response_validation_error() -> None:
    handler, _ = scripted(
        httpx.Response(200, content=b"<html>", headers={"content-type": "text/html"}),
        httpx.Response(200, json={"id": "five", "organization_id": 1}),
    )
    async with make_client(handler) as client:
        with pytest.raises(cg.ResponseValidationError, match="not JSON"):
            await client.agent_runs.get(5)
        with pytest.raises(cg.ResponseValidationError) as info:
            await client.agent_runs.get(5)
    assert info.value.path == "id"


def test_backoff_delays_follow_the_formula() -> None:
    for sample in range(50):
        delays = list(itertools.islice(backoff_delays(), 8))
        for n, delay in enumerate(delays):
            cap = min(8.0, 0.5 * 2**n)
            assert cap / 2 <= delay <= cap, (sample, n, delay)


@pytest.mark.anyio
async def test_the_key_never_leaks_into_reprs_or_errors() -> None:
    handler, _ = scripted(httpx.Response(401, json={"message": "bad key"}))
    client = make_client(handler)
    async with client:
        with pytest.raises(cg.AuthenticationError) as info:
            await client.agent_runs.get(5)
    for text in (repr(client), str(client), repr(client.settings), str(info.value)):
        assert "sk-secret-key-123" not in text


def test_the_key_is_never_sent_over_plain_http_to_a_remote_host() -> None:
    with pytest.raises(cg.ConfigurationError, match="http"):
        cg.AsyncCodegen(api_key="sk-x", base_url="http://api.codegen.com")
    cg.AsyncCodegen(api_key="sk-x", base_url="http://127.0.0.1:8765")


@pytest.mark.anyio
async def test_json_nested_past_the_stack_is_a_response_validation_error() -> None:
    handler, _ = scripted(httpx.Response(200, content=b"[" * 200_000 + b"]" * 200_000))
    async with make_client(handler) as client:
        with pytest.raises(cg.ResponseValidationError, match="not JSON"):
            await client.agent_runs.get(5)


@pytest.mark.anyio
async def test_requests_waiting_for_a_rate_token_hold_no_connection_slot() -> None:
    # One create per 5 s: twelve creates wait for tokens, more than the 10 slots. A read
    # must still go out at once instead of queueing behind them for a slot.
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            body = json.loads(request.content)
            return httpx.Response(200, json={**RUN, "metadata": body["metadata"]})
        return httpx.Response(200, json=RUN)

    client = cg.AsyncCodegen(
        api_key="sk-secret-key-123",
        org_id=1,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        rate_limits=cg.RateLimits({cg.RateClass.CREATE: cg.Limit(1, 5.0)}),
    )
    async with client, anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(client.agent_runs.create, "queued")
        await anyio.sleep(0.05)
        with anyio.fail_after(2):  # far less than the create window
            assert (await client.agent_runs.get(5)).id == 5
        tg.cancel_scope.cancel()
    # The creates cancelled while waiting for a token sent nothing: nothing to reconcile.
    assert client.agent_runs.unconfirmed_creates == []


@pytest.mark.anyio
@pytest.mark.parametrize(("status", "retried"), [(520, True), (599, True), (501, False)])
async def test_reads_retry_every_5xx_but_not_implemented(status: int, retried: bool) -> None:
    handler, seen = scripted(
        httpx.Response(status, json={"message": "edge"}), httpx.Response(200, json=RUN)
    )
    async with make_client(handler) as client:
        if retried:
            assert (await client.agent_runs.get(5)).id == 5
        else:
            with pytest.raises(cg.ServerError):
                await client.agent_runs.get(5)
    assert len(seen) == (2 if retried else 1)
