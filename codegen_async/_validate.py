"""Argument checks run before anything is sent: bad input fails here, naming the argument.

One rule per kind of value, used everywhere (a wrong type raises `TypeError`, a wrong
value `ValueError`, each naming the argument):

- `timeout`: None (no limit) or a finite int/float > 0. Zero is refused: a wait that may
  not wait at all is a mistake, not a request ("60", nan, inf, -1 and bools are refused).
- `positive_int`: an int > 0 and within a signed 64-bit integer, the API's ids (bools
  refused).
- `strict_bool`: exactly True or False ("no", 0 and None are refused).
- `callback`: None or a callable.
- `enum_member`: a declared member of the enum, or its value as a string in any case.
- `strings`: a list of strings (a single str is refused, not split into characters).
- `json_object`: a JSON object whose keys, at every depth, are strings.
- `header`: an HTTP header name and value with no line break or control character;
  `caller_header` also refuses the headers the client owns (`OWNED_HEADERS`).
- `api_path`: a path under the base URL: starts with one `/`, no query or fragment, no
  backslash, control character, empty, `.` or `..` segment (raw or percent-encoded).
- `http_method`: one of `METHODS`, in any case.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, get_args
from urllib.parse import unquote

from .models import AgentType

__all__ = [
    "MAX_ID",
    "METHODS",
    "OWNED_HEADERS",
    "agent_type",
    "api_path",
    "callback",
    "caller_header",
    "data_uris",
    "enum_member",
    "header",
    "http_method",
    "json_object",
    "positive_int",
    "redact_url",
    "strict_bool",
    "strings",
    "text",
    "timeout",
]

_E = TypeVar("_E", bound=enum.Enum)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_MAX_JSON_DEPTH = 64
MAX_ID = 2**63 - 1  # the largest id the API can hold: a signed 64-bit integer
# Headers the client sets itself: a caller's value would hijack the key, the host or
# the framing of the request.
OWNED_HEADERS = frozenset(
    {"host", "authorization", "content-length", "transfer-encoding", "connection"}
)
METHODS = ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")
# C0 and C1 controls, DEL, and the characters a path must not carry raw.
_PATH_REFUSED = re.compile(r"[\x00-\x20\x7f-\x9f\\?#]")

_AGENT_TYPES: tuple[str, ...] = get_args(AgentType)
_DATA_URI = re.compile(r"^data:[\w.+-]+/[\w.+-]+(;[\w.+-]+=[\w.+-]+)*;base64,[A-Za-z0-9+/=\s]*$")


def shorten(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters (ending in "...") when longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(value: object, limit: int = 60) -> str:
    """A short repr of a (non-secret) bad value, for an error message."""
    return shorten(repr(value), limit)


def positive_int(name: str, value: object) -> int:
    """An id: an int > 0 (bools refused)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if value > MAX_ID:
        raise ValueError(
            f"{name} must be at most {MAX_ID} (a signed 64-bit integer), "
            f"got an integer of {value.bit_length()} bits"
        )
    return value


def text(name: str, value: object, *, allow_empty: bool = False) -> str:
    """A string; unless `allow_empty`, one with something besides whitespace."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise ValueError(f"{name} must not be empty")
    return value


def agent_type(value: object) -> str | None:
    if value is None:
        return None
    if value not in _AGENT_TYPES:
        raise ValueError(f"agent_type must be one of {', '.join(_AGENT_TYPES)}, got {value!r}")
    return str(value)


def data_uris(value: Iterable[str] | None) -> list[str] | None:
    """Images as base64 data URIs (`data:image/png;base64,...`)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise TypeError("images must be a list of data URIs, not a single string")
    images = list(value)
    for i, image in enumerate(images):
        if not isinstance(image, str) or not _DATA_URI.match(image):
            shown = image[:40] if isinstance(image, str) else type(image).__name__
            raise ValueError(f"images[{i}] must be a base64 data URI, got {shown!r}")
    return images


def json_object(name: str, value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A JSON object with string keys that survives a round trip through json."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping, got {type(value).__name__}")
    _check_json_keys(name, value, 0)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{name} must be JSON-serializable: {exc}") from None
    return dict(value)


