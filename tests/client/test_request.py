"""The escape hatch, `client.request(method, path, ...)`, and the limits on what a call may
send: the request body cap, ids within 64 bits, and the headers the client owns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

import codegen_async as cg
from codegen_async._settings import resolve_settings
from codegen_async.testing import Emulator

from ..http.test_telemetry import Otel, otel  # noqa: F401  (the in-memory OpenTelemetry)

FAST = 0.001
MiB = 1024 * 1024


class Counting(httpx.AsyncBaseTransport):
    """The Emulator's transport, keeping every request that reached it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        return await self.inner.handle_async_request(request)


async def _no_sleep(seconds: float) -> None:
    return None


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(time_scale=FAST, seed=5) as emulator:
        yield emulator


@pytest.fixture
async def wire(emu: Emulator) -> Counting:
    return Counting(emu.transport())


@pytest.fixture
async def client(emu: Emulator, wire: Counting) -> AsyncIterator[cg.AsyncCodegen]:
    http = httpx.AsyncClient(transport=wire)
    options = {**emu.client_options(), "http_client": http}
    async with http, cg.AsyncCodegen(**options) as codegen:
        codegen._http._sleep = _no_sleep  # backoff without waiting (the tests count, not time)
        yield codegen


# -- the escape hatch ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_request_returns_the_decoded_json_with_the_clients_key(
    client: cg.AsyncCodegen, emu: Emulator, wire: Counting
) -> None:
    me = await client.request("GET", "/v1/users/me")
    page = await client.request(
        "get", f"/v1/organizations/{emu.org_id}/users", params={"skip": 0, "limit": 2}
    )
    assert me == (await client.request("GET", f"/v1/organizations/{emu.org_id}/users/{me['id']}"))
    assert me["id"] == emu.user_id
    assert isinstance(page, dict)
    assert len(page["items"]) == 2
    assert [r.method for r in wire.seen] == ["GET", "GET", "GET"]
    assert wire.seen[1].url.params["limit"] == "2"
    assert all(r.headers["authorization"] == f"Bearer {emu.api_key}" for r in wire.seen)


@pytest.mark.anyio
async def test_request_sends_the_body_and_the_callers_headers(
    client: cg.AsyncCodegen, emu: Emulator, wire: Counting
) -> None:
    path = f"/v1/organizations/{emu.org_id}/agent/run"
    created = await client.request("POST", path, json={"prompt": "hi"}, headers={"X-Team": "a"})
    assert isinstance(created["status"], str)
    assert [run["id"] for run in emu.runs] == [created["id"]]
    assert wire.seen[-1].headers["x-team"] == "a"
    assert b'"prompt":"hi"' in wire.seen[-1].content


@pytest.mark.anyio
async def test_request_counts_against_the_rows_rate_class_else_the_standard_one(
    client: cg.AsyncCodegen, emu: Emulator
) -> None:
    before = await client.rate_limit_status()
    await client.request("POST", f"/v1/organizations/{emu.org_id}/agent/run", json={"prompt": "x"})
    with pytest.raises(cg.NotFoundError):
        await client.request("GET", "/v1/not/in/the/spec")
    after = await client.rate_limit_status()
    create, standard = cg.RateClass.CREATE, cg.RateClass.STANDARD
    assert after[create].remaining == before[create].remaining - 1
    assert after[standard].remaining == before[standard].remaining - 1


@pytest.mark.anyio
async def test_request_raises_the_sdks_errors(client: cg.AsyncCodegen, emu: Emulator) -> None:
    with pytest.raises(cg.NotFoundError) as missing:
        await client.request("GET", f"/v1/organizations/{emu.org_id}/agent/run/987654321")
    assert missing.value.status_code == 404
    with pytest.raises(cg.ValidationError):
        await client.request("POST", f"/v1/organizations/{emu.org_id}/agent/run", json={})


