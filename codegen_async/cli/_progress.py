"""Live progress of waits and fan-outs: one line per run (status, elapsed) and totals.

Driven only by what the library reports (a fan-out's `ProgressEvent`s, `wait`'s
`on_update` snapshots): the display never asks the API anything. On a terminal with
rich installed it is a live table on stderr; otherwise one plain line per event.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TextIO

import attrs

from .._errors import WaitTimeoutError
from .._fanout import ProgressEvent, ProgressKind
from ..models import AgentRun
from ._output import Output, console, safe

__all__ = ["Board", "Tracker", "label_of", "open_tracker"]

_LABEL_WIDTH = 48


def label_of(prompt: str, repo_id: int | None = None) -> str:
    """A prompt's first line, shortened, with its repository if any."""
    lines = prompt.strip().splitlines() or [""]
    text = lines[0]
    if len(text) > _LABEL_WIDTH or len(lines) > 1:
        text = text[: _LABEL_WIDTH - 1] + "…"
    return text if repo_id is None else f"{text} (repo {repo_id})"


@attrs.define
class Row:
    """One input: its run, status, and when it was created and ended (board seconds)."""

    index: int
    label: str
    run_id: int | None = None
    status: str = "waiting"
    started: float | None = None
    ended: float | None = None
    ok: bool | None = None
    timed_out: bool = False

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else now) - self.started


