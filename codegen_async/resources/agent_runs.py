"""Agent runs: create, read, list, resume, logs, and waiting for them to finish."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from .. import _operations as ops
from .. import _validate
from .._config import CreatePolicy
from .._constants import IDEMPOTENCY_METADATA_KEY
from .._create import UnconfirmedCreate, create_exactly_once, new_idempotency_key
from .._engine import RunEngine
from .._http import Pipeline
from .._pagination import MAX_PAGE_SIZE, check_page_args, paginate
from .._resource import Organization, Resource
from .._runspec import RunSpec, create_body
from ..models import AgentRun, AgentRunLog, AgentRunWithLogs, AgentType, Page, SourceType

__all__ = ["AgentRuns", "run_id_of"]


def run_id_of(run: AgentRun | int) -> int:
    """The id of a run given as a model or an id."""
    if isinstance(run, AgentRun):
        return run.id
    return _validate.positive_int("run_id", run)


def _source_type(value: SourceType | str) -> SourceType:
    """A source type the API lists (its value in any case); an unknown one is refused."""
    return _validate.enum_member("source_type", value, SourceType)


class AgentRuns(Resource):
    __slots__ = ("_engine", "create_policy", "unconfirmed_creates")

    create_policy: CreatePolicy
    unconfirmed_creates: list[UnconfirmedCreate]

    def __init__(
        self,
        http: Pipeline,
        org: Organization,
        engine: RunEngine,
        create_policy: CreatePolicy,
    ) -> None:
        super().__init__(http, org)
        self._engine = engine  # the root client's: its poller, caller id, log streams
        self.create_policy = create_policy
        # Creates whose outcome stayed unknown (cancelled, or AmbiguousCreateError).
        self.unconfirmed_creates: list[UnconfirmedCreate] = []

    async def create(
        self,
        prompt: str,
        *,
        repo_id: int | None = None,
        model: str | None = None,
        agent_type: AgentType | None = None,
        metadata: Mapping[str, Any] | None = None,
        images: Iterable[str] | None = None,
        idempotency_key: str | None = None,
    ) -> AgentRun:
        """Start an agent run on `prompt`; returns at once with the new run (usually PENDING).

        Exactly once: the run's `metadata` carries a client token (`idempotency_key`,
        generated when not given) under the key `codegen_sdk_idempotency_key`; after a
        failure that leaves the outcome unknown, the run is looked up by that token before
        anything is posted again. `AmbiguousCreateError` if that stays undecided.
        """
        spec = RunSpec(
            prompt,
            repo_id=repo_id,
            model=model,
            agent_type=agent_type,
            metadata=metadata,
            images=images,
        )
        return await self.create_spec(spec, idempotency_key=idempotency_key)

    async def create_spec(self, spec: RunSpec, *, idempotency_key: str | None = None) -> AgentRun:
        """Start the run `spec` describes; the same as `create` with the spec's fields."""
        body = create_body(spec)
        key = new_idempotency_key() if idempotency_key is None else idempotency_key
        body["metadata"][IDEMPOTENCY_METADATA_KEY] = _validate.text("idempotency_key", key)
        org_id = await self._org_id()

        def post(on_send: Callable[[], None]) -> Awaitable[AgentRun]:
            return self._call(ops.CREATE_AGENT_RUN, json_body=body, on_send=on_send, org_id=org_id)

        return await create_exactly_once(
            post,
            lambda: self.find_by_idempotency_key(key),
            key,
            self.create_policy,
            self.unconfirmed_creates,
        )

    async def find_by_idempotency_key(
        self, idempotency_key: str, *, max_pages: int = 3, since: datetime.datetime | None = None
    ) -> AgentRun | None:
        """The caller's recent API run created with `idempotency_key`, if any.

        Reads the newest-first list of the caller's API runs, at most `max_pages` pages;
        with `since` (an aware datetime), only runs created at or after it: the reading
        stops at the first older one.
        """
        if since is not None:
            _validate.aware_datetime("since", since)
        user_id = await self._engine.caller_id()
        for skip in range(0, max_pages * MAX_PAGE_SIZE, MAX_PAGE_SIZE):
            page = await self.list_page(
                user_id=user_id, source_type=SourceType.API, skip=skip, limit=MAX_PAGE_SIZE
            )
            for run in page.items:
                if (run.metadata or {}).get(IDEMPOTENCY_METADATA_KEY) == idempotency_key:
                    return run
                if since is not None and run.created_at is not None and run.created_at < since:
                    return None
            if skip + len(page.items) >= page.total or not page.items:
                return None
        return None

    async def get(self, run_id: int) -> AgentRun:
        """The run as it is now."""
        run_id = _validate.positive_int("run_id", run_id)
        return await self._call(ops.GET_AGENT_RUN, agent_run_id=run_id)

    async def list_page(
        self,
        *,
        user_id: int | None = None,
        source_type: SourceType | str | None = None,
        skip: int = 0,
        limit: int = MAX_PAGE_SIZE,
    ) -> Page[AgentRun]:
        """One page of the organization's runs, newest first."""
        check_page_args(skip, limit)
        params: dict[str, Any] = {"skip": skip, "limit": limit}
        if user_id is not None:
            params["user_id"] = _validate.positive_int("user_id", user_id)
        if source_type is not None:
            params["source_type"] = _source_type(source_type).value
        return await self._call(ops.LIST_AGENT_RUNS, params=params)

    def list(
        self, *, user_id: int | None = None, source_type: SourceType | str | None = None
    ) -> AsyncIterator[AgentRun]:
        """Every run of the organization, newest first, each once."""
        if user_id is not None:
            _validate.positive_int("user_id", user_id)
        if source_type is not None:
            source_type = _source_type(source_type)
        return paginate(
            lambda skip, limit: self.list_page(
                user_id=user_id, source_type=source_type, skip=skip, limit=limit
            ),
            key=lambda run: run.id,
        )

    async def resume(
        self, run_id: int, prompt: str, *, images: Iterable[str] | None = None
    ) -> AgentRun:
        """Send a finished or paused run a new prompt; it runs again."""
        body: dict[str, Any] = {
            "agent_run_id": _validate.positive_int("run_id", run_id),
            "prompt": _validate.text("prompt", prompt),
        }
        if images is not None:
            body["images"] = _validate.data_uris(images)
        return await self._call(ops.RESUME_AGENT_RUN, json_body=body)

    async def ban_checks(self, run_id: int) -> Any:
        """Stop processing CI check events for the run's PR, and stop its agents."""
        return await self._stop(ops.BAN_ALL_CHECKS_FOR_AGENT_RUN, run_id)

    async def unban_checks(self, run_id: int) -> Any:
        """Process CI check events for the run's PR again."""
        return await self._stop(ops.UNBAN_ALL_CHECKS_FOR_AGENT_RUN, run_id)

    async def remove_from_pr(self, run_id: int) -> Any:
        """Remove Codegen from the run's PR (same effect as `ban_checks`)."""
        return await self._stop(ops.REMOVE_CODEGEN_FROM_PR, run_id)

    async def _stop(self, op: ops.Operation[Any], run_id: int) -> Any:
        body = {"agent_run_id": _validate.positive_int("run_id", run_id)}
        return await self._call(op, json_body=body)

    async def logs_page(
        self, run_id: int, *, skip: int = 0, limit: int = MAX_PAGE_SIZE, reverse: bool = False
    ) -> AgentRunWithLogs:
        """The run with one page of its logs (oldest first unless `reverse`)."""
        run_id = _validate.positive_int("run_id", run_id)
        check_page_args(skip, limit)
        _validate.strict_bool("reverse", reverse)
        return await self._call(
            ops.GET_AGENT_RUN_LOGS,
            params={"skip": skip, "limit": limit, "reverse": "true" if reverse else "false"},
            agent_run_id=run_id,
        )

    def logs(self, run_id: int, *, follow: bool = False) -> AsyncIterator[AgentRunLog]:
        """Every log entry of the run, oldest first, each once.

        With `follow=True`, keeps reading new entries as they appear until the run is
        terminal and every entry has been read.
        """
        run_id = _validate.positive_int("run_id", run_id)
        _validate.strict_bool("follow", follow)
        return self._engine.logs(self, run_id, follow=follow)

    async def wait(
        self,
        run: AgentRun | int,
        *,
        timeout: float | None = None,
        raise_on_failure: bool = False,
        on_update: Callable[[AgentRun], object] | None = None,
    ) -> AgentRun:
        """Wait until the run is terminal and return it, without blocking the event loop.

        Every awaited run of the client is refreshed by one shared poller, within the
        rate limits. `timeout` (seconds) covers the whole wait: `WaitTimeoutError` carries
        the last snapshot. A run that ends without succeeding is returned, or raised as
        `AgentRunFailedError` with `raise_on_failure=True`. `on_update` is called with each
        new snapshot whose status changed.
        """
        _validate.timeout("timeout", timeout)
        _validate.strict_bool("raise_on_failure", raise_on_failure)
        _validate.callback("on_update", on_update)
        return await self._engine.poller.wait(
            run, timeout=timeout, raise_on_failure=raise_on_failure, on_update=on_update
        )

    def as_completed(
        self, runs: Iterable[AgentRun | int], *, timeout: float | None = None
    ) -> AsyncIterator[AgentRun]:
        """Yield each run once, as it reaches a terminal status (`timeout` covers them all)."""
        _validate.timeout("timeout", timeout)
        return self._engine.poller.as_completed(runs, timeout=timeout)
