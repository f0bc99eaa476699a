"""What one invocation works with: the client (real API or an in-process Emulator), the
output, and the ids of the runs it created (printed if it is interrupted)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import attrs

from .._client import AsyncCodegen
from .._create import UnconfirmedCreate
from .._limits import RateLimits
from ._output import Output

if TYPE_CHECKING:
    from ..testing import Emulator

__all__ = ["Created", "Session", "make_emulator", "open_client"]


class Created:
    """Ids of the runs this invocation created: its own, and live lists it was handed
    (a fan-out's `created`)."""

    def __init__(self) -> None:
        self._ids: list[int] = []
        self._lists: list[list[int]] = []
        self.unconfirmed: list[UnconfirmedCreate] = []  # the client's, once it exists

    def add(self, run_id: int) -> None:
        self._ids.append(run_id)

    def watch(self, ids: list[int]) -> None:
        self._lists.append(ids)

    def ids(self) -> list[int]:
        every = [*self._ids, *(run_id for ids in self._lists for run_id in ids)]
        return list(dict.fromkeys(every))


@attrs.define
class Session:
    args: argparse.Namespace
    out: Output
    created: Created
    client: AsyncCodegen


def make_emulator(args: argparse.Namespace) -> Emulator:
    from ..testing import Emulator

    return Emulator(time_scale=args.emulator_time_scale, failure_rate=args.emulator_failure_rate)


@contextlib.asynccontextmanager
async def open_client(args: argparse.Namespace) -> AsyncIterator[AsyncCodegen]:
    """The client the options ask for; with --emulator, one bound to a fresh Emulator."""
    store = getattr(args, "rate_limit_store", None)  # --rate-limit-store, else the env's
    shared = None if store is None else RateLimits.documented().shared(store)
    if not args.emulator:
        client = AsyncCodegen(
            api_key=args.api_key, base_url=args.base_url, org_id=args.org_id, rate_limits=shared
        )
        async with client:
            yield client
        return
    async with make_emulator(args) as emu:
        options = emu.client_options()
        if store is not None:
            options["rate_limits"] = options["rate_limits"].shared(store)
        async with AsyncCodegen(**options) as client:
            yield client
