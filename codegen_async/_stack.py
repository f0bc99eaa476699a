"""Everything that depends on which HTTP stack carries the requests.

Two stacks with the same API and unrelated classes: httpx (0.27/0.28, every Python) and
its maintained successor httpx2 (Python >= 3.11). The SDK builds its own clients with
`default_stack()`: env `CODEGEN_HTTP_STACK` (`httpx`, `httpx2` or `aiohttp`: httpx2's
client, else httpx's, on the aiohttp transport of `_aiohttp`) when set, else httpx2
where it is importable, else httpx. A caller's `http_client` may be of either stack.

Here live the facts that differ between the stacks or that reach into their insides:
what a client is (`stack_of`), the proxy a client would use for a URL and the refusal of
a remote one for plain http, the mounts that keep loopback away from environment
proxies, the reading of a body under a cap, which transport failures prove a request was
never sent, and the construction of the SDK's own client. Errors of both stacks are
recognised whichever stack the client is (an in-process app may raise either).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
import zlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import attrs
import httpx

from . import _errors
from ._settings import is_loopback_host
from ._validate import redact_url

if TYPE_CHECKING:
    import httpx2

    HTTPClient: TypeAlias = httpx.AsyncClient | httpx2.AsyncClient
    HTTPResponse: TypeAlias = httpx.Response | httpx2.Response
    HTTPHeaders: TypeAlias = httpx.Headers | httpx2.Headers
else:  # the names exist at run time for signatures; the unions are for type checkers
    HTTPClient = httpx.AsyncClient
    HTTPResponse = httpx.Response
    HTTPHeaders = httpx.Headers

__all__ = ["STACK_ENV", "HTTPClient", "Stack", "default_stack", "stack_for", "stack_of"]

STACK_ENV: Final = "CODEGEN_HTTP_STACK"
STACK_NAMES: Final = ("httpx", "httpx2", "aiohttp")


@attrs.frozen
class Stack:
    """One HTTP stack: its module (httpx or httpx2) and whether it sends on aiohttp."""

    name: str  # "httpx", "httpx2" or "aiohttp"
    module: ModuleType = attrs.field(repr=False)
    aiohttp: bool = False

    @property
    def version(self) -> str:
        """What the User-Agent names: `httpx/0.28.1`, `httpx2/2.16.2`, `aiohttp/3.x`."""
        if self.aiohttp:
            import aiohttp

            return f"aiohttp/{aiohttp.__version__}"
        return f"{self.module.__name__}/{self.module.__version__}"

    def timeout(self, timeout: Any) -> Any:
        """`timeout` (an httpx or httpx2 Timeout) as this stack's Timeout."""
        if isinstance(timeout, self.module.Timeout):
            return timeout
        return self.module.Timeout(
            connect=timeout.connect, read=timeout.read, write=timeout.write, pool=timeout.pool
        )


def _httpx2_available() -> bool:
    if "httpx2" in sys.modules:
        return True
    return sys.version_info >= (3, 11) and importlib.util.find_spec("httpx2") is not None


def _load(name: str) -> Stack:
    if name == "httpx":
        return Stack("httpx", httpx)
    if name == "httpx2":
        if not _httpx2_available():
            raise _errors.ConfigurationError(
                f"{STACK_ENV}=httpx2 but httpx2 is not installed (it needs Python >= 3.11): "
                "pip install 'codegen-async[httpx2]', or unset it to use httpx"
            )
        return Stack("httpx2", importlib.import_module("httpx2"))
    if importlib.util.find_spec("aiohttp") is None:
        raise _errors.ConfigurationError(
            f"{STACK_ENV}=aiohttp but aiohttp is not installed: "
            "pip install 'codegen-async[aiohttp]', or unset it"
        )
    module = importlib.import_module("httpx2") if _httpx2_available() else httpx
    return Stack("aiohttp", module, aiohttp=True)


