"""Many runs at once: `run_many` starts every input, bounded, and reports each exactly once.

Iterated plainly (`async for outcome in fan_out`), a fan-out has no background task: it
works while you iterate it. Each step starts runs while there is room (at most
`max_concurrency` on the server, a few creates at a time, paced by the client's rate
limiter) and waits through the client's shared poller until something happens, then
returns with no request half-done. So breaking out of the loop leaves nothing running,
cancelling it stops pending creations, and it behaves the same under asyncio and trio.

Entered with `async with`, the fan-out owns a task group: the same steps run in a task
of their own while the block's body runs, so a slow loop body does not stop creates or
waits. Outcomes not yet taken queue up (with the runs in flight, at most
`max_concurrency`); leaving the block cancels that task and leaves nothing running.

The fan-out talks to one journal object (`_journal.BatchJournal`, or `NoJournal` when
there is none): it asks it what to replay, await and start, the key of each create, and
tells it each step (sending, created, status, finished, handing out). What is written
when, and what a resume decides, is the journal's alone.

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
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import attrs

from . import _errors, _telemetry, _validate
from ._config import CreatePolicy
from ._constants import GROUP_METADATA_KEY
from ._create import UnconfirmedCreate, reconcile_journaled
from ._journal import Key, NoJournal
from ._outcome import ResumeCounts, RunInput, RunOutcome
from ._runspec import RunSpec, create_body
from .models import AgentRun, RunStatus

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from ._polling import Poller

__all__ = [
    "ProgressEvent",
    "ProgressKind",
    "ResumeCounts",
    "RunCreator",
    "RunInput",
    "RunMany",
    "RunOutcome",
    "RunSpec",
    "specs_of",
]

logger = logging.getLogger("codegen_async")

# Creates one fan-out step runs side by side (the create rate limit paces them anyway).
_PARALLEL_CREATES = 4

_NO_JOURNAL = NoJournal()  # holds nothing: one serves every fan-out without a journal


class RunCreator(Protocol):
    """What a fan-out creates runs through (the calling client's `agent_runs`)."""

    create_policy: CreatePolicy
    unconfirmed_creates: list[UnconfirmedCreate]

    async def create_spec(
        self, spec: RunSpec, *, idempotency_key: str | None = ...
    ) -> AgentRun: ...

    async def find_by_idempotency_key(self, idempotency_key: str) -> AgentRun | None: ...


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


def spec_data(spec: RunSpec) -> dict[str, Any]:
    """Every field of a spec as JSON-able data (what a journal fingerprints)."""
    data = attrs.asdict(spec, recurse=False)  # every field, in declaration order
    data["metadata"] = None if spec.metadata is None else dict(spec.metadata)
    data["images"] = None if spec.images is None else list(spec.images)
    return data


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
    create_body(spec)
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
    for the outcomes in input order. Inside `async with fan_out:` the work goes on in a
    task of its own while the block runs. `created` lists the ids of the runs started so
    far: when the loop is left early or cancelled, runs already created keep running on
    the server and a WARNING names those not yet reported. With a journal, `resumed`
    tells where an earlier process left the batch (None for a new journal).
    """

    group_id: str
    created: list[int]
    resumed: ResumeCounts | None

    def __init__(
        self,
        runs: RunCreator,
        poller: Poller,
        items: list[tuple[RunInput, RunSpec]],
        *,
        max_concurrency: int,
        timeout: float | None,
        fail_fast: bool,
        on_progress: Callable[[ProgressEvent], object] | None,
        metadata: Mapping[str, Any] | None = None,
        journal: NoJournal = _NO_JOURNAL,
    ) -> None:
        self._runs = runs
        self._group = poller.group()
        self._clock = anyio.current_time
        self._todo: deque[tuple[int, RunInput, RunSpec]] = deque(
            (index, item, spec) for index, (item, spec) in enumerate(items)
        )
        self._max = _validate.positive_int("max_concurrency", max_concurrency)
        self._timeout = _validate.timeout("timeout", timeout)
        self._fail_fast = _validate.strict_bool("fail_fast", fail_fast)
        self._on_progress = on_progress
        # Tracing: a span from the first step to aclose, counting outcomes through events.
        self._trace = _telemetry.fan_out(poller.telemetry, len(items), on_progress)
        self._on_progress = on_progress if self._trace is None else self._trace.on_progress
        self._journal = journal
        self.group_id = uuid.uuid4().hex
        self._metadata = {GROUP_METADATA_KEY: self.group_id, **(metadata or {})}
        self._flights: dict[int, _Flight] = {}
        self._creating = 0
        self._creators = 0  # creator tasks alive in the current step
        self._outcomes: deque[RunOutcome] = deque()
        self._backlog = 0  # new outcomes (not replayed) handed to the queue, not yet taken
        self._events: deque[ProgressEvent] | None = None
        self._started: float | None = None
        self._stop_reason: str | None = None
        self._closed = False
        self._opened = False
        self._replays: list[RunOutcome] = []
        self._failure: Exception | None = None
        self._step: anyio.CancelScope | None = None
        self._tg: TaskGroup | None = None
        self._drive_scope: anyio.CancelScope | None = None
        self._driving = False
        self._wake: anyio.Event | None = None
        self.created: list[int] = []
        self.resumed = None
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
        if self._tg is None:
            await self._begin()
        while not self._outcomes:
            if self._failure is not None:
                raise self._failure
            if self._tg is not None:
                if not self._driving:
                    await self.aclose()
                    raise StopAsyncIteration
                await self._sleep()
                continue
            if self._finished:
                await self.aclose()
                raise StopAsyncIteration
            await self._advance()
        await self._journaled(self._outcomes[0].index)
        return self._take()

    def _take(self) -> RunOutcome:
        outcome = self._outcomes.popleft()
        if not outcome.replayed:
            self._backlog -= 1
            if self._tg is not None:
                self._group.poke()  # room for one more
        return outcome

    async def events(self) -> AsyncIterator[ProgressEvent]:
        """Every progress event as it happens; FINISHED and FAILED carry the outcome."""
        if (self._started is not None or self._outcomes) and self._events is None:
            raise RuntimeError("this fan-out is already iterated for outcomes")
        events: deque[ProgressEvent] = deque()
        self._events = events
        if self._tg is None:
            await self._begin()
        while True:
            while events:
                event = events.popleft()
                if event.outcome is not None:
                    await self._journaled(event.outcome.index)
                    if not event.outcome.replayed:
                        self._backlog -= 1
                        if self._tg is not None:
                            self._group.poke()
                yield event
            if self._failure is not None:
                raise self._failure
            if self._tg is not None:
                if not self._driving:
                    await self.aclose()
                    return
                await self._sleep()
                continue
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
        running on the server; a WARNING names them). A journal is closed: the same call
        with it resumes the batch."""
        if self._closed:
            return
        self._closed = True
        self._todo.clear()
        self._group.close()
        if self._trace is not None:
            self._trace.end()
        if self._drive_scope is not None:
            self._drive_scope.cancel()
        if self._flights:
            ids = ", ".join(str(run_id) for run_id in self._flights)
            logger.warning("fan-out %s left with runs still in flight: %s", self.group_id, ids)
        if self.unconfirmed:
            keys = ", ".join(u.idempotency_key for u in self.unconfirmed)
            logger.warning(
                "fan-out %s left with creates of unknown outcome: %s", self.group_id, keys
            )
        with anyio.CancelScope(shield=True):
            await self._journal.close()

    @property
    def unconfirmed(self) -> list[UnconfirmedCreate]:
        """Creates of this fan-out whose outcome stayed unknown (cancelled after the POST
        went out, or undecided): a run carrying the key may exist. With `created`, every
        run this fan-out may have started is accounted for."""
        return [u for u in self._runs.unconfirmed_creates if u.idempotency_key in self._keys]

    async def __aenter__(self) -> RunMany:
        if self._tg is not None or self._started is not None:
            raise RuntimeError("this fan-out is already started; enter it before iterating")
        await self._open()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._wake = anyio.Event()
        self._drive_scope = anyio.CancelScope()  # cancellable before the task starts
        self._driving = True
        tg.start_soon(self._drive)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg, self._tg = self._tg, None
        if tg is None:
            await self.aclose()
            return
        try:
            if self._drive_scope is not None:
                self._drive_scope.cancel()
            # The body's own exception, if any, propagates from here as it is (not in a
            # group): the task group only waits for the driver, cancelled just now.
            await tg.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                await self.aclose()

    @property
    def _finished(self) -> bool:
        return self._closed or (not self._todo and not self._flights and not self._creating)

    # -- the journal --------------------------------------------------------------------

    async def _begin(self) -> None:
        """Open the journal (if any) and queue what it had finished; once."""
        if not self._opened:
            await self._open()
            self._replay()

    async def _open(self) -> None:
        if self._opened:
            return
        self._opened = True
        inputs = [spec_data(spec) for _, _, spec in self._todo]
        plan = await self._journal.open(inputs, self.group_id)
        self.group_id = plan.group_id
        self._metadata[GROUP_METADATA_KEY] = plan.group_id
        items = {index: item for index, item, _ in self._todo}
        for replay in plan.replays:
            item = items[replay.index]
            outcome = RunOutcome(
                replay.index, item, replay.run, replay.error, replay.run_id, replayed=True
            )
            self._replays.append(outcome)
        for index, run_id, status in plan.in_flight:
            self._flights[run_id] = _Flight(index, items[index], _status(status))
            self._group.add(run_id)
            self.created.append(run_id)
        taken = {replay.index for replay in plan.replays}
        taken.update(index for index, _, _ in plan.in_flight)
        self._todo = deque(entry for entry in self._todo if entry[0] not in taken)
        self.resumed = plan.resumed

    def _replay(self) -> None:
        replays, self._replays = self._replays, []
        for outcome in replays:
            self._report(outcome)

    async def _journaled(self, index: int) -> None:
        """The journal commits the outcome of input `index` before it is handed out."""
        await self._journal.handing_out(index)

    # -- the background task (inside `async with`) --------------------------------------

    async def _drive(self) -> None:
        try:
            assert self._drive_scope is not None
            with self._drive_scope:
                self._replay()
                while not self._finished and self._failure is None:
                    await self._advance()
        except Exception as exc:  # handed to the consumer, raised where it waits
            self._failure = exc
        finally:
            self._driving = False
            self._signal()

    def _signal(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _sleep(self) -> None:
        assert self._wake is not None
        await self._wake.wait()
        self._wake = anyio.Event()

    # -- one step -----------------------------------------------------------------------

    async def _advance(self) -> None:
        """Start runs while there is room and wait until something happened."""
        if self._started is None:
            self._started = self._clock()
        if self._trace is not None:
            self._trace.enter()
        try:
            async with anyio.create_task_group() as tg:
                self._step = tg.cancel_scope
                self._creators = _PARALLEL_CREATES
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
            self._step = None
        if self._failure is not None:
            failure = self._failure
            if self._tg is None:
                with anyio.CancelScope(shield=True):
                    await self.aclose()
            raise failure

    async def _create_while_room(self) -> None:
        try:
            while not self._ready() and self._room():
                index, item, spec = self._todo.popleft()
                self._creating += 1
                try:
                    await self._create(index, item, spec)
                finally:
                    self._creating -= 1
                    self._group.poke()
        except _errors.JournalError as exc:
            self._failure = self._failure or exc
            self._stop_reason = f"the journal failed: {exc}"
            if self._step is not None:
                self._step.cancel()
        finally:
            self._creators -= 1

    def _ready(self) -> bool:
        """Is there something for a consumer waiting in this step (an outcome, or an
        event in events())? In the background the consumer is woken instead."""
        if self._tg is not None:
            return False
        return bool(self._outcomes if self._events is None else self._events)

    def _room(self) -> bool:
        busy = len(self._flights) + self._creating
        if self._tg is not None:
            busy += self._backlog  # outcomes not yet taken hold their place
        return (
            bool(self._todo) and not self._stopped() and busy < self._max and self._remaining() > 0
        )

    def _stopped(self) -> bool:
        return self._stop_reason is not None or self._closed or self._remaining() <= 0

    async def _create(self, index: int, item: RunInput, spec: RunSpec) -> None:
        key = self._journal.key_for(index)
        self._keys.add(key.value)
        try:
            run = None if key.sent_at is None else await self._reconcile(key)
            if run is None:
                await self._journal.sending(index)  # on disk before the POST goes out
                metadata = {**(spec.metadata or {}), **self._metadata}
                run = await self._runs.create_spec(
                    attrs.evolve(spec, metadata=metadata), idempotency_key=key.value
                )
        except _errors.JournalError:
            raise
        except _errors.APITimeoutError as exc:
            if exc.sent:
                self._finish(index, item, error=exc)
            else:  # RateLimitTimeoutError (no token in time) or a create deadline passed
                # before its POST: nothing went out, so it waits its turn again
                logger.debug("fan-out %s: input %d waits for a create token", self.group_id, index)
                self._journal.not_sent(index)
                self._todo.appendleft((index, item, spec))
                if isinstance(exc, _errors.RateLimitTimeoutError) and exc.next_token_in:
                    # It gave up at once (the token frees after its deadline): wait for
                    # that token rather than ask again at once, over and over.
                    await anyio.sleep(min(exc.next_token_in, max(0.0, self._remaining())))
            return
        except _errors.CodegenError as exc:
            self._finish(index, item, error=exc)
            return
        self._journal.created(index, run.id, _status_text(run))
        self.created.append(run.id)
        self._flights[run.id] = _Flight(index, item, run.status)
        self._group.add(run)
        self._emit(ProgressKind.CREATED, index, item, run=run)

    async def _reconcile(self, key: Key) -> AgentRun | None:
        """A create an earlier process may have sent: its run, or None (post it, same key)."""
        assert key.sent_at is not None
        return await reconcile_journaled(
            lambda: self._runs.find_by_idempotency_key(key.value),
            key.value,
            key.sent_at,
            self._runs.create_policy,
            self._runs.unconfirmed_creates,
        )

    async def _watch(self) -> None:
        """Collect what the poller saw until there is something to hand out (or room to
        start more) and no create is in progress."""
        while True:
            self._collect()
            if self._remaining() <= 0:
                self._expire()
            if not self._creators:
                if self._ready() or self._finished or self._room():
                    return
                if not self._group.pending and self._todo and self._stopped():
                    self._skip_rest()
                    continue
            remaining = self._remaining()
            wait = min(remaining if remaining > 0 else math.inf, self._journal.due_in())
            with anyio.move_on_after(wait):
                await self._group.changed()
            await self._commit_due()

    async def _commit_due(self) -> None:
        """Let the journal commit what it staged meanwhile, once due."""
        try:
            await self._journal.commit_due()
        except _errors.JournalError as exc:
            self._failure = self._failure or exc
            self._stop_reason = f"the journal failed: {exc}"
            if self._step is not None:
                self._step.cancel()

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
                self._journal.status(flight.index, _status_text(snapshot))
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
        self._journal.finished(index, outcome.run, error, run_id)
        self._backlog += 1
        self._report(outcome, run=run)

    def _report(self, outcome: RunOutcome, *, run: AgentRun | None = None) -> None:
        """Hand an outcome to the consumer (new, or replayed from the journal)."""
        if self._events is None:
            self._outcomes.append(outcome)
        kind = ProgressKind.FINISHED if outcome.ok else ProgressKind.FAILED
        run = run or outcome.run
        index, item, error = outcome.index, outcome.input, outcome.error
        self._emit(kind, index, item, run=run, error=error, outcome=outcome)
        if self._fail_fast and not outcome.ok and self._stop_reason is None:
            self._stop_reason = f"fail_fast: items[{index}] failed"
        self._signal()

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
            self._signal()
        if self._on_progress is not None:
            self._on_progress(event)

    def _remaining(self) -> float:
        if self._timeout is None or self._started is None:
            return math.inf
        return self._started + self._timeout - self._clock()


def _status(text: str | None) -> RunStatus | None:
    return None if text is None else RunStatus(text)


def _status_text(run: AgentRun) -> str | None:
    return None if run.status is None else str(run.status.value)
