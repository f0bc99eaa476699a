"""The run engine: what a client knows about runs beyond one request.

One engine per root client, made by its constructor and handed once to its `agent_runs`
and to every client derived from it (`with_options`, `as_curl`): the caller's user id
(read once), the one `Poller` that refreshes every awaited run, waits, `as_completed`,
log streams and fan-outs. Its own reads (a run, a page of runs, the caller) go through
the root client's pipeline, by the operation rows, like any resource's.

Below it: `_polling`, `_logstream`, `_fanout`, `_journal` and `_create`, which know nothing of
resources (they read through the small protocols they declare). Above it:
`resources/agent_runs`, which checks arguments and sends the creates, and the client.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import _operations as ops
from ._batched import Batched
from ._config import PollPolicy
from ._http import Pipeline
from ._logstream import LogPages, stream_logs
from ._polling import Poller
from ._resource import Organization, Resource
from .models import AgentRun, AgentRunLog, Page, SourceType

if TYPE_CHECKING:  # loaded on first use: a fan-out's modules, telemetry only when on
    from ._fanout import ProgressEvent, RunCreator, RunInput, RunMany, RunSpec
    from ._telemetry import Telemetry

__all__ = ["RunEngine"]


class RunEngine(Resource):
    """The caller, the poller, waits, log streams and fan-outs of one root client."""

    __slots__ = ("_caller_id", "_closed", "_poller", "policy", "telemetry")

    def __init__(
        self,
        http: Pipeline,
        org: Organization,
        policy: PollPolicy,
        telemetry: Telemetry | None,
    ) -> None:
        super().__init__(http, org)
        self.policy = policy
        self.telemetry = telemetry
        self._caller_id: int | None = None
        self._poller: Poller | None = None
        self._closed = False

    # -- reads (the poller's `RunSource`) ------------------------------------------------

    async def caller_id(self) -> int:
        """The id of the user the API key belongs to (read once)."""
        if self._caller_id is None:
            self._caller_id = (await self._call(ops.GET_CURRENT_USER_INFO)).id
        return self._caller_id

    async def get(self, run_id: int) -> AgentRun:
        return await self._call(ops.GET_AGENT_RUN, agent_run_id=run_id)

    async def list_page(
        self, *, user_id: int | None, source_type: SourceType | str | None, skip: int, limit: int
    ) -> Page[AgentRun]:
        params: dict[str, Any] = {"skip": skip, "limit": limit}
        if user_id is not None:
            params["user_id"] = user_id
        if source_type is not None:
            params["source_type"] = SourceType(source_type).value
        return await self._call(ops.LIST_AGENT_RUNS, params=params)

    # -- the poller and what it serves ---------------------------------------------------

    @property
    def poller(self) -> Poller:
        """The client's one poller (made on first use; none once the client is closed)."""
        if self._closed:
            raise RuntimeError("this AsyncCodegen is closed")
        if self._poller is None:
            self._poller = Poller(self, self.policy, telemetry=self.telemetry)
        return self._poller

    def close(self) -> None:
        self._closed = True

    def logs(self, pages: LogPages, run_id: int, *, follow: bool) -> Batched[AgentRunLog]:
        return stream_logs(pages, run_id, follow=follow, policy=self.policy)

    def run_many(
        self,
        runs: RunCreator,
        items: list[tuple[RunInput, RunSpec]],
        *,
        max_concurrency: int,
        timeout: float | None,
        fail_fast: bool,
        on_progress: Callable[[ProgressEvent], object] | None,
        journal: str | os.PathLike[str] | None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunMany:
        """A fan-out whose creates go through `runs` (the calling client's `agent_runs`),
        journaled at `journal` (a path) for this client's base URL, organization and user."""
        from ._fanout import RunMany
        from ._journal import Caller, key_digest, open_journal

        settings = self._http.settings
        caller = Caller(
            settings.base_url,
            key_digest(settings.base_url, settings.api_key),
            self._org.organization_id,
            self.caller_id,
        )
        return RunMany(
            runs,
            self.poller,
            items,
            max_concurrency=max_concurrency,
            timeout=timeout,
            fail_fast=fail_fast,
            on_progress=on_progress,
            metadata=metadata,
            journal=open_journal(journal, caller),
        )
