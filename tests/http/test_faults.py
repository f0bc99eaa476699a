"""The fault matrix: creates against the Emulator on a real loopback port.

Every case asserts that at most one run carries the create's token (exactly one when the
create returned a run), that no request is left active in the pool and the next request
succeeds, and that the call ended within its deadline plus a margin.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator

import anyio
import attrs
import pytest

import codegen_async as cg
from codegen_async import IDEMPOTENCY_METADATA_KEY
from codegen_async.testing import Emulator

from ..conftest import make_client

pytestmark = pytest.mark.network

SCALE = 0.01  # emulated seconds per real second: 100x
TIMEOUT = 1.0  # the client's call deadline in these tests
MARGIN = 1.5  # seconds of slack on top of the deadline (CI machines are slow)


@attrs.frozen
class Case:
    kind: str
    outcome: str  # "run": create returns the run; or the error class name it raises
    status: int | None = None
    seconds: float | None = None
    times: int = 1
    list_delay: float | None = None  # emulated seconds before the run is listed
    runs: int | None = None  # runs expected to carry the token (default: 1 if "run")


CASES = {
    "closed before commit": Case("close_before", "run"),
    "closed after commit": Case("close_after_commit", "run"),
    "reset": Case("reset", "run"),
    "truncated body": Case("truncate", "run"),
    "commit then silence": Case("silence_after_commit", "run"),
    "slow drip past the deadline": Case("drip", "run", seconds=0.5),
    "429 below the cap": Case("rate_limited", "run", seconds=0.05),
    "429 above the cap": Case("rate_limited", "RateLimitError", seconds=120.0, runs=0),
    "429 storm": Case("rate_limited", "run", seconds=0.01, times=3),
    "500 committed": Case("error_after_commit", "run", status=500),
    "502 committed": Case("error_after_commit", "run", status=502),
    "504 committed": Case("error_after_commit", "run", status=504),
    "500 not committed": Case("error_before", "run", status=500),
    "502 not committed": Case("error_before", "run", status=502),
    "503 not committed": Case("error_before", "run", status=503),
    "503 committed": Case("error_after_commit", "run", status=503),
    "402 never retried": Case("error_before", "AgentRunLimitReachedError", status=402, runs=0),
    "400 never retried": Case("error_before", "BadRequestError", status=400, runs=0),
    "listed only after a delay": Case("error_after_commit", "run", status=502, list_delay=2.0),
}


@pytest.fixture
async def served() -> AsyncIterator[Emulator]:
    emu = Emulator(time_scale=SCALE, seed=11)
    async with emu.serve(port=0):
        yield emu


def runs_with(emu: Emulator, token: str) -> int:
    return sum(
        1 for r in emu.runs if (r.get("metadata") or {}).get(IDEMPOTENCY_METADATA_KEY) == token
    )


async def assert_pool_clean_and_usable(client: cg.AsyncCodegen) -> None:
    transport = client._http.http_client._transport  # type: ignore[union-attr]
    pool = getattr(transport, "_pool", None)  # httpcore's (the aiohttp transport has none)
    if pool is not None:
        assert pool._requests == []
        assert all(c.is_idle() or c.is_closed() for c in pool.connections)
    assert (await client.users.me()).id > 0


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(CASES))
async def test_create_under_fault(served: Emulator, name: str) -> None:
    case = CASES[name]
    emu = served
    emu.faults.add(
        case.kind,
        route="create_agent_run",
        status=case.status,
        seconds=case.seconds,
        times=case.times,
    )
    if case.list_delay is not None:
        emu.faults.add("list_delay", route="create_agent_run", seconds=case.list_delay)
    token = f"tok-{name.replace(' ', '-')}"
    async with make_client(emu, timeout=TIMEOUT, max_retries=3) as client:
        await client.users.me()  # warm: the caller's id and a connection
        started = time.monotonic()
        outcome = "run"
        try:
            run = await client.agent_runs.create("fault matrix", idempotency_key=token)
        except cg.CodegenError as exc:
            outcome = type(exc).__name__
            run = None
        elapsed = time.monotonic() - started
        await assert_pool_clean_and_usable(client)
    assert outcome == case.outcome, name
    expected_runs = case.runs if case.runs is not None else 1
    assert runs_with(emu, token) == expected_runs
    assert emu.counters.duplicate_creates == 0
    if run is not None:
        assert run.metadata is not None
        assert run.metadata[IDEMPOTENCY_METADATA_KEY] == token
    # One deadline per exchange, then bounded reconciliation: never a hang.
    assert elapsed <= 2 * TIMEOUT + MARGIN, (name, elapsed)


@pytest.mark.anyio
async def test_connection_refused_is_a_clear_error_and_creates_nothing() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the block ends: nothing listens
    client = cg.AsyncCodegen(
        api_key="sk-test",
        org_id=1,
        base_url=f"http://127.0.0.1:{port}",
        timeout=TIMEOUT,
        max_retries=1,
        rate_limits=cg.RateLimits.off(),
    )
    client._http._sleep = _no_sleep
    async with client:
        with pytest.raises(cg.APIConnectionError) as info:
            await client.agent_runs.create("nobody home", idempotency_key="refused")
    assert info.value.sent is False
    assert client.agent_runs.unconfirmed_creates == []


async def _no_sleep(seconds: float) -> None:
    await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_caller_cancelling_mid_post_exposes_the_token(served: Emulator) -> None:
    emu = served
    emu.faults.add("latency", route="create_agent_run", seconds=0.5)
    async with make_client(emu, timeout=TIMEOUT, max_retries=3) as client:
        await client.users.me()
        with anyio.move_on_after(0.1):
            await client.agent_runs.create("cancel me", idempotency_key="cancelled")
        assert [u.idempotency_key for u in client.agent_runs.unconfirmed_creates] == ["cancelled"]
        await assert_pool_clean_and_usable(client)
        await anyio.sleep(0.6)  # let the server finish what it started
    assert runs_with(emu, "cancelled") <= 1


@pytest.mark.anyio
async def test_failed_lookups_never_lead_to_a_second_post(served: Emulator) -> None:
    emu = served
    emu.faults.add("error_after_commit", route="create_agent_run", status=502)
    emu.faults.add("error_before", route="list_agent_runs", status=400, times=9)
    async with make_client(emu, timeout=TIMEOUT, max_retries=3) as client:
        await client.users.me()
        with pytest.raises(cg.AmbiguousCreateError) as info:
            await client.agent_runs.create("lookups fail", idempotency_key="tok-lookups")
        await assert_pool_clean_and_usable(client)
    assert info.value.idempotency_key == "tok-lookups"
    assert runs_with(emu, "tok-lookups") == 1  # the committed one, and no other
    assert emu.counters.requests_by_route["create_agent_run"] == 1


@pytest.mark.anyio
async def test_a_failed_lookup_does_not_count_as_a_miss(served: Emulator) -> None:
    emu = served
    emu.faults.add("error_after_commit", route="create_agent_run", status=502)
    emu.faults.add("error_before", route="list_agent_runs", status=400, times=5)
    async with make_client(emu, timeout=TIMEOUT, max_retries=3) as client:
        await client.users.me()
        run = await client.agent_runs.create("lookups fail first", idempotency_key="tok-late")
    assert run.metadata is not None
    assert run.metadata[IDEMPOTENCY_METADATA_KEY] == "tok-late"
    assert emu.counters.requests_by_route["create_agent_run"] == 1


@pytest.mark.anyio
async def test_reads_survive_every_connection_fault(served: Emulator) -> None:
    emu = served
    # A roomy deadline for the retried faults: the backoff sleeps fit inside it.
    async with make_client(emu, max_retries=3, timeout=10.0) as client:
        run = await client.agent_runs.create("read me")
        for kind in ("close_before", "reset", "truncate", "error_before", "close_after_commit"):
            status = 503 if kind == "error_before" else None
            emu.faults.add(kind, route="get_agent_run", status=status)
            got = await client.agent_runs.get(run.id)
            assert got.id == run.id, kind
        # Silence uses up the call's whole deadline: a timeout, then the next call works.
        emu.faults.add("silence_after_commit", route="get_agent_run")
        started = time.monotonic()
        with pytest.raises(cg.APITimeoutError):
            await client.with_options(timeout=TIMEOUT).agent_runs.get(run.id)
        assert time.monotonic() - started <= TIMEOUT + MARGIN
        assert (await client.agent_runs.get(run.id)).id == run.id
        await assert_pool_clean_and_usable(client)
