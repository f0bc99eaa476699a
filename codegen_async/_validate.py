"""Argument checks run before anything is sent: bad input fails here, naming the argument.

One rule per kind of value, used everywhere (a wrong type raises `TypeError`, a wrong
value `ValueError`, each naming the argument):

- `timeout`: None (no limit) or a finite int/float > 0. Zero is refused: a wait that may
  not wait at all is a mistake, not a request ("60", nan, inf, -1 and bools are refused).
- `positive_int`: an int > 0 (bools refused).
- `strict_bool`: exactly True or False ("no", 0 and None are refused).
- `callback`: None or a callable.
- `enum_member`: a declared member of the enum, or its value as a string in any case.
- `strings`: a list of strings (a single str is refused, not split into characters).
- `json_object`: a JSON object whose keys, at every depth, are strings.
- `header`: an HTTP header name and value with no line break or control character.
"""

from __future__ import annotations

import datetime
import enum
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, get_args

from .models import AgentType

__all__ = [
    "agent_type",
    "callback",
    "data_uris",
    "enum_member",
    "header",
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


def redact_url(url: str) -> str:
    """The URL with any user:password part masked, for messages, logs and reprs."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}{sep}{authority}{slash}{tail}"
