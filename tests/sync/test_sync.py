"""codegen_sync against the Emulator: runs, waits, fan-out and logs through the blocking
facade, in process and over a loopback port; and the portal's promises (threads, a
running loop, Ctrl-C, BaseException, fork, abandoned iterators and clients, exit)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import codegen_async
import codegen_sync
from codegen_sync import Codegen, ProgressKind, RunSpec, WaitTimeoutError
from codegen_sync._portal import get_portal
from codegen_sync.testing import Emulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(time_scale=0.001, run_seconds=(20.0, 60.0), seed=3) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[Codegen]:
    with Codegen(**emu.client_options()) as sync_client:
        yield sync_client


def portal_tasks() -> int:
    """Iterator pump tasks alive on the private loop."""

    def count() -> int:
        coros = [task.get_coro() for task in asyncio.all_tasks()]
        return sum(getattr(coro, "__qualname__", "") == "_Pump._run" for coro in coros)

    return get_portal().run_sync(count)


def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


# -- the API through the facade ---------------------------------------------------------


def test_run_waits_until_terminal_and_logs_read_each_entry_once(
    client: Codegen, emu: Emulator
) -> None:
    run = client.run("Write the release notes", repo_id=501)
    assert run.is_terminal
    assert run.succeeded
    assert "release notes" in (run.result or "")
    entries = list(client.agent_runs.logs(run.id))
    assert entries
    assert len({(e.created_at, e.message_type, e.thought) for e in entries}) == len(entries)
    assert emu.counters.runs_created == 1


def test_create_then_wait_with_updates_and_a_timeout(client: Codegen, emu: Emulator) -> None:
    emu.configure(run_seconds=1e6)  # this one never ends
    slow = client.agent_runs.create("Slow one")
    with pytest.raises(WaitTimeoutError) as caught:
        client.agent_runs.wait(slow, timeout=0.05)
    assert caught.value.run is None or caught.value.run.id == slow.id
    emu.configure(run_seconds=(20.0, 60.0))
    run = client.agent_runs.create("Quick one")
    statuses: list[str] = []
    done = client.agent_runs.wait(run, timeout=30, on_update=lambda r: statuses.append(r.status))
    assert done.is_terminal
    assert statuses
    assert statuses[-1] == done.status


def test_log_follow_streams_until_the_run_ends(client: Codegen) -> None:
    run = client.agent_runs.create("Follow my logs")
    followed = list(client.agent_runs.logs(run.id, follow=True))
    final = client.agent_runs.get(run.id)
    assert final.is_terminal
    assert [e.thought for e in followed] == [e.thought for e in client.agent_runs.logs(run.id)]


def test_lists_paginate_across_pages(client: Codegen, emu: Emulator) -> None:
    for i in range(230):
        emu.seed_run(f"seeded {i}")
    ids = [run.id for run in client.agent_runs.list()]
    assert len(ids) == 230
    assert ids == sorted(ids, reverse=True)
    assert [u.id for u in client.users.list()] == [u["id"] for u in emu.users]


def test_run_many_yields_one_outcome_per_input_with_progress(client: Codegen) -> None:
    events: list[codegen_sync.ProgressEvent] = []
    specs = [RunSpec("Upgrade CI", repo_id=repo) for repo in (501, 502)] + ["Bump version"]
    with client.run_many(specs, max_concurrency=2, on_progress=events.append) as fan_out:
        outcomes = list(fan_out)
    assert sorted(o.index for o in outcomes) == [0, 1, 2]
    assert all(o.ok for o in outcomes)
    assert sorted(fan_out.created) == sorted(o.run_id for o in outcomes if o.run_id)
    finished = [e for e in events if e.kind is ProgressKind.FINISHED]
    assert sorted(e.index for e in finished) == [0, 1, 2]


def test_gather_many_and_multi_run(client: Codegen) -> None:
    outcomes = client.gather_many(["one", "two", "three"], max_concurrency=3)
    assert [o.input for o in outcomes] == ["one", "two", "three"]
    assert all(o.unwrap().succeeded for o in outcomes)
    result = client.multi_run("Why does test_login flake?", concurrency=2)
    assert len(result.candidates) == 2
    assert result.synthesis_run is not None
    assert result.final == result.synthesis_run.result


def test_fan_out_events_iterate_as_an_iterator(client: Codegen) -> None:
    fan_out = client.run_many(["a", "b"], max_concurrency=2)
    kinds = [event.kind for event in fan_out.events()]
    assert kinds.count(ProgressKind.CREATED) == 2
    assert kinds.count(ProgressKind.FINISHED) == 2


def test_as_completed_yields_each_run_once(client: Codegen) -> None:
    runs = [client.agent_runs.create(f"task {i}") for i in range(4)]
    done = list(client.agent_runs.as_completed(runs, timeout=30))
    assert sorted(r.id for r in done) == sorted(r.id for r in runs)
    assert all(r.is_terminal for r in done)


def test_errors_are_the_async_packages_errors(client: Codegen) -> None:
    assert codegen_sync.NotFoundError is codegen_async.NotFoundError
    with pytest.raises(codegen_sync.NotFoundError):
        client.agent_runs.get(987654)
    with pytest.raises(ValueError, match="run_id"):
        client.agent_runs.get(-1)
    with pytest.raises(ValueError, match="limit"):
        client.agent_runs.list_page(limit=0)


def test_with_options_and_as_curl_take_the_sync_client(client: Codegen) -> None:
    seen: list[codegen_sync.APIResponse] = []
    patient = client.with_options(timeout=60, on_response=seen.append)
    assert isinstance(patient, Codegen)
    assert patient.users.me().id == client.users.me().id
    assert seen
    assert seen[0].status_code == 200
    curl = client.as_curl(lambda c: c.agent_runs.get(7))
    assert "/agent/run/7" in curl
    assert "$CODEGEN_API_KEY" in curl


def test_over_a_loopback_port(emu: Emulator) -> None:
    with emu.serve_in_thread() as url:
        assert url.startswith("http://127.0.0.1:")
        with Codegen(**emu.client_options()) as client:
            run = client.run("Over the wire")
            assert run.succeeded
            assert client.health_check().ok


def test_constructor_errors_name_the_setting() -> None:
    with pytest.raises(codegen_sync.ConfigurationError, match="max_retries"):
        Codegen(api_key="k", max_retries=-1)


# -- the portal ---------------------------------------------------------------------------


def test_works_inside_a_running_asyncio_loop(emu: Emulator) -> None:
    async def notebook_cell() -> int:
        with Codegen(**emu.client_options()) as client:
            return client.users.me().id

    assert asyncio.run(notebook_cell()) == emu.user_id


def test_works_inside_a_running_trio_loop(emu: Emulator) -> None:
    trio = pytest.importorskip("trio")

    async def cell() -> int:
        with Codegen(**emu.client_options()) as client:
            return client.users.me().id

    assert trio.run(cell) == emu.user_id


def test_eight_threads_share_one_client_and_its_rate_limiter() -> None:
    # 800 reads against 60 per window (60 ms here), enforced by the Emulator: only a
    # limiter that every thread shares keeps them all out of a 429.
    emu = Emulator(time_scale=0.002)
    run_id = int(emu.seed_run("shared")["id"])
    errors: list[BaseException] = []
    got: list[int] = []
    with emu, Codegen(**emu.client_options()) as client:

        def worker() -> None:
            try:
                for _ in range(100):
                    got.append(client.agent_runs.get(run_id).id)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not errors
    assert got == [run_id] * 800
    assert emu.counters.requests_by_route["get_agent_run"] == 800
    assert emu.counters.rate_limited == 0


def test_a_call_from_the_loop_thread_raises_instead_of_deadlocking(client: Codegen) -> None:
    portal = get_portal()
    with pytest.raises(RuntimeError, match="own event loop's thread"):
        portal.run_sync(client.users.me)
    with pytest.raises(RuntimeError, match="own event loop's thread"):
        client.run("callback calls back", on_update=lambda run: client.agent_runs.get(run.id))
    assert client.users.me().id  # the loop is fine


class Boom(BaseException):
    pass


@pytest.mark.parametrize("exc", [Boom(), SystemExit(3), KeyboardInterrupt()])
def test_a_base_exception_comes_back_and_the_loop_keeps_running(exc: BaseException) -> None:
    async def raises() -> None:
        raise exc

    portal = get_portal()
    with pytest.raises(type(exc)):
        portal.call(raises)

    async def fine() -> str:
        return "still running"

    assert portal.call(fine) == "still running"


def test_an_iterator_abandoned_half_way_is_closed(client: Codegen, emu: Emulator) -> None:
    baseline = portal_tasks()
    run = client.agent_runs.create("Abandon my log stream")
    entries = client.agent_runs.logs(run.id, follow=True)
    next(entries)
    assert portal_tasks() == baseline + 1  # its pump
    del entries
    gc.collect()
    assert wait_for(lambda: portal_tasks() == baseline)


def test_close_and_with_close_an_iterator_in_its_pump(client: Codegen, emu: Emulator) -> None:
    for i in range(150):
        emu.seed_run(f"seeded {i}")
    baseline = portal_tasks()
    runs = client.agent_runs.list()
    first = next(runs)
    assert portal_tasks() == baseline + 1
    runs.close()  # type: ignore[attr-defined]
    assert portal_tasks() == baseline
    assert list(runs) == []
    with client.agent_runs.list() as again:  # type: ignore[attr-defined]
        assert next(again).id == first.id
    assert portal_tasks() == baseline


def test_a_page_is_one_round_trip(client: Codegen, emu: Emulator) -> None:
    for i in range(150):
        emu.seed_run(f"seeded {i}")
    portal = get_portal()
    calls = 0
    wait = portal.wait

    def counting(job: object) -> object:
        nonlocal calls
        calls += 1
        return wait(job)  # type: ignore[arg-type]

    portal.wait = counting  # type: ignore[method-assign,assignment]
    try:
        assert len(list(client.agent_runs.list())) == 150
    finally:
        del portal.wait
    assert calls == 1 + 3  # make the iterator; page 1, page 2, the end


def test_a_client_never_closed_is_closed_when_collected(emu: Emulator) -> None:
    client = Codegen(**emu.client_options())
    client.users.me()
    inner = client._async
    del client
    gc.collect()
    assert wait_for(lambda: inner._closed)


def test_the_emulator_is_a_plain_context_manager() -> None:
    with Emulator(time_scale=0.001) as emu, Codegen(**emu.client_options()) as client:
        assert client.run("Write the release notes").succeeded
        assert emu.counters.runs_created == 1


# -- processes ----------------------------------------------------------------------------


def run_script(code: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_a_wait_cancels_it_and_the_client_still_works() -> None:
    proc = run_script(
        """
        import time
        from codegen_sync import Codegen
        from codegen_sync.testing import Emulator

        with Emulator(time_scale=0.001, run_seconds=1e6) as emu:
            with Codegen(**emu.client_options()) as client:
                run = client.agent_runs.create("never ends")
                print("waiting", flush=True)
                started = time.monotonic()
                try:
                    client.agent_runs.wait(run, timeout=60)
                except KeyboardInterrupt:
                    print("interrupted after", round(time.monotonic() - started, 1), flush=True)
                print("still works:", client.agent_runs.get(run.id).id == run.id, flush=True)
        """
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "waiting"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "interrupted after" in out
    assert "still works: True" in out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_after_fork_the_child_gets_a_fresh_loop() -> None:
    proc = run_script(
        """
        import os
        from codegen_sync import Codegen
        from codegen_sync.testing import Emulator

        emu = Emulator(time_scale=0.001)
        parent = Codegen(**emu.client_options())
        parent.users.me()
        pid = os.fork()
        if pid == 0:
            try:
                parent.users.me()
            except RuntimeError as exc:
                print("old client:", "another process" in str(exc), flush=True)
            with Codegen(**emu.client_options()) as child:
                print("child:", child.users.me().id == emu.user_id, flush=True)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("parent:", parent.users.me().id == emu.user_id, os.waitstatus_to_exitcode(status))
        parent.close()
        """
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "old client: True" in out
    assert "child: True" in out
    assert "parent: True 0" in out


def test_at_exit_open_clients_are_closed_and_the_loop_stops() -> None:
    proc = run_script(
        """
        import atexit, weakref
        assert not weakref.finalize._registered_with_atexit
        # Registered before weakref's exit hook, so it runs after it (atexit is LIFO).
        atexit.register(lambda: print("closed at exit:", inner._closed, flush=True))
        from codegen_sync import Codegen
        from codegen_sync.testing import Emulator

        emu = Emulator(time_scale=0.001)
        emu.seed_run("one to list")
        client = Codegen(**emu.client_options())
        client.users.me()
        inner = client._async
        stream = client.agent_runs.list()
        next(stream)
        """
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "closed at exit: True" in out
    assert "Task was destroyed" not in err
    assert "Traceback" not in err


def test_iterating_from_the_loop_thread_raises(client: Codegen) -> None:
    runs = client.agent_runs.list()
    with pytest.raises(RuntimeError, match="own event loop's thread"):
        get_portal().run_sync(next, runs)


def _settle() -> None:
    """Let closes the collector scheduled on the portal's loop run to their end."""
    gc.collect()
    get_portal().call(asyncio.sleep, 0.05)


