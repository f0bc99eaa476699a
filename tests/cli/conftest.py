"""What the command-line tests share."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A user with no key and an emulator state of their own (for in-process main())."""
    for name in list(os.environ):
        if name.startswith("CODEGEN_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CODEGEN_EMULATOR_TIME_SCALE", "0.002")
    return tmp_path