def default_stack() -> Stack:
    """The stack the SDK builds its own clients with (see the module's docstring)."""
    raw = os.environ.get(STACK_ENV)
    if raw is None or not raw.strip():
        return _load("httpx2" if _httpx2_available() else "httpx")
    name = raw.strip().lower()
    if name not in STACK_NAMES:
        raise _errors.ConfigurationError(
            f"{STACK_ENV} must be one of {', '.join(STACK_NAMES)}, got {raw!r}"
        )
    return _load(name)


def stack_for(client: object) -> Stack:
    """The stack of a caller's `client`, or `default_stack()` when it is None; a TypeError
    when it is an AsyncClient of neither stack."""
    if client is None:
        return default_stack()
    stack = stack_of(client)
    if stack is None:
        raise TypeError(
            "http_client must be an httpx.AsyncClient or an httpx2.AsyncClient, "
            f"got {type(client).__name__}"
        )
    return stack


def stack_of(client: object) -> Stack | None:
    """The stack `client` belongs to, or None when it is no AsyncClient of either."""
    if isinstance(client, httpx.AsyncClient):
        return Stack("httpx", httpx)
    httpx2 = sys.modules.get("httpx2")  # a client of httpx2 means httpx2 is imported
    if httpx2 is not None and isinstance(client, httpx2.AsyncClient):
        return Stack("httpx2", httpx2)
    return None


# -- errors of either stack -------------------------------------------------------------


@attrs.frozen
class Failures:
    """The exception classes of every loaded stack, by what they mean to the pipeline."""

    transport: tuple[type[Exception], ...]  # any failure to exchange
    timeout: tuple[type[Exception], ...]  # the stack's own timeouts
    not_sent: tuple[type[Exception], ...]  # proof the request never reached the handler
    decoding: tuple[type[Exception], ...]  # a body that cannot be decoded


@functools.lru_cache(maxsize=4)
def _failures(names: tuple[str, ...]) -> Failures:
    modules = [sys.modules[name] for name in names]
    return Failures(
        transport=tuple(m.TransportError for m in modules),
        timeout=tuple(m.TimeoutException for m in modules),
        not_sent=tuple(
            e for m in modules for e in (m.ConnectError, m.ConnectTimeout, m.PoolTimeout)
        ),
        decoding=tuple(m.DecodingError for m in modules),
    )


def failures() -> Failures:
    """The failures of httpx, and of httpx2 once it is imported."""
    return _failures(("httpx", "httpx2") if "httpx2" in sys.modules else ("httpx",))


# -- the SDK's own client ---------------------------------------------------------------


def build_client(
    stack: Stack, *, headers: dict[str, str], timeout: Any, max_connections: int, base_url: str
) -> HTTPClient:
    """The client the SDK owns: `stack`'s AsyncClient, pooled to `max_connections`, with
    loopback kept away from environment proxies (on aiohttp: the fast transport)."""
    module = stack.module
    limits = module.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    if stack.aiohttp:
        from ._aiohttp import AiohttpTransport

        transport = AiohttpTransport(module, max_connections=max_connections, base_url=base_url)
        client: HTTPClient = module.AsyncClient(
            headers=headers, timeout=stack.timeout(timeout), transport=transport
        )
    else:
        client = module.AsyncClient(
            headers=headers,
            timeout=stack.timeout(timeout),
            limits=limits,
            mounts=_direct_mounts(base_url),
        )
    return client


# -- moved from _http: proxies ----------------------------------------------------------


def _proxy_for(client: HTTPClient, url: str) -> str | None:
    """The proxy `client` would send a request for `url` through (no password), if any."""
    stack = stack_of(client)
    if stack is None:
        return None
    try:
        transport = client._transport_for_url(stack.module.URL(url))
    except Exception:  # a client of another shape: nothing can be said
        return None
    pool = getattr(transport, "_pool", None)
    proxy = getattr(pool, "_proxy_url", None)
    if proxy is None:
        return None
    scheme = proxy.scheme.decode("ascii", "replace")
    host = proxy.host.decode("ascii", "replace")
    port = f":{proxy.port}" if proxy.port is not None else ""
    return f"{scheme}://{host}{port}"


