"""OpenTelemetry spans and metrics (the `otel` extra: `pip install 'codegen-async[otel]'`).

When `opentelemetry-api` is importable and the client's `tracing` setting is on (the
default), the client reports through the global tracer and meter providers, the user's:
nothing to set up here. Otherwise `load()` returns None and every hook in the pipeline,
the poller and the fan-out is one `is None` test. `opentelemetry` is imported when a
client is made, never by `import codegen_async`.

What is reported (HTTP names follow the OpenTelemetry HTTP client conventions):

- one CLIENT span per API call, named `{METHOD} {url.template}` (the spec's path template,
  never a path with ids), with `http.request.method`, `url.template`, `server.address`,
  `server.port`, `http.response.status_code`, `error.type` on failure,
  `http.request.resend_count` when retried and `codegen.request_id` (the server's
  x-request-id). A retried call gets one child span per attempt. Waiting for a
  rate-limit token is a child span `codegen.rate_limit.wait` when it took 1 ms or more;
- one span per awaited run (`codegen.agent_run.wait`, from the wait's start to its end)
  with each status change as an event; one span per fan-out (`codegen.run_many`) with its
  counts, and one per `run` / `multi_run`;
- metrics: `http.client.request.duration` (one point per request sent, by method, URL
  template and status or error: its count is the requests by operation and status),
  `codegen.client.rate_limited` (429s), `codegen.client.retries`,
  `codegen.client.rate_limit.wait`, `codegen.agent_runs.created`, `.finished` and
  `.failed`.

Nothing user-supplied is ever an attribute: no key, no prompt (only its length), no
result, no metadata; ids only.

The tracer and meter providers, span processors, samplers and exemplar filters are the
user's code: any of them may raise. Every hook below is guarded at its boundary (one
`try` per hook, not per line): the first exception logs one WARNING on the
`codegen_async` logger naming what failed, and turns telemetry off for that client (no
further call into the user's objects, apart from detaching a context this client
attached, which restores the caller's context); the SDK call itself goes on.
"""

from __future__ import annotations

import functools
import logging
import math
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "CallTrace",
    "FanOutTrace",
    "RunTrace",
    "Telemetry",
    "fan_out",
    "load",
    "span",
    "url_template",
]

# A numeric path segment is named after the segment before it (the spec's parameter names).
_PARAMETERS = {
    "organizations": "{org_id}",
    "users": "{user_id}",
    "run": "{agent_run_id}",
    "repos": "{repo_id}",
    "prs": "{pr_id}",
    "sandbox": "{sandbox_id}",
}
# The meter providers of opentelemetry-api in place while the application has set none.
_NO_METER_PROVIDERS = frozenset({"_ProxyMeterProvider", "NoOpMeterProvider"})
_PROVIDER_CHECK_INTERVAL = 1.0  # seconds between looks for a newly set provider
_TOKEN_WAIT_SPAN = 0.001  # seconds: a shorter wait for a token is only a metric
_STATUS_EVENT = "codegen.agent_run.status"

logger = logging.getLogger("codegen_async")


def _warn(error: Exception, what: str) -> None:
    logger.warning(
        "OpenTelemetry raised while %s (%s: %s): tracing and metrics are off for this "
        "client from now on; the call itself went on",
        what,
        type(error).__name__,
        error,
    )


@functools.lru_cache(maxsize=512)  # polling asks for the same few paths again and again
def url_template(path: str) -> str:
    """The path with its ids named as in the spec: `/v1/organizations/7/agent/run/42` ->
    `/v1/organizations/{org_id}/agent/run/{agent_run_id}`."""
    parts = path.split("/")
    for index in range(1, len(parts)):
        if parts[index].isdigit():
            parts[index] = _PARAMETERS.get(parts[index - 1], "{id}")
    return "/".join(parts)


