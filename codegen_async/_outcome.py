"""What a batch yields: one `RunOutcome` per input, and where a resumed journal stood
(`ResumeCounts`). Plain values: the fan-out makes them, the journal records and reads
them back, the CLI shows them."""

from __future__ import annotations

from typing import TypeAlias

import attrs

from ._runspec import RunSpec
from .models import AgentRun

__all__ = ["ResumeCounts", "RunInput", "RunOutcome"]

RunInput: TypeAlias = str | RunSpec


@attrs.frozen
class RunOutcome:
    """What became of one fan-out input.

    `run` is the terminal run (a FAILED run is still a run), or None when `error` kept
    it from one: it could not be created, the wait failed or timed out, or it was never
    started. `run_id` is the created run's id, also when `error` is set. `replayed` is
    True for an outcome read back from a journal (no request was made for it).
    """

    index: int
    input: RunInput
    run: AgentRun | None = None
    error: Exception | None = None
    run_id: int | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        """True when the run ended COMPLETE."""
        return self.run is not None and self.run.succeeded

    def unwrap(self) -> AgentRun:
        """The terminal run, or raise the error that kept it from one."""
        if self.error is not None:
            raise self.error
        assert self.run is not None
        return self.run


@attrs.frozen
class ResumeCounts:
    """Where a resumed journal stood: inputs `finished` (replayed), `in_flight` (created:
    awaited), `to_reconcile` (their create may have been sent: looked up by key before
    it is posted again) and `to_start` (never sent: started at once)."""

    finished: int
    in_flight: int
    to_start: int
    to_reconcile: int = 0
