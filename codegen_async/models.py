"""The API's response shapes as frozen, slotted attrs classes.

One class per response schema of the spec. Field names are the spec's. Fields the spec
lets be null default to None (even where the spec lists them as required), so a server
that omits them is still readable. Decoding lives in `_convert`; models know nothing of
the client.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import attrs

__all__ = [
    "AgentRun",
    "AgentRunLog",
    "AgentRunWithLogs",
    "AgentType",
    "CLIRules",
    "CheckSuiteSettings",
    "EditPRResult",
    "FunctionResult",
    "GithubPullRequest",
    "HealthCheck",
    "IntegrationStatus",
    "LogAnalysis",
    "OAuthProvider",
    "Organization",
    "OrganizationIntegrations",
    "OrganizationSettings",
    "PRState",
    "Page",
    "Repository",
    "RunStatus",
    "SetupCommandsResult",
    "SlackConnectToken",
    "SourceType",
    "User",
]

T = TypeVar("T")

AgentType = Literal["codegen", "claude_code"]
PRState = Literal["open", "closed", "draft", "ready_for_review"]


class _OpenStrEnum(str, enum.Enum):
    """A str-enum that keeps values it does not know instead of raising.

    An unknown value becomes a pseudo-member whose `.value`, `str()` and equality
    are the raw string; it is not cached, so unknown values never pile up.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        pseudo = str.__new__(cls, value)
        pseudo._name_ = value
        pseudo._value_ = value
        return pseudo

    def __str__(self) -> str:
        return str(self._value_)

    def __format__(self, format_spec: str) -> str:
        return format(str(self._value_), format_spec)

    @property
    def is_known(self) -> bool:
        """True for a value this SDK version lists, False for a kept unknown one."""
        return self._value_ in type(self)._value2member_map_


class RunStatus(_OpenStrEnum):
    """The status of an agent run. Unknown statuses are kept and are not terminal."""

    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    RUNNING = "RUNNING"
    EVALUATION = "EVALUATION"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    STOPPED = "STOPPED"
    TIMEOUT = "TIMEOUT"
    MAX_ITERATIONS_REACHED = "MAX_ITERATIONS_REACHED"
    OUT_OF_TOKENS = "OUT_OF_TOKENS"

    @property
    def is_terminal(self) -> bool:
        """True when the run no longer changes by itself."""
        return self._value_ in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """True only for COMPLETE."""
        return self._value_ == "COMPLETE"


# Statuses after which a run no longer changes by itself.
TERMINAL_STATUSES: frozenset[str] = frozenset(
    s.value
    for s in (
        RunStatus.COMPLETE,
        RunStatus.FAILED,
        RunStatus.ERROR,
        RunStatus.CANCELLED,
        RunStatus.STOPPED,
        RunStatus.TIMEOUT,
        RunStatus.MAX_ITERATIONS_REACHED,
        RunStatus.OUT_OF_TOKENS,
    )
)


class SourceType(_OpenStrEnum):
    """Where an agent run was started from (the spec's ApiAgentRunSourceType)."""

    LOCAL = "LOCAL"
    SLACK = "SLACK"
    GITHUB = "GITHUB"
    GITHUB_CHECK_SUITE = "GITHUB_CHECK_SUITE"
    GITHUB_PR_REVIEW = "GITHUB_PR_REVIEW"
    LINEAR = "LINEAR"
    API = "API"
    CHAT = "CHAT"
    JIRA = "JIRA"
    CLICKUP = "CLICKUP"
    MONDAY = "MONDAY"
    SETUP_COMMANDS = "SETUP_COMMANDS"


class _Model:
    """What every model has besides its fields: `request_id`, the server's x-request-id of
    the response it came in (None when the server sent none or the model was built by
    hand). It is not a field: not compared, not in the repr, not serialized, not kept by
    `attrs.evolve` or pickling."""

    __slots__ = ("_request_id",)

    @property
    def request_id(self) -> str | None:
        """The server's request id of the response this model came in, if it sent one."""
        return getattr(self, "_request_id", None)


@attrs.frozen
class GithubPullRequest(_Model):
    """A pull request an agent run opened (GithubPullRequestResponse)."""

    id: int
    created_at: datetime
    title: str | None = None
    url: str | None = None
    head_branch_name: str | None = None


@attrs.frozen
class AgentRun(_Model):
    """One agent run (AgentRunResponse)."""

    id: int
    organization_id: int
    status: RunStatus | None = None
    created_at: datetime | None = None
    web_url: str | None = None
    result: str | None = None
    summary: str | None = None
    source_type: SourceType | None = None
    github_pull_requests: list[GithubPullRequest] | None = None
    metadata: dict[str, Any] | None = None

    @property
    def is_terminal(self) -> bool:
        """True when the run's status is terminal (False when unknown or missing)."""
        return self.status is not None and self.status.is_terminal

    @property
    def succeeded(self) -> bool:
        """True when the run ended COMPLETE."""
        return self.status is not None and self.status.succeeded