def load(enabled: bool, base_url: str) -> Telemetry | None:
    """The client's telemetry, or None when off or `opentelemetry-api` is not installed."""
    if not enabled:
        return None
    try:
        return Telemetry(base_url)
    except ImportError:
        return None
    except Exception as error:  # the user's provider: get_tracer, get_meter, instruments
        _warn(error, "setting up the client's tracer and meter")
        return None


def _error_type(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return str(status) if isinstance(status, int) else type(exc).__name__


class Telemetry:
    """The tracer, the meter's instruments and the attributes every span shares."""

    def __init__(self, base_url: str) -> None:
        from opentelemetry import context, metrics, trace

        from ._version import __version__

        self._context: Any = context
        self._trace: Any = trace
        self._metrics: Any = metrics
        self._providers_set = False
        self._next_check = 0.0
        self.off = False  # set for good by the first exception from the user's objects
        self.tracer: Any = trace.get_tracer("codegen_async", __version__)
        meter = metrics.get_meter("codegen_async", __version__)
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self.server: dict[str, Any] = {"server.address": parts.hostname or "", "server.port": port}
        self.duration = meter.create_histogram(
            "http.client.request.duration", unit="s", description="Duration of HTTP requests."
        )
        self.rate_limited = meter.create_counter(
            "codegen.client.rate_limited", unit="{request}", description="429 answers."
        )
        self.retries = meter.create_counter(
            "codegen.client.retries", unit="{retry}", description="Attempts sent again."
        )
        self.token_wait = meter.create_histogram(
            "codegen.client.rate_limit.wait",
            unit="s",
            description="Time a request waited for a client-side rate-limit token.",
        )
        self.runs_created = meter.create_counter(
            "codegen.agent_runs.created", unit="{run}", description="Agent runs created."
        )
        self.runs_finished = meter.create_counter(
            "codegen.agent_runs.finished",
            unit="{run}",
            description="Awaited agent runs seen reaching a terminal status.",
        )
        self.runs_failed = meter.create_counter(
            "codegen.agent_runs.failed",
            unit="{run}",
            description="Awaited agent runs that ended with a status other than COMPLETE.",
        )

    def active(self) -> bool:
        """False while neither a tracer nor a meter provider is set: then a call skips
        its telemetry (it would all go to the no-op provider). Asked again at most once
        a second; a provider, once set, stays for the life of the process."""
        if self._providers_set:
            return True
        now = time.monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + _PROVIDER_CHECK_INTERVAL
        trace, tracer_provider = self._trace, self._trace.get_tracer_provider()
        self._providers_set = not (
            isinstance(tracer_provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))
            and type(self._metrics.get_meter_provider()).__name__ in _NO_METER_PROVIDERS
        )
        return self._providers_set

    def broke(self, error: Exception, what: str) -> None:
        """A call into the user's OpenTelemetry objects raised while `what`: turn telemetry
        off for this client (`active()` stays False, every hook returns at once) and say
        so, once."""
        if self.off:
            return
        self.off = True
        self._providers_set = False
        self._next_check = math.inf
        _warn(error, what)

    # -- the pieces the hooks use --------------------------------------------------------

    def start(
        self, name: str, attributes: Mapping[str, Any], *, client: bool = False, **kw: Any
    ) -> Any:
        kind = self._trace.SpanKind.CLIENT if client else self._trace.SpanKind.INTERNAL
        return self.tracer.start_span(name, kind=kind, attributes=attributes, **kw)

    def attach(self, span: Any) -> Any:
        return self._context.attach(self._trace.set_span_in_context(span))

    def detach(self, token: Any) -> None:
        """Restore the context `attach` replaced (even once off: the caller's context must
        not keep this client's span); a failure here turns telemetry off."""
        try:
            self._context.detach(token)
        except Exception as error:
            self.broke(error, "detaching a span's context")

    def fail(self, span: Any, error_type: str, description: str | None = None) -> None:
        span.set_attribute("error.type", error_type)
        span.set_status(self._trace.StatusCode.ERROR, description)

    # -- hooks ---------------------------------------------------------------------------

    def call(self, method: str, path: str, template: str | None, create: bool) -> CallTrace:
        """The trace of one API call (`with telemetry.call(...) as trace:`)."""
        return CallTrace(self, method, template or url_template(path), create)

    def run_trace(self, run_id: int) -> RunTrace:
        return RunTrace(self, run_id)


