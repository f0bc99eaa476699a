"""Shared rate-limit budgets: SQLite and a real Redis, across real processes.

N worker processes (`tests/_store_worker.py`) create runs at once on one served Emulator,
all through one store: the Emulator answers no 429 and every create is done. The store
never holds the API key. Redis killed mid-run: one WARNING, work goes on; back: shared
again. The Redis tests start `redis-server` (see `tests/_redis.py`) and are skipped, with
the reason, only where the binary is missing; CI installs it (`.ci/run`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from codegen_async import (
    APITimeoutError,
    AsyncCodegen,
    ConfigurationError,
    Limit,
    RateClass,
    RateLimitError,
    RateLimits,
)
from codegen_async._stores import bucket_key
from codegen_async.testing import Emulator
from codegen_async.testing._emulator import DEFAULT_API_KEY

from .._redis import REDIS_SERVER, RedisServer

ROOT = Path(__file__).resolve().parents[2]
SCALE = 0.01
PROCESSES = 4
CREATES = 10
_NO_REDIS = "redis-server is not installed (apt-get install redis-server)"
# CI installs redis-server (.ci/run): there a missing binary fails the Redis tests
# instead of skipping them.
_SKIP_WITHOUT_REDIS = REDIS_SERVER is None and not os.environ.get("CI")
needs_redis = pytest.mark.skipif(_SKIP_WITHOUT_REDIS, reason=_NO_REDIS)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if _SKIP_WITHOUT_REDIS:
        pytest.skip(_NO_REDIS)
    with RedisServer(tmp_path, password="s3cret-pw") as server:
        yield server


def run_workers(store: str, backend: str) -> tuple[Emulator, str, list[dict[str, object]]]:
    """PROCESSES workers x CREATES creates at once through `store` on a served Emulator."""
    emu = Emulator(time_scale=SCALE)
    with emu.serve_in_thread() as base_url:
        start_at = time.time() + 1.5  # every worker imported and waiting by then
        command = [
            sys.executable, "-m", "tests._store_worker", base_url, store, str(CREATES),
            backend, str(SCALE), str(emu.org_id), str(start_at),
        ]  # fmt: skip
        workers = [
            subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(PROCESSES)
        ]
        reports = []
        for worker in workers:
            out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err.decode()
            reports.append(json.loads(out.splitlines()[-1]))
        return emu, base_url, reports


def check_shared_run(emu: Emulator, reports: list[dict[str, object]]) -> None:
    assert [r["errors"] for r in reports] == [[]] * PROCESSES
    assert sum(int(str(r["created"])) for r in reports) == PROCESSES * CREATES
    counters = emu.counters
    assert counters.runs_created == PROCESSES * CREATES
    assert counters.rate_limited == 0  # one budget for every process: never a 429


@pytest.mark.network
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_processes_share_one_sqlite_budget(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "limits.sqlite3"
    emu, base_url, reports = run_workers(f"sqlite:///{path}", backend)
    check_shared_run(emu, reports)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("limits.sqlite3*"))
    assert DEFAULT_API_KEY.encode() not in stored
    assert bucket_key(base_url, DEFAULT_API_KEY, "create").encode() in stored


@pytest.mark.network
@needs_redis
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_processes_share_one_redis_budget(redis_server: RedisServer, backend: str) -> None:
    import redis

    emu, base_url, reports = run_workers(redis_server.url, backend)
    check_shared_run(emu, reports)
    db = redis.Redis.from_url(redis_server.url)
    keys = list(db.scan_iter())
    assert bucket_key(base_url, DEFAULT_API_KEY, "create").encode() in keys
    for key in keys:
        assert DEFAULT_API_KEY.encode() not in key
        assert DEFAULT_API_KEY.encode() not in (db.dump(key) or b"")
    db.close()


def emulator_limits() -> RateLimits:
    return RateLimits.documented().scaled(SCALE)


@pytest.mark.anyio
@needs_redis
async def test_redis_down_then_back(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="codegen_async")
    async with Emulator(time_scale=SCALE) as emu:
        options = {
            **emu.client_options(),
            "rate_limits": emulator_limits().shared(redis_server.url),
        }
        async with AsyncCodegen(**options) as client:
            for n in range(3):
                await client.agent_runs.create(f"before {n}")
            assert (await client.rate_limit_status())[RateClass.CREATE].store is not None
            redis_server.kill()
            for n in range(12):  # more than one window's worth: limited locally meanwhile
                await client.agent_runs.create(f"while down {n}")
            status = await client.rate_limit_status()
            assert status[RateClass.CREATE].store is None  # answered locally
            redis_server.start()
            for _ in range(150):  # asked again after 1, 2, 4... s (STORE_RETRY): < 15 s
                if (await client.rate_limit_status())[RateClass.CREATE].store is not None:
                    break
                await anyio.sleep(0.1)
            for n in range(3):
                await client.agent_runs.create(f"after {n}")
            status = await client.rate_limit_status()
        assert emu.counters.runs_created == 18
        assert emu.counters.rate_limited == 0
    assert status[RateClass.CREATE].store == redis_server.url.replace(":s3cret-pw@", "***@")
    warnings = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "***@127.0.0.1" in warnings[0].getMessage()
    assert "again" in caplog.records[-1].getMessage()
    assert "s3cret-pw" not in caplog.text
    import redis

    db = redis.Redis.from_url(redis_server.url)
    assert db.exists(bucket_key(emu.base_url, emu.api_key, "create"))  # shared again
    db.close()


@pytest.mark.anyio
async def test_unwritable_sqlite_store_falls_back_to_local_limits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = f"sqlite:///{tmp_path / 'missing-dir' / 'limits.sqlite3'}"
    async with Emulator(time_scale=SCALE) as emu:
        options = {**emu.client_options(), "rate_limits": emulator_limits().shared(store)}
        async with AsyncCodegen(**options) as client:
            for n in range(12):
                await client.agent_runs.create(f"local {n}")
        assert emu.counters.runs_created == 12
        assert emu.counters.rate_limited == 0
    warnings = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(warnings) == 1
    assert "missing-dir" in warnings[0].getMessage()


@pytest.mark.anyio
async def test_status_is_read_from_the_shared_store(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'limits.sqlite3'}"
    limits = RateLimits({RateClass.CREATE: Limit(3, 60.0)}).shared(store)
    async with Emulator(time_scale=SCALE, rate_limits=False) as emu:
        first = AsyncCodegen(**{**emu.client_options(), "rate_limits": limits})
        second = AsyncCodegen(**{**emu.client_options(), "rate_limits": limits})
        async with first, second:
            before = (await second.rate_limit_status())[RateClass.CREATE]
            await first.agent_runs.create("one")
            await first.agent_runs.create("two")
            after = (await second.rate_limit_status())[RateClass.CREATE]
            await first.agent_runs.create("three")
            empty = (await second.rate_limit_status())[RateClass.CREATE]
            with pytest.raises(APITimeoutError, match="rate-limit token"):
                await second.with_options(timeout=1).agent_runs.create("four")
    assert (before.limit, before.per, before.remaining, before.next_token_in) == (3, 60.0, 3, 0)
    assert before.store == store
    assert after.remaining == 1
    assert empty.remaining == 0
    assert 59 < empty.next_token_in <= 60
    assert emu.counters.runs_created == 3


def retry_after_transport(seconds: str) -> httpx.MockTransport:
    """429 with Retry-After `seconds` on the first request, a user after that."""
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            body = {"message": "Rate limit exceeded", "status_code": 429}
            return httpx.Response(429, json=body, headers={"Retry-After": seconds})
        return httpx.Response(200, json={"id": 1, "email": "a@b.c", "github_user_id": "1"})

    return httpx.MockTransport(handler)


@pytest.mark.anyio
@pytest.mark.parametrize("shared", [False, True])
async def test_a_huge_retry_after_never_blocks_a_later_call(tmp_path: Path, shared: bool) -> None:
    limits = RateLimits.documented()
    if shared:
        limits = limits.shared(f"sqlite:///{tmp_path / 'limits.sqlite3'}")
    http = httpx.AsyncClient(transport=retry_after_transport("1e9"))
    kwargs = {"api_key": "k", "org_id": 1, "base_url": "https://api.example"}
    async with http, AsyncCodegen(**kwargs, http_client=http, rate_limits=limits) as client:
        with pytest.raises(RateLimitError) as info:
            await client.users.me()
        assert info.value.retry_after == 1e9  # reported whole
        status = (await client.rate_limit_status())[RateClass.STANDARD]
        assert 0 < status.paused_for <= 30.0  # held at most one window
        with anyio.fail_after(10):  # the old limiter held the bucket for 1e9 s
            with pytest.raises(APITimeoutError, match="rate-limit token"):
                await client.with_options(timeout=1).users.me()
        if shared:  # another process sees the pause in the store
            other = AsyncCodegen(**kwargs, http_client=http, rate_limits=limits)
            async with other:
                seen = (await other.rate_limit_status())[RateClass.STANDARD]
                with anyio.fail_after(10), pytest.raises(APITimeoutError):
                    await other.with_options(timeout=1).users.me()  # paused for it too
            assert 0 < seen.paused_for <= 30.0


def test_store_urls_are_checked_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = {
        "sqlite:///relative.sqlite3": "relative path",
        "sqlite://host/x": "sqlite:///ABSOLUTE/PATH",
        "memcached://127.0.0.1": "unknown scheme 'memcached'",
        "127.0.0.1:6379": "scheme",
        "redis://:hunter2@127.0.0.1:99999/0": "not a valid URL",
        "redis://127.0.0.1/zero": "database must be a number",
    }
    for url, problem in bad.items():
        with pytest.raises(ConfigurationError, match=problem) as info:
            RateLimits.documented().shared(url)
        assert "hunter2" not in str(info.value)
    monkeypatch.setitem(sys.modules, "redis", None)  # as if the extra were not installed
    with pytest.raises(ConfigurationError, match=r"codegen-async\[redis\]"):
        RateLimits.documented().shared("redis://127.0.0.1:6379/0")


def test_shared_and_scaled_compose_and_mask(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    a = RateLimits.documented().shared(url).scaled(0.5)
    b = RateLimits.documented().scaled(0.5).shared(url)
    assert a == b
    assert a.store == url
    assert a.get(RateClass.CREATE) == Limit(10, 30.0)
    assert RateLimits.documented().shared(url).shared(None).store is None
    redis_limits = RateLimits.documented().shared("redis://:pw-123@127.0.0.1:6379/0")
    assert "pw-123" not in repr(redis_limits)


def test_env_store_applies_when_rate_limits_is_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    monkeypatch.setenv("CODEGEN_RATE_LIMIT_STORE", url)
    kwargs = {"api_key": "k", "org_id": 1}
    assert AsyncCodegen(**kwargs).rate_limits == RateLimits.documented().shared(url)
    assert AsyncCodegen(**kwargs, rate_limits=RateLimits.off()).rate_limits.store is None
    monkeypatch.setenv("CODEGEN_RATE_LIMIT_STORE", "ftp://nowhere")
    with pytest.raises(ConfigurationError, match="env CODEGEN_RATE_LIMIT_STORE"):
        AsyncCodegen(**kwargs)


def test_cli_rate_limit_store_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from codegen_async.cli import main

    monkeypatch.delenv("CODEGEN_RATE_LIMIT_STORE", raising=False)
    assert main(["--emulator", "--rate-limit-store", "sqlite:///relative.db", "runs", "list"]) == 2
    assert "names the relative path 'relative.db'" in capsys.readouterr().err
    path = tmp_path / "cli.sqlite3"
    argv = ["--emulator", "--json", "runs", "list", "--rate-limit-store", f"sqlite:///{path}"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert b"codegen_leases" in path.read_bytes()  # the command drew from the store


def test_status_of_local_buckets_through_the_sync_facade() -> None:
    from codegen_sync import Codegen
    from codegen_sync.testing import Emulator as SyncEmulator

    with SyncEmulator(time_scale=SCALE) as emu, Codegen(**emu.client_options()) as client:
        client.agent_runs.create("one")
        client.agent_runs.create("two")
        status = client.rate_limit_status()
    assert set(status) == set(RateLimits.documented().limits)
    create = status[RateClass.CREATE]
    assert (create.limit, create.per, create.capacity) == (10, 0.6, 10)
    assert create.remaining == 8
    assert create.next_token_in == 0.0
    assert create.paused_for == 0.0
    assert create.store is None


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_lease_never_finished_expires_on_its_own(tmp_path: Path, kind: str) -> None:
    """A process killed mid-request never finishes its lease: it frees up per + bound
    after it was taken, and meanwhile the store says when (no polling)."""
    from codegen_async._stores import open_store

    server = None
    if kind == "redis":
        if _SKIP_WITHOUT_REDIS:
            pytest.skip(_NO_REDIS)
        server = RedisServer(tmp_path)
        server.start()
        url = server.url
    else:
        url = f"sqlite:///{tmp_path / 'l.sqlite3'}"
    store = open_store(url)
    try:
        key = bucket_key("https://api.example", "k", "create")
        assert store.take(key, "a", 2, 0.1, 0.2).taken
        assert store.take(key, "b", 2, 0.1, 0.2).taken
        refused = store.take(key, "c", 2, 0.1, 0.2)
        assert not refused.taken
        assert 0 < refused.wait <= 0.1  # both in flight: at least a window away
        store.finish(key, "b", 0.1)
        assert store.state(key, 0.1).in_use == 2
        time.sleep(0.35)  # "a" was never finished (its process died): expired by now
        assert store.state(key, 0.1).in_use == 0
        assert store.take(key, "d", 2, 0.1, 0.2).taken
        store.pause(key, 5.0)
        paused = store.take(key, "e", 2, 0.1, 0.2)
        assert not paused.taken
        assert 4 < paused.wait <= 5
        assert 4 < store.state(key, 0.1).paused_for <= 5
    finally:
        store.close()
        if server is not None:
            server.kill()


def test_cli_says_when_the_store_cannot_be_reached(capsys: pytest.CaptureFixture[str]) -> None:
    from codegen_async.cli import main

    store = "redis://user:s3cret@127.0.0.1:1/0"  # nothing listens on port 1
    assert main(["--emulator", "-q", "--rate-limit-store", store, "run", "--no-wait", "x"]) == 0
    err = capsys.readouterr().err
    assert "warning: rate-limit store redis://***@127.0.0.1:1/0 cannot be reached" in err
    assert "s3cret" not in err
    assert main(["--emulator", "--json", "--rate-limit-store", store, "runs", "list"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert any(json.loads(line).get("warning") for line in lines)
