"""CODEGEN_RATE_LIMIT_STORE with --emulator (issue 21.7): the variable names the shared
rate-limit store exactly as --rate-limit-store does (the flag wins), in a real SQLite
file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from codegen_async._stores import bucket_key
from codegen_async.cli import API_ERROR, OK, main
from codegen_async.testing import DEFAULT_API_KEY, IN_PROCESS_BASE_URL

ENV = "CODEGEN_RATE_LIMIT_STORE"
# The bucket the --emulator commands' creates draw from.
CREATE_BUCKET = bucket_key(IN_PROCESS_BASE_URL, DEFAULT_API_KEY, "create")


@pytest.fixture(autouse=True)
def _home(home: Path) -> Path:
    return home


def create_leases(path: Path) -> set[str]:
    """The leases the store holds in the emulator's create bucket: one per create, until
    it expires (on the emulator's fast clock, soon: a later take drops it)."""
    with sqlite3.connect(path) as db:
        query = "SELECT lease FROM codegen_leases WHERE bucket = ?"
        leases = {str(row[0]) for row in db.execute(query, (CREATE_BUCKET,))}
    db.close()
    return leases


def start_run(capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str]:
    code = main(["--emulator", "-q", *flags, "run", "Add type hints", "--no-wait"])
    return code, capsys.readouterr().err


def test_the_variable_names_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "limits.db"
    monkeypatch.setenv(ENV, f"sqlite:///{store}")
    assert start_run(capsys) == (OK, "")
    assert store.is_file()  # created
    first = create_leases(store)
    assert len(first) == 1  # and the create drew its token from it
    assert start_run(capsys) == (OK, "")
    assert create_leases(store) - first  # a second command draws from it too


def test_the_flag_wins_over_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from_env, from_flag = tmp_path / "env.db", tmp_path / "flag.db"
    monkeypatch.setenv(ENV, f"sqlite:///{from_env}")
    assert start_run(capsys, "--rate-limit-store", f"sqlite:///{from_flag}") == (OK, "")
    assert len(create_leases(from_flag)) == 1
    assert not from_env.exists()


def test_a_bad_variable_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(ENV, "sqlite:///relative/path.db")
    code, err = start_run(capsys)
    assert code == API_ERROR
    assert err.startswith("error: ")
    assert ENV in err
