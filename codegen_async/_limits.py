"""The API's published rate limits and the client's poll cadence, as plain settings.

Shared by the client (`_ratelimit`, `_polling`) and the Emulator, so both sides
agree on one table. No I/O here.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import attrs

from ._stores import check_store_url, redact_url

__all__ = ["Limit", "PollPolicy", "RateClass", "RateLimitStatus", "RateLimits", "check_factor"]


class RateClass(str, enum.Enum):
    """Which published limit an operation counts against."""

    STANDARD = "standard"  # reads and every operation without its own line: 60 / 30 s
    CREATE = "create"  # create agent run: 10 / 60 s
    PR_EDIT = "pr_edit"  # edit pull request: 30 / 60 s
    CLI_RULES = "cli_rules"  # CLI rules: 30 / 60 s
    SETUP_COMMANDS = "setup_commands"  # generate setup commands: 5 / 60 s
    LOG_ANALYSIS = "log_analysis"  # sandbox log analysis: 5 / 60 s
    LOGS = "logs"  # agent-run logs (alpha): 60 / 60 s


def _check_positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class Limit:
    """At most `requests` in any window of `per` seconds."""

    requests: int = attrs.field(validator=_check_positive)
    per: float = attrs.field(converter=float, validator=_check_positive)

    def scaled(self, factor: float) -> Limit:
        return Limit(self.requests, self.per * factor)


_DOCUMENTED: dict[RateClass, Limit] = {
    RateClass.STANDARD: Limit(60, 30.0),
    RateClass.CREATE: Limit(10, 60.0),
    RateClass.PR_EDIT: Limit(30, 60.0),
    RateClass.CLI_RULES: Limit(30, 60.0),
    RateClass.SETUP_COMMANDS: Limit(5, 60.0),
    RateClass.LOG_ANALYSIS: Limit(5, 60.0),
    RateClass.LOGS: Limit(60, 60.0),
}


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
        return cls(dict(_DOCUMENTED))

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


@attrs.frozen
class PollPolicy:
    """How often an awaited run is refreshed: `first` seconds after it is awaited,
    then each interval `factor` times the last, up to `maximum`, each spread by
    +/- `jitter` (a fraction)."""

    first: float = attrs.field(default=1.5, converter=float, validator=_check_positive)
    factor: float = attrs.field(default=1.5, converter=float)
    maximum: float = attrs.field(default=30.0, converter=float, validator=_check_positive)
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
