"""Async-first Python SDK for the Codegen Developer API.

from codegen_async import AsyncCodegen

async with AsyncCodegen() as client:
    run = await client.run("Fix the flaky test in tests/test_api.py", repo_id=42)
    print(run.status, run.result)
"""

from __future__ import annotations

from ._client import AsyncCodegen
from ._config import CreatePolicy, PollPolicy, RateLimits, RateLimitStatus
from ._constants import IDEMPOTENCY_METADATA_KEY
from ._create import UnconfirmedCreate
from ._errors import (
    AgentRunFailedError,
    AgentRunLimitReachedError,
    AmbiguousCreateError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CodegenError,
    ConfigurationError,
    JournalError,
    JournalInUseError,
    JournalMismatchError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RateLimitTimeoutError,
    ResponseValidationError,
    RunNotStartedError,
    ServerError,
    ValidationError,
    WaitTimeoutError,
)
from ._fanout import ProgressEvent, ProgressKind, ResumeCounts, RunMany, RunOutcome, RunSpec
from ._http import APIResponse
from ._limits import Limit, RateClass
from ._synthesis import DEFAULT_SYNTHESIS_PROMPT, MultiRunResult
from ._version import __version__
from .models import (
    AgentRun,
    AgentRunLog,
    AgentRunWithLogs,
    FunctionResult,
    HealthCheck,
    Organization,
    Page,
    Repository,
    RunStatus,
    SourceType,
    User,
)
from .resources import FunctionOutcome

__all__ = [
    "DEFAULT_SYNTHESIS_PROMPT",
    "IDEMPOTENCY_METADATA_KEY",
    "APIConnectionError",
    "APIResponse",
    "APIStatusError",
    "APITimeoutError",
    "AgentRun",
    "AgentRunFailedError",
    "AgentRunLimitReachedError",
    "AgentRunLog",
    "AgentRunWithLogs",
    "AmbiguousCreateError",
    "AsyncCodegen",
    "AuthenticationError",
    "BadRequestError",
    "CodegenError",
    "ConfigurationError",
    "CreatePolicy",
    "FunctionOutcome",
    "FunctionResult",
    "HealthCheck",
    "JournalError",
    "JournalInUseError",
    "JournalMismatchError",
    "Limit",
    "MultiRunResult",
    "NotFoundError",
    "Organization",
    "Page",
    "PermissionDeniedError",
    "PollPolicy",
    "ProgressEvent",
    "ProgressKind",
    "RateClass",
    "RateLimitError",
    "RateLimitStatus",
    "RateLimitTimeoutError",
    "RateLimits",
    "Repository",
    "ResponseValidationError",
    "ResumeCounts",
    "RunMany",
    "RunNotStartedError",
    "RunOutcome",
    "RunSpec",
    "RunStatus",
    "ServerError",
    "SourceType",
    "UnconfirmedCreate",
    "User",
    "ValidationError",
    "WaitTimeoutError",
    "__version__",
]
