"""Agent runs as Celery tasks, exactly once per task id (extra `codegen-async[celery]`).

Hand-written, beside the generated facade::

    from celery import Celery
    from codegen_sync import AgentRun, RateLimits
    from codegen_sync.celery import install

    app = Celery("jobs", broker="redis://127.0.0.1:6379/0", backend="redis://127.0.0.1:6379/1")
    install(app, rate_limits=RateLimits.documented().shared("redis://127.0.0.1:6379/2"))
    result = app.send_task("codegen.run", kwargs={"prompt": "Fix the flaky test", "repo_id": 7})
    run = AgentRun.from_dict(result.get(timeout=3600))

How a delivery of `codegen.run` ends with exactly one run, whatever happened before it:

1. The task id is the run's idempotency key (`celery-<task id>` in its metadata).
2. The fleet's ledger (key -> first claimed, reserved at, holder and lease, run id) lives
   in the shared store: `install(app, store=URL)`, else the `RateLimits.shared` store of
   the client options or of `CODEGEN_RATE_LIMIT_STORE`, else the broker's Redis. Nothing
   else is good enough for many machines, so without any of them `install` refuses.
3. `claim` answers, atomically: "fresh" (reserved for this delivery before its POST),
   "done" (the run id: one GET), "held" (another live delivery is creating it: ask again
   until it answers or its lease runs out) or "orphaned" (reserved by a delivery that
   died before it recorded a run id: the run is looked up by its key among the runs
   created since the reservation, with the same rules as any ambiguous create, and
   posted with the same key only when none carries it).
4. The run id is recorded at once after the create; then the run is awaited through the
   process's client, whose poller serves every run awaited in that process.

A 429, a 5xx, a lost connection or an ambiguous create retries the task (same task id,
same key; Retry-After honoured), without limit in count but within the call's own
`timeout` counted from the task's first delivery. An error retrying cannot fix (400, 401,
402, 403, 404, 422, a bad argument) fails the task at once with the SDK's exception.
"""

from __future__ import annotations

import atexit
import datetime
import logging
import os
import random
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

import anyio.to_thread

from codegen_async import RunSpec, _errors, _validate
from codegen_async._create import reconcile_journaled
from codegen_async._stores import (
    Ledger,
    StoreUnavailable,
    check_store_url,
    ledger_key,
    open_ledger,
)
from codegen_async.models import AgentRun, AgentType

from ._generated import Codegen
from ._portal import get_portal

__all__ = ["KEY_PREFIX", "TASK_NAME", "install"]

logger = logging.getLogger("codegen_async")

TASK_NAME = "codegen.run"
KEY_PREFIX = "celery-"  # the idempotency key of a task: KEY_PREFIX + its task id
LEDGER_TTL = 7 * 24 * 3600.0  # seconds a ledger entry is kept after its last claim
LEASE_MARGIN = 5.0  # seconds added to the longest a create can take
HELD_POLL = 0.2  # seconds between looks at a key another delivery holds
CLOCK_SKEW = 60.0  # seconds the store's clock may run ahead of the API's
MAX_COUNTDOWN = 60.0  # the longest pause between two tries of a transient failure


# Failures another try can fix; `sent` says whether the create may have gone out.
_TRANSIENT = (
    _errors.RateLimitError,
    _errors.ServerError,
    _errors.APIConnectionError,
    _errors.AmbiguousCreateError,
    _errors.ResponseValidationError,
)


def install(app: Any, *, store: str | None = None, **client_options: Any) -> Any:
    """Register the task `codegen.run` on the Celery `app` and return it.

    `client_options` are `codegen_sync.Codegen` keywords; what is not given comes from
    `CODEGEN_*` as usual, read in each worker process. `store` names the ledger's store
    (`redis://...` or `sqlite:///ABSOLUTE/PATH`); by default the `RateLimits.shared`
    store of the options or of `CODEGEN_RATE_LIMIT_STORE`, else the broker's Redis;
    without any, `ConfigurationError`. Calling it again on the same app returns the task
    already registered (its first options stay)."""
    existing = getattr(app, "_codegen_fleet", None)
    if existing is not None:
        return existing.task
    fleet = _Fleet(_store_url(app, store, client_options), client_options)
    fleet.task = app.task(
        name=TASK_NAME,
        bind=True,
        acks_late=True,  # a delivery is acknowledged only when it ended
        reject_on_worker_lost=True,  # a killed pool process requeues, never WorkerLostError
        max_retries=None,  # bounded by the call's timeout instead
        typing=True,
    )(_task_function(fleet))
    app._codegen_fleet = fleet
    return fleet.task