def test_a_resource_keeps_its_client_alive(emu: Emulator) -> None:
    # Over a loopback port, so each client owns (and its finalizer closes) its connections.
    for i in range(3):
        emu.seed_run(f"seeded {i}")
    with emu.serve_in_thread():
        _use_clients_through_their_parts(emu.client_options())


def _use_clients_through_their_parts(options: dict[str, object]) -> None:
    assert "http_client" not in options
    runs = Codegen(**options).agent_runs
    _settle()
    assert len(runs.list_page().items) == 3
    derived = Codegen(**options).with_options(timeout=5.0)
    users = Codegen(**options).with_options(max_retries=1).users
    _settle()
    assert derived.users.me().id == users.me().id
    listing = Codegen(**options).agent_runs.list()
    fan_out = Codegen(**options).run_many(["keep me alive"], max_concurrency=1)
    _settle()
    assert len(list(listing)) == 3
    assert [o.ok for o in fan_out] == [True]
    inner = runs._async._http  # the last holder gone, the client is closed
    del runs
    gc.collect()
    assert wait_for(lambda: inner.http_client.is_closed)


def test_sync_calls_check_every_argument_before_the_first_request(
    client: Codegen, emu: Emulator
) -> None:
    emu.reset_counters()
    with pytest.raises(ValueError, match="timeout"):
        client.run("Explain", timeout=-1)
    with pytest.raises(TypeError, match="raise_on_failure"):
        client.run("Explain", raise_on_failure="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_progress"):
        client.gather_many(["a"], on_progress=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="follow"):
        client.agent_runs.logs(1001, follow="no")  # type: ignore[arg-type]
    assert emu.counters.requests == 0
