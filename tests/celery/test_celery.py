"""`codegen_sync.celery` with real parts: a real `redis-server` as broker, result backend
and store; real `celery worker` processes (prefork, 2 workers x 2 pool processes) against
a served Emulator whose clock runs 100x fast. Runs are counted per prompt at the server:
exactly one each, whatever happens to the workers (a pool process or a whole worker
SIGKILLed mid-task, one task id sent twice at once or again after thousands of runs,
429s and 503s on create). A revoked key fails the task at once.

Every process started here is killed and reaped in the fixtures' `finally`."""

from __future__ import annotations

import collections
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

celery = pytest.importorskip("celery") if not os.environ.get("CI") else __import__("celery")

from codegen_async.testing import Emulator  # noqa: E402
from codegen_sync import AgentRun, RunStatus  # noqa: E402

from .._redis import REDIS_SERVER, RedisServer  # noqa: E402
from ._workers import Worker, pool_pid_running, wait_ready  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        REDIS_SERVER is None and not os.environ.get("CI"), reason="redis-server is not installed"
    ),
    pytest.mark.timeout(90),
]

SCALE = 0.01
VISIBILITY = 3.0  # seconds: a task a dead worker held is delivered again this soon
RESULT_TIMEOUT = 60.0


class Fleet:
    """The served Emulator, the Redis server, the client app and the live workers."""

    def __init__(self, emu: Emulator, redis_url: str, env: dict[str, str], logs: Path) -> None:
        self.emu = emu
        self.env = env
        self.logs = logs
        self.app = celery.Celery("codegen_tests", broker=f"{redis_url}/0", backend=f"{redis_url}/1")
        self.app.conf.broker_transport_options = {"visibility_timeout": VISIBILITY}
        self.workers: list[Worker] = []

    def start(self, name: str, concurrency: int = 2) -> Worker:
        worker = Worker(name, self.env, self.logs, concurrency)
        self.workers.append(worker)
        wait_ready(self.app, self.workers)
        return worker

    def send(self, prompt: str, task_id: str | None = None, **kwargs: Any) -> Any:
        return self.app.send_task(
            "codegen.run", kwargs={"prompt": prompt, **kwargs}, task_id=task_id
        )

    def runs_of(self, prompt: str) -> list[dict[str, Any]]:
        return [r for r in self.emu.runs if self.emu.prompts[r["id"]] == prompt]

    def logs_text(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.log()[-4000:]}" for w in self.workers)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("celery")
    emu = Emulator(time_scale=SCALE)
    with RedisServer(tmp) as redis, emu.serve_in_thread() as base_url:
        redis_url = redis.url.rsplit("/", 1)[0]
        env = {
            **os.environ,
            "CELERY_TEST_REDIS": redis_url,
            "CELERY_TEST_SCALE": str(SCALE),
            "CELERY_TEST_VISIBILITY": str(VISIBILITY),
            "CODEGEN_BASE_URL": base_url,
            "CODEGEN_API_KEY": emu.api_key,
            "CODEGEN_ORG_ID": str(emu.org_id),
        }
        fleet = Fleet(emu, redis_url, env, tmp)
        try:
            fleet.start("w1")
            fleet.start("w2")
            yield fleet
        finally:
            for worker in fleet.workers:
                worker.kill()
            fleet.app.close()


@pytest.fixture(autouse=True)
def _clean(fleet: Fleet) -> Iterator[None]:
    fleet.emu.faults.clear()
    fleet.emu.reset_counters()
    fleet.emu.configure(pending_seconds=2.0, run_seconds=(20.0, 60.0))
    yield
    fleet.emu.faults.clear()


def result_of(fleet: Fleet, result: Any) -> AgentRun:
    try:
        return AgentRun.from_dict(result.get(timeout=RESULT_TIMEOUT))
    except Exception:
        print(fleet.logs_text())
        raise


def test_each_task_makes_exactly_one_run(fleet: Fleet) -> None:
    prompts = [f"one each {n} {uuid.uuid4().hex[:6]}" for n in range(8)]
    results = [fleet.send(prompt) for prompt in prompts]
    runs = [result_of(fleet, r) for r in results]
    assert all(run.status is RunStatus.COMPLETE for run in runs)
    for prompt, run, result in zip(prompts, runs, results, strict=True):
        assert [r["id"] for r in fleet.runs_of(prompt)] == [run.id]
        assert run.metadata == {"codegen_sdk_idempotency_key": f"celery-{result.id}"}


