"""Issue 14, item 6: pagination ends against a server that ignores `skip` or lies about
`total`, and log entries are yielded once each, by their position.

The hostile server is a small ASGI app (in process, httpx.ASGITransport)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import pytest

import codegen_async as cg

from ..conftest import make_client

ORG = 1
N = 250  # items the server really has


class HostileServer:
    """Users, runs and the logs of run 1, served with the chosen defect.

    `mode`: "honest"; "ignore_skip" (every page is the first, `total` a million);
    "lying_total" (honours skip, claims a million items); "stuck_at_end" (claims a
    million items, and answers the last full page for every skip past the end)."""

    def __init__(self, mode: str, *, terminal: bool = True) -> None:
        self.mode = mode
        self.terminal = terminal
        self.requests = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.requests += 1
        query = parse_qs(scope["query_string"].decode())
        skip = int(query.get("skip", ["0"])[0])
        limit = int(query.get("limit", ["100"])[0])
        path: str = scope["path"]
        if path == "/v1/users/me":
            body: Any = _user(1)
        elif path.endswith("/users"):
            body = self._page([_user(i + 1) for i in range(N)], skip, limit)
        elif path.endswith("/agent/runs"):
            body = self._page([_run(N - i) for i in range(N)], skip, limit)
        elif path.endswith("/logs"):
            page = self._page([_log(i) for i in range(N)], skip, limit)
            body = {**_run(1), "status": "COMPLETE" if self.terminal else "RUNNING"}
            body.update(logs=page["items"], total_logs=page["total"], page=1, size=limit)
        else:
            raise AssertionError(path)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})

    def _page(self, items: list[Any], skip: int, limit: int) -> dict[str, Any]:
        total = len(items)
        if self.mode == "ignore_skip":
            skip, total = 0, 1_000_000
        elif self.mode == "lying_total":
            total = 1_000_000
        elif self.mode == "stuck_at_end":
            total = 1_000_000
            if skip >= len(items):
                skip = len(items) - limit
        chunk = items[skip : skip + limit]
        return {"items": chunk, "total": total, "page": 1, "size": limit, "pages": 1}


def _user(i: int) -> dict[str, Any]:
    return {"id": i, "github_user_id": str(i), "github_username": f"u{i}"}


def _run(i: int) -> dict[str, Any]:
    return {"id": i, "organization_id": ORG, "status": "COMPLETE"}


def _log(i: int) -> dict[str, Any]:
    return {"agent_run_id": 1, "created_at": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
            "message_type": "ACTION", "thought": f"step {i}"}  # fmt: skip


async def _drain(source: AsyncIterator[Any], into: list[Any]) -> None:
    async for item in source:
        into.append(item)


@pytest.mark.anyio
@pytest.mark.parametrize("listing", ["users", "runs"])
@pytest.mark.parametrize("mode", ["ignore_skip", "stuck_at_end"])
async def test_a_list_that_brings_nothing_new_stops_with_the_reason(
    listing: str, mode: str
) -> None:
    # Before the fix: thousands of requests in seconds, the same items again and again.
    server = HostileServer(mode)
    got: list[Any] = []
    async with make_client(server, org_id=ORG, poll_policy=cg.PollPolicy().scaled(0.001)) as client:
        source = client.users.list() if listing == "users" else client.agent_runs.list()
        with pytest.raises(cg.ResponseValidationError, match="brought nothing new") as info:
            await _drain(source, got)
    ids = [item.id for item in got]
    assert len(ids) == len(set(ids))  # nothing yielded twice
    assert len(ids) == (100 if mode == "ignore_skip" else N)
    assert server.requests <= 5
    assert "skip" in str(info.value)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["honest", "lying_total"])
async def test_a_list_ends_when_the_items_do(mode: str) -> None:
    server = HostileServer(mode)
    async with make_client(server, org_id=ORG, poll_policy=cg.PollPolicy().scaled(0.001)) as client:
        ids = [run.id async for run in client.agent_runs.list()]
    assert ids == list(range(N, 0, -1))
    assert server.requests <= 4


@pytest.mark.anyio
@pytest.mark.parametrize("follow", [False, True])
async def test_logs_from_a_server_ignoring_skip_stop_without_repeating(follow: bool) -> None:
    # Before the fix: the first page again and again (60 times over in the review).
    server = HostileServer("ignore_skip", terminal=False)
    seen: list[Any] = []
    async with make_client(server, org_id=ORG, poll_policy=cg.PollPolicy().scaled(0.001)) as client:
        with pytest.raises(cg.ResponseValidationError, match="ignores skip"):
            await _drain(client.agent_runs.logs(1, follow=follow), seen)
    assert [entry.thought for entry in seen] == [f"step {i}" for i in range(100)]
    assert server.requests <= 3


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["honest", "lying_total"])
async def test_logs_are_read_once_each_by_position(mode: str) -> None:
    server = HostileServer(mode)
    async with make_client(server, org_id=ORG, poll_policy=cg.PollPolicy().scaled(0.001)) as client:
        seen = [entry.thought async for entry in client.agent_runs.logs(1, follow=True)]
    assert seen == [f"step {i}" for i in range(N)]
    assert server.requests <= 5
