"""Serve an ASGI app (the Emulator) on a real loopback port, optionally behind a fault proxy.

uvicorn (the ``serve`` extra) runs in a thread of its own with its own asyncio
event loop, so callers may be on asyncio, trio, or plain blocking code. Only
127.0.0.1 is ever bound.

With ``faults=True`` a small TCP proxy listens on the requested port and
forwards bytes to uvicorn's private port. It reads the head of every response;
when the head carries ``x-emulator-fault: <action>`` the proxy strips that
header and plays the action on the client connection:

``close``
    drop the connection without sending any of the response;
``reset``
    abort the connection with a TCP RST (``SO_LINGER`` 0);
``truncate``
    send the head (full Content-Length) and half the body, then close;
``drip:<seconds>``
    send the head, then the body in 64-byte chunks with that delay before each;
    the connection stays usable afterwards;
``silence``
    send nothing and keep the connection open until the client closes it or
    60 seconds pass.

Responses without the header are forwarded verbatim, and keep-alive works.
A response the proxy cannot frame (no Content-Length, chunked, an upgrade)
switches that connection to plain byte forwarding.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from types import ModuleType
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from . import _faults

__all__ = ["ASGIApp", "run_forever", "serve_app", "serve_app_in_thread"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

LOOPBACK = "127.0.0.1"
FAULT_HEADER = _faults.FAULT_HEADER.encode()
THREAD_NAME_PREFIX = "codegen-async-serve"

_START_TIMEOUT = 10.0  # seconds for the server thread to come up
_STOP_TIMEOUT = 10.0  # seconds to wait for the server thread to end
_GRACEFUL_SHUTDOWN = 2.0  # uvicorn's bound on finishing in-flight requests
_MAX_HEAD = 64 * 1024
_COPY_CHUNK = 64 * 1024
_DRIP_CHUNK = _faults.DRIP_CHUNK_BYTES
_MAX_DRIP_DELAY = 60.0
_SILENCE_LIMIT = 60.0
_NO_BODY_STATUSES = frozenset({204, 304})
_DISCONNECTED = (
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.DelimiterNotFound,
    OSError,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- public API


@contextlib.asynccontextmanager
async def serve_app(
    app: ASGIApp, *, host: str = LOOPBACK, port: int = 0, faults: bool = True
) -> AsyncIterator[str]:
    """Serve `app` over a real loopback port; yields the base URL ("http://127.0.0.1:PORT").

    Works under asyncio and trio. The server is stopped and its thread joined
    (bounded) when the block exits, also on error or cancellation.
    """
    server = _ServerThread(app, host=host, port=port, faults=faults)
    server.start()
    try:
        yield await anyio.to_thread.run_sync(server.wait_ready, abandon_on_cancel=True)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(server.stop)


@contextlib.contextmanager
def serve_app_in_thread(
    app: ASGIApp, *, host: str = LOOPBACK, port: int = 0, faults: bool = True
) -> Iterator[str]:
    """Blocking twin of `serve_app`, for sync code and the CLI; yields the base URL."""
    server = _ServerThread(app, host=host, port=port, faults=faults)
    server.start()
    try:
        yield server.wait_ready()
    finally:
        server.stop()


def run_forever(
    app: ASGIApp,
    *,
    port: int,
    host: str = LOOPBACK,
    faults: bool = True,
    on_ready: Callable[[str], object] | None = None,
) -> None:
    """Serve `app` until Ctrl-C (or until the server fails), then stop cleanly.

    Backs ``python -m codegen_async emulator --port 8765``. `on_ready` gets the
    base URL once the port accepts connections (default: one line on stderr).
    """
    server = _ServerThread(app, host=host, port=port, faults=faults)
    server.start()
    try:
        url = server.wait_ready()
        (on_ready or _announce)(url)
        while server.is_alive():
            server.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def _announce(url: str) -> None:
    sys.stderr.write(f"Codegen emulator listening on {url} (Ctrl-C to stop)\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- server thread


def _require_uvicorn() -> ModuleType:
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError(
            "serving on a port needs uvicorn: pip install 'codegen-async[serve]'"
        ) from exc
    return uvicorn


def _check_address(host: str, port: int) -> None:
    if host != LOOPBACK:
        raise ValueError(f"only {LOOPBACK} may be bound, not {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer in 0..65535, not {port!r}")


def _bind_loopback(port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:`port` (0 = ephemeral).

    The protocol is named explicitly: asyncio sets TCP_NODELAY on accepted
    sockets only when their `proto` is IPPROTO_TCP, and without it small
    responses stall ~40 ms on Nagle + delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


class _ServerThread:
    """uvicorn (and the fault proxy) on a private asyncio loop in a daemon thread."""

    def __init__(self, app: ASGIApp, *, host: str, port: int, faults: bool) -> None:
        _check_address(host, port)
        self._uvicorn = _require_uvicorn()
        self._app = app
        self._port = port
        self._faults = faults
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._stop_requested = False
        self._wake: Callable[[], None] | None = None
        self._url: str | None = None
        self._error: BaseException | None = None
        # uvicorn's socket is bound here, so bind errors raise in the caller's thread.
        self._socket = _bind_loopback(0 if faults else port)
        name = f"{THREAD_NAME_PREFIX}-{self._socket.getsockname()[1]}"
        self._thread = threading.Thread(target=self._thread_main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_ready(self) -> str:
        """Block until the port accepts connections; return the base URL or raise the failure."""
        if not self._ready.wait(_START_TIMEOUT):
            raise RuntimeError(f"the server did not start within {_START_TIMEOUT} s")
        if self._url is None:
            error = self._error
            if isinstance(error, OSError):
                raise error
            raise RuntimeError(f"the server failed to start: {error!r}") from error
        return self._url

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def stop(self) -> None:
        """Ask the loop to shut down and join the thread (bounded); never raises."""
        with self._lock:
            self._stop_requested = True
            wake = self._wake
        if wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                wake()
        if self._thread.ident is not None:
            self._thread.join(_STOP_TIMEOUT)
        self._socket.close()
        if self._thread.is_alive():
            logger.warning(
                "server thread %s did not stop in %s s", self._thread.name, _STOP_TIMEOUT
            )
        elif self._error is not None and self._url is not None:
            logger.warning("server thread %s failed: %r", self._thread.name, self._error)

    def _thread_main(self) -> None:
        try:
            anyio.run(self._main, backend="asyncio")
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        server = self._make_uvicorn()
        listener = await self._listen_proxy() if self._faults else None
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [self._socket])
            try:
                await self._wait_started(server)
                async with anyio.create_task_group() as proxy_tg:
                    if listener is not None:
                        upstream_port = self._socket.getsockname()[1]
                        proxy_tg.start_soon(_serve_proxy, listener, upstream_port)
                    port = self._public_port(listener)
                    self._url = f"http://{LOOPBACK}:{port}"
                    self._ready.set()
                    await self._wait_stop()
                    proxy_tg.cancel_scope.cancel()
            finally:
                server.should_exit = True
                if listener is not None:
                    with anyio.CancelScope(shield=True):
                        await listener.aclose()

    def _make_uvicorn(self) -> Any:
        config = self._uvicorn.Config(
            self._app,
            host=LOOPBACK,
            port=self._socket.getsockname()[1],
            lifespan="off",
            access_log=False,
            log_level="warning",
            log_config=None,
            ws="none",
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
        )
        return self._uvicorn.Server(config)

    async def _listen_proxy(self) -> anyio.abc.Listener[anyio.abc.SocketStream]:
        return await anyio.create_tcp_listener(local_host=LOOPBACK, local_port=self._port)

    def _public_port(self, listener: anyio.abc.Listener[anyio.abc.SocketStream] | None) -> int:
        if listener is None:
            return int(self._socket.getsockname()[1])
        return int(listener.extra(anyio.abc.SocketAttribute.local_port))

    async def _wait_started(self, server: Any) -> None:
        with anyio.fail_after(_START_TIMEOUT):
            while not server.started:
                if self._stop_requested:
                    return
                await anyio.sleep(0.005)

    async def _wait_stop(self) -> None:
        """Sleep until `stop()` is called from any thread."""
        event = anyio.Event()
        loop = _running_loop()
        with self._lock:
            if self._stop_requested:
                return
            self._wake = lambda: loop.call_soon_threadsafe(event.set)
        try:
            await event.wait()
        finally:
            with self._lock:
                self._wake = None


def _running_loop() -> Any:
    """The server thread's asyncio loop (uvicorn needs asyncio, so this thread always has one)."""
    import asyncio

    return asyncio.get_running_loop()