def test_one_task_id_sent_twice_at_once(fleet: Fleet) -> None:
    task_id = str(uuid.uuid4())
    prompt = f"twice at once {task_id}"
    first = fleet.send(prompt, task_id=task_id)
    second = fleet.send(prompt, task_id=task_id)
    assert result_of(fleet, first) == result_of(fleet, second)
    assert len(fleet.runs_of(prompt)) == 1


def test_the_same_task_id_again_after_thousands_of_runs(fleet: Fleet) -> None:
    task_id = str(uuid.uuid4())
    prompt = f"again later {task_id}"
    run = result_of(fleet, fleet.send(prompt, task_id=task_id))
    for n in range(3000):
        fleet.emu.seed_run(f"another run {n}")
    fleet.emu.reset_counters()
    fleet.app.AsyncResult(task_id).forget()  # the result read next is the new delivery's
    again = result_of(fleet, fleet.send(prompt, task_id=task_id))
    assert again == run
    assert len(fleet.runs_of(prompt)) == 1
    # Found through the ledger: one GET of the run, no list, no create.
    assert fleet.emu.counters.requests_by_route == {"get_agent_run": 1}


def test_429_and_503_on_create_retry_with_the_same_key(fleet: Fleet) -> None:
    fleet.emu.faults.add("rate_limited", route="create_agent_run", seconds=0.2, times=4)
    fleet.emu.faults.add("error_before", route="create_agent_run", status=503, times=2)
    prompts = [f"faults {n} {uuid.uuid4().hex[:6]}" for n in range(3)]
    runs = [result_of(fleet, fleet.send(prompt)) for prompt in prompts]
    assert fleet.emu.faults.injected() == {"rate_limited": 4, "error_before": 2}
    assert all(run.is_terminal for run in runs)
    counts = collections.Counter(fleet.emu.prompts[r["id"]] for r in fleet.emu.runs)
    assert [counts[p] for p in prompts] == [1, 1, 1]


def test_a_revoked_key_fails_at_once(fleet: Fleet) -> None:
    fleet.emu.faults.add("error_before", route="create_agent_run", status=401, times=None)
    prompt = f"revoked {uuid.uuid4().hex[:6]}"
    result = fleet.send(prompt)
    with pytest.raises(Exception) as info:
        result.get(timeout=RESULT_TIMEOUT)
    assert result.state == "FAILURE"
    assert "AuthenticationError" in repr(info.value) + str(result.traceback)
    assert fleet.emu.faults.injected() == {"error_before": 1}  # tried once, not retried
    assert fleet.runs_of(prompt) == []


def test_a_bad_argument_fails_at_once(fleet: Fleet) -> None:
    result = fleet.send("", repo_id=3)
    with pytest.raises(ValueError, match="prompt"):
        result.get(timeout=RESULT_TIMEOUT)
    assert result.state == "FAILURE"
    assert fleet.emu.counters.requests_by_route == {}  # nothing was sent


def test_a_pool_process_killed_mid_task(fleet: Fleet) -> None:
    fleet.emu.configure(run_seconds=(300.0, 300.0))  # 3 s of real time
    prompt = f"pool kill {uuid.uuid4().hex[:6]}"
    result = fleet.send(prompt)
    _, pid = pool_pid_running(fleet.app, result.id)
    deadline = time.monotonic() + 20
    while not fleet.runs_of(prompt) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fleet.runs_of(prompt), "the run was never created"
    os.kill(pid, signal.SIGKILL)
    run = result_of(fleet, result)
    assert run.status is RunStatus.COMPLETE
    assert [r["id"] for r in fleet.runs_of(prompt)] == [run.id]


def test_a_whole_worker_killed_mid_task(fleet: Fleet) -> None:
    fleet.emu.configure(run_seconds=(300.0, 300.0))
    prompt = f"worker kill {uuid.uuid4().hex[:6]}"
    result = fleet.send(prompt)
    hostname, _ = pool_pid_running(fleet.app, result.id)
    deadline = time.monotonic() + 20
    while not fleet.runs_of(prompt) and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = next(w for w in fleet.workers if w.hostname == hostname)
    victim.kill()
    fleet.workers.remove(victim)
    run = result_of(fleet, result)  # delivered again to the other worker
    assert run.status is RunStatus.COMPLETE
    assert [r["id"] for r in fleet.runs_of(prompt)] == [run.id]
    fleet.start(victim.name + "b")
