"""The Emulator's API surface: every route, response shapes, auth, 404s, 422s, pages.

Talks to the app in process with a plain httpx.AsyncClient (not the SDK) and
checks response bodies against the spec's schemas with a small checker.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from codegen_async._config import CreatePolicy, PollPolicy, RateLimits
from codegen_async._operations import BY_ID
from codegen_async._stack import default_stack
from codegen_async.testing import ROUTES, Emulator, result_for

from ..spec_tools import load_spec, spec_by_row

ORG_PATH = "/v1/organizations/{org}"


# -- helpers shared by the test_emulator_* files ---------------------------------------


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """Where `value` breaks `schema` (the JSON Schema subset the spec uses)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return schema_errors(value, load_spec()["components"]["schemas"][name], where)
    if "anyOf" in schema:
        options = [schema_errors(value, option, where) for option in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{where}: matches no anyOf option"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in enum")
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    if kind is not None and not checks[kind](value):
        return [*errors, f"{where}: {value!r} is not {kind}"]
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                errors.append(f"{where}: missing {name}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for name, item in value.items():
            if name in props:
                errors += schema_errors(item, props[name], f"{where}.{name}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{where}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    return errors


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def assert_conforms(value: Any, schema: dict[str, Any]) -> None:
    errors = schema_errors(value, schema)
    assert not errors, errors


def response_schema_for(route: str, status: int) -> dict[str, Any]:
    """The spec's schema for `route`'s answer with `status`."""
    _, _, op = spec_by_row()[BY_ID[route].id]
    response = op["responses"][str(status)]
    return dict(response.get("content", {}).get("application/json", {}).get("schema", {}))


@contextlib.asynccontextmanager
async def api(emu: Emulator, key: str | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client authenticated as the caller (or with `key`)."""
    headers = {"authorization": f"Bearer {key or emu.api_key}"}
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=emu.base_url, headers=headers
    ) as client:
        yield client


def org_url(emu: Emulator, rest: str = "") -> str:
    return ORG_PATH.format(org=emu.org_id) + rest


def check_response(response: httpx.Response, route: str, status: int = 200) -> Any:
    """Assert status, JSON headers and the spec shape; return the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["x-request-id"]
    body = response.json()
    assert_conforms(body, response_schema_for(route, status))
    return body


# -- every route -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_every_route_answers_with_the_spec_shape() -> None:
    emu = Emulator(rate_limits=False)
    async with api(emu) as c:
        org = org_url(emu)
        body = check_response(await c.get("/v1/users/me"), "get_current_user_info")
        assert body["id"] == emu.user_id
        check_response(await c.get(f"{org}/users"), "get_users")
        check_response(await c.get(f"{org}/users/{emu.user_id}"), "get_user")
        orgs = check_response(await c.get("/v1/organizations"), "get_organizations")
        assert [o["id"] for o in orgs["items"]] == [emu.org_id]
        repos = check_response(await c.get(f"{org}/repos"), "get_repositories")
        repo_id = repos["items"][0]["id"]

        created = await c.post(
            f"{org}/agent/run", json={"prompt": "p", "repo_id": repo_id, "agent_type": "codegen"}
        )
        run = check_response(created, "create_agent_run")
        run_id = run["id"]
        check_response(await c.get(f"{org}/agent/run/{run_id}"), "get_agent_run")
        check_response(await c.get(f"{org}/agent/runs"), "list_agent_runs")
        logs = await c.get(f"/v1/alpha/organizations/{emu.org_id}/agent/run/{run_id}/logs")
        check_response(logs, "get_agent_run_logs")
        for route, path in (
            ("ban_all_checks_for_agent_run", "ban"),
            ("unban_all_checks_for_agent_run", "unban"),
            ("remove_codegen_from_pr", "remove-from-pr"),
        ):
            check_response(await c.post(f"{org}/agent/run/{path}", json={"agent_run_id": run_id}),
                           route)  # fmt: skip
        resumed = await c.post(
            f"{org}/agent/run/resume", json={"agent_run_id": run_id, "prompt": "again"}
        )
        assert check_response(resumed, "resume_agent_run")["status"] == "RUNNING"

        settings_url = f"{org}/repos/check-suite-settings"
        check_response(
            await c.get(settings_url, params={"repo_id": repo_id}), "get_check_suite_settings"
        )
        check_response(
            await c.put(
                settings_url, params={"repo_id": repo_id}, json={"ignored_checks": ["lint"]}
            ),
            "update_check_suite_settings",
        )
        edited = await c.patch(f"{org}/prs/7001", json={"state": "closed"})
        assert check_response(edited, "edit_pull_request_simple")["state"] == "closed"
        edited = await c.patch(f"{org}/repos/501/prs/7001", json={"state": "ready_for_review"})
        assert check_response(edited, "edit_pull_request")["state"] == "open"
        missing = await c.patch(f"{org}/repos/502/prs/7001", json={"state": "draft"})
        assert check_response(missing, "edit_pull_request")["success"] is False

        integrations = check_response(
            await c.get(f"{org}/integrations"), "get_organization_integrations_endpoint"
        )
        active = [i for i in integrations["integrations"] if i["active"]]
        assert integrations["total_active_integrations"] == len(active)
        setup = await c.post(f"{org}/setup-commands/generate", json={"repo_id": repo_id})
        setup_run = check_response(setup, "generate_setup_commands")["agent_run_id"]
        analyze = check_response(
            await c.post(f"{org}/sandbox/301/analyze-logs"), "analyze_sandbox_logs"
        )
        check_response(await c.get(f"{org}/cli/rules"), "get_cli_rules")
        check_response(await c.get("/v1/mcp-providers"), "get_mcp_providers")
        status = await c.get("/v1/oauth/tokens/status", params={"org_id": emu.org_id})
        assert "linear" in [p["provider"] for p in check_response(status, "get_oauth_token_status")]
        revoke = await c.post(
            "/v1/oauth/tokens/revoke", params={"provider": "linear", "org_id": emu.org_id}
        )
        assert check_response(revoke, "revoke_oauth_token")["revoked_tokens"] == 1
        status = await c.get("/v1/oauth/tokens/status", params={"org_id": emu.org_id})
        assert "linear" not in [p["provider"] for p in status.json()]
        token = await c.post("/v1/slack-connect/generate-token", json={"org_id": emu.org_id})
        assert (
            check_response(token, "generate_slack_connect_token_endpoint")["expires_in_minutes"]
            == 10
        )

    by_id = {r["id"]: r for r in emu.runs}
    assert by_id[setup_run]["source_type"] == "SETUP_COMMANDS"
    assert analyze["agent_run_id"] in by_id
    counted = emu.counters.requests_by_route
    assert set(ROUTES) - set(counted) == {"legacy_run"}


@pytest.mark.anyio
async def test_check_suite_settings_keep_state() -> None:
    emu = Emulator(rate_limits=False)
    url = org_url(emu, "/repos/check-suite-settings")
    async with api(emu) as c:
        before = (await c.get(url, params={"repo_id": 502})).json()
        assert before["ignored_checks"] == []
        change = {"check_retry_count": 7, "custom_prompts": {"build": "retry gently"}}
        assert (await c.put(url, params={"repo_id": 502}, json=change)).status_code == 200
        after = (await c.get(url, params={"repo_id": 502})).json()
        other = (await c.get(url, params={"repo_id": 503})).json()
    assert after["check_retry_count"] == 7
    assert after["custom_prompts"] == {"build": "retry gently"}
    assert other["check_retry_count"] == before["check_retry_count"]


@pytest.mark.anyio
async def test_legacy_run_function() -> None:
    emu = Emulator(rate_limits=False)
    async with api(emu) as c:
        repo = emu.repos[0]["full_name"]
        body = {"repo_full_name": repo, "codemod_name": "rename", "message": "x"}
        ok = (await c.post("/v1/run", json=body)).json()
        unknown = (await c.post("/v1/run", json={**body, "repo_full_name": "no/such"})).json()
        invalid = await c.post("/v1/run", json={"codemod_name": "rename"})
    assert set(ok) == {"success", "web_link", "observation", "error", "logs"}
    assert ok["success"] is True
    assert ok["error"] is None
    assert repo in ok["observation"]
    assert unknown["success"] is False
    assert unknown["error"]
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "repo_full_name"]


# -- auth, 403, 404, 405 ---------------------------------------------------------------


@pytest.mark.anyio
async def test_wrong_or_missing_key_is_401() -> None:
    emu = Emulator()
    async with api(emu, key="not-the-key") as c:
        wrong = await c.get("/v1/users/me")
    async with httpx.AsyncClient(transport=emu.transport(), base_url=emu.base_url) as c:
        missing = await c.get("/v1/users/me")
        basic = await c.get("/v1/users/me", headers={"authorization": f"Basic {emu.api_key}"})
    for response in (wrong, missing, basic):
        assert response.status_code == 401
        assert response.json() == {"message": "Invalid or missing API key.", "status_code": 401}


@pytest.mark.anyio
async def test_another_organization_is_403() -> None:
    emu = Emulator(rate_limits=False)
    other = emu.org_id + 1
    async with api(emu) as c:
        responses = [
            (await c.get(f"/v1/organizations/{other}/users"), "get_users"),
            (await c.get(f"/v1/organizations/{other}/agent/runs"), "list_agent_runs"),
            (await c.post(f"/v1/organizations/{other}/agent/run", json={"prompt": "p"}),
             "create_agent_run"),
            (await c.get(f"/v1/alpha/organizations/{other}/agent/run/1/logs"),
             "get_agent_run_logs"),
        ]  # fmt: skip
        status = await c.get("/v1/oauth/tokens/status", params={"org_id": other})
    for response, route in responses:
        body = check_response(response, route, 403)
        assert body == {
            "message": "You do not have access to this organization.",
            "status_code": 403,
        }
    assert status.status_code == 403
    assert emu.runs == []


@pytest.mark.anyio
async def test_unknown_ids_are_404_with_the_spec_bodies() -> None:
    emu = Emulator(rate_limits=False)
    async with api(emu) as c:
        org = org_url(emu)
        run = check_response(await c.get(f"{org}/agent/run/999999"), "get_agent_run", 404)
        user = check_response(await c.get(f"{org}/users/999999"), "get_user", 404)
        logs = await c.get(f"/v1/alpha/organizations/{emu.org_id}/agent/run/999999/logs")
        check_response(logs, "get_agent_run_logs", 404)
        repo = await c.post(f"{org}/agent/run", json={"prompt": "p", "repo_id": 999999})
        resume = await c.post(f"{org}/agent/run/resume", json={"agent_run_id": 5, "prompt": "p"})
        ban = await c.post(f"{org}/agent/run/ban", json={"agent_run_id": 5})
        sandbox = await c.post(f"{org}/sandbox/999/analyze-logs")
        no_logs = await c.post(f"{org}/sandbox/302/analyze-logs")
        setup = await c.post(f"{org}/setup-commands/generate", json={"repo_id": 999999})
        unknown_path = await c.get("/v1/nothing/here")
        wrong_method = await c.delete(f"{org}/agent/runs")
    assert run == {"message": "Agent run not found.", "status_code": 404}
    assert user == {"message": "User not found.", "status_code": 404}
    assert check_response(repo, "create_agent_run", 404)["message"].startswith("No repos found")
    for response in (resume, ban, sandbox, setup):
        assert response.status_code == 404
        assert response.json()["status_code"] == 404
    assert no_logs.status_code == 400
    assert unknown_path.status_code == 404
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET"
    assert emu.runs == []


# -- 422 -------------------------------------------------------------------------------


async def _detail(response: Any) -> list[dict[str, Any]]:
    r = await response
    assert r.status_code == 422, r.text
    body = r.json()
    assert_conforms(body, component("HTTPValidationError"))
    return list(body["detail"])


@pytest.mark.anyio
async def test_bad_bodies_are_422_with_fastapi_details() -> None:
    emu = Emulator(rate_limits=False)
    async with api(emu) as c:
        url = org_url(emu, "/agent/run")
        missing = await _detail(c.post(url, json={"repo_id": 501}))
        typed = await _detail(
            c.post(url, json={"prompt": 5, "images": "x", "metadata": [], "agent_type": "gpt"})
        )
        not_json = await _detail(
            c.post(url, content=b"{oops", headers={"content-type": "application/json"})
        )
        no_body = await _detail(c.post(url))
        not_object = await _detail(c.post(url, json=["prompt"]))
        float_id = await _detail(c.post(url, json={"prompt": "p", "repo_id": 1.5}))
        pr_state = await _detail(c.patch(org_url(emu, "/prs/7001"), json={"state": "merged"}))
        retries = await _detail(
            c.put(org_url(emu, "/repos/check-suite-settings"), params={"repo_id": 501},
                  json={"check_retry_count": 11, "check_retry_counts": {"a": "x"}})
        )  # fmt: skip
    assert missing == [
        {"type": "missing", "loc": ["body", "prompt"], "msg": "Field required", "input": None}
    ]
    assert [(d["type"], d["loc"]) for d in typed] == [
        ("string_type", ["body", "prompt"]),
        ("list_type", ["body", "images"]),
        ("dict_type", ["body", "metadata"]),
        ("literal_error", ["body", "agent_type"]),
    ]
    assert typed[3]["msg"] == "Input should be 'codegen' or 'claude_code'"
    assert not_json[0]["type"] == "json_invalid"
    assert not_json[0]["loc"][0] == "body"
    assert no_body == [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]
    assert not_object[0]["type"] == "model_attributes_type"
    assert float_id[0]["type"] == "int_from_float"
    assert pr_state[0]["type"] == "literal_error"
    assert [(d["type"], d["loc"]) for d in retries] == [
        ("less_than_equal", ["body", "check_retry_count"]),
        ("int_type", ["body", "check_retry_counts", "a"]),
    ]
    assert emu.runs == []


@pytest.mark.anyio
async def test_bad_parameters_are_422() -> None:
    emu = Emulator(rate_limits=False)
    async with api(emu) as c:
        runs = org_url(emu, "/agent/runs")
        low = await _detail(c.get(runs, params={"limit": 0, "skip": -1}))
        high = await _detail(c.get(runs, params={"limit": 101}))
        enum = await _detail(c.get(runs, params={"source_type": "EMAIL"}))
        user = await _detail(c.get(runs, params={"user_id": "me"}))
        path = await _detail(c.get(org_url(emu, "/agent/run/abc")))
        org = await _detail(c.get("/v1/organizations/one/users"))
        reverse = await _detail(c.get(f"/v1/alpha/organizations/{emu.org_id}/agent/run/1/logs",
                                      params={"reverse": "maybe"}))  # fmt: skip
        required = await _detail(c.get(org_url(emu, "/repos/check-suite-settings")))
    assert [(d["type"], d["loc"]) for d in low] == [
        ("greater_than_equal", ["query", "skip"]),
        ("greater_than_equal", ["query", "limit"]),
    ]
    assert low[1]["ctx"] == {"ge": 1}
    assert high[0]["msg"] == "Input should be less than or equal to 100"
    assert enum[0]["type"] == "enum"
    assert enum[0]["loc"] == ["query", "source_type"]
    assert user[0]["type"] == "int_parsing"
    assert path[0]["loc"] == ["path", "agent_run_id"]
    assert org[0]["loc"] == ["path", "org_id"]
    assert reverse[0]["type"] == "bool_parsing"
    assert required[0] == {
        "type": "missing",
        "loc": ["query", "repo_id"],
        "msg": "Field required",
        "input": None,
    }


# -- pages, order, filters -------------------------------------------------------------


@pytest.mark.anyio
async def test_pagination_math() -> None:
    emu = Emulator(rate_limits=False)
    async with api(emu) as c:
        url = org_url(emu, "/repos")
        total = len(emu.repos)
        pages = [(await c.get(url, params={"skip": s, "limit": 4})).json() for s in (0, 4, 8)]
        users = (await c.get(org_url(emu, "/users"), params={"skip": 3, "limit": 2})).json()
    assert [p["page"] for p in pages] == [1, 2, 3]
    assert all(p["total"] == total and p["size"] == 4 for p in pages)
    assert all(p["pages"] == math.ceil(total / 4) for p in pages)
    assert [len(p["items"]) for p in pages] == [4, total - 4, 0]
    ids = [r["id"] for p in pages for r in p["items"]]
    assert ids == [r["id"] for r in emu.repos]
    assert users["page"] == 2
    assert [u["id"] for u in users["items"]] == [u["id"] for u in emu.users[3:5]]


@pytest.mark.anyio
async def test_runs_list_is_newest_first_and_filters() -> None:
    emu = Emulator(rate_limits=False)
    other_user = emu.users[1]["id"]
    slack = emu.seed_run("from slack", user_id=other_user, source_type="SLACK")
    async with api(emu) as c:
        created = []
        for i in range(3):
            r = await c.post(
                org_url(emu, "/agent/run"), json={"prompt": f"p{i}", "metadata": {"i": i}}
            )
            created.append(r.json())
        url = org_url(emu, "/agent/runs")
        everything = (await c.get(url)).json()
        mine = (await c.get(url, params={"user_id": emu.user_id})).json()
        api_runs = (await c.get(url, params={"source_type": "API", "limit": 2})).json()
        theirs = (await c.get(url, params={"user_id": other_user, "source_type": "SLACK"})).json()
        nobody = (await c.get(url, params={"user_id": 424242})).json()
    assert [r["id"] for r in everything["items"]] == [r["id"] for r in reversed(created)] + [
        slack["id"]
    ]
    assert [r["id"] for r in mine["items"]] == [r["id"] for r in reversed(created)]
    assert all(r["source_type"] == "API" for r in created)
    assert [r["metadata"] for r in mine["items"]] == [{"i": 2}, {"i": 1}, {"i": 0}]
    assert api_runs["total"] == 3
    assert api_runs["pages"] == 2
    assert [r["id"] for r in theirs["items"]] == [slack["id"]]
    assert nobody == {"items": [], "total": 0, "page": 1, "size": 100, "pages": 0}
    assert emu.counters.runs_created == 3


# -- the Emulator object ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"time_scale": 0}, "time_scale"),
        ({"time_scale": float("inf")}, "time_scale"),
        ({"rate_limits": "yes"}, "rate_limits"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"error_rate": -0.1}, "error_rate"),
        ({"failure_rate": 0.7, "error_rate": 0.7}, "failure_rate + error_rate"),
        ({"pending_seconds": -1}, "pending_seconds"),
        ({"run_seconds": (5, 1)}, "run_seconds"),
        ({"run_seconds": "long"}, "run_seconds"),
        ({"seed": 1.5}, "seed"),
        ({"api_key": ""}, "api_key"),
        ({"org_id": 0}, "org_id"),
        ({"latency": -1}, "latency"),
    ],
)
def test_every_argument_is_validated(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name.replace("+", r"\+")):
        Emulator(**kwargs)


