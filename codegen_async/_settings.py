"""Client settings: argument > environment > config file > default, resolved and validated once.

`resolve_settings()` picks each setting from the first place that has it, checks the
winning value, and returns a frozen `Settings` that records where every value came from.
Errors are `ConfigurationError`s naming the setting and its source; the API key itself
never appears in a message, a warning or a repr.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import stat
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar
from urllib.parse import SplitResult, urlsplit, urlunsplit

import attrs
import httpx

from . import _validate
from ._config import (
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
)
from ._constants import DEFAULT_BASE_URL
from ._errors import ConfigurationError
from ._validate import redact_url
from ._validate import shown as _show

if TYPE_CHECKING:
    import httpx2

    Timeout: TypeAlias = httpx.Timeout | httpx2.Timeout
else:  # at run time the name serves signatures; httpx2's Timeout is accepted as well
    Timeout = httpx.Timeout

__all__ = [
    "InsecureConfigFileWarning",
    "Settings",
    "Timeout",
    "default_config_paths",
    "is_loopback_host",
    "resolve_settings",
]

ENV_API_KEY: Final = "CODEGEN_API_KEY"
ENV_TOKEN: Final = "CODEGEN_TOKEN"
ENV_ORG_ID: Final = "CODEGEN_ORG_ID"
ENV_BASE_URL: Final = "CODEGEN_BASE_URL"
ENV_TIMEOUT: Final = "CODEGEN_TIMEOUT"
ENV_MAX_RETRIES: Final = "CODEGEN_MAX_RETRIES"
ENV_USER_AGENT: Final = "CODEGEN_USER_AGENT"
ENV_MAX_RESPONSE_BYTES: Final = "CODEGEN_MAX_RESPONSE_BYTES"
ENV_MAX_REQUEST_BYTES: Final = "CODEGEN_MAX_REQUEST_BYTES"
ENV_TRACING: Final = "CODEGEN_TRACING"
ENV_RATE_LIMIT_STORE: Final = "CODEGEN_RATE_LIMIT_STORE"

_KEY_FILE_KEYS: Final = ("api_key", "token")
_SOURCE_ARGUMENT: Final = "argument"
_SOURCE_DEFAULT: Final = "default"
_T = TypeVar("_T")


class InsecureConfigFileWarning(UserWarning):
    """A config file holding an API key can be read by other users."""


@attrs.frozen
class Settings:
    """Resolved, validated client settings. Build it with `resolve_settings()`.

    `org_id` None means: resolve it later from the caller's first organization.
    `user_agent` is an extra product token appended to the SDK's own User-Agent.
    `max_response_bytes` caps a response body once decoded (gzip included);
    `max_request_bytes` caps a request body once encoded (below the response cap).
    `sources` maps each setting name to where its value came from. A password in
    `base_url` is masked in the repr.
    `tracing` False keeps the client silent to OpenTelemetry even when it is installed.
    `sources` maps each setting name to where its value came from.
    """

    api_key: str = attrs.field(repr=False)
    org_id: int | None
    base_url: str = attrs.field(repr=lambda url: repr(redact_url(url)))
    timeout: httpx.Timeout
    max_retries: int
    user_agent: str | None = None
    sources: dict[str, str] = attrs.field(factory=dict)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    tracing: bool = True
    rate_limit_store: str | None = attrs.field(default=None, repr=False)  # env only


def default_config_paths() -> tuple[Path, ...]:
    """The config files looked at when none are given, in order of precedence."""
    try:
        home = Path.home()
    except (RuntimeError, KeyError):
        return ()
    return (home / ".config" / "codegen-sh" / "auth.json", home / ".codegen" / "config.json")


def resolve_settings(
    *,
    api_key: str | None = None,
    org_id: int | str | None = None,
    base_url: str | None = None,
    timeout: float | Timeout | None = None,
    max_retries: int | None = None,
    user_agent: str | None = None,
    max_response_bytes: int | None = None,
    max_request_bytes: int | None = None,
    tracing: bool | None = None,
    env: Mapping[str, str] | None = None,
    config_paths: Sequence[Path] | None = None,
) -> Settings:
    """Resolve every setting from argument > environment > config file > default and check it."""
    environ: Mapping[str, str] = os.environ if env is None else env
    paths = (
        default_config_paths()
        if config_paths is None
        else tuple(Path(p).expanduser() for p in config_paths)
    )
    files = _ConfigFiles(paths)
    sources: dict[str, str] = {}

    found_key = _pick(api_key, environ, (ENV_API_KEY, ENV_TOKEN), files, _KEY_FILE_KEYS)
    if found_key is None:
        raise ConfigurationError(_missing_key_message(paths))
    key = _record(sources, "api_key", found_key, _parse_api_key)

    found = _pick(org_id, environ, (ENV_ORG_ID,), files, ("org_id",))
    org = _record(sources, "org_id", found or (None, _SOURCE_DEFAULT), _optional(_parse_org_id))

    found = _pick(base_url, environ, (ENV_BASE_URL,), files, ("base_url",))
    url = _record(sources, "base_url", found or (DEFAULT_BASE_URL, _SOURCE_DEFAULT), _parse_url)

    found = _pick(timeout, environ, (ENV_TIMEOUT,), files, ())
    limit = _record(sources, "timeout", found or (DEFAULT_TIMEOUT, _SOURCE_DEFAULT), _parse_timeout)

    found = _pick(max_retries, environ, (ENV_MAX_RETRIES,), files, ())
    retries = _record(
        sources, "max_retries", found or (DEFAULT_MAX_RETRIES, _SOURCE_DEFAULT), _parse_retries
    )

    found = _pick(user_agent, environ, (ENV_USER_AGENT,), files, ())
    agent = _record(
        sources, "user_agent", found or (None, _SOURCE_DEFAULT), _optional(_parse_user_agent)
    )

    found = _pick(max_response_bytes, environ, (ENV_MAX_RESPONSE_BYTES,), files, ())
    cap = _record(
        sources,
        "max_response_bytes",
        found or (DEFAULT_MAX_RESPONSE_BYTES, _SOURCE_DEFAULT),
        _byte_count("max_response_bytes"),
    )
    found = _pick(max_request_bytes, environ, (ENV_MAX_REQUEST_BYTES,), files, ())
    request_cap = _record(
        sources,
        "max_request_bytes",
        found or (DEFAULT_MAX_REQUEST_BYTES, _SOURCE_DEFAULT),
        _byte_count("max_request_bytes"),
    )
    request_cap = _check_request_cap(request_cap, cap, sources)
    found = _pick(tracing, environ, (ENV_TRACING,), files, ())
    traced = _record(sources, "tracing", found or (True, _SOURCE_DEFAULT), _parse_switch)
    found = _pick(None, environ, (ENV_RATE_LIMIT_STORE,), files, ())
    store = None if found is None else _record(sources, "rate_limit_store", found, _parse_store)
    return Settings(
        tracing=traced,
        api_key=key,
        org_id=org,
        base_url=url,
        timeout=limit,
        max_retries=retries,
        user_agent=agent,
        sources=sources,
        max_response_bytes=cap,
        max_request_bytes=request_cap,
        rate_limit_store=store,
    )


# --- picking a value -------------------------------------------------------------------


def _pick(
    argument: object,
    env: Mapping[str, str],
    env_names: Sequence[str],
    files: _ConfigFiles,
    file_keys: Sequence[str],
) -> tuple[object, str] | None:
    """The first (value, source) among argument, env vars, config files; None if unset."""
    if argument is not None:
        return argument, _SOURCE_ARGUMENT
    for name in env_names:
        value = env.get(name)
        if value:
            return value, f"env {name}"
    if file_keys:
        return files.lookup(file_keys)
    return None


def _record(
    sources: dict[str, str],
    name: str,
    found: tuple[object, str],
    parse: Callable[[object, str], _T],
) -> _T:
    """Check the value picked for `name` and note its source."""
    value, source = found
    sources[name] = source
    return parse(value, source)


def _optional(parse: Callable[[object, str], _T]) -> Callable[[object, str], _T | None]:
    """A parser that passes None (the unset default) through unchecked."""

    def parse_optional(value: object, source: str) -> _T | None:
        return None if value is None else parse(value, source)

    return parse_optional


def _missing_key_message(paths: Sequence[Path]) -> str:
    places = [
        "the api_key argument",
        f"env {ENV_API_KEY}",
        f"env {ENV_TOKEN}",
        *(f"config file {p} (keys 'api_key' or 'token')" for p in paths),
    ]
    return "api_key is not set; looked in: " + ", ".join(places)


class _ConfigFiles:
    """The config files in order of precedence, each read at most once and only when needed."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = tuple(paths)
        self._loaded: dict[Path, dict[str, Any] | None] = {}

    def lookup(self, keys: Sequence[str]) -> tuple[object, str] | None:
        """The first file's value for the first of `keys` it has (null and "" count as unset)."""
        for path in self._paths:
            data = self._load(path)
            if data is None:
                continue
            for key in keys:
                value = data.get(key)
                if value is not None and value != "":
                    return value, f"config file {path}"
        return None

    def _load(self, path: Path) -> dict[str, Any] | None:
        if path not in self._loaded:
            self._loaded[path] = _read_config_file(path)
        return self._loaded[path]


