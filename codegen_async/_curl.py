"""Print any SDK call as the curl command that would make it (the key redacted by default)."""

from __future__ import annotations

import shlex

import httpx

from ._settings import redact_url

__all__ = ["CapturedRequest", "to_curl"]

_REDACTED = "Bearer $CODEGEN_API_KEY"
_SKIPPED = frozenset({"host", "content-length", "accept-encoding", "connection"})


class CapturedRequest(Exception):
    """Raised by a capturing pipeline instead of sending: carries the built request."""

    def __init__(self, request: httpx.Request) -> None:
        super().__init__(f"{request.method} {redact_url(str(request.url))}")
        self.request = request


def to_curl(request: httpx.Request, *, show_key: bool = False) -> str:
    """A shell-quoted curl command equivalent to `request` (a password in the URL is
    masked like the key, unless `show_key`)."""
    url = str(request.url) if show_key else redact_url(str(request.url))
    parts = ["curl", "-sS", "-X", request.method, shlex.quote(url)]
    for name, value in request.headers.items():
        if name.lower() in _SKIPPED:
            continue
        if name.lower() == "authorization" and not show_key:
            parts += ["-H", f'"Authorization: {_REDACTED}"']
            continue
        parts += ["-H", shlex.quote(f"{name}: {value}")]
    body = request.content
    if body:
        parts += ["--data-raw", shlex.quote(body.decode("utf-8", "replace"))]
    return " ".join(parts)
