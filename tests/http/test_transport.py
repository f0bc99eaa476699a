"""The transport against a hostile environment and a hostile server, with real loopback
listeners: proxies from the environment, a gzip bomb, redirects, a password in the base
URL, header injection, unbounded timeouts."""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import logging
import math
import socket
import socketserver
import threading
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import codegen_async as cg
from codegen_async._http import Request
from codegen_async._operations import unlisted
from codegen_async.testing import Emulator

KEY = "sk-transport-secret-0123456789"
BOMB_MIB = 512  # what the bomb inflates to; it is about 0.5 MiB on the wire
CAP = 2 * 1024 * 1024


# -- real loopback listeners ----------------------------------------------------------------


class _Recorder(socketserver.BaseRequestHandler):
    """A would-be proxy: records whatever it is sent, answers 502."""

    def handle(self) -> None:
        self.request.settimeout(2.0)
        try:
            data = self.request.recv(65536)
        except OSError:
            data = b""
        self.server.received.append(data)  # type: ignore[attr-defined]
        self.request.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[bytes]]]:
    """A recording TCP listener on 127.0.0.1: (its URL, what it received)."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.received  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@functools.lru_cache(maxsize=1)
def bomb() -> bytes:
    """gzip of BOMB_MIB MiB of zeros (made once per process)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(BOMB_MIB)]
    parts.append(packer.flush())
    return b"".join(parts)


class _Bodies(BaseHTTPRequestHandler):
    """GET /bomb/<status>: the gzip bomb; GET /gzip: a small gzip JSON object."""

    def do_GET(self) -> None:
        if self.path.startswith("/bomb/"):
            status, body = int(self.path.rsplit("/", 1)[1]), bomb()
        else:
            status, body = 200, gzip.compress(json.dumps(USER).encode())
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client stopped reading at its cap
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


USER = {"id": 7, "github_user_id": "70", "github_username": "a", "email": "a@example.com"}


@pytest.fixture(scope="module")
def bodies() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bodies)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


# -- item 7: a proxy from the environment -----------------------------------------------


@pytest.mark.anyio
async def test_plain_http_loopback_never_goes_through_an_environment_proxy(
    proxy: tuple[str, list[bytes]], no_proxy_env: pytest.MonkeyPatch
) -> None:
    proxy_url, received = proxy
    no_proxy_env.setenv("HTTP_PROXY", proxy_url)
    no_proxy_env.setenv("ALL_PROXY", proxy_url)
    with Emulator(time_scale=0.001) as emu, emu.serve_in_thread() as url:
        options = {k: v for k, v in emu.client_options().items() if k != "http_client"}
        assert url.startswith("http://127.0.0.1:")
        async with cg.AsyncCodegen(**options) as client:
            me = await client.users.me()  # straight to the loopback server
    assert me.id == emu.user_id
    assert received == []  # the proxy never saw the request, nor the key


@pytest.mark.anyio
async def test_a_given_http_client_with_a_remote_proxy_is_refused_for_plain_http(
    no_proxy_env: pytest.MonkeyPatch,
) -> None:
    remote = httpx.AsyncClient(proxy="http://alice:pr0xy-pass@proxy.example:3128")
    async with remote:
        with pytest.raises(cg.ConfigurationError) as caught:
            cg.AsyncCodegen(api_key=KEY, base_url="http://127.0.0.1:9", http_client=remote)
    message = str(caught.value)
    assert "proxy.example:3128" in message
    assert "pr0xy-pass" not in message
    assert KEY not in message
    no_proxy_env.setenv("HTTP_PROXY", "http://bob:s3cret@10.1.2.3:8080")
    async with httpx.AsyncClient() as from_env:  # trust_env: the proxy comes from HTTP_PROXY
        with pytest.raises(cg.ConfigurationError, match=r"10\.1\.2\.3:8080") as caught:
            cg.AsyncCodegen(api_key=KEY, base_url="http://localhost:9", http_client=from_env)
        assert "s3cret" not in str(caught.value)
        # https is not affected: the key is inside TLS, whatever carries it.
        async with cg.AsyncCodegen(api_key=KEY, http_client=from_env) as fine:
            assert fine.base_url.startswith("https://")
    no_proxy_env.setenv("NO_PROXY", "localhost")
    async with (
        httpx.AsyncClient() as excluded,  # NO_PROXY excludes the host: allowed
        cg.AsyncCodegen(api_key=KEY, base_url="http://localhost:9", http_client=excluded),
    ):
        pass


