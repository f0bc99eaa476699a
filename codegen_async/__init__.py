"""Async-first Python SDK for the Codegen Developer API.

from codegen_async import AsyncCodegen

async with AsyncCodegen() as client:
    run = await client.run("Fix the flaky test in tests/test_api.py", repo_id=42)
    print(run.status, run.result)
"""

from __future__ import annotations

__version__ = "0.1.0"

from ._client import AsyncCodegen
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
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    ServerError,
    ValidationError,
    WaitTimeoutError,
)
from ._http import APIResponse
from ._limits import Limit, PollPolicy, RateClass, RateLimits
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

__all__ = [
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
    "FunctionResult",
    "HealthCheck",
    "Limit",
    "NotFoundError",
    "Organization",
    "Page",
    "PermissionDeniedError",
    "PollPolicy",
    "RateClass",
    "RateLimitError",
    "RateLimits",
    "Repository",
    "ResponseValidationError",
    "RunStatus",
    "ServerError",
    "SourceType",
    "UnconfirmedCreate",
    "User",
    "ValidationError",
    "WaitTimeoutError",
    "__version__",
]