class Board:
    """The state the display draws: one row per input, updated from reports."""

    def __init__(self, labels: Sequence[str], clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start = clock()
        self.rows = [Row(index, label) for index, label in enumerate(labels)]

    def now(self) -> float:
        return self._clock() - self._start

    def add(self, label: str) -> int:
        """One more row (a run the job starts later, e.g. a synthesis); its index."""
        self.rows.append(Row(len(self.rows), label))
        return len(self.rows) - 1

    def created(self, index: int, run: AgentRun, status: str | None = None) -> Row:
        row = self.rows[index]
        row.run_id, row.started = run.id, self.now()
        self.changed(index, run)
        row.status = row.status if status is None else status
        return row

    def changed(self, index: int, run: AgentRun) -> Row:
        row = self.rows[index]
        row.status = _status(run)
        return row

    def finished(self, index: int, run: AgentRun | None, error: Exception | None) -> Row:
        row = self.rows[index]
        if run is not None:
            row.run_id = row.run_id or run.id
            row.status = _status(run)
        if isinstance(error, WaitTimeoutError):
            row.timed_out = True
            row.status = "timed out (still running)"
        elif error is not None:
            row.status = type(error).__name__
        row.ok = error is None and run is not None and run.succeeded
        row.ended = self.now()
        return row

    def apply(self, event: ProgressEvent) -> Row:
        if event.kind is ProgressKind.CREATED and event.run is not None:
            return self.created(event.index, event.run)
        if event.kind is ProgressKind.STATUS_CHANGED and event.run is not None:
            return self.changed(event.index, event.run)
        error = event.outcome.error if event.outcome is not None else event.error
        return self.finished(event.index, event.run, error)

    def totals(self) -> str:
        counts = {"waiting": 0, "running": 0, "complete": 0, "failed": 0, "timed out": 0}
        for row in self.rows:
            counts[_phase(row)] += 1
        parts = [f"{count} {name}" for name, count in counts.items() if count]
        noun = "run" if len(self.rows) == 1 else "runs"
        return f"{len(self.rows)} {noun}: {', '.join(parts)} in {self.now():.1f}s"


def _status(run: AgentRun) -> str:
    return "unknown" if run.status is None else str(run.status.value)


def _phase(row: Row) -> str:
    if row.timed_out:
        return "timed out"
    if row.ended is not None:
        return "complete" if row.ok else "failed"
    return "waiting" if row.started is None else "running"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


class _Display(Protocol):
    def show(self, row: Row) -> None: ...

    def note(self, text: str) -> None: ...

    def close(self) -> None: ...


class _PlainDisplay:
    """One line per event, then the totals."""

    def __init__(self, board: Board, stream: TextIO) -> None:
        self._board = board
        self._stream = stream
        self._width = len(str(len(board.rows)))

    def show(self, row: Row) -> None:
        run = "-" if row.run_id is None else f"run {row.run_id}"
        position = f"[{row.index + 1:>{self._width}}/{len(self._board.rows)}]"
        took = row.elapsed(row.ended) if row.ended is not None else None
        took_text = "" if took is None else f" after {_seconds(took)}"
        line = f"{self._board.now():7.1f}s  {position} {run}  {row.status}{took_text}  {row.label}"
        self.note(line)

    def note(self, text: str) -> None:
        self._stream.write(safe(text) + "\n")
        self._stream.flush()

    def close(self) -> None:
        self.note(self._board.totals())


class _RichDisplay:
    """A live table redrawn from the board (the clock ticks the elapsed column)."""

    def __init__(self, board: Board, stream: TextIO) -> None:
        from rich.live import Live

        self._board = board
        self._live: Any = Live(
            console=console(stream),
            get_renderable=self._render,
            refresh_per_second=8,
            transient=False,
        )
        self._live.start()

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        now = self._board.now()
        caption = Text(self._board.totals())
        table = Table("#", "RUN", "STATUS", "ELAPSED", "PROMPT", caption=caption)
        for row in self._board.rows:
            run = "-" if row.run_id is None else str(row.run_id)
            style = "" if row.ok is None else ("green" if row.ok else "red")
            table.add_row(
                Text(str(row.index + 1)),
                Text(run),
                Text(safe(row.status), style=style),
                Text(_seconds(row.elapsed(now))),
                Text(safe(row.label)),
            )
        return table

    def show(self, row: Row) -> None:
        self._live.refresh()

    def note(self, text: str) -> None:
        from rich.text import Text

        self._live.console.print(Text(safe(text)))

    def close(self) -> None:
        self._live.stop()


class _NoDisplay:
    def show(self, row: Row) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class Tracker:
    """Feeds reports to the board and redraws: `event` for fan-outs, `created` /
    `update` / `finish` for a single run's wait."""

    def __init__(self, board: Board, display: _Display) -> None:
        self.board = board
        self._display = display

    def event(self, event: ProgressEvent) -> None:
        self._display.show(self.board.apply(event))

    def created(self, index: int, run: AgentRun, status: str | None = None) -> None:
        self._display.show(self.board.created(index, run, status))

    def update(self, index: int, run: AgentRun) -> None:
        if run.is_terminal:
            self.finish(index, run)
        elif _status(run) != self.board.rows[index].status:
            self._display.show(self.board.changed(index, run))

    def finish(self, index: int, run: AgentRun | None, error: Exception | None = None) -> None:
        """The run's end (shown once, however often it is reported)."""
        if self.board.rows[index].ended is None:
            self._display.show(self.board.finished(index, run, error))

    def note(self, text: str) -> None:
        """A line about the whole job, between the runs' lines."""
        self._display.note(text)

    @property
    def all_ended(self) -> bool:
        return all(row.ended is not None for row in self.board.rows)

    def close(self) -> None:
        self._display.close()


@contextlib.contextmanager
def open_tracker(
    out: Output, labels: Sequence[str], *, quiet: bool, plain: bool = False
) -> Iterator[Tracker]:
    """A tracker drawing on stderr: rich when it is a terminal (unless `plain`), plain
    lines otherwise, nothing when `quiet` or under --json to a pipe or file."""
    board = Board(labels)
    display: _Display
    if quiet or (out.json_mode and not out.stderr_is_terminal):  # stderr: the error only
        display = _NoDisplay()
    elif out.rich_stderr and not plain:
        display = _RichDisplay(board, out.stderr)
    else:
        display = _PlainDisplay(board, out.stderr)
    tracker = Tracker(board, display)
    try:
        yield tracker
    finally:
        tracker.close()