def _check_json_keys(where: str, value: object, depth: int) -> None:
    """Every object key, at every depth, is a str (json would silently stringify 1 or True)."""
    if depth > _MAX_JSON_DEPTH:
        raise ValueError(f"{where} is nested deeper than {_MAX_JSON_DEPTH} levels")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} keys must be strings, got {type(key).__name__} key {key!r}"
                )
            _check_json_keys(f"{where}[{key!r}]", item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_json_keys(f"{where}[{index}]", item, depth + 1)


def timeout(name: str, value: object) -> float | None:
    """Seconds: None (no limit) or a finite number > 0."""
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a number of seconds or None, got {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0 or None, got {value!r}")
    return seconds


def aware_datetime(name: str, value: object) -> datetime.datetime:
    """A datetime with a time zone (a naive one could mean any instant)."""
    if not isinstance(value, datetime.datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (with a time zone), got {value!r}")
    return value


def strict_bool(name: str, value: object) -> bool:
    """Exactly True or False."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def callback(name: str, value: object) -> Any:
    """None or something callable."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {type(value).__name__}")
    return value


def enum_member(name: str, value: object, cls: type[_E]) -> _E:
    """A declared member of `cls`, given as the member or as its value in any case."""
    members = list(cls.__members__.values())
    if isinstance(value, cls) and value in members:
        return value
    if isinstance(value, str):
        for member in members:
            if str(member.value).casefold() == value.casefold():
                return member
    allowed = ", ".join(str(m.value) for m in members)
    raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def strings(name: str, value: object) -> list[str]:
    """A list of strings: any iterable of str except a single str (or bytes)."""
    if isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of strings, got {type(value).__name__}")
    items = list(value)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{index}] must be a str, got {type(item).__name__}")
    return items


def header(name: object, value: object) -> tuple[str, str]:
    """An HTTP header: a token name and a printable ASCII value (tabs allowed): no CR or LF
    that would start another header, no other control or non-ASCII character."""
    if not isinstance(name, str) or not isinstance(value, str):
        raise TypeError("headers must map str to str")
    if not _HEADER_NAME.match(name):
        raise ValueError(f"header name {name!r} is not a valid HTTP header name")
    if any(not (" " <= ch <= "~" or ch == "\t") for ch in value):
        raise ValueError(
            f"header {name!r}: the value contains a line break, a control character or a "
            "character that is not ASCII"
        )
    return name, value


def caller_header(name: object, value: object) -> tuple[str, str]:
    """A header a caller adds to the client's (`header`), but none the client owns."""
    name, value = header(name, value)
    if name.lower() in OWNED_HEADERS:
        what = (
            "set the key with api_key" if name.lower() == "authorization" else "the client sets it"
        )
        raise ValueError(f"headers: {name!r} cannot be set ({what})")
    return name, value


def http_method(value: object) -> str:
    """An HTTP method of `METHODS`, in capitals."""
    if not isinstance(value, str):
        raise TypeError(f"method must be a str, got {type(value).__name__}")
    method = value.upper()
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {shown(value)}")
    return method


def api_path(value: object) -> str:
    """A path under the base URL, as given (`/v1/...`): it cannot name another host or
    climb above the base path, whatever the server decodes."""
    if not isinstance(value, str):
        raise TypeError(f"path must be a str, got {type(value).__name__}")
    decoded, previous = value, None
    while decoded != previous:  # every layer a server might decode, down to plain text
        problem = _path_problem(decoded)
        if problem is not None:
            raise ValueError(f"path {shown(value)} {problem}")
        decoded, previous = unquote(decoded, errors="replace"), decoded
    return value


def _path_problem(path: str) -> str | None:
    if not path.startswith("/"):
        return "must start with '/': a path under the base URL, not a URL"
    found = _PATH_REFUSED.search(path)
    if found is not None:
        return (
            f"contains {found.group()!r}: no whitespace, control character, backslash, "
            "query or fragment (pass the query as params=)"
        )
    segments = path[1:].split("/")
    if any(segment in ("", ".", "..") for segment in segments[:-1]) or segments[-1] in (
        ".",
        "..",
    ):
        return "has an empty, '.' or '..' segment: it must stay under the base URL"
    return None


def redact_url(url: str) -> str:
    """The URL with any user:password part masked, for messages, logs and reprs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{tail}"
