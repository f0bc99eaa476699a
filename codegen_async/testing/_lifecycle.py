"""A run's status and logs as a pure function of emulated time.

Nothing here runs in the background: a run is a list of legs (the first from its
create, one more per resume), each with a start, a pending and a running duration
and a planned outcome, all fixed when the leg begins. Status and visible logs at
emulated time `t` are computed from those numbers on demand.
"""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import Any

import attrs

from ..models import DOCS_STATUS_WORDS, TERMINAL_STATUSES, RunStatus

__all__ = [
    "Clock",
    "Leg",
    "LifecycleConfig",
    "Run",
    "logs_at",
    "plan_leg",
    "result_for",
    "run_view",
    "spell_status",
    "unit_hash",
]

PENDING = RunStatus.PENDING.value
RUNNING = RunStatus.RUNNING.value
COMPLETE = RunStatus.COMPLETE.value
FAILED = RunStatus.FAILED.value
ERROR = RunStatus.ERROR.value
CANCELLED = RunStatus.CANCELLED.value

_TOOLS = ("ripgrep_search", "view_file", "edit_file", "run_command")


def unit_hash(*parts: object) -> float:
    """A number in [0, 1) fixed by `parts`."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def result_for(prompt: str) -> str:
    """The result the Emulator gives a run (or resumed leg) with this prompt."""
    short = hashlib.sha256(prompt.encode()).hexdigest()[:12]
    return f"Result for: {prompt[:80]} [{short}]"


class Clock:
    """Emulated time: real monotonic seconds divided by `scale`, plus manual advances."""

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._mono0 = time.monotonic()
        self._wall0 = time.time()
        self._offset = 0.0

    def now(self) -> float:
        """Emulated seconds since the clock started."""
        return (time.monotonic() - self._mono0) / self.scale + self._offset

    def advance(self, seconds: float) -> None:
        """Jump emulated time forward."""
        self._offset += seconds

    def iso(self, t: float) -> str:
        """The emulated wall-clock time `t` as an ISO 8601 string (UTC)."""
        return datetime.fromtimestamp(self._wall0 + t, tz=timezone.utc).isoformat()


@attrs.frozen
class LifecycleConfig:
    """How long runs take and how they end."""

    pending_seconds: float
    run_seconds: tuple[float, float]
    failure_rate: float
    error_rate: float
    seed: int

    def duration(self, prompt: str, leg_index: int) -> float:
        """Running time of a leg, fixed by seed + prompt (+ leg index for resumes)."""
        low, high = self.run_seconds
        return low + (high - low) * unit_hash(self.seed, "duration", prompt, leg_index)

    def outcome(self, run_id: int, leg_index: int) -> str:
        """COMPLETE, FAILED or ERROR, fixed by seed + run id with the configured odds."""
        u = unit_hash(self.seed, "outcome", run_id, leg_index)
        if u < self.failure_rate:
            return FAILED
        if u < self.failure_rate + self.error_rate:
            return ERROR
        return COMPLETE


@attrs.define(eq=False)
class Leg:
    """One stretch of work: from create or resume to a terminal status."""

    start: float
    pending: float
    duration: float
    outcome: str
    prompt: str
    # (offset from start, log entry) in chronological order.
    schedule: tuple[tuple[float, dict[str, Any]], ...]
    stopped_at: float | None = None

    @property
    def end_offset(self) -> float:
        return self.pending + self.duration

    def status(self, t: float) -> str:
        if self.stopped_at is not None and t >= self.stopped_at:
            return CANCELLED
        elapsed = t - self.start
        if elapsed < self.pending:
            return PENDING
        if elapsed < self.end_offset:
            return RUNNING
        return self.outcome

    def logs(self, t: float) -> list[dict[str, Any]]:
        limit = t if self.stopped_at is None else min(t, self.stopped_at)
        elapsed = limit - self.start
        return [entry for offset, entry in self.schedule if elapsed >= offset]


@attrs.define(eq=False)
class Run:
    """An agent run as the store keeps it."""

    id: int
    organization_id: int
    user_id: int
    source_type: str
    created_at: float
    created_at_iso: str
    web_url: str
    metadata: dict[str, Any] | None
    images: list[str] | None
    repo_id: int | None
    repo_full_name: str | None
    model: str | None
    agent_type: str | None
    legs: list[Leg]
    list_visible_at: float = 0.0
    checks_banned: bool = False
    # (status, encoded AgentRunResponse) while nothing but time changed.
    cache: tuple[str, bytes] | None = None

    @property
    def prompt(self) -> str:
        return self.legs[0].prompt

    def status(self, t: float) -> str:
        return self.legs[-1].status(t)

    def is_terminal(self, t: float) -> bool:
        return self.status(t) in TERMINAL_STATUSES


def _log(
    run_id: int, at: str, message_type: str, *, thought: str | None = None, **extra: Any
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "agent_run_id": run_id,
        "created_at": at,
        "tool_name": None,
        "message_type": message_type,
        "thought": thought,
        "observation": None,
        "tool_input": None,
        "tool_output": None,
    }
    entry.update(extra)
    return entry


def _schedule(
    run_id: int, leg_index: int, leg: Leg, clock: Clock, seed: int
) -> tuple[tuple[float, dict[str, Any]], ...]:
    """The logs a leg will emit, each at a fixed offset from the leg's start."""
    steps: list[tuple[float, str, dict[str, Any]]] = []
    d, p, prompt = leg.duration, leg.pending, leg.prompt
    if leg_index > 0:
        steps.append((0.0, "USER_MESSAGE", {"observation": prompt}))
    steps.append((p + 0.05 * d, "PLAN_EVALUATION", {"thought": f"Plan for: {prompt[:60]}"}))
    actions = 2 + int(unit_hash(seed, "actions", run_id, leg_index) * 3)
    for i in range(actions):
        tool = _TOOLS[i % len(_TOOLS)]
        steps.append(
            (
                p + d * (0.15 + 0.7 * i / actions),
                "ACTION",
                {
                    "tool_name": tool,
                    "thought": f"Step {i + 1}: {tool}",
                    "tool_input": {"step": i + 1},
                    "tool_output": {"ok": True},
                    "observation": f"{tool} finished",
                },
            )
        )
    steps.append((p + 0.9 * d, "PLAN_EVALUATION", {"thought": "Reviewing the changes"}))
    end = leg.end_offset
    if leg.outcome == COMPLETE:
        final = {"observation": result_for(prompt), "thought": "Done"}
        steps.append((end, "FINAL_ANSWER", final))
    else:
        reason = "failed" if leg.outcome == FAILED else "stopped on an internal error"
        steps.append((end, "ERROR", {"observation": f"Agent run {reason} (emulated)."}))
    return tuple(
        (offset, _log(run_id, clock.iso(leg.start + offset), kind, **fields))
        for offset, kind, fields in steps
    )


