"""Reading the OpenAPI spec in tests: where it is, its operations, and sample bodies."""

from __future__ import annotations

import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from codegen_async import models

ROOT = Path(__file__).resolve().parent.parent


# A copy of the API's OpenAPI spec lives with the tests, so a fresh clone is complete;
# test_spec_copy_is_current checks it against the shared original when that is present.
VENDORED_SPEC = ROOT / "tests" / "spec" / "codegen-openapi.json"
SHARED_SPEC = ROOT.parent / "shared" / "spec" / "codegen-openapi.json"


def spec_path() -> Path:
    env = os.environ.get("CODEGEN_OPENAPI_SPEC")
    if env:
        return Path(env)
    return VENDORED_SPEC


@cache
def load_spec() -> dict[str, Any]:
    path = spec_path()
    if not path.exists():
        pytest.skip(f"OpenAPI spec not found at {path} (set CODEGEN_OPENAPI_SPEC)")
    return dict(json.loads(path.read_text()))


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path template, operation) for every operation of the spec."""
    spec = load_spec()
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]


def short_id(operation_id: str) -> str:
    """The spec's operationId up to `_v1_`: the row id in `codegen_async._operations`."""
    return operation_id.split("_v1_")[0]


def spec_by_row() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """{row id of `codegen_async._operations`: (METHOD, path template, operation)} for
    every operation of the spec."""
    return {short_id(op["operationId"]): (method, path, op) for method, path, op in operations()}


_RATE_LIMIT = re.compile(r"Rate limit: (\d+) requests per (?:(\d+) seconds|(minute))")


def rate_limit(op: dict[str, Any]) -> tuple[int, float] | None:
    """(requests, per seconds) from the operation's "Rate limit:" line, None without one."""
    found = _RATE_LIMIT.search(op.get("description") or "")
    if found is None:
        return None
    requests, seconds, minute = found.groups()
    return int(requests), 60.0 if minute else float(seconds)


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return dict(load_spec()["components"]["schemas"][name])
    return schema


def sample(schema: dict[str, Any], *, depth: int = 0) -> Any:
    """A value that satisfies `schema`, with every optional property filled in."""
    schema = resolve(schema)
    if "anyOf" in schema:
        non_null = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return sample(non_null[0], depth=depth) if non_null else None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if not props:
            extra = schema.get("additionalProperties")
            value = sample(extra, depth=depth + 1) if isinstance(extra, dict) else "value"
            return {"key": value}
        return {name: sample_field(name, sub, depth + 1) for name, sub in props.items()}
    if kind == "array":
        return [sample(schema.get("items", {}), depth=depth + 1)]
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "boolean":
        return True
    if kind == "string":
        return "text"
    return {}


def sample_field(name: str, schema: dict[str, Any], depth: int) -> Any:
    if name == "created_at":
        return "2026-11-22T10:00:00Z"
    if name == "status" and depth == 1:
        return "COMPLETE"
    return sample(schema, depth=depth)


def response_schema(op: dict[str, Any]) -> dict[str, Any]:
    content = op["responses"]["200"].get("content", {})
    return dict(content.get("application/json", {}).get("schema", {}))


# Every model a response returns, with the schema it reads (the one table: the model
# tests and the decoding fuzz both read it).
SCHEMAS: dict[str, Any] = {
    "GithubPullRequestResponse": models.GithubPullRequest,
    "AgentRunResponse": models.AgentRun,
    "AgentRunLogResponse": models.AgentRunLog,
    "AgentRunWithLogsResponse": models.AgentRunWithLogs,
    "UserResponse": models.User,
    "OrganizationSettings": models.OrganizationSettings,
    "OrganizationResponse": models.Organization,
    "RepoResponse": models.Repository,
    "CheckSuiteSettingsResponse": models.CheckSuiteSettings,
    "EditPRResponse": models.EditPRResult,
    "IntegrationStatus": models.IntegrationStatus,
    "OrganizationIntegrationsResponse": models.OrganizationIntegrations,
    "SetupCommandsResponse": models.SetupCommandsResult,
    "AnalyzeLogsResponse": models.LogAnalysis,
    "CLIRulesResponse": models.CLIRules,
    "GenerateTokenResponse": models.SlackConnectToken,
    "OAuthProviderResponse": models.OAuthProvider,
    "Page_AgentRunResponse_": models.Page[models.AgentRun],
    "Page_OrganizationResponse_": models.Page[models.Organization],
    "Page_RepoResponse_": models.Page[models.Repository],
    "Page_UserResponse_": models.Page[models.User],
}
