"""Helpers for tests of the command line as a person sees it: a real pseudo-terminal,
and reading a subprocess's output up to a marker."""

from __future__ import annotations

import os
import select
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def env_for(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEGEN_")}
    env.update(
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "cache"),
        CODEGEN_EMULATOR_TIME_SCALE="0.002",
        **extra,
    )
    return env


def in_terminal(home: Path, *argv: str, columns: int = 160, timeout: float = 30) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a real pseudo-terminal of `columns`
    columns; returns its exit code and everything it drew."""
    import fcntl
    import termios

    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "codegen_async", *argv],
        env=env_for(home, TERM="xterm-256color", COLUMNS=str(columns), LINES="40"),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
    )
    os.close(terminal)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # the terminal closed: the process ended
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.wait()
        os.close(controller)
    return code, b"".join(chunks).decode("utf-8", "replace")


def read_until(stream: Any, marker: str, deadline: float) -> str:
    """What `stream` printed until `marker` (lines read one by one, within `deadline`)."""
    seen = ""
    while marker not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{marker!r} not seen in time; got {seen!r}")
        line = stream.readline()
        if not line:
            raise AssertionError(f"stream ended before {marker!r}; got {seen!r}")
        seen += line
    return seen


def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """`codegen-async ARGV` in this process (`capsys`: pytest's fixture): the exit code,
    stdout and stderr."""
    from codegen_async.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
