"""What one invocation works with: the client (real API or an in-process Emulator), the
output, and the ids of the runs it created (printed if it is interrupted)."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator

import attrs

from .._client import AsyncCodegen
from .._config import RateLimits
from .._create import UnconfirmedCreate
from .._settings import ENV_RATE_LIMIT_STORE
from ._emulated import emulator_session
from ._output import Output

__all__ = ["Created", "Session", "open_client", "rate_limit_store"]


class Created:
    """Ids of the runs this invocation created: its own, and live lists it was handed
    (a fan-out's `created`)."""

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._lists: list[list[int]] = []
        self._ended: set[int] = set()
        self.unconfirmed: list[UnconfirmedCreate] = []  # the client's, once it exists
        self.resume_hint: str | None = None  # how to resume (a journaled batch)

    def add(self, run_id: int) -> None:
        self._ids.append(run_id)

    def ended(self, run_id: int) -> None:
        """The run reached a terminal status: no longer "still running"."""
        self._ended.add(run_id)

    def watch(self, ids: list[int]) -> None:
        self._lists.append(ids)

    def ids(self) -> list[int]:
        every = [*self._ids, *(run_id for ids in self._lists for run_id in ids)]
        return list(dict.fromkeys(every))

    def running(self) -> list[int]:
        """The created runs not seen to end."""
        return [run_id for run_id in self.ids() if run_id not in self._ended]

    def finished(self) -> list[int]:
        """The created runs seen to end."""
        return [run_id for run_id in self.ids() if run_id in self._ended]


@attrs.define
class Session:
    args: argparse.Namespace
    out: Output
    created: Created
    client: AsyncCodegen


def rate_limit_store(args: argparse.Namespace) -> str | None:
    """The store URL of --rate-limit-store, else of CODEGEN_RATE_LIMIT_STORE (checked by
    the same rule: a bad one is a `ConfigurationError` naming the variable), else None."""
    flag: str | None = getattr(args, "rate_limit_store", None)
    if flag is not None:
        return flag
    text = os.environ.get(ENV_RATE_LIMIT_STORE, "")
    if not text:
        return None
    from .._stores import check_store_url  # lazily: the stores import redis and sqlite3

    return check_store_url(text, ENV_RATE_LIMIT_STORE)


@contextlib.asynccontextmanager
async def open_client(args: argparse.Namespace, out: Output) -> AsyncIterator[AsyncCodegen]:
    """The client the options ask for; with --emulator, one bound to the Emulator that
    keeps the runs of earlier --emulator commands (`_emulated`). Both share rate limits
    through the store `rate_limit_store` names."""
    store = rate_limit_store(args)
    shared = None if store is None else RateLimits.documented().shared(store)
    if not args.emulator:
        client = AsyncCodegen(
            api_key=args.api_key, base_url=args.base_url, org_id=args.org_id, rate_limits=shared
        )
        async with client:
            yield client
        return
    with emulator_session(args, out) as (emu, options):
        if store is not None:
            options["rate_limits"] = options["rate_limits"].shared(store)
        async with emu, options["http_client"], AsyncCodegen(**options) as client:
            yield client