def test_client_options_match_the_emulator() -> None:
    with Emulator(time_scale=0.01) as emu:
        options = emu.client_options()
        client = options.pop("http_client")
        assert options == {
            "base_url": "http://emulator.localhost",
            "api_key": emu.api_key,
            "org_id": emu.org_id,
            "rate_limits": RateLimits.documented().scaled(0.01),
            "poll_policy": PollPolicy().scaled(0.01),
            "create_policy": CreatePolicy().scaled(0.01),
        }
        assert isinstance(client, default_stack().module.AsyncClient)  # httpx2's if installed
        assert not client.is_closed
        assert Emulator(rate_limits=False).client_options()["rate_limits"] == RateLimits.off()
    assert client.is_closed


def test_sync_with_block_needs_no_event_loop() -> None:
    with Emulator(time_scale=0.001, org_id=9, api_key="secret") as emu:
        assert (emu.org_id, emu.api_key) == (9, "secret")
        run = emu.seed_run("sync prompt")
        emu.advance(3600)
        (snapshot,) = emu.runs
    assert snapshot["id"] == run["id"]
    assert snapshot["status"] == "COMPLETE"
    assert snapshot["result"] == result_for("sync prompt")
    assert emu.prompts == {run["id"]: "sync prompt"}


@pytest.mark.anyio
async def test_async_with_closes_the_clients_it_handed_out() -> None:
    async with Emulator() as emu:
        clients = [emu.client_options()["http_client"] for _ in range(2)]
        response = await clients[0].get(
            "/v1/users/me", headers={"authorization": f"Bearer {emu.api_key}"}
        )
        assert response.json()["id"] == emu.user_id
    assert all(c.is_closed for c in clients)


def test_seed_run_and_configure_validate() -> None:
    emu = Emulator()
    with pytest.raises(ValueError, match="source_type"):
        emu.seed_run("p", source_type="EMAIL")
    with pytest.raises(ValueError, match="user_id"):
        emu.seed_run("p", user_id=1)
    with pytest.raises(ValueError, match="unknown"):
        emu.configure(colour="red")
    with pytest.raises(ValueError, match="failure_rate"):
        emu.configure(failure_rate=2)
    with pytest.raises(ValueError, match="seconds"):
        emu.advance(-1)
