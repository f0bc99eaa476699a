"""Many runs at once: `run_many` starts every input, bounded, and reports each exactly once.

Like the poller, a fan-out has no background task: it works while you iterate it. Each
step starts runs while there is room (at most `max_concurrency` on the server, a few
creates at a time, paced by the client's rate limiter) and waits through the client's
shared poller until something happens, then returns with no request half-done. So
breaking out of the loop leaves nothing running, cancelling it stops pending creations,
and it behaves the same under asyncio and trio.

Every input yields exactly one `RunOutcome`: the terminal run, or the error that kept it
from one (with the run's id when it was created). Progress events (created, status
changed, finished, failed) go to `on_progress` or come from `RunMany.events()`.
"""

from __future__ import annotations

import enum
import logging
import math
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

import anyio
import attrs

from . import _errors, _telemetry, _validate
from ._constants import GROUP_METADATA_KEY
from ._create import UnconfirmedCreate
from .models import AgentRun, AgentType, RunStatus

if TYPE_CHECKING:
    from ._polling import Poller
    from .resources import AgentRuns

__all__ = ["ProgressEvent", "ProgressKind", "RunMany", "RunOutcome", "RunSpec", "specs_of"]

logger = logging.getLogger("codegen_async")

# Creates one fan-out step runs side by side (the create rate limit paces them anyway).
_PARALLEL_CREATES = 4


@attrs.frozen
class RunSpec:
    """One run to start: a prompt and, optionally, where and how to run it."""

    prompt: str
    repo_id: int | None = None
    model: str | None = None
    agent_type: AgentType | None = None
    metadata: Mapping[str, Any] | None = None
    images: Sequence[str] | None = None  # data URIs, as for `agent_runs.create`


RunInput: TypeAlias = str | RunSpec


@attrs.frozen
class RunOutcome:
    """What became of one fan-out input.

    `run` is the terminal run (a FAILED run is still a run), or None when `error` kept
    it from one: it could not be created, the wait failed or timed out, or it was never
    started. `run_id` is the created run's id, also when `error` is set.
    """

    index: int
    input: RunInput
    run: AgentRun | None = None
    error: Exception | None = None
    run_id: int | None = None

    @property
    def ok(self) -> bool:
        """True when the run ended COMPLETE."""
        return self.run is not None and self.run.succeeded

    def unwrap(self) -> AgentRun:
        """The terminal run, or raise the error that kept it from one."""
        if self.error is not None:
            raise self.error
        assert self.run is not None
        return self.run


class ProgressKind(str, enum.Enum):
    CREATED = "created"
    STATUS_CHANGED = "status_changed"
    FINISHED = "finished"  # the run ended COMPLETE
    FAILED = "failed"  # the run ended otherwise, or could not be created or awaited


@attrs.frozen
class ProgressEvent:
    """One step of one input. FINISHED or FAILED comes exactly once per input, with its
    `outcome`; `elapsed` counts seconds since the fan-out started."""

    kind: ProgressKind
    index: int
    input: RunInput
    run: AgentRun | None
    error: Exception | None
    elapsed: float
    outcome: RunOutcome | None = None


def specs_of(items: Iterable[RunInput]) -> list[tuple[RunInput, RunSpec]]:
    """Every input with its checked spec; a bad one fails here, before anything starts."""
    if isinstance(items, (str, RunSpec)):
        raise TypeError("items must be an iterable of prompts or RunSpecs, not a single one")
    checked = []
    for index, item in enumerate(items):
        try:
            checked.append((item, _check_spec(item)))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"items[{index}]: {exc}") from None
    return checked


def _check_spec(item: object) -> RunSpec:
    spec = RunSpec(item) if isinstance(item, str) else item
    if not isinstance(spec, RunSpec):
        raise TypeError(f"expected a prompt (str) or a RunSpec, got {type(item).__name__}")
    _validate.text("prompt", spec.prompt)
    if spec.repo_id is not None:
        _validate.positive_int("repo_id", spec.repo_id)
    if spec.model is not None:
        _validate.text("model", spec.model)
    _validate.agent_type(spec.agent_type)
    _validate.json_object("metadata", spec.metadata)
    if spec.images is not None:
        _validate.data_uris(spec.images)
    return spec


class _Flight:
    """A created run not yet reported."""

    __slots__ = ("index", "input", "status")

    def __init__(self, index: int, item: RunInput, status: RunStatus | None) -> None:
        self.index = index
        self.input = item
        self.status = status


