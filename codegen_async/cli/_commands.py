"""One handler per command: call the library, show the result, return the exit code."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import itertools
import shlex
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import anyio

from .._client import AsyncCodegen
from .._constants import GROUP_METADATA_KEY, ROLE_METADATA_KEY
from .._convert import structure
from .._curl import BASE_URL_PLACEHOLDER, ORG_ID_PLACEHOLDER
from .._errors import CodegenError, ConfigurationError, WaitTimeoutError
from .._fanout import ProgressEvent, ProgressKind, RunOutcome, RunSpec
from .._http import APIResponse
from .._pagination import MAX_PAGE_SIZE
from .._settings import ENV_API_KEY, ENV_BASE_URL, ENV_ORG_ID, resolve_settings
from .._synthesis import MultiRunResult
from ..models import AgentRun, AgentRunLog
from . import _exit
from ._emulated import make_emulator
from ._output import Column, Output, to_json
from ._progress import Tracker, label_of, open_tracker
from ._session import Created, Session, open_client

__all__ = ["execute", "serve_emulator"]

T = TypeVar("T")
Handler = Callable[[Session], Awaitable[int]]
Call = Callable[[AsyncCodegen, argparse.Namespace], Awaitable[object]]

_EXCERPT = 60


def _excerpt(text: str | None) -> str:
    if not text:
        return "-"
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def _status(run: AgentRun | None) -> str:
    if run is None or run.status is None:
        return "-"
    return str(run.status.value)


def _exit_for(ok: bool) -> int:
    return _exit.OK if ok else _exit.RUN_FAILED


def _outcome_status(run: AgentRun | None, error: BaseException | None) -> str:
    if isinstance(error, WaitTimeoutError):
        return "timed out (still running)"
    if run is None:
        return "not run"
    return _status(run)


# Times the in-process emulator gives are on its own clock, which runs faster.
_EMULATED = " (emulator clock)"


def _created_label(out: Output) -> str:
    return "created" + (_EMULATED if out.emulated else "")


def _when(out: Output, run: AgentRun) -> str | None:
    if run.created_at is None:
        return None
    return run.created_at.isoformat(timespec="seconds") + (_EMULATED if out.emulated else "")


# -- showing runs -------------------------------------------------------------------------


def run_columns(out: Output) -> Sequence[Column]:
    return (
        ("ID", lambda run: run.id),
        ("STATUS", _status),
        (
            _created_label(out).upper(),
            lambda run: run.created_at and run.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        ),
        ("SOURCE", lambda run: run.source_type),
        ("SUMMARY", lambda run: _excerpt(run.summary)),
    )


def show_run(out: Output, run: AgentRun) -> None:
    if out.json_mode:
        out.document(to_json(run))
        return
    pull_requests = [pr.url for pr in run.github_pull_requests or [] if pr.url]
    out.fields(
        [
            ("run", run.id),
            ("status", _status(run)),
            ("created", _when(out, run)),
            ("web url", run.web_url),
            ("pull requests", ", ".join(pull_requests)),
            ("summary", run.summary),
        ]
    )
    if run.result:
        out.line()
        out.line(run.result)


def _note_emulated_times(out: Output) -> None:
    if out.emulated and not out.json_mode:
        out.note("log times are on the emulator's clock, which runs faster than real time")


def _log_line(entry: AgentRunLog) -> str:
    when = entry.created_at.strftime("%H:%M:%S") if entry.created_at else "--:--:--"
    parts = [when, entry.message_type or "-", entry.tool_name or "", entry.thought or ""]
    return "  ".join(part for part in parts if part)


async def _print_logs(
    out: Output, logs: AsyncIterator[AgentRunLog], *, stream: str | None = None
) -> list[AgentRunLog]:
    """Print each entry as it comes and return them all. Under --json only when
    streaming: one JSON line per entry (`stream` names the key it goes under, "" none)."""
    seen = []
    async for entry in logs:
        seen.append(entry)
        if not out.json_mode:
            out.line(_log_line(entry))
        elif stream is not None:
            out.json_line({stream: to_json(entry)} if stream else to_json(entry))
    return seen


# -- waiting for one run ------------------------------------------------------------------


async def _wait(s: Session, run: AgentRun, label: str, *, plain: bool = False) -> AgentRun:
    """Wait for `run` with a progress line driven by `wait(on_update=...)`."""
    with open_tracker(s.out, [label], quiet=s.args.quiet, plain=plain) as tracker:
        tracker.created(0, run)
        try:
            final = await s.client.agent_runs.wait(
                run, timeout=s.args.timeout, on_update=functools.partial(tracker.update, 0)
            )
        except WaitTimeoutError as exc:
            tracker.finish(0, exc.run, exc)
            raise
        tracker.finish(0, final)
    s.created.ended(final.id)
    return final


async def _wait_following(s: Session, run: AgentRun, label: str) -> tuple[AgentRun, list[Any]]:
    """Wait while streaming the run's logs (plain progress: the logs share the terminal)."""
    logs: list[AgentRunLog] = []
    _note_emulated_times(s.out)

    async def follow() -> None:
        entries = s.client.agent_runs.logs(run.id, follow=True)
        logs.extend(await _print_logs(s.out, entries, stream="log"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        final = await _wait(s, run, label, plain=True)
    return final, [to_json(entry) for entry in logs]


async def _finish_run(s: Session, run: AgentRun, label: str) -> int:
    if s.args.follow:
        run, logs = await _wait_following(s, run, label)
        if s.out.json_mode:  # the NDJSON stream's last line: the run, its logs too
            s.out.json_line({"run": {**to_json(run), "logs": logs}})
            return _exit_for(run.succeeded)
    else:
        run = await _wait(s, run, label)
    show_run(s.out, run)
    return _exit_for(run.succeeded)


async def run_command(s: Session) -> int:
    a = s.args
    run = await s.client.agent_runs.create(
        a.prompt, repo_id=a.repo_id, model=a.model, agent_type=a.agent_type
    )
    s.created.add(run.id)
    if a.no_wait:
        show_run(s.out, run)
        return _exit.OK
    return await _finish_run(s, run, label_of(a.prompt, a.repo_id))


# -- fan-outs -----------------------------------------------------------------------------


def _fan_out_progress(created: Created, tracker: Tracker) -> Callable[[ProgressEvent], None]:
    """Show each run's events and note its id, and its end, for Ctrl-C."""

    def on_progress(event: ProgressEvent) -> None:
        if event.run is not None:
            created.add(event.run.id)
            if event.run.is_terminal:
                created.ended(event.run.id)
        tracker.event(event)

    return on_progress


class _Synthesis:
    """multi-run's synthesis run, which the library starts without reporting events:
    its row appears when the candidates are done and two or more answered (only then
    does the library synthesize), and its id and status are read off the responses
    (the run carries the group's metadata), so Ctrl-C can name it."""

    def __init__(self, created: Created, tracker: Tracker, *, enabled: bool) -> None:
        self._created = created
        self._tracker = tracker
        self._enabled = enabled
        self._group: object = None
        self._answers = 0
        self.index: int | None = None

    def on_progress(self, event: ProgressEvent) -> None:
        run = event.run
        if run is not None and self._group is None and run.metadata:
            self._group = run.metadata.get(GROUP_METADATA_KEY)
        if event.kind is ProgressKind.FINISHED and run is not None and run.result:
            self._answers += 1
        waiting = self._enabled and self.index is None
        if waiting and self._tracker.all_ended and self._answers >= 2:
            self._tracker.note(f"candidates done; synthesizing their {self._answers} answers")
            self.index = self._tracker.board.add("synthesis of the candidates' answers")

    def on_response(self, response: APIResponse) -> None:
        if self.index is None or self._group is None:
            return
        try:
            data = response.json()
        except ValueError:
            return
        items = data.get("items") if isinstance(data, dict) else None
        for item in items if isinstance(items, list) else [data]:
            metadata = item.get("metadata") if isinstance(item, dict) else None
            if not isinstance(metadata, dict) or metadata.get(ROLE_METADATA_KEY) != "synthesis":
                continue
            if metadata.get(GROUP_METADATA_KEY) != self._group:
                continue
            try:
                run = structure(item, AgentRun)
            except CodegenError:
                continue
            self._created.add(run.id)
            if self._tracker.board.rows[self.index].run_id is None:
                # Its status is not polled here: said once, then its end.
                self._tracker.created(self.index, run, status="started, waiting for it")
            elif run.is_terminal:
                self._tracker.finish(self.index, run)
            if run.is_terminal:
                self._created.ended(run.id)

    def finish(self, result: MultiRunResult) -> None:
        if self.index is not None:
            self._tracker.finish(self.index, result.synthesis_run, result.synthesis_error)


async def multi_run_command(s: Session) -> int:
    a = s.args
    labels = [f"candidate {n}: {label_of(a.prompt)}" for n in range(1, a.concurrency + 1)]
    with open_tracker(s.out, labels, quiet=a.quiet) as tracker:
        synthesis = _Synthesis(s.created, tracker, enabled=not a.no_synthesize)
        candidates = _fan_out_progress(s.created, tracker)

        def on_progress(event: ProgressEvent) -> None:
            candidates(event)
            synthesis.on_progress(event)

        client = s.client.with_options(on_response=synthesis.on_response)
        s.created.unconfirmed = client.agent_runs.unconfirmed_creates
        result = await client.multi_run(
            a.prompt,
            concurrency=a.concurrency,
            synthesize=not a.no_synthesize,
            timeout=a.timeout,
            on_progress=on_progress,
            repo_id=a.repo_id,
            model=a.model,
            agent_type=a.agent_type,
        )
        synthesis.finish(result)
    _show_multi_run(s.out, result)
    return _exit_for(result.final is not None)


def _show_multi_run(out: Output, result: MultiRunResult) -> None:
    if out.json_mode:
        out.document(
            {
                "final": result.final,
                "candidates": result.candidates,
                "group_id": result.group_id,
                "agent_runs": [to_json(run) for run in result.agent_runs],
                "synthesis_run": to_json(result.synthesis_run),
                "synthesis_error": _error_text(result.synthesis_error),
            }
        )
        return
    rows = [
        [str(o.run_id or "-"), _outcome_status(o.run, o.error), _excerpt(_answer(o.run, o.error))]
        for o in result.outcomes
    ]
    if result.synthesis_run is not None:
        run = result.synthesis_run
        status = _outcome_status(run, result.synthesis_error)
        rows.append([f"{run.id} (synthesis)", status, _excerpt(run.result)])
    out.table(["RUN", "STATUS", "RESULT"], rows)
    if result.synthesis_error is not None:
        out.note(f"synthesis failed: {_error_text(result.synthesis_error)}")
    out.line()
    out.line(result.final if result.final is not None else _no_answer(result))


def _no_answer(result: MultiRunResult) -> str:
    if result.synthesis_error is not None or result.synthesis_run is not None:
        return "no final answer: the synthesis did not succeed"
    return "no final answer: no candidate succeeded"


def _answer(run: AgentRun | None, error: BaseException | None) -> str | None:
    return run.result if run is not None and run.result else _error_text(error)


def _error_text(error: BaseException | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def _read_prompts(path: str) -> list[str]:
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _exit.CliError(f"cannot read prompts from {path}: {exc}", _exit.USAGE) from None
    prompts = [line.strip() for line in text.splitlines()]
    prompts = [line for line in prompts if line and not line.startswith("#")]
    if not prompts:
        raise _exit.CliError(f"no prompts in {path}", _exit.USAGE)
    return prompts


def batch_specs(args: argparse.Namespace) -> list[RunSpec]:
    """One spec per prompt and repository (each prompt in each --repo-id)."""
    prompts = [args.prompt] if args.file is None else _read_prompts(args.file)
    repos: list[int | None] = args.repo_ids or [None]
    return [
        RunSpec(prompt, repo_id=repo, model=args.model, agent_type=args.agent_type)
        for prompt, repo in itertools.product(prompts, repos)
    ]


async def batch_command(s: Session) -> int:
    a = s.args
    specs = batch_specs(a)
    labels = [label_of(spec.prompt, spec.repo_id) for spec in specs]
    shown: list[Callable[[ProgressEvent], None]] = []  # the tracker, once it is open

    def on_progress(event: ProgressEvent) -> None:
        for show in shown:
            show(event)

    fan_out = s.client.run_many(
        specs,
        max_concurrency=a.max_concurrency,
        timeout=a.timeout,
        fail_fast=a.fail_fast,
        on_progress=on_progress,
        journal=a.journal,
    )
    # Entering opens the journal (refusing one for other inputs) and says where an
    # earlier run left it, before anything else; its task starts at the first await.
    async with fan_out:
        if a.journal is not None:
            s.created.resume_hint = f"to resume, run the same command again (--journal {a.journal})"
        if fan_out.resumed is not None:
            r = fan_out.resumed
            s.out.note(
                f"resuming: {r.finished} finished, {r.in_flight} in flight, "
                f"{r.to_reconcile} to reconcile, {r.to_start} to start"
            )
        with open_tracker(s.out, labels, quiet=a.quiet) as tracker:
            shown.append(_fan_out_progress(s.created, tracker))
            s.created.watch(fan_out.created)
            outcomes = await fan_out.gather()
    _show_outcomes(s.out, outcomes)
    return _exit_for(all(outcome.ok for outcome in outcomes))


def _outcome_json(outcome: RunOutcome) -> dict[str, Any]:
    spec = outcome.input if isinstance(outcome.input, RunSpec) else RunSpec(outcome.input)
    return {
        "index": outcome.index,
        "prompt": spec.prompt,
        "repo_id": spec.repo_id,
        "ok": outcome.ok,
        "run_id": outcome.run_id,
        "run": to_json(outcome.run),
        "error": _error_text(outcome.error),
        "replayed": outcome.replayed,
    }


def _show_outcomes(out: Output, outcomes: list[RunOutcome]) -> None:
    if out.json_mode:
        out.document([_outcome_json(outcome) for outcome in outcomes])
        return
    specs = [_outcome_json(outcome) for outcome in outcomes]
    repos = len({spec["repo_id"] for spec in specs}) > 1  # a column only when they differ
    rows = []
    for outcome, spec in zip(outcomes, specs, strict=True):
        row = [str(outcome.index + 1), str(outcome.run_id or "-")]
        if repos:
            row.append("-" if spec["repo_id"] is None else str(spec["repo_id"]))
        status = _outcome_status(outcome.run, outcome.error)
        row += [status, _excerpt(_answer(outcome.run, outcome.error)), label_of(spec["prompt"])]
        rows.append(row)
    headers = ["#", "RUN", *(["REPO"] if repos else []), "STATUS", "RESULT", "PROMPT"]
    out.table(headers, rows)


# -- runs ---------------------------------------------------------------------------------


async def _take(items: AsyncIterator[T], limit: float) -> list[T]:
    taken: list[T] = []
    if limit > 0:
        async for item in items:
            taken.append(item)
            if len(taken) >= limit:
                break
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()
    return taken


async def runs_list(s: Session) -> int:
    a = s.args
    listing = s.client.agent_runs.list(user_id=a.user_id, source_type=a.source_type)
    s.out.records(await _take(listing, a.limit), run_columns(s.out))
    return _exit.OK


async def runs_get(s: Session) -> int:
    show_run(s.out, await s.client.agent_runs.get(s.args.run_id))
    return _exit.OK


async def runs_logs(s: Session) -> int:
    follow = s.args.follow
    _note_emulated_times(s.out)
    logs = s.client.agent_runs.logs(s.args.run_id, follow=follow)
    entries = await _print_logs(s.out, logs, stream="" if follow else None)
    if s.out.json_mode and not follow:
        s.out.document([to_json(entry) for entry in entries])
    return _exit.OK


async def runs_resume(s: Session) -> int:
    a = s.args
    run = await s.client.agent_runs.resume(a.run_id, a.prompt)
    s.created.add(run.id)
    if not a.wait:
        show_run(s.out, run)
        return _exit.OK
    run = await _wait(s, run, label_of(a.prompt))
    show_run(s.out, run)
    return _exit_for(run.succeeded)


# -- reads --------------------------------------------------------------------------------

ORG_COLUMNS: Sequence[Column] = (("ID", lambda org: org.id), ("NAME", lambda org: org.name))
USER_COLUMNS: Sequence[Column] = (
    ("ID", lambda user: user.id),
    ("USERNAME", lambda user: user.github_username),
    ("NAME", lambda user: user.full_name),
    ("EMAIL", lambda user: user.email),
    ("ROLE", lambda user: user.role),
)
REPO_COLUMNS: Sequence[Column] = (
    ("ID", lambda repo: repo.id),
    ("FULL NAME", lambda repo: repo.full_name),
    ("LANGUAGE", lambda repo: repo.language),
    ("VISIBILITY", lambda repo: repo.visibility),
    ("SETUP", lambda repo: repo.setup_status),
)
INTEGRATION_COLUMNS: Sequence[Column] = (
    ("TYPE", lambda item: item.integration_type),
    ("ACTIVE", lambda item: item.active),
)


async def orgs(s: Session) -> int:
    s.out.records([org async for org in s.client.organizations.list()], ORG_COLUMNS)
    return _exit.OK


async def users(s: Session) -> int:
    s.out.records([user async for user in s.client.users.list()], USER_COLUMNS)
    return _exit.OK


async def repos(s: Session) -> int:
    s.out.records([repo async for repo in s.client.repositories.list()], REPO_COLUMNS)
    return _exit.OK


async def integrations(s: Session) -> int:
    found = await s.client.integrations.get()
    if s.out.json_mode:
        s.out.document(to_json(found))
        return _exit.OK
    name, active = found.organization_name, found.total_active_integrations
    s.out.line(f"{name} (org {found.organization_id}): {active} active")
    s.out.records(found.integrations, INTEGRATION_COLUMNS)
    return _exit.OK


async def whoami(s: Session) -> int:
    health = await s.client.health_check()
    if s.out.json_mode:
        s.out.document(to_json(health))
        return _exit.OK
    user = health.user
    who = f"@{user.github_username}" + (f" ({user.full_name})" if user.full_name else "")
    s.out.fields(
        [
            ("ok", health.ok),
            ("user", f"{who}, id {user.id}"),
            ("org", health.org_id),
            ("latency", f"{health.latency * 1000:.0f} ms"),
        ]
    )
    return _exit.OK


# -- curl ---------------------------------------------------------------------------------

# The first request each command sends: what `curl <command>` shows.
FIRST_CALLS: dict[str, Call] = {
    "run": lambda c, a: c.agent_runs.create(
        a.prompt, repo_id=a.repo_id, model=a.model, agent_type=a.agent_type
    ),
    "runs list": lambda c, a: c.agent_runs.list_page(
        user_id=a.user_id, source_type=a.source_type, limit=min(a.limit, MAX_PAGE_SIZE)
    ),
    "runs get": lambda c, a: c.agent_runs.get(a.run_id),
    "runs logs": lambda c, a: c.agent_runs.logs_page(a.run_id),
    "runs resume": lambda c, a: c.agent_runs.resume(a.run_id, a.prompt),
    "orgs": lambda c, a: c.organizations.list_page(),
    "users": lambda c, a: c.users.list_page(),
    "repos": lambda c, a: c.repositories.list_page(),
    "integrations": lambda c, a: c.integrations.get(),
    "whoami": lambda c, a: c.users.me(),
}


_KEY_PLACEHOLDER = "no-key-configured"

# `--emulator curl`: the in-process emulator of --emulator commands lives only while
# one command runs, so no curl can reach it; a served one can.
_SERVED_EMULATOR_NOTE = (
    "--emulator commands use an emulator inside the command, which no curl can reach: "
    "to run this curl, start `codegen-async emulator` in another terminal, run here the "
    "export lines it prints, then the curl"
)


def _curl_client(args: argparse.Namespace, out: Output) -> AsyncCodegen:
    """A client that is never used to send: the configured key, URL and organization
    where known, placeholders where not (nothing is looked up). With --emulator: the
    variables `codegen-async emulator` prints (its key shown with --show-key)."""
    if args.emulator:
        out.note(_SERVED_EMULATOR_NOTE)
        key = make_emulator(args).api_key  # the key a served emulator accepts too
        return AsyncCodegen(api_key=key, base_url=BASE_URL_PLACEHOLDER, org_id=ORG_ID_PLACEHOLDER)
    options = {"org_id": args.org_id, "base_url": args.base_url}
    try:
        settings = resolve_settings(api_key=args.api_key, **options)
    except ConfigurationError as exc:
        if "api_key is not set" not in str(exc):
            raise
        settings = resolve_settings(api_key=_KEY_PLACEHOLDER, **options)
        if args.show_key:
            out.note("no API key configured: it is shown as $CODEGEN_API_KEY")
            args.show_key = False
    return AsyncCodegen(
        api_key=settings.api_key,
        base_url=settings.base_url,
        org_id=settings.org_id or ORG_ID_PLACEHOLDER,
    )


async def curl(args: argparse.Namespace, out: Output) -> int:
    call = FIRST_CALLS[args.action]
    async with _curl_client(args, out) as client:
        text = await client.as_curl(lambda c: call(c, args), show_key=args.show_key)
    if out.json_mode:
        out.document({"curl": text})
    else:
        out.line(text)
    return _exit.OK


# -- dispatch -----------------------------------------------------------------------------

HANDLERS: dict[str, Handler] = {
    "run": run_command,
    "multi-run": multi_run_command,
    "batch": batch_command,
    "runs list": runs_list,
    "runs get": runs_get,
    "runs logs": runs_logs,
    "runs resume": runs_resume,
    "orgs": orgs,
    "users": users,
    "repos": repos,
    "integrations": integrations,
    "whoami": whoami,
}


async def execute(args: argparse.Namespace, out: Output, created: Created) -> int:
    """Run the parsed command with a client; returns its exit code."""
    if args.command == "curl":
        return await curl(args, out)
    handler = HANDLERS[args.action]
    async with open_client(args, out) as client:
        created.unconfirmed = client.agent_runs.unconfirmed_creates
        return await handler(Session(args, out, created, client))


# -- emulator -----------------------------------------------------------------------------


def _announce(out: Output, api_key: str, org_id: int, url: str) -> None:
    """The settings that point a client at the served emulator: sh `export` lines to
    paste into another shell (values quoted for it), or one JSON document."""
    if out.json_mode:
        out.document({"base_url": url, "api_key": api_key, "org_id": org_id})
    else:
        for name, value in (
            (ENV_BASE_URL, url),
            (ENV_API_KEY, api_key),
            (ENV_ORG_ID, str(org_id)),
        ):
            out.line(f"export {name}={shlex.quote(value)}")
    out.note(f"Codegen emulator listening on {url} (Ctrl-C to stop)")
    if not out.json_mode:
        out.note(
            "in another shell, run the export lines above: then AsyncCodegen(), the "
            "recipes and `codegen-async` commands (without --emulator) use this emulator"
        )


def serve_emulator(args: argparse.Namespace, out: Output) -> int:
    """Serve an Emulator on 127.0.0.1 until Ctrl-C (blocking; no event loop here)."""
    if importlib.util.find_spec("uvicorn") is None:
        raise _exit.CliError(
            "the emulator command needs uvicorn: pip install 'codegen-async[serve]'",
            _exit.API_ERROR,
        )
    from ..testing._serve import run_forever

    emu = make_emulator(args)
    ready = functools.partial(_announce, out, emu.api_key, emu.org_id)
    try:
        run_forever(emu.wire_app, port=args.port, on_ready=ready)
    except OSError as exc:
        raise _exit.CliError(f"cannot serve on port {args.port}: {exc}", _exit.API_ERROR) from None
    return _exit.OK
