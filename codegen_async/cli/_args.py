"""The argument parser (stdlib argparse): commands, their options and the global ones.

Every leaf command sets `action` ("run", "runs get", ...), which names its handler in
`_commands`. Global options are accepted before or after the command. A usage error
raises `UsageError` (reported by `main`, as JSON too under --json), never SystemExit.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from typing import Any, NoReturn, get_args

from .._version import __version__
from ..models import AgentType, SourceType
from ._emulated import state_path

__all__ = ["DEFAULT_TIME_SCALE", "UsageError", "build_parser", "check_args"]

# The in-process emulator's clock runs 20x faster: a typical run takes 1-3 seconds.
DEFAULT_TIME_SCALE = 0.05
TIME_SCALE_ENV = "CODEGEN_EMULATOR_TIME_SCALE"

_AGENT_TYPES: tuple[str, ...] = get_args(AgentType)
_SOURCE_TYPES: tuple[str, ...] = tuple(s.value for s in SourceType)

_DESCRIPTION = """\
Start Codegen agent runs, follow them and collect their results.

The API key comes from --api-key, else CODEGEN_API_KEY, else ~/.config/codegen-sh/auth.json
(create one at https://codegen.com/token). No account? Add --emulator to any command: it
runs against a local emulator of the API whose runs are kept between commands (in
{state}; --emulator-reset empties it)."""

_EPILOG = """\
examples:
  codegen-async --emulator run "Add type hints to utils.py"
  codegen-async --emulator runs list
  codegen-async run "Fix the flaky test" --repo-id 501 --follow
  codegen-async COMMAND --help      (every command's options, with examples)

exit codes:
  0    success (every run waited for ended COMPLETE)
  1    a run ended without succeeding, or did not end within --timeout
  2    usage error
  3    API, connection or configuration error
  4    internal error (a bug: --debug shows the traceback)
  130  interrupted (Ctrl-C); the ids of runs already created are printed"""


class UsageError(Exception):
    """Bad arguments: the message, and the usage line of the command they were for."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse, raising UsageError instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.format_usage())


_DEBUG_HELP = "show the traceback of an unexpected error (also: CODEGEN_LOG=debug)"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


# -- value types --------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number > 0, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text) if text != "0" else 0
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port in 0..65535, got {value}")
    return value


def _number(
    low: float, high: float, *, low_open: bool = False, unit: str = ""
) -> Callable[[str], float]:
    above = f"> {low:g}" if low_open else f">= {low:g}"
    valid = f"a number {above}" + ("" if math.isinf(high) else f" and <= {high:g}") + unit

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {valid}, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            raise argparse.ArgumentTypeError(f"must be {valid}, got {text}")
        return value

    return parse


_seconds = _number(0.0, math.inf, low_open=True, unit=" (seconds)")
_time_scale = _number(0.0, 1e6, low_open=True)
_probability = _number(0.0, 1.0)


def _prompt(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a prompt must not be empty")
    return text


def _source_type(text: str) -> str:
    value = text.strip().upper()
    if value not in _SOURCE_TYPES:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(_SOURCE_TYPES)} (any case), got {text!r}"
        )
    return value


# -- global options -----------------------------------------------------------------------


def _add_output_options(group: Any, default: Callable[[Any], Any]) -> None:
    """The options every command has: output and diagnostics."""
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="machine output: one JSON document on stdout (NDJSON with --follow); "
        "errors as one JSON object on stderr",
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="no progress display"
    )
    group.add_argument("--debug", action="store_true", default=default(False), help=_DEBUG_HELP)


def _add_emulator_behaviour(group: Any, default: Callable[[Any], Any]) -> None:
    group.add_argument(
        "--emulator-time-scale",
        type=_time_scale,
        default=default(None),
        metavar="SCALE",
        help="the emulator clock runs 1/SCALE times faster "
        f"(default: ${TIME_SCALE_ENV}, else {DEFAULT_TIME_SCALE})",
    )
    group.add_argument(
        "--emulator-failure-rate",
        type=_probability,
        default=default(0.0),
        metavar="P",
        help="share of emulated runs that end FAILED, 0 to 1 (default 0)",
    )


