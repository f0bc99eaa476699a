"""Exactly-once run creation on top of an API that has no idempotency key.

Every create carries a client token in the run's `metadata`. When a POST fails in a way
that leaves its outcome unknown (the request may have been processed: read timeout,
connection lost after sending, 408 or any 5xx, a 2xx we could not read, the call's
deadline), we do not POST blindly again. We *reconcile*: after a short grace period we
read the caller's newest API runs and return the one that carries the token. Only when
it is still absent after a bounded window do we POST again, with the same token. If the
attempts run out undecided, `AmbiguousCreateError(idempotency_key, started_at)` tells the
caller exactly what to look for. A create cancelled by the caller after a POST went out
leaves its token in `unconfirmed` (and in a WARNING log line), so it is never lost; one
cancelled before anything was sent (waiting for a rate-limit token) created nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

import anyio
import attrs

from . import _errors
from .models import AgentRun

__all__ = ["AMBIGUOUS", "CreatePolicy", "UnconfirmedCreate", "create_exactly_once"]

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


@attrs.frozen
class CreatePolicy:
    """How hard to look before posting again: `checks` lookups, the first after `grace`
    seconds and each later one `growth` times further; at most `max_posts` POSTs."""

    grace: float = 1.0
    checks: int = 3
    growth: float = 1.5
    max_posts: int = 4


async def create_exactly_once(
    post: Callable[[Callable[[], None]], Awaitable[AgentRun]],
    find: Callable[[], Awaitable[AgentRun | None]],
    key: str,
    policy: CreatePolicy,
    unconfirmed: list[UnconfirmedCreate],
) -> AgentRun:
    """POST, and after an ambiguous failure find the run by its token before posting again.

    `post(on_send)` must call `on_send()` as its request goes out."""
    started_at = datetime.now(timezone.utc)
    posted = False

    def on_send() -> None:
        nonlocal posted
        posted = True

    last: Exception | None = None
    try:
        for _ in range(policy.max_posts):
            try:
                return await post(on_send)
            except Exception as exc:
                if not is_ambiguous(exc):
                    if last is not None:  # an earlier attempt may still have created it
                        found, _ = await _look_for(find, attrs.evolve(policy, grace=0, checks=1))
                        if found is not None:
                            return found
                    raise
                last = exc
            logger.info("create %s: outcome unknown (%s); reconciling", key, last)
            found, conclusive = await _look_for(find, policy)
            if found is not None:
                return found
            if not conclusive:
                logger.info("create %s: every lookup failed; not posting again", key)
                break
            logger.info("create %s: no run carries the token; posting again", key)
    except anyio.get_cancelled_exc_class():
        if posted:
            _remember(unconfirmed, key, started_at, "cancelled")
        raise
    _remember(unconfirmed, key, started_at, "undecided")
    raise _errors.AmbiguousCreateError(
        f"could not confirm whether agent run with idempotency key {key} was created "
        f"(last error: {last})",
        idempotency_key=key,
        started_at=started_at,
        cause=last,
    )


async def _look_for(
    find: Callable[[], Awaitable[AgentRun | None]], policy: CreatePolicy
) -> tuple[AgentRun | None, bool]:
    """The run carrying the token, if found; and whether any lookup completed (only a
    completed lookup can show the run is absent; a failed one shows nothing, so it does
    not count: up to `checks` completed lookups, within `3 * checks` attempts)."""
    delay = policy.grace
    completed = 0
    for _ in range(3 * policy.checks):
        await anyio.sleep(delay)
        try:
            found = await find()
        except _errors.CodegenError as exc:
            logger.info("reconciliation lookup failed: %s", exc)
        else:
            if found is not None:
                return found, True
            completed += 1
            if completed == policy.checks:
                break
            delay *= policy.growth
    return None, completed > 0


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