@attrs.frozen
class AgentRunLog(_Model):
    """One step of an agent run's log (AgentRunLogResponse)."""

    agent_run_id: int
    created_at: datetime | None = None
    tool_name: str | None = None
    message_type: str | None = None
    thought: str | None = None
    observation: dict[str, Any] | str | None = None
    tool_input: dict[str, Any] | None = None
    tool_output: dict[str, Any] | None = None


@attrs.frozen
class AgentRunWithLogs(_Model):
    """An agent run with one page of its logs (AgentRunWithLogsResponse)."""

    id: int
    organization_id: int
    logs: list[AgentRunLog]
    status: RunStatus | None = None
    created_at: datetime | None = None
    web_url: str | None = None
    result: str | None = None
    metadata: dict[str, Any] | None = None
    total_logs: int | None = None
    page: int | None = None
    size: int | None = None
    pages: int | None = None

    @property
    def is_terminal(self) -> bool:
        """True when the run's status is terminal (False when unknown or missing)."""
        return self.status is not None and self.status.is_terminal

    @property
    def succeeded(self) -> bool:
        """True when the run ended COMPLETE."""
        return self.status is not None and self.status.succeeded


@attrs.frozen
class User(_Model):
    """A user (UserResponse)."""

    id: int
    github_user_id: str
    github_username: str
    email: str | None = None
    avatar_url: str | None = None
    full_name: str | None = None
    role: str | None = None
    is_admin: bool | None = None


@attrs.frozen
class OrganizationSettings(_Model):
    """An organization's switches (OrganizationSettings); defaults are the spec's."""

    enable_pr_creation: bool = True
    enable_rules_detection: bool = True


@attrs.frozen
class Organization(_Model):
    """An organization (OrganizationResponse)."""

    id: int
    name: str
    settings: OrganizationSettings


@attrs.frozen
class Repository(_Model):
    """A repository (RepoResponse)."""

    id: int
    name: str
    full_name: str
    github_id: str
    organization_id: int
    setup_status: str
    description: str | None = None
    visibility: str | None = None
    archived: bool | None = None
    language: str | None = None


@attrs.frozen
class Page(Generic[T], _Model):
    """One page of a listing (the spec's Page_*_ schemas)."""

    items: list[T]
    total: int
    page: int
    size: int
    pages: int


@attrs.frozen
class CheckSuiteSettings(_Model):
    """An organization's check-suite settings (CheckSuiteSettingsResponse)."""

    check_retry_count: int
    ignored_checks: list[str]
    check_retry_counts: dict[str, int]
    custom_prompts: dict[str, str]
    high_priority_apps: list[str]
    available_check_suite_names: list[str]


@attrs.frozen
class EditPRResult(_Model):
    """The outcome of editing a pull request (EditPRResponse)."""

    success: bool
    url: str | None = None
    number: int | None = None
    title: str | None = None
    state: str | None = None
    error: str | None = None


@attrs.frozen
class IntegrationStatus(_Model):
    """One integration of an organization (IntegrationStatus)."""

    integration_type: str
    active: bool
    token_id: int | None = None
    installation_id: int | None = None
    metadata: dict[str, Any] | None = None


@attrs.frozen
class OrganizationIntegrations(_Model):
    """All integrations of an organization (OrganizationIntegrationsResponse)."""

    organization_id: int
    organization_name: str
    integrations: list[IntegrationStatus]
    total_active_integrations: int


@attrs.frozen
class SetupCommandsResult(_Model):
    """The agent run started to generate setup commands (SetupCommandsResponse)."""

    agent_run_id: int
    status: str
    url: str


@attrs.frozen
class LogAnalysis(_Model):
    """The agent run started to analyse sandbox logs (AnalyzeLogsResponse)."""

    agent_run_id: int
    status: str
    message: str


@attrs.frozen
class CLIRules(_Model):
    """Rules for the CLI agent (CLIRulesResponse)."""

    organization_rules: str | None = None
    user_custom_prompt: str | None = None


@attrs.frozen
class SlackConnectToken(_Model):
    """A Slack Connect token (GenerateTokenResponse)."""

    token: str
    message: str
    expires_in_minutes: int


@attrs.frozen
class OAuthProvider(_Model):
    """An OAuth / MCP provider (OAuthProviderResponse)."""

    id: int
    name: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    is_mcp: bool
    default_scopes: list[str] | None = None
    meta: dict[str, Any] | None = None


@attrs.frozen
class FunctionResult(_Model):
    """The result of the legacy `POST /v1/run` (run a named function on a repository)."""

    success: bool
    web_link: str | None = None
    observation: str | None = None
    error: str | None = None
    logs: Any = None


@attrs.frozen
class HealthCheck(_Model):
    """`client.health_check()`: the key works, whose it is, where, and a round trip's time."""

    ok: bool
    user: User
    org_id: int
    latency: float  # seconds for one GET /v1/users/me