@pytest.mark.anyio
async def test_a_given_http_client_with_a_loopback_proxy_is_allowed(
    proxy: tuple[str, list[bytes]],
) -> None:
    proxy_url, received = proxy
    async with (
        httpx.AsyncClient(proxy=proxy_url) as local,
        cg.AsyncCodegen(
            api_key=KEY, org_id=1, base_url="http://127.0.0.1:9", http_client=local, max_retries=0
        ) as client,
    ):
        with pytest.raises(cg.APIStatusError) as caught:
            await client.users.me()
    assert caught.value.status_code == 502
    assert len(received) == 1  # the key stayed on this machine


# -- item 8: a cap on decoded bodies ------------------------------------------------------


@pytest.mark.anyio
async def test_a_gzip_bomb_fails_fast_with_bounded_memory(bodies: str) -> None:
    assert len(bomb()) < 1024 * 1024
    async with cg.AsyncCodegen(
        api_key=KEY, org_id=1, base_url=bodies, max_retries=0, max_response_bytes=CAP
    ) as client:
        tracemalloc.start()
        try:
            with pytest.raises(cg.ResponseValidationError, match="max_response_bytes"):
                await client.pipeline_get("/bomb/200")  # type: ignore[attr-defined]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 8 * CAP  # the cap and a chunk, not BOMB_MIB MiB
        # An error whose body is a bomb is still that error, its body cut at the cap.
        with pytest.raises(cg.ServerError) as caught:
            await client.pipeline_get("/bomb/500")  # type: ignore[attr-defined]
        assert caught.value.status_code == 500
        # A small gzip body decodes as before.
        assert (await client.pipeline_get("/gzip"))["id"] == 7  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _pipeline_get(monkeypatch: pytest.MonkeyPatch) -> None:
    """`client.pipeline_get(path)`: one GET through the client's pipeline, as JSON."""

    async def pipeline_get(self: cg.AsyncCodegen, path: str) -> object:
        return await self._http.send(unlisted("GET"), Request("GET", path))

    monkeypatch.setattr(cg.AsyncCodegen, "pipeline_get", pipeline_get, raising=False)


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, data: bytes, size: int = 7) -> None:
        self._parts = [data[i : i + size] for i in range(0, len(data), size)]

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self._parts:
            yield part


def _deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("deflate", lambda data: _deflate(data, zlib.MAX_WBITS)),  # zlib-wrapped, per RFC
        ("deflate", lambda data: _deflate(data, -zlib.MAX_WBITS)),  # raw, as some servers do
        ("identity", lambda data: data),
        ("gzip, gzip", lambda data: gzip.compress(gzip.compress(data))),  # httpx decodes this
    ],
)
async def test_bodies_stream_decode_in_small_chunks(encoding: str, pack: object) -> None:
    raw = json.dumps(USER).encode()

    def handler(request: httpx.Request) -> httpx.Response:
        body = pack(raw)  # type: ignore[operator]
        return httpx.Response(200, headers={"content-encoding": encoding}, stream=_Chunks(body))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, cg.AsyncCodegen(api_key=KEY, org_id=1, http_client=http) as client:
        assert (await client.users.me()).id == 7
        small = client.with_options()
        small._http._max_body = 10
        with pytest.raises(cg.ResponseValidationError, match="more than 10 bytes"):
            await small.users.me()


@pytest.mark.anyio
async def test_a_corrupt_gzip_body_is_a_response_validation_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        stream = _Chunks(b"\x1f\x8b\x08\x00garbage-garbage")
        return httpx.Response(200, headers={"content-encoding": "gzip"}, stream=stream)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, cg.AsyncCodegen(api_key=KEY, org_id=1, http_client=http) as client:
        with pytest.raises(cg.ResponseValidationError, match="cannot be decoded"):
            await client.users.me()


def test_the_cap_is_a_setting_with_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEGEN_MAX_RESPONSE_BYTES", "1234")
    client = cg.AsyncCodegen(api_key=KEY, org_id=1)
    assert client.settings.max_response_bytes == 1234
    assert client.settings.sources["max_response_bytes"] == "env CODEGEN_MAX_RESPONSE_BYTES"
    assert cg.AsyncCodegen(api_key=KEY, max_response_bytes=99).settings.max_response_bytes == 99
    for bad in (0, -1, "12", True):
        with pytest.raises(cg.ConfigurationError, match="max_response_bytes"):
            cg.AsyncCodegen(api_key=KEY, max_response_bytes=bad)  # type: ignore[arg-type]
    monkeypatch.setenv("CODEGEN_MAX_RESPONSE_BYTES", "lots")
    with pytest.raises(cg.ConfigurationError, match="CODEGEN_MAX_RESPONSE_BYTES"):
        cg.AsyncCodegen(api_key=KEY)


