"""`Emulator`: the whole Codegen API in memory, for tests and local runs.

    async with Emulator(time_scale=0.01) as emu:
        client = AsyncCodegen(**emu.client_options())

Time runs `1 / time_scale` times faster than real time for run lifecycles and rate
limit windows; `advance()` jumps it forward. In process the app is reached through
`httpx.ASGITransport`; `serve()` puts it on a loopback port (needs uvicorn).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import math
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

import attrs
import httpx

from .._config import CreatePolicy, PollPolicy, RateLimits
from .._stack import HTTPClient, default_stack
from ._app import CREATING_ROUTES, ROUTES, SOURCE_TYPES, Core, EmulatorApp
from ._faults import Faults
from ._lifecycle import STATUS_SPELLINGS, Clock, LifecycleConfig
from ._ratelimit import ServerRateLimiter
from ._state import Store

__all__ = ["DEFAULT_API_KEY", "IN_PROCESS_BASE_URL", "Counters", "Emulator"]

DEFAULT_API_KEY = "emu-key-0123456789abcdef"
IN_PROCESS_BASE_URL = "http://emulator.localhost"


@attrs.frozen
class Counters:
    """A snapshot of what the Emulator has seen since the last `reset_counters()`."""

    requests_by_route: dict[str, int]
    rate_limited: int  # 429s sent (real and forced)
    runs_created: int  # runs created through the API
    duplicate_creates: int  # creates reusing an idempotency token already stored
    faults_injected: dict[str, int]

    @property
    def requests(self) -> int:
        return sum(self.requests_by_route.values())


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _non_negative(name: str, value: object) -> float:
    if not _is_number(value) or value < 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _probability(name: str, value: object) -> float:
    if not _is_number(value) or not 0 <= value <= 1:  # type: ignore[operator]
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _run_seconds(value: object) -> tuple[float, float]:
    if _is_number(value):
        low = high = _non_negative("run_seconds", value)
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        low = _non_negative("run_seconds", value[0])
        high = _non_negative("run_seconds", value[1])
    else:
        raise ValueError(f"run_seconds must be a number or a (low, high) pair, got {value!r}")
    if low > high:
        raise ValueError(f"run_seconds must have low <= high, got {value!r}")
    return (low, high)


def _lifecycle(
    *, pending_seconds: object, run_seconds: object, failure_rate: object, error_rate: object,
    seed: int,
) -> LifecycleConfig:  # fmt: skip
    failure = _probability("failure_rate", failure_rate)
    error = _probability("error_rate", error_rate)
    if failure + error > 1:
        raise ValueError(f"failure_rate + error_rate must be <= 1, got {failure} + {error}")
    return LifecycleConfig(
        pending_seconds=_non_negative("pending_seconds", pending_seconds),
        run_seconds=_run_seconds(run_seconds),
        failure_rate=failure,
        error_rate=error,
        seed=seed,
    )


def _rate_limits(value: object) -> RateLimits:
    if value is True:
        return RateLimits.documented()
    if value is False:
        return RateLimits.off()
    if isinstance(value, RateLimits):
        return value
    raise ValueError(f"rate_limits must be True, False or a RateLimits, got {value!r}")


def _close_now(client: HTTPClient) -> None:
    """Close an in-process client without an event loop (its aclose never waits)."""
    coro = client.aclose()
    try:
        coro.send(None)
    except StopIteration:
        return
    coro.close()


class Emulator:
    """The Codegen API, local and in memory.

    `rate_limits`: True (the documented table), False, or a `RateLimits` in emulated
    seconds. Durations are emulated seconds; `latency` is real seconds per request.
    `status_spelling`: "upper" (COMPLETE, RUNNING, ... as the official CLI shows them) or
    "docs" (the docs' examples: "completed", "in_progress", "queued", "failed", ...).
    """

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        rate_limits: bool | RateLimits = True,
        failure_rate: float = 0.0,
        error_rate: float = 0.0,
        pending_seconds: float = 2.0,
        run_seconds: float | tuple[float, float] = (20.0, 60.0),
        seed: int = 0,
        api_key: str | None = None,
        org_id: int = 1,
        latency: float = 0.0,
        status_spelling: str = "upper",
    ) -> None:
        if status_spelling not in STATUS_SPELLINGS:
            raise ValueError(
                f"status_spelling must be one of {', '.join(STATUS_SPELLINGS)}, "
                f"got {status_spelling!r}"
            )
        if not _is_number(time_scale) or not time_scale > 0:
            raise ValueError(f"time_scale must be a finite number > 0, got {time_scale!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        if api_key is None:
            api_key = DEFAULT_API_KEY
        if not isinstance(api_key, str) or not api_key or api_key != api_key.strip():
            raise ValueError("api_key must be a non-empty string without surrounding spaces")
        if not isinstance(org_id, int) or isinstance(org_id, bool) or org_id < 1:
            raise ValueError(f"org_id must be an int >= 1, got {org_id!r}")
        self._limits = _rate_limits(rate_limits)
        self._clock = Clock(float(time_scale))
        lifecycle = _lifecycle(
            pending_seconds=pending_seconds,
            run_seconds=run_seconds,
            failure_rate=failure_rate,
            error_rate=error_rate,
            seed=seed,
        )
        self._store = Store(org_id=org_id, clock=self._clock, lifecycle=lifecycle)
        self._limiter = ServerRateLimiter(self._limits, self._clock.now)
        self.faults = Faults(ROUTES, CREATING_ROUTES)
        self._core = Core(
            store=self._store,
            limiter=self._limiter,
            faults=self.faults,
            api_key=api_key,
            latency=_non_negative("latency", latency),
            status_spelling=status_spelling,
        )
        self.app = EmulatorApp(self._core, wire=False)
        self.wire_app = EmulatorApp(self._core, wire=True)
        self._api_key = api_key
        self._served_url: str | None = None
        self._clients: list[HTTPClient] = []

    # -- identity -----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The served URL while `serve()` is active, else the in-process one."""
        return self._served_url or IN_PROCESS_BASE_URL

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def org_id(self) -> int:
        return int(self._store.org["id"])

    @property
    def user_id(self) -> int:
        """The caller: the user the API key belongs to."""
        return int(self._store.caller["id"])

    @property
    def time_scale(self) -> float:
        return self._clock.scale

    @property
    def serving(self) -> bool:
        return self._served_url is not None

    # -- clients ------------------------------------------------------------------

    def transport(self) -> httpx.ASGITransport:
        """An in-process transport to the app."""
        return httpx.ASGITransport(app=self.app)

    def client_options(self) -> dict[str, Any]:
        """Constructor arguments for `AsyncCodegen` that match this Emulator.

        In process this includes `http_client`, a new `httpx.AsyncClient` (httpx2's where
        the SDK uses httpx2) the
        Emulator owns and closes on exit; while serving, only the served base_url.
        """
        options: dict[str, Any] = {
            "base_url": self.base_url,
            "api_key": self._api_key,
            "org_id": self.org_id,
            "rate_limits": self._limits.scaled(self.time_scale),
            "poll_policy": PollPolicy().scaled(self.time_scale),
            "create_policy": CreatePolicy().scaled(self.time_scale),
        }
        if not self.serving:  # on the stack the SDK would pick (httpx2 where installed)
            http = default_stack().module
            transport = http.ASGITransport(app=self.app)
            client = http.AsyncClient(transport=transport, base_url=IN_PROCESS_BASE_URL)
            self._clients.append(client)
            options["http_client"] = client
        return options

    @contextlib.asynccontextmanager
    async def serve(self, port: int = 0) -> AsyncIterator[str]:
        """Listen on 127.0.0.1:`port` (0: any free port) behind the fault proxy;
        yields the base URL, which `base_url` and `client_options()` give meanwhile."""
        serving = self._serve_module(port)
        async with serving.serve_app(self.wire_app, host="127.0.0.1", port=port) as base_url:
            with self._served_at(str(base_url)) as url:
                yield url

    @contextlib.contextmanager
    def serve_in_thread(self, port: int = 0) -> Iterator[str]:
        """`serve` for blocking code: the server runs in its own thread."""
        serving = self._serve_module(port)
        in_thread = serving.serve_app_in_thread(self.wire_app, host="127.0.0.1", port=port)
        with in_thread as base_url, self._served_at(str(base_url)) as url:
            yield url

    def _serve_module(self, port: int) -> Any:
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int in 0..65535, got {port!r}")
        if self.serving:
            raise RuntimeError("this Emulator is already being served")
        return importlib.import_module("codegen_async.testing._serve")

    @contextlib.contextmanager
    def _served_at(self, url: str) -> Iterator[str]:
        self._served_url = url
        try:
            yield url
        finally:
            self._served_url = None

    async def aclose(self) -> None:
        """Close every client handed out by `client_options()`."""
        clients, self._clients = self._clients, []
        for client in clients:
            await client.aclose()

    def close(self) -> None:
        """`aclose` for code without an event loop."""
        clients, self._clients = self._clients, []
        for client in clients:
            _close_now(client)

    async def __aenter__(self) -> Emulator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        await self.aclose()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        self.close()

    # -- time and behaviour -------------------------------------------------------

    def now(self) -> float:
        """Emulated seconds since the Emulator started."""
        return self._clock.now()

    def advance(self, seconds: float) -> None:
        """Move emulated time forward: runs progress, rate-limit windows slide."""
        self._clock.advance(_non_negative("seconds", seconds))

    def configure(self, **changes: Any) -> None:
        """Change failure_rate, error_rate, pending_seconds, run_seconds or latency
        for what happens from now on (runs already started keep their plan)."""
        allowed = {"failure_rate", "error_rate", "pending_seconds", "run_seconds", "latency"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"configure() got unknown settings: {', '.join(sorted(unknown))}")
        current = attrs.asdict(self._store.lifecycle, recurse=False)
        current.update({k: v for k, v in changes.items() if k != "latency"})
        lifecycle = _lifecycle(**current)
        if "latency" in changes:
            self._core.latency = _non_negative("latency", changes["latency"])
        self._store.lifecycle = lifecycle

    # -- inspection ---------------------------------------------------------------

    @property
    def runs(self) -> list[dict[str, Any]]:
        """Every run as the API would show it now, oldest first (hidden ones too)."""
        now = self._clock.now()
        with self._store.lock:
            runs = list(self._store.run_order)
        return [copy.deepcopy(self._core.view(r, now)) for r in runs]

    @property
    def prompts(self) -> dict[int, str]:
        """Each run's creating prompt, by run id."""
        with self._store.lock:
            return {r.id: r.prompt for r in self._store.run_order}

    @property
    def counters(self) -> Counters:
        store = self._store
        with store.lock:
            counts = store.counts
            return Counters(
                requests_by_route=dict(counts.requests_by_route),
                rate_limited=counts.rate_limited,
                runs_created=counts.runs_created,
                duplicate_creates=counts.duplicate_creates,
                faults_injected=self.faults.injected(),
            )

    def reset_counters(self) -> None:
        """Zero every counter (state, faults and rate-limit windows are kept)."""
        self._store.reset_counts()
        self.faults.reset_counters()

    def reset_rate_limits(self) -> None:
        """Forget the requests the rate limiter has seen."""
        self._limiter.reset()

    def seed_run(
        self,
        prompt: str,
        *,
        user_id: int | None = None,
        source_type: str = "API",
        metadata: dict[str, Any] | None = None,
        repo_id: int | None = None,
    ) -> dict[str, Any]:
        """Add a run as if made elsewhere (another user, Slack, ...); not counted as
        created through the API. Returns it as the API shows it."""
        if not isinstance(prompt, str) or not prompt:
            raise ValueError("prompt must be a non-empty string")
        uid = self.user_id if user_id is None else user_id
        if uid not in self._store.users_by_id:
            raise ValueError(f"user_id must be a seeded user, got {user_id!r}")
        if source_type not in SOURCE_TYPES:
            raise ValueError(f"source_type must be one of {', '.join(SOURCE_TYPES)}")
        if repo_id is not None and repo_id not in self._store.repos_by_id:
            raise ValueError(f"repo_id must be a seeded repository, got {repo_id!r}")
        run = self._store.create_run(
            prompt,
            user_id=uid,
            source_type=source_type,
            metadata=copy.deepcopy(metadata),
            repo_id=repo_id,
            counted=False,
        )
        return copy.deepcopy(self._core.view(run))

    @property
    def users(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._store.users)

    @property
    def repos(self) -> list[dict[str, Any]]:
        return copy.deepcopy(self._store.repos)
