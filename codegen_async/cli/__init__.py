"""The `codegen-async` command line (`python -m codegen_async`).

    codegen-async --emulator run "Add type hints to utils.py"
    codegen-async batch --file prompts.txt --max-concurrency 5
    codegen-async runs list --json

Results go to stdout (tables, text, or one JSON document with `--json`); progress and
errors go to stderr. The exit codes are in `_exit` (0 ok, 1 a run did not succeed,
2 usage, 3 API/connection/config error, 130 interrupted). Live progress uses rich when
it is installed (`pip install 'codegen-async[cli]'`) and stderr is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

import anyio

from .._constants import IDEMPOTENCY_METADATA_KEY
from .._errors import CodegenError, WaitTimeoutError
from .._logging import configure_from_env
from ._args import build_parser, check_args
from ._commands import execute, serve_emulator
from ._exit import API_ERROR, INTERRUPTED, OK, RUN_FAILED, USAGE, CliError
from ._output import Output
from ._session import Created

__all__ = ["API_ERROR", "INTERRUPTED", "OK", "RUN_FAILED", "USAGE", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check_args(parser, args)
    except SystemExit as exc:  # --help, --version, usage errors
        return exc.code if isinstance(exc.code, int) else USAGE
    out = Output(json_mode=args.json)
    created = Created()
    try:
        return _dispatch(args, out, created)
    except BaseException as exc:
        return _report(exc, out, created)


def _dispatch(args: argparse.Namespace, out: Output, created: Created) -> int:
    _quiet_library_warnings()
    if args.action == "emulator":
        return serve_emulator(args, out)
    return anyio.run(execute, args, out, created)


def _quiet_library_warnings() -> None:
    """The CLI says itself which runs are left running: unless CODEGEN_LOG is set, the
    library's warnings are not also printed by logging's last-resort handler."""
    configure_from_env()
    logger = logging.getLogger("codegen_async")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups."""
    while True:
        inner = getattr(exc, "exceptions", None)
        if not (isinstance(inner, tuple) and len(inner) == 1):
            return exc
        exc = inner[0]


def _report(exc: BaseException, out: Output, created: Created) -> int:
    """One line on stderr and the exit code; an unexpected exception is re-raised."""
    leaf = _leaf(exc)
    # Outside the event loop a CancelledError can only be Ctrl-C: Python 3.10's asyncio
    # (through anyio.run) reports it so instead of KeyboardInterrupt.
    if isinstance(leaf, (KeyboardInterrupt, asyncio.CancelledError)):
        ids = ", ".join(str(run_id) for run_id in created.ids())
        left = f"; runs created, still running on the server: {ids}" if ids else ""
        keys = ", ".join(u.idempotency_key for u in created.unconfirmed)
        if keys:  # posted, then interrupted before the answer: the run may exist
            left += f"; creates of unknown outcome (metadata {IDEMPOTENCY_METADATA_KEY}): {keys}"
        if created.resume_hint:
            left += f"; {created.resume_hint}"
        out.note(f"interrupted{left}")
        return INTERRUPTED
    if isinstance(leaf, CliError):
        out.error(leaf.message)
        return leaf.code
    if isinstance(leaf, WaitTimeoutError):
        out.error(f"{leaf} (it keeps running on the server)")
        return RUN_FAILED
    if isinstance(leaf, CodegenError):
        out.error(f"{type(leaf).__name__}: {leaf}")
        return API_ERROR
    raise exc
