"""The one request pipeline: every call goes through `Pipeline.send(row, Request(...))`.

Per attempt: a rate-limit token, then a connection slot (an `anyio.CapacityLimiter` no
larger than the pool, so requests queue here and never inside httpcore), the exchange under
the call's deadline, then error mapping or decoding. Between attempts: a retry decision
(`_config.retry_decision`, a value) and a backoff sleep taken with `anyio.sleep`
(backoff's own async decorator sleeps with asyncio and breaks under trio, so only its
generators are used).

The call's deadline (`timeout`, 30 s by default) covers the waits for a rate-limit
token, the exchanges and the sleeps between them, so neither a body that drips slowly nor
a long Retry-After can hold a call past its timeout. Waiting for a connection slot is
queueing, not work, and is not charged to it.

Only a 2xx is a success. Redirects are never followed (a 3xx is an `APIStatusError`
naming where it pointed): the key must not follow the request to another place. A body
is read as it streams in and decoded (gzip, deflate) chunk by chunk with a bounded output,
so a body that decodes past `Settings.max_response_bytes` stops there and raises
`ResponseValidationError` (a 2xx) or is cut at the cap (an error's body), never held
whole. Plain http is allowed only to loopback (see `_settings`), and so is the proxy that
would carry it: an `http://` loopback base URL never goes through a proxy taken from the
environment (`HTTP_PROXY`, `ALL_PROXY`: a proxy elsewhere could not reach this machine's
loopback anyway, and would see the key in clear), and a caller's `http_client` that
routes it through a proxy that is not itself on loopback is refused with a
`ConfigurationError` naming that proxy (any password masked).
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import platform
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import attrs
import httpx

from . import _errors
from ._config import DEFAULT_MAX_CONNECTIONS, backoff_delays, retry_decision
from ._convert import structure, with_request_id
from ._curl import Capture, CaptureStop
from ._limits import RateClass
from ._operations import Operation
from ._ratelimit import RateLimiter
from ._settings import Settings
from ._stack import (
    HTTPClient,
    HTTPHeaders,
    HTTPResponse,
    Stack,
    _check_proxy,
    _read_capped,
    build_client,
    failures,
    stack_for,
)
from ._validate import redact_url
from ._version import __version__

if TYPE_CHECKING:
    from ._telemetry import CallTrace, Telemetry

__all__ = ["APIResponse", "Pipeline", "Request", "parse_retry_after"]

T = TypeVar("T")

logger = logging.getLogger("codegen_async")


@attrs.frozen
class APIResponse:
    """A finished exchange: what came back and what it took."""

    status_code: int
    headers: HTTPHeaders
    content: bytes
    request_id: str | None
    retries: int
    elapsed: float

    def json(self) -> Any:
        return json.loads(self.content)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, else `Retry-After` (seconds
    or an HTTP date); None when absent or unreadable."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            ms = float(raw_ms)
        except ValueError:
            ms = math.nan
        if math.isfinite(ms) and ms >= 0:
            return ms / 1000.0
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        current = datetime.now(timezone.utc).timestamp() if now is None else now
        return max(0.0, when.timestamp() - current)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def user_agent(extra: str | None, stack: Stack) -> str:
    ua = f"codegen-async/{__version__} Python/{platform.python_version()} {stack.version}"
    return f"{ua} {extra}" if extra else ua


def _error_message(body: object, status_code: int) -> str:
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
        detail = body.get("detail")
        if isinstance(detail, str) and detail:
            return detail
        if isinstance(detail, list) and detail:
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg")))
            if parts:
                return "; ".join(parts)
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return f"HTTP {status_code}"


def _decode_json(response: APIResponse) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError) as exc:  # nested deeper than Python's stack allows
        raise _errors.ResponseValidationError(
            f"response is not JSON ({type(exc).__name__}: {exc})", body=response.content[:200]
        ) from None


def _decode_error_body(content: bytes) -> object:
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


@attrs.define
class _Budget:
    """Seconds of exchange and backoff a call may still spend."""

    remaining: float


@attrs.frozen
class Request:
    """What one call sends: the method, a path under the base URL (its parameters filled
    in), the query, the JSON body, headers of its own (added to the client's), and
    `on_send`, called as each attempt goes out (holding its token and slot)."""

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: object = None
    headers: Mapping[str, str] | None = None
    on_send: Callable[[], object] | None = attrs.field(default=None, eq=False)


class Pipeline:
    """Sends requests for one client. Owns its httpx client unless one was given."""

    def __init__(
        self,
        settings: Settings,
        *,
        limiter: RateLimiter,
        http_client: HTTPClient | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
        extra_headers: Mapping[str, str] | None = None,
        on_response: Callable[[APIResponse], object] | None = None,
        slots: anyio.CapacityLimiter | None = None,
        telemetry: Telemetry | None = None,
        capture: Capture | None = None,
    ) -> None:
        """`capture`: a pipeline that never sends; the first request a call builds goes
        into it, and the call ends there (`CaptureStop`)."""
        self.settings = settings
        self.telemetry = telemetry  # None: tracing off (every hook below is skipped)
        self._base = settings.base_url
        self._shown_base = redact_url(settings.base_url)
        self._max_body = settings.max_response_bytes
        self._limiter = limiter
        self._sleep = sleep
        self._clock = clock
        self._on_response = on_response
        self._owns_client = http_client is None
        stack = stack_for(http_client)
        headers = {
            "Authorization": f"Bearer {settings.api_key}",
            "User-Agent": user_agent(settings.user_agent, stack),
            "Accept": "application/json",
        }
        if http_client is None:
            http_client = build_client(
                stack,
                headers=headers,
                timeout=settings.timeout,
                max_connections=max_connections,
                base_url=settings.base_url,
            )
            headers = {}
        _check_proxy(http_client, settings.base_url)
        headers.update(extra_headers or {})
        # Per-request headers only when the httpx client doesn't carry them already.
        self._headers: dict[str, str] | None = headers or None
        self._given_client = http_client
        # httpx2's client has httpx's shape: typed as httpx's for the calls below
        self._client = cast("httpx.AsyncClient", http_client)
        self._failures = failures()
        self._slots = anyio.CapacityLimiter(max_connections) if slots is None else slots
        self._timeout = stack.timeout(settings.timeout)
        self.capture = capture
        total = settings.timeout
        self._deadline = max(
            (t for t in (total.connect, total.read, total.write, total.pool) if t is not None),
            default=math.inf,
        )

    @property
    def http_client(self) -> HTTPClient:
        return self._given_client

    @property
    def deadline(self) -> float:
        """The longest of the settings' timeouts: the budget of one call, retries included."""
        return self._deadline

    def derive(
        self,
        settings: Settings,
        *,
        extra_headers: Mapping[str, str] | None,
        on_response: Callable[[APIResponse], object] | None,
        capture: Capture | None = None,
    ) -> Pipeline:
        """A pipeline with other settings sharing this one's connections, slots and limiter
        (with a `capture`, one that never sends)."""
        headers = dict(self._headers or {})
        headers.update(extra_headers or {})
        return Pipeline(
            settings,
            limiter=self._limiter,
            http_client=self._given_client,
            sleep=self._sleep,
            clock=self._clock,
            extra_headers=headers,
            on_response=on_response,
            slots=self._slots,
            telemetry=self.telemetry,
            capture=capture,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def send(self, op: Operation[T], request: Request) -> T:
        """The one entry point: send `request` as the row `op` says (its rate class, whether
        it may be repeated, its template for traces), under one deadline, retried as
        `_config.retry_decision` allows; a 2xx decoded into the row's model (carrying the
        response's request id), or its free-form JSON when it has none; else raise."""
        built = self._build(request)
        if self.capture is not None:
            if self.capture.request is None:
                self.capture.request = built
            raise CaptureStop(
                f"{request.method} {self._shown_base}{request.path}: captured, not sent"
            )
        if self.telemetry is None or not self.telemetry.active():
            response = await self._attempts(op, request, built, None)
        else:
            create = op.rate_class is RateClass.CREATE
            template = op.path or None
            with self.telemetry.call(request.method, request.path, template, create) as trace:
                response = await self._attempts(op, request, built, trace)
        data = _decode_json(response)
        if op.response is None:
            return data  # type: ignore[no-any-return]
        return with_request_id(structure(data, op.response), response.request_id)

    def _build(self, request: Request) -> httpx.Request:
        """The httpx request every attempt sends (built once: the body encoded once), its
        body within `max_request_bytes`: a larger one is refused here, unsent."""
        headers = self._headers
        if request.headers:
            headers = {**(headers or {}), **request.headers}
        built = self._client.build_request(
            request.method,
            self._base + request.path,
            params=request.params,
            json=request.json,
            headers=headers,
            timeout=self._timeout,
        )
        size, cap = len(built.content), self.settings.max_request_bytes
        if size > cap:
            raise ValueError(
                f"{request.method} {self._shown_base}{request.path}: the request body is "
                f"{size} bytes, over max_request_bytes ({cap}); nothing was sent"
            )
        return built

    async def _attempts(
        self, op: Operation[Any], request: Request, built: httpx.Request, trace: CallTrace | None
    ) -> APIResponse:
        """Attempts until a 2xx, or until `retry_decision`, the retries left or the
        deadline says to stop; then the last failure is raised."""
        budget = _Budget(self._deadline)
        delays = backoff_delays()
        attempt = 0
        while True:
            outcome = await self._attempt(op, request, built, budget, attempt, trace)
            if isinstance(outcome, APIResponse):
                return outcome
            decision = retry_decision(outcome, repeatable=op.repeatable)
            if decision is None:
                raise outcome
            delay = next(delays) if decision.delay is None else decision.delay
            if attempt >= self.settings.max_retries or delay >= budget.remaining:
                raise outcome
            if trace is not None:
                trace.retrying(outcome)
            logger.debug(
                "retry %s %s in %.2fs after: %s", request.method, request.path, delay, outcome
            )
            await self._sleep(delay)
            budget.remaining -= delay
            attempt += 1

    async def _attempt(
        self,
        op: Operation[Any],
        request: Request,
        built: httpx.Request,
        budget: _Budget,
        attempt: int,
        trace: CallTrace | None,
    ) -> APIResponse | _errors.APIConnectionError | _errors.APIStatusError:
        """One attempt: the answer, or the failure that ended it (for the retry decision).
        Failures no retry can mend (no rate-limit token in time, a body that cannot be
        read) are raised."""
        method = request.method
        if trace is not None:
            trace.queued()
        # The rate-limit token first, then a connection slot: a request waiting for its
        # token (a create, for up to a minute) must not hold a slot that reads need.
        bucket = self._limiter.bucket(op.rate_class)
        token: object = None
        if bucket is not None:  # the wait for a token is part of the call's deadline
            waited = self._clock()
            token = await bucket.acquire(budget.remaining)  # or RateLimitTimeoutError
            budget.remaining -= self._clock() - waited
        if trace is not None:
            trace.token_acquired(op.rate_class.value)
        sent: float | None = None
        try:
            async with self._slots:
                sent = self._clock()
                if trace is not None:
                    trace.sent()
                if request.on_send is not None:
                    request.on_send()
                try:
                    exchanged = await self._exchange(built, budget)
                finally:
                    elapsed = self._clock() - sent
                    budget.remaining -= elapsed
        finally:
            if bucket is not None:
                await bucket.release(token, sent=sent is not None)
        if isinstance(exchanged, _errors.APIConnectionError):
            return exchanged
        response, content = exchanged
        request_id = response.headers.get("x-request-id")
        if trace is not None:
            trace.answered(response.status_code, request_id)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s in %.1f ms (request id %s, attempt %d)",
                method,
                self._shown(str(built.url)),
                response.status_code,
                elapsed * 1000,
                request_id,
                attempt + 1,
            )
        if 200 <= response.status_code < 300:
            result = APIResponse(
                response.status_code, response.headers, content, request_id, attempt, elapsed
            )
            if self._on_response is not None:
                self._on_response(result)
            return result
        error = self._status_error(response, content, request_id)
        if isinstance(error, _errors.RateLimitError) and bucket is not None:
            await bucket.slow_down(error.retry_after)  # held at most one window
        return error

    async def _exchange(
        self, request: httpx.Request, budget: _Budget
    ) -> tuple[HTTPResponse, bytes] | _errors.APIConnectionError:
        """Send and read the body (capped) within the budget: the answer, or the transport
        failure mapped to the SDK's (its cause kept)."""
        limit = budget.remaining
        try:
            with anyio.fail_after(limit if math.isfinite(limit) else None):
                response = await self._client.send(request, stream=True, follow_redirects=False)
                try:
                    content, too_large = await _read_capped(response, self._max_body)
                finally:
                    await response.aclose()
        except self._failures.decoding as exc:
            method, shown = self._named(request)
            raise _errors.ResponseValidationError(
                f"{method} {shown}: the response body cannot be decoded ({exc})"
            ) from None
        except TimeoutError:
            method, shown = self._named(request)
            return _errors.APITimeoutError(f"{method} {shown} did not finish within {limit:.3g}s")
        except self._failures.transport as exc:  # a timeout of httpx's included
            method, shown = self._named(request)
            sent = not isinstance(exc, self._failures.not_sent)
            if isinstance(exc, self._failures.timeout):
                text = f"{method} {shown} timed out: {type(exc).__name__}"
                error: _errors.APIConnectionError = _errors.APITimeoutError(text, sent=sent)
            else:
                text = f"{method} {shown} failed: {type(exc).__name__}: {exc}"
                error = _errors.APIConnectionError(text, sent=sent)
            error.__cause__ = exc
            return error
        if too_large and 200 <= response.status_code < 300:
            method, shown = self._named(request)
            raise _errors.ResponseValidationError(
                f"{method} {shown}: the response body decodes to more than "
                f"{self._max_body} bytes (max_response_bytes); refused unread",
                body=content[:200],
            )
        return response, content  # an error's body past the cap is cut there

    def _named(self, request: httpx.Request) -> tuple[str, str]:
        """A failed request's method and URL as a message shows them (built only then)."""
        return request.method, self._shown(str(request.url))

    def _shown(self, url: str) -> str:
        """`url` as it may appear in a message or a log: any password masked."""
        if url.startswith(self._base):
            return self._shown_base + url[len(self._base) :]
        return redact_url(url)

    def _status_error(
        self, response: HTTPResponse, content: bytes, request_id: str | None
    ) -> _errors.APIStatusError:
        body = _decode_error_body(content)
        retry_after = parse_retry_after(response.headers) if response.status_code == 429 else None
        message = _error_message(body, response.status_code)
        if 300 <= response.status_code < 400:
            location = redact_url(response.headers.get("location", "nowhere"))
            message = (
                f"HTTP {response.status_code}: the API answered with a redirect to "
                f"{location!r}, which is not followed (the key stays with the base URL): "
                "check base_url"
            )
        return _errors.status_error(
            response.status_code,
            message,
            body=body,
            request_id=request_id,
            headers=dict(response.headers),
            retry_after=retry_after,
        )
