"""The Celery guide (`docs/guide/celery.md`) runs as printed: its app module, its worker
command line and its sending scripts, against a real `redis-server` (given to the recipe
as `REDIS_URL`, which it reads) and a served Emulator (given as `CODEGEN_*`). Each prompt
ends with exactly one run at the server."""

from __future__ import annotations

import collections
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from codegen_async.testing import Emulator

from .._redis import REDIS_SERVER, RedisServer

pytest.importorskip("celery") if not os.environ.get("CI") else None

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide" / "celery.md"
BLOCK = re.compile(r'^```python title="([^"]+)"\n(.*?)^```', re.S | re.M)
SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)

pytestmark = [
    pytest.mark.skipif(
        REDIS_SERVER is None and not os.environ.get("CI"), reason="redis-server is not installed"
    ),
    pytest.mark.timeout(90),
]


def files() -> dict[str, str]:
    return dict(BLOCK.findall(GUIDE.read_text()))


def worker_line() -> str:
    lines = [line for b in SH_BLOCK.findall(GUIDE.read_text()) for line in b.splitlines()]
    (line,) = [line for line in lines if line.startswith("celery ")]
    return line


def test_the_guide_has_its_parts() -> None:
    assert set(files()) == {"jobs.py", "send.py", "batch.py"}
    assert "-P prefork" in worker_line()


def test_the_guide_runs_as_printed(tmp_path: Path) -> None:
    for name, code in files().items():
        (tmp_path / name).write_text(code)
    emu = Emulator(time_scale=0.01)
    with RedisServer(tmp_path) as redis, emu.serve_in_thread() as base_url:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CODEGEN_")}
        env.update(
            REDIS_URL=redis.url.rsplit("/", 1)[0],
            CODEGEN_BASE_URL=base_url,
            CODEGEN_API_KEY=emu.api_key,
            CODEGEN_ORG_ID=str(emu.org_id),
            PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
        )
        argv = [sys.executable, "-m", *shlex.split(worker_line())]
        with (tmp_path / "worker.log").open("wb") as log:
            worker = subprocess.Popen(
                argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            outputs = {}
            for script in ("send.py", "batch.py"):
                done = subprocess.run(
                    [sys.executable, script], cwd=tmp_path, env=env, capture_output=True,
                    text=True, timeout=60,
                )  # fmt: skip
                assert done.returncode == 0, done.stderr + (tmp_path / "worker.log").read_text()
                outputs[script] = done.stdout
        finally:
            os.killpg(worker.pid, 9)
            worker.wait(timeout=30)
    assert outputs["send.py"].split()[1:] == ["COMPLETE", "True"]
    assert [line.split()[1] for line in outputs["batch.py"].splitlines()] == ["COMPLETE"] * 3
    per_prompt = collections.Counter(emu.prompts.values())
    assert len(per_prompt) == 4
    assert set(per_prompt.values()) == {1}