def _store_url(app: Any, store: str | None, options: Mapping[str, Any]) -> str:
    """Where the ledger lives: see `install`."""
    if store is not None:
        return check_store_url(store, "install(store=...)")
    limits = options.get("rate_limits")
    shared = getattr(limits, "store", None)
    if shared:
        return str(shared)
    from_env = os.environ.get("CODEGEN_RATE_LIMIT_STORE", "").strip()
    if from_env:
        return check_store_url(from_env, "CODEGEN_RATE_LIMIT_STORE")
    broker = str(app.conf.broker_url or "")
    if broker.lower().startswith(("redis://", "rediss://")):
        return check_store_url(broker, "the app's broker_url")
    raise _errors.ConfigurationError(
        "codegen_sync.celery.install needs a store every worker shares for its ledger of "
        "runs: give store='redis://...', RateLimits.shared(...) in rate_limits, set "
        "CODEGEN_RATE_LIMIT_STORE, or use a Redis broker"
    )


class _Fleet:
    """What `install` set up for one app: the options, and per worker process one client
    and one ledger connection, made on first use, dropped in a forked child (never used
    there), closed when the process ends."""

    def __init__(self, store_url: str, client_options: dict[str, Any]) -> None:
        self.store_url = store_url
        self.client_options = client_options
        self.task: Any = None
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._client: Codegen | None = None
        self._ledger: Ledger | None = None
        _FLEETS.add(self)

    def parts(self) -> tuple[Codegen, Ledger]:
        """This process's client and ledger, made on first use."""
        with self._lock:
            if self._pid != os.getpid():
                self.forget()
            if self._client is None:
                self._client = Codegen(**self.client_options)
            if self._ledger is None:
                self._ledger = open_ledger(self.store_url)
            return self._client, self._ledger

    def forget(self) -> None:
        """In a forked child: drop the parent's client and ledger without touching them."""
        self._pid = os.getpid()
        self._client = None
        self._ledger = None

    def close(self) -> None:
        """Close what this process made (at its end)."""
        with self._lock:
            if self._pid != os.getpid():
                self.forget()
                return
            client, ledger = self._client, self._ledger
            self._client = self._ledger = None
        if client is not None:
            try:
                client.close()
            except Exception as exc:  # the process is ending: say so, do not raise
                logger.warning("closing the Celery worker's Codegen client failed: %s", exc)
        if ledger is not None:
            ledger.close()


_FLEETS: weakref.WeakSet[_Fleet] = weakref.WeakSet()


def _forget_all_after_fork() -> None:
    for fleet in list(_FLEETS):
        fleet.forget()


def _close_all(*_: Any, **__: Any) -> None:
    for fleet in list(_FLEETS):
        fleet.close()


os.register_at_fork(after_in_child=_forget_all_after_fork)
atexit.register(_close_all)
try:
    from celery.signals import worker_process_shutdown
except ImportError:  # pragma: no cover - celery is what this module is for
    pass
else:
    worker_process_shutdown.connect(_close_all, weak=False)


