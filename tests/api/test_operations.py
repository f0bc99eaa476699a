"""Every operation of the spec has an SDK method that sends exactly the spec's request.

Each case calls one SDK method against an httpx.MockTransport that answers with a body
built from the spec's response schema, then checks the request (method, path, query,
JSON body) and that the answer decoded into the expected type.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import httpx
import pytest

from codegen_async import AsyncCodegen, RateLimits, models
from codegen_async._constants import IDEMPOTENCY_METADATA_KEY
from codegen_async._limits import RateClass
from codegen_async._operations import BY_ID, CREATE_AGENT_RUN, OPERATIONS

from ..conftest import make_client
from ..spec_tools import rate_limit, response_schema, sample, spec_by_row

ORG = 7
Call = Callable[[AsyncCodegen], Awaitable[Any]]


@attrs.frozen
class Case:
    call: Call
    path: str
    query: dict[str, str] = attrs.field(factory=dict)
    body: dict[str, Any] | None = None
    returns: type | None = None


async def _first(aiter: Any) -> Any:
    async for item in aiter:
        return item
    return None


CASES: dict[str, Case] = {
    "get_users": Case(
        lambda c: c.users.list_page(skip=5, limit=10),
        f"/v1/organizations/{ORG}/users",
        {"skip": "5", "limit": "10"},
        returns=models.Page,
    ),
    "get_user": Case(
        lambda c: c.users.get(3), f"/v1/organizations/{ORG}/users/3", returns=models.User
    ),
    "get_current_user_info": Case(lambda c: c.users.me(), "/v1/users/me", returns=models.User),
    "create_agent_run": Case(
        lambda c: c.agent_runs.create(
            "Fix it",
            repo_id=4,
            model="m",
            agent_type="claude_code",
            metadata={"team": "a"},
            images=["data:image/png;base64,AAAA"],
            idempotency_key="k1",
        ),
        f"/v1/organizations/{ORG}/agent/run",
        body={
            "prompt": "Fix it",
            "repo_id": 4,
            "model": "m",
            "agent_type": "claude_code",
            "images": ["data:image/png;base64,AAAA"],
            "metadata": {"team": "a", IDEMPOTENCY_METADATA_KEY: "k1"},
        },
        returns=models.AgentRun,
    ),
    "get_agent_run": Case(
        lambda c: c.agent_runs.get(11),
        f"/v1/organizations/{ORG}/agent/run/11",
        returns=models.AgentRun,
    ),
    "list_agent_runs": Case(
        lambda c: c.agent_runs.list_page(user_id=2, source_type="API", skip=0, limit=50),
        f"/v1/organizations/{ORG}/agent/runs",
        {"user_id": "2", "source_type": "API", "skip": "0", "limit": "50"},
        returns=models.Page,
    ),
    "resume_agent_run": Case(
        lambda c: c.agent_runs.resume(11, "Go on"),
        f"/v1/organizations/{ORG}/agent/run/resume",
        body={"agent_run_id": 11, "prompt": "Go on"},
        returns=models.AgentRun,
    ),
    "ban_all_checks_for_agent_run": Case(
        lambda c: c.agent_runs.ban_checks(11),
        f"/v1/organizations/{ORG}/agent/run/ban",
        body={"agent_run_id": 11},
    ),
    "unban_all_checks_for_agent_run": Case(
        lambda c: c.agent_runs.unban_checks(11),
        f"/v1/organizations/{ORG}/agent/run/unban",
        body={"agent_run_id": 11},
    ),
    "remove_codegen_from_pr": Case(
        lambda c: c.agent_runs.remove_from_pr(11),
        f"/v1/organizations/{ORG}/agent/run/remove-from-pr",
        body={"agent_run_id": 11},
    ),
    "get_repositories": Case(
        lambda c: c.repositories.list_page(),
        f"/v1/organizations/{ORG}/repos",
        {"skip": "0", "limit": "100"},
        returns=models.Page,
    ),
    "get_check_suite_settings": Case(
        lambda c: c.repositories.get_check_suite_settings(4),
        f"/v1/organizations/{ORG}/repos/check-suite-settings",
        {"repo_id": "4"},
        returns=models.CheckSuiteSettings,
    ),
    "update_check_suite_settings": Case(
        lambda c: c.repositories.update_check_suite_settings(
            4, check_retry_count=2, ignored_checks=["lint"]
        ),
        f"/v1/organizations/{ORG}/repos/check-suite-settings",
        {"repo_id": "4"},
        body={"check_retry_count": 2, "ignored_checks": ["lint"]},
        returns=dict,
    ),
    "edit_pull_request_simple": Case(
        lambda c: c.pull_requests.edit(9, state="closed"),
        f"/v1/organizations/{ORG}/prs/9",
        body={"state": "closed"},
        returns=models.EditPRResult,
    ),
    "edit_pull_request": Case(
        lambda c: c.pull_requests.edit_in_repo(4, 9, state="draft"),
        f"/v1/organizations/{ORG}/repos/4/prs/9",
        body={"state": "draft"},
        returns=models.EditPRResult,
    ),
    "get_organization_integrations_endpoint": Case(
        lambda c: c.integrations.get(),
        f"/v1/organizations/{ORG}/integrations",
        returns=models.OrganizationIntegrations,
    ),
    "generate_setup_commands": Case(
        lambda c: c.setup_commands.generate(4, prompt="use uv"),
        f"/v1/organizations/{ORG}/setup-commands/generate",
        body={"repo_id": 4, "prompt": "use uv", "trigger_source": "setup-commands"},
        returns=models.SetupCommandsResult,
    ),
    "get_organizations": Case(
        lambda c: c.organizations.list_page(skip=100, limit=100),
        "/v1/organizations",
        {"skip": "100", "limit": "100"},
        returns=models.Page,
    ),
    "get_mcp_providers": Case(lambda c: c.mcp_providers.list(), "/v1/mcp-providers", returns=list),
    "get_oauth_token_status": Case(
        lambda c: c.oauth.token_status(), "/v1/oauth/tokens/status", {"org_id": str(ORG)}
    ),
    "revoke_oauth_token": Case(
        lambda c: c.oauth.revoke("linear"),
        "/v1/oauth/tokens/revoke",
        {"provider": "linear", "org_id": str(ORG)},
    ),
    "analyze_sandbox_logs": Case(
        lambda c: c.sandbox.analyze_logs(5),
        f"/v1/organizations/{ORG}/sandbox/5/analyze-logs",
        returns=models.LogAnalysis,
    ),
    "get_cli_rules": Case(
        lambda c: c.cli_rules.get(), f"/v1/organizations/{ORG}/cli/rules", returns=models.CLIRules
    ),
    "generate_slack_connect_token_endpoint": Case(
        lambda c: c.slack_connect.generate_token(),
        "/v1/slack-connect/generate-token",
        body={"org_id": ORG},
        returns=models.SlackConnectToken,
    ),
    "get_agent_run_logs": Case(
        lambda c: c.agent_runs.logs_page(11, skip=10, limit=20, reverse=True),
        f"/v1/alpha/organizations/{ORG}/agent/run/11/logs",
        {"skip": "10", "limit": "20", "reverse": "true"},
        returns=models.AgentRunWithLogs,
    ),
}

LEGACY = Case(
    lambda c: c.functions.run("add-types", repo_full_name="acme/api", message="please"),
    "/v1/run",
    body={"codemod_name": "add-types", "repo_full_name": "acme/api", "message": "please"},
    returns=models.FunctionResult,
)
LEGACY_RESPONSE = {
    "success": True,
    "web_link": "https://codegen.com/x",
    "observation": "done",
    "error": None,
    "logs": "ok",
}


SPEC_OPS = spec_by_row()


def test_the_operation_table_is_the_spec() -> None:
    """Every spec operation has exactly one row, with its method, its path and the rate
    class its "Rate limit:" line gives (the read class without one); the table has nothing
    else but the legacy function endpoint."""
    assert len(SPEC_OPS) == 25
    documented = RateLimits.documented()
    for name, (method, path, op) in SPEC_OPS.items():
        rows = [row for row in OPERATIONS if row.id == name]
        assert len(rows) == 1, f"{name}: {len(rows)} rows"
        row = rows[0]
        assert (row.method, row.path) == (method, path), name
        line = rate_limit(op)
        if line is None:
            assert row.rate_class is RateClass.STANDARD, name
        else:
            limit = documented.get(row.rate_class)
            assert limit is not None, name
            assert (limit.requests, limit.per) == line, name
        if method == "GET":
            assert row.repeatable, name
    assert {row.id for row in OPERATIONS} - set(SPEC_OPS) == {"legacy_run"}
    assert len({(row.method, row.path) for row in OPERATIONS}) == len(OPERATIONS)
    assert BY_ID["legacy_run"].path == "/v1/run"


def test_rows_send_what_the_row_says() -> None:
    """A row's path fills its template; a creating POST is not repeatable."""
    assert CREATE_AGENT_RUN.url(org_id=7) == "/v1/organizations/7/agent/run"
    assert not CREATE_AGENT_RUN.repeatable
    assert CREATE_AGENT_RUN.rate_class is RateClass.CREATE
    assert not BY_ID["get_current_user_info"].in_org


