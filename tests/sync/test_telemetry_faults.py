"""The blocking twin of a raising tracer (issue 21.1 and 21.11): `codegen_sync` calls go
on when the user's span processor, provider, sampler or instrument raises; one WARNING."""

from __future__ import annotations

import logging

import pytest

from codegen_async.testing import Emulator
from codegen_sync import Codegen

from .._otel import FAULT_NAMES, faulty, recording


@pytest.mark.parametrize("fault", FAULT_NAMES)
def test_a_raising_tracer_never_breaks_a_blocking_call(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="codegen_async")
    with recording(), Emulator(time_scale=0.001, failure_rate=0.0) as emu:
        with faulty(fault) as faults, Codegen(**emu.client_options()) as client:
            created = client.agent_runs.create("one")
            run = client.run("two")
            page = client.agent_runs.list_page()
            outcomes = client.gather_many(["three", "four"], max_concurrency=2)
        assert created.id > 0
        assert run.succeeded
        assert all(outcome.ok for outcome in outcomes)
        assert {r.id for r in page.items} >= {created.id, run.id}
        assert sorted(emu.prompts.values()) == ["four", "one", "three", "two"]
    assert faults.raised == 1
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "codegen_async" and r.levelno == logging.WARNING
    ]
    assert len(warnings) == 1, warnings
    assert f"the user's {fault} is broken" in warnings[0]
