"""One poller per client: every awaited run is refreshed by a shared, coalescing schedule.

There is no background task. The poller is shared state (the awaited runs, each with its
next due time), and whichever waiter finds nobody refreshing becomes the *leader*: it
sleeps until the earliest due time, refreshes every run that is due in one cycle, and
wakes the waiters whose runs changed. When the leader leaves (its run finished, it timed
out, or it was cancelled) it hands the role to another waiter. So nothing can outlive its
caller, cancellation needs no cleanup beyond a `finally`, and it works the same with or
without `async with client`, under asyncio and trio.

A cycle with several due runs reads the newest-first list of the caller's API runs,
100 per page, until the oldest due run has been seen (at most one page per due run);
runs not found there are fetched one by one. K awaited runs cost about ceil(span/100)
requests per cycle instead of K. A cycle takes every run due within half its interval,
and every awaited run seen on the pages counts as checked: runs read together stay on
one schedule, so a fan-out's runs share cycles instead of each waking its own.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.lowlevel

from . import _errors, _validate
from ._config import PollPolicy
from ._pagination import MAX_PAGE_SIZE
from .models import AgentRun, Page, SourceType

if TYPE_CHECKING:
    import asyncio

    from ._telemetry import RunTrace, Telemetry

try:  # how anyio itself tells asyncio from the other backends
    from sniffio import current_async_library
except ImportError:  # pragma: no cover - then trio (which needs sniffio) is absent too

    def current_async_library() -> str:
        return "asyncio"


__all__ = ["Poller", "RunSource", "Subscriber", "Watch", "WatchGroup"]

logger = logging.getLogger("codegen_async")

_NO_DEADLINE = contextlib.nullcontext()  # reusable: holds nothing

_PAGE = MAX_PAGE_SIZE
# Errors that end a wait: polling again cannot make them go away.
_FATAL = (
    _errors.NotFoundError,
    _errors.PermissionDeniedError,
    _errors.AuthenticationError,
    _errors.BadRequestError,
    _errors.ValidationError,
    _errors.ResponseValidationError,
)


class RunSource(Protocol):
    """What the poller reads runs through (the client's run engine)."""

    async def caller_id(self) -> int: ...

    async def get(self, run_id: int) -> AgentRun: ...

    async def list_page(
        self, *, user_id: int | None, source_type: SourceType | str | None, skip: int, limit: int
    ) -> Page[AgentRun]: ...


class Subscriber:
    """One waiting caller (one task: a second task sleeping on the same subscriber would
    not be woken): woken when a run it watches changes status, or when poked.

    A flag, and while it sleeps the one thing that wakes it: a bare asyncio future under
    asyncio, an `anyio.Event` elsewhere. (An `anyio.Event` kept per waiter costs an
    asyncio.Event and its deque, ~0.8 KB, times 10,000 parked waits: B5.)"""

    __slots__ = ("_waker", "woken")

    def __init__(self) -> None:
        self.woken = False
        self._waker: asyncio.Future[None] | anyio.Event | None = None

    def wake(self) -> None:
        self.woken = True
        waker, self._waker = self._waker, None
        if isinstance(waker, anyio.Event):
            waker.set()
        elif waker is not None and not waker.done():
            waker.set_result(None)

    async def sleep(self) -> None:
        """Until woken (a checkpoint when it already was); then not woken any more."""
        if self.woken:
            await anyio.lowlevel.checkpoint()
        else:
            waker = self._waker = _new_waker()
            try:
                await (waker.wait() if isinstance(waker, anyio.Event) else waker)
            finally:
                self._waker = None
        self.woken = False


def _new_waker() -> asyncio.Future[None] | anyio.Event:
    """What one sleep waits on: a bare future under asyncio, else an `anyio.Event`."""
    if current_async_library() == "asyncio":
        import asyncio  # loaded already: asyncio runs this (`import codegen_async` does not)

        return asyncio.get_running_loop().create_future()
    return anyio.Event()


class Watch:
    """One awaited run: its last snapshot, its schedule and who waits for it."""

    __slots__ = ("due", "error", "interval", "run_id", "snapshot", "subscribers", "trace")

    def __init__(self, run_id: int, snapshot: AgentRun | None, due: float, interval: float) -> None:
        self.run_id = run_id
        self.snapshot = snapshot
        self.due = due
        self.interval = interval
        self.error: Exception | None = None
        self.subscribers: list[Subscriber] = []
        self.trace: RunTrace | None = None  # the waiters' spans, when tracing

    @property
    def done(self) -> bool:
        return self.error is not None or (self.snapshot is not None and self.snapshot.is_terminal)

    def update(self, run: AgentRun) -> None:
        old = self.snapshot
        self.snapshot = run
        if old is None or old.status != run.status:
            for sub in self.subscribers:
                sub.wake()
            if self.trace is not None:
                self.trace.changed(run)

    def fail(self, error: Exception) -> None:
        self.error = error
        for sub in self.subscribers:
            sub.wake()


class Poller:
    """The awaited runs of one client and the schedule that refreshes them."""

    def __init__(
        self,
        source: RunSource,
        policy: PollPolicy,
        *,
        clock: Callable[[], float] = anyio.current_time,
        rng: random.Random | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._source = source
        self.telemetry = telemetry
        self.policy = policy
        self._clock = clock
        self._rng = rng or random.Random()
        self._watches: dict[int, Watch] = {}
        self._leading = False
        self._reschedule = anyio.Event()
        self.stats = {"cycles": 0, "gets": 0, "list_pages": 0}

    @property
    def watched(self) -> int:
        """How many runs are being awaited now."""
        return len(self._watches)

    # -- the public waits ---------------------------------------------------------------

    async def wait(
        self,
        run: AgentRun | int,
        *,
        timeout: float | None = None,
        raise_on_failure: bool = False,
        on_update: Callable[[AgentRun], object] | None = None,
    ) -> AgentRun:
        """Return the run once it is terminal (see `AgentRuns.wait`)."""
        _validate.timeout("timeout", timeout)
        sub = Subscriber()
        watch = self.subscribe(run, sub)
        if watch.trace is not None:
            watch.trace.enter(sub)  # the refreshes this waiter leads are its children
        seen = None
        try:
            # No cancel scope without a timeout: one per parked wait costs ~0.9 KB (B5).
            with _NO_DEADLINE if timeout is None else anyio.fail_after(timeout):
                while True:
                    snapshot = watch.snapshot
                    if on_update is not None and snapshot is not None and snapshot.status != seen:
                        seen = snapshot.status
                        on_update(snapshot)
                    if watch.error is not None:
                        raise watch.error
                    if snapshot is not None and snapshot.is_terminal:
                        break
                    await self.wait_or_lead(sub)
        except TimeoutError:
            raise _errors.WaitTimeoutError(
                f"agent run {watch.run_id} not finished after {timeout}s", run=watch.snapshot
            ) from None
        finally:
            self.unsubscribe(watch, sub)
        assert snapshot is not None
        if raise_on_failure and not snapshot.succeeded:
            raise _errors.AgentRunFailedError(snapshot)
        return snapshot

    async def as_completed(
        self, runs: Iterable[AgentRun | int], *, timeout: float | None = None
    ) -> AsyncIterator[AgentRun]:
        """Yield each run once, as it becomes terminal."""
        _validate.timeout("timeout", timeout)
        deadline = math.inf if timeout is None else self._clock() + timeout
        group = self.group()
        try:
            for run in runs:
                group.add(run)
            while group.pending:
                finished = group.take_done()
                for watch in finished:
                    if watch.error is not None:
                        raise watch.error
                    assert watch.snapshot is not None
                    yield watch.snapshot
                if not group.pending or finished:
                    continue
                try:
                    with anyio.fail_after(deadline - self._clock()):
                        await group.changed()
                except TimeoutError:
                    ids = ", ".join(str(i) for i in sorted(group.pending))
                    oldest = next(iter(group.pending.values())).snapshot
                    raise _errors.WaitTimeoutError(
                        f"agent runs not finished after {timeout}s: {ids}", run=oldest
                    ) from None
        finally:
            group.close()

    def group(self) -> WatchGroup:
        """A set of runs one caller awaits together (`as_completed`, fan-outs)."""
        return WatchGroup(self)

    def reschedule(self) -> None:
        """Make the leader look at the schedule again (a run was added, or a group poked)."""
        self._reschedule.set()

    # -- watches (for `wait`, `as_completed` and `WatchGroup`) ---------------------------

    def subscribe(self, run: AgentRun | int, sub: Subscriber) -> Watch:
        snapshot = run if isinstance(run, AgentRun) else None
        run_id = (
            snapshot.id
            if snapshot is not None
            else _validate.positive_int("run (an AgentRun or an int id)", run)
        )
        watch = self._watches.get(run_id)
        if watch is None:
            now = self._clock()
            # A run we have never seen is checked at once; a fresh snapshot after `first`.
            due = now if snapshot is None else now + self._jittered(self.policy.first)
            watch = Watch(run_id, snapshot, due, self.policy.first)
            self._watches[run_id] = watch
            self._reschedule.set()
        elif snapshot is not None and watch.snapshot is None:
            watch.snapshot = snapshot
        watch.subscribers.append(sub)
        if self.telemetry is not None:
            watch.trace = watch.trace or self.telemetry.run_trace(run_id)
            watch.trace.open(sub, watch.snapshot)
        return watch

    def unsubscribe(self, watch: Watch, sub: Subscriber) -> None:
        if sub in watch.subscribers:
            watch.subscribers.remove(sub)
            if watch.trace is not None and sub not in watch.subscribers:
                watch.trace.close(sub, watch.snapshot, watch.error)
        if not watch.subscribers and self._watches.get(watch.run_id) is watch:
            del self._watches[watch.run_id]
        if not self._leading:
            self._hand_off(sub)  # it may have been poked to lead: pass that on

    # -- leading ------------------------------------------------------------------------

    async def wait_or_lead(self, sub: Subscriber) -> None:
        """Return when something `sub` watches changed (or it was poked to lead)."""
        if self._leading:
            await sub.sleep()
            return
        self._leading = True
        try:
            await self._lead(sub)
        finally:
            self._leading = False
            self._hand_off(sub)

    async def _lead(self, sub: Subscriber) -> None:
        """Run refresh cycles until one of `sub`'s runs changes."""
        while not sub.woken:
            now = self._clock()
            due = min((w.due for w in self._watches.values() if not w.done), default=math.inf)
            if due > now:
                reschedule = self._reschedule = anyio.Event()
                with anyio.move_on_after(due - now):
                    await reschedule.wait()
                continue
            await self._cycle()
        sub.woken = False

    def _hand_off(self, leaving: Subscriber) -> None:
        """Poke one other waiter so it takes over the refreshing."""
        for watch in self._watches.values():
            for sub in watch.subscribers:
                if sub is not leaving:
                    sub.wake()
                    return

    # -- one refresh cycle --------------------------------------------------------------

    async def _cycle(self) -> None:
        now = self._clock()
        due = [w for w in self._watches.values() if not w.done and w.due - now <= 0.5 * w.interval]
        if not due:
            return
        self.stats["cycles"] += 1
        remaining = {w.run_id: w for w in due}
        refreshed = {w.run_id: w for w in due}
        if len(due) > 1:
            # Every awaited run on the pages read was refreshed too, due or not: it counts
            # as checked now, so the schedules of runs read together stay together.
            refreshed.update(await self._refresh_from_list(remaining))
        for watch in list(remaining.values()):
            await self._refresh_one(watch)
        for watch in refreshed.values():
            self._schedule(watch)

    async def _refresh_from_list(self, remaining: dict[int, Watch]) -> dict[int, Watch]:
        """Read the caller's newest API runs until every due run is seen or passed; the
        awaited runs seen on the way (`remaining` loses those)."""
        seen: dict[int, Watch] = {}
        try:
            user_id = await self._source.caller_id()
        except _errors.APIStatusError as exc:
            logger.debug("poller: cannot read caller id, falling back to GETs: %s", exc)
            return seen
        oldest = min(remaining)
        skip = 0
        for _ in range(len(remaining)):
            try:
                page = await self._source.list_page(
                    user_id=user_id, source_type=SourceType.API, skip=skip, limit=_PAGE
                )
            except (_errors.APIStatusError, _errors.APIConnectionError) as exc:
                logger.debug("poller: list refresh failed, falling back to GETs: %s", exc)
                return seen
            self.stats["list_pages"] += 1
            for run in page.items:
                watch = self._watches.get(run.id)
                if watch is not None and not watch.done:
                    watch.update(run)
                    seen[run.id] = watch
                    remaining.pop(run.id, None)
            skip += len(page.items)
            if not remaining or not page.items or skip >= page.total or page.items[-1].id <= oldest:
                return seen
        return seen

    async def _refresh_one(self, watch: Watch) -> None:
        self.stats["gets"] += 1
        try:
            run = await self._source.get(watch.run_id)
        except _FATAL as exc:
            watch.fail(exc)
        except (_errors.APIStatusError, _errors.APIConnectionError) as exc:
            logger.debug("poller: refresh of run %s failed, will retry: %s", watch.run_id, exc)
        else:
            watch.update(run)

    def _schedule(self, watch: Watch) -> None:
        policy = self.policy
        watch.due = self._clock() + self._jittered(watch.interval)
        watch.interval = min(policy.maximum, watch.interval * policy.factor)

    def _jittered(self, seconds: float) -> float:
        spread = self.policy.jitter
        return seconds * (1.0 + self._rng.uniform(-spread, spread)) if spread else seconds


class WatchGroup:
    """Runs awaited together by one caller: one subscriber, many watches.

    `add` subscribes a run, `changed()` returns when one of them changed status (leading
    the refreshes when nobody else does), `take_done` removes the finished ones, and
    `close` unsubscribes the rest. `poke` makes a pending `changed()` return early, after
    the refresh cycle in progress, if any: a soft stop that leaves no request half-done.
    """

    __slots__ = ("_poller", "_sub", "pending")

    def __init__(self, poller: Poller) -> None:
        self._poller = poller
        self._sub = Subscriber()
        self.pending: dict[int, Watch] = {}

    def add(self, run: AgentRun | int) -> int:
        """Await `run` too; returns its id."""
        watch = self._poller.subscribe(run, self._sub)
        if self.pending.setdefault(watch.run_id, watch) is not watch:
            self._poller.unsubscribe(watch, self._sub)  # already awaited by this group
        return watch.run_id

    def take_done(self) -> list[Watch]:
        """Remove and return the watches that finished (terminal, or failed for good)."""
        done = [watch for watch in self.pending.values() if watch.done]
        for watch in done:
            del self.pending[watch.run_id]
            self._poller.unsubscribe(watch, self._sub)
        return done

    async def changed(self) -> None:
        """Return when a run of the group changed status, or when poked."""
        await self._poller.wait_or_lead(self._sub)

    def poke(self) -> None:
        """Make the current or next `changed()` return."""
        self._sub.wake()
        self._poller.reschedule()

    def close(self) -> None:
        """Stop awaiting every run still pending."""
        for watch in self.pending.values():
            self._poller.unsubscribe(watch, self._sub)
        self.pending.clear()