def test_every_operation_has_a_method() -> None:
    missing = sorted({row.id for row in OPERATIONS} - set(CASES) - {"legacy_run"})
    assert not missing, f"operations without an SDK method: {missing}"
    extra = sorted(set(CASES) - set(SPEC_OPS))
    assert not extra, f"cases for operations not in the spec: {extra}"


def _client(answer: Any, seen: list[httpx.Request]) -> AsyncCodegen:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=answer, headers={"x-request-id": "req-1"})

    return make_client(handler, org_id=ORG, base_url="https://api.example.test/v1")


async def _check(case: Case, method: str, answer: Any) -> None:
    seen: list[httpx.Request] = []
    async with _client(answer, seen) as client:
        result = await case.call(client)
    assert len(seen) == 1
    request = seen[0]
    assert request.method == method
    assert request.url.host == "api.example.test"
    assert request.url.path == case.path
    assert dict(request.url.params) == case.query
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["user-agent"].startswith("codegen-async/")
    if case.body is None:
        assert request.content in (b"", b"null")
    else:
        assert json.loads(request.content) == case.body
    if case.returns is not None:
        assert isinstance(result, case.returns)


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(CASES))
async def test_request_shape_and_decoding(name: str) -> None:
    row = BY_ID[name]
    method, template, op = row.method, row.path, SPEC_OPS[name][2]
    case = CASES[name]
    # The concrete path follows the spec's template.
    parts, expected = template.split("/"), case.path.split("/")
    assert len(parts) == len(expected)
    for tpl, got in zip(parts, expected, strict=True):
        assert tpl == got or (tpl.startswith("{") and got.isdigit())
    # Query names are ones the spec declares for the operation.
    declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    assert set(case.query) <= declared
    await _check(case, method, sample(response_schema(op)))


