"""Fan-out against the Emulator at a fast time scale: multi_run, run_many, functions.run_many.

Asserted by the Emulator's counters and the outcomes, never by time.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

import codegen_async as cg
from codegen_async._constants import GROUP_METADATA_KEY, ROLE_METADATA_KEY
from codegen_async.testing import Emulator
from codegen_async.testing._lifecycle import unit_hash

FAST = 0.001  # one emulated minute passes in 60 ms
FIRST_RUN_ID = 1001  # the id a fresh Emulator gives its first API run


def seed_where(failing: int, rate: float = 0.5) -> int:
    """An Emulator seed with which, at failure_rate `rate`, exactly `failing` of the first
    three API runs fail and the fourth (the synthesis) completes."""
    for seed in range(1000):
        fails = [unit_hash(seed, "outcome", FIRST_RUN_ID + i, 0) < rate for i in range(4)]
        if sum(fails[:3]) == failing and not fails[3]:
            return seed
    raise AssertionError("no such seed")


def emulator(**kwargs: object) -> Emulator:
    options: dict[str, object] = {"time_scale": FAST, "seed": 3}
    options.update(kwargs)
    return Emulator(**options)  # type: ignore[arg-type]


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with emulator() as emu:
        yield emu


def group_of(emu: Emulator, group_id: str) -> list[dict[str, object]]:
    return [r for r in emu.runs if (r.get("metadata") or {}).get(GROUP_METADATA_KEY) == group_id]


# -- multi_run --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_multi_run_synthesizes_every_candidate(emu: Emulator) -> None:
    events: list[cg.ProgressEvent] = []
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        result = await client.multi_run(
            "Write a haiku about retries", concurrency=3, timeout=60, on_progress=events.append
        )
    assert len(result.candidates) == 3
    assert [run.id for run in result.agent_runs] == [o.run_id for o in result.outcomes]
    assert result.synthesis_run is not None
    assert result.synthesis_run.succeeded
    assert result.final == result.synthesis_run.result
    synthesis_prompt = emu.prompts[result.synthesis_run.id]
    assert "Write a haiku about retries" in synthesis_prompt
    for number, candidate in enumerate(result.candidates, 1):
        assert f"--- Answer {number} ---\n{candidate}" in synthesis_prompt
    grouped = group_of(emu, result.group_id)
    roles = Counter((r["metadata"] or {})[ROLE_METADATA_KEY] for r in grouped)  # type: ignore[index]
    assert roles == {"candidate": 3, "synthesis": 1}
    assert emu.counters.runs_created == 4
    done = [e for e in events if e.kind in (cg.ProgressKind.FINISHED, cg.ProgressKind.FAILED)]
    assert sorted(e.index for e in done) == [0, 1, 2]


@pytest.mark.anyio
async def test_multi_run_partial_failure_synthesizes_the_rest() -> None:
    async with (
        emulator(failure_rate=0.5, seed=seed_where(failing=1)) as emu,
        cg.AsyncCodegen(**emu.client_options()) as client,
    ):
        result = await client.multi_run("Refactor the parser", timeout=60)
    assert len(result.agent_runs) == 3
    assert sum(not run.succeeded for run in result.agent_runs) == 1
    assert len(result.candidates) == 2
    assert result.synthesis_run is not None
    prompt = emu.prompts[result.synthesis_run.id]
    assert "--- Answer 2 ---" in prompt
    assert "--- Answer 3 ---" not in prompt
    assert result.final == result.synthesis_run.result


@pytest.mark.anyio
async def test_multi_run_with_one_candidate_returns_it_without_synthesis() -> None:
    async with (
        emulator(failure_rate=0.5, seed=seed_where(failing=2)) as emu,
        cg.AsyncCodegen(**emu.client_options()) as client,
    ):
        result = await client.multi_run("Refactor the parser", timeout=60)
    assert len(result.candidates) == 1
    assert result.final == result.candidates[0]
    assert result.synthesis_run is None
    assert result.synthesis_error is None
    assert emu.counters.runs_created == 3


@pytest.mark.anyio
async def test_multi_run_total_failure_has_no_final() -> None:
    async with (
        emulator(failure_rate=1.0) as emu,
        cg.AsyncCodegen(**emu.client_options()) as client,
    ):
        result = await client.multi_run("Refactor the parser", timeout=60)
    assert result.final is None
    assert result.candidates == []
    assert result.synthesis_run is None
    assert [run.status for run in result.agent_runs] == [cg.RunStatus.FAILED] * 3
    assert emu.counters.runs_created == 3


@pytest.mark.anyio
async def test_multi_run_raises_when_no_candidate_could_be_created(emu: Emulator) -> None:
    emu.faults.add("error_before", route="create_agent_run", status=400, times=None)
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        with pytest.raises(cg.BadRequestError):
            await client.multi_run("Refactor the parser", timeout=60)
    assert emu.counters.runs_created == 0


@pytest.mark.anyio
async def test_multi_run_without_synthesis_takes_the_first_candidate(emu: Emulator) -> None:
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        result = await client.multi_run("Explain the bug", concurrency=2, synthesize=False)
    assert result.final == result.candidates[0]
    assert result.synthesis_run is None
    assert emu.counters.runs_created == 2


@pytest.mark.anyio
async def test_custom_synthesis_prompt_is_used(emu: Emulator) -> None:
    template = "Merge for {prompt}:\n{candidates}\n(literal {{braces}})"
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        result = await client.multi_run("Explain", concurrency=2, synthesis_prompt=template)
    assert result.synthesis_run is not None
    assert emu.prompts[result.synthesis_run.id].startswith("Merge for Explain:\n--- Answer 1")
    assert emu.prompts[result.synthesis_run.id].endswith("(literal {braces})")


# -- run_many ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_run_many_one_outcome_per_input_within_max_concurrency(emu: Emulator) -> None:
    prompts = [f"task {i}" for i in range(40)]
    in_flight = peak = 0

    def track(event: cg.ProgressEvent) -> None:
        nonlocal in_flight, peak
        if event.kind is cg.ProgressKind.CREATED:
            in_flight += 1
            peak = max(peak, in_flight)
        elif event.kind in (cg.ProgressKind.FINISHED, cg.ProgressKind.FAILED):
            in_flight -= event.outcome is not None and event.outcome.run_id is not None

    async with cg.AsyncCodegen(**emu.client_options()) as client:
        fan_out = client.run_many(prompts, max_concurrency=7, on_progress=track)
        outcomes = [outcome async for outcome in fan_out]
        assert client._shared.engine.poller.watched == 0
    assert sorted(o.index for o in outcomes) == list(range(40))
    assert all(o.ok and o.input == prompts[o.index] for o in outcomes)
    assert all(emu.prompts[o.unwrap().id] == prompts[o.index] for o in outcomes)
    assert 1 < peak <= 7
    assert sorted(fan_out.created) == sorted(o.run_id for o in outcomes)
    assert len(group_of(emu, fan_out.group_id)) == 40
    assert emu.counters.runs_created == 40
    assert emu.counters.rate_limited == 0


@pytest.mark.anyio
async def test_gather_many_across_repositories_in_input_order(emu: Emulator) -> None:
    repo_ids = [int(repo["id"]) for repo in emu.repos][:3]  # type: ignore[call-overload]
    specs = [cg.RunSpec("Upgrade the CI image", repo_id=repo_id) for repo_id in repo_ids]
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        outcomes = await client.gather_many(specs, max_concurrency=2)
    assert [o.index for o in outcomes] == [0, 1, 2]
    stored = emu._store.runs  # the API's run view does not show the repository
    assert [stored[o.unwrap().id].repo_id for o in outcomes] == repo_ids


@pytest.mark.anyio
async def test_events_cover_each_input_in_order(emu: Emulator) -> None:
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        fan_out = client.run_many(["a", "b", "c", "d"], max_concurrency=2)
        events = [event async for event in fan_out.events()]
    for index in range(4):
        kinds = [e.kind for e in events if e.index == index]
        assert kinds[0] is cg.ProgressKind.CREATED
        assert kinds[-1] is cg.ProgressKind.FINISHED
        assert set(kinds[1:-1]) <= {cg.ProgressKind.STATUS_CHANGED}
        statuses = [e.run.status for e in events if e.index == index and e.run is not None]
        assert statuses[-1] == cg.RunStatus.COMPLETE
        assert len(statuses) == len(set(statuses))  # a status change is reported once
    assert [e.elapsed for e in events] == sorted(e.elapsed for e in events)


@pytest.mark.anyio
async def test_fail_fast_starts_nothing_after_a_failure() -> None:
    async with (
        emulator(failure_rate=1.0) as emu,
        cg.AsyncCodegen(**emu.client_options()) as client,
    ):
        outcomes = await client.gather_many(
            ["a", "b", "c", "d", "e"], max_concurrency=1, fail_fast=True
        )
    assert outcomes[0].run is not None
    assert outcomes[0].run.status == cg.RunStatus.FAILED
    assert all(isinstance(o.error, cg.RunNotStartedError) for o in outcomes[1:])
    assert emu.counters.runs_created == 1
    with pytest.raises(cg.RunNotStartedError, match=r"items\[1\] not started: fail_fast"):
        outcomes[1].unwrap()


@pytest.mark.anyio
async def test_timeout_reports_runs_in_flight_and_inputs_not_started() -> None:
    async with (
        emulator(time_scale=1.0, pending_seconds=0.0, run_seconds=600.0) as emu,
        cg.AsyncCodegen(**emu.client_options()) as client,
    ):
        outcomes = await client.gather_many(["a", "b", "c", "d"], max_concurrency=2, timeout=0.3)
    assert [o.index for o in outcomes] == [0, 1, 2, 3]
    in_flight = [o for o in outcomes if isinstance(o.error, cg.WaitTimeoutError)]
    not_started = [o for o in outcomes if isinstance(o.error, cg.RunNotStartedError)]
    assert len(in_flight) == 2
    assert len(not_started) == 2
    assert all(o.run_id is not None and o.run is None for o in in_flight)
    assert all(o.run_id is None for o in not_started)
    assert emu.counters.runs_created == 2


@pytest.mark.anyio
async def test_create_errors_are_outcomes_not_exceptions(emu: Emulator) -> None:
    emu.faults.add("error_before", route="create_agent_run", status=402, times=2)
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        outcomes = await client.gather_many(["a", "b", "c"], max_concurrency=1)
    errors = [o for o in outcomes if o.error is not None]
    assert len(errors) == 2
    assert all(isinstance(o.error, cg.AgentRunLimitReachedError) for o in errors)
    assert all(o.run_id is None for o in errors)
    assert sum(o.ok for o in outcomes) == 1


@pytest.mark.anyio
async def test_cancelling_a_fan_out_stops_pending_creations() -> None:
    async with (
        emulator(pending_seconds=0.0, run_seconds=600.0, time_scale=1.0) as emu,
        cg.AsyncCodegen(**emu.client_options()) as client,
    ):
        fan_out = client.run_many([f"p{i}" for i in range(50)], max_concurrency=5)
        with anyio.move_on_after(0.5):
            async for _ in fan_out:
                pass
        created = emu.counters.runs_created
        await anyio.sleep(0.2)
        assert emu.counters.runs_created == created  # nothing more was started
        assert sorted(fan_out.created) == sorted(r["id"] for r in emu.runs)
        assert 1 <= len(fan_out.created) <= 5
        assert client._shared.engine.poller.watched == 0
        assert (await client.users.me()).id > 0  # the client is still usable


@pytest.mark.anyio
async def test_leaving_the_loop_early_leaves_nothing_behind(emu: Emulator) -> None:
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        async with client.run_many([f"p{i}" for i in range(10)], max_concurrency=3) as fan_out:
            async for _ in fan_out:
                break
        assert client._shared.engine.poller.watched == 0
        created = emu.counters.runs_created
        abandoned = client.run_many([f"q{i}" for i in range(10)], max_concurrency=3)
        async for _ in abandoned:
            break
        del abandoned
        gc.collect()
        assert client._shared.engine.poller.watched == 0  # finalized: stopped watching
        await anyio.sleep(0.05)
    assert emu.counters.runs_created <= created + 3


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("items", "error", "match"),
    [
        ("one prompt", TypeError, "not a single one"),
        (["ok", 3], TypeError, r"items\[1\]"),
        (["ok", "  "], ValueError, r"items\[1\]: prompt must not be empty"),
        ([cg.RunSpec("ok", repo_id=0)], ValueError, r"items\[0\]: repo_id"),
        ([cg.RunSpec("ok", agent_type="gpt")], ValueError, "agent_type"),  # type: ignore[arg-type]
        ([cg.RunSpec("ok", metadata={"x": object()})], ValueError, "metadata"),
    ],
)
async def test_run_many_inputs_are_checked_before_anything_starts(
    emu: Emulator, items: object, error: type[Exception], match: str
) -> None:
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        with pytest.raises(error, match=match):
            client.run_many(items)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_concurrency"):
            client.run_many(["ok"], max_concurrency=0)
    assert emu.counters.requests == 0


@pytest.mark.anyio
@pytest.mark.network
async def test_run_many_200_under_faults_accounts_for_every_input() -> None:
    emu = emulator(seed=5)
    async with emu.serve(port=0):
        emu.faults.random(
            rate=0.05,
            seed=9,
            routes=["create_agent_run", "get_agent_run", "list_agent_runs"],
        )
        options = emu.client_options()
        options.update({"timeout": 2.0, "max_retries": 4})
        async with cg.AsyncCodegen(**options) as client:
            fan_out = client.run_many([f"item {i}" for i in range(200)], max_concurrency=20)
            outcomes = [outcome async for outcome in fan_out]
    counts = Counter(o.index for o in outcomes)
    assert sorted(counts) == list(range(200))
    assert set(counts.values()) == {1}
    failed = [(o.index, o.error) for o in outcomes if not o.ok]
    assert failed == []
    assert sorted(fan_out.created) == sorted(o.unwrap().id for o in outcomes)
    assert emu.counters.duplicate_creates == 0
    assert emu.counters.runs_created == 200
    assert sorted(int(r["id"]) for r in group_of(emu, fan_out.group_id)) == sorted(fan_out.created)
    assert emu.counters.rate_limited == 0
    assert sum(emu.counters.faults_injected.values()) > 0


# -- functions.run_many -----------------------------------------------------------------


@pytest.mark.anyio
async def test_functions_run_many_one_outcome_per_repository(emu: Emulator) -> None:
    repos = [*[str(repo["full_name"]) for repo in emu.repos][:3], "nobody/missing"]
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        outcomes = await client.functions.run_many(
            "add-type-hints", repos, message="please", max_concurrency=2
        )
        with pytest.raises(ValueError, match=r"repo_full_names\[1\]"):
            await client.functions.run_many("add-type-hints", ["a/b", "nope"])
    assert [o.repo_full_name for o in outcomes] == repos
    assert [o.ok for o in outcomes] == [True, True, True, False]
    assert outcomes[3].unwrap().error == "Repository nobody/missing not found."
    assert emu.counters.requests_by_route["legacy_run"] == 4


PNG = "data:image/png;base64,iVBORw0KGgo="


@pytest.mark.anyio
async def test_images_reach_every_run_of_a_fan_out_and_a_multi_run() -> None:
    emu = Emulator(time_scale=0.001)
    async with emu, cg.AsyncCodegen(**emu.client_options()) as client:
        outcomes = await client.gather_many([cg.RunSpec("with a picture", images=[PNG])])
        assert outcomes[0].ok
        result = await client.multi_run("Explain the screenshot", concurrency=2, images=[PNG])
        assert result.synthesis_run is not None
        with pytest.raises(ValueError, match=r"items\[0\]: images\[0\]"):
            client.run_many([cg.RunSpec("bad", images=["not a data uri"])])
    assert emu.counters.runs_created == 4
    assert [run.images for run in emu._store.runs.values()] == [[PNG]] * 4


@pytest.mark.anyio
async def test_one_run_spec_carries_the_create_arguments_everywhere(emu: Emulator) -> None:
    """`create`, `create_spec`, `run` and `multi_run` send the same fields for the same
    arguments; images given as a one-shot iterator reach every run made from them."""
    repo_id = int(emu.repos[0]["id"])  # type: ignore[call-overload]
    fields: dict[str, Any] = {"repo_id": repo_id, "model": "claude-x", "agent_type": "codegen"}
    fields["metadata"] = {"team": "ci"}
    spec = cg.RunSpec("Same task", images=iter([PNG]), **fields)
    assert spec.images == (PNG,)
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        by_create = await client.agent_runs.create("Same task", images=iter([PNG]), **fields)
        by_spec = await client.agent_runs.create_spec(spec, idempotency_key="spec-key")
        by_run = await client.run("Same task", images=[PNG], **fields)
        multi = await client.multi_run("Same task", concurrency=2, images=iter([PNG]), **fields)
        with pytest.raises(TypeError, match="spec must be a RunSpec, got str"):
            await client.agent_runs.create_spec("Same task")  # type: ignore[arg-type]
    assert spec.metadata == {"team": "ci"}  # the caller's spec is not changed
    assert multi.synthesis_run is not None
    ids = [by_create.id, by_spec.id, by_run.id, *(r.id for r in multi.agent_runs)]
    stored = [emu._store.runs[run_id] for run_id in [*ids, multi.synthesis_run.id]]
    assert len(stored) == 6
    for run in stored:
        assert (run.repo_id, run.model, run.agent_type) == (repo_id, "claude-x", "codegen")
        assert run.images == [PNG]
        assert (run.metadata or {}).get("team") == "ci"
    assert (stored[1].metadata or {}).get("codegen_sdk_idempotency_key") == "spec-key"
    roles = [(run.metadata or {}).get(ROLE_METADATA_KEY) for run in stored]
    assert roles == [None, None, None, "candidate", "candidate", "synthesis"]
    assert {emu.prompts[run_id] for run_id in ids} == {"Same task"}
    assert "Same task" in emu.prompts[multi.synthesis_run.id] != "Same task"


@pytest.mark.anyio
async def test_a_cancelled_fan_out_accounts_for_creates_in_flight() -> None:
    # Every request takes 0.3 s: cancelling at 0.15 s catches creates mid-POST. Their
    # outcome is unknown to the client, so their keys are reported, never forgotten.
    emu = Emulator(time_scale=1.0, latency=0.3, run_seconds=600.0)
    async with emu, cg.AsyncCodegen(**emu.client_options()) as client:
        fan_out = client.run_many([f"p{i}" for i in range(8)], max_concurrency=8)
        await client.users.me()  # the caller's id is known: the creates go out at once
        with anyio.move_on_after(0.45):
            async for _ in fan_out:
                pass
        await anyio.sleep(0.5)  # let the server finish what it was doing
        unconfirmed = {u.idempotency_key for u in fan_out.unconfirmed}
        assert unconfirmed
        created = set(fan_out.created)
        for run in emu.runs:  # every run on the server is known one way or the other
            key = run["metadata"][cg.IDEMPOTENCY_METADATA_KEY]
            assert run["id"] in created or key in unconfirmed


@pytest.mark.anyio
async def test_creates_beyond_one_window_wait_their_turn_instead_of_failing() -> None:
    # Every wait for a token counts against the call's timeout: 25 creates at once under
    # a 10-per-window limit with a timeout of half a window (30 s at the real scale) run
    # out of time waiting for a token. Nothing was sent for them, so the fan-out puts
    # them back in the queue instead of reporting them as errors.
    async with emulator(time_scale=0.01) as emu:
        options = emu.client_options()
        async with cg.AsyncCodegen(**{**options, "timeout": 0.3}) as client:
            outcomes = await client.gather_many(
                [f"task {i}" for i in range(25)], max_concurrency=25
            )
    assert [o.error for o in outcomes if not o.ok] == []
    assert emu.counters.runs_created == 25
    assert emu.counters.rate_limited == 0
