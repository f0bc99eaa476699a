"""The HTTP stacks: httpx, httpx2 and the aiohttp transport give the same SDK.

`CODEGEN_EXPECT_STACK` (set by each nox session) names the stack the session must run on:
the first test fails when the SDK would pick another, so a session cannot silently test
the wrong one. A stack that is not installed is skipped with a reason, except in the
session that expects it, where a missing stack fails.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import socket
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

import codegen_async as cg
from codegen_async import _stack
from codegen_async._http import Request
from codegen_async._operations import CREATE_AGENT_RUN
from codegen_async._settings import resolve_settings
from codegen_async.testing import Emulator

KEY = "sk-stack-secret-0123456789"
CREATE_PATH = "/v1/organizations/1/agent/run"
USER = {"id": 7, "github_user_id": "70", "github_username": "a", "email": "a@example.com"}
EXPECTED = os.environ.get("CODEGEN_EXPECT_STACK")


def _module(name: str) -> ModuleType:
    """httpx or httpx2; httpx2 is skipped where missing unless this session expects it."""
    if name == "httpx2" and not _stack._httpx2_available():
        if EXPECTED == "httpx2":
            pytest.fail("CODEGEN_EXPECT_STACK=httpx2 but httpx2 is not importable")
        pytest.skip("httpx2 is not installed here (the tests_httpx2 session runs this)")
    return importlib.import_module(name)


def _need_aiohttp() -> None:
    if importlib.util.find_spec("aiohttp") is None:
        if EXPECTED == "aiohttp":
            pytest.fail("CODEGEN_EXPECT_STACK=aiohttp but aiohttp is not importable")
        pytest.skip("aiohttp is not installed here (the tests_aiohttp session runs this)")


@pytest.fixture(params=["httpx", "httpx2"])
def http(request: pytest.FixtureRequest) -> ModuleType:
    """Each stack's module in turn."""
    return _module(str(request.param))


@pytest.fixture
def stack_env(monkeypatch: pytest.MonkeyPatch) -> Callable[[str | None], None]:
    def choose(name: str | None) -> None:
        if name is None:
            monkeypatch.delenv(_stack.STACK_ENV, raising=False)
        else:
            monkeypatch.setenv(_stack.STACK_ENV, name)

    return choose


# -- which stack ------------------------------------------------------------------------


def _http_client(client: cg.AsyncCodegen) -> Any:
    return client._http.http_client


@pytest.mark.anyio
async def test_the_session_runs_on_the_stack_it_expects() -> None:
    if os.environ.get("CI") == "true" and EXPECTED is None:
        pytest.fail("under CI every test session names its stack in CODEGEN_EXPECT_STACK")
    picked = _stack.default_stack()
    if EXPECTED is not None:
        assert picked.name == EXPECTED
    elif os.environ.get(_stack.STACK_ENV) is None:
        httpx2_here = sys.version_info >= (3, 11) and importlib.util.find_spec("httpx2")
        assert picked.name == ("httpx2" if httpx2_here else "httpx")
    async with cg.AsyncCodegen(api_key=KEY, org_id=1, base_url="http://127.0.0.1:9") as client:
        assert isinstance(_http_client(client), picked.module.AsyncClient)
        agent = _http_client(client).headers["user-agent"]
    assert picked.version in agent, agent  # e.g. "httpx2/2.16.2"


def test_python_3_10_keeps_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_stack.STACK_ENV, raising=False)
    monkeypatch.delitem(sys.modules, "httpx2", raising=False)
    monkeypatch.setattr(sys, "version_info", (3, 10, 13, "final", 0))
    assert _stack.default_stack().name == "httpx"


def test_the_stack_may_be_chosen_by_env(
    stack_env: Callable[[str | None], None],
) -> None:
    stack_env("httpx")
    assert _stack.default_stack().module is httpx
    stack_env(" HTTPX ")  # case and surrounding blanks do not matter
    assert _stack.default_stack().name == "httpx"
    stack_env("requests")
    with pytest.raises(cg.ConfigurationError, match=r"CODEGEN_HTTP_STACK must be one of "
                       r"httpx, httpx2, aiohttp, got 'requests'"):  # fmt: skip
        cg.AsyncCodegen(api_key=KEY, org_id=1, base_url="http://127.0.0.1:9")


