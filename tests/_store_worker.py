"""One worker process of the shared-limit tests and benchmark B7.

`python -m tests._store_worker BASE_URL STORE CREATES BACKEND SCALE ORG START_AT` waits until
the wall-clock time START_AT (so that process start-up is not measured), then creates CREATES
runs at once through a client whose documented limits (scaled by SCALE) live in STORE, then
prints one JSON line: runs created, errors, the median seconds of one store call (thread
hop included), the store calls made, and the wall-clock time the last create ended."""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

import anyio

from codegen_async import AsyncCodegen, PollPolicy, RateLimits, _ratelimit
from codegen_async.testing._emulator import DEFAULT_API_KEY


async def main(
    base_url: str, store: str, creates: int, scale: float, org_id: int, start_at: float
) -> None:
    spent: list[float] = []
    call = _ratelimit.StoreLink.call

    async def timed(self: Any, name: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call(self, name, *args)
        finally:
            spent.append(time.perf_counter() - started)

    _ratelimit.StoreLink.call = timed  # type: ignore[method-assign]
    limits = RateLimits.documented().scaled(scale).shared(store or None)
    created, errors = 0, []
    async with AsyncCodegen(
        api_key=DEFAULT_API_KEY,
        base_url=base_url,
        org_id=org_id,
        rate_limits=limits,
        poll_policy=PollPolicy().scaled(scale),
        timeout=60,
    ) as client:

        async def one(index: int) -> None:
            nonlocal created
            try:
                await client.agent_runs.create(f"worker prompt {index}")
                created += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        await anyio.sleep(max(0.0, start_at - time.time()))
        async with anyio.create_task_group() as tg:
            for index in range(creates):
                tg.start_soon(one, index)
        ended = time.time()
    median = statistics.median(spent) if spent else 0.0
    report = {"created": created, "errors": errors, "store_call": median, "calls": len(spent)}
    print(json.dumps({**report, "ended": ended}))


if __name__ == "__main__":
    url, store_url, count, backend, factor, org, start = sys.argv[1:8]
    args = (url, store_url, int(count), float(factor), int(org), float(start))
    anyio.run(main, *args, backend=backend)