@pytest.mark.anyio
async def test_request_retries_safe_methods_only(
    client: cg.AsyncCodegen, emu: Emulator, wire: Counting
) -> None:
    """A 503 is retried for a GET; a POST and a PUT (even one whose row may be repeated)
    go out once through the escape hatch."""
    emu.faults.add("error_before", route="get_current_user_info", status=503, times=1)
    assert (await client.request("GET", "/v1/users/me"))["id"] == emu.user_id
    assert len(wire.seen) == 2
    wire.seen.clear()
    emu.faults.add("error_before", route="revoke_oauth_token", status=503, times=1)
    with pytest.raises(cg.ServerError):
        await client.request(
            "POST", "/v1/oauth/tokens/revoke", params={"provider": "github", "org_id": emu.org_id}
        )
    settings = f"/v1/organizations/{emu.org_id}/repos/check-suite-settings"
    emu.faults.add("error_before", route="update_check_suite_settings", status=503, times=1)
    with pytest.raises(cg.ServerError):
        await client.request("PUT", settings, params={"repo_id": 1}, json={"retrigger": True})
    assert [r.method for r in wire.seen] == ["POST", "PUT"]


UNDER_THE_BASE_URL_ONLY = [
    "https://evil.example/v1/users/me",
    "http://127.0.0.1:1/x",
    "//evil.example/v1/users/me",
    "///evil.example/x",
    "/\\evil.example/x",
    "\\\\evil.example\\x",
    "/v1\\..\\..\\x",
    "/%5cevil.example/x",
    "/v1/../../x",
    "/../x",
    "/v1/..",
    "/%2e%2e/x",
    "/%2E%2E/x",
    "/v1/%252e%252e/%252e%252e/x",
    "/v1%2f..%2f..%2fx",
    "/v1/./users/me",
    "/v1//users",
    "/v1/users/me\r\nHost: evil.example",
    "/v1/users/me%0d%0aHost:%20evil.example",
    "/v1/users\x00/me",
    "/v1/users\x7f",
    "/v1/users\x85",
    "/v1/users me",
    "/v1/users/me?org_id=1",
    "/v1/users/me#x",
    "v1/users/me",
    "evil.example/x",
    "@evil.example/x",
    "",
    "mailto:a@b",
]


@pytest.mark.anyio
@pytest.mark.parametrize("path", UNDER_THE_BASE_URL_ONLY)
async def test_a_path_that_could_leave_the_base_url_is_refused_unsent(
    client: cg.AsyncCodegen, wire: Counting, path: str
) -> None:
    with pytest.raises(ValueError, match="path"):
        await client.request("GET", path)
    assert wire.seen == []


@pytest.mark.anyio
async def test_a_base_url_with_a_path_keeps_every_call_under_it() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with (
        http,
        cg.AsyncCodegen(
            api_key="sk-x", org_id=1, base_url="https://api.example/base", http_client=http
        ) as client,
    ):
        assert await client.request("GET", "/v1/thing") == {"ok": True}
        for path in ("/../v1/thing", "/%2e%2e/v1/thing", "//api.example/v1"):
            with pytest.raises(ValueError):
                await client.request("GET", path)
    assert [str(r.url) for r in seen] == ["https://api.example/base/v1/thing"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "error"),
    [("CONNECT", ValueError), ("TRACE", ValueError), ("GET ", ValueError), (None, TypeError)],
)
async def test_an_unknown_method_is_refused_unsent(
    client: cg.AsyncCodegen, wire: Counting, method: Any, error: type[Exception]
) -> None:
    with pytest.raises(error, match="method"):
        await client.request(method, "/v1/users/me")
    assert wire.seen == []


# -- what a call may send ---------------------------------------------------------------

OWNED = ["Host", "host", "AUTHORIZATION", "Content-Length", "transfer-encoding", "Connection"]


