"""The command line's exit codes.

| code | meaning                                                                  |
|------|--------------------------------------------------------------------------|
| 0    | success (every run waited for ended COMPLETE)                            |
| 1    | a run ended without succeeding, or did not end within `--timeout`        |
| 2    | usage error: bad arguments or options, an unreadable prompts file        |
| 3    | API, connection or configuration error (no key, 401, 404, network, ...)  |
| 4    | internal error: a bug in codegen-async (`--debug` shows the traceback)   |
| 130  | interrupted (Ctrl-C); the ids of runs already created are printed        |
"""

from __future__ import annotations

__all__ = ["API_ERROR", "INTERNAL", "INTERRUPTED", "OK", "RUN_FAILED", "USAGE", "CliError"]

OK = 0
RUN_FAILED = 1
USAGE = 2
API_ERROR = 3
INTERNAL = 4
INTERRUPTED = 130


class CliError(Exception):
    """A failure the command line reports as one `error: ...` line (and a `hint: ...`
    line) and an exit code."""

    def __init__(self, message: str, code: int, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint
