"""Argument checks run before anything is sent: bad input fails here, naming the argument."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["agent_type", "data_uris", "json_object", "positive_int", "text"]

_AGENT_TYPES = ("codegen", "claude_code")
_DATA_URI = re.compile(r"^data:[\w.+-]+/[\w.+-]+(;[\w.+-]+=[\w.+-]+)*;base64,[A-Za-z0-9+/=\s]*$")


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
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be JSON-serializable: {exc}") from None
    if not all(isinstance(k, str) for k in value):
        raise TypeError(f"{name} keys must be strings")
    return dict(value)
