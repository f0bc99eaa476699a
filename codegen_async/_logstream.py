"""Reading a run's logs in order, each entry once, optionally following until the run ends."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

import anyio

from ._batched import Batched
from ._pagination import MAX_PAGE_SIZE
from .models import AgentRunLog

if TYPE_CHECKING:
    from ._polling import Poller
    from .resources.agent_runs import AgentRuns

__all__ = ["stream_logs"]


def stream_logs(
    runs: AgentRuns, run_id: int, *, follow: bool, poller: Callable[[], Poller]
) -> Batched[AgentRunLog]:
    """Page through the alpha logs endpoint from the oldest entry.

    Logs only grow, so the count read so far is the next `skip`. Without `follow` it stops
    at the end of what exists now; with `follow` it waits (the client's poll cadence,
    restarting at `first` whenever something new arrives) until a page shows the run
    terminal and every entry read.
    """
    return Batched(_log_pages(runs, run_id, follow=follow, poller=poller))


async def _log_pages(
    runs: AgentRuns, run_id: int, *, follow: bool, poller: Callable[[], Poller]
) -> AsyncGenerator[list[AgentRunLog], None]:
    policy = poller().policy
    interval = policy.first
    read = 0
    while True:
        page = await runs.logs_page(run_id, skip=read, limit=MAX_PAGE_SIZE)
        if page.logs:
            yield page.logs
        read += len(page.logs)
        total = read if page.total_logs is None else page.total_logs
        if page.logs and read < total:
            interval = policy.first
            continue  # more entries exist already
        terminal = page.status is not None and page.status.is_terminal
        if not follow or (terminal and not page.logs):
            return
        if terminal and read >= total:
            return
        await anyio.sleep(interval)
        interval = policy.first if page.logs else min(policy.maximum, interval * policy.factor)
