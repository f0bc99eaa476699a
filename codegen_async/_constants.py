"""Names shared by the client and the Emulator."""

from __future__ import annotations

__all__ = [
    "DEFAULT_BASE_URL",
    "GROUP_METADATA_KEY",
    "IDEMPOTENCY_METADATA_KEY",
    "ROLE_METADATA_KEY",
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
