"""The `codegen-async` command line (`python -m codegen_async`).

    codegen-async --emulator run "Add type hints to utils.py"
    codegen-async batch --file prompts.txt --max-concurrency 5
    codegen-async runs list --json

Results go to stdout (tables, text, or one JSON document with `--json`); progress and
errors go to stderr (under `--json` an error is one JSON object there). The exit codes
are in `_exit` (0 ok, 1 a run did not succeed, 2 usage, 3 API/connection/config error,
4 internal error, 130 interrupted). Live progress uses rich when it is installed
(`pip install 'codegen-async[cli]'`) and stderr is a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

import anyio

from .._constants import IDEMPOTENCY_METADATA_KEY
from .._errors import (
    APIStatusError,
    CodegenError,
    ConfigurationError,
    NotFoundError,
    WaitTimeoutError,
)
from .._logging import configure_from_env
from ._args import UsageError, build_parser, check_args
from ._exit import API_ERROR, INTERNAL, INTERRUPTED, OK, RUN_FAILED, USAGE, CliError
from ._output import Output, json_text, safe
from ._session import Created

__all__ = ["API_ERROR", "INTERNAL", "INTERRUPTED", "OK", "RUN_FAILED", "USAGE", "main"]

_NO_KEY_HINT = (
    'no account needed to try it: add --emulator (codegen-async --emulator run "..."); '
    "for the real API create a key at https://codegen.com/token and set CODEGEN_API_KEY "
    "or pass --api-key"
)
_HINTS = {
    "AuthenticationError": "the API refused the key: check --api-key or CODEGEN_API_KEY "
    "(keys: https://codegen.com/token)",
    "PermissionDeniedError": "the key may not use this organization: check --org-id or "
    "CODEGEN_ORG_ID (`codegen-async orgs` lists yours)",
    "APIConnectionError": "check the network, or --base-url / CODEGEN_BASE_URL",
    "APITimeoutError": "the API did not answer in time: try again, or raise CODEGEN_TIMEOUT",
}
# What the library's configuration messages call an argument, as the CLI's flags.
_FLAGS = {
    "the api_key argument": "--api-key",
    "api_key from argument": "--api-key",
    "base_url from argument": "--base-url",
    "org_id from argument": "--org-id",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: sys.argv[1:]); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        check_args(parser, args)
    except UsageError as exc:
        out = Output(json_mode="--json" in argv)
        if not out.json_mode:
            out.stderr.write(safe(exc.usage))
        out.error(exc.message, type="UsageError", status=None, request_id=None)
        return USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else USAGE
    out = Output(json_mode=args.json, emulated=args.emulator)
    created = Created()
    warnings = _library_warnings(out)
    try:
        return _dispatch(parser, args, out, created)
    except BaseException as exc:
        return _report(exc, out, created, args)
    finally:
        _quiet(warnings)


def _dispatch(
    parser: argparse.ArgumentParser, args: argparse.Namespace, out: Output, created: Created
) -> int:
    # Loaded only for a command (not for --help): the commands load the fan-out.
    from ._commands import execute, serve_emulator
    from ._emulated import reset_state

    if args.emulator_reset:
        reset_state(out)
    if args.command is None:
        if not args.emulator_reset:  # bare `codegen-async`: what it can do
            parser.print_help()
        return OK
    if args.action == "emulator":
        return serve_emulator(args, out)
    return anyio.run(execute, args, out, created)


# Library modules whose warnings (runs left in flight, creates of unknown outcome) the
# CLI reports itself, in its own words, when a command ends.
_SAID_BY_THE_CLI = frozenset({"_fanout", "_synthesis", "_create"})


class _Warnings(logging.Handler):
    """The library's other warnings (a rate-limit store out of reach, an unknown status)
    as `warning: ...` lines on stderr, or JSON objects under --json."""

    def __init__(self, out: Output) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        if record.module in _SAID_BY_THE_CLI:
            return
        try:
            message = record.getMessage()
            if self.out.json_mode:
                data = {"warning": True, "message": message}
                self.out.stderr.write(json_text(data) + "\n")
                self.out.stderr.flush()
            else:
                self.out.note(f"warning: {message}")
        except Exception:  # a warning must never break the call that logged it
            self.handleError(record)


def _library_warnings(out: Output) -> logging.Handler:
    """Unless CODEGEN_LOG configured logging, the library's warnings reach the user
    through `_Warnings` (never through logging's last-resort handler) while the command
    runs; returns the handler, for `main` to remove."""
    configure_from_env()
    logger = logging.getLogger("codegen_async")
    handler = _Warnings(out)
    if all(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(handler)
    return handler


def _quiet(handler: logging.Handler) -> None:
    """The command is over: its handler goes; what the library logs later (while the
    interpreter exits) is not printed by logging's last-resort handler either."""
    logger = logging.getLogger("codegen_async")
    logger.removeHandler(handler)
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups."""
    while True:
        inner = getattr(exc, "exceptions", None)
        if not (isinstance(inner, tuple) and len(inner) == 1):
            return exc
        exc = inner[0]


def _debugging(args: argparse.Namespace | None) -> bool:
    env = os.environ.get("CODEGEN_LOG", "").strip().lower() == "debug"
    return env or bool(args is not None and getattr(args, "debug", False))


def _report(
    exc: BaseException, out: Output, created: Created, args: argparse.Namespace | None = None
) -> int:
    """What went wrong, as one line (and a hint) on stderr, and the exit code."""
    import asyncio  # here, not at the top: `--help` loads no asyncio

    leaf = _leaf(exc)
    # Outside the event loop a CancelledError can only be Ctrl-C: Python 3.10's asyncio
    # (through anyio.run) reports it so instead of KeyboardInterrupt.
    if isinstance(leaf, (KeyboardInterrupt, asyncio.CancelledError)):
        return _interrupted(out, created)
    if isinstance(leaf, BrokenPipeError):  # the reader went away (`| head`): nothing to say
        _silence_stdout()
        return OK
    if isinstance(leaf, CliError):
        out.error(leaf.message, hint=leaf.hint, type="CliError", status=None, request_id=None)
        return leaf.code
    if isinstance(leaf, WaitTimeoutError):
        run = leaf.run
        emulated = " --emulator" if args is not None and args.emulator else ""
        see = f" (see: codegen-async{emulated} runs get {run.id})" if run is not None else ""
        out.error(
            f"timed out: {leaf}; it keeps running on the server{see}",
            type=type(leaf).__name__,
            status=None,
            request_id=None,
            run_id=None if run is None else run.id,
        )
        return RUN_FAILED
    if isinstance(leaf, ConfigurationError):
        message = str(leaf)
        for words, flag in _FLAGS.items():
            message = message.replace(words, flag)
        hint = _NO_KEY_HINT if "api_key is not set" in message else None
        out.error(message, hint=hint, type=type(leaf).__name__, status=None, request_id=None)
        return API_ERROR
    if isinstance(leaf, CodegenError):
        status = leaf.status_code if isinstance(leaf, APIStatusError) else None
        request_id = leaf.request_id if isinstance(leaf, APIStatusError) else None
        missing = _what_was_missing(leaf, args)
        out.error(
            f"{missing}: {leaf}" if missing else f"{type(leaf).__name__}: {leaf}",
            hint=_HINTS.get(type(leaf).__name__),
            type=type(leaf).__name__,
            status=status,
            request_id=request_id,
        )
        return API_ERROR
    if _debugging(args):
        lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
        out.stderr.write(safe("".join(lines)))
    out.error(
        f"unexpected {type(leaf).__name__}: {leaf}",
        hint="this is a bug in codegen-async: run again with --debug to see the traceback, "
        "and report it",
        type=type(leaf).__name__,
        status=None,
        request_id=None,
    )
    return INTERNAL


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not fail too."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _what_was_missing(error: CodegenError, args: argparse.Namespace | None) -> str:
    """For a 404: the id the command asked for."""
    if not isinstance(error, NotFoundError) or args is None:
        return ""
    run_id = getattr(args, "run_id", None)
    if run_id is not None:
        return f"run {run_id} not found"
    repos = getattr(args, "repo_ids", None) or [getattr(args, "repo_id", None)]
    shown = ", ".join(str(repo) for repo in repos if repo is not None)
    return f"repository {shown} not found (see `codegen-async repos`)" if shown else ""


def _interrupted(out: Output, created: Created) -> int:
    """Every run this command created: still running, finished, or of unknown outcome."""
    running, finished = created.running(), created.finished()
    keys = [u.idempotency_key for u in created.unconfirmed]
    parts = []
    if running:
        parts.append(f"runs created, still running on the server: {_ids(running)}")
    if finished:
        parts.append(f"runs that finished: {_ids(finished)}")
    if keys:  # posted, then interrupted before the answer: the run may exist
        parts.append(
            f"creates of unknown outcome (metadata {IDEMPOTENCY_METADATA_KEY}): {', '.join(keys)}"
        )
    if created.resume_hint:
        parts.append(created.resume_hint)
    message = "; ".join(["interrupted", *parts])
    if out.json_mode:
        out.error(
            message,
            type="Interrupted",
            status=None,
            request_id=None,
            running=running,
            finished=finished,
            unconfirmed=keys,
        )
    else:
        out.note(message)
    return INTERRUPTED


def _ids(ids: list[int]) -> str:
    return ", ".join(str(run_id) for run_id in ids)
