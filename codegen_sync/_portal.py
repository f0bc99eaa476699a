"""The private event loop behind `codegen_sync` (hand-written; the facade is generated).

Why not anyio's `BlockingPortal` (`anyio.from_thread.start_blocking_portal`): every
blocking call is one hop to the loop and back, and B3 (the sync facade's cost per call)
is that hop. Measured on these machines (2026-12-03), `BlockingPortal.call` costs
157-213 us per hop, this portal 82-106 us: swapping it in would make B3 worse. What
follows is therefore ours, kept small and self-contained: nothing outside this module
touches its private members, and it touches none of another module's (it reads the
async objects only through their public methods, and `Batched.batches()`).

One asyncio loop per process runs on a daemon thread, started the first time a sync
client is made. Every blocking call hands a coroutine to that loop and waits for its
result on a `concurrent.futures.Future`. What it promises:

- threads: many threads can share one client; everything runs on the one loop, so the
  client's rate limiter and poller are shared by them all;
- running loops: it works when the calling thread runs an event loop of its own
  (Jupyter, a function called inside `asyncio.run`): that loop is only blocked, never
  re-entered; a call made from the portal loop's own thread (a callback calling the
  client) raises instead of deadlocking;
- Ctrl-C: while waiting, it cancels the task, waits briefly (`CANCEL_GRACE`) for it to
  unwind, and re-raises; the loop's thread never receives SIGINT;
- errors: any exception, BaseException included, comes back to the caller; none stops
  the loop;
- fork: after `fork()` the child starts a fresh loop; a client made before the fork
  refuses to be used in the child;
- abandoned iterators: an iterator left half-read is closed when it is collected (its
  async iterator closed in the task that owns it), and so is a client never closed
  (`weakref.finalize`: nothing blocks in `__del__`); at exit the clients still open are
  closed and the loop stops (bounded by `EXIT_GRACE`);
- the `Lifeline`: what keeps a client open is its lifeline, held by the client's twin and
  by every twin made from it (resources, `with_options` children, fan-outs, iterators):
  the client is closed when the last of them is collected, never under a live one, and
  without a reference cycle, so that happens as soon as CPython drops the last one.

The generated classes share their base here: `Twin` (the wrapped async object, the
portal, the lifeline: `_wrap`, `_setup`) and `ClosingTwin` (its own lifeline and
finalizer, `close()`'s body, `with`); the generator writes only what differs.

A `with` block runs its `__aenter__` and `__aexit__` in one task, and an iterator has one
pump task that owns the async iterator, since anyio's cancel scopes and task groups break
when they are entered and left in different tasks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import signal
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar

import anyio.to_thread

from codegen_async._batched import Batched

__all__ = [
    "ClosingTwin",
    "HeldContext",
    "Lifeline",
    "Portal",
    "SyncIterator",
    "Twin",
    "get_portal",
    "sync_callback",
]

T = TypeVar("T")
A = TypeVar("A")
S = TypeVar("S")
P = ParamSpec("P")
TwinT = TypeVar("TwinT", bound="Twin")
ClosingT = TypeVar("ClosingT", bound="ClosingTwin")

logger = logging.getLogger("codegen_sync")

# How long Ctrl-C waits for the cancelled task to unwind, and exit for clients to close.
CANCEL_GRACE = 2.0
EXIT_GRACE = 5.0

_Future = concurrent.futures.Future


class Lifeline:
    """What keeps an async object (and the one it was made from, `parent`) alive: its
    finalizer runs when the last twin holding this lifeline is collected."""

    __slots__ = ("__weakref__", "parent")

    def __init__(self, parent: Lifeline | None) -> None:
        self.parent = parent


class Portal:
    """An event loop on a daemon thread, and the ways to run things on it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()  # runs on the portal's thread only
        self._closing: set[asyncio.Task[Any]] = set()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run_loop, name="codegen-sync-loop", daemon=True
        )
        self._thread.start()
        # At exit, weakref runs the finalizers still alive newest first: every client and
        # iterator of this portal is closed (scheduled) before this one stops the loop.
        weakref.finalize(self, self.shutdown)

    def __repr__(self) -> str:
        return f"<Portal pid={self.pid} thread={self._thread.name!r} stopped={self._stopped}>"

    def _run_loop(self) -> None:
        if hasattr(signal, "pthread_sigmask"):  # Ctrl-C goes to the caller's thread
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        loop = self.loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
            for task in asyncio.all_tasks(loop):
                task.cancel()
            pending = asyncio.all_tasks(loop)
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=EXIT_GRACE))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()

    # -- running things -------------------------------------------------------------

    def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`await fn(*args, **kwargs)` in a task on the loop; block until it is done."""
        return self.wait(self.spawn(lambda: fn(*args, **kwargs)))

    def run_sync(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a task on the loop (for code that must run there)."""
        return self.wait(self.spawn(lambda: _in_task(lambda: fn(*args, **kwargs))))

    def spawn(self, make: Callable[[], Awaitable[T]]) -> Job[T]:
        """Start `make()` in a task on the loop (it is called there); don't wait."""
        self.check_caller()
        job: Job[T] = Job(self.loop)
        self.loop.call_soon_threadsafe(job.start, make)
        return job

    def wait(self, job: Job[T]) -> T:
        """The job's result; on Ctrl-C, cancel it, give it a moment, and re-raise."""
        try:
            return job.future.result()
        except KeyboardInterrupt:
            job.cancel()
            concurrent.futures.wait([job.future], timeout=CANCEL_GRACE)
            raise

    def iterate(
        self,
        lifeline: Lifeline | None,
        make: Callable[P, AsyncIterator[T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Iterator[T]:
        """A blocking iterator over the async iterator `make(*args, **kwargs)`, which is
        made on the loop; it holds `lifeline` (what it was made from stays open)."""
        return SyncIterator(self, self.run_sync(make, *args, **kwargs), lifeline)

    def enter(self, context: Any) -> HeldContext:
        """Enter the async context manager `context` in a task of its own that stays for
        the whole `with` block; `HeldContext.exit` leaves it in that same task."""
        return HeldContext(self, context)

    def finalize(
        self, owner: object, aclose: Callable[[], Awaitable[object]]
    ) -> weakref.finalize[[Callable[[], Awaitable[object]]], object]:
        """Call `aclose` on the loop, without waiting, when `owner` is collected or the
        process exits; `detach()` the finalizer when it was closed by hand."""
        return weakref.finalize(owner, self.close_soon, aclose)

    def close_soon(self, aclose: Callable[[], Awaitable[object]]) -> None:
        """Start `aclose()` on the loop and return at once (safe from any thread)."""
        if self._stopped or os.getpid() != self.pid:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self.loop.call_soon_threadsafe(self._start_closing, aclose)

    def _start_closing(self, aclose: Callable[[], Awaitable[object]]) -> None:
        task = self.loop.create_task(_logged(aclose))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def check_caller(self) -> None:
        """Refuse a call from another process (after fork), from the loop's own thread (it
        would deadlock), or after the loop stopped."""
        if os.getpid() != self.pid:
            raise RuntimeError(
                "this codegen_sync client was made in another process (before fork()); "
                "make a new client in this process"
            )
        if threading.get_ident() == self._thread.ident:
            raise RuntimeError(
                "codegen_sync was called from its own event loop's thread (for example "
                "from an on_update or on_progress callback, which run on that loop); "
                "a blocking call there would deadlock: do the work after the call returns"
            )
        if self._stopped:
            raise RuntimeError("codegen_sync's event loop has stopped (the process is exiting)")

    # -- stopping -------------------------------------------------------------------

    def shutdown(self) -> None:
        """Wait for the closes already started, then stop the loop (at exit; bounded)."""
        if self._stopped or os.getpid() != self.pid:
            return
        with contextlib.suppress(RuntimeError, concurrent.futures.TimeoutError):
            asyncio.run_coroutine_threadsafe(self._drain(), self.loop).result(EXIT_GRACE)
        self._stopped = True
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(EXIT_GRACE)

    async def _drain(self) -> None:
        if self._closing:
            await asyncio.wait(set(self._closing), timeout=EXIT_GRACE)


class Twin:
    """The base of every generated sync class: it holds the async object it wraps
    (`_async`, whose type each subclass declares), the portal that runs it, and the
    lifeline of what it was made from.

    Twins are made only by the facade, through `_wrap` (or `Codegen()`); a subclass that
    holds twins of its attributes extends `_setup` to make them."""

    __slots__ = ("__weakref__", "_async", "_lifeline", "_portal")

    _portal: Portal
    _async: Any
    _lifeline: Lifeline | None

    @classmethod
    def _wrap(cls: type[TwinT], portal: Portal, wrapped: Any, lifeline: Lifeline | None) -> TwinT:
        twin = cls.__new__(cls)
        twin._setup(portal, wrapped, lifeline)
        return twin

    def _setup(self, portal: Portal, wrapped: Any, lifeline: Lifeline | None = None) -> None:
        self._portal = portal
        self._async = wrapped
        self._lifeline = lifeline


class ClosingTwin(Twin):
    """The twin of an async object that is closed (`aclose`) and used in `async with`:
    it has its own lifeline, holding what it was made from, so the async object is
    closed when the last twin holding that lifeline goes (and keeps its parent open until
    then), or by `close()`; `with` enters the async object in a task of its own."""

    __slots__ = ("_contexts", "_finalizer")

    _contexts: list[HeldContext]
    _finalizer: weakref.finalize[[Callable[[], Awaitable[object]]], object]

    def _setup(self, portal: Portal, wrapped: Any, lifeline: Lifeline | None = None) -> None:
        super()._setup(portal, wrapped, Lifeline(lifeline))
        self._finalizer = portal.finalize(self._lifeline, wrapped.aclose)
        self._contexts = []

    def _close(self) -> None:
        """What every generated `close()` does (each keeps its own docstring)."""
        self._finalizer.detach()
        self._portal.call(self._async.aclose)

    def __enter__(self: ClosingT) -> ClosingT:
        self._contexts.append(self._portal.enter(self._async))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._contexts.pop().exit(exc_type, exc, tb)


def sync_callback(call: Callable[[S], T], twin: Callable[[A], S]) -> Callable[[A], Awaitable[T]]:
    """A blocking callback on the sync twin, as an async callback on the async object:
    it runs in a worker thread, from where it may call the facade."""

    async def adapted(wrapped: A) -> T:
        return await anyio.to_thread.run_sync(call, twin(wrapped))

    return adapted


async def _in_task(fn: Callable[[], T]) -> T:
    return fn()


async def _logged(aclose: Callable[[], Awaitable[object]]) -> None:
    """`await aclose()`; a failure to close is logged (at debug), never raised."""
    try:
        await aclose()
    except Exception:
        logger.debug("closing %r failed", aclose, exc_info=True)


class Job(Generic[T]):
    """One task on the loop and the future its caller waits on.

    Whatever the task raises, BaseException included, is set on the future and never
    escapes into the loop (asyncio would stop the loop for KeyboardInterrupt)."""

    __slots__ = ("_loop", "future", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.task: asyncio.Task[None] | None = None  # set by `start`, or by a pump
        self.future: _Future[T] = _Future()

    def start(self, make: Callable[[], Awaitable[T]]) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        self.task = self._loop.create_task(self._carry(make))

    async def _carry(self, make: Callable[[], Awaitable[T]]) -> None:
        try:
            result = await make()
        except asyncio.CancelledError:
            self.future.set_exception(RuntimeError("the call was cancelled"))
            raise
        except BaseException as exc:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

    def cancel(self) -> None:
        """Cancel the task (from any thread)."""
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
        else:
            self.future.cancel()


class HeldContext:
    """An async context manager entered and left in one task on the loop."""

    __slots__ = ("_job", "_portal", "_release", "value")

    def __init__(self, portal: Portal, context: Any) -> None:
        self._portal = portal
        self._release: asyncio.Future[tuple[Any, Any, Any]] | None = None
        entered: _Future[Any] = _Future()
        self._job = portal.spawn(lambda: self._hold(context, entered))
        try:
            concurrent.futures.wait(
                [entered, self._job.future], return_when=concurrent.futures.FIRST_COMPLETED
            )
        except KeyboardInterrupt:
            self._job.cancel()
            raise
        if not entered.done():  # the task ended without entering (the loop stopped)
            self._job.future.result()
        self.value = entered.result()

    async def _hold(self, context: Any, entered: _Future[Any]) -> bool | None:
        try:
            value = await context.__aenter__()
        except BaseException as exc:
            entered.set_exception(exc)
            return None
        self._release = asyncio.get_running_loop().create_future()
        entered.set_result(value)
        exc_info = await self._release
        suppress: bool | None = await context.__aexit__(*exc_info)
        return suppress

    def exit(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Leave the context in its task; True when it suppresses the exception."""
        release = self._release
        assert release is not None
        self._portal.loop.call_soon_threadsafe(release.set_result, (exc_type, exc, tb))
        return self._portal.wait(self._job)


class SyncIterator(Iterator[T]):
    """A blocking iterator over an async iterator owned by one pump task on the loop.

    Each `next()` that finds nothing buffered is one round trip: the pump reads the next
    item, or the next batch when the source is `Batched` (a page of a list or of logs).
    `close()`, or garbage collection, closes the async iterator in the pump's task."""

    def __init__(
        self, portal: Portal, source: AsyncIterator[T], lifeline: Lifeline | None = None
    ) -> None:
        self._portal = portal
        self._lifeline = lifeline
        self._buffer: deque[T] = deque()
        self._done = False
        self._pump = _Pump(portal, source)
        self._finalizer = portal.finalize(self, self._pump.close)

    def __iter__(self) -> SyncIterator[T]:
        return self

    def __next__(self) -> T:
        while not self._buffer:
            if self._done:
                raise StopIteration
            try:
                batch = self._portal.wait(self._pump.request())
            except BaseException:
                self._end()
                raise
            if batch is None:
                self._end()
                raise StopIteration
            self._buffer.extend(batch)
        return self._buffer.popleft()

    def _end(self) -> None:
        self._done = True
        self._finalizer.detach()

    def close(self) -> None:
        """Stop early: close the async iterator (in its pump task) and wait for that."""
        if self._done:
            return
        self._end()
        self._buffer.clear()
        self._portal.wait(self._portal.spawn(self._pump.close))

    def __enter__(self) -> SyncIterator[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Pump(Generic[T]):
    """The task that owns one async iterator; it answers one request at a time."""

    def __init__(self, portal: Portal, source: AsyncIterator[T]) -> None:
        self._portal = portal
        self._loop = portal.loop
        self._source = source
        self._requests: deque[_Future[list[T] | None]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._closed: asyncio.Future[None] | None = None

    def request(self) -> Job[list[T] | None]:
        """Ask for the next batch (None at the end); the caller waits on the job."""
        self._portal.check_caller()
        job: Job[list[T] | None] = Job(self._loop)
        self._loop.call_soon_threadsafe(self._enqueue, job)
        return job

    def _enqueue(self, job: Job[list[T] | None]) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        if self._closing:
            job.future.set_result(None)
            return
        job.task = self._ensure_task()
        self._requests.append(job.future)
        assert self._wakeup is not None
        self._wakeup.set()

    def _ensure_task(self) -> asyncio.Task[None]:
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._closed = self._loop.create_future()
            self._task = self._loop.create_task(self._run())
        return self._task

    async def _run(self) -> None:
        assert self._wakeup is not None
        assert self._closed is not None
        batches = self._source.batches() if isinstance(self._source, Batched) else None
        try:
            while not self._closing:
                if not self._requests:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                future = self._requests.popleft()
                try:
                    if batches is not None:
                        batch: list[T] = await batches.__anext__()
                    else:
                        batch = [await self._source.__anext__()]
                except StopAsyncIteration:
                    future.set_result(None)
                    break
                except asyncio.CancelledError:
                    future.set_exception(RuntimeError("the iteration was cancelled"))
                    raise
                except BaseException as exc:
                    future.set_exception(exc)
                    break
                future.set_result(batch)
        finally:
            self._closing = True
            while self._requests:
                self._requests.popleft().set_result(None)
            await _aclose(batches)
            await _aclose(self._source)
            self._closed.set_result(None)

    async def close(self) -> None:
        """End the pump; the source is closed in the pump's own task (awaited here)."""
        self._closing = True
        if self._task is None:
            await _aclose(self._source)  # never started: nothing runs in another task
            return
        assert self._wakeup is not None
        assert self._closed is not None
        self._wakeup.set()
        await asyncio.shield(self._closed)


async def _aclose(source: object) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await _logged(aclose)


_portal: Portal | None = None
_portal_lock = threading.Lock()


def get_portal() -> Portal:
    """This process's portal, started on first use (and anew in a forked child)."""
    global _portal
    portal = _portal
    if portal is not None and portal.pid == os.getpid():
        return portal
    with _portal_lock:
        if _portal is None or _portal.pid != os.getpid():
            _portal = Portal()
        return _portal


def _after_fork_in_child() -> None:
    global _portal, _portal_lock
    _portal = None
    _portal_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
