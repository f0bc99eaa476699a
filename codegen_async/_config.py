"""The policies users configure, in one place: rate limits, polling, creates, retries,
timeouts and the sizes of what goes out and comes in.

Every knob a caller can turn (`RateLimits`, `PollPolicy`, `CreatePolicy`) and every
default the transport starts from (the retry count and backoff, the longest Retry-After
worth waiting for, the timeout, the connection pool, the body caps) is written here once;
`_limits` keeps only what the API publishes (`RateClass`, `Limit`, its table). No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Final

import attrs

from . import _errors
from ._limits import DOCUMENTED, Limit, RateClass, check_positive
from ._stores import check_store_url, redact_url

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_RETRY_AFTER",
    "CreatePolicy",
    "PollPolicy",
    "RateLimitStatus",
    "RateLimits",
    "Retry",
    "backoff_delays",
    "check_factor",
    "retry_decision",
]

# -- retries and timeouts ---------------------------------------------------------------

DEFAULT_TIMEOUT: Final = 30.0  # seconds per call, retries and their waits included
DEFAULT_MAX_RETRIES: Final = 3  # attempts after the first
BACKOFF_BASE: Final = 0.5  # seconds before the first retry (before jitter)
BACKOFF_CAP: Final = 8.0  # the longest backoff between two attempts (before jitter)
# A 429 asking to wait longer than this (seconds) is raised at once, not waited out.
MAX_RETRY_AFTER: Final = 60.0
DEFAULT_MAX_CONNECTIONS: Final = 10  # the pool of a client the SDK builds itself

# -- sizes ------------------------------------------------------------------------------

# The most bytes a response body may decode to (8 MiB); larger bodies are refused unread.
DEFAULT_MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024
# The most bytes a request body may encode to (1 MiB); larger ones are refused unsent.
DEFAULT_MAX_REQUEST_BYTES: Final = 1024 * 1024


def backoff_delays(cap: float = BACKOFF_CAP, base: float = BACKOFF_BASE) -> Iterator[float]:
    """Delays `min(cap, base * 2**n) * U(0.5, 1)`, n = 0, 1, ..., from backoff's generators
    (imported on the first retry: backoff pulls in asyncio, which trio users never need)."""
    import backoff

    expo = backoff.expo(base=2, factor=base, max_value=cap)
    next(expo)  # backoff's wait generators are primed with one send(None)
    for value in expo:
        half = value / 2
        yield half + backoff.full_jitter(half)


# A repeatable call retries 408, 429 and every 5xx but these, which a retry cannot change
# (Not Implemented, HTTP Version Not Supported); any call retries a 429.
_NEVER_RETRIED_5XX = frozenset({501, 505})


@attrs.frozen
class Retry:
    """Try the call again after `delay` seconds (None: the next backoff delay)."""

    delay: float | None = None


def retry_decision(error: _errors.CodegenError, *, repeatable: bool) -> Retry | None:
    """Whether the attempt that failed with `error` may be tried again: a `Retry`, or None
    to give up and raise `error`. Every retry rule is written here, once.

    `repeatable` is the operation's (`Operation.repeatable`): a call that is safe to send
    twice retries anything transient; one that is not retries only what proves nothing
    was processed (a 429, a connection never made). The server's `x-should-retry`
    overrides the status rules; a Retry-After over `MAX_RETRY_AFTER` is never waited out.
    Whether the wait fits the call's deadline and retries remain is the pipeline's to say.
    """
    if isinstance(error, _errors.APIStatusError):
        return _status_retry(error, repeatable)
    if isinstance(error, _errors.APIConnectionError):  # a timeout included
        return Retry() if repeatable or not error.sent else None
    return None


def _status_retry(error: _errors.APIStatusError, repeatable: bool) -> Retry | None:
    override = error.headers.get("x-should-retry")
    if override == "false":
        return None
    retry_after = error.retry_after if isinstance(error, _errors.RateLimitError) else None
    if retry_after is not None and retry_after > MAX_RETRY_AFTER:
        return None
    status = error.status_code
    transient = status == 408 or (status >= 500 and status not in _NEVER_RETRIED_5XX)
    if status == 429 or (repeatable and transient) or override == "true":
        return Retry(retry_after)
    return None


# -- rate limits ------------------------------------------------------------------------


def check_factor(factor: float) -> float:
    """A `scaled()` factor: a number > 0."""
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not factor > 0:
        raise ValueError(f"factor must be a number > 0, got {factor!r}")
    return float(factor)


def _store_url(url: object) -> str | None:
    return None if url is None else check_store_url(url)


@attrs.frozen
class RateLimits:
    """Client-side limits per `RateClass`; a class missing from `limits` is not limited.

    `RateLimits.documented()` is the API's published table, `RateLimits.off()` limits
    nothing, and `.scaled(f)` multiplies every window by `f` (for a fast emulator clock).
    `.shared(url)` keeps the budgets in a store that every process naming it shares
    (`sqlite:///ABSOLUTE/PATH` on one machine, `redis://` / `rediss://` across many);
    `.scaled()` and `.shared()` compose in either order. A 429's Retry-After holds a
    bucket at most one window of that bucket (`per`); the error still reports it whole.
    """

    limits: dict[RateClass, Limit] = attrs.field(factory=dict)
    store: str | None = attrs.field(
        default=None,
        converter=_store_url,
        repr=lambda url: repr(None if url is None else redact_url(url)),
    )

    @classmethod
    def documented(cls) -> RateLimits:
        return cls(dict(DOCUMENTED))

    @classmethod
    def off(cls) -> RateLimits:
        return cls({})

    @property
    def enabled(self) -> bool:
        return bool(self.limits)

    def scaled(self, factor: float) -> RateLimits:
        f = check_factor(factor)
        return attrs.evolve(self, limits={k: v.scaled(f) for k, v in self.limits.items()})

    def shared(self, url: str | None) -> RateLimits:
        """The same limits kept in the store at `url` (None: in this process only).

        Every client with the same store, base URL and API key draws from the same
        buckets; the store holds a hash of (base URL, API key), never the key. A
        malformed URL, an unknown scheme, a relative SQLite path or a missing `redis`
        package is a `ConfigurationError` here."""
        return attrs.evolve(self, store=url)

    def get(self, rate_class: RateClass) -> Limit | None:
        return self.limits.get(rate_class)


@attrs.frozen
class RateLimitStatus:
    """One bucket as `client.rate_limit_status()` sees it now.

    `limit` requests per `per` seconds are documented; `capacity` is what the client
    allows itself now (lower for a while after a 429); `remaining` tokens are free now;
    the next one frees in `next_token_in` seconds (0 when one is free; an estimate from
    below while every token is on a request still in flight); `paused_for` seconds of a
    Retry-After hold are left. `store` is the shared store answering (password masked),
    None when the bucket is this process's own or the store cannot be reached.
    """

    rate_class: RateClass
    limit: int
    per: float
    capacity: int
    remaining: int
    next_token_in: float
    paused_for: float
    store: str | None = None


# -- polling and creates ----------------------------------------------------------------


@attrs.frozen
class PollPolicy:
    """How often an awaited run is refreshed: `first` seconds after it is awaited,
    then each interval `factor` times the last, up to `maximum`, each spread by
    +/- `jitter` (a fraction)."""

    first: float = attrs.field(default=1.5, converter=float, validator=check_positive)
    factor: float = attrs.field(default=1.5, converter=float)
    maximum: float = attrs.field(default=30.0, converter=float, validator=check_positive)
    jitter: float = attrs.field(default=0.2, converter=float)

    @first.validator
    @factor.validator
    @maximum.validator
    def _check_finite(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not math.isfinite(value):
            raise ValueError(f"{attribute.name} must be a finite number, got {value!r}")

    @factor.validator
    def _check_growth(self, attribute: attrs.Attribute[float], value: float) -> None:
        if value < 1:
            raise ValueError(f"factor must be >= 1, got {value!r}")

    @jitter.validator
    def _check_jitter(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not 0 <= value < 1:
            raise ValueError(f"jitter must be in [0, 1), got {value!r}")

    def scaled(self, factor: float) -> PollPolicy:
        f = check_factor(factor)
        return attrs.evolve(self, first=self.first * f, maximum=self.maximum * f)


def _check_seconds(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")


def _check_count(instance: object, attribute: attrs.Attribute[Any], value: int | None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if not (ok or (value is None and attribute.name == "max_posts")):
        raise ValueError(f"{attribute.name} must be an int >= 1, got {value!r}")


def _optional_float(value: object) -> float | None:
    return None if value is None else _to_float(value)


def _to_float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number of seconds, got {type(value).__name__}")
    return float(value)


@attrs.frozen
class CreatePolicy:
    """How a create whose outcome is unknown is settled (times in seconds).

    After such a failure the run is looked up by its token: the first lookup `grace`
    after the failure, each later one `growth` times further (at most an eighth of the
    horizon apart). A POST may go out again only when lookups have found nothing for
    `commit_horizon` since the last POST went out (a server may commit that late), and
    after at least `checks` completed lookups; at most `max_posts` POSTs in all (None:
    the client's `max_retries + 1`). Everything (waits for a rate-limit token, POSTs,
    lookups) fits in one `deadline` per create (None: the commit horizon plus twice the
    client's timeout); past it, `AmbiguousCreateError` if a POST went out, else
    `APITimeoutError`. `.scaled(f)` multiplies every time, like `PollPolicy.scaled`.
    """

    grace: float = attrs.field(default=1.0, converter=_to_float, validator=_check_seconds)
    checks: int = attrs.field(default=3, validator=_check_count)
    growth: float = attrs.field(default=1.5, converter=_to_float)
    max_posts: int | None = attrs.field(default=None, validator=_check_count)
    commit_horizon: float = attrs.field(default=60.0, converter=_to_float, validator=_check_seconds)
    deadline: float | None = attrs.field(
        default=None, converter=_optional_float, validator=_check_seconds
    )

    @growth.validator
    def _check_growth(self, attribute: attrs.Attribute[float], value: float) -> None:
        if not (math.isfinite(value) and value >= 1):
            raise ValueError(f"growth must be a finite number >= 1, got {value!r}")

    def scaled(self, factor: float) -> CreatePolicy:
        """This policy with every time multiplied by `factor` (for a fast emulator clock)."""
        f = check_factor(factor)
        return attrs.evolve(
            self,
            grace=self.grace * f,
            commit_horizon=self.commit_horizon * f,
            deadline=None if self.deadline is None else self.deadline * f,
        )

    def resolved(self, *, call_timeout: float, max_retries: int) -> CreatePolicy:
        """This policy with its defaults filled in from a client's settings."""
        deadline = self.deadline
        if deadline is None:
            deadline = self.commit_horizon + 2 * call_timeout
        max_posts = max_retries + 1 if self.max_posts is None else self.max_posts
        return attrs.evolve(self, deadline=deadline, max_posts=max_posts)