class RunMany:
    """An async iterator of `RunOutcome`s, one per input, in the order they finish.

    Made by `AsyncCodegen.run_many`. Use `async for outcome in fan_out`, or `events()`
    for every progress event instead (one or the other), or `await fan_out.gather()`
    for the outcomes in input order. `created` lists the ids of the runs started so far:
    when the loop is left early or cancelled, runs already created keep running on the
    server and a WARNING names those not yet reported.
    """

    group_id: str
    created: list[int]

    def __init__(
        self,
        runs: AgentRuns,
        poller: Poller,
        items: list[tuple[RunInput, RunSpec]],
        *,
        max_concurrency: int,
        timeout: float | None,
        fail_fast: bool,
        on_progress: Callable[[ProgressEvent], object] | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._runs = runs
        self._group = poller.group()
        self._clock = anyio.current_time
        self._todo = deque((index, item, spec) for index, (item, spec) in enumerate(items))
        self._max = _validate.positive_int("max_concurrency", max_concurrency)
        self._timeout = _check_timeout(timeout)
        self._fail_fast = _check_bool("fail_fast", fail_fast)
        self._on_progress = on_progress
        # Tracing: a span from the first step to aclose, counting outcomes through events.
        self._trace = _telemetry.fan_out(poller.telemetry, len(items), on_progress)
        self._on_progress = on_progress if self._trace is None else self._trace.on_progress
        self.group_id = uuid.uuid4().hex
        self._metadata = {GROUP_METADATA_KEY: self.group_id, **(metadata or {})}
        self._flights: dict[int, _Flight] = {}
        self._creating = 0
        self._outcomes: deque[RunOutcome] = deque()
        self._events: deque[ProgressEvent] | None = None
        self._started: float | None = None
        self._stop_reason: str | None = None
        self._closed = False
        self.created: list[int] = []
        self._keys: set[str] = set()  # the idempotency keys of this fan-out's creates
        weakref.finalize(self, self._group.close)

    def __repr__(self) -> str:
        return (
            f"<RunMany group_id={self.group_id} created={len(self.created)} "
            f"in_flight={len(self._flights)} not_started={len(self._todo)}>"
        )

    # -- consuming ----------------------------------------------------------------------

    def __aiter__(self) -> RunMany:
        return self

    async def __anext__(self) -> RunOutcome:
        if self._events is not None:
            raise RuntimeError("this fan-out is consumed through events(); use one or the other")
        while not self._outcomes:
            if self._finished:
                await self.aclose()
                raise StopAsyncIteration
            await self._advance()
        return self._outcomes.popleft()

    async def events(self) -> AsyncIterator[ProgressEvent]:
        """Every progress event as it happens; FINISHED and FAILED carry the outcome."""
        if self._started is not None and self._events is None:
            raise RuntimeError("this fan-out is already iterated for outcomes")
        events: deque[ProgressEvent] = deque()
        self._events = events
        while True:
            while events:
                yield events.popleft()
            if self._finished:
                await self.aclose()
                return
            await self._advance()

    async def gather(self) -> list[RunOutcome]:
        """Run every input to its end; the outcomes in input order."""
        outcomes = [outcome async for outcome in self]
        return sorted(outcomes, key=lambda outcome: outcome.index)

    async def aclose(self) -> None:
        """Stop: start nothing more and stop awaiting the runs in flight (they keep
        running on the server; a WARNING names them)."""
        if self._closed:
            return
        self._closed = True
        self._todo.clear()
        self._group.close()
        if self._trace is not None:
            self._trace.end()
        if self._flights:
            ids = ", ".join(str(run_id) for run_id in self._flights)
            logger.warning("fan-out %s left with runs still in flight: %s", self.group_id, ids)
        if self.unconfirmed:
            keys = ", ".join(u.idempotency_key for u in self.unconfirmed)
            logger.warning(
                "fan-out %s left with creates of unknown outcome: %s", self.group_id, keys
            )

    @property
    def unconfirmed(self) -> list[UnconfirmedCreate]:
        """Creates of this fan-out whose outcome stayed unknown (cancelled after the POST
        went out, or undecided): a run carrying the key may exist. With `created`, every
        run this fan-out may have started is accounted for."""
        return [u for u in self._runs.unconfirmed_creates if u.idempotency_key in self._keys]

    async def __aenter__(self) -> RunMany:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def _finished(self) -> bool:
        return self._closed or (not self._todo and not self._flights and not self._creating)

    # -- one step -----------------------------------------------------------------------

    async def _advance(self) -> None:
        """Start runs while there is room and wait until something happened."""
        if self._started is None:
            self._started = self._clock()
        if self._trace is not None:
            self._trace.enter()
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(_PARALLEL_CREATES):
                    tg.start_soon(self._create_while_room)
                await self._watch()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self.aclose()
            raise
        finally:
            if self._trace is not None:
                self._trace.leave()

    async def _create_while_room(self) -> None:
        while not self._ready() and self._room():
            index, item, spec = self._todo.popleft()
            self._creating += 1
            try:
                await self._create(index, item, spec)
            finally:
                self._creating -= 1
                self._group.poke()

    def _ready(self) -> bool:
        """Is there something for the consumer: an outcome, or an event in events()?"""
        return bool(self._outcomes if self._events is None else self._events)

    def _room(self) -> bool:
        return (
            bool(self._todo)
            and self._stop_reason is None
            and not self._closed
            and len(self._flights) + self._creating < self._max
            and self._remaining() > 0
        )

    async def _create(self, index: int, item: RunInput, spec: RunSpec) -> None:
        key = uuid.uuid4().hex
        self._keys.add(key)
        try:
            run = await self._runs.create(
                spec.prompt,
                repo_id=spec.repo_id,
                model=spec.model,
                agent_type=spec.agent_type,
                metadata={**(spec.metadata or {}), **self._metadata},
                images=spec.images,
                idempotency_key=key,
            )
        except _errors.CodegenError as exc:
            self._finish(index, item, error=exc)
            return
        self.created.append(run.id)
        self._flights[run.id] = _Flight(index, item, run.status)
        self._group.add(run)
        self._emit(ProgressKind.CREATED, index, item, run=run)

    async def _watch(self) -> None:
        """Collect what the poller saw until there is something to hand out and no create
        is in progress."""
        while True:
            self._collect()
            if self._remaining() <= 0:
                self._expire()
            if not self._creating:
                if self._ready() or self._finished:
                    return
                if not self._group.pending and not self._room():
                    self._skip_rest()
                    continue
            remaining = self._remaining()
            with anyio.move_on_after(remaining if remaining > 0 else math.inf):
                await self._group.changed()

    def _collect(self) -> None:
        for watch in self._group.take_done():
            flight = self._flights.pop(watch.run_id)
            self._finish(
                flight.index,
                flight.input,
                run=watch.snapshot,
                error=watch.error,
                run_id=watch.run_id,
            )
        for run_id, watch in self._group.pending.items():
            flight = self._flights[run_id]
            snapshot = watch.snapshot
            if snapshot is not None and snapshot.status != flight.status:
                flight.status = snapshot.status
                self._emit(ProgressKind.STATUS_CHANGED, flight.index, flight.input, run=snapshot)

    def _expire(self) -> None:
        """The fan-out's timeout: every run in flight ends with WaitTimeoutError."""
        self._stop_reason = self._stop_reason or f"the fan-out's timeout of {self._timeout}s passed"
        for run_id, watch in list(self._group.pending.items()):
            flight = self._flights.pop(run_id)
            error = _errors.WaitTimeoutError(
                f"agent run {run_id} not finished within the fan-out's timeout of {self._timeout}s",
                run=watch.snapshot,
            )
            self._finish(flight.index, flight.input, error=error, run_id=run_id)
        self._group.close()

    def _skip_rest(self) -> None:
        while self._todo:
            index, item, _ = self._todo.popleft()
            error = _errors.RunNotStartedError(f"items[{index}] not started: {self._stop_reason}")
            self._finish(index, item, error=error)

    # -- reporting ----------------------------------------------------------------------

    def _finish(
        self,
        index: int,
        item: RunInput,
        *,
        run: AgentRun | None = None,
        error: Exception | None = None,
        run_id: int | None = None,
    ) -> None:
        outcome = RunOutcome(index, item, None if error else run, error, run_id)
        if self._events is None:
            self._outcomes.append(outcome)
        kind = ProgressKind.FINISHED if outcome.ok else ProgressKind.FAILED
        self._emit(kind, index, item, run=run, error=error, outcome=outcome)
        if self._fail_fast and not outcome.ok and self._stop_reason is None:
            self._stop_reason = f"fail_fast: items[{index}] failed"

    def _emit(
        self,
        kind: ProgressKind,
        index: int,
        item: RunInput,
        *,
        run: AgentRun | None = None,
        error: Exception | None = None,
        outcome: RunOutcome | None = None,
    ) -> None:
        elapsed = self._clock() - (self._started or self._clock())
        event = ProgressEvent(kind, index, item, run, error, elapsed, outcome)
        if self._events is not None:
            self._events.append(event)
        if self._on_progress is not None:
            self._on_progress(event)

    def _remaining(self) -> float:
        if self._timeout is None or self._started is None:
            return math.inf
        return self._started + self._timeout - self._clock()


def _check_timeout(timeout: float | None) -> float | None:
    return _validate.timeout("timeout", timeout)


def _check_bool(name: str, value: object) -> bool:
    return _validate.strict_bool(name, value)
