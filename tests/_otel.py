"""The OpenTelemetry SDK installed once per process as the global providers (OpenTelemetry
allows that once), shared by the tests of every folder that look at telemetry.

A sampler records spans only while a test holds `recording()`, so other tests in the
same worker pay nothing; metrics use delta temporality, so each collect holds only what
came since the previous one. `FAULTS` turns the user's own pieces into ones that raise
(a span processor's `on_start` / `on_end`, the provider's `get_tracer`, the sampler
behind `start_span`, the exemplar filter behind every instrument's `record` / `add`):
real SDK extension points, off unless a test switches one on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    TraceBasedExemplarFilter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

__all__ = ["FAULTS", "FAULT_NAMES", "Otel", "faulty", "recording"]

FAULT_NAMES = ("on_start", "on_end", "get_tracer", "start_span", "record")


class Faults:
    """Which user piece raises now, and how often one did."""

    def __init__(self) -> None:
        self.failing: str | None = None
        self.raised = 0

    def check(self, name: str) -> None:
        if self.failing == name:
            self.raised += 1
            raise RuntimeError(f"the user's {name} is broken")


FAULTS = Faults()


class _Switch(Sampler):
    """Records spans only while `on`; raises (in `start_span`) while that fault is on."""

    on = False

    def should_sample(
        self,
        parent: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        *args: Any,
        **kwargs: Any,
    ) -> SamplingResult:
        FAULTS.check("start_span")
        if not self.on:
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "switch"


class _Processor(SpanProcessor):
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        FAULTS.check("on_start")

    def on_end(self, span: ReadableSpan) -> None:
        FAULTS.check("on_end")


class _Provider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        FAULTS.check("get_tracer")
        return super().get_tracer(*args, **kwargs)


class _ExemplarFilter(TraceBasedExemplarFilter):
    """Asked by the SDK on every `record` / `add` of a synchronous instrument."""

    def should_sample(self, *args: Any, **kwargs: Any) -> bool:
        FAULTS.check("record")
        return super().should_sample(*args, **kwargs)


_SWITCH = _Switch()
_EXPORTER = InMemorySpanExporter()
_DELTA = dict.fromkeys(
    (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    ),
    AggregationTemporality.DELTA,
)
_READER = InMemoryMetricReader(preferred_temporality=_DELTA)
_installed = False


class Otel:
    """What one test recorded."""

    def spans(self) -> list[ReadableSpan]:
        return list(_EXPORTER.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans() if s.name == name]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans()
            if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], float]]]:
        """name -> [(attributes, value or count)] since the last call."""
        found: dict[str, list[tuple[dict[str, Any], float]]] = {}
        data = _READER.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        value = point.count if value is None else value  # type: ignore[attr-defined]
                        found.setdefault(metric.name, []).append((dict(point.attributes), value))
        return found

    def total(self, found: dict[str, list[tuple[dict[str, Any], float]]], name: str) -> float:
        return sum(value for _, value in found.get(name, []))


def _install() -> None:
    global _installed
    if _installed:
        return
    provider = _Provider(sampler=_SWITCH)
    provider.add_span_processor(_Processor())
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(
        MeterProvider(metric_readers=[_READER], exemplar_filter=_ExemplarFilter())
    )
    _installed = True


@contextmanager
def recording() -> Iterator[Otel]:
    """Spans and metrics recorded for the block (the providers installed first)."""
    _install()
    _EXPORTER.clear()
    recorder = Otel()
    recorder.metrics()  # drop what other tests recorded
    _SWITCH.on = True
    try:
        yield recorder
    finally:
        _SWITCH.on = False
        _EXPORTER.clear()


@contextmanager
def faulty(name: str) -> Iterator[Faults]:
    """The user's piece `name` (one of FAULT_NAMES) raises for the block."""
    assert name in FAULT_NAMES, name
    FAULTS.failing, FAULTS.raised = name, 0
    try:
        yield FAULTS
    finally:
        FAULTS.failing = None
