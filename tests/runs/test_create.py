"""Exactly-once create against a scripted fake server (httpx.MockTransport)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

import codegen_async as cg
from codegen_async import IDEMPOTENCY_METADATA_KEY

ME = {"id": 77, "github_user_id": "1", "github_username": "me"}


class FakeAPI:
    """Stores runs; `faults` is a list of what each POST does: 'ok', 'commit_then_500',
    'lose' (500 without committing), 'commit_then_drop', 'commit_hidden' (commit, but
    the run is listed only after `hidden_lists` list calls)."""

    def __init__(self, faults: list[str], hidden_lists: int = 0) -> None:
        self.faults = faults
        self.runs: list[dict[str, Any]] = []
        self.posts = 0
        self.lists = 0
        self.hidden_lists = hidden_lists

    def tokens(self) -> list[str]:
        return [r["metadata"][IDEMPOTENCY_METADATA_KEY] for r in self.runs]

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/users/me":
            return httpx.Response(200, json=ME)
        if request.method == "POST" and path.endswith("/agent/run"):
            return self._post(json.loads(request.content))
        if path.endswith("/agent/runs"):
            self.lists += 1
            assert request.url.params["user_id"] == "77"
            assert request.url.params["source_type"] == "API"
            visible = self.runs if self.lists > self.hidden_lists else []
            items = list(reversed(visible))
            body = {"items": items, "total": len(items), "page": 1, "size": 100, "pages": 1}
            return httpx.Response(200, json=body)
        raise AssertionError(f"unexpected {request.method} {path}")

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        fault = self.faults[self.posts] if self.posts < len(self.faults) else "ok"
        self.posts += 1
        if fault == "lose":
            return httpx.Response(500, json={"message": "lost"})
        run = {
            "id": 1000 + len(self.runs),
            "organization_id": 1,
            "status": "PENDING",
            "source_type": "API",
            "metadata": body["metadata"],
        }
        self.runs.append(run)
        if fault in ("commit_then_500", "commit_hidden"):
            return httpx.Response(502, json={"message": "bad gateway"})
        if fault == "commit_then_drop":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        if fault == "commit_then_garbage":
            return httpx.Response(200, content=b"{not json")
        return httpx.Response(200, json=run)


def client_for(api: FakeAPI, *, max_retries: int = 3) -> cg.AsyncCodegen:
    return cg.AsyncCodegen(
        api_key="sk-test",
        org_id=1,
        max_retries=max_retries,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(api.handler)),
        rate_limits=cg.RateLimits.off(),
        poll_policy=cg.PollPolicy().scaled(0.001),
        create_policy=cg.CreatePolicy().scaled(0.001),
    )


@pytest.mark.anyio
@pytest.mark.parametrize("fault", ["commit_then_500", "commit_then_drop", "commit_then_garbage"])
async def test_committed_create_is_found_not_repeated(fault: str) -> None:
    api = FakeAPI([fault])
    async with client_for(api) as client:
        run = await client.agent_runs.create("build it", idempotency_key="tok-1")
    assert run.id == 1000
    assert api.posts == 1
    assert api.tokens() == ["tok-1"]
    assert client.agent_runs.unconfirmed_creates == []


@pytest.mark.anyio
async def test_lost_create_is_posted_again_with_the_same_token() -> None:
    api = FakeAPI(["lose"])
    async with client_for(api) as client:
        run = await client.agent_runs.create("build it")
    assert api.posts == 2
    assert len(api.runs) == 1
    assert run.metadata is not None
    assert api.tokens() == [run.metadata[IDEMPOTENCY_METADATA_KEY]]


@pytest.mark.anyio
async def test_a_run_listed_late_is_still_found() -> None:
    api = FakeAPI(["commit_hidden"], hidden_lists=2)
    async with client_for(api) as client:
        run = await client.agent_runs.create("build it", idempotency_key="late")
    assert api.posts == 1
    assert api.lists == 3
    assert run.id == 1000


@pytest.mark.anyio
async def test_undecided_create_raises_ambiguous_with_its_token() -> None:
    api = FakeAPI(["lose"] * 10)
    async with client_for(api, max_retries=1) as client:
        with pytest.raises(cg.AmbiguousCreateError) as info:
            await client.agent_runs.create("build it", idempotency_key="tok-x")
    assert info.value.idempotency_key == "tok-x"
    assert info.value.started_at.tzinfo is not None
    assert api.posts == 2
    assert api.runs == []
    assert [u.idempotency_key for u in client.agent_runs.unconfirmed_creates] == ["tok-x"]


@pytest.mark.anyio
async def test_a_definite_refusal_is_raised_at_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(402, json={"message": "plan limit", "status_code": 402})

    client = cg.AsyncCodegen(
        api_key="sk-test",
        org_id=1,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        rate_limits=cg.RateLimits.off(),
    )
    async with client:
        with pytest.raises(cg.AgentRunLimitReachedError):
            await client.agent_runs.create("x")


@pytest.mark.anyio
async def test_a_cancelled_create_exposes_its_token() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await anyio.sleep(10)
        raise AssertionError("not reached")

    client = cg.AsyncCodegen(
        api_key="sk-test",
        org_id=1,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        rate_limits=cg.RateLimits.off(),
    )
    async with client:
        with anyio.move_on_after(0.05):
            await client.agent_runs.create("x", idempotency_key="cancelled-tok")
    assert [u.idempotency_key for u in client.agent_runs.unconfirmed_creates] == ["cancelled-tok"]
