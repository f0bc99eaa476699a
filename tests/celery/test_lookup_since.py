"""`find_by_idempotency_key(key, since=...)`: a lookup after a reservation reads only the
runs created since it (the list is newest first), so thousands of older runs cost one page."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from codegen_async import IDEMPOTENCY_METADATA_KEY, AsyncCodegen
from codegen_async.testing import Emulator

pytestmark = pytest.mark.anyio


async def test_since_stops_at_the_first_older_run() -> None:
    async with Emulator(rate_limits=False) as emu:
        emu.seed_run("oldest", metadata={IDEMPOTENCY_METADATA_KEY: "wanted"})
        for n in range(250):
            emu.seed_run(f"filler {n}")
        newest = max(datetime.fromisoformat(r["created_at"]) for r in emu.runs)
        async with AsyncCodegen(**emu.client_options()) as client:
            runs = client.agent_runs
            emu.reset_counters()
            assert await runs.find_by_idempotency_key("wanted") is not None
            assert emu.counters.requests_by_route.get("list_agent_runs", 0) == 3
            emu.reset_counters()
            later = newest + timedelta(seconds=1)
            assert await runs.find_by_idempotency_key("wanted", since=later) is None
            listed = emu.counters.requests_by_route
            assert listed.get("list_agent_runs", 0) == 1
            found = await runs.find_by_idempotency_key(
                "wanted", since=datetime(2000, 1, 1, tzinfo=timezone.utc)
            )
            assert found is not None
            assert found.metadata == {IDEMPOTENCY_METADATA_KEY: "wanted"}


async def test_since_must_be_aware() -> None:
    async with Emulator(rate_limits=False) as emu, AsyncCodegen(**emu.client_options()) as client:
        with pytest.raises(ValueError, match="aware"):
            await client.agent_runs.find_by_idempotency_key("k", since=datetime(2026, 1, 1))
        with pytest.raises(TypeError, match="datetime"):
            await client.agent_runs.find_by_idempotency_key("k", since="yesterday")  # type: ignore[arg-type]
