"""One rule per kind of value (`codegen_async._validate`), and every high-level call checks
every argument before its first request: the Emulator counts zero requests and zero runs."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

import codegen_async as cg
from codegen_async import _validate
from codegen_async.models import SourceType
from codegen_async.testing import Emulator

NAN = math.nan
INF = math.inf


# -- the rules ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, 0.5, 1, 60, 1e6])
def test_timeout_accepts_none_and_finite_positive_numbers(value: object) -> None:
    expected = None if value is None else float(value)  # type: ignore[arg-type]
    assert _validate.timeout("timeout", value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (-1, ValueError),
        (0, ValueError),
        (0.0, ValueError),
        (NAN, ValueError),
        (INF, ValueError),
        (-INF, ValueError),
        ("60", TypeError),
        (True, TypeError),
        ([60], TypeError),
    ],
)
def test_timeout_refuses(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="timeout"):
        _validate.timeout("timeout", value)


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, "true"])
def test_strict_bool_refuses_what_is_not_a_bool(value: object) -> None:
    with pytest.raises(TypeError, match="follow must be True or False"):
        _validate.strict_bool("follow", value)


def test_callback_refuses_what_cannot_be_called() -> None:
    assert _validate.callback("on_update", None) is None
    assert _validate.callback("on_update", print) is print
    for bad in ("x", 5, [print]):
        with pytest.raises(TypeError, match="on_update must be callable"):
            _validate.callback("on_update", bad)


def test_enum_member_takes_a_member_or_its_value_in_any_case() -> None:
    assert _validate.enum_member("source_type", SourceType.API, SourceType) is SourceType.API
    assert _validate.enum_member("source_type", "api", SourceType) is SourceType.API
    assert _validate.enum_member("source_type", "Github_PR_Review", SourceType) is (
        SourceType.GITHUB_PR_REVIEW
    )
    for bad in ("BOGUS", SourceType("BOGUS"), 3, None):  # an open enum's unknown value too
        with pytest.raises(ValueError, match="source_type must be one of LOCAL"):
            _validate.enum_member("source_type", bad, SourceType)


def test_strings_refuses_a_single_string() -> None:
    assert _validate.strings("ignored_checks", ("lint", "test")) == ["lint", "test"]
    with pytest.raises(TypeError, match="ignored_checks must be a list of strings"):
        _validate.strings("ignored_checks", "lint")
    with pytest.raises(TypeError, match=r"ignored_checks\[1\] must be a str"):
        _validate.strings("ignored_checks", ["lint", 3])


@pytest.mark.parametrize(
    "value",
    [{1: "x"}, {"a": {1: "x"}}, {"a": [{"b": {True: 1}}]}, {"a": ({None: 1},)}],
)
def test_json_object_keys_are_strings_at_every_depth(value: dict[Any, Any]) -> None:
    with pytest.raises(TypeError, match=r"metadata.* keys must be strings"):
        _validate.json_object("metadata", value)


def test_json_object_refuses_nesting_deeper_than_it_checks() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ValueError, match="nested deeper"):
        _validate.json_object("metadata", deep)


@pytest.mark.parametrize(
    ("name", "value", "match"),
    [
        ("X-Team", "a\r\nX-Evil: 1", "line break"),
        ("X-Team", "a\nb", "line break"),
        ("X-Team", "a\x00b", "control"),
        ("X-Team", "caf\u00e9", "not ASCII"),
        ("X-Team", "a\x7fb", "control"),
        ("X Team", "a", "not a valid HTTP header name"),
        ("X-Team:", "a", "not a valid HTTP header name"),
    ],
)
def test_header_refuses_line_breaks_and_bad_names(name: str, value: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _validate.header(name, value)


def test_poll_policy_values_are_finite() -> None:
    for kwargs in ({"maximum": INF}, {"factor": INF}, {"maximum": INF, "factor": INF}):
        with pytest.raises(ValueError, match="must be a finite number"):
            cg.PollPolicy(**kwargs)
    with pytest.raises(ValueError):
        cg.PollPolicy().scaled(INF)
    assert cg.PollPolicy(maximum=60.0, factor=2.0).maximum == 60.0


# -- every high-level call checks first ---------------------------------------------------


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(time_scale=0.001) as emulator:
        yield emulator


Call = Callable[[cg.AsyncCodegen], Any]

BAD_RUN_ARGUMENTS: list[tuple[dict[str, object], type[Exception], str]] = [
    ({"timeout": -1}, ValueError, "timeout"),
    ({"timeout": NAN}, ValueError, "timeout"),
    ({"timeout": INF}, ValueError, "timeout"),
    ({"timeout": 0}, ValueError, "timeout"),
    ({"timeout": "60"}, TypeError, "timeout"),
    ({"on_update": "x"}, TypeError, "on_update"),
    ({"raise_on_failure": "no"}, TypeError, "raise_on_failure"),
    ({"raise_on_failure": 0}, TypeError, "raise_on_failure"),
    ({"metadata": {"a": {1: "x"}}}, TypeError, "metadata"),
    ({"repo_id": True}, TypeError, "repo_id"),
    ({"images": "data:image/png;base64,AAAA"}, TypeError, "images must be a list"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_RUN_ARGUMENTS)
async def test_run_checks_every_argument_before_creating_anything(
    emu: Emulator, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        with pytest.raises(error, match=match):
            await client.run("Explain", **kwargs)  # type: ignore[arg-type]
    assert emu.counters.requests == 0
    assert emu.runs == []


BAD_FAN_OUT_ARGUMENTS: list[tuple[dict[str, object], type[Exception], str]] = [
    ({"timeout": -1}, ValueError, "timeout"),
    ({"timeout": NAN}, ValueError, "timeout"),
    ({"timeout": "60"}, TypeError, "timeout"),
    ({"on_progress": 5}, TypeError, "on_progress"),
    ({"on_progress": "x"}, TypeError, "on_progress"),
    ({"fail_fast": "no"}, TypeError, "fail_fast"),
    ({"max_concurrency": 0}, ValueError, "max_concurrency"),
    ({"max_concurrency": 2.5}, TypeError, "max_concurrency"),
    ({"max_concurrency": True}, TypeError, "max_concurrency"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_FAN_OUT_ARGUMENTS)
async def test_run_many_and_gather_many_check_every_argument_first(
    emu: Emulator, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        with pytest.raises(error, match=match):
            client.run_many(["a", "b"], **kwargs)  # type: ignore[arg-type]
        with pytest.raises(error, match=match):
            await client.gather_many(["a", "b"], **kwargs)  # type: ignore[arg-type]
    assert emu.counters.requests == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"timeout": -1}, ValueError, "timeout"),
        ({"timeout": NAN}, ValueError, "timeout"),
        ({"timeout": "60"}, TypeError, "timeout"),
        ({"on_progress": 5}, TypeError, "on_progress"),
        ({"synthesize": "no"}, TypeError, "synthesize"),
        ({"concurrency": "3"}, TypeError, "concurrency"),
        ({"metadata": {2: "x"}}, TypeError, "metadata"),
        ({"metadata": "x"}, TypeError, "metadata must be a mapping"),
        ({"images": ["http://x/a.png"]}, ValueError, r"^images\[0\]"),
        ({"synthesis_prompt": "no fields"}, ValueError, "must contain"),
        ({"synthesis_prompt": "{prompt} only"}, ValueError, r"\{candidates\}"),
        ({"synthesis_prompt": "{prompt} {candidates} {extra}"}, ValueError, "extra"),
        ({"synthesis_prompt": "{prompt} {candidates"}, ValueError, "not a valid template"),
        ({"synthesis_prompt": 7}, TypeError, "synthesis_prompt"),
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"synthesize": "yes"}, TypeError, "synthesize"),
        ({"repo_id": -1}, ValueError, "repo_id"),
        ({"timeout": 0}, ValueError, "timeout"),
    ],
)
async def test_multi_run_checks_every_argument_first(
    emu: Emulator, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        with pytest.raises(error, match=match):
            await client.multi_run("Explain", **kwargs)  # type: ignore[arg-type]
    assert emu.counters.requests == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda c: c.agent_runs.wait(1001, raise_on_failure="no"), TypeError, "raise_on_failure"),
        (lambda c: c.agent_runs.wait(1001, on_update=5), TypeError, "on_update"),
        (lambda c: c.agent_runs.wait(1001, timeout=NAN), ValueError, "timeout"),
        (lambda c: c.agent_runs.logs(1001, follow="no"), TypeError, "follow"),
        (lambda c: c.agent_runs.as_completed([1001], timeout=-1), ValueError, "timeout"),
        (lambda c: c.agent_runs.list(source_type="BOGUS"), ValueError, "source_type"),
        (lambda c: c.agent_runs.list_page(source_type="BOGUS"), ValueError, "source_type"),
        (
            lambda c: c.repositories.update_check_suite_settings(1, ignored_checks="lint"),
            TypeError,
            "ignored_checks",
        ),
        (
            lambda c: c.repositories.update_check_suite_settings(1, high_priority_apps="bot"),
            TypeError,
            "high_priority_apps",
        ),
        (
            lambda c: c.repositories.update_check_suite_settings(1, custom_prompts={1: "x"}),
            TypeError,
            "custom_prompts",
        ),
        (
            lambda c: c.agent_runs.create("x", metadata={"nested": {1: "x"}}),
            TypeError,
            "metadata",
        ),
        (lambda c: c.agent_runs.create_spec("x"), TypeError, "spec must be a RunSpec"),
        (lambda c: c.agent_runs.create_spec(cg.RunSpec("x", repo_id=0)), ValueError, "repo_id"),
        (lambda c: c.agent_runs.create_spec(cg.RunSpec(" ")), ValueError, "prompt"),
    ],
)
async def test_resource_arguments_are_refused_before_sending(
    emu: Emulator, call: Call, error: type[Exception], match: str
) -> None:
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        with pytest.raises(error, match=match):
            await _first_step(call(client))
    assert emu.counters.requests == 0


async def _first_step(result: Any) -> None:
    """Await a coroutine, or take the first item of an async iterator."""
    if hasattr(result, "__anext__"):
        await result.__anext__()
    else:
        await result


@pytest.mark.anyio
async def test_source_type_in_any_case_is_sent_as_the_enum_value(emu: Emulator) -> None:
    seen: list[str] = []

    def record(response: cg.APIResponse) -> None:
        seen.append(str(response.status_code))

    async with cg.AsyncCodegen(**emu.client_options()) as client:
        page = await client.agent_runs.list_page(source_type="api")
        assert page.items == []
        tuned = client.with_options(on_response=record)
        assert [r async for r in tuned.agent_runs.list(source_type="Api")] == []
    assert seen == ["200"]


@pytest.mark.anyio
async def test_the_fan_out_itself_uses_the_one_rule(emu: Emulator) -> None:
    from codegen_async._fanout import RunMany

    async with cg.AsyncCodegen(**emu.client_options()) as client:
        poller = client.agent_runs._engine.poller

        def fan_out(timeout: object = None, fail_fast: object = False) -> RunMany:
            return RunMany(
                client.agent_runs,
                poller,
                [],
                max_concurrency=1,
                timeout=timeout,  # type: ignore[arg-type]
                fail_fast=fail_fast,  # type: ignore[arg-type]
                on_progress=None,
            )

        with pytest.raises(ValueError, match="finite number of seconds > 0"):
            fan_out(timeout=0)  # one rule: zero is refused (the poller used to take it)
        with pytest.raises(TypeError):
            fan_out(timeout="1")
        with pytest.raises(TypeError, match="must be True or False"):
            fan_out(fail_fast="no")


@pytest.mark.anyio
async def test_the_poller_checks_with_the_one_rule(emu: Emulator) -> None:
    async with cg.AsyncCodegen(**emu.client_options()) as client:
        poller = client.agent_runs._engine.poller
        with pytest.raises(ValueError, match="finite number of seconds > 0"):
            await poller.wait(1, timeout=0)
        with pytest.raises(TypeError):
            await poller.wait(1, timeout="1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="> 0"):
            await poller.wait(0)
        with pytest.raises(TypeError):
            await poller.wait(httpx)  # type: ignore[arg-type]
