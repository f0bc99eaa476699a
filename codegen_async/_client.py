"""AsyncCodegen: settings, the request pipeline, the resources and the high-level jobs."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import httpx

from . import _errors, _validate
from . import _operations as ops
from ._config import CreatePolicy, PollPolicy, RateLimits, RateLimitStatus
from ._curl import Capture, to_curl
from ._engine import RunEngine
from ._http import APIResponse, Pipeline, Request
from ._limits import RateClass
from ._logging import configure_from_env
from ._ratelimit import RateLimiter
from ._runspec import RunSpec
from ._settings import Settings, Timeout, resolve_settings
from ._stack import HTTPClient, stack_for
from ._validate import redact_url
from .models import AgentRun, AgentType, HealthCheck
from .resources import (
    AgentRuns,
    CLIRulesResource,
    Functions,
    Integrations,
    MCPProviders,
    OAuth,
    Organizations,
    PullRequests,
    Repositories,
    Sandbox,
    SetupCommands,
    SlackConnect,
    Users,
)

if TYPE_CHECKING:  # loaded on first use (see `_traced` and the fan-out methods)
    from ._fanout import ProgressEvent, RunMany
    from ._outcome import RunOutcome
    from ._synthesis import MultiRunResult
    from ._telemetry import Telemetry

__all__ = ["AsyncCodegen"]


class _Shared:
    """What a root client and every client derived from it share: the connections (the
    root's pipeline), the rate limiter, the run engine, the organization, the policies.
    The root client owns it: closing the root closes it."""

    __slots__ = (
        "_org_lock",
        "_organizations",
        "create_policy",
        "engine",
        "http",
        "limiter",
        "org_id",
        "poll_policy",
        "rate_limits",
        "telemetry",
    )

    def __init__(
        self,
        settings: Settings,
        http_client: HTTPClient | None,
        rate_limits: RateLimits,
        poll_policy: PollPolicy,
        create_policy: CreatePolicy | None,
    ) -> None:
        self.rate_limits = rate_limits
        self.poll_policy = poll_policy
        self.create_policy = create_policy
        self.telemetry: Telemetry | None = None
        if settings.tracing:  # else `_telemetry` is never imported
            from ._telemetry import load

            self.telemetry = load(True, settings.base_url)
        self.limiter = RateLimiter(rate_limits, identity=(settings.base_url, settings.api_key))
        self.http = Pipeline(
            settings, limiter=self.limiter, http_client=http_client, telemetry=self.telemetry
        )
        self.org_id: int | None = settings.org_id
        self._org_lock = anyio.Lock()
        self._organizations = Organizations(self.http, self)
        self.engine = RunEngine(self.http, self, poll_policy, self.telemetry)

    async def organization_id(self) -> int:
        """As configured, else the caller's first organization (read once)."""
        if self.org_id is not None:
            return self.org_id
        async with self._org_lock:
            if self.org_id is None:
                page = await self._organizations.list_page(limit=1)
                if not page.items:
                    raise _errors.ConfigurationError(
                        "org_id: not given (argument, CODEGEN_ORG_ID, config file) and the "
                        "API key belongs to no organization"
                    )
                self.org_id = page.items[0].id
        return self.org_id

    async def aclose(self) -> None:
        self.engine.close()
        await self.http.aclose()
        await self.limiter.aclose()


class AsyncCodegen:
    """The async client of the Codegen Developer API.

    Settings come from the arguments, else the environment (`CODEGEN_API_KEY`, ...), else
    `~/.config/codegen-sh/auth.json`, else the defaults; see the README's table. Use it as
    `async with AsyncCodegen() as client:` or call `await client.aclose()` when done.

    `max_response_bytes` (else env `CODEGEN_MAX_RESPONSE_BYTES`, default 8 MiB) caps what
    a response body may decode to: a larger success raises `ResponseValidationError`.
    `max_request_bytes` (else env `CODEGEN_MAX_REQUEST_BYTES`, default 1 MiB, below
    `max_response_bytes`) caps what a request body may encode to: a larger one raises
    `ValueError` before anything is sent.
    """

    agent_runs: AgentRuns
    users: Users
    organizations: Organizations
    repositories: Repositories
    integrations: Integrations
    setup_commands: SetupCommands
    sandbox: Sandbox
    pull_requests: PullRequests
    oauth: OAuth
    mcp_providers: MCPProviders
    cli_rules: CLIRulesResource
    slack_connect: SlackConnect
    functions: Functions
    rate_limits: RateLimits
    poll_policy: PollPolicy

    def __init__(
        self,
        api_key: str | None = None,
        org_id: int | str | None = None,
        base_url: str | None = None,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
        http_client: HTTPClient | None = None,
        rate_limits: RateLimits | None = None,
        poll_policy: PollPolicy | None = None,
        create_policy: CreatePolicy | None = None,
        *,
        max_response_bytes: int | None = None,
        max_request_bytes: int | None = None,
        tracing: bool | None = None,
    ) -> None:
        """`tracing=False` (or env CODEGEN_TRACING=0) keeps the client silent to
        OpenTelemetry; by default it reports spans and metrics whenever
        `opentelemetry-api` is installed (see the README's "Tracing and metrics")."""
        if http_client is not None:
            stack_for(http_client)  # checked before anything else is resolved
        if rate_limits is not None and not isinstance(rate_limits, RateLimits):
            raise TypeError(f"rate_limits must be a RateLimits, got {type(rate_limits).__name__}")
        if poll_policy is not None and not isinstance(poll_policy, PollPolicy):
            raise TypeError(f"poll_policy must be a PollPolicy, got {type(poll_policy).__name__}")
        if create_policy is not None and not isinstance(create_policy, CreatePolicy):
            raise TypeError(
                f"create_policy must be a CreatePolicy, got {type(create_policy).__name__}"
            )
        settings = resolve_settings(
            api_key=api_key,
            org_id=org_id,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            max_response_bytes=max_response_bytes,
            max_request_bytes=max_request_bytes,
            tracing=tracing,
        )
        configure_from_env()
        shared = _Shared(
            settings,
            http_client,
            RateLimits.documented().shared(settings.rate_limit_store)
            if rate_limits is None
            else rate_limits,
            PollPolicy() if poll_policy is None else poll_policy,
            create_policy,
        )
        self._build(shared, settings, shared.http, root=True)

    @classmethod
    def _derived(cls, shared: _Shared, settings: Settings, http: Pipeline) -> AsyncCodegen:
        """A client on `shared` (another's connections, limiter, engine, organization)
        with its own settings and pipeline; closing it closes nothing shared."""
        client = cls.__new__(cls)
        client._build(shared, settings, http, root=False)
        return client

    def _build(self, shared: _Shared, settings: Settings, http: Pipeline, *, root: bool) -> None:
        self._shared = shared
        self._settings = settings
        self._http = http
        self._root = root
        self._closed = False
        self.rate_limits = shared.rate_limits
        self.poll_policy = shared.poll_policy
        org = shared  # resources ask it for the organization's id
        create_policy = shared.create_policy or CreatePolicy(grace=shared.poll_policy.first * 2 / 3)
        create_policy = create_policy.resolved(
            call_timeout=http.deadline, max_retries=settings.max_retries
        )
        self.agent_runs = AgentRuns(http, org, shared.engine, create_policy)
        self.users = Users(http, org)
        self.organizations = Organizations(http, org)
        self.repositories = Repositories(http, org)
        self.integrations = Integrations(http, org)
        self.setup_commands = SetupCommands(http, org)
        self.sandbox = Sandbox(http, org)
        self.pull_requests = PullRequests(http, org)
        self.oauth = OAuth(http, org)
        self.mcp_providers = MCPProviders(http, org)
        self.cli_rules = CLIRulesResource(http, org)
        self.slack_connect = SlackConnect(http, org)
        self.functions = Functions(http, org)

    def __repr__(self) -> str:
        # Never raises, also on a client whose __init__ failed half-way (tracebacks that
        # show locals call it); a password in the base URL is masked.
        settings = getattr(self, "_settings", None)
        url = "?" if settings is None else repr(redact_url(settings.base_url))
        shared = getattr(self, "_shared", None)
        org = None if shared is None else shared.org_id
        closed = getattr(self, "_closed", None)
        return f"<AsyncCodegen base_url={url} org_id={org!r} closed={closed}>"

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    @property
    def settings(self) -> Settings:
        """The resolved settings (the key is never shown in their repr)."""
        return self._settings

    async def organization_id(self) -> int:
        """The organization this client works in: as configured, else the caller's first."""
        return await self._shared.organization_id()

    def with_options(
        self,
        *,
        timeout: float | Timeout | None = None,
        max_retries: int | None = None,
        headers: Mapping[str, str] | None = None,
        on_response: Callable[[APIResponse], object] | None = None,
    ) -> AsyncCodegen:
        """A client with another timeout, retry count or extra headers that shares this
        one's connections, rate limiter, poller and organization.

        `on_response` is called with each successful response of the derived client
        (`status_code`, `headers`, `request_id`, `retries` taken, `elapsed`): the raw
        response of any call. Closing the derived client closes nothing shared.
        """
        settings = resolve_settings(
            api_key=self._settings.api_key,
            org_id=self._settings.org_id,
            base_url=self._settings.base_url,
            timeout=self._settings.timeout if timeout is None else timeout,
            max_retries=self._settings.max_retries if max_retries is None else max_retries,
            user_agent=self._settings.user_agent,
            max_response_bytes=self._settings.max_response_bytes,
            max_request_bytes=self._settings.max_request_bytes,
            tracing=self._settings.tracing,
        )
        _validate.callback("on_response", on_response)
        _check_headers(headers)
        http = self._http.derive(settings, extra_headers=headers, on_response=on_response)
        return AsyncCodegen._derived(self._shared, settings, http)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Call any path under the base URL and return its decoded JSON: the escape hatch
        for what the SDK has no method for (`await client.request("GET", "/v1/users/me")`).

        The call has the client's key, rate limits (the operation's class when `method`
        and `path` match one the SDK knows, else the standard one), timeout, telemetry
        and errors; it is retried only for a safe method (GET, HEAD, OPTIONS). `path` is
        relative to the base URL: an absolute or scheme-relative URL, a backslash, a
        control character, a query (use `params`), or a `.`/`..`/empty segment (also
        percent-encoded) raises `ValueError` before anything is sent; so do the headers
        the client owns (Host, Authorization, Content-Length, Transfer-Encoding,
        Connection) and a body over `max_request_bytes`.
        """
        method = _validate.http_method(method)
        path = _validate.api_path(path)
        self._check_under_base(path)
        _check_headers(headers)
        if params is not None and not isinstance(params, Mapping):
            raise TypeError(f"params must be a mapping, got {type(params).__name__}")
        row = ops.find(method, path)
        if row is None:
            row = ops.unlisted(method)
        else:  # the row's rate class and template; free-form JSON; a safe method's retries
            row = attrs.evolve(row, response=None, repeatable=method in ops.SAFE_METHODS)
        request = Request(
            method, path, params=params, json=json, headers=dict(headers) if headers else None
        )
        return await self._http.send(row, request)

    def _check_under_base(self, path: str) -> None:
        """The URL `path` makes is on the base URL's scheme, host and port, under its path
        (a last check behind `_validate.api_path`)."""
        base = httpx.URL(self._settings.base_url)
        url = httpx.URL(self._settings.base_url + path)
        same = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
        if not same or not url.raw_path.startswith(base.raw_path.rstrip(b"/") + b"/"):
            raise ValueError(f"path {_validate.shown(path)} leaves the base URL")

    async def health_check(self) -> HealthCheck:
        """Who the key belongs to, which organization, and how long a round trip takes."""
        started = time.perf_counter()
        user = await self.users.me()
        latency = time.perf_counter() - started
        return HealthCheck(ok=True, user=user, org_id=await self.organization_id(), latency=latency)

    async def as_curl(
        self, call: Callable[[AsyncCodegen], Awaitable[object]], *, show_key: bool = False
    ) -> str:
        """The curl command for the first request `call` would send, without sending it.

        `await client.as_curl(lambda c: c.agent_runs.get(5))`. The key is shown as
        `$CODEGEN_API_KEY` unless `show_key=True`.
        """
        capture = Capture()
        http = self._http.derive(
            self._settings, extra_headers=None, on_response=None, capture=capture
        )
        capturing = AsyncCodegen._derived(self._shared, self._settings, http)
        try:
            await call(capturing)
        except Exception:
            if capture.request is None:
                raise  # failed before building a request
        if capture.request is None:
            raise ValueError("as_curl: the call sent no request")
        return to_curl(capture.request, show_key=show_key)

    async def rate_limit_status(self) -> dict[RateClass, RateLimitStatus]:
        """Every rate-limited class's bucket now: the documented `limit` per `per` seconds,
        the `remaining` tokens, `next_token_in` seconds until the next frees up, and any
        Retry-After pause in force (`paused_for`); read from the shared store when one is
        configured (`RateLimits.shared`), and then `store` names it."""
        return await self._shared.limiter.status()

    # -- lifetime -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections this client opened (not an `http_client` it was given).

        A client made by `with_options` shares its parent's connections: closing it
        closes nothing."""
        self._closed = True
        if self._root:
            await self._shared.aclose()

    async def __aenter__(self) -> AsyncCodegen:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- high level ---------------------------------------------------------------------

    async def run(
        self,
        prompt: str,
        *,
        timeout: float | None = None,
        raise_on_failure: bool = False,
        repo_id: int | None = None,
        model: str | None = None,
        agent_type: AgentType | None = None,
        metadata: Mapping[str, Any] | None = None,
        images: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        on_update: Callable[[AgentRun], object] | None = None,
    ) -> AgentRun:
        """Create a run and wait until it is terminal (`timeout` covers only the wait).

        Every argument is checked before the run is created."""
        spec = RunSpec(
            prompt,
            repo_id=repo_id,
            model=model,
            agent_type=agent_type,
            metadata=metadata,
            images=images,
        )
        _validate.timeout("timeout", timeout)
        _validate.strict_bool("raise_on_failure", raise_on_failure)
        _validate.callback("on_update", on_update)
        traced = {"codegen.prompt.length": len(prompt) if isinstance(prompt, str) else 0}
        with _traced(self._shared.telemetry, "codegen.run", traced):
            run = await self.agent_runs.create_spec(spec, idempotency_key=idempotency_key)
            return await self.agent_runs.wait(
                run, timeout=timeout, raise_on_failure=raise_on_failure, on_update=on_update
            )

    # -- fan-out ------------------------------------------------------------------------

    def run_many(
        self,
        items: Iterable[str | RunSpec],
        *,
        max_concurrency: int = 10,
        timeout: float | None = None,
        fail_fast: bool = False,
        on_progress: Callable[[ProgressEvent], object] | None = None,
        journal: str | os.PathLike[str] | None = None,
    ) -> RunMany:
        """Start a run for every item (a prompt or a `RunSpec`) and yield one `RunOutcome`
        per item as each finishes: `async for outcome in client.run_many(prompts): ...`.

        At most `max_concurrency` runs are on the server at once; creates are paced by the
        rate limiter and exactly-once. `timeout` (seconds) covers the whole fan-out: runs
        still going then end with `WaitTimeoutError`, inputs not started with
        `RunNotStartedError`. `fail_fast=True` starts nothing new after the first outcome
        that is not a success (runs in flight are still awaited and reported).
        `on_progress` receives every `ProgressEvent`. Items are checked before anything
        starts. The runs share a group id in their metadata (`RunMany.group_id`).

        `journal`: a path to an SQLite file (created when missing) that lets the batch
        outlive this process: the same items with the same journal resume it, replaying
        finished outcomes (`RunOutcome.replayed`), awaiting runs already created and
        starting the rest; see the README's "Batches that survive a crash".
        """
        from ._fanout import specs_of

        _check_fan_out(max_concurrency, timeout, fail_fast, on_progress)
        return self._shared.engine.run_many(
            self.agent_runs,
            specs_of(items),
            max_concurrency=max_concurrency,
            timeout=timeout,
            fail_fast=fail_fast,
            on_progress=on_progress,
            journal=journal,
        )

    async def gather_many(
        self,
        items: Iterable[str | RunSpec],
        *,
        max_concurrency: int = 10,
        timeout: float | None = None,
        fail_fast: bool = False,
        on_progress: Callable[[ProgressEvent], object] | None = None,
        journal: str | os.PathLike[str] | None = None,
    ) -> list[RunOutcome]:
        """`run_many` to the end: one `RunOutcome` per item, in the items' order."""
        _check_fan_out(max_concurrency, timeout, fail_fast, on_progress)
        fan_out = self.run_many(
            items,
            max_concurrency=max_concurrency,
            timeout=timeout,
            fail_fast=fail_fast,
            on_progress=on_progress,
            journal=journal,
        )
        async with fan_out:
            return await fan_out.gather()

    async def multi_run(
        self,
        prompt: str,
        *,
        concurrency: int = 3,
        synthesize: bool = True,
        synthesis_prompt: str | None = None,
        timeout: float | None = None,
        on_progress: Callable[[ProgressEvent], object] | None = None,
        repo_id: int | None = None,
        model: str | None = None,
        agent_type: AgentType | None = None,
        metadata: Mapping[str, Any] | None = None,
        images: Sequence[str] | None = None,
    ) -> MultiRunResult:
        """Run `concurrency` agents on `prompt` at once, then one run that synthesizes their
        answers into `final`.

        `synthesis_prompt` is a template with `{prompt}` and `{candidates}` (checked
        before anything starts); the default is `DEFAULT_SYNTHESIS_PROMPT`. When some
        candidates fail, the others are synthesized; one candidate is `final` as it is;
        none leaves `final` None. `timeout` covers candidates and synthesis together.
        """
        spec = RunSpec(
            prompt,
            repo_id=repo_id,
            model=model,
            agent_type=agent_type,
            metadata=metadata,
            images=images,
        )
        _check_fan_out(concurrency, timeout, False, on_progress, concurrency_name="concurrency")
        _validate.strict_bool("synthesize", synthesize)
        traced = {
            "codegen.prompt.length": len(prompt) if isinstance(prompt, str) else 0,
            "codegen.multi_run.concurrency": concurrency,
        }
        from ._synthesis import multi_run

        with _traced(self._shared.telemetry, "codegen.multi_run", traced):
            return await multi_run(
                self,
                spec,
                concurrency=concurrency,
                synthesize=synthesize,
                synthesis_prompt=synthesis_prompt,
                timeout=timeout,
                on_progress=on_progress,
            )


def _check_headers(headers: object) -> None:
    """Headers a caller adds: a mapping of valid headers, none that the client owns."""
    if headers is None:
        return
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping, got {type(headers).__name__}")
    for name, value in headers.items():
        _validate.caller_header(name, value)


def _traced(
    tel: Telemetry | None, name: str, attributes: Mapping[str, Any]
) -> contextlib.AbstractContextManager[None]:
    """`_telemetry.span`, imported only when there is telemetry to report to."""
    if tel is None:
        return contextlib.nullcontext()
    from ._telemetry import span

    return span(tel, name, attributes)


def _check_fan_out(
    max_concurrency: object,
    timeout: object,
    fail_fast: object,
    on_progress: object,
    *,
    concurrency_name: str = "max_concurrency",
) -> None:
    """The arguments every fan-out shares, checked before anything is sent."""
    _validate.positive_int(concurrency_name, max_concurrency)
    _validate.timeout("timeout", timeout)
    _validate.strict_bool("fail_fast", fail_fast)
    _validate.callback("on_progress", on_progress)