def plan_leg(
    run_id: int,
    leg_index: int,
    prompt: str,
    start: float,
    config: LifecycleConfig,
    clock: Clock,
) -> Leg:
    """Fix a new leg's timing, outcome and logs. A resumed leg skips PENDING."""
    leg = Leg(
        start=start,
        pending=config.pending_seconds if leg_index == 0 else 0.0,
        duration=config.duration(prompt, leg_index),
        outcome=config.outcome(run_id, leg_index),
        prompt=prompt,
        schedule=(),
    )
    leg.schedule = _schedule(run_id, leg_index, leg, clock, config.seed)
    return leg


def logs_at(run: Run, t: float) -> list[dict[str, Any]]:
    """Every log entry visible at `t`, oldest first."""
    out: list[dict[str, Any]] = []
    for leg in run.legs:
        out.extend(leg.logs(t))
    return out


def pr_id_for(run_id: int) -> int:
    """The id of the pull request a completed run with a repository opens."""
    return 700_000 + run_id


def _pull_requests(run: Run, leg: Leg, clock: Clock) -> list[dict[str, Any]]:
    if run.repo_full_name is None:
        return []
    return [
        {
            "id": pr_id_for(run.id),
            "title": f"Changes from agent run {run.id}",
            "url": f"https://github.com/{run.repo_full_name}/pull/{run.id}",
            "created_at": clock.iso(leg.start + leg.end_offset),
            "head_branch_name": f"codegen-bot/run-{run.id}",
        }
    ]


STATUS_SPELLINGS = ("upper", "docs")


def spell_status(status: str, spelling: str) -> str:
    """`status` as the Emulator answers it: "upper" (the official CLI's COMPLETE, ...)
    or "docs" (the docs' examples: "completed", "in_progress", "queued", else lower case)."""
    if spelling == "docs":
        return DOCS_STATUS_WORDS.get(status) or status.lower()
    return status


def run_view(run: Run, t: float, clock: Clock, status: str | None = None) -> dict[str, Any]:
    """The run as the API shows it at `t` (AgentRunResponse)."""
    leg = run.legs[-1]
    status = status or leg.status(t)
    done = status == COMPLETE
    if done:
        summary: str | None = f"Completed: {leg.prompt[:60]}"
    elif status in TERMINAL_STATUSES:
        summary = f"Run ended with status {status}."
    else:
        summary = None
    return {
        "id": run.id,
        "organization_id": run.organization_id,
        "status": status,
        "created_at": run.created_at_iso,
        "web_url": run.web_url,
        "result": result_for(leg.prompt) if done else None,
        "summary": summary,
        "source_type": run.source_type,
        "github_pull_requests": _pull_requests(run, leg, clock) if done else [],
        "metadata": run.metadata,
    }
