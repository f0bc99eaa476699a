"""An Emulator's runs as JSON-able data, and back: what lets `codegen-async --emulator`
keep its runs from one command to the next.

`dump(emu)` returns the runs (each with its planned legs and logs), the next run id,
the idempotency tokens seen and the emulated clock; `load(emu, data)` puts them into a
fresh Emulator, the clock moved on by the real time since the dump (so a run started
by one command has progressed when the next command looks). Seeded users, repositories
and the rest are rebuilt by the Emulator itself. `load` checks every field and raises
`ValueError` naming the first bad one (`runs[3].legs[0].start`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._lifecycle import Leg, Run

if TYPE_CHECKING:
    from ._emulator import Emulator

__all__ = ["FORMAT", "dump", "load"]

FORMAT = 1


def dump(emu: Emulator) -> dict[str, Any]:
    """The Emulator's runs, ids, tokens and clock as JSON-able data."""
    store, clock = emu._store, emu._clock
    with store.lock:
        runs = [_run_data(run) for run in store.run_order]
        return {
            "format": FORMAT,
            "clock": {"now": clock.now(), "wall": time.time(), "wall0": clock._wall0},
            "next_run_id": store._next_run_id,
            "tokens": dict(store._tokens),
            "runs": runs,
        }


def load(emu: Emulator, data: object) -> None:
    """Put dumped state into `emu` (a fresh Emulator); ValueError names a bad field."""
    top = _Reader(data, "state")
    if top.integer("format") != FORMAT:
        raise ValueError(f"state.format: expected {FORMAT}")
    clock_data = top.child("clock")
    now, wall, wall0 = (clock_data.number(name) for name in ("now", "wall", "wall0"))
    runs = [_run_of(item) for item in top.items("runs")]
    next_id = top.integer("next_run_id")
    if any(run.id >= next_id for run in runs):
        raise ValueError("state.next_run_id: not above every run's id")
    tokens = top.child("tokens")
    counts = {key: tokens.integer(key) for key in tokens.data}
    store, clock = emu._store, emu._clock
    with store.lock:
        # Emulated time goes on from the dump, by the real seconds since at this scale.
        clock.advance(max(0.0, now + max(0.0, time.time() - wall) / clock.scale - clock.now()))
        clock._wall0 = wall0
        store.runs = {run.id: run for run in runs}
        store.run_order = runs
        store._next_run_id = next_id
        store._tokens = counts


def _run_data(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "organization_id": run.organization_id,
        "user_id": run.user_id,
        "source_type": run.source_type,
        "created_at": run.created_at,
        "created_at_iso": run.created_at_iso,
        "web_url": run.web_url,
        "metadata": run.metadata,
        "images": run.images,
        "repo_id": run.repo_id,
        "repo_full_name": run.repo_full_name,
        "model": run.model,
        "agent_type": run.agent_type,
        "list_visible_at": run.list_visible_at,
        "checks_banned": run.checks_banned,
        "legs": [
            {
                "start": leg.start,
                "pending": leg.pending,
                "duration": leg.duration,
                "outcome": leg.outcome,
                "prompt": leg.prompt,
                "schedule": [[offset, entry] for offset, entry in leg.schedule],
                "stopped_at": leg.stopped_at,
            }
            for leg in run.legs
        ],
    }


def _run_of(r: _Reader) -> Run:
    legs = [_leg_of(item) for item in r.items("legs")]
    if not legs:
        raise ValueError(f"{r.path}.legs: empty")
    metadata = r.optional("metadata", dict)
    images = r.optional("images", list)
    return Run(
        id=r.integer("id"),
        organization_id=r.integer("organization_id"),
        user_id=r.integer("user_id"),
        source_type=r.text("source_type"),
        created_at=r.number("created_at"),
        created_at_iso=r.text("created_at_iso"),
        web_url=r.text("web_url"),
        metadata=metadata,
        images=images,
        repo_id=r.optional("repo_id", int),
        repo_full_name=r.optional("repo_full_name", str),
        model=r.optional("model", str),
        agent_type=r.optional("agent_type", str),
        legs=legs,
        list_visible_at=r.number("list_visible_at"),
        checks_banned=r.typed("checks_banned", bool),
    )


def _leg_of(r: _Reader) -> Leg:
    schedule = []
    for step in r.items("schedule", kind=list):
        if len(step.data) != 2:
            raise ValueError(f"{step.path}: expected [offset, entry]")
        offset, entry = step.data
        if not _is_number(offset) or not isinstance(entry, dict):
            raise ValueError(f"{step.path}: expected [offset, entry]")
        schedule.append((float(offset), entry))
    stopped = r.optional("stopped_at", float)
    return Leg(
        start=r.number("start"),
        pending=r.number("pending"),
        duration=r.number("duration"),
        outcome=r.text("outcome"),
        prompt=r.text("prompt"),
        schedule=tuple(schedule),
        stopped_at=stopped,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class _Reader:
    """A JSON object being checked, with its path for messages."""

    def __init__(self, data: object, path: str, kind: type = dict) -> None:
        if not isinstance(data, kind):
            raise ValueError(f"{path}: expected a JSON {'object' if kind is dict else 'array'}")
        self.data: Any = data
        self.path = path

    def _get(self, name: str) -> object:
        if not isinstance(self.data, Mapping) or name not in self.data:
            raise ValueError(f"{self.path}.{name}: missing")
        return self.data[name]

    def child(self, name: str) -> _Reader:
        return _Reader(self._get(name), f"{self.path}.{name}")

    def items(self, name: str, kind: type = dict) -> list[_Reader]:
        values = self._get(name)
        if not isinstance(values, list):
            raise ValueError(f"{self.path}.{name}: expected a JSON array")
        return [_Reader(v, f"{self.path}.{name}[{i}]", kind) for i, v in enumerate(values)]

    def typed(self, name: str, kind: type) -> Any:
        value = self._get(name)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ValueError(f"{self.path}.{name}: expected {kind.__name__}, got {value!r:.40}")
        return value

    def integer(self, name: str) -> int:
        return int(self.typed(name, int))

    def text(self, name: str) -> str:
        return str(self.typed(name, str))

    def number(self, name: str) -> float:
        value = self._get(name)
        if not _is_number(value):
            raise ValueError(f"{self.path}.{name}: expected a finite number, got {value!r:.40}")
        return float(value)  # type: ignore[arg-type]

    def optional(self, name: str, kind: type) -> Any:
        if self._get(name) is None:
            return None
        return self.number(name) if kind is float else self.typed(name, kind)
