"""Where the command line writes: results on stdout (tables, text or one JSON document),
progress and errors on stderr.

Everything that comes from a user or from the server is shown as text, never read as
markup: rich gets `Text` objects (square brackets, `:emoji:` names stay as typed), and
control characters (C0 and C1, ANSI escapes included) and bidi controls are shown
escaped (`\\x1b`, `\\x9b`, `\\u202e`), so a prompt or a result cannot restyle, move
or reorder the terminal. JSON output escapes the same characters (`\\u009b`,
`\\u202e`): it holds none of them raw, and parses back to the same strings. Tables
are drawn with rich when stdout is a terminal and rich is installed, else as aligned
plain text (columns measured in terminal cells, so wide characters line up).
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from .._convert import unstructure

__all__ = ["Column", "Output", "cell_width", "json_text", "rich_available", "safe", "to_json"]

Column = tuple[str, Callable[[Any], object]]

# The characters that reorder text on a terminal (Unicode's Bidi_Control): the Arabic
# letter mark, LRM/RLM, the embeddings and overrides (LRE..RLO), the isolates (LRI..PDI).
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# Shown escaped on a terminal: C0 controls but newline and tab, DEL, C1 controls, bidi.
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
# Escaped in JSON beyond what `json.dumps` escapes itself (C0): DEL, C1, bidi.
_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{_BIDI}]")


def rich_available() -> bool:
    return importlib.util.find_spec("rich") is not None


def to_json(value: object) -> Any:
    """Models (attrs classes) as JSON-able data, through the package's converter."""
    return unstructure(value)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def safe(text: str) -> str:
    """`text` with control and bidi characters shown as escapes (`\\x1b`, `\\x9b`,
    `\\u202e`): a terminal prints it as it is, and it cannot move the cursor, change
    colours or reorder what follows."""
    return _CONTROL.sub(_escape, text)


def json_text(data: object, *, indent: int | None = None) -> str:
    """`data` as JSON (non-ASCII text kept readable) holding no raw control or bidi
    character: those are `\\u` escapes, so the JSON parses back to the same strings."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, default=str)
    # Outside strings JSON is ASCII: every match is inside a string, where \\uXXXX is
    # the same character.
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def cell_width(text: str) -> int:
    """Terminal cells `text` takes: wide (East Asian) characters 2, combining ones 0."""
    width = 0
    for char in text:
        if unicodedata.combining(char):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(getattr(value, "value", value))
    return safe(" ".join(text.splitlines()))


def _pad(text: str, width: int) -> str:
    return text + " " * (width - cell_width(text))


def console(stream: TextIO) -> Any:
    """A rich Console on `stream` that never interprets what it prints."""
    from rich.console import Console

    return Console(file=stream, markup=False, emoji=False, highlight=False)


class Output:
    """The command's streams and its mode (`--json` or human)."""

    def __init__(
        self,
        *,
        json_mode: bool,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        emulated: bool = False,
    ) -> None:
        self.json_mode = json_mode
        self.emulated = emulated  # talking to the in-process emulator (its own clock)
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr

    @property
    def rich_stdout(self) -> bool:
        return _is_terminal(self.stdout) and rich_available()

    @property
    def rich_stderr(self) -> bool:
        return self.stderr_is_terminal and rich_available()

    @property
    def stderr_is_terminal(self) -> bool:
        return _is_terminal(self.stderr)

    def line(self, text: str = "") -> None:
        """A line of human output on stdout (control characters escaped)."""
        self.stdout.write(safe(text) + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        """A line for the person at the terminal, on stderr (also in --json mode)."""
        self.stderr.write(safe(text) + "\n")
        self.stderr.flush()

    def error(self, message: str, *, hint: str | None = None, **details: object) -> None:
        """An error: `error: ...` (and a `hint: ...` line), or under --json one JSON
        object on stderr with `type`, `message`, `status`, `request_id`, `hint`."""
        if self.json_mode:
            data = {"error": True, "message": message, **details, "hint": hint}
            self.stderr.write(json_text(data) + "\n")
            self.stderr.flush()
            return
        self.note(f"error: {message}")
        if hint:
            self.note(f"hint: {hint}")

    def document(self, data: object) -> None:
        """The one JSON document of a --json command."""
        self.stdout.write(json_text(data, indent=2) + "\n")
        self.stdout.flush()

    def json_line(self, data: object) -> None:
        """One line of an NDJSON stream (--json with --follow), flushed at once."""
        self.stdout.write(json_text(data) + "\n")
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
        """Cells are shown as given (escaped, never read as markup)."""
        if self.rich_stdout:
            self._rich_table(headers, rows)
        else:
            self._plain_table(headers, rows)

    def _plain_table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        every = [[safe(cell) for cell in row] for row in [headers, *rows]]
        widths = [max(cell_width(row[i]) for row in every) for i in range(len(headers))]
        for row in every:
            cells = [_pad(cell, width) for cell, width in zip(row, widths, strict=True)]
            self.line("  ".join(cells).rstrip())

    def _rich_table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        from rich.table import Table
        from rich.text import Text

        table = Table(*headers, box=None, header_style="bold", pad_edge=False)
        for row in rows:
            table.add_row(*(Text(safe(cell)) for cell in row))
        console(self.stdout).print(table)
