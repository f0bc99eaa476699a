"""A thin transport on aiohttp for an httpx or httpx2 client (`CODEGEN_HTTP_STACK=aiohttp`).

aiohttp parses HTTP in C and keeps a leaner connection pool than httpcore; the client
above it stays httpx's (or httpx2's), so headers, timeouts, the capped body reader and
the error mapping of `_http` are the same as on the other stacks. aiohttp runs on asyncio
only: under trio the first request raises `ConfigurationError` saying so.

aiohttp's failures become the stack's own, keeping what the pipeline's retry rules need:
only a failure to connect (refused, DNS, TLS handshake, connect timeout) says the request
was never sent; a connection lost later is a `RemoteProtocolError`/`ReadError` (maybe
processed). Environment proxies are used for https only: a plain-http base URL is
loopback (see `_settings`) and is always reached directly, as on httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator
from types import ModuleType, TracebackType
from typing import Any

import aiohttp

from . import _errors

__all__ = ["AiohttpTransport"]

_CHUNK = 64 * 1024


def _mapped(module: ModuleType, exc: BaseException) -> type[Exception] | None:
    """The httpx/httpx2 exception class for an aiohttp failure (None: not aiohttp's)."""
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return module.ProxyError  # type: ignore[no-any-return]
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS: never sent
        return module.ConnectError  # type: ignore[no-any-return]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return module.ConnectTimeout  # type: ignore[no-any-return]
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return module.ReadTimeout  # type: ignore[no-any-return]
    if isinstance(exc, aiohttp.InvalidURL):
        return module.UnsupportedProtocol  # type: ignore[no-any-return]
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError)):
        return module.RemoteProtocolError  # type: ignore[no-any-return]
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError)):
        return module.ReadError  # type: ignore[no-any-return]
    if isinstance(exc, aiohttp.ClientError):
        return module.RemoteProtocolError  # type: ignore[no-any-return]
    return None


@contextlib.contextmanager
def _mapping(module: ModuleType) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _mapped(module, exc)
        if mapped is None:
            raise
        raise mapped(f"{type(exc).__name__}: {exc}") from exc


@functools.lru_cache(maxsize=2)
def _stream_class(module: ModuleType) -> type:
    """The response body stream, a subclass of `module.AsyncByteStream` (httpx checks)."""

    class _Body(module.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self, response: aiohttp.ClientResponse) -> None:
            self._response = response

        async def __aiter__(self) -> AsyncIterator[bytes]:
            with _mapping(module):
                async for chunk in self._response.content.iter_chunked(_CHUNK):
                    yield chunk

        async def aclose(self) -> None:
            self._response.release()

    return _Body


class AiohttpTransport:
    """An `AsyncBaseTransport` of `module` (httpx or httpx2) that sends through aiohttp.

    The session is made on the first request, in the running asyncio loop."""

    def __init__(self, module: ModuleType, *, max_connections: int, base_url: str) -> None:
        self._module = module
        self._max_connections = max_connections
        # Environment proxies for https only: plain http is loopback, always direct.
        self._trust_env = not base_url.startswith("http://")
        self._session: aiohttp.ClientSession | None = None
        self._body = _stream_class(module)

    def _open(self) -> aiohttp.ClientSession:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise _errors.ConfigurationError(
                "the aiohttp transport (CODEGEN_HTTP_STACK=aiohttp) runs on asyncio only; "
                "under trio use CODEGEN_HTTP_STACK=httpx or httpx2"
            ) from None
        connector = aiohttp.TCPConnector(limit=self._max_connections)
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=self._trust_env,
            auto_decompress=False,  # the pipeline inflates under its cap
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
        )
        return self._session

    async def handle_async_request(self, request: Any) -> Any:
        session = self._session if self._session is not None else self._open()
        timeout = request.extensions.get("timeout", {})
        content = request.content  # the SDK's bodies are bytes, read already
        url = request.url
        if url.userinfo:  # credentials travel in the headers httpx built, not the URL
            url = url.copy_with(userinfo=b"")
        with _mapping(self._module):
            response = await session.request(
                request.method,
                str(url),
                headers=request.headers.multi_items(),
                data=content or None,
                allow_redirects=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"), sock_read=timeout.get("read")
                ),
            )
        return self._module.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=self._body(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> AiohttpTransport:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await self.aclose()
