"""Facts the repository writes in more than one file because each tool reads its own:
they must agree."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import codegen_async
from codegen_async._version import __version__

ROOT = Path(__file__).resolve().parents[2]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - 3.10
    tomllib = pytest.importorskip("tomli")


def _ruff_pins() -> dict[str, str]:
    noxfile = re.search(r'RUFF = "ruff==([\d.]+)"', (ROOT / "noxfile.py").read_text())
    hook = re.search(
        r"ruff-pre-commit\s+rev: v([\d.]+)", (ROOT / ".pre-commit-config.yaml").read_text()
    )
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "dev"
    ]
    pinned = [d.split("==")[1] for d in dev if d.startswith("ruff==")]
    assert noxfile is not None
    assert hook is not None
    assert len(pinned) == 1
    return {"noxfile": noxfile[1], "pre-commit": hook[1], "dev extra": pinned[0]}


def test_one_ruff_everywhere() -> None:
    pins = _ruff_pins()
    assert len(set(pins.values())) == 1, pins


def test_the_version_is_written_once() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "codegen_async/_version.py"
    assert codegen_async.__version__ is __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+|\.dev\d+)?", __version__)
