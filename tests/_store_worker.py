"""One worker process of the shared-limit tests and benchmark B7.

`python -m tests._store_worker BASE_URL STORE CREATES BACKEND SCALE ORG START_AT` waits until
the wall-clock time START_AT (so that process start-up is not measured), then creates CREATES
runs at once through a client whose documented limits (scaled by SCALE) live in STORE, then
prints one JSON line: runs created, errors, per store method (take, finish, ...) the median
seconds of a call (thread hop included) and the calls made, and the wall-clock time the
last create ended."""

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
    spent: dict[str, list[float]] = {}
    call = _ratelimit.StoreLink.call

    async def timed(self: Any, name: str, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call(self, name, *args)
        finally:
            spent.setdefault(name, []).append(time.perf_counter() - started)

    _ratelimit.StoreLink.call = timed  # type: ignore[method-assign]
    limits = RateLimits.documented().scaled(scale).shared(store or None)
    created, errors, done = 0, [], []
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
                done.append(time.time())
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        await client.rate_limit_status()  # warm up: open the store (import redis, connect)
        spent.clear()
        late = max(0.0, time.time() - start_at)  # > 0: this worker missed the start
        await anyio.sleep(max(0.0, start_at - time.time()))
        async with anyio.create_task_group() as tg:
            for index in range(creates):
                tg.start_soon(one, index)
        ended = time.time()
    medians = {name: statistics.median(seconds) for name, seconds in spent.items()}
    calls = {name: len(seconds) for name, seconds in spent.items()}
    report = {"created": created, "errors": errors, "store_median": medians, "calls": calls}
    print(json.dumps({**report, "ended": ended, "late": late, "done": done}))


if __name__ == "__main__":
    url, store_url, count, backend, factor, org, start = sys.argv[1:8]
    args = (url, store_url, int(count), float(factor), int(org), float(start))
    anyio.run(main, *args, backend=backend)
