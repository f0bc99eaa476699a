"""Where the command line writes: results on stdout (tables, text or one JSON document),
progress and errors on stderr.

Tables are drawn with rich when stdout is a terminal and rich is installed, else as
aligned plain text (so pipes and installs without the `cli` extra work the same).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from .._convert import unstructure

__all__ = ["Column", "Output", "rich_available", "to_json"]

Column = tuple[str, Callable[[Any], object]]


def rich_available() -> bool:
    return importlib.util.find_spec("rich") is not None


def to_json(value: object) -> Any:
    """Models (attrs classes) as JSON-able data, through the package's converter."""
    return unstructure(value)


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(getattr(value, "value", value))
    return text.replace("\n", " ")


class Output:
    """The command's streams and its mode (`--json` or human)."""

    def __init__(
        self, *, json_mode: bool, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.json_mode = json_mode
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr

    @property
    def rich_stdout(self) -> bool:
        return _is_terminal(self.stdout) and rich_available()

    @property
    def rich_stderr(self) -> bool:
        return _is_terminal(self.stderr) and rich_available()

    def line(self, text: str = "") -> None:
        """A line of human output on stdout."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        """A line for the person at the terminal, on stderr (also in --json mode)."""
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def error(self, message: str) -> None:
        self.note(f"error: {message}")

    def document(self, data: object) -> None:
        """The one JSON document of a --json command."""
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        self.stdout.flush()

    def records(self, items: Iterable[object], columns: Sequence[Column]) -> None:
        """Models as a JSON list, or as a table of `columns`."""
        items = list(items)
        if self.json_mode:
            self.document([to_json(item) for item in items])
            return
        rows = [[_cell(get(item)) for _, get in columns] for item in items]
        self.table([name for name, _ in columns], rows)

    def fields(self, pairs: Sequence[tuple[str, object]]) -> None:
        """`name: value` lines, names aligned; empty values left out."""
        shown = [(name, _cell(value)) for name, value in pairs if value not in (None, "", [])]
        width = max((len(name) for name, _ in shown), default=0)
        for name, value in shown:
            self.line(f"{name + ':':<{width + 1}} {value}")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        if self.rich_stdout:
            self._rich_table(headers, rows)
        else:
            self._plain_table(headers, rows)

    def _plain_table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
        for row in [headers, *rows]:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
            self.line("  ".join(cells).rstrip())

    def _rich_table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in rows:
            table.add_row(*row)
        Console(file=self.stdout).print(table)
