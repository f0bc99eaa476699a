"""Async-first Python SDK for the Codegen Developer API.

from codegen_async import AsyncCodegen

async with AsyncCodegen() as client:
    run = await client.run("Fix the flaky test in tests/test_api.py", repo_id=42)
    print(run.status, run.result)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from ._http import APIResponse
from ._limits import Limit, RateClass
from ._runspec import RunSpec
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

if TYPE_CHECKING:
    from ._fanout import ProgressEvent, ProgressKind, RunMany
    from ._outcome import ResumeCounts, RunOutcome
    from ._synthesis import DEFAULT_SYNTHESIS_PROMPT, MultiRunResult

# What a first call does not need loads on first use (PEP 562): name -> its module.
# tests/project/test_imports.py checks this table against __all__.
_LAZY = {
    "DEFAULT_SYNTHESIS_PROMPT": "._synthesis",
    "MultiRunResult": "._synthesis",
    "ProgressEvent": "._fanout",
    "ProgressKind": "._fanout",
    "ResumeCounts": "._outcome",
    "RunMany": "._fanout",
    "RunOutcome": "._outcome",
}

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


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if not TYPE_CHECKING:  # hidden from type checkers: a typo stays an error there

    def __getattr__(name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # the next lookup is a plain global
        return value
