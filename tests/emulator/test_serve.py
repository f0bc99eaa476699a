"""serve_app / serve_app_in_thread / run_forever and the fault proxy, over real loopback ports."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

import anyio
import httpx
import pytest

from codegen_async.testing._serve import (
    THREAD_NAME_PREFIX,
    run_forever,
    serve_app,
    serve_app_in_thread,
)

pytestmark = pytest.mark.network

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
PAD = "p" * 100  # bodies long enough to truncate and drip in several chunks


async def json_app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """Answers every request with JSON and a Content-Length.

    `/fault/<action>` adds `x-emulator-fault: <action>`; the body reports the
    path, the request body and the peer port (the proxy's upstream connection).
    """
    assert scope["type"] == "http"
    received = b""
    more = True
    while more:
        message = await receive()
        received += message.get("body", b"")
        more = message.get("more_body", False)
    payload = {
        "path": scope["path"],
        "method": scope["method"],
        "peer_port": scope["client"][1],
        "echo": received.decode(),
        "pad": PAD,
    }
    body = json.dumps(payload).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-test", b"kept"),
    ]
    if scope["path"].startswith("/fault/"):
        headers.append((b"x-emulator-fault", scope["path"].removeprefix("/fault/").encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(THREAD_NAME_PREFIX)}


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def faulty_url() -> Iterator[str]:
    """One fault-proxied server shared by the fault tests (its thread owns its own loop)."""
    with serve_app_in_thread(json_app) as url:
        yield url


# --------------------------------------------------------------------------- normal traffic


@pytest.mark.anyio
async def test_keep_alive_reuses_one_upstream_connection(faulty_url: str) -> None:
    async with httpx.AsyncClient(base_url=faulty_url, timeout=5) as client:
        first = await client.get("/a")
        posted = await client.post("/b", json={"k": "v" * 50})
        head = await client.head("/c")
        last = await client.get("/d")
    assert first.json()["path"] == "/a"
    assert json.loads(posted.json()["echo"]) == {"k": "v" * 50}
    assert head.status_code == 200
    assert head.content == b""
    assert last.json()["path"] == "/d"
    ports = {r.json()["peer_port"] for r in (first, posted, last)}
    assert len(ports) == 1  # one client connection -> one upstream connection


@pytest.mark.anyio
async def test_concurrent_requests_over_a_small_pool(faulty_url: str) -> None:
    limits = httpx.Limits(max_connections=3)
    async with httpx.AsyncClient(base_url=faulty_url, timeout=5, limits=limits) as client:
        results: list[str] = []

        async def fetch(i: int) -> None:
            response = await client.get(f"/n/{i}")
            results.append(response.json()["path"])

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(fetch, i)
    assert sorted(results) == sorted(f"/n/{i}" for i in range(20))


@pytest.mark.anyio
async def test_other_headers_pass_verbatim(faulty_url: str) -> None:
    async with httpx.AsyncClient(base_url=faulty_url, timeout=5) as client:
        response = await client.get("/plain")
    assert response.headers["x-test"] == "kept"
    assert "x-emulator-fault" not in response.headers
    assert response.headers["content-length"] == str(len(response.content))


# --------------------------------------------------------------------------- faults


@pytest.mark.anyio
async def test_close_drops_the_connection_without_a_response(faulty_url: str) -> None:
    async with httpx.AsyncClient(base_url=faulty_url, timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/fault/close")
        assert (await client.get("/after")).json()["path"] == "/after"


@pytest.mark.anyio
async def test_reset_aborts_the_connection(faulty_url: str) -> None:
    async with httpx.AsyncClient(base_url=faulty_url, timeout=5) as client:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await client.get("/fault/reset")
        assert (await client.get("/after")).status_code == 200


@pytest.mark.anyio
async def test_truncate_sends_half_the_body(faulty_url: str) -> None:
    async with httpx.AsyncClient(base_url=faulty_url, timeout=5) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)) as caught:
            await client.get("/fault/truncate")
        assert (await client.get("/after")).status_code == 200
    assert "incomplete" in str(caught.value) or "complete message body" in str(caught.value)


async def read_raw(response: httpx.Response, into: bytearray) -> None:
    async for chunk in response.aiter_raw():
        into.extend(chunk)


@pytest.mark.anyio
async def test_truncate_streams_a_head_with_the_full_length(faulty_url: str) -> None:
    received = bytearray()
    async with (
        httpx.AsyncClient(base_url=faulty_url, timeout=5) as client,
        client.stream("GET", "/fault/truncate") as response,
    ):
        assert response.status_code == 200
        assert "x-emulator-fault" not in response.headers
        declared = int(response.headers["content-length"])
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await read_raw(response, received)
    assert 0 < len(received) < declared


@pytest.mark.anyio
async def test_drip_completes_correctly_and_keeps_the_connection(faulty_url: str) -> None:
    async with httpx.AsyncClient(base_url=faulty_url, timeout=5) as client:
        dripped = await client.get("/fault/drip:0.02")
        after = await client.get("/after")
    assert dripped.json()["pad"] == PAD
    assert dripped.json()["path"] == "/fault/drip:0.02"
    assert "x-emulator-fault" not in dripped.headers
    assert dripped.headers["x-test"] == "kept"
    assert after.json()["peer_port"] == dripped.json()["peer_port"]


@pytest.mark.anyio
async def test_drip_trips_a_short_read_timeout(faulty_url: str) -> None:
    timeout = httpx.Timeout(5, read=0.05)
    async with httpx.AsyncClient(base_url=faulty_url, timeout=timeout) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/fault/drip:0.5")


@pytest.mark.anyio
async def test_silence_trips_the_read_timeout(faulty_url: str) -> None:
    timeout = httpx.Timeout(5, read=0.2)
    async with httpx.AsyncClient(base_url=faulty_url, timeout=timeout) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/fault/silence")
        assert (await client.get("/after")).status_code == 200


@pytest.mark.anyio
async def test_unknown_action_is_forwarded_and_stripped(faulty_url: str) -> None:
    async with httpx.AsyncClient(base_url=faulty_url, timeout=5) as client:
        response = await client.get("/fault/no-such-action")
    assert response.json()["path"] == "/fault/no-such-action"
    assert "x-emulator-fault" not in response.headers


# --------------------------------------------------------------------------- lifecycle


@pytest.mark.anyio
@pytest.mark.parametrize("faults", [True, False])
async def test_serve_app_lifecycle(faults: bool) -> None:
    before = serve_threads()
    async with serve_app(json_app, faults=faults) as url:
        assert url.startswith("http://127.0.0.1:")
        assert len(serve_threads() - before) == 1
        async with httpx.AsyncClient(base_url=url, timeout=5) as client:
            assert (await client.get("/x")).json()["path"] == "/x"
            marked = await client.get("/fault/drip:0")
        assert not accepts("127.0.0.2", port_of(url))  # bound to 127.0.0.1 only
    assert serve_threads() == before
    assert not accepts("127.0.0.1", port_of(url))
    # without the proxy the fault header reaches the client untouched
    assert ("x-emulator-fault" in marked.headers) is not faults


@pytest.mark.anyio
async def test_body_error_stops_the_server() -> None:
    before = serve_threads()
    with pytest.raises(KeyError):
        async with serve_app(json_app) as url:
            raise KeyError(url)
    assert serve_threads() == before
    assert not accepts("127.0.0.1", port_of(url))


@pytest.mark.anyio
async def test_cancelled_body_stops_the_server() -> None:
    before = serve_threads()
    with anyio.move_on_after(0.2) as scope:
        async with serve_app(json_app) as url:
            await anyio.sleep(30)
    assert scope.cancelled_caught
    assert serve_threads() == before
    assert not accepts("127.0.0.1", port_of(url))


def test_sync_twin_serves_and_stops() -> None:
    before = serve_threads()
    with serve_app_in_thread(json_app, faults=False) as url, httpx.Client(base_url=url) as client:
        assert client.get("/sync").json()["path"] == "/sync"
    assert serve_threads() == before


def test_requested_port_is_used_and_busy_port_fails() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve_app_in_thread(json_app, port=port) as url:
        assert port_of(url) == port
        for faults in (True, False):
            with pytest.raises(OSError), serve_app_in_thread(json_app, port=port, faults=faults):
                pass


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost", "::1", "127.0.0.2"])
def test_only_loopback_127_0_0_1_is_accepted(host: str) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        serve_app_in_thread(json_app, host=host).__enter__()


@pytest.mark.parametrize("port", [-1, 65536])
def test_port_out_of_range(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        serve_app_in_thread(json_app, port=port).__enter__()


def test_missing_uvicorn_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    with pytest.raises(ImportError, match=r"codegen-async\[serve\]"):
        serve_app_in_thread(json_app).__enter__()


def test_run_forever_serves_until_interrupted() -> None:
    before = serve_threads()
    seen: list[str] = []

    def on_ready(url: str) -> None:
        seen.append(httpx.get(url + "/forever", timeout=5).json()["path"])
        raise KeyboardInterrupt  # what Ctrl-C does to the waiting CLI

    run_forever(json_app, port=0, on_ready=on_ready)
    assert seen == ["/forever"]
    assert serve_threads() == before


def test_bound_socket_gets_tcp_nodelay_on_accept() -> None:
    # asyncio sets TCP_NODELAY on accepted sockets only for proto IPPROTO_TCP;
    # without it every small response stalls ~40 ms (Nagle + delayed ACK).
    from codegen_async.testing._serve import _bind_loopback

    with _bind_loopback(0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[0] == "127.0.0.1"
