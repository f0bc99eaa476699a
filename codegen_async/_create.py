"""Exactly-once run creation on top of an API that has no idempotency key.

Every create carries a client token in the run's `metadata`. When a POST fails in a way
that leaves its outcome unknown (the request may have been processed: read timeout,
connection lost after sending, 408 or any 5xx, a 2xx we could not read, the call's
deadline), we do not POST blindly again. We *reconcile*: after a short grace period we
read the caller's newest API runs and return the one that carries the token. A server
may commit a create long after its answer was lost, so we POST again (with the same
token) only when the lookups have found nothing for a whole commit horizon since the
last POST went out. One deadline covers the whole create; if it passes, or the attempts
run out, undecided, `AmbiguousCreateError(idempotency_key, started_at)` tells the
caller exactly what to look for. A create cancelled by the caller after a POST went out
leaves its token in `unconfirmed` (and in a WARNING log line), so it is never lost; one
cancelled before anything was sent (waiting for a rate-limit token) created nothing.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

import anyio
import attrs

from . import _errors
from ._config import CreatePolicy
from .models import AgentRun

__all__ = [
    "AMBIGUOUS",
    "UnconfirmedCreate",
    "create_exactly_once",
    "new_idempotency_key",
]

logger = logging.getLogger("codegen_async")

# Failures after which the run may or may not exist.
AMBIGUOUS: tuple[type[Exception], ...] = (
    _errors.APIConnectionError,  # includes APITimeoutError: lost or timed out after sending
    _errors.ResponseValidationError,  # a 2xx we could not read
)


def is_ambiguous(error: Exception) -> bool:
    """Could the POST that raised `error` have created the run?"""
    if isinstance(error, _errors.APIStatusError):
        # A 5xx can come from a proxy after the server committed (even a 503): only a
        # lookup can tell.
        return error.status_code == 408 or error.status_code >= 500
    if isinstance(error, _errors.APIConnectionError) and not error.sent:
        return False
    return isinstance(error, AMBIGUOUS)


@attrs.frozen
class UnconfirmedCreate:
    """A create whose outcome is unknown: look for a run carrying `idempotency_key`."""

    idempotency_key: str
    started_at: datetime


def new_idempotency_key() -> str:
    """A fresh client token for one create."""
    return uuid.uuid4().hex


@attrs.define
class _Attempts:
    """What one create has done so far."""

    posted: bool = False
    last_sent: float = 0.0  # anyio clock time the latest POST went out
    last_error: Exception | None = None


async def create_exactly_once(
    post: Callable[[Callable[[], None]], Awaitable[AgentRun]],
    find: Callable[[], Awaitable[AgentRun | None]],
    key: str,
    policy: CreatePolicy,
    unconfirmed: list[UnconfirmedCreate],
) -> AgentRun:
    """POST, and after an ambiguous failure find the run by its token before posting again,
    all within the policy's one deadline.

    `post(on_send)` must call `on_send()` as its request goes out."""
    started_at = datetime.now(timezone.utc)
    state = _Attempts()
    deadline = math.inf if policy.deadline is None else policy.deadline
    try:
        with anyio.move_on_after(deadline):
            return await _attempts(post, find, key, policy, state)
    except anyio.get_cancelled_exc_class():
        if state.posted:
            _remember(unconfirmed, key, started_at, "cancelled")
        raise
    except _Undecided:
        why = f"last error: {state.last_error}"
    else:
        if not state.posted:
            raise _errors.APITimeoutError(
                f"agent run create did not start within its deadline ({deadline:.3g}s); "
                "nothing was sent",
                sent=False,
            )
        why = f"deadline of {deadline:.3g}s reached; last error: {state.last_error}"
    _remember(unconfirmed, key, started_at, "undecided")
    raise _errors.AmbiguousCreateError(
        f"could not confirm whether agent run with idempotency key {key} was created ({why})",
        idempotency_key=key,
        started_at=started_at,
        cause=state.last_error,
    )


async def reconcile_journaled(
    find: Callable[[], Awaitable[AgentRun | None]],
    key: str,
    started_at: datetime,
    policy: CreatePolicy,
    unconfirmed: list[UnconfirmedCreate],
) -> AgentRun | None:
    """A create an earlier process sent (or was about to send, from `started_at` on) and
    never heard back from: the run carrying its key, or None when lookups show there is
    none (post it, with the same key). `AmbiguousCreateError` when no lookup could tell.

    Its POST went out after the key was journaled: it looks until the commit horizon
    counted from then has passed, as for any ambiguous create."""
    horizon_in = policy.commit_horizon - (datetime.now(timezone.utc) - started_at).total_seconds()
    found, conclusive = await _look_for(find, policy, anyio.current_time() + max(0.0, horizon_in))
    if found is not None or conclusive:
        return found
    _remember(unconfirmed, key, started_at, "undecided")
    raise _errors.AmbiguousCreateError(
        f"could not confirm whether agent run with idempotency key {key} (journaled by "
        "an earlier process) was created",
        idempotency_key=key,
        started_at=started_at,
    )


class _Undecided(Exception):
    """Internal: the attempts ran out with the outcome still unknown."""


async def _attempts(
    post: Callable[[Callable[[], None]], Awaitable[AgentRun]],
    find: Callable[[], Awaitable[AgentRun | None]],
    key: str,
    policy: CreatePolicy,
    state: _Attempts,
) -> AgentRun:
    def on_send() -> None:
        state.posted = True
        state.last_sent = anyio.current_time()

    posts = policy.max_posts or 1
    for attempt in range(1, posts + 1):
        try:
            return await post(on_send)
        except Exception as exc:
            if not is_ambiguous(exc):
                if state.last_error is not None:  # an earlier POST may still have created it
                    found, _ = await _look_for(find, attrs.evolve(policy, grace=0, checks=1), 0.0)
                    if found is not None:
                        return found
                raise
            state.last_error = exc
        logger.info("create %s: outcome unknown (%s); reconciling", key, state.last_error)
        horizon_at = state.last_sent + policy.commit_horizon
        found, conclusive = await _look_for(find, policy, horizon_at)
        if found is not None:
            return found
        if not conclusive:
            logger.info("create %s: every lookup failed; not posting again", key)
            break
        if attempt < posts:
            logger.info(
                "create %s: no run carries the token %.3gs after the POST; posting again",
                key,
                policy.commit_horizon,
            )
    raise _Undecided


async def _look_for(
    find: Callable[[], Awaitable[AgentRun | None]], policy: CreatePolicy, horizon_at: float
) -> tuple[AgentRun | None, bool]:
    """The run carrying the token, if found; and whether the search was conclusive.

    Looks until a lookup that started at or after `horizon_at` (anyio clock), and at
    least `checks` completed lookups, found nothing. A failed lookup shows nothing, so it
    does not count; `3 * checks` failures in a row end the search, inconclusive."""
    delay = policy.grace
    cap = max(policy.grace, policy.commit_horizon / 8)
    completed = failed_in_a_row = 0
    while True:
        now = anyio.current_time()
        await anyio.sleep(delay if now >= horizon_at else min(delay, horizon_at - now))
        began = anyio.current_time()
        try:
            found = await find()
        except _errors.CodegenError as exc:
            logger.info("reconciliation lookup failed: %s", exc)
            failed_in_a_row += 1
            if failed_in_a_row >= 3 * policy.checks:
                return None, False
            continue
        if found is not None:
            return found, True
        completed += 1
        failed_in_a_row = 0
        if completed >= policy.checks and began >= horizon_at:
            return None, True
        delay = min(cap, delay * policy.growth)


def _remember(
    unconfirmed: list[UnconfirmedCreate], key: str, started_at: datetime, why: str
) -> None:
    unconfirmed.append(UnconfirmedCreate(key, started_at))
    logger.warning(
        "agent run create %s: its outcome is unknown; idempotency key %s, started at %s",
        why,
        key,
        started_at.isoformat(),
    )