def _read_config_file(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`, or None if there is no such file."""
    try:
        with path.open("rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            raw = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except IsADirectoryError:
        raise ConfigurationError(f"config file {path} is a directory, not a JSON file") from None
    except OSError as exc:
        raise ConfigurationError(f"config file {path} cannot be read: {exc.strerror}") from None
    data = _config_json(raw, path)
    if _holds_key(data) and os.name == "posix" and stat.S_IMODE(mode) & 0o077:
        warnings.warn(
            f"config file {path} holds an API key and can be read by other users "
            f"(mode {stat.S_IMODE(mode):03o}); run: chmod 600 {path}",
            InsecureConfigFileWarning,
            stacklevel=_caller_stacklevel(),
        )
    return data


def _config_json(raw: bytes, path: Path) -> dict[str, Any]:
    """Parse a config file's bytes; the error never quotes the file's content."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        raise ConfigurationError(f"config file {path} is not valid JSON ({where})") from None
    except ValueError:  # undecodable bytes
        raise ConfigurationError(f"config file {path} is not valid JSON text") from None
    if not isinstance(data, dict):
        raise ConfigurationError(
            f"config file {path} must hold a JSON object, not {_json_type(data)}"
        )
    return data


def _holds_key(data: Mapping[str, Any]) -> bool:
    return any(isinstance(data.get(k), str) and data.get(k) for k in _KEY_FILE_KEYS)


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null"


def _caller_stacklevel() -> int:
    """The stacklevel that points a warning at the first frame outside this SDK."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and _is_sdk_module(str(frame.f_globals.get("__name__", ""))):
        frame = frame.f_back
        level += 1
    return level


def _is_sdk_module(name: str) -> bool:
    return any(
        name == pkg or name.startswith(pkg + ".") for pkg in ("codegen_async", "codegen_sync")
    )


# --- checking a value ------------------------------------------------------------------


def _is_header_safe(text: str, *, allow_space: bool) -> bool:
    low = " " if allow_space else "!"
    return all(low <= ch <= "~" for ch in text)


def _parse_api_key(value: object, source: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(
            f"api_key from {source} must be a string, not {type(value).__name__}"
        )
    if not value:
        raise ConfigurationError(f"api_key from {source} is empty")
    if not _is_header_safe(value, allow_space=False):
        raise ConfigurationError(
            f"api_key from {source} contains whitespace, a line break or a character not "
            "allowed in an HTTP header (the key is not shown)"
        )
    return value


def _is_text_argument(value: object, source: str) -> bool:
    """A string passed as an argument where a number is expected (text is for env and files)."""
    return isinstance(value, str) and source == _SOURCE_ARGUMENT


def _parse_digits(value: object) -> int | None:
    """An int from an int or a string of ASCII digits; None if it is neither (bool is neither)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            return int(text)
    return None


def _parse_org_id(value: object, source: str) -> int:
    number = _parse_digits(value)
    if number is None or number <= 0:
        raise ConfigurationError(
            f"org_id from {source} must be a positive integer, got {_show(value)}"
        )
    return number


def _parse_retries(value: object, source: str) -> int:
    number = None if _is_text_argument(value, source) else _parse_digits(value)
    if number is None or number < 0:
        raise ConfigurationError(
            f"max_retries from {source} must be a non-negative integer, got {_show(value)}"
        )
    return number


def _byte_count(name: str) -> Callable[[object, str], int]:
    """The parser of a size setting `name`: a positive integer (of bytes)."""

    def parse(value: object, source: str) -> int:
        number = None if _is_text_argument(value, source) else _parse_digits(value)
        if number is None or number <= 0:
            raise ConfigurationError(
                f"{name} from {source} must be a positive integer, got {_show(value)}"
            )
        return number

    return parse


def _check_request_cap(request_cap: int, response_cap: int, sources: Mapping[str, str]) -> int:
    """The request cap, below the response cap: a create's answer echoes its body, so a
    body the answer could not carry could never be confirmed. The default shrinks under a
    smaller response cap; a cap that was set there is refused."""
    if request_cap < response_cap:
        return request_cap
    if sources["max_request_bytes"] == _SOURCE_DEFAULT:
        return max(1, response_cap - 1)
    raise ConfigurationError(
        f"max_request_bytes from {sources['max_request_bytes']} ({request_cap}) must be "
        f"below max_response_bytes from {sources['max_response_bytes']} ({response_cap}): "
        "the API echoes a create's body in its answer"
    )


def _parse_timeout(value: object, source: str) -> httpx.Timeout:
    if isinstance(value, httpx.Timeout):
        return _check_httpx_timeout(value, source)
    httpx2 = sys.modules.get("httpx2")  # a Timeout of httpx2's means httpx2 is imported
    if httpx2 is not None and isinstance(value, httpx2.Timeout):  # kept as httpx's
        parts = {"connect": value.connect, "read": value.read, "write": value.write}
        return _check_httpx_timeout(httpx.Timeout(pool=value.pool, **parts), source)
    if isinstance(value, str) and not _is_text_argument(value, source):
        with contextlib.suppress(ValueError):
            value = float(value.strip())  # env and files hold text
    try:
        seconds = _validate.timeout("timeout", value)
    except (TypeError, ValueError):
        seconds = None
    if seconds is None:
        raise ConfigurationError(
            f"timeout from {source} must be a positive finite number of seconds "
            f"or an httpx.Timeout (or httpx2's), got {_show(value)}"
        )
    return httpx.Timeout(seconds)


def _check_httpx_timeout(value: httpx.Timeout, source: str) -> httpx.Timeout:
    """An httpx.Timeout whose every set part is finite and > 0, with at least one set: the
    call's deadline is its largest part, so a Timeout(None) would let a call hang forever."""
    parts = {
        "connect": value.connect,
        "read": value.read,
        "write": value.write,
        "pool": value.pool,
    }
    for name, seconds in parts.items():
        try:
            _validate.timeout(name, seconds)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"timeout from {source}: httpx.Timeout {name}={_show(seconds)} must be a "
                "positive finite number of seconds or None"
            ) from None
    if all(seconds is None for seconds in parts.values()):
        raise ConfigurationError(
            f"timeout from {source} is httpx.Timeout(None), which never ends a call; "
            "give a finite number of seconds"
        )
    return value


_SWITCH_WORDS: Final = {
    **dict.fromkeys(("1", "true", "yes", "on"), True),
    **dict.fromkeys(("0", "false", "no", "off"), False),
}


def _parse_switch(value: object, source: str) -> bool:
    """A bool argument, or (from the environment) 1/0, true/false, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and not _is_text_argument(value, source):
        word = value.strip().lower()
        found = _SWITCH_WORDS.get(word)
        if found is not None:
            return found
    raise ConfigurationError(
        f"tracing from {source} must be a bool (or 1/0, true/false, yes/no, on/off in the "
        f"environment), got {_show(value)}"
    )


def _parse_user_agent(value: object, source: str) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(
            f"user_agent from {source} must be a string, not {type(value).__name__}"
        )
    text = value.strip()
    if not text or not _is_header_safe(text, allow_space=True):
        raise ConfigurationError(
            f"user_agent from {source} must be non-empty printable ASCII, got {_show(value)}"
        )
    return text


def _parse_store(value: object, source: str) -> str:
    """A rate-limit store URL (`RateLimits.shared`), checked by the stores' own rule."""
    from ._stores import check_store_url  # lazily: the stores import redis and sqlite3

    return check_store_url(value, source)


def _parse_url(value: object, source: str) -> str:
    """Check a base URL and normalize it: no trailing slash, no trailing /v1."""
    if not isinstance(value, str):
        raise ConfigurationError(
            f"base_url from {source} must be a string, not {type(value).__name__}"
        )
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise ConfigurationError(
            f"base_url from {source} is not a valid URL: {_show(redact_url(value))}"
        ) from None
    shown = redact_url(value.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigurationError(f"base_url from {source} must use http or https, got {shown!r}")
    if not host:
        raise ConfigurationError(f"base_url from {source} has no host: {shown!r}")
    if parts.query or parts.fragment:
        raise ConfigurationError(f"base_url from {source} must not have a query or fragment")
    if scheme == "http" and not is_loopback_host(host):
        raise ConfigurationError(
            f"base_url from {source} is {shown!r}: refusing to send the API key over plain "
            "http to a host that is not loopback; use https"
        )
    url = _strip_version(parts, scheme)
    try:
        httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"base_url from {source} is not a valid URL ({exc})") from None
    return url


def _strip_version(parts: SplitResult, scheme: str) -> str:
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")].rstrip("/")
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def is_loopback_host(host: str) -> bool:
    """True for localhost, *.localhost, 127.0.0.0/8 and ::1 (brackets allowed)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
