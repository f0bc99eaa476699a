"""OpenTelemetry: the span trees of `run()` and `run_many`, HTTP attribute names, retries,
rate-limit waits, metrics, the sync facade's context, no secret in any of it, and a
tracer or meter that raises never breaking a call.

The SDK's in-memory exporter and metric reader are installed once per process as the
global providers (see `tests/_otel.py`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from codegen_async import AsyncCodegen, RateLimits
from codegen_async._convert import unstructure
from codegen_async._telemetry import url_template
from codegen_async.models import AgentRun
from codegen_async.testing import Emulator
from codegen_sync import Codegen

from .._otel import FAULT_NAMES, Otel, faulty, recording

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "tests" / "spec" / "codegen-openapi.json"
PROMPT = "Fix the login bug SECRET-PROMPT-7f3a"
KEY = "sk-TELEMETRY-KEY-5c9e"
GET_RUN = "GET /v1/organizations/{org_id}/agent/run/{agent_run_id}"
CREATE = "POST /v1/organizations/{org_id}/agent/run"
HTTP_ATTRIBUTES = {
    "http.request.method",
    "url.template",
    "server.address",
    "server.port",
    "http.response.status_code",
    "codegen.request_id",
}


@pytest.fixture
def otel() -> Iterator[Otel]:
    with recording() as recorder:
        yield recorder


def _is_child(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


def _assert_http_span(span: ReadableSpan) -> None:
    attributes = dict(span.attributes or {})
    assert span.kind is trace.SpanKind.CLIENT
    assert span.name == f"{attributes['http.request.method']} {attributes['url.template']}"
    assert set(attributes) >= HTTP_ATTRIBUTES, attributes
    assert "{" in span.name or span.name == "GET /v1/users/me", span.name  # never raw ids
    assert not any(ch.isdigit() for ch in str(attributes["url.template"]).replace("v1", ""))


def _no_secret(spans: Sequence[ReadableSpan], found: dict[str, Any], *secrets: str) -> None:
    texts = []
    for span in spans:
        texts.append(span.name)
        texts.append(json.dumps(dict(span.attributes or {}), default=str))
        for event in span.events:
            texts.append(event.name)
            texts.append(json.dumps(dict(event.attributes or {}), default=str))
    texts.append(json.dumps(found, default=str))
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob
        assert secret[:12] not in blob


# -- the span tree of run() ------------------------------------------------------------


@pytest.mark.anyio
async def test_run_span_tree(otel: Otel) -> None:
    # 0.01, not 0.001: at 0.001 a loaded machine's first poll can already see COMPLETE,
    # and the test needs the run seen RUNNING first (a status change is an event).
    async with (
        Emulator(time_scale=0.01, api_key=KEY) as emu,
        AsyncCodegen(**emu.client_options()) as client,
    ):
        with trace.get_tracer("test").start_as_current_span("request") as root:
            run = await client.run(PROMPT)
    assert run.succeeded
    (request,) = otel.named("request")
    assert request.context.span_id == root.get_span_context().span_id
    (run_span,) = otel.named("codegen.run")
    assert _is_child(run_span, request)
    assert run_span.attributes == {"codegen.prompt.length": len(PROMPT)}
    (create,) = otel.named(CREATE)
    assert _is_child(create, run_span)
    _assert_http_span(create)
    assert create.attributes["http.response.status_code"] == 200
    (wait,) = otel.named("codegen.agent_run.wait")
    assert _is_child(wait, run_span)
    assert wait.attributes["codegen.agent_run.id"] == run.id
    assert wait.attributes["codegen.agent_run.status"] == "COMPLETE"
    statuses = [e.attributes["codegen.agent_run.status"] for e in wait.events]
    assert statuses[-1] == "COMPLETE"
    assert "RUNNING" in statuses
    gets = otel.named(GET_RUN)
    assert gets
    assert all(_is_child(get, wait) for get in gets)
    for get in gets:
        _assert_http_span(get)
    # The run returned carries the request id of the response it came in, also on the span.
    assert run.request_id is not None
    assert run.request_id == gets[-1].attributes["codegen.request_id"]
    assert wait.end_time is not None
    assert run_span.end_time is not None
    assert wait.end_time <= run_span.end_time
    found = otel.metrics()
    assert otel.total(found, "codegen.agent_runs.created") == 1
    assert otel.total(found, "codegen.agent_runs.finished") == 1
    assert otel.total(found, "codegen.agent_runs.failed") == 0
    requests = found["http.client.request.duration"]  # its count: requests by status
    assert {a["url.template"] for a, _ in requests} >= {
        "/v1/organizations/{org_id}/agent/run",
        "/v1/organizations/{org_id}/agent/run/{agent_run_id}",
    }
    assert all(a["http.response.status_code"] == 200 for a, _ in requests)
    assert "http.client.request.duration" in found
    assert "codegen.client.rate_limit.wait" in found
    _no_secret(otel.spans(), found, KEY, PROMPT)


# -- the span tree of run_many ---------------------------------------------------------


@pytest.mark.anyio
async def test_run_many_span_tree(otel: Otel) -> None:
    prompts = [f"{PROMPT} #{i}" for i in range(3)]
    async with (
        Emulator(time_scale=0.001, api_key=KEY, failure_rate=0.0) as emu,
        AsyncCodegen(**emu.client_options()) as client,
    ):
        with trace.get_tracer("test").start_as_current_span("batch"):
            outcomes = await client.gather_many(prompts, max_concurrency=2)
    assert all(outcome.ok for outcome in outcomes)
    assert all(outcome.run is not None and outcome.run.request_id for outcome in outcomes)
    (batch,) = otel.named("batch")
    (fan_out,) = otel.named("codegen.run_many")
    assert _is_child(fan_out, batch)
    assert fan_out.attributes == {
        "codegen.fan_out.inputs": 3,
        "codegen.fan_out.created": 3,
        "codegen.fan_out.succeeded": 3,
        "codegen.fan_out.failed": 0,
        "codegen.fan_out.errors": 0,
    }
    creates = otel.named(CREATE)
    assert len(creates) == 3
    assert all(_is_child(create, fan_out) for create in creates)
    waits = otel.named("codegen.agent_run.wait")
    assert sorted(w.attributes["codegen.agent_run.id"] for w in waits) == sorted(
        o.run.id for o in outcomes if o.run is not None
    )
    assert all(_is_child(wait, fan_out) for wait in waits)
    assert all(w.attributes["codegen.agent_run.status"] == "COMPLETE" for w in waits)
    # The poller's refreshes run in the fan-out's steps: never outside its span.
    refreshes = [s for s in otel.spans() if s.name.startswith("GET ")]
    assert refreshes
    assert all(_is_child(s, fan_out) for s in refreshes)
    found = otel.metrics()
    assert otel.total(found, "codegen.agent_runs.created") == 3
    assert otel.total(found, "codegen.agent_runs.finished") == 3
    _no_secret(otel.spans(), found, KEY, *prompts)


@pytest.mark.anyio
async def test_failed_runs_are_counted(otel: Otel) -> None:
    async with (
        Emulator(time_scale=0.001, failure_rate=1.0) as emu,
        AsyncCodegen(**emu.client_options()) as client,
    ):
        outcomes = await client.gather_many(["a", "b"])
    assert not any(outcome.ok for outcome in outcomes)
    (fan_out,) = otel.named("codegen.run_many")
    assert fan_out.attributes["codegen.fan_out.failed"] == 2
    assert fan_out.attributes["codegen.fan_out.errors"] == 0
    waits = otel.named("codegen.agent_run.wait")
    assert [w.attributes["error.type"] for w in waits] == ["FAILED", "FAILED"]
    found = otel.metrics()
    assert otel.total(found, "codegen.agent_runs.failed") == 2
    assert found["codegen.agent_runs.failed"][0][0] == {"codegen.agent_run.status": "FAILED"}


@pytest.mark.anyio
async def test_multi_run_span_holds_its_fan_out_and_synthesis(otel: Otel) -> None:
    async with (
        Emulator(time_scale=0.001, api_key=KEY) as emu,
        AsyncCodegen(**emu.client_options()) as client,
    ):
        result = await client.multi_run(PROMPT, concurrency=2)
    assert result.synthesis_run is not None
    (multi,) = otel.named("codegen.multi_run")
    assert multi.parent is None
    assert multi.attributes == {
        "codegen.prompt.length": len(PROMPT),
        "codegen.multi_run.concurrency": 2,
    }
    (fan_out,) = otel.named("codegen.run_many")
    assert _is_child(fan_out, multi)
    assert fan_out.attributes["codegen.fan_out.succeeded"] == 2
    # The synthesis run is created and awaited under the multi_run span itself.
    (synthesis,) = [
        span
        for span in otel.named("codegen.agent_run.wait")
        if span.attributes["codegen.agent_run.id"] == result.synthesis_run.id
    ]
    assert _is_child(synthesis, multi)
    creates = otel.named("POST /v1/organizations/{org_id}/agent/run")
    assert sum(_is_child(span, multi) for span in creates) == 1  # the synthesis run's create
    _no_secret(otel.spans(), otel.metrics(), KEY, PROMPT)


@pytest.mark.anyio
async def test_a_wait_that_times_out_says_so(otel: Otel) -> None:
    from codegen_async import WaitTimeoutError

    async with (
        Emulator(time_scale=0.001, run_seconds=10_000.0) as emu,
        AsyncCodegen(**emu.client_options()) as client,
    ):
        run = await client.agent_runs.create("x")
        with pytest.raises(WaitTimeoutError):
            await client.agent_runs.wait(run, timeout=0.05)
    (wait,) = otel.named("codegen.agent_run.wait")
    assert wait.attributes["error.type"] == "WaitTimeoutError"
    assert wait.status.status_code is trace.StatusCode.ERROR
    assert otel.total(otel.metrics(), "codegen.agent_runs.finished") == 0


# -- retries, 429s and the limiter -----------------------------------------------------


@pytest.mark.anyio
async def test_a_retried_call_has_one_child_span_per_attempt(otel: Otel) -> None:
    async with Emulator(time_scale=0.001) as emu, AsyncCodegen(**emu.client_options()) as client:
        run = await client.agent_runs.create("x")
        emu.faults.add("error_before", route="get_agent_run", status=503, times=2)
        got = await client.agent_runs.get(run.id)
    assert got.request_id is not None
    (call,) = [s for s in otel.named(GET_RUN) if s.parent is None]
    attempts = otel.children(call)
    assert [a.attributes["http.response.status_code"] for a in attempts] == [503, 503, 200]
    assert [a.attributes.get("http.request.resend_count") for a in attempts] == [None, 1, 2]
    assert [a.attributes.get("error.type") for a in attempts] == ["503", "503", None]
    assert call.attributes["http.request.resend_count"] == 2
    assert call.attributes["http.response.status_code"] == 200
    assert call.attributes["codegen.request_id"] == got.request_id
    assert "error.type" not in call.attributes
    assert call.status.status_code is trace.StatusCode.UNSET
    found = otel.metrics()
    assert otel.total(found, "codegen.client.retries") == 2
    statuses = sorted(
        a["http.response.status_code"]
        for a, n in found["http.client.request.duration"]
        for _ in range(int(n))
        if a["url.template"].endswith("{agent_run_id}")
    )
    assert statuses == [200, 503, 503]


@pytest.mark.anyio
async def test_a_failed_call_names_its_error(otel: Otel) -> None:
    async with Emulator(time_scale=0.001) as emu, AsyncCodegen(**emu.client_options()) as client:
        with pytest.raises(Exception, match=r"not found|Not Found|404"):
            await client.agent_runs.get(999_999)
    (call,) = otel.named(GET_RUN)
    assert call.attributes["error.type"] == "404"
    assert call.attributes["http.response.status_code"] == 404
    assert call.status.status_code is trace.StatusCode.ERROR
    assert otel.children(call) == []  # not retried: one span


@pytest.mark.anyio
async def test_429s_and_token_waits(otel: Otel) -> None:
    # The server answers 429 once; then the client's create bucket (the documented 10 per
    # minute, scaled to 10 per 3 s) makes the 11th and 12th creates wait for a token.
    limits = RateLimits.off()
    async with Emulator(time_scale=0.001) as emu:
        options = emu.client_options()
        options["rate_limits"] = limits
        async with AsyncCodegen(**options) as client:
            emu.faults.add("rate_limited", route="get_agent_run", seconds=0.01)
            run = await client.agent_runs.create("x")
            await client.agent_runs.get(run.id)
        emu.reset_rate_limits()
        # Creates: 10 per 3 s on the client (however slow a loaded machine makes the first
        # ten, they finish inside the window, so the 11th waits).
        options = {**emu.client_options(), "rate_limits": RateLimits.documented().scaled(0.05)}
        async with AsyncCodegen(**options) as client:
            for _ in range(12):
                await client.agent_runs.create("x")
    found = otel.metrics()
    assert otel.total(found, "codegen.client.rate_limited") == 1
    (limited,) = found["codegen.client.rate_limited"]
    assert limited[0]["http.response.status_code"] == 429
    waits = otel.named("codegen.rate_limit.wait")
    assert waits, "the 11th and 12th creates waited for a token"
    for wait in waits:
        assert wait.parent is not None
        (parent,) = [s for s in otel.spans() if s.context.span_id == wait.parent.span_id]
        assert parent.name == CREATE
        assert wait.attributes == {"codegen.rate_class": "create"}
    rate_classes = {a["codegen.rate_class"] for a, _ in found["codegen.client.rate_limit.wait"]}
    assert "create" in rate_classes


# -- the sync facade -------------------------------------------------------------------


def test_sync_facade_spans_have_the_callers_parent(otel: Otel) -> None:
    tracer = trace.get_tracer("test")
    seen: dict[str, int] = {}

    def worker(client: Codegen) -> None:
        with tracer.start_as_current_span("thread-request") as span:
            seen["thread"] = span.get_span_context().span_id
            client.run(PROMPT)

    with Emulator(time_scale=0.001, api_key=KEY) as emu, Codegen(**emu.client_options()) as client:
        with tracer.start_as_current_span("sync-request") as span:
            seen["main"] = span.get_span_context().span_id
            run = client.run(PROMPT)
            outcomes = list(client.run_many(["a", "b"]))
        thread = threading.Thread(target=worker, args=(client,))
        thread.start()
        thread.join(60)
    assert run.succeeded
    assert run.request_id
    assert len(outcomes) == 2
    runs = otel.named("codegen.run")
    assert sorted(r.parent.span_id for r in runs if r.parent) == sorted(seen.values())
    (fan_out,) = otel.named("codegen.run_many")
    assert fan_out.parent is not None
    assert fan_out.parent.span_id == seen["main"]
    assert fan_out.attributes["codegen.fan_out.succeeded"] == 2
    for wait in otel.named("codegen.agent_run.wait"):
        assert wait.parent is not None  # under a run or the fan-out, never a root
    _no_secret(otel.spans(), otel.metrics(), KEY, PROMPT)


# -- off, absent, lazy -----------------------------------------------------------------


@pytest.mark.anyio
async def test_tracing_off(otel: Otel, monkeypatch: pytest.MonkeyPatch) -> None:
    async with (
        Emulator(time_scale=0.001) as emu,
        AsyncCodegen(**emu.client_options(), tracing=False) as client,
    ):
        assert client._shared.telemetry is None
        await client.run("x")
        monkeypatch.setenv("CODEGEN_TRACING", "off")
        async with AsyncCodegen(**emu.client_options()) as client:
            assert client.settings.tracing is False
            await client.agent_runs.get((await client.agent_runs.create("y")).id)
            assert client.with_options(max_retries=1)._shared.telemetry is None
    assert otel.spans() == []
    assert otel.metrics() == {}


def test_bad_tracing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from codegen_async import ConfigurationError

    monkeypatch.setenv("CODEGEN_TRACING", "maybe")
    with pytest.raises(ConfigurationError, match="tracing from env CODEGEN_TRACING"):
        AsyncCodegen(api_key="k", base_url="http://127.0.0.1:1")
    with pytest.raises(ConfigurationError, match="tracing from argument must be a bool"):
        AsyncCodegen(api_key="k", base_url="http://127.0.0.1:1", tracing="yes")  # type: ignore[arg-type]


def _python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEGEN_")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_does_not_load_opentelemetry() -> None:
    out = _python(
        "import sys, codegen_async, codegen_sync\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
        "codegen_async.AsyncCodegen(api_key='k', base_url='http://127.0.0.1:1', tracing=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    assert out.split() == ["[]", "[]"]


def test_without_opentelemetry_the_client_works() -> None:
    out = _python(
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if not installed\n"
        "import anyio\n"
        "from codegen_async import AsyncCodegen\n"
        "from codegen_async.testing import Emulator\n"
        "async def main():\n"
        "    async with Emulator(time_scale=0.001) as emu:\n"
        "        async with AsyncCodegen(**emu.client_options()) as client:\n"
        "            assert client._shared.telemetry is None\n"
        "            run = await client.run('x')\n"
        "            print(run.status, bool(run.request_id))\n"
        "anyio.run(main)\n"
    )
    assert out.split() == ["COMPLETE", "True"]


# -- request ids on models -------------------------------------------------------------


@pytest.mark.anyio
async def test_every_model_carries_its_request_id() -> None:
    async with (
        Emulator(time_scale=0.001) as emu,
        AsyncCodegen(**emu.client_options(), tracing=False) as client,
    ):
        seen: list[str] = []
        client = client.with_options(on_response=lambda r: seen.append(r.request_id or ""))
        run = await client.agent_runs.create("x")
        again = await client.agent_runs.get(run.id)
        page = await client.agent_runs.list_page(limit=10)
        me = await client.users.me()
        orgs = await client.organizations.list_page()
    assert [run.request_id, again.request_id, page.request_id, me.request_id] == seen[:4]
    assert orgs.request_id == seen[4]
    assert all(item.request_id == page.request_id for item in page.items)
    assert all(item.request_id == orgs.request_id for item in orgs.items)
    assert len(set(seen)) == len(seen)
    # Not a field: not compared, not in the repr, not serialized.
    fresh = AgentRun(id=again.id, organization_id=again.organization_id)
    assert fresh.request_id is None
    assert "request_id" not in repr(again)
    assert again.request_id not in repr(again)
    assert "request_id" not in unstructure(again)


# -- URL templates ---------------------------------------------------------------------


def test_url_templates_are_the_specs_paths() -> None:
    paths = json.loads(SPEC.read_text())["paths"]
    for number, template in enumerate(paths, 11):
        concrete = template
        while "{" in concrete:
            start, end = concrete.index("{"), concrete.index("}")
            concrete = concrete[:start] + str(number * 7) + concrete[end + 1 :]
        assert url_template(concrete) == template
    assert url_template("/v1/run") == "/v1/run"
    assert url_template("/v1/unknown/5") == "/v1/unknown/{id}"


# -- the user's tracer or meter raising ------------------------------------------------


def _telemetry_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "codegen_async" and r.levelno == logging.WARNING
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("fault", FAULT_NAMES)
async def test_a_raising_tracer_never_breaks_a_call(
    otel: Otel, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A span processor, provider, sampler or instrument that raises: every call goes
    on, one WARNING names what failed, no run is created twice, and the client stops
    calling the broken piece."""
    caplog.set_level(logging.WARNING, logger="codegen_async")
    async with Emulator(time_scale=0.001, failure_rate=0.0) as emu:
        with faulty(fault) as faults:
            async with AsyncCodegen(**emu.client_options()) as client:
                created = await client.agent_runs.create("one")
                run = await client.run("two")
                page = await client.agent_runs.list_page()
                outcomes = await client.gather_many(["three", "four"], max_concurrency=2)
                again = await client.run("five")
                telemetry = client._shared.telemetry
        assert created.id > 0
        assert run.succeeded
        assert again.succeeded
        assert all(outcome.ok for outcome in outcomes)
        assert {r.id for r in page.items} >= {created.id, run.id}
        assert sorted(emu.prompts.values()) == ["five", "four", "one", "three", "two"]
    assert faults.raised == 1  # the broken piece was called once, then never again
    assert telemetry is None or telemetry.off
    (warning,) = _telemetry_warnings(caplog)
    assert f"the user's {fault} is broken" in warning
    assert "tracing and metrics are off for this client" in warning
    assert "OpenTelemetry raised while" in warning


