"""Settings resolution: precedence, normalization, validation, secrecy of the key."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest

from codegen_async._constants import DEFAULT_BASE_URL
from codegen_async._errors import ConfigurationError
from codegen_async._settings import (
    InsecureConfigFileWarning,
    Settings,
    is_loopback_host,
    resolve_settings,
)

KEY = "sk-test-SECRET-0123456789"
OTHER_KEY = "sk-other-SECRET-9876543210"

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def write_config(path: Path, data: Any, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    path.chmod(mode)
    return path


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    """Two config paths that do not exist yet, in precedence order."""
    return tmp_path / "cfg" / "auth.json", tmp_path / "home" / "config.json"


def resolve(**kwargs: Any) -> Settings:
    """resolve_settings with an empty env and no config files unless given."""
    kwargs.setdefault("env", {})
    kwargs.setdefault("config_paths", [])
    return resolve_settings(**kwargs)


def config_error(**kwargs: Any) -> str:
    with pytest.raises(ConfigurationError) as info:
        resolve(**kwargs)
    assert isinstance(info.value, ValueError)
    return str(info.value)


# --- defaults and argument > env > file > default ---------------------------------------


def test_defaults() -> None:
    s = resolve(api_key=KEY)
    assert s.api_key == KEY
    assert s.org_id is None
    assert s.base_url == DEFAULT_BASE_URL == "https://api.codegen.com"
    assert s.timeout == httpx.Timeout(30.0)
    assert s.max_retries == 3
    assert s.user_agent is None
    assert s.tracing is True
    assert s.sources == {
        "api_key": "argument",
        "org_id": "default",
        "base_url": "default",
        "timeout": "default",
        "max_retries": "default",
        "user_agent": "default",
        "max_response_bytes": "default",
        "max_request_bytes": "default",
        "tracing": "default",
    }


def test_api_key_precedence(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, {"api_key": "from-file"})
    env = {"CODEGEN_API_KEY": "from-env"}
    assert resolve(api_key="from-arg", env=env, config_paths=[first]).api_key == "from-arg"
    s = resolve(env=env, config_paths=[first])
    assert (s.api_key, s.sources["api_key"]) == ("from-env", "env CODEGEN_API_KEY")
    s = resolve(config_paths=[first])
    assert (s.api_key, s.sources["api_key"]) == ("from-file", f"config file {first}")


def test_org_id_precedence(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, {"token": KEY, "org_id": 3})
    env = {"CODEGEN_ORG_ID": "2"}
    s = resolve(org_id=1, env=env, config_paths=[first])
    assert (s.org_id, s.sources["org_id"]) == (1, "argument")
    s = resolve(org_id="11", env=env, config_paths=[first])
    assert s.org_id == 11
    s = resolve(env=env, config_paths=[first])
    assert (s.org_id, s.sources["org_id"]) == (2, "env CODEGEN_ORG_ID")
    s = resolve(config_paths=[first])
    assert (s.org_id, s.sources["org_id"]) == (3, f"config file {first}")
    write_config(first, {"token": KEY, "org_id": "42"})
    assert resolve(config_paths=[first]).org_id == 42


def test_base_url_precedence(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, {"token": KEY, "base_url": "https://file.example"})
    env = {"CODEGEN_BASE_URL": "https://env.example"}
    s = resolve(base_url="https://arg.example", env=env, config_paths=[first])
    assert (s.base_url, s.sources["base_url"]) == ("https://arg.example", "argument")
    s = resolve(env=env, config_paths=[first])
    assert (s.base_url, s.sources["base_url"]) == ("https://env.example", "env CODEGEN_BASE_URL")
    s = resolve(config_paths=[first])
    assert (s.base_url, s.sources["base_url"]) == ("https://file.example", f"config file {first}")


def test_timeout_precedence() -> None:
    env = {"CODEGEN_TIMEOUT": "7.5"}
    s = resolve(api_key=KEY, timeout=2, env=env)
    assert (s.timeout, s.sources["timeout"]) == (httpx.Timeout(2.0), "argument")
    s = resolve(api_key=KEY, env=env)
    assert (s.timeout, s.sources["timeout"]) == (httpx.Timeout(7.5), "env CODEGEN_TIMEOUT")
    custom = httpx.Timeout(5.0, connect=1.0)
    assert resolve(api_key=KEY, timeout=custom, env=env).timeout is custom


def test_max_retries_precedence() -> None:
    env = {"CODEGEN_MAX_RETRIES": "5"}
    s = resolve(api_key=KEY, max_retries=0, env=env)
    assert (s.max_retries, s.sources["max_retries"]) == (0, "argument")
    s = resolve(api_key=KEY, env=env)
    assert (s.max_retries, s.sources["max_retries"]) == (5, "env CODEGEN_MAX_RETRIES")


def test_user_agent_precedence() -> None:
    env = {"CODEGEN_USER_AGENT": "env-app/2"}
    s = resolve(api_key=KEY, user_agent="my-app/1.0", env=env)
    assert (s.user_agent, s.sources["user_agent"]) == ("my-app/1.0", "argument")
    s = resolve(api_key=KEY, env=env)
    assert (s.user_agent, s.sources["user_agent"]) == ("env-app/2", "env CODEGEN_USER_AGENT")


def test_token_alias_and_api_key_wins() -> None:
    s = resolve(env={"CODEGEN_TOKEN": KEY})
    assert (s.api_key, s.sources["api_key"]) == (KEY, "env CODEGEN_TOKEN")
    s = resolve(env={"CODEGEN_TOKEN": OTHER_KEY, "CODEGEN_API_KEY": KEY})
    assert (s.api_key, s.sources["api_key"]) == (KEY, "env CODEGEN_API_KEY")


def test_file_api_key_beats_token_in_same_file(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, {"token": OTHER_KEY, "api_key": KEY})
    assert resolve(config_paths=[first]).api_key == KEY


def test_empty_env_counts_as_unset(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, {"api_key": KEY, "org_id": 9, "base_url": "https://file.example"})
    env = dict.fromkeys(
        [
            "CODEGEN_API_KEY",
            "CODEGEN_TOKEN",
            "CODEGEN_ORG_ID",
            "CODEGEN_BASE_URL",
            "CODEGEN_TIMEOUT",
            "CODEGEN_MAX_RETRIES",
            "CODEGEN_USER_AGENT",
        ],
        "",
    )
    s = resolve(env=env, config_paths=[first])
    assert (s.api_key, s.org_id, s.base_url) == (KEY, 9, "https://file.example")
    assert (s.timeout, s.max_retries, s.user_agent) == (httpx.Timeout(30.0), 3, None)
    # an empty CODEGEN_API_KEY falls through to CODEGEN_TOKEN
    assert resolve(env={"CODEGEN_API_KEY": "", "CODEGEN_TOKEN": OTHER_KEY}).api_key == OTHER_KEY


def test_default_env_is_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEGEN_API_KEY", KEY)
    monkeypatch.setenv("CODEGEN_ORG_ID", "77")
    s = resolve_settings(config_paths=[])
    assert (s.api_key, s.org_id) == (KEY, 77)


# --- two config files ------------------------------------------------------------------


def test_first_config_file_wins(paths: tuple[Path, Path]) -> None:
    first, second = paths
    write_config(first, {"api_key": KEY, "org_id": 1})
    write_config(second, {"api_key": OTHER_KEY, "org_id": 2})
    s = resolve(config_paths=[first, second])
    assert (s.api_key, s.org_id) == (KEY, 1)
    s = resolve(config_paths=[second, first])
    assert (s.api_key, s.org_id) == (OTHER_KEY, 2)


def test_each_setting_from_first_file_that_has_it(paths: tuple[Path, Path]) -> None:
    first, second = paths
    write_config(first, {"org_id": 5, "base_url": None, "token": ""})
    write_config(second, {"token": KEY, "org_id": 6, "base_url": "https://second.example/v1"})
    s = resolve(config_paths=[first, second])
    assert (s.api_key, s.org_id, s.base_url) == (KEY, 5, "https://second.example")
    assert s.sources["api_key"] == f"config file {second}"
    assert s.sources["org_id"] == f"config file {first}"
    assert s.sources["base_url"] == f"config file {second}"


def test_missing_first_file_is_skipped(paths: tuple[Path, Path]) -> None:
    first, second = paths
    write_config(second, {"api_key": KEY})
    assert resolve(config_paths=[first, second]).api_key == KEY


def test_unknown_config_keys_are_ignored(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, {"token": KEY, "user": {"email": "a@b.c"}, "timeout": "bad"})
    assert resolve(config_paths=[first]).timeout == httpx.Timeout(30.0)


def test_config_files_not_read_when_not_needed(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, "{not json")
    env = {"CODEGEN_ORG_ID": "1", "CODEGEN_BASE_URL": "https://x.example"}
    assert resolve(api_key=KEY, env=env, config_paths=[first]).org_id == 1


def test_default_config_paths_used_when_none_given(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_config(home / ".codegen" / "config.json", {"token": KEY, "org_id": 8})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setattr(Path, "home", classmethod(lambda cls: home))
        s = resolve_settings(env={})
    assert (s.api_key, s.org_id) == (KEY, 8)
    assert s.sources["api_key"] == f"config file {home / '.codegen' / 'config.json'}"


# --- base_url normalization ------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://api.codegen.com", "https://api.codegen.com"),
        ("https://api.codegen.com/", "https://api.codegen.com"),
        ("https://api.codegen.com/v1", "https://api.codegen.com"),
        ("https://api.codegen.com/v1/", "https://api.codegen.com"),
        ("https://proxy.example/codegen/v1/", "https://proxy.example/codegen"),
        ("https://proxy.example/codegen/", "https://proxy.example/codegen"),
        ("https://v1", "https://v1"),
        ("https://api.example:8443/v1", "https://api.example:8443"),
        ("  https://api.codegen.com/v1  ", "https://api.codegen.com"),
        ("HTTPS://api.codegen.com", "https://api.codegen.com"),
    ],
)
def test_base_url_normalized(given: str, expected: str) -> None:
    assert resolve(api_key=KEY, base_url=given).base_url == expected


# --- errors: setting and source named ---------------------------------------------------


def test_missing_key_lists_every_place(paths: tuple[Path, Path]) -> None:
    first, second = paths
    write_config(second, {"org_id": 1})
    message = config_error(config_paths=[first, second])
    assert "api_key" in message
    for place in ("argument", "CODEGEN_API_KEY", "CODEGEN_TOKEN", str(first), str(second)):
        assert place in message


@pytest.mark.parametrize("bad", [0, -1, True, False, 1.5, "abc", "-3", "0", "1_000", "", " "])
def test_bad_org_id_argument(bad: object) -> None:
    message = config_error(api_key=KEY, org_id=bad)
    assert "org_id" in message
    assert "argument" in message


def test_bad_org_id_env_and_file(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    message = config_error(api_key=KEY, env={"CODEGEN_ORG_ID": "12a"})
    assert "org_id" in message
    assert "env CODEGEN_ORG_ID" in message
    assert "12a" in message
    for bad in (True, 0, -4, 2.0, [1], "x"):
        write_config(first, {"token": KEY, "org_id": bad})
        message = config_error(config_paths=[first])
        assert "org_id" in message
        assert f"config file {first}" in message


@pytest.mark.parametrize("bad", [0, -1, 0.0, -0.5, math.nan, math.inf, True, "5", [1]])
def test_bad_timeout_argument(bad: object) -> None:
    message = config_error(api_key=KEY, timeout=bad)
    assert "timeout" in message
    assert "argument" in message


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "NaN", "inf", "abc", "1s"])
def test_bad_timeout_env(bad: str) -> None:
    message = config_error(api_key=KEY, env={"CODEGEN_TIMEOUT": bad})
    assert "timeout" in message
    assert "env CODEGEN_TIMEOUT" in message


@pytest.mark.parametrize("bad", [-1, 1.0, True, "3", None])
def test_bad_max_retries_argument(bad: object) -> None:
    if bad is None:  # None means "not given", not an error
        assert resolve(api_key=KEY, max_retries=bad).max_retries == 3
        return
    message = config_error(api_key=KEY, max_retries=bad)
    assert "max_retries" in message
    assert "argument" in message


@pytest.mark.parametrize("bad", ["-1", "1.5", "two", "0x3"])
def test_bad_max_retries_env(bad: str) -> None:
    message = config_error(api_key=KEY, env={"CODEGEN_MAX_RETRIES": bad})
    assert "max_retries" in message
    assert "env CODEGEN_MAX_RETRIES" in message


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://api.codegen.com",
        "api.codegen.com",
        "https://",
        "https:///v1",
        "http://:8000",
        "https://api.codegen.com:notaport",
        "https://api.codegen.com/?x=1",
        "https://api.codegen.com/#frag",
        "",
    ],
)
def test_bad_base_url(bad: str) -> None:
    message = config_error(api_key=KEY, base_url=bad)
    assert "base_url" in message
    assert "argument" in message


def test_bad_base_url_env_and_file(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    message = config_error(api_key=KEY, env={"CODEGEN_BASE_URL": "ftp://x"})
    assert "base_url" in message
    assert "env CODEGEN_BASE_URL" in message
    write_config(first, {"token": KEY, "base_url": 5})
    message = config_error(config_paths=[first])
    assert "base_url" in message
    assert f"config file {first}" in message


@pytest.mark.parametrize(
    "bad", ["", "sk-with space", "sk-newline\n", "\tsk-tab", "sk-\r\nInjected: 1", "sk-é"]
)
def test_bad_api_key_argument(bad: str) -> None:
    message = config_error(api_key=bad)
    assert "api_key" in message
    assert "argument" in message
    if bad:
        assert bad not in message
        assert bad.strip() not in message


def test_bad_api_key_env_and_file(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    bad = KEY + "\n"
    message = config_error(env={"CODEGEN_TOKEN": bad})
    assert "api_key" in message
    assert "env CODEGEN_TOKEN" in message
    assert KEY not in message
    write_config(first, {"api_key": bad})
    message = config_error(config_paths=[first])
    assert f"config file {first}" in message
    assert KEY not in message
    write_config(first, {"api_key": 12345})
    message = config_error(config_paths=[first])
    assert "api_key" in message
    assert "12345" not in message


def test_bad_user_agent() -> None:
    for bad in ("", "   ", "app\r\nX-Evil: 1", "app/é"):
        message = config_error(api_key=KEY, user_agent=bad)
        assert "user_agent" in message
        assert "argument" in message
    message = config_error(api_key=KEY, env={"CODEGEN_USER_AGENT": "a\nb"})
    assert "env CODEGEN_USER_AGENT" in message


def test_invalid_json_config_names_the_file(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, '{"api_key": "' + KEY + '",')
    message = config_error(config_paths=[first])
    assert str(first) in message
    assert "JSON" in message
    assert KEY not in message


def test_undecodable_config_names_the_file(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    first.parent.mkdir(parents=True)
    first.write_bytes(b"\xff\xfe\xfa not text")
    first.chmod(0o600)
    assert str(first) in config_error(config_paths=[first])


@pytest.mark.parametrize("data", [[], "a string", 3, None, True])
def test_non_object_config_names_the_file(paths: tuple[Path, Path], data: object) -> None:
    first, _ = paths
    write_config(first, json.dumps(data))
    message = config_error(config_paths=[first])
    assert str(first) in message
    assert "object" in message


def test_directory_config_names_the_file(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    first.mkdir(parents=True)
    assert str(first) in config_error(config_paths=[first])


def test_broken_second_file_is_an_error_when_consulted(paths: tuple[Path, Path]) -> None:
    first, second = paths
    write_config(first, {"token": KEY})
    write_config(second, "[1, 2")
    # org_id is not in the first file, so the second is read, and it is broken
    assert str(second) in config_error(config_paths=[first, second])


# --- the key stays secret ----------------------------------------------------------------


def test_key_not_in_repr_or_str(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, {"api_key": KEY})
    s = resolve(config_paths=[first], org_id=4, user_agent="x/1")
    for text in (repr(s), str(s), repr(s.sources), str(s.sources)):
        assert KEY not in text
    assert "org_id=4" in repr(s)


def test_key_not_in_any_error(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, {"api_key": KEY})
    cases: list[dict[str, Any]] = [
        {"org_id": "nope"},
        {"base_url": "http://example.com"},
        {"base_url": f"https://{KEY}:{KEY}@"},
        {"base_url": f"http://user:{KEY}@example.com"},
        {"timeout": -1},
        {"max_retries": -1},
        {"user_agent": "a\nb"},
        {"env": {"CODEGEN_API_KEY": KEY + " "}},
        {"env": {"CODEGEN_TIMEOUT": "x"}},
    ]
    for extra in cases:
        kwargs: dict[str, Any] = {"config_paths": [first], **extra}
        with pytest.raises(ConfigurationError) as info:
            resolve(**kwargs)
        assert KEY not in str(info.value)
        assert KEY not in repr(info.value)
        assert info.value.__cause__ is None


# --- plain http only to loopback ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://LOCALHOST/", "http://LOCALHOST"),
        ("http://127.0.0.1:9", "http://127.0.0.1:9"),
        ("http://127.0.0.5", "http://127.0.0.5"),
        ("http://[::1]:1", "http://[::1]:1"),
        ("http://emulator.localhost", "http://emulator.localhost"),
        ("http://a.b.localhost:8080/v1", "http://a.b.localhost:8080"),
        ("https://example.com", "https://example.com"),
    ],
)
def test_allowed_base_urls(url: str, expected: str) -> None:
    assert resolve(api_key=KEY, base_url=url).base_url == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com",
        "http://api.codegen.com/v1",
        "http://10.0.0.1",
        "http://[::2]",
        "http://localhost.example.com",
        "http://notlocalhost",
        "http://128.0.0.1",
    ],
)
def test_plain_http_to_remote_host_refused(url: str) -> None:
    message = config_error(api_key=KEY, base_url=url)
    assert "base_url" in message
    assert url in message
    assert "https" in message


def test_plain_http_refused_from_env_names_source() -> None:
    env = {"CODEGEN_BASE_URL": "http://example.com"}
    message = config_error(api_key=KEY, env=env)
    assert "env CODEGEN_BASE_URL" in message
    assert "http://example.com" in message


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("x.localhost", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost.", True),
        ("example.com", False),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
    ],
)
def test_is_loopback_host(host: str, expected: bool) -> None:
    assert is_loopback_host(host) is expected


# --- permissive config files ------------------------------------------------------------


@posix_only
def test_permissive_file_with_key_warns(paths: tuple[Path, Path]) -> None:
    first, _ = paths
    write_config(first, {"api_key": KEY}, mode=0o644)
    with pytest.warns(InsecureConfigFileWarning) as record:
        s = resolve(config_paths=[first])
    assert s.api_key == KEY
    assert len(record) == 1
    message = str(record[0].message)
    assert str(first) in message
    assert "chmod 600" in message
    assert KEY not in message
    assert record[0].filename == __file__  # points at the caller, not the SDK
    assert issubclass(InsecureConfigFileWarning, UserWarning)


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o610])
def test_any_group_or_other_bit_warns(paths: tuple[Path, Path], mode: int) -> None:
    first, _ = paths
    write_config(first, {"token": KEY}, mode=mode)
    with pytest.warns(InsecureConfigFileWarning):
        resolve(config_paths=[first])


@posix_only
def test_private_or_keyless_file_does_not_warn(paths: tuple[Path, Path]) -> None:
    first, second = paths
    write_config(first, {"org_id": 3}, mode=0o644)
    write_config(second, {"token": KEY}, mode=0o600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = resolve(config_paths=[first, second])
    assert (s.api_key, s.org_id) == (KEY, 3)