def _store_url(text: str) -> str:
    from .._errors import ConfigurationError
    from .._stores import check_store_url

    try:
        return check_store_url(text, "--rate-limit-store")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_globals(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """The global options; on commands they default to SUPPRESS so that a value given
    before the command is kept."""

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    group = parser.add_argument_group("global options")
    _add_output_options(group, default)
    group.add_argument(
        "--api-key", default=default(None), help="API key (else CODEGEN_API_KEY, config file)"
    )
    group.add_argument("--base-url", default=default(None), help="API URL (else CODEGEN_BASE_URL)")
    group.add_argument(
        "--org-id",
        type=_positive_int,
        default=default(None),
        help="organization (else CODEGEN_ORG_ID, else your first one)",
    )
    group.add_argument(
        "--rate-limit-store",
        type=_store_url,
        default=default(None),
        metavar="URL",
        help="share rate limits with other processes: sqlite:///ABSOLUTE/PATH or redis://HOST "
        "(else CODEGEN_RATE_LIMIT_STORE)",
    )
    group.add_argument(
        "--emulator",
        action="store_true",
        default=default(False),
        help="use a local emulator of the API (no account needed); "
        "its runs are kept between commands",
    )
    group.add_argument(
        "--emulator-reset",
        action="store_true",
        default=default(False),
        help="forget the emulator's runs first (alone: just forget them)",
    )
    _add_emulator_behaviour(group, default)


# -- commands -----------------------------------------------------------------------------

_PROMPT_HELP = "what the agent should do (quote it: one argument)"
_RUN_ID_HELP = "the run's id (as printed by `run` or `runs list`)"


def _add_create_options(parser: argparse.ArgumentParser, *, repeat_repo: bool = False) -> None:
    if repeat_repo:
        parser.add_argument(
            "--repo-id",
            type=_positive_int,
            action="append",
            dest="repo_ids",
            metavar="ID",
            help="repository to run in (see `repos`); repeat to run every prompt in each",
        )
    else:
        parser.add_argument(
            "--repo-id", type=_positive_int, metavar="ID", help="repository to run in (see `repos`)"
        )
    parser.add_argument("--model", help="model to use (default: the organization's)")
    parser.add_argument("--agent-type", choices=_AGENT_TYPES, help="agent to use")


def _add_timeout(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"stop waiting for {what} after this long (the runs keep going; exit 1)",
    )


def _leaf(
    sub: Any,
    name: str,
    common: argparse.ArgumentParser,
    help_text: str,
    action: str,
    examples: tuple[str, ...] = (),
    description: str | None = None,
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        parents=[common],
        help=help_text,
        description=description or help_text[0].upper() + help_text[1:] + ".",
        epilog=_examples(*examples) if examples else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(action=action)
    return parser


def _add_run(sub: Any, common: argparse.ArgumentParser, *, waits: bool) -> None:
    examples = (
        'codegen-async --emulator run "Add type hints to utils.py"',
        'codegen-async run "Fix the flaky test" --repo-id 501 --follow',
        'codegen-async run "Upgrade httpx" --no-wait --json',
    )
    parser = _leaf(
        sub, "run", common, "start an agent run and wait for its result", "run", examples
    )
    parser.add_argument("prompt", type=_prompt, help=_PROMPT_HELP)
    _add_create_options(parser)
    if waits:
        parser.add_argument("--no-wait", action="store_true", help="print the created run and exit")
        parser.add_argument(
            "--follow",
            action="store_true",
            help="print the run's logs as they come while waiting (--json: NDJSON)",
        )
        _add_timeout(parser, "the run")


def _add_runs(sub: Any, common: argparse.ArgumentParser, *, waits: bool) -> None:
    runs = sub.add_parser(
        "runs",
        help="list, show, read the logs of, or resume runs",
        description="List, show, read the logs of, or resume agent runs.",
        epilog=_examples(
            "codegen-async runs list --limit 10",
            "codegen-async runs get 1234",
            "codegen-async runs logs 1234 --follow",
            'codegen-async runs resume 1234 "Also update the changelog" --wait',
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    listing = _leaf(
        runs_sub,
        "list",
        common,
        "the organization's runs, newest first",
        "runs list",
        ("codegen-async runs list --limit 10", "codegen-async runs list --source-type api --json"),
    )
    listing.add_argument(
        "--limit", type=_positive_int, default=20, help="at most this many (default 20)"
    )
    listing.add_argument(
        "--user-id", type=_positive_int, metavar="ID", help="only this user's runs (see `users`)"
    )
    listing.add_argument(
        "--source-type",
        type=_source_type,
        metavar="TYPE",
        help=f"only runs started from here, any case: {', '.join(_SOURCE_TYPES)}",
    )
    get = _leaf(
        runs_sub,
        "get",
        common,
        "one run as it is now",
        "runs get",
        ("codegen-async runs get 1234",),
    )
    get.add_argument("run_id", type=_positive_int, metavar="ID", help=_RUN_ID_HELP)
    logs = _leaf(
        runs_sub,
        "logs",
        common,
        "a run's log entries, oldest first",
        "runs logs",
        ("codegen-async runs logs 1234", "codegen-async runs logs 1234 --follow --json"),
    )
    logs.add_argument("run_id", type=_positive_int, metavar="ID", help=_RUN_ID_HELP)
    resume = _leaf(
        runs_sub,
        "resume",
        common,
        "send a finished run a new prompt",
        "runs resume",
        ('codegen-async runs resume 1234 "Also update the changelog" --wait',),
    )
    resume.add_argument("run_id", type=_positive_int, metavar="ID", help=_RUN_ID_HELP)
    resume.add_argument("prompt", type=_prompt, help="what the agent should do next")
    if waits:
        logs.add_argument(
            "--follow",
            action="store_true",
            help="keep printing entries until the run ends (--json: NDJSON)",
        )
        resume.add_argument("--wait", action="store_true", help="wait for the resumed run to end")
        _add_timeout(resume, "the run")


def _add_reads(sub: Any, common: argparse.ArgumentParser) -> None:
    for name, text in (
        ("orgs", "your organizations"),
        ("users", "the organization's users"),
        ("repos", "the organization's repositories (their ids go to --repo-id)"),
        ("integrations", "the organization's integrations"),
        ("whoami", "health check: who the key belongs to, org, latency"),
    ):
        _leaf(
            sub,
            name,
            common,
            text,
            name,
            (f"codegen-async {name}", f"codegen-async --emulator {name} --json"),
        )


def _add_calls(sub: Any, common: argparse.ArgumentParser, *, waits: bool) -> None:
    """The commands that map to one API call (also the ones `curl` can show)."""
    _add_run(sub, common, waits=waits)
    _add_runs(sub, common, waits=waits)
    _add_reads(sub, common)


def _add_multi_run(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = _leaf(
        sub,
        "multi-run",
        common,
        "several agents on one prompt, then one more run that synthesizes their answers",
        "multi-run",
        (
            'codegen-async --emulator multi-run "Why does test_login flake?" --concurrency 3',
            'codegen-async multi-run "Name this module" --no-synthesize --json',
        ),
    )
    parser.add_argument("prompt", type=_prompt, help=_PROMPT_HELP)
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=3,
        metavar="N",
        help="agents working on the prompt (default 3)",
    )
    parser.add_argument(
        "--no-synthesize",
        action="store_true",
        help="no synthesis run; the first successful answer is final",
    )
    _add_create_options(parser)
    _add_timeout(parser, "the candidates and the synthesis")


def _add_batch(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = _leaf(
        sub,
        "batch",
        common,
        "many runs at once, one per prompt and repository",
        "batch",
        (
            "codegen-async batch --file prompts.txt --max-concurrency 5",
            "printf 'Fix typos\\nBump deps\\n' | codegen-async --emulator batch -f -",
            'codegen-async batch "Upgrade the CI image" --repo-id 501 --repo-id 502',
        ),
    )
    parser.add_argument("prompt", nargs="?", type=_prompt, help="one prompt (or use --file)")
    parser.add_argument(
        "-f", "--file", metavar="PATH", help="prompts, one per line ('-': stdin; '#' lines skipped)"
    )
    _add_create_options(parser, repeat_repo=True)
    parser.add_argument(
        "--max-concurrency",
        type=_positive_int,
        default=10,
        metavar="N",
        help="runs in flight at once (default 10)",
    )
    parser.add_argument(
        "--fail-fast", action="store_true", help="start nothing more after a failure"
    )
    parser.add_argument(
        "--journal",
        metavar="FILE",
        help="an SQLite file recording the batch (created when missing): after a crash or "
        "Ctrl-C, the same command resumes it without creating any run twice",
    )
    _add_timeout(parser, "the whole batch")


def _add_emulator(sub: Any) -> None:
    """Only the options that apply: no key, URL or org (it makes its own)."""
    common = _Parser(add_help=False)
    group = common.add_argument_group("global options")
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the URL, key and organization as one JSON document",
    )
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    _add_emulator_behaviour(group, lambda _: argparse.SUPPRESS)
    parser = _leaf(
        sub,
        "emulator",
        common,
        "serve an emulator of the API on 127.0.0.1 for other programs (needs uvicorn)",
        "emulator",
        (
            "codegen-async emulator --port 8765",
            "codegen-async emulator --json      # base_url, api_key, org_id as JSON",
        ),
        description=(
            "Serve an emulator of the API on 127.0.0.1 until Ctrl-C (needs uvicorn: pip install\n"
            "'codegen-async[serve]'). It prints the CODEGEN_* settings that point a client at it.\n"
            "It starts empty: the runs of --emulator commands are not shared with it."
        ),
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="port to listen on (default 0: any free port)"
    )


def _add_curl(sub: Any) -> None:
    """`curl COMMAND ...`: the same commands, printed as a curl instead of sent."""
    common = _Parser(add_help=False)
    group = common.add_argument_group("global options")
    _add_output_options(group, lambda _: argparse.SUPPRESS)
    for flag, text in (
        ("--api-key", "key to show with --show-key (else CODEGEN_API_KEY, config file)"),
        ("--base-url", "API URL (else CODEGEN_BASE_URL)"),
    ):
        group.add_argument(flag, default=argparse.SUPPRESS, help=text)
    group.add_argument(
        "--org-id",
        type=_positive_int,
        default=argparse.SUPPRESS,
        help="organization (else CODEGEN_ORG_ID; unknown: left as ${CODEGEN_ORG_ID})",
    )
    group.add_argument(
        "--emulator",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the request for an emulator served by `codegen-async emulator` (run the "
        "export lines it prints first): ${CODEGEN_BASE_URL}, ${CODEGEN_ORG_ID}",
    )
    parser = sub.add_parser(
        "curl",
        help="print the curl command for a call, without sending anything",
        description=(
            "Print the curl command that makes the first request of COMMAND, without sending\n"
            "anything and without needing a key: the key is shown as $CODEGEN_API_KEY (unless\n"
            "--show-key and a key is configured), an unknown organization as ${CODEGEN_ORG_ID}."
        ),
        epilog=_examples(
            "codegen-async curl runs get 1234",
            'codegen-async curl run "Fix the bug" --repo-id 501',
            "codegen-async curl --show-key whoami | sh",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--show-key",
        action="store_true",
        help="show the configured key instead of $CODEGEN_API_KEY",
    )
    calls = parser.add_subparsers(
        dest="call", metavar="COMMAND", required=True, help="the command whose request to print"
    )
    _add_calls(calls, common, waits=False)
    _as_curl(calls.choices.values())


def _as_curl(parsers: Any) -> None:
    """The commands under `curl` say what they print, with curl examples."""
    for parser in parsers:
        name = parser.prog.split(" curl ", 1)[1]
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            _as_curl(subs[0].choices.values())
        parser.description = (
            f"Print the curl command of `{name}` without sending anything: "
            + (parser.description or "").rstrip(".").lower()
        )
        parser.epilog = None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="codegen-async",
        description=_DESCRIPTION.format(state=state_path()),  # where it is for this user
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_globals(parser, defaults=True)
    common = _Parser(add_help=False)
    _add_globals(common, defaults=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_calls(sub, common, waits=True)
    _add_multi_run(sub, common)
    _add_batch(sub, common)
    _add_emulator(sub)
    _add_curl(sub)
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Rules argparse cannot express; a violation raises UsageError."""
    if args.emulator_reset:
        args.emulator = True
    if args.emulator_time_scale is None:
        text = os.environ.get(TIME_SCALE_ENV, "").strip()
        try:
            args.emulator_time_scale = _time_scale(text) if text else DEFAULT_TIME_SCALE
        except argparse.ArgumentTypeError as exc:
            parser.error(f"{TIME_SCALE_ENV}: {exc}")
    if args.emulator and (args.api_key or args.base_url or args.org_id):
        parser.error("--emulator cannot be combined with --api-key, --base-url or --org-id")
    if args.command is None:
        return
    if args.action == "batch" and (args.prompt is None) == (args.file is None):
        parser.error("batch needs a PROMPT or --file PATH (not both)")
    if args.action == "run" and getattr(args, "no_wait", False) and args.follow:
        parser.error("run: --no-wait and --follow exclude each other")