@pytest.mark.anyio
async def test_a_broken_tracer_turns_off_only_its_client(
    otel: Otel, caplog: pytest.LogCaptureFixture
) -> None:
    """Another client, made after, traces as before; the public switch still works."""
    caplog.set_level(logging.WARNING, logger="codegen_async")
    async with Emulator(time_scale=0.001) as emu:
        async with AsyncCodegen(**emu.client_options()) as broken:
            with faulty("on_end"):
                await broken.agent_runs.create("one")
            await broken.agent_runs.create("two")
        assert otel.named(CREATE) == []  # the span whose end raised never reached the export
        async with AsyncCodegen(**emu.client_options()) as fine:
            await fine.agent_runs.create("three")
        async with AsyncCodegen(**emu.client_options(), tracing=False) as off:
            assert off._shared.telemetry is None
        assert len(emu.runs) == 3
    assert len(otel.named(CREATE)) == 1
    assert len(_telemetry_warnings(caplog)) == 1


def test_the_tracing_notes_page_runs(tmp_path: Path) -> None:
    """Each Python block of docs/guide/tracing-notes.md runs as printed, in its own
    interpreter (it installs a global tracer provider of its own)."""
    page = (ROOT / "docs" / "guide" / "tracing-notes.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.S | re.M)
    assert len(blocks) == 2
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEGEN_")}
    env["PYTHONPATH"] = str(ROOT)
    outputs = []
    for index, code in enumerate(blocks):
        script = tmp_path / f"block_{index}.py"
        script.write_text(code)
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env
        )
        assert done.returncode == 0, f"block {index}:\n{code}\n{done.stdout}{done.stderr}"
        outputs.append(done.stdout + done.stderr)
    assert outputs[0].count("OpenTelemetry raised while") == 1
    assert "COMPLETE" in outputs[0]
    assert "no create rate-limit token" in outputs[1]
    assert "nothing was sent" in outputs[1]
