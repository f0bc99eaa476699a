"""Print any SDK call as the curl command that would make it (the key redacted by default)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping

import httpx

from ._validate import redact_url

__all__ = ["BASE_URL_PLACEHOLDER", "ORG_ID_PLACEHOLDER", "Capture", "CaptureStop", "to_curl"]

# An organization id no one has: a client given it (when the real one is unknown and
# must not be looked up) gets curls that say `${CODEGEN_ORG_ID}` in its place.
ORG_ID_PLACEHOLDER = 2**53 - 1
# A base URL no one serves (`.invalid` never resolves): a client given it gets curls
# that say `${CODEGEN_BASE_URL}` in its place (e.g. for an emulator served elsewhere).
BASE_URL_PLACEHOLDER = "https://codegen-base-url.invalid"
_VARIABLES = {str(ORG_ID_PLACEHOLDER): "CODEGEN_ORG_ID", BASE_URL_PLACEHOLDER: "CODEGEN_BASE_URL"}

_REDACTED = "Bearer $CODEGEN_API_KEY"
_SKIPPED = frozenset({"host", "content-length", "accept-encoding", "connection"})


class Capture:
    """Where a capturing pipeline (`Pipeline.capturing`) puts the first request it built
    instead of sending it; `as_curl` reads it from here."""

    __slots__ = ("request",)

    def __init__(self) -> None:
        self.request: httpx.Request | None = None


class CaptureStop(Exception):
    """Ends a captured call once its request is built: nothing is sent, and nothing after
    it runs. It carries no answer (that is in the `Capture`)."""


def to_curl(request: httpx.Request, *, show_key: bool = False) -> str:
    """A shell-quoted curl command equivalent to `request` (`ORG_ID_PLACEHOLDER` written
    as `${CODEGEN_ORG_ID}` and `BASE_URL_PLACEHOLDER` as `${CODEGEN_BASE_URL}`, in double
    quotes so that the shell expands them; a password in the URL is masked like the
    key, unless `show_key`)."""
    names: Mapping[str, str] = _VARIABLES

    def quote(text: str) -> str:
        if not any(placeholder in text for placeholder in names):
            return shlex.quote(text)
        for char in '\\"$`':
            text = text.replace(char, "\\" + char)
        for placeholder, name in names.items():
            text = text.replace(placeholder, "${" + name + "}")
        return f'"{text}"'

    url = str(request.url) if show_key else redact_url(str(request.url))
    parts = ["curl", "-sS", "-X", request.method, quote(url)]
    for name, value in request.headers.items():
        if name.lower() in _SKIPPED:
            continue
        if name.lower() == "authorization" and not show_key:
            parts += ["-H", f'"Authorization: {_REDACTED}"']
            continue
        parts += ["-H", quote(f"{name}: {value}")]
    body = request.content
    if body:
        parts += ["--data-raw", quote(body.decode("utf-8", "replace"))]
    return " ".join(parts)
