"""`--emulator` across commands: the emulated API's runs live in a state file, so
`codegen-async --emulator run ... --no-wait` then `--emulator runs get ID` and
`--emulator runs list` see the same runs.

The file is `$XDG_CACHE_HOME/codegen-async/emulator.json` (default `~/.cache/...`);
`--emulator-reset` deletes it. One command uses it at a time (an advisory lock on a
sidecar `.lock` file, where the platform has `fcntl`). The state is written back after
every request that changed it, before its answer reaches the command (a command killed
with `kill -9` loses nothing it was told about), and again when the command ends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

from . import _exit
from ._output import Output

if TYPE_CHECKING:
    from ..testing import Emulator

__all__ = ["emulator_session", "make_emulator", "reset_state", "state_path"]

_RESET_HINT = "run with --emulator-reset to start from an empty emulator"


def state_path() -> Path:
    """Where `--emulator` keeps its runs."""
    cache = os.environ.get("XDG_CACHE_HOME") or ""
    base = Path(cache) if os.path.isabs(cache) else Path.home() / ".cache"
    return base / "codegen-async" / "emulator.json"


def make_emulator(args: argparse.Namespace) -> Emulator:
    from ..testing import Emulator

    return Emulator(time_scale=args.emulator_time_scale, failure_rate=args.emulator_failure_rate)


def reset_state(out: Output) -> None:
    """Delete the state file (`--emulator-reset`)."""
    path = state_path()
    with _locked(path, out):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _exit.CliError(f"cannot delete {path}: {exc.strerror}", _exit.API_ERROR) from None
    out.note(f"emulator state cleared ({path})")


class _SavingTransport(httpx.AsyncBaseTransport):
    """The Emulator in process, its state saved after each request that may change it."""

    def __init__(self, emu: Emulator, path: Path) -> None:
        self._inner = emu.transport()
        self._emu = emu
        self._path = path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)  # the app has answered
        if request.method != "GET":
            from ..testing._persist import dump

            _write(self._path, dump(self._emu))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


@contextlib.contextmanager
def emulator_session(
    args: argparse.Namespace, out: Output
) -> Iterator[tuple[Emulator, dict[str, Any]]]:
    """An Emulator holding the runs of earlier `--emulator` commands, and the client
    options that reach it (their `http_client` saves the state as it changes: the caller
    closes it); saved again on exit."""
    from ..testing._persist import dump, load

    path = state_path()
    with _locked(path, out):
        emu = make_emulator(args)
        data = _read(path)
        if data is not None:
            try:
                load(emu, data)
            except ValueError as exc:
                raise _exit.CliError(
                    f"the emulator state file {path} is not valid: {exc}",
                    _exit.API_ERROR,
                    hint=_RESET_HINT,
                ) from None
        options = emu.client_options()
        options["http_client"] = httpx.AsyncClient(
            transport=_SavingTransport(emu, path), base_url=str(options["http_client"].base_url)
        )
        try:
            yield emu, options
        finally:
            _write(path, dump(emu))


def _read(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _exit.CliError(
            f"cannot read the emulator state file {path}: {exc}", _exit.API_ERROR, hint=_RESET_HINT
        ) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _exit.CliError(
            f"the emulator state file {path} is not valid JSON ({exc})",
            _exit.API_ERROR,
            hint=_RESET_HINT,
        ) from None


def _write(path: Path, data: object) -> None:
    """Replace the file atomically (a crash leaves the old state or the new one)."""
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".emulator-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file, ensure_ascii=False, separators=(",", ":"))
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as exc:
        raise _exit.CliError(
            f"cannot save the emulator state to {path}: {exc}", _exit.API_ERROR
        ) from None


@contextlib.contextmanager
def _locked(path: Path, out: Output) -> Iterator[None]:
    """Hold the state's lock; say so when another command holds it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock: IO[bytes] = open(path.with_name(path.name + ".lock"), "ab")  # noqa: SIM115
    except OSError as exc:
        raise _exit.CliError(
            f"cannot use the emulator state directory {path.parent}: {exc.strerror}",
            _exit.API_ERROR,
        ) from None
    with lock:
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            yield
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            out.note("waiting for another `codegen-async --emulator` command to finish...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
