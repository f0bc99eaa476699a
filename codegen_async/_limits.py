"""The API's published rate limits: the classes, a limit, and the documented table.

Only what the API publishes lives here; what a client makes of it (`RateLimits`, the
policies) is in `_config`. Shared by the client and the Emulator, so both sides agree
on one table. No I/O here.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

__all__ = ["DOCUMENTED", "Limit", "RateClass", "check_positive"]


class RateClass(str, enum.Enum):
    """Which published limit an operation counts against."""

    STANDARD = "standard"  # reads and every operation without its own line: 60 / 30 s
    CREATE = "create"  # create agent run: 10 / 60 s
    PR_EDIT = "pr_edit"  # edit pull request: 30 / 60 s
    CLI_RULES = "cli_rules"  # CLI rules: 30 / 60 s
    SETUP_COMMANDS = "setup_commands"  # generate setup commands: 5 / 60 s
    LOG_ANALYSIS = "log_analysis"  # sandbox log analysis: 5 / 60 s
    LOGS = "logs"  # agent-run logs (alpha): 60 / 60 s


def check_positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class Limit:
    """At most `requests` in any window of `per` seconds."""

    requests: int = attrs.field(validator=check_positive)
    per: float = attrs.field(converter=float, validator=check_positive)

    def scaled(self, factor: float) -> Limit:
        return Limit(self.requests, self.per * factor)


DOCUMENTED: dict[RateClass, Limit] = {
    RateClass.STANDARD: Limit(60, 30.0),
    RateClass.CREATE: Limit(10, 60.0),
    RateClass.PR_EDIT: Limit(30, 60.0),
    RateClass.CLI_RULES: Limit(30, 60.0),
    RateClass.SETUP_COMMANDS: Limit(5, 60.0),
    RateClass.LOG_ANALYSIS: Limit(5, 60.0),
    RateClass.LOGS: Limit(60, 60.0),
}
