"""The API's response shapes as frozen, slotted attrs classes.

One class per response schema of the spec. Field names are the spec's. Fields the spec
lets be null default to None (even where the spec lists them as required), so a server
that omits them is still readable. Decoding lives in `_convert`; models know nothing of
the client.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
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
M = TypeVar("M", bound="_Model")

logger = logging.getLogger("codegen_async")

# attrs field metadata: the converter refuses a value <= 0 for a field marked so.
POSITIVE_ID = "codegen_positive_id"


# The metadata of a required int field that must be > 0 (an id the client sends back).
_ID = {POSITIVE_ID: True}


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


# The docs' examples spell some statuses in their own words, lower case.
DOCS_STATUS_WORDS = {
    "COMPLETE": "completed",
    "FAILED": "failed",
    "RUNNING": "in_progress",
    "PENDING": "queued",
}

# The other words sources use for statuses, read after upper-casing (and "-" or " " as
# "_"): the docs' words, and "canceled", the American spelling of CANCELLED.
STATUS_ALIASES = {word.upper(): status for status, word in DOCS_STATUS_WORDS.items()}
STATUS_ALIASES["CANCELED"] = "CANCELLED"


class RunStatus(_OpenStrEnum):
    """The status of an agent run.

    Read case-insensitively, and the docs' other words are mapped ("completed" is
    COMPLETE, "in_progress" RUNNING, "queued" PENDING, ...: `STATUS_ALIASES`).
    A status still unknown is kept as its raw string (logged once per value): it is not
    terminal, so it never ends a wait by itself. `RunStatus.parse(text)` reads one.
    """

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

    @classmethod
    def parse(cls, text: str) -> RunStatus:
        """The status `text` names, in any spelling; an unknown one kept as it is."""
        return cls(text)

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        word = value.strip().upper().replace("-", "_").replace(" ", "_")
        known = cls._value2member_map_.get(STATUS_ALIASES.get(word, word))
        if known is not None:
            return known
        _note_unknown_status(value)
        return super()._missing_(value)

    @property
    def is_terminal(self) -> bool:
        """True when the run no longer changes by itself (never for an unknown status)."""
        return self._value_ in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        """True only for COMPLETE."""
        return self._value_ == "COMPLETE"

    @property
    def failed(self) -> bool:
        """True when the run ended without succeeding (terminal, not COMPLETE)."""
        return self.is_terminal and not self.succeeded


# Unknown statuses already logged; bounded, so a server inventing words cannot grow it.
_UNKNOWN_STATUSES_LOGGED: set[str] = set()
_UNKNOWN_STATUSES_MAX = 256
_unknown_lock = threading.Lock()


def _note_unknown_status(value: str) -> None:
    with _unknown_lock:
        seen = _UNKNOWN_STATUSES_LOGGED
        if value in seen or len(seen) >= _UNKNOWN_STATUSES_MAX:
            return
        _UNKNOWN_STATUSES_LOGGED.add(value)
    logger.warning(
        "unknown agent run status %r: kept as it is, and not taken as terminal", value[:100]
    )


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


# The one converter's two directions, handed over by `_convert` when it is imported (the
# package imports it before any model can be used): models sit below it and never import it.
_structure: Callable[[object, Any], Any] | None = None
_unstructure: Callable[[object], Any] | None = None


def use_codec(
    structure: Callable[[object, Any], Any], unstructure: Callable[[object], Any]
) -> None:
    """Called once by `_convert`: the functions `from_dict` and `to_dict` go through."""
    global _structure, _unstructure
    _structure, _unstructure = structure, unstructure


class _Model:
    """What every model has besides its fields: `request_id`, the server's x-request-id of
    the response it came in (None when the server sent none or the model was built by
    hand). It is not a field: not compared, not in the repr, not serialized, not kept by
    `attrs.evolve` or pickling.

    Every model also travels as JSON: `to_dict()` and `Model.from_dict(data)`, with
    `Model.from_dict(m.to_dict()) == m`."""

    __slots__ = ("_request_id",)

    @property
    def request_id(self) -> str | None:
        """The server's request id of the response this model came in, if it sent one."""
        return getattr(self, "_request_id", None)

    def to_dict(self) -> dict[str, Any]:
        """This model as JSON-safe data (only dict, list, str, int, float, bool and None)
        under the API's field names, as the server sends it: enums as their values,
        timestamps as ISO 8601 strings, nested models as dicts."""
        assert _unstructure is not None, "codegen_async._convert was not imported"
        data: dict[str, Any] = _unstructure(self)
        return data

    @classmethod
    def from_dict(cls: type[M], data: object) -> M:
        """The model `data` describes (as `to_dict()` or the API writes it), read by the
        same strict rules as a response; `ResponseValidationError` names a bad field."""
        assert _structure is not None, "codegen_async._convert was not imported"
        model: M = _structure(data, cls)
        return model


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

    id: int = attrs.field(metadata=_ID)
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

    agent_run_id: int = attrs.field(metadata=_ID)
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

    id: int = attrs.field(metadata=_ID)
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

    @classmethod
    def from_dict(cls: type[M], data: object, item_type: Any = Any) -> M:
        """The page `data` describes, its items read as `item_type` (e.g. `AgentRun`;
        by default they stay as the JSON data they are)."""
        assert _structure is not None, "codegen_async._convert was not imported"
        model: M = _structure(data, Page[item_type])
        return model


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

    agent_run_id: int = attrs.field(metadata=_ID)
    status: str
    url: str


@attrs.frozen
class LogAnalysis(_Model):
    """The agent run started to analyse sandbox logs (AnalyzeLogsResponse)."""

    agent_run_id: int = attrs.field(metadata=_ID)
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
