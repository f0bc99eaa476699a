"""B9: a Celery fleet on Redis: 2 workers x 4 pool processes, 200 `codegen.run` tasks.

An Emulator with the documented limits (time scale 0.01: a minute is 0.6 s) is served by
a child process on 127.0.0.1; a real `redis-server` started here is the broker, the
result backend and the store (shared rate limits and the exactly-once ledger). Two real
`celery worker` processes (prefork, `-c 4`, `tests/celery/_app.py`) run the tasks; this
process sends them all at once and collects every result.

- duplicate runs (runs created minus tasks): goal 0;
- 429s the Emulator sent: goal 0;
- wall (first send to last result) vs the lower bound: the create budget lets 10 creates
  go at once and 10 more each window, so N creates need (ceil(N / 10) - 1) windows, and
  the last run then takes at least its pending + shortest run time. Goal <= 1.15x;
- requests per task: creates + reads (GETs and lists) over the tasks. Reported;
- what a redelivered task costs: the same task id sent again once its run is done (the
  requests that delivery made). Reported.

    python benchmarks/bench_celery.py [--tasks 200] [--scale 0.01] [--concurrency 4] [--smoke]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, emit, figure, served_emulator

sys.path.insert(0, str(REPO))
from tests._redis import REDIS_SERVER, RedisServer
from tests.celery._workers import Worker, wait_ready

CREATES_PER_WINDOW, WINDOW = 10, 60.0  # the documented create limit (emulated seconds)
PENDING, SHORTEST_RUN = 2.0, 20.0  # the Emulator's defaults (emulated seconds)
WORKERS, CONCURRENCY = 2, 4
RESULT_TIMEOUT = 600.0


def lower_bound(tasks: int, scale: float) -> float:
    windows = math.ceil(tasks / CREATES_PER_WINDOW) - 1
    return (windows * WINDOW + PENDING + SHORTEST_RUN) * scale


def reads(requests: dict[str, int]) -> int:
    return sum(n for route, n in requests.items() if route != "create_agent_run")


def measure(tasks: int, scale: float, concurrency: int = CONCURRENCY) -> dict[str, Any]:
    import celery

    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer(Path(tmp)) as redis,
        served_emulator(time_scale=scale) as served,
    ):
        redis_url = redis.url.rsplit("/", 1)[0]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODEGEN_")}
        env.update(
            CELERY_TEST_REDIS=redis_url,
            CELERY_TEST_SCALE=str(scale),
            CELERY_TEST_VISIBILITY="600",
            CODEGEN_BASE_URL=served.url,
            CODEGEN_API_KEY=str(served.info["api_key"]),
            CODEGEN_ORG_ID=str(served.info["org_id"]),
        )
        app = celery.Celery("bench", broker=f"{redis_url}/0", backend=f"{redis_url}/1")
        workers = [Worker(f"b{n}", env, Path(tmp), concurrency) for n in range(WORKERS)]
        try:
            wait_ready(app, workers)
            warm = [app.send_task("codegen.run", kwargs={"prompt": f"warm {n}"}) for n in range(8)]
            for result in warm:  # every pool process has its client and ledger
                result.get(timeout=RESULT_TIMEOUT)
            time.sleep(WINDOW * scale * 1.2)  # the warm-up's creates leave the window
            served.counters(reset=True)
            started = time.monotonic()
            sent = [
                app.send_task("codegen.run", kwargs={"prompt": f"bench {n}"}) for n in range(tasks)
            ]
            runs = [result.get(timeout=RESULT_TIMEOUT) for result in sent]
            wall = time.monotonic() - started
            counts = served.counters(reset=True)
            sent[0].forget()  # so that the result read next is the new delivery's
            probe = celery.Celery("probe", broker=f"{redis_url}/0", backend=f"{redis_url}/1")
            again = probe.send_task(
                "codegen.run", kwargs={"prompt": "bench 0"}, task_id=sent[0].id
            ).get(timeout=RESULT_TIMEOUT)  # a fresh app: nothing of the first result cached
            probe.close()
            redelivered = served.counters(reset=True)
        finally:
            for worker in workers:
                worker.kill()
            app.close()
    assert again == runs[0], "the same task id gave another run"
    failed = sum(1 for run in runs if run["status"] != "COMPLETE")
    requests = counts["requests"]
    bound = lower_bound(tasks, scale)
    common = {"tasks": tasks, "workers": f"{WORKERS} x {concurrency}", "scale": scale}
    return {
        "B9-duplicates": figure(
            counts["runs_created"] - tasks, 0, "runs", "Celery fleet: runs beyond one per task",
            runs_created=counts["runs_created"], failed_runs=failed, **common,
        ),
        "B9-429": figure(
            counts["rate_limited"], 0, "429s", "Celery fleet: 429s the Emulator sent", **common
        ),
        "B9-wall": figure(
            round(wall / bound, 3), 1.15, "x", "Celery fleet: wall vs the create budget's bound",
            wall_s=round(wall, 2), lower_bound_s=round(bound, 2), **common,
        ),
        "B9-requests": figure(
            round(sum(requests.values()) / tasks, 2), None, "req/task",
            "Celery fleet: requests per task (creates + reads)",
            creates=requests.get("create_agent_run", 0), reads=reads(requests),
            by_route=requests, **common,
        ),
        "B9-redelivered": figure(
            sum(redelivered["requests"].values()), None, "requests",
            "Celery fleet: a task delivered again after its run is done",
            by_route=redelivered["requests"],
        ),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="per worker")
    parser.add_argument("--smoke", action="store_true", help="20 tasks")
    args = parser.parse_args()
    if REDIS_SERVER is None:
        print("B9 needs redis-server (apt-get install redis-server)", file=sys.stderr)
        emit({})
        return
    emit(measure(20 if args.smoke else args.tasks, args.scale, args.concurrency))


if __name__ == "__main__":
    main()