# --------------------------------------------------------------------------- fault proxy


async def _serve_proxy(listener: anyio.abc.Listener[anyio.abc.SocketStream], upstream: int) -> None:
    async def handle(client: anyio.abc.SocketStream) -> None:
        await _proxy_connection(client, upstream)

    await listener.serve(handle)


async def _proxy_connection(client: anyio.abc.SocketStream, upstream_port: int) -> None:
    """Relay one client connection; never raises (an error must not stop the listener)."""
    try:
        upstream = await anyio.connect_tcp(LOOPBACK, upstream_port)
    except OSError:
        await _close(client)
        return
    try:
        await _ProxiedConnection(client, upstream).run()
    except Exception:
        logger.exception("fault proxy: connection failed")
    finally:
        await _close(client)
        await _close(upstream)


async def _close(stream: anyio.abc.SocketStream) -> None:
    with anyio.CancelScope(shield=True), contextlib.suppress(*_DISCONNECTED):
        await stream.aclose()


class _ProxiedConnection:
    """One client connection and its upstream twin; requests flow verbatim, responses are read."""

    def __init__(self, client: anyio.abc.SocketStream, upstream: anyio.abc.SocketStream) -> None:
        self.client = client
        self.upstream = upstream
        self.client_in = BufferedByteReceiveStream(client)
        self.upstream_in = BufferedByteReceiveStream(upstream)
        self.methods: deque[bytes] = deque()  # methods of requests awaiting a response
        self.framed = True  # False once a request could not be delimited

    async def run(self) -> None:
        """Relay until either side closes or a fault ends the connection."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._until_done, self._pump_requests, tg.cancel_scope)
            tg.start_soon(self._until_done, self._pump_responses, tg.cancel_scope)

    @staticmethod
    async def _until_done(pump: Callable[[], Awaitable[None]], scope: anyio.CancelScope) -> None:
        try:
            await pump()
        except _DISCONNECTED:
            pass
        finally:
            scope.cancel()

    async def _pump_requests(self) -> None:
        while True:
            head = await self.client_in.receive_until(b"\r\n\r\n", _MAX_HEAD)
            length = _request_body_length(head)
            if length is None:
                self.framed = False
            else:
                self.methods.append(head.split(b" ", 1)[0].upper())
            await self.upstream.send(head + b"\r\n\r\n")
            if length is None:
                await _copy_rest(self.client_in, self.upstream)
                return
            await _copy_exactly(self.client_in, self.upstream, length)

    async def _pump_responses(self) -> None:
        while True:
            raw = await self.upstream_in.receive_until(b"\r\n\r\n", _MAX_HEAD)
            head = _ResponseHead.parse(raw)
            if 100 <= head.status < 200 and head.status != 101:
                await self.client.send(raw + b"\r\n\r\n")
                continue
            method = self.methods.popleft() if self.methods else None
            length = head.body_length(method) if (method is not None or self.framed) else None
            if head.fault is None or length is None:
                await self.client.send(raw + b"\r\n\r\n")
                if length is None:
                    await _copy_rest(self.upstream_in, self.client)
                    return
                await _copy_exactly(self.upstream_in, self.client, length)
                continue
            body = await self.upstream_in.receive_exactly(length) if length else b""
            if not await self._play(head.fault, head.without_fault(), body):
                return

    async def _play(self, action: str, head: bytes, body: bytes) -> bool:
        """Carry out one fault; True if the connection stays usable."""
        name, _, argument = action.partition(":")
        if name == "close":
            return False
        if name == "reset":
            _arm_reset(self.client)
            return False
        if name == "truncate":
            await self.client.send(head + body[: len(body) // 2])
            return False
        if name == "silence":
            await anyio.sleep(_SILENCE_LIMIT)
            return False
        if name == "drip":
            await self.client.send(head)
            await _drip(self.client, body, _drip_delay(argument))
            return True
        logger.warning("fault proxy: unknown fault action %r; response forwarded", action)
        await self.client.send(head + body)
        return True


def _arm_reset(stream: anyio.abc.SocketStream) -> None:
    """Make the next close of `stream` send RST instead of FIN."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _drip_delay(argument: str) -> float:
    try:
        delay = float(argument)
    except ValueError:
        return 0.0
    if delay != delay:  # NaN
        return 0.0
    return min(max(delay, 0.0), _MAX_DRIP_DELAY)


