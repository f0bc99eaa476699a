"""Every error the SDK raises.

```
CodegenError
├── APIConnectionError ── APITimeoutError ── RateLimitTimeoutError (.rate_class, .next_token_in)
├── APIStatusError(status_code, message, body, request_id)
│   ├── BadRequestError 400          ├── AuthenticationError 401
│   ├── AgentRunLimitReachedError 402├── PermissionDeniedError 403
│   ├── NotFoundError 404            ├── ValidationError 422
│   ├── RateLimitError 429 (.retry_after)
│   └── ServerError 5xx
├── ResponseValidationError   (the server sent something the models can't read)
├── WaitTimeoutError          (.run: the last snapshot)
├── AgentRunFailedError       (.run; raised only with raise_on_failure=True)
├── AmbiguousCreateError      (.idempotency_key, .started_at)
├── RunNotStartedError        (a fan-out input never started: fail_fast, or its timeout)
├── ConfigurationError        (also a ValueError: a setting is missing or invalid)
└── JournalError              (also a ValueError: a batch journal cannot be used; names the file)
    ├── JournalMismatchError  (written for other inputs: `.index`, the first that differs)
    └── JournalInUseError     (held by another live process)
```
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import AgentRun

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AgentRunFailedError",
    "AgentRunLimitReachedError",
    "AmbiguousCreateError",
    "AuthenticationError",
    "BadRequestError",
    "CodegenError",
    "ConfigurationError",
    "JournalError",
    "JournalInUseError",
    "JournalMismatchError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimitTimeoutError",
    "ResponseValidationError",
    "RunNotStartedError",
    "ServerError",
    "ValidationError",
    "WaitTimeoutError",
    "status_error",
]


class CodegenError(Exception):
    """Base class of every error raised by the SDK.

    Every one survives `pickle` (multiprocessing, Ray, Celery's result backends) with
    its class, message and attributes: `__reduce__` rebuilds it from its `args` and its
    attributes without calling `__init__`, whose keyword-only arguments pickle's default
    cannot pass. Subclasses need nothing of their own for this."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(cls: type[CodegenError], args: tuple[Any, ...], state: dict[str, Any]) -> CodegenError:
    """The error `CodegenError.__reduce__` describes: `args` and attributes restored."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigurationError(CodegenError, ValueError):
    """A setting is missing or invalid; the message names it and where it came from."""


class APIConnectionError(CodegenError):
    """The request could not be sent, or no complete response came back.

    `.sent` is False when the request provably never reached the server (connection
    refused, connect timeout): nothing can have been processed.
    """

    def __init__(self, message: str = "Connection error.", *, sent: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.sent = sent


class APITimeoutError(APIConnectionError):
    """The call did not finish within its timeout."""

    def __init__(self, message: str = "Request timed out.", *, sent: bool = True) -> None:
        super().__init__(message, sent=sent)


class RateLimitTimeoutError(APITimeoutError):
    """No client-side rate-limit token came free before the call's deadline, so nothing
    was sent (`.sent` is always False). `.rate_class` names the bucket ("create",
    "standard", ...); `.next_token_in` is the seconds until its next token frees, as
    known when the wait gave up (None: every token is held by a request still in flight,
    and each frees one window after its response)."""

    def __init__(
        self,
        message: str = "No rate-limit token before the deadline; nothing was sent.",
        *,
        rate_class: str = "",
        next_token_in: float | None = None,
    ) -> None:
        super().__init__(message, sent=False)
        self.rate_class = rate_class
        self.next_token_in = next_token_in


class APIStatusError(CodegenError):
    """The API answered with a status of 400 or above."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        body: object = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.body = body
        self.request_id = request_id
        self.headers = headers or {}

    def __str__(self) -> str:
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.status_code}: {self.message}{suffix}"


class BadRequestError(APIStatusError):
    """400."""


class AuthenticationError(APIStatusError):
    """401: the API key was refused."""


class AgentRunLimitReachedError(APIStatusError):
    """402: the billing plan's allotted agent runs are used up."""


class PermissionDeniedError(APIStatusError):
    """403: the key has no access to this organization or resource."""


class NotFoundError(APIStatusError):
    """404."""


class ValidationError(APIStatusError):
    """422: the API rejected the request's parameters or body."""


class RateLimitError(APIStatusError):
    """429: too many requests. `.retry_after` is the server's hint in seconds, if any."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        body: object = None,
        request_id: str | None = None,
        headers: dict[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, status_code=status_code, body=body, request_id=request_id, headers=headers
        )
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx."""


class ResponseValidationError(CodegenError):
    """The server sent a response the models cannot read. `.path` names the field."""

    def __init__(self, message: str, *, path: str = "", body: object = None) -> None:
        super().__init__(f"{message} at {path or '<root>'}")
        self.message = message
        self.path = path
        self.body = body


class WaitTimeoutError(CodegenError):
    """A wait reached its deadline. `.run` is the last snapshot seen (None if none was)."""

    def __init__(self, message: str, *, run: AgentRun | None = None) -> None:
        super().__init__(message)
        self.run = run


class AgentRunFailedError(CodegenError):
    """An awaited run ended without succeeding (only with `raise_on_failure=True`)."""

    def __init__(self, run: AgentRun) -> None:
        super().__init__(f"agent run {run.id} ended with status {run.status}")
        self.run = run


class AmbiguousCreateError(CodegenError):
    """A create could not be confirmed or ruled out before its deadline.

    A run carrying `metadata[IDEMPOTENCY_KEY] == idempotency_key` may exist; look for it
    among runs created after `started_at` before creating it again.
    """

    def __init__(
        self, message: str, *, idempotency_key: str, started_at: datetime, cause: Any = None
    ) -> None:
        super().__init__(message)
        self.idempotency_key = idempotency_key
        self.started_at = started_at
        self.cause = cause


class RunNotStartedError(CodegenError):
    """A fan-out input whose run was never created: the fan-out stopped first
    (`fail_fast` after a failure, or its `timeout`). Nothing was sent for it."""


class JournalError(CodegenError, ValueError):
    """A batch journal cannot be used: not a journal of ours, a newer schema, unreadable,
    or a write failed (disk full, read-only). The message names the file and the cause;
    the file is never overwritten or deleted."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class JournalMismatchError(JournalError):
    """The journal was written for other inputs (another count, or an input that differs),
    or for another server, organization or user. `.index` is the first input that
    differs (None when the inputs are the same and the place differs)."""

    def __init__(self, message: str, *, path: str, index: int | None = None) -> None:
        super().__init__(message, path=path)
        self.index = index


class JournalInUseError(JournalError):
    """Another live process holds the journal (its batch is running)."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: AgentRunLimitReachedError,
    403: PermissionDeniedError,
    404: NotFoundError,
    422: ValidationError,
    429: RateLimitError,
}


def status_error(
    status_code: int,
    message: str,
    *,
    body: object = None,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    retry_after: float | None = None,
) -> APIStatusError:
    """The error class for a status code, built with everything the response told."""
    if status_code == 429:
        return RateLimitError(
            message, body=body, request_id=request_id, headers=headers, retry_after=retry_after
        )
    cls = _BY_STATUS.get(status_code)
    if cls is None:
        cls = ServerError if status_code >= 500 else APIStatusError
    return cls(message, status_code=status_code, body=body, request_id=request_id, headers=headers)