def _task_function(fleet: _Fleet) -> Callable[..., dict[str, Any]]:
    def run(
        task: Any,
        prompt: str,
        *,
        repo_id: int | None = None,
        model: str | None = None,
        agent_type: AgentType | None = None,
        metadata: Mapping[str, Any] | None = None,
        images: Iterable[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Create the run for this task id (exactly once) and return the terminal run as
        `AgentRun.to_dict()`."""
        spec = RunSpec(
            prompt,
            repo_id=repo_id,
            model=model,
            agent_type=agent_type,
            metadata=metadata,
            images=images,
        )
        timeout = _validate.timeout("timeout", timeout)
        return _Delivery(fleet, task, spec, timeout).run()

    run.__name__ = run.__qualname__ = "codegen_run"
    run.__module__ = __name__
    return run


class _Delivery:
    """One delivery of one task: claim its key, get or make its run, await it."""

    def __init__(self, fleet: _Fleet, task: Any, spec: Any, timeout: float | None) -> None:
        self.task = task
        self.spec = spec
        self.timeout = timeout
        self.client, self.ledger = fleet.parts()
        settings = self.client.settings
        self.key = KEY_PREFIX + str(task.request.id)
        self.entry = ledger_key(settings.base_url, settings.api_key, self.key)
        self.holder = uuid.uuid4().hex
        policy = self.client.agent_runs.create_policy
        self.lease = policy.commit_horizon + (policy.deadline or 0.0) + LEASE_MARGIN
        self.first_at = time.time()
        self.sent = False

    def run(self) -> dict[str, Any]:
        try:
            run = self._obtain()
            final = self.client.agent_runs.wait(run, timeout=self._time_left())
        except (*_TRANSIENT, StoreUnavailable) as exc:
            self._retry(exc)
        except _errors.CodegenError:
            self._release()
            raise
        return final.to_dict()

    def _obtain(self) -> AgentRun:
        """The run of this task: found by its recorded id, or created exactly once."""
        while True:
            claim = self.ledger.claim(self.entry, self.holder, self.lease, LEDGER_TTL)
            self.first_at = claim.first_at + (time.time() - claim.now)  # on our clock
            if claim.state == "done":
                assert claim.run_id is not None
                return self.client.agent_runs.get(claim.run_id)
            if claim.state == "held":
                self._time_left()  # raises WaitTimeoutError once the task's timeout passed
                time.sleep(min(HELD_POLL, max(claim.wait, 0.01)))
                continue
            run = None
            if claim.state == "orphaned":
                assert claim.reserved_at is not None
                self.sent = True
                run = self._reconcile(claim.reserved_at)
            if run is None:
                self.sent = True
                run = self.client.agent_runs.create_spec(self.spec, idempotency_key=self.key)
            recorded = self.ledger.record(self.entry, run.id)
            if recorded != run.id:  # cannot happen while leases hold: say so loudly
                logger.warning(
                    "task key %s: run %d created, %d recorded", self.key, run.id, recorded
                )
                return self.client.agent_runs.get(recorded)
            return run

    def _reconcile(self, reserved_at: float) -> AgentRun | None:
        """The run an earlier delivery may have created (it reserved the key at
        `reserved_at`, store time, and died): looked up among the runs created since."""
        started = datetime.datetime.fromtimestamp(reserved_at, tz=datetime.timezone.utc)
        since = started - datetime.timedelta(seconds=CLOCK_SKEW)
        runs = self.client.agent_runs

        async def find() -> AgentRun | None:
            return await anyio.to_thread.run_sync(
                lambda: runs.find_by_idempotency_key(self.key, since=since)
            )

        return get_portal().call(
            reconcile_journaled,
            find,
            self.key,
            started,
            runs.create_policy,
            runs.unconfirmed_creates,
        )

    def _time_left(self) -> float | None:
        if self.timeout is None:
            return None
        left = self.timeout - (time.time() - self.first_at)
        if left <= 0:
            raise _errors.WaitTimeoutError(
                f"task {self.task.request.id}: its timeout of {self.timeout:g}s has passed"
            )
        return left

    def _release(self) -> None:
        try:
            self.ledger.release(self.entry, self.holder, sent=self.sent)
        except StoreUnavailable as exc:  # its lease runs out on its own
            logger.warning("task key %s: could not release it: %s", self.key, exc)

    def _retry(self, exc: Exception) -> NoReturn:
        """Raise `task.retry` with a countdown fit for `exc`; or `exc` itself when the
        task's timeout would pass before the next try."""
        self.sent = self.sent and not _never_sent(exc)
        self._release()
        countdown = _countdown(exc, self.task.request.retries)
        if self.timeout is not None and self.timeout - (time.time() - self.first_at) <= countdown:
            raise exc
        logger.info(
            "task %s: %s; trying again in %.3gs",
            self.task.request.id,
            type(exc).__name__,
            countdown,
        )
        raise self.task.retry(exc=exc, countdown=countdown)


def _never_sent(exc: Exception) -> bool:
    """True when `exc` proves the create was not processed (a 429, nothing sent)."""
    if isinstance(exc, _errors.RateLimitError):
        return True
    return isinstance(exc, _errors.APIConnectionError) and not exc.sent


def _countdown(exc: Exception, retries: int) -> float:
    """Seconds before the next try: the server's Retry-After, else a jittered backoff."""
    if isinstance(exc, _errors.RateLimitError) and exc.retry_after is not None:
        return max(0.0, float(exc.retry_after))
    return min(MAX_COUNTDOWN, 0.5 * 2.0 ** min(retries, 8)) * (0.5 + random.random() / 2)