@functools.cache
def _rate_class_attributes(rate_class: str) -> dict[str, str]:
    return {"codegen.rate_class": rate_class}


class CallTrace:
    """One API call: its span, and its attempts (child spans only once it is retried)."""

    __slots__ = (
        "_attempt",
        "_create",
        "_queued",
        "_retried",
        "_tel",
        "_token",
        "attributes",
        "span",
    )

    def __init__(self, tel: Telemetry, method: str, template: str, create: bool) -> None:
        self._tel = tel
        self._create = create
        self.attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.template": template,
            **tel.server,
        }
        self.span: Any = None
        self._token: Any = None
        self._queued = 0
        self._retried = 0
        # The attempt in progress: [start ns, end ns, status code, error type, request id]
        self._attempt: list[Any] | None = None

    def __enter__(self) -> CallTrace:
        attrs = self.attributes
        name = f"{attrs['http.request.method']} {attrs['url.template']}"
        try:
            self.span = self._tel.start(name, attrs, client=True)
            self._token = self._tel.attach(self.span)
        except Exception as error:
            self._tel.broke(error, f"starting the span of {name}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tel, span = self._tel, self.span
        if self._token is not None:
            tel.detach(self._token)
        if tel.off:
            return
        try:
            attempt = self._end_attempt(exc)
            if attempt is not None:
                if self._retried:
                    self._attempt_span(attempt)
                    span.set_attribute("http.request.resend_count", self._retried)
                if attempt[2] is not None:
                    span.set_attribute("http.response.status_code", attempt[2])
                if attempt[4] is not None:
                    span.set_attribute("codegen.request_id", attempt[4])
            if exc is not None:
                tel.fail(span, _error_type(exc), type(exc).__name__)
            elif self._create:
                tel.runs_created.add(1)
            span.end()
        except Exception as error:
            tel.broke(error, f"ending the span of {self._name()}")

    # -- called by the pipeline ----------------------------------------------------------

    def _name(self) -> str:
        return f"{self.attributes['http.request.method']} {self.attributes['url.template']}"

    def queued(self) -> None:
        """The attempt starts waiting for its rate-limit token."""
        self._queued = time.time_ns()

    def token_acquired(self, rate_class: str) -> None:
        """It has its token: the wait becomes a metric, and a span when it was long."""
        tel = self._tel
        if tel.off:
            return
        now = time.time_ns()
        waited = (now - self._queued) / 1e9
        try:
            tel.token_wait.record(waited, _rate_class_attributes(rate_class))
            if waited >= _TOKEN_WAIT_SPAN:
                wait = tel.start(
                    "codegen.rate_limit.wait",
                    {"codegen.rate_class": rate_class},
                    context=tel._trace.set_span_in_context(self.span),
                    start_time=self._queued,
                )
                wait.end(now)
        except Exception as error:
            tel.broke(error, f"recording the rate-limit wait of {self._name()}")

    def sent(self) -> None:
        """An attempt goes out."""
        self._attempt = [time.time_ns(), None, None, None, None]

    def answered(self, status_code: int, request_id: str | None) -> None:
        """The attempt got an answer (any status)."""
        attempt = self._attempt
        if attempt is None:
            return
        attempt[1], attempt[2], attempt[4] = time.time_ns(), status_code, request_id
        if status_code >= 400:
            attempt[3] = str(status_code)
        if status_code == 429 and not self._tel.off:
            try:
                self._tel.rate_limited.add(1, self._metric_attributes(attempt))
            except Exception as error:
                self._tel.broke(error, f"counting a 429 of {self._name()}")

    def retrying(self, error: BaseException) -> None:
        """The attempt failed and the call will try again."""
        if not self._tel.off:
            try:
                attempt = self._end_attempt(error)
                if attempt is not None:
                    self._attempt_span(attempt)
                    self._tel.retries.add(1, self._metric_attributes(attempt))
            except Exception as exc:
                self._tel.broke(exc, f"recording a retried attempt of {self._name()}")
        self._retried += 1

    # -- helpers -------------------------------------------------------------------------

    def _end_attempt(self, error: BaseException | None) -> list[Any] | None:
        """Close the attempt in progress (once): its end, its error, its metrics."""
        attempt, self._attempt = self._attempt, None
        if attempt is None:
            return None
        if attempt[1] is None:
            attempt[1] = time.time_ns()
        if attempt[3] is None and error is not None and attempt[2] is None:
            attempt[3] = _error_type(error)
        labels = self._metric_attributes(attempt)
        self._tel.duration.record((attempt[1] - attempt[0]) / 1e9, labels)
        return attempt

    def _metric_attributes(self, attempt: list[Any]) -> dict[str, Any]:
        labels = dict(self.attributes)
        if attempt[2] is not None:
            labels["http.response.status_code"] = attempt[2]
        if attempt[3] is not None:
            labels["error.type"] = attempt[3]
        return labels

    def _attempt_span(self, attempt: list[Any]) -> None:
        attrs = dict(self.attributes)
        if self._retried:
            attrs["http.request.resend_count"] = self._retried
        if attempt[2] is not None:
            attrs["http.response.status_code"] = attempt[2]
        if attempt[4] is not None:
            attrs["codegen.request_id"] = attempt[4]
        child = self._tel.start(
            f"{attrs['http.request.method']} {attrs['url.template']}",
            attrs,
            client=True,
            context=self._tel._trace.set_span_in_context(self.span),
            start_time=attempt[0],
        )
        if attempt[3] is not None:
            self._tel.fail(child, attempt[3])
        child.end(attempt[1])


class RunTrace:
    """The wait spans of one awaited run: one per waiter, status changes as events."""

    __slots__ = ("_finished", "_tel", "_tokens", "run_id", "spans")

    def __init__(self, tel: Telemetry, run_id: int) -> None:
        self._tel = tel
        self.run_id = run_id
        self.spans: dict[object, Any] = {}
        self._tokens: dict[object, Any] = {}
        self._finished = False

    def open(self, waiter: object, run: Any) -> None:
        """`waiter` starts waiting (its span's parent is the current span)."""
        if waiter in self.spans or self._tel.off:  # the same waiter again: a group adding
            return  # a run twice
        attrs: dict[str, Any] = {"codegen.agent_run.id": self.run_id}
        if run is not None and run.status is not None:
            attrs["codegen.agent_run.status"] = str(run.status)
        try:
            self.spans[waiter] = self._tel.start("codegen.agent_run.wait", attrs)
        except Exception as error:
            self._tel.broke(error, f"starting the wait span of run {self.run_id}")

    def enter(self, waiter: object) -> None:
        """Make the waiter's span the current one until it stops waiting (same task)."""
        span = self.spans.get(waiter)
        if span is None or self._tel.off:
            return
        try:
            self._tokens[waiter] = self._tel.attach(span)
        except Exception as error:
            self._tel.broke(error, f"entering the wait span of run {self.run_id}")

    def changed(self, run: Any) -> None:
        """The run's status changed: an event on every waiter's span, metrics at the end."""
        tel = self._tel
        if tel.off:
            return
        event = {"codegen.agent_run.status": str(run.status)}
        try:
            for span in self.spans.values():
                span.add_event(_STATUS_EVENT, event)
            if run.is_terminal and not self._finished:
                self._finished = True
                tel.runs_finished.add(1, event)
                if not run.succeeded:
                    tel.runs_failed.add(1, event)
        except Exception as error:
            tel.broke(error, f"recording a status change of run {self.run_id}")

    def close(self, waiter: object, run: Any, error: BaseException | None) -> None:
        """`waiter` stops waiting: `run` is the last snapshot (None if none), `error` why
        the wait failed; a run not terminal means the wait was left (the exception being
        raised, if any, names why)."""
        tel = self._tel
        span = self.spans.pop(waiter, None)
        token = self._tokens.pop(waiter, None)
        if token is not None:
            tel.detach(token)
        if span is None or tel.off:
            return
        try:
            if run is not None and run.status is not None:
                span.set_attribute("codegen.agent_run.status", str(run.status))
            if error is not None:
                tel.fail(span, _error_type(error))
            elif run is None or not run.is_terminal:
                leaving = sys.exc_info()[1]
                tel.fail(span, "unfinished" if leaving is None else _error_type(leaving))
            elif not run.succeeded:
                tel.fail(span, str(run.status), f"the run ended {run.status}")
            span.end()
        except Exception as exc:
            tel.broke(exc, f"ending the wait span of run {self.run_id}")


class FanOutTrace:
    """The span of one fan-out, counting its inputs' outcomes through its progress events."""

    __slots__ = ("_inputs", "_name", "_on_progress", "_tel", "_token", "counts", "span")

    def __init__(self, tel: Telemetry, name: str, inputs: int, on_progress: Any) -> None:
        self._tel = tel
        self._name = name
        self._inputs = inputs
        self._token: Any = None
        self._on_progress = on_progress
        self.counts = {"created": 0, "succeeded": 0, "failed": 0, "errors": 0}
        self.span: Any = None  # started by the first step: a fan-out never iterated has none

    def on_progress(self, event: Any) -> None:
        """Count the event, then hand it to the user's callback, if any."""
        kind = event.kind.value
        if kind == "created":
            self.counts["created"] += 1
        elif kind == "finished":
            self.counts["succeeded"] += 1
        elif kind == "failed":
            self.counts["failed"] += 1
            if event.error is not None:
                self.counts["errors"] += 1
        if self._on_progress is not None:
            self._on_progress(event)

    def enter(self) -> None:
        """Make the span current for one step of the fan-out (its creates and waits)."""
        tel = self._tel
        if tel.off:
            return
        try:
            if self.span is None:
                self.span = tel.start(self._name, {"codegen.fan_out.inputs": self._inputs})
            self._token = tel.attach(self.span)
        except Exception as error:
            tel.broke(error, f"entering the span {self._name}")

    def leave(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            self._tel.detach(token)

    def end(self) -> None:
        span, tel = self.span, self._tel
        if span is None or tel.off:
            return
        try:
            if not span.is_recording():
                return
            for name, value in self.counts.items():
                span.set_attribute(f"codegen.fan_out.{name}", value)
            span.end()
        except Exception as error:
            tel.broke(error, f"ending the span {self._name}")


def fan_out(tel: Telemetry | None, inputs: int, on_progress: Any) -> FanOutTrace | None:
    """The trace of a `run_many` with `inputs` inputs (None when not tracing)."""
    if tel is None or tel.off:
        return None
    return FanOutTrace(tel, "codegen.run_many", inputs, on_progress)


@contextmanager
def span(tel: Telemetry | None, name: str, attributes: Mapping[str, Any]) -> Iterator[None]:
    """A span around a block (nothing when `tel` is None); an exception marks it failed."""
    if tel is None or tel.off:
        yield
        return
    current = token = None
    try:
        current = tel.start(name, attributes)
        token = tel.attach(current)
    except Exception as error:
        tel.broke(error, f"starting the span {name}")
    failed: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        failed = exc
        raise
    finally:
        if token is not None:
            tel.detach(token)
        if current is not None and not tel.off:
            try:
                if failed is not None:
                    tel.fail(current, _error_type(failed), type(failed).__name__)
                current.end()
            except Exception as error:
                tel.broke(error, f"ending the span {name}")
