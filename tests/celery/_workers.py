"""Real `celery worker` processes for the tests and the benchmark: each in its own
process group (so a SIGKILL of the group kills it and its pool at once, as a crashed
machine would), logging to a file, reaped at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0


class Worker:
    """One `celery -A tests.celery._app worker -P prefork -c N` process."""

    def __init__(self, name: str, env: dict[str, str], logs: Path, concurrency: int) -> None:
        self.name = name
        self.log_path = logs / f"{name}.log"
        command = [
            sys.executable, "-m", "celery", "-A", "tests.celery._app", "worker",
            "-P", "prefork", "-c", str(concurrency), "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**env, "PYTHONPATH": str(ROOT)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.hostname = ""

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once; reap the worker."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_ready(app: Any, workers: list[Worker]) -> None:
    """Until every worker answers a ping (their hostnames noted), or RuntimeError."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker {worker.name} exited:\n{worker.log()[-3000:]}")
        answered = {name for reply in app.control.ping(timeout=0.5) or [] for name in reply}
        for worker in workers:
            worker.hostname = next((h for h in answered if h.startswith(worker.name + "@")), "")
        if all(worker.hostname for worker in workers):
            return
    raise RuntimeError("workers did not answer a ping in time")


def pool_pid_running(app: Any, task_id: str, timeout: float = 20.0) -> tuple[str, int]:
    """The worker hostname and pool process pid running `task_id` now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = app.control.inspect(timeout=0.5).active() or {}
        for hostname, tasks in active.items():
            for task in tasks:
                if task.get("id") == task_id and task.get("worker_pid"):
                    return hostname, int(task["worker_pid"])
        time.sleep(0.05)
    raise RuntimeError(f"task {task_id} is not running anywhere")