async def _drip(stream: anyio.abc.SocketStream, body: bytes, delay: float) -> None:
    for start in range(0, len(body), _DRIP_CHUNK):
        await anyio.sleep(delay)
        await stream.send(body[start : start + _DRIP_CHUNK])


async def _copy_exactly(
    source: BufferedByteReceiveStream, sink: anyio.abc.ByteSendStream, count: int
) -> None:
    while count > 0:
        chunk = await source.receive(min(count, _COPY_CHUNK))
        await sink.send(chunk)
        count -= len(chunk)


async def _copy_rest(source: BufferedByteReceiveStream, sink: anyio.abc.ByteSendStream) -> None:
    with contextlib.suppress(anyio.EndOfStream):
        while True:
            await sink.send(await source.receive(_COPY_CHUNK))


# --------------------------------------------------------------------------- HTTP/1.1 heads


def _header_fields(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    fields = []
    for line in lines:
        name, sep, value = line.partition(b":")
        if sep:
            fields.append((name.strip().lower(), value.strip()))
    return fields


def _content_length(fields: list[tuple[bytes, bytes]]) -> int | None:
    """Declared body length; None when the body is chunked or undelimited."""
    values = {value for name, value in fields if name == b"content-length"}
    if any(name == b"transfer-encoding" for name, _ in fields) or len(values) != 1:
        return None
    value = values.pop()
    return int(value) if value.isdigit() else None


def _request_body_length(head: bytes) -> int | None:
    """Length of the body following a request head (0 if none); None if it can't be delimited."""
    fields = _header_fields(head.split(b"\r\n")[1:])
    if not any(name in (b"content-length", b"transfer-encoding") for name, _ in fields):
        return 0
    return _content_length(fields)


class _ResponseHead:
    """A parsed response head (without the blank line that ends it)."""

    __slots__ = ("fault", "fields", "lines", "status")

    def __init__(self, lines: list[bytes], status: int, fields: list[tuple[bytes, bytes]]) -> None:
        self.lines = lines
        self.status = status
        self.fields = fields
        faults = [value for name, value in fields if name == FAULT_HEADER]
        self.fault = faults[0].decode("latin-1") if faults else None

    @classmethod
    def parse(cls, raw: bytes) -> _ResponseHead:
        lines = raw.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise anyio.BrokenResourceError(f"malformed status line {lines[0]!r}")
        return cls(lines, int(parts[1]), _header_fields(lines[1:]))

    def body_length(self, method: bytes | None) -> int | None:
        """Bytes of body after this head; None when only closing the connection delimits it."""
        if self.status == 101:  # switching protocols: no longer HTTP/1.1
            return None
        if method == b"HEAD" or self.status in _NO_BODY_STATUSES or self.status < 200:
            return 0
        return _content_length(self.fields)

    def without_fault(self) -> bytes:
        """The head, fault header removed, with its terminating blank line."""
        kept = [self.lines[0]]
        kept.extend(
            line
            for line in self.lines[1:]
            if line.partition(b":")[0].strip().lower() != FAULT_HEADER
        )
        return b"\r\n".join(kept) + b"\r\n\r\n"