def _check_proxy(client: HTTPClient, base_url: str) -> None:
    """Refuse to send an http:// base URL (the key in clear) through a non-loopback proxy."""
    url = httpx.URL(base_url)
    if url.scheme != "http":
        return
    proxy = _proxy_for(client, base_url)
    if proxy is None or is_loopback_host(httpx.URL(proxy).host):
        return
    raise _errors.ConfigurationError(
        f"base_url {redact_url(base_url)!r} is plain http and the http_client would send it "
        f"through the proxy {redact_url(proxy)!r}, which is not on loopback: the API key "
        "would cross the network in clear. Add the host to NO_PROXY, or use a client "
        "without that proxy"
    )


def _direct_mounts(base_url: str) -> dict[str, Any]:
    """For an http:// (loopback) base URL: a mount that bypasses any environment proxy."""
    url = httpx.URL(base_url)
    if url.scheme != "http":
        return {}
    port = f":{url.port}" if url.port is not None else ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return {f"all://{host}{port}": None}


# -- moved from _http: a body read under a cap ------------------------------------------

_GZIP_WBITS = 16 + zlib.MAX_WBITS
_ZLIB_WBITS = {"gzip": _GZIP_WBITS, "x-gzip": _GZIP_WBITS, "deflate": zlib.MAX_WBITS}


class _BodyTooLarge(Exception):
    """Internal: the body decoded past the cap."""


class _CappedBody:
    """A response body decoded as it arrives, refusing to grow past `cap` bytes.

    gzip and deflate are inflated here with `max_length`, so one compressed chunk never
    expands past the cap in memory; other encodings go through httpx's decoders, one
    network chunk at a time."""

    def __init__(self, cap: int, wbits: int | None) -> None:
        self.cap = cap
        self.parts: list[bytes] = []
        self.size = 0
        self._wbits = wbits
        self._inflate: Any = None

    def add_encoded(self, data: bytes) -> None:
        if self._wbits is None:
            self.add(data)
            return
        if self._inflate is None and data:
            wbits = self._wbits
            if wbits == zlib.MAX_WBITS and (data[0] & 0x0F) != 8:
                wbits = -zlib.MAX_WBITS  # raw deflate, no zlib header: accepted like httpx
            self._inflate = zlib.decompressobj(wbits)
        try:
            while data and not self._inflate.eof:
                self.add(self._inflate.decompress(data, self.cap - self.size + 1))
                data = self._inflate.unconsumed_tail
        except zlib.error as exc:
            raise httpx.DecodingError(f"{exc}") from None

    def add(self, data: bytes) -> None:
        if self.size + len(data) > self.cap:
            self.parts.append(data[: self.cap - self.size])
            self.size = self.cap
            raise _BodyTooLarge
        self.parts.append(data)
        self.size += len(data)


async def _read_capped(response: HTTPResponse, cap: int) -> tuple[bytes, bool]:
    """The decoded body, and whether it went past `cap` (then only its first `cap` bytes)."""
    if response.is_stream_consumed:  # read already (a transport that returns whole bodies)
        return response.content[:cap], len(response.content) > cap
    header = response.headers.get("content-encoding", "")
    encodings = [e.strip().lower() for e in header.split(",")]
    encodings = [e for e in encodings if e and e != "identity"]
    try:
        if not encodings or (len(encodings) == 1 and encodings[0] in _ZLIB_WBITS):
            body = _CappedBody(cap, _ZLIB_WBITS[encodings[0]] if encodings else None)
            async for chunk in response.aiter_raw():
                body.add_encoded(chunk)
        else:
            body = _CappedBody(cap, None)
            async for chunk in response.aiter_bytes():
                body.add(chunk)
    except _BodyTooLarge:
        return b"".join(body.parts), True
    return b"".join(body.parts), False