@pytest.mark.anyio
@pytest.mark.parametrize("name", OWNED)
async def test_headers_the_client_owns_are_refused(
    client: cg.AsyncCodegen, wire: Counting, name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        client.with_options(headers={name: "evil.example"})
    with pytest.raises(ValueError, match=name):
        await client.request("GET", "/v1/users/me", headers={name: "evil.example"})
    assert wire.seen == []


@pytest.mark.anyio
async def test_an_oversized_create_is_refused_before_any_request(
    client: cg.AsyncCodegen, emu: Emulator, wire: Counting
) -> None:
    """`create(metadata=<10 MB>)` used to post 11 times and end ambiguous."""
    with pytest.raises(ValueError, match=r"request body is \d+ bytes, over max_request_bytes") as e:
        await client.agent_runs.create("big", metadata={"blob": "x" * (10 * MiB)})
    assert str(MiB) in str(e.value)
    assert wire.seen == []
    assert emu.runs == []
    assert client.agent_runs.unconfirmed_creates == []
    # Just under the cap goes out.
    run = await client.agent_runs.create("fits", metadata={"blob": "x" * (MiB // 2)})
    assert run.id > 0


@pytest.mark.anyio
async def test_the_request_cap_is_configurable(emu: Emulator, wire: Counting) -> None:
    http = httpx.AsyncClient(transport=wire)
    options = {**emu.client_options(), "http_client": http, "max_request_bytes": 200}
    async with http, cg.AsyncCodegen(**options) as client:
        assert client.settings.max_request_bytes == 200
        with pytest.raises(ValueError, match=r"over max_request_bytes \(200\)"):
            await client.request("POST", "/v1/anything", json={"a": "x" * 300})
        assert wire.seen == []
        derived = client.with_options(timeout=5)
        assert derived.settings.max_request_bytes == 200


def test_the_request_cap_setting_is_checked_and_stays_under_the_response_cap() -> None:
    base = {"api_key": "sk-x", "config_paths": ()}
    assert resolve_settings(**base, env={}).max_request_bytes == MiB
    from_env = resolve_settings(**base, env={"CODEGEN_MAX_REQUEST_BYTES": "4096"})
    assert from_env.max_request_bytes == 4096
    assert from_env.sources["max_request_bytes"] == "env CODEGEN_MAX_REQUEST_BYTES"
    # The default shrinks under a small response cap; a cap that was set there is refused.
    assert resolve_settings(**base, env={}, max_response_bytes=1000).max_request_bytes == 999
    with pytest.raises(cg.ConfigurationError, match="below max_response_bytes"):
        resolve_settings(**base, env={}, max_request_bytes=8 * MiB)
    for bad in (0, -1, "1k", True):
        with pytest.raises(cg.ConfigurationError, match="max_request_bytes"):
            resolve_settings(**base, env={}, max_request_bytes=bad)  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.parametrize("run_id", [2**63, 10**40, 10**5000], ids=["2**63", "10**40", "10**5000"])
async def test_ids_beyond_64_bits_are_refused_unsent(
    client: cg.AsyncCodegen, wire: Counting, run_id: int
) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        await client.agent_runs.get(run_id)
    with pytest.raises(ValueError, match="64-bit"):
        await client.users.get(run_id)
    assert wire.seen == []


@pytest.mark.anyio
async def test_the_largest_64_bit_id_is_sent(client: cg.AsyncCodegen, wire: Counting) -> None:
    with pytest.raises(cg.NotFoundError):
        await client.agent_runs.get(2**63 - 1)
    assert len(wire.seen) == 1


@pytest.mark.anyio
async def test_request_is_traced_under_the_rows_template_else_a_derived_one(
    client: cg.AsyncCodegen,
    emu: Emulator,
    otel: Otel,  # noqa: F811
) -> None:
    with pytest.raises(cg.NotFoundError):
        await client.request("GET", f"/v1/organizations/{emu.org_id}/agent/run/987654321")
    with pytest.raises(cg.NotFoundError):
        await client.request("GET", f"/v1/organizations/{emu.org_id}/custom/7")
    names = {span.name for span in otel.spans()}
    assert "GET /v1/organizations/{org_id}/agent/run/{agent_run_id}" in names
    assert "GET /v1/organizations/{org_id}/custom/{id}" in names