@pytest.mark.anyio
async def test_legacy_function_endpoint() -> None:
    await _check(LEGACY, BY_ID["legacy_run"].method, LEGACY_RESPONSE)


@pytest.mark.anyio
async def test_list_iterators_follow_pages() -> None:
    seen: list[httpx.Request] = []
    runs = [{"id": i, "organization_id": ORG, "status": "COMPLETE"} for i in range(250, 0, -1)]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        skip, limit = int(request.url.params["skip"]), int(request.url.params["limit"])
        items = runs[skip : skip + limit]
        pages = -(-len(runs) // limit)
        body = {"items": items, "total": len(runs), "page": skip // limit + 1, "size": limit}
        return httpx.Response(200, json={**body, "pages": pages})

    client = AsyncCodegen(
        api_key="sk-test",
        org_id=ORG,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        rate_limits=RateLimits.off(),
    )
    async with client:
        got = [run.id async for run in client.agent_runs.list()]
    assert got == list(range(250, 0, -1))
    assert [r.url.params["skip"] for r in seen] == ["0", "100", "200"]


@pytest.mark.anyio
async def test_org_id_resolved_once_from_first_organization() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/v1/organizations":
            org = {"id": 42, "name": "acme", "settings": {}}
            return httpx.Response(
                200, json={"items": [org], "total": 1, "page": 1, "size": 1, "pages": 1}
            )
        return httpx.Response(200, json={"id": 1, "organization_id": 42, "status": "RUNNING"})

    client = AsyncCodegen(
        api_key="sk-test",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        rate_limits=RateLimits.off(),
    )
    async with client:
        await client.agent_runs.get(1)
        await client.agent_runs.get(1)
        assert await client.organization_id() == 42
    assert seen == [
        "/v1/organizations",
        "/v1/organizations/42/agent/run/1",
        "/v1/organizations/42/agent/run/1",
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.agent_runs.create(""), "prompt"),
        (lambda c: c.agent_runs.create("x", images=["http://x/img.png"]), "images[0]"),
        (lambda c: c.agent_runs.create("x", agent_type="gpt"), "agent_type"),
        (lambda c: c.agent_runs.create("x", repo_id=0), "repo_id"),
        (lambda c: c.agent_runs.create("x", metadata={"a": object()}), "metadata"),
        (lambda c: c.agent_runs.list_page(limit=101), "limit"),
        (lambda c: c.agent_runs.list_page(skip=-1), "skip"),
        (lambda c: c.agent_runs.get(True), "run_id"),
        (lambda c: c.pull_requests.edit(1, state="merged"), "state"),
        (lambda c: c.functions.run("f", repo_full_name="noslash"), "repo_full_name"),
        (lambda c: c.repositories.update_check_suite_settings(1, check_retry_count=11), "check"),
    ],
)
async def test_invalid_arguments_fail_before_sending(call: Call, message: str) -> None:
    seen: list[httpx.Request] = []
    async with _client({}, seen) as client:
        with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[")):
            await call(client)
    assert seen == []


def test_spec_copy_is_current() -> None:
    from ..spec_tools import SHARED_SPEC, VENDORED_SPEC

    if not SHARED_SPEC.exists():
        pytest.skip(f"no shared spec at {SHARED_SPEC} to compare with")
    assert VENDORED_SPEC.read_bytes() == SHARED_SPEC.read_bytes(), (
        "tests/spec/codegen-openapi.json differs from the shared spec: copy it again"
    )
