"""The API as data: one row per operation of the spec, plus the legacy `POST /v1/run`.

A row is an operation's id (the spec's `operationId` up to `_v1_`, also the Emulator's
route name), its method, its path template (as the spec writes it), the rate class its
"Rate limit:" line gives (`RateClass.STANDARD` when it has none), whether it is safe to
repeat (the retry rule: `_config.retry_decision` reads it), and the model its answer
decodes into (`None`: free-form JSON, returned as decoded).

Resources send a row through the pipeline (`_resource.Resource._call`), the
Emulator builds its router from the rows and adds only handlers, the CLI's `curl` and the
tests read them; tests/api/test_operations.py checks the table against the vendored spec.
Nothing else spells a path or a rate class.
"""

from __future__ import annotations

import re
from typing import Any, Generic, TypeVar

import attrs

from ._limits import RateClass
from .models import (
    AgentRun,
    AgentRunWithLogs,
    CheckSuiteSettings,
    CLIRules,
    EditPRResult,
    FunctionResult,
    LogAnalysis,
    OAuthProvider,
    Organization,
    OrganizationIntegrations,
    Page,
    Repository,
    SetupCommandsResult,
    SlackConnectToken,
    User,
)

__all__ = ["BY_ID", "OPERATIONS", "SAFE_METHODS", "Operation", "find", "unlisted"]

T = TypeVar("T")

# Methods that change nothing on the server: what `AsyncCodegen.request` retries.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ONCE = False  # a row that must not be repeated blindly: it creates something


@attrs.frozen
class Operation(Generic[T]):
    """One operation of the API."""

    id: str
    method: str
    path: str  # the template, e.g. "/v1/organizations/{org_id}/users/{user_id}"
    response: type[T] | None  # None: free-form JSON
    rate_class: RateClass = RateClass.STANDARD
    # True (GETs, PUTs, PATCHes, flag-setting POSTs): sending it twice does no harm, so
    # anything transient is retried. False (creating POSTs): only failures that prove
    # nothing was processed are.
    repeatable: bool = True

    @property
    def in_org(self) -> bool:
        """True when the path names the organization (`{org_id}`)."""
        return "{org_id}" in self.path

    def url(self, **params: object) -> str:
        """The path with its parameters filled in."""
        return self.path.format(**params)


_ORGS = "/v1/organizations/{org_id}"
_RUN = f"{_ORGS}/agent/run"
_JSON: type[Any] | None = None

