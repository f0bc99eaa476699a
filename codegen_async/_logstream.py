"""Reading a run's logs in order, each entry once, optionally following until the run ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol

import anyio

from . import _errors
from ._batched import Batched
from ._config import PollPolicy
from ._pagination import MAX_PAGE_SIZE
from .models import AgentRunLog, AgentRunWithLogs

__all__ = ["LogPages", "stream_logs"]


class LogPages(Protocol):
    """Where the pages of a run's logs come from (the client's `agent_runs`)."""

    async def logs_page(self, run_id: int, *, skip: int, limit: int) -> AgentRunWithLogs: ...


def stream_logs(
    runs: LogPages, run_id: int, *, follow: bool, policy: PollPolicy
) -> Batched[AgentRunLog]:
    """Page through the alpha logs endpoint from the oldest entry.

    Logs only grow, so the count read so far is the next `skip` (less one: each page
    re-reads the last entry, to check the server honours `skip`, and drops it; a server
    that does not is a `ResponseValidationError`, never an entry yielded twice). Without
    `follow` it stops at the end of what exists now; with `follow` it waits (the client's
    poll cadence, restarting at `first` whenever something new arrives) until a page shows
    the run terminal and every entry read.
    """
    return Batched(_log_pages(runs, run_id, follow=follow, policy=policy))


async def _log_pages(
    runs: LogPages, run_id: int, *, follow: bool, policy: PollPolicy
) -> AsyncGenerator[list[AgentRunLog], None]:
    interval = policy.first
    read = 0  # entries yielded: the position of the next one
    last: AgentRunLog | None = None  # the entry at position read - 1
    while True:
        # Each page after the first starts one entry early, at the last entry read: the
        # server must give it back unchanged (proof it honoured `skip`), and it is
        # dropped, so every position is yielded once.
        skip = read - 1 if last is not None else 0
        page = await runs.logs_page(run_id, skip=skip, limit=MAX_PAGE_SIZE)
        logs = page.logs
        if last is not None:
            if not logs or logs[0] != last:
                raise _errors.ResponseValidationError(
                    f"logs of agent run {run_id}: the page at skip={skip} does not start "
                    f"with entry {skip}, already read (the server ignores skip, or rewrote "
                    f"the log); stopped after {read} entries",
                    path="logs",
                )
            logs = logs[1:]
        if logs:
            yield logs
            read += len(logs)
            last = logs[-1]
        total = read if page.total_logs is None else page.total_logs
        if logs and read < total:
            interval = policy.first
            continue  # more entries exist already
        terminal = page.status is not None and page.status.is_terminal
        if not follow or terminal:
            return  # a page brought nothing new, or the run ended and all was read
        await anyio.sleep(interval)
        interval = policy.first if logs else min(policy.maximum, interval * policy.factor)
