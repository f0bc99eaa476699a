"""The argument parser (stdlib argparse): commands, their options and the global ones.

Every leaf command sets `action` ("run", "runs get", ...), which names its handler in
`_commands`. Global options are accepted before or after the command.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from .. import __version__

__all__ = ["DEFAULT_TIME_SCALE", "build_parser", "check_args"]

# The in-process emulator's clock runs 20x faster: a typical run takes 1-3 seconds.
DEFAULT_TIME_SCALE = 0.05

_AGENT_TYPES = ("codegen", "claude_code")
_SOURCE_TYPES = ("LOCAL", "SLACK", "GITHUB", "GITHUB_CHECK_SUITE", "LINEAR", "API", "CHAT")

_DESCRIPTION = """\
Start Codegen agent runs, follow them and collect their results.

The key comes from --api-key, else CODEGEN_API_KEY, else ~/.config/codegen-sh/auth.json;
--emulator runs any command against an in-process emulator instead (no account needed)."""

_EPILOG = """\
exit codes:
  0    success (every run waited for ended COMPLETE)
  1    a run ended without succeeding, or did not end within --timeout
  2    usage error
  3    API, connection or configuration error
  130  interrupted (Ctrl-C); the ids of runs already created are printed"""

# -- value types --------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text) if text != "0" else 0
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port in 0..65535, got {value}")
    return value


def _number(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            raise argparse.ArgumentTypeError(f"out of range: {text}")
        return value

    return parse


_seconds = _number(0.0, math.inf, low_open=True)
_time_scale = _number(0.0, 1e6, low_open=True)
_probability = _number(0.0, 1.0)


def _prompt(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("a prompt must not be empty")
    return text


# -- global options -----------------------------------------------------------------------


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
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="machine output: one JSON document on stdout",
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default(False), help="no progress display"
    )
    group.add_argument("--api-key", default=default(None), help="API key (else CODEGEN_API_KEY)")
    group.add_argument("--base-url", default=default(None), help="API URL (else CODEGEN_BASE_URL)")
    group.add_argument(
        "--org-id",
        type=_positive_int,
        default=default(None),
        help="organization (else CODEGEN_ORG_ID)",
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
        help="run against an in-process emulator of the API (no account needed)",
    )
    group.add_argument(
        "--emulator-time-scale",
        type=_time_scale,
        default=default(DEFAULT_TIME_SCALE),
        metavar="SCALE",
        help=f"the emulator clock runs 1/SCALE times faster (default {DEFAULT_TIME_SCALE})",
    )
    group.add_argument(
        "--emulator-failure-rate",
        type=_probability,
        default=default(0.0),
        metavar="P",
        help="share of emulated runs that end FAILED (default 0)",
    )


# -- commands -----------------------------------------------------------------------------


def _add_create_options(parser: argparse.ArgumentParser, *, repeat_repo: bool = False) -> None:
    if repeat_repo:
        parser.add_argument(
            "--repo-id",
            type=_positive_int,
            action="append",
            dest="repo_ids",
            metavar="ID",
            help="repository to run in; repeat to run every prompt in each",
        )
    else:
        parser.add_argument("--repo-id", type=_positive_int, metavar="ID", help="repository")
    parser.add_argument("--model", help="model to use")
    parser.add_argument("--agent-type", choices=_AGENT_TYPES, help="agent to use")


def _add_timeout(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--timeout", type=_seconds, metavar="SECONDS", help=f"give up waiting for {what}"
    )


def _leaf(
    sub: Any, name: str, common: argparse.ArgumentParser, help_text: str, action: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name, parents=[common], help=help_text, description=help_text
    )
    parser.set_defaults(action=action)
    return parser


def _add_run(sub: Any, common: argparse.ArgumentParser, *, waits: bool) -> None:
    parser = _leaf(sub, "run", common, "start an agent run and wait for its result", "run")
    parser.add_argument("prompt", type=_prompt, help="what the agent should do")
    _add_create_options(parser)
    if waits:
        parser.add_argument("--no-wait", action="store_true", help="print the created run and exit")
        parser.add_argument(
            "--follow", action="store_true", help="stream the run's logs while waiting"
        )
        _add_timeout(parser, "the run")


def _add_runs(sub: Any, common: argparse.ArgumentParser, *, waits: bool) -> None:
    runs = sub.add_parser("runs", help="list, show, read the logs of, or resume runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    listing = _leaf(runs_sub, "list", common, "the organization's runs, newest first", "runs list")
    listing.add_argument(
        "--limit", type=_positive_int, default=20, help="at most this many (default 20)"
    )
    listing.add_argument(
        "--user-id", type=_positive_int, metavar="ID", help="only this user's runs"
    )
    listing.add_argument("--source-type", choices=_SOURCE_TYPES, help="only runs started from here")
    get = _leaf(runs_sub, "get", common, "one run as it is now", "runs get")
    get.add_argument("run_id", type=_positive_int, metavar="ID")
    logs = _leaf(runs_sub, "logs", common, "a run's log entries, oldest first", "runs logs")
    logs.add_argument("run_id", type=_positive_int, metavar="ID")
    resume = _leaf(runs_sub, "resume", common, "send a run a new prompt", "runs resume")
    resume.add_argument("run_id", type=_positive_int, metavar="ID")
    resume.add_argument("prompt", type=_prompt)
    if waits:
        logs.add_argument("--follow", action="store_true", help="keep reading until the run ends")
        resume.add_argument("--wait", action="store_true", help="wait for the resumed run to end")
        _add_timeout(resume, "the run")


def _add_reads(sub: Any, common: argparse.ArgumentParser) -> None:
    _leaf(sub, "orgs", common, "your organizations", "orgs")
    _leaf(sub, "users", common, "the organization's users", "users")
    _leaf(sub, "repos", common, "the organization's repositories", "repos")
    _leaf(sub, "integrations", common, "the organization's integrations", "integrations")
    _leaf(sub, "whoami", common, "health check: who the key belongs to, org, latency", "whoami")


def _add_calls(sub: Any, common: argparse.ArgumentParser, *, waits: bool) -> None:
    """The commands that map to one API call (also the ones `curl` can show)."""
    _add_run(sub, common, waits=waits)
    _add_runs(sub, common, waits=waits)
    _add_reads(sub, common)


def _add_multi_run(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = _leaf(
        sub, "multi-run", common, "several agents on one prompt, then a synthesis", "multi-run"
    )
    parser.add_argument("prompt", type=_prompt)
    parser.add_argument(
        "--concurrency", type=_positive_int, default=3, metavar="N", help="agents (default 3)"
    )
    parser.add_argument(
        "--no-synthesize", action="store_true", help="no synthesis run; the first answer is final"
    )
    _add_create_options(parser)
    _add_timeout(parser, "the candidates and the synthesis")


def _add_batch(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = _leaf(
        sub, "batch", common, "many runs at once, one per prompt and repository", "batch"
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
        help="runs in flight (default 10)",
    )
    parser.add_argument(
        "--fail-fast", action="store_true", help="start nothing more after a failure"
    )
    _add_timeout(parser, "the whole batch")


def _add_emulator(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = _leaf(
        sub, "emulator", common, "serve the emulator on 127.0.0.1 (needs uvicorn)", "emulator"
    )
    parser.add_argument("--port", type=_port, default=0, help="port (default 0: any free port)")


def _add_curl(sub: Any, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "curl",
        help="print the curl command for a call, without sending it",
        description="Print the curl command for a call, e.g. `curl runs get 5`.",
    )
    parser.add_argument(
        "--show-key", action="store_true", help="show the key instead of $CODEGEN_API_KEY"
    )
    calls = parser.add_subparsers(dest="call", metavar="COMMAND", required=True)
    _add_calls(calls, common, waits=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codegen-async",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_globals(parser, defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _add_globals(common, defaults=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_calls(sub, common, waits=True)
    _add_multi_run(sub, common)
    _add_batch(sub, common)
    _add_emulator(sub, common)
    _add_curl(sub, common)
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Rules argparse cannot express; a violation exits with status 2 (through SystemExit)."""
    if args.emulator and (args.api_key or args.base_url or args.org_id):
        parser.error("--emulator cannot be combined with --api-key, --base-url or --org-id")
    if args.action == "batch" and (args.prompt is None) == (args.file is None):
        parser.error("batch needs a PROMPT or --file PATH (not both)")
    if args.action == "run" and getattr(args, "no_wait", False) and args.follow:
        parser.error("run: --no-wait and --follow exclude each other")