GET_USERS = Operation("get_users", "GET", f"{_ORGS}/users", Page[User])
GET_USER = Operation("get_user", "GET", f"{_ORGS}/users/{{user_id}}", User)
GET_CURRENT_USER_INFO = Operation("get_current_user_info", "GET", "/v1/users/me", User)
CREATE_AGENT_RUN = Operation("create_agent_run", "POST", _RUN, AgentRun, RateClass.CREATE, _ONCE)
GET_AGENT_RUN = Operation("get_agent_run", "GET", f"{_RUN}/{{agent_run_id}}", AgentRun)
LIST_AGENT_RUNS = Operation("list_agent_runs", "GET", f"{_ORGS}/agent/runs", Page[AgentRun])
RESUME_AGENT_RUN = Operation(
    "resume_agent_run", "POST", f"{_RUN}/resume", AgentRun, repeatable=_ONCE
)
BAN_ALL_CHECKS_FOR_AGENT_RUN = Operation(
    "ban_all_checks_for_agent_run", "POST", f"{_RUN}/ban", _JSON
)
UNBAN_ALL_CHECKS_FOR_AGENT_RUN = Operation(
    "unban_all_checks_for_agent_run", "POST", f"{_RUN}/unban", _JSON
)
REMOVE_CODEGEN_FROM_PR = Operation(
    "remove_codegen_from_pr", "POST", f"{_RUN}/remove-from-pr", _JSON
)
GET_REPOSITORIES = Operation("get_repositories", "GET", f"{_ORGS}/repos", Page[Repository])
GET_CHECK_SUITE_SETTINGS = Operation(
    "get_check_suite_settings", "GET", f"{_ORGS}/repos/check-suite-settings", CheckSuiteSettings
)
UPDATE_CHECK_SUITE_SETTINGS = Operation(
    "update_check_suite_settings", "PUT", f"{_ORGS}/repos/check-suite-settings", dict[str, Any]
)
EDIT_PULL_REQUEST_SIMPLE = Operation(
    "edit_pull_request_simple", "PATCH", f"{_ORGS}/prs/{{pr_id}}", EditPRResult, RateClass.PR_EDIT
)
EDIT_PULL_REQUEST = Operation(
    "edit_pull_request",
    "PATCH",
    f"{_ORGS}/repos/{{repo_id}}/prs/{{pr_id}}",
    EditPRResult,
    RateClass.PR_EDIT,
)
GET_ORGANIZATION_INTEGRATIONS = Operation(
    "get_organization_integrations_endpoint",
    "GET",
    f"{_ORGS}/integrations",
    OrganizationIntegrations,
)
GENERATE_SETUP_COMMANDS = Operation(
    "generate_setup_commands",
    "POST",
    f"{_ORGS}/setup-commands/generate",
    SetupCommandsResult,
    RateClass.SETUP_COMMANDS,
    _ONCE,
)
GET_ORGANIZATIONS = Operation("get_organizations", "GET", "/v1/organizations", Page[Organization])
GET_MCP_PROVIDERS = Operation("get_mcp_providers", "GET", "/v1/mcp-providers", list[OAuthProvider])
GET_OAUTH_TOKEN_STATUS = Operation(
    "get_oauth_token_status", "GET", "/v1/oauth/tokens/status", _JSON
)
REVOKE_OAUTH_TOKEN = Operation("revoke_oauth_token", "POST", "/v1/oauth/tokens/revoke", _JSON)
ANALYZE_SANDBOX_LOGS = Operation(
    "analyze_sandbox_logs",
    "POST",
    f"{_ORGS}/sandbox/{{sandbox_id}}/analyze-logs",
    LogAnalysis,
    RateClass.LOG_ANALYSIS,
    _ONCE,
)
GET_CLI_RULES = Operation(
    "get_cli_rules", "GET", f"{_ORGS}/cli/rules", CLIRules, RateClass.CLI_RULES
)
GENERATE_SLACK_CONNECT_TOKEN = Operation(
    "generate_slack_connect_token_endpoint",
    "POST",
    "/v1/slack-connect/generate-token",
    SlackConnectToken,
    repeatable=_ONCE,
)
GET_AGENT_RUN_LOGS = Operation(
    "get_agent_run_logs",
    "GET",
    "/v1/alpha/organizations/{org_id}/agent/run/{agent_run_id}/logs",
    AgentRunWithLogs,
    RateClass.LOGS,
)
# Not in the spec: the seeds' older function endpoint (`client.functions`).
LEGACY_RUN = Operation("legacy_run", "POST", "/v1/run", FunctionResult, repeatable=_ONCE)

OPERATIONS: tuple[Operation[Any], ...] = (
    GET_USERS,
    GET_USER,
    GET_CURRENT_USER_INFO,
    CREATE_AGENT_RUN,
    GET_AGENT_RUN,
    LIST_AGENT_RUNS,
    RESUME_AGENT_RUN,
    BAN_ALL_CHECKS_FOR_AGENT_RUN,
    UNBAN_ALL_CHECKS_FOR_AGENT_RUN,
    REMOVE_CODEGEN_FROM_PR,
    GET_REPOSITORIES,
    GET_CHECK_SUITE_SETTINGS,
    UPDATE_CHECK_SUITE_SETTINGS,
    EDIT_PULL_REQUEST_SIMPLE,
    EDIT_PULL_REQUEST,
    GET_ORGANIZATION_INTEGRATIONS,
    GENERATE_SETUP_COMMANDS,
    GET_ORGANIZATIONS,
    GET_MCP_PROVIDERS,
    GET_OAUTH_TOKEN_STATUS,
    REVOKE_OAUTH_TOKEN,
    ANALYZE_SANDBOX_LOGS,
    GET_CLI_RULES,
    GENERATE_SLACK_CONNECT_TOKEN,
    GET_AGENT_RUN_LOGS,
    LEGACY_RUN,
)
BY_ID: dict[str, Operation[Any]] = {op.id: op for op in OPERATIONS}

_PARAMETER = re.compile(r"\\\{[a-z_]+\\\}")
_PATTERNS: tuple[tuple[re.Pattern[str], Operation[Any]], ...] = tuple(
    (re.compile(_PARAMETER.sub("[0-9]+", re.escape(op.path))), op) for op in OPERATIONS
)


def find(method: str, path: str) -> Operation[Any] | None:
    """The row whose method and path template match `path` (ids as digits), if any."""
    for pattern, op in _PATTERNS:
        if op.method == method and pattern.fullmatch(path):
            return op
    return None


def unlisted(method: str) -> Operation[Any]:
    """A row for a call that matches no operation: the standard rate class, repeated only
    for a safe method, answered with free-form JSON (no template: traces derive one)."""
    return Operation("request", method, "", None, RateClass.STANDARD, method in SAFE_METHODS)