# -- item 10: redirects, masking, headers, timeouts, repr ----------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308, 304])
async def test_a_redirect_is_an_error_and_is_never_followed(status: int) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, headers={"location": "https://elsewhere.example/me"})

    # Even a caller's client that follows redirects does not follow one for an API call.
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), follow_redirects=True)
    async with http, cg.AsyncCodegen(api_key=KEY, org_id=1, http_client=http) as client:
        with pytest.raises(cg.APIStatusError) as caught:
            await client.users.me()
    assert caught.value.status_code == status
    assert "redirect" in str(caught.value)
    assert "elsewhere.example" in str(caught.value)
    assert len(seen) == 1  # not followed, not retried


@pytest.mark.anyio
async def test_a_password_in_base_url_is_masked_everywhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://admin:hunter2-pw@127.0.0.1:{port}"
    caplog.set_level(logging.DEBUG, logger="codegen_async")
    async with cg.AsyncCodegen(api_key=KEY, org_id=1, base_url=base, max_retries=0) as client:
        with pytest.raises(cg.APIConnectionError) as refused:
            await client.users.me()
        shown = [str(refused.value), repr(client), repr(client.settings), caplog.text]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=USER)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, cg.AsyncCodegen(api_key=KEY, org_id=1, base_url=base, http_client=http) as ok:
        await ok.users.me()  # the DEBUG line of a success names the URL too
        shown.append(await ok.as_curl(lambda c: c.users.me()))
    shown.append(caplog.text)
    assert "/v1/users/me" in caplog.text
    for text in shown:
        assert "hunter2-pw" not in text
        assert KEY not in text
    assert "***@127.0.0.1" in str(refused.value)
    assert "***@127.0.0.1" in repr(client)
    assert "***@" in repr(client.settings)


@pytest.mark.anyio
async def test_a_header_with_a_line_break_is_refused_at_once() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json=USER)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    async with http, cg.AsyncCodegen(api_key=KEY, org_id=1, http_client=http) as client:
        for value in ("a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b"):
            with pytest.raises(ValueError, match="X-Team"):
                client.with_options(headers={"X-Team": value})
        with pytest.raises(ValueError, match="header name"):
            client.with_options(headers={"X Team\r\n": "a"})
        with pytest.raises(TypeError, match="on_response"):
            client.with_options(on_response="print")  # type: ignore[arg-type]
        tuned = client.with_options(headers={"X-Team": "search\tteam"})
        await tuned.users.me()
    assert len(sent) == 1
    assert sent[0].headers["x-team"] == "search\tteam"


@pytest.mark.parametrize(
    "timeout",
    [
        httpx.Timeout(None),
        httpx.Timeout(math.nan),
        httpx.Timeout(5.0, read=math.nan),
        httpx.Timeout(5.0, connect=math.inf),
        httpx.Timeout(5.0, pool=-1.0),
        httpx.Timeout(0.0),
    ],
)
def test_an_unbounded_or_bad_httpx_timeout_is_refused(timeout: httpx.Timeout) -> None:
    with pytest.raises(cg.ConfigurationError, match="timeout"):
        cg.AsyncCodegen(api_key=KEY, timeout=timeout)
    client = cg.AsyncCodegen(api_key=KEY)
    with pytest.raises(cg.ConfigurationError, match="timeout"):
        client.with_options(timeout=timeout)


def test_a_partial_httpx_timeout_is_still_accepted() -> None:
    timeout = httpx.Timeout(None, connect=5.0)
    assert cg.AsyncCodegen(api_key=KEY, timeout=timeout).settings.timeout == timeout


def test_repr_never_raises_on_a_half_built_client() -> None:
    client = cg.AsyncCodegen.__new__(cg.AsyncCodegen)
    with pytest.raises(cg.ConfigurationError):
        client.__init__(api_key=KEY, timeout=-1)  # type: ignore[misc]
    text = repr(client)  # what a traceback showing locals calls
    assert text.startswith("<AsyncCodegen")
    assert KEY not in text
