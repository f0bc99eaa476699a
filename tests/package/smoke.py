"""The package as users get it: run by `nox -s package` with the interpreter of a fresh
virtual environment that holds only the built wheel (and its `cli` extra), from a folder
outside the repository. Not a pytest module: `python smoke.py REPOSITORY`.

It checks that both packages are imported from that environment (not from the
repository), that each ships its `py.typed`, makes an async call and a sync call (both
against the Emulator the wheel ships), and runs the installed `codegen-async --help`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio

import codegen_async
import codegen_sync
from codegen_async import AsyncCodegen
from codegen_async.testing import Emulator
from codegen_sync import Codegen
from codegen_sync.testing import Emulator as SyncEmulator

REPOSITORY = Path(sys.argv[1]).resolve()


def check_installed() -> None:
    for entry in sys.path:
        resolved = Path(entry or os.getcwd()).resolve()
        assert resolved != REPOSITORY, f"the repository is on sys.path: {sys.path}"
    for module in (codegen_async, codegen_sync):
        path = Path(str(module.__file__)).resolve()
        assert REPOSITORY not in path.parents, f"{module.__name__} from the repository: {path}"
        assert "site-packages" in path.parts, f"{module.__name__} not installed: {path}"
        assert (path.parent / "py.typed").is_file(), f"{module.__name__} has no py.typed"


async def async_call() -> None:
    async with (
        Emulator(time_scale=0.001) as emu,
        AsyncCodegen(**emu.client_options()) as client,
    ):
        run = await client.run("Write the release notes")
        assert run.succeeded, run
        assert emu.counters.runs_created == 1


def sync_call() -> None:
    with SyncEmulator(time_scale=0.001) as emu, Codegen(**emu.client_options()) as client:
        run = client.run("Write the release notes")
        assert run.succeeded, run
        me = client.users.me()
        assert me.id > 0


def cli_help() -> None:
    script = Path(sys.executable).parent / "codegen-async"
    done = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "usage: codegen-async" in done.stdout, done.stdout


if __name__ == "__main__":
    check_installed()
    anyio.run(async_call)
    sync_call()
    cli_help()
    print(f"smoke: codegen-async {codegen_async.__version__} from {codegen_async.__file__}: ok")