def test_choosing_httpx2_where_it_is_missing_says_so(
    stack_env: Callable[[str | None], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_stack, "_httpx2_available", lambda: False)
    stack_env("httpx2")
    with pytest.raises(cg.ConfigurationError, match=r"httpx2 is not installed.*\[httpx2\]"):
        _stack.default_stack()


def test_http_client_of_neither_stack_is_refused() -> None:
    with pytest.raises(TypeError, match=r"httpx\.AsyncClient or an httpx2\.AsyncClient, got dict"):
        cg.AsyncCodegen(api_key=KEY, org_id=1, http_client={})  # type: ignore[arg-type]


# -- the same SDK on either client ------------------------------------------------------


@pytest.mark.anyio
async def test_a_client_of_either_stack_is_accepted(http: ModuleType) -> None:
    with Emulator(time_scale=0.001) as emu:
        options = emu.client_options()
        transport = http.ASGITransport(app=emu.app)
        async with (
            http.AsyncClient(transport=transport) as own,
            cg.AsyncCodegen(**{**options, "http_client": own}) as client,
        ):
            assert _http_client(client) is own
            me = await client.users.me()
            run = await client.agent_runs.create("Fix it")
            done = await client.agent_runs.wait(run.id)
    assert me.id == emu.user_id
    assert done.status == "COMPLETE"


def _mock(http: ModuleType, fail: Exception | None, status: int = 200) -> Any:
    """A mock transport of `http`: raises `fail`, else answers `status` with a user."""
    seen: list[str] = []

    def answer(request: Any) -> Any:
        seen.append(request.method)
        if fail is not None:
            raise fail
        return http.Response(status, json=USER)

    transport = http.MockTransport(answer)
    transport.seen = seen
    return transport


@pytest.mark.parametrize(
    ("error", "expected", "sent"),
    [
        ("ConnectError", cg.APIConnectionError, False),
        ("ConnectTimeout", cg.APITimeoutError, False),
        ("ReadTimeout", cg.APITimeoutError, True),
        ("RemoteProtocolError", cg.APIConnectionError, True),
        ("ReadError", cg.APIConnectionError, True),
    ],
)
@pytest.mark.anyio
async def test_failures_of_either_stack_map_to_the_same_errors(
    http: ModuleType, error: str, expected: type[cg.APIConnectionError], sent: bool
) -> None:
    transport = _mock(http, getattr(http, error)("boom"))
    async with (
        http.AsyncClient(transport=transport) as own,
        cg.AsyncCodegen(
            api_key=KEY, org_id=1, base_url="http://127.0.0.1:9", http_client=own, max_retries=2
        ) as client,
    ):
        with pytest.raises(expected) as caught:  # a POST that creates: retried only unsent
            await client._http.send(CREATE_AGENT_RUN, Request("POST", CREATE_PATH, json={}))
    assert type(caught.value) is expected
    assert caught.value.sent is sent
    assert len(transport.seen) == (1 if sent else 3)


@pytest.mark.anyio
async def test_an_undecodable_body_is_the_same_error_on_either_stack(http: ModuleType) -> None:
    def answer(request: Any) -> Any:
        return http.Response(200, headers={"content-encoding": "gzip"}, content=b"not gzip")

    async with (
        http.AsyncClient(transport=http.MockTransport(answer)) as own,
        cg.AsyncCodegen(
            api_key=KEY, org_id=1, base_url="http://127.0.0.1:9", http_client=own
        ) as client,
    ):
        with pytest.raises(cg.ResponseValidationError, match="cannot be decoded"):
            await client.users.me()


def test_a_timeout_of_either_stack_is_accepted(http: ModuleType) -> None:
    settings = resolve_settings(
        api_key=KEY, timeout=http.Timeout(5.0, connect=2.0), env={}, config_paths=()
    )
    assert (settings.timeout.connect, settings.timeout.read, settings.timeout.pool) == (2, 5, 5)
    with pytest.raises(cg.ConfigurationError, match=r"Timeout\(None\), which never ends"):
        resolve_settings(api_key=KEY, timeout=http.Timeout(None), env={}, config_paths=())
    with pytest.raises(cg.ConfigurationError, match=r"connect=-1 must be a positive"):
        resolve_settings(api_key=KEY, timeout=http.Timeout(-1), env={}, config_paths=())


@pytest.mark.anyio
async def test_the_timeout_reaches_a_client_of_either_stack(http: ModuleType) -> None:
    timeouts: list[dict[str, float]] = []

    def answer(request: Any) -> Any:
        timeouts.append(request.extensions["timeout"])
        return http.Response(200, json=USER)

    async with (
        http.AsyncClient(transport=http.MockTransport(answer)) as own,
        cg.AsyncCodegen(
            api_key=KEY, org_id=1, base_url="http://127.0.0.1:9", http_client=own, timeout=4.5
        ) as client,
    ):
        await client.users.me()
    assert timeouts == [{"connect": 4.5, "read": 4.5, "write": 4.5, "pool": 4.5}]


@pytest.mark.anyio
async def test_a_remote_proxy_is_refused_for_plain_http_on_either_stack(
    http: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = http.AsyncClient(proxy="http://alice:pr0xy-pass@proxy.example:3128")
    async with remote:
        with pytest.raises(cg.ConfigurationError) as caught:
            cg.AsyncCodegen(api_key=KEY, base_url="http://127.0.0.1:9", http_client=remote)
    assert "proxy.example:3128" in str(caught.value)
    assert "pr0xy-pass" not in str(caught.value)


@pytest.mark.anyio
async def test_the_sdk_built_client_bypasses_env_proxies_for_loopback_on_either_stack(
    http: ModuleType, stack_env: Callable[[str | None], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    stack_env(http.__name__)
    for name in ("NO_PROXY", "no_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://10.1.2.3:8080")  # nothing listens there
    with Emulator(time_scale=0.001) as emu, emu.serve_in_thread():
        options = {k: v for k, v in emu.client_options().items() if k != "http_client"}
        async with cg.AsyncCodegen(**options) as client:
            assert isinstance(_http_client(client), http.AsyncClient)
            assert (await client.users.me()).id == emu.user_id


# -- the aiohttp transport --------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[tuple[Emulator, dict[str, Any]]]:
    with Emulator(time_scale=0.001) as emu, emu.serve_in_thread():
        options = {k: v for k, v in emu.client_options().items() if k != "http_client"}
        yield emu, options


@pytest.mark.anyio
async def test_the_sdk_runs_on_aiohttp(
    anyio_backend: str,
    served: tuple[Emulator, dict[str, Any]],
    stack_env: Callable[[str | None], None],
) -> None:
    _need_aiohttp()
    emu, options = served
    stack_env("aiohttp")
    async with cg.AsyncCodegen(**options) as client:
        from codegen_async._aiohttp import AiohttpTransport

        assert isinstance(_http_client(client)._transport, AiohttpTransport)
        assert "aiohttp/" in _http_client(client).headers["user-agent"]
        if anyio_backend == "trio":
            with pytest.raises(cg.ConfigurationError, match="asyncio only"):
                await client.users.me()
            return
        me = await client.users.me()
        page = await client.agent_runs.list_page(limit=5)
        run = await client.agent_runs.create("Fix it")
        done = await client.agent_runs.wait(run.id)
        with pytest.raises(cg.NotFoundError):
            await client.agent_runs.get(987654321)
    assert me.id == emu.user_id
    assert page.items is not None
    assert done.status == "COMPLETE"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_aiohttp_failures_keep_what_was_sent(
    anyio_backend: str, stack_env: Callable[[str | None], None]
) -> None:
    _need_aiohttp()
    stack_env("aiohttp")
    base = f"http://127.0.0.1:{_closed_port()}"
    async with cg.AsyncCodegen(api_key=KEY, org_id=1, base_url=base, max_retries=1) as client:
        with pytest.raises(cg.APIConnectionError) as caught:
            await client._http.send(CREATE_AGENT_RUN, Request("POST", CREATE_PATH, json={}))
    assert caught.value.sent is False  # refused: provably never sent
    # A server that takes the request and drops the connection: maybe processed.
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def drop(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive(65536)  # the request arrived; then the connection closes

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, drop)
        async with cg.AsyncCodegen(
            api_key=KEY, org_id=1, base_url=f"http://127.0.0.1:{port}", max_retries=1
        ) as client:
            path = "/v1/organizations/1/agent/run"
            with pytest.raises(cg.APIConnectionError) as dropped:
                await client._http.send(CREATE_AGENT_RUN, Request("POST", path, json={}))
            assert dropped.value.sent is True  # never retried: it may have been created
            with pytest.raises(cg.APIConnectionError):
                await client.users.me()  # a GET is retried, then fails the same way
        tg.cancel_scope.cancel()
