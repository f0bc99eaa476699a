"""Names shared by the client and the Emulator."""

from __future__ import annotations

__all__ = [
    "DEFAULT_BASE_URL",
    "DOCS_STATUS_WORDS",
    "GROUP_METADATA_KEY",
    "IDEMPOTENCY_METADATA_KEY",
    "ROLE_METADATA_KEY",
    "STATUS_ALIASES",
    "TERMINAL_STATUSES",
]

DEFAULT_BASE_URL = "https://api.codegen.com"

# Every create carries a client token under this key of the run's `metadata`, so a
# create whose outcome is unknown can be found again instead of made twice.
IDEMPOTENCY_METADATA_KEY = "codegen_sdk_idempotency_key"

# Runs started together by `run_many` or `multi_run` share a group id under this key, so
# they can be found later; `multi_run` also marks each run's role ("candidate" or
# "synthesis").
GROUP_METADATA_KEY = "codegen_sdk_group_id"
ROLE_METADATA_KEY = "codegen_sdk_role"

# Statuses after which a run no longer changes by itself.
TERMINAL_STATUSES = frozenset(
    {
        "COMPLETE",
        "FAILED",
        "ERROR",
        "CANCELLED",
        "STOPPED",
        "TIMEOUT",
        "MAX_ITERATIONS_REACHED",
        "OUT_OF_TOKENS",
    }
)

# The docs' examples spell some statuses in their own words, lower case.
DOCS_STATUS_WORDS = {
    "COMPLETE": "completed",
    "FAILED": "failed",
    "RUNNING": "in_progress",
    "PENDING": "queued",
}

# The other words sources use for statuses, read after upper-casing (and "-" or " " as
# "_"): the docs' words, and "canceled", the American spelling of CANCELLED.
STATUS_ALIASES = {word.upper(): status for status, word in DOCS_STATUS_WORDS.items()}
STATUS_ALIASES["CANCELED"] = "CANCELLED"
