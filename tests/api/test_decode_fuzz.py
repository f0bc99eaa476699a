"""Property tests: decoding any JSON gives the model or ResponseValidationError, nothing else.

Three sources of data: spec-shaped values generated from the schemas (must decode),
those values with one location replaced by arbitrary JSON (must decode or name that
location), and arbitrary JSON. Each check also asserts that the fast decoder and the
slow error locator agree on whether the data is readable.
"""

from __future__ import annotations

import copy
import functools
import typing
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codegen_async import models
from codegen_async._convert import _locate, structure
from codegen_async._errors import ResponseValidationError

from ..spec_tools import SCHEMAS, load_spec, resolve

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

ZONES = [
    None,
    timezone.utc,
    timezone(timedelta(hours=5, minutes=30)),
    timezone(-timedelta(hours=8)),
]


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """ISO 8601 texts in the forms servers send: offsets, Z, naive, various precisions."""
    moment = draw(st.datetimes(timezones=st.sampled_from(ZONES)))
    spec = draw(st.sampled_from(["auto", "seconds", "milliseconds", "microseconds"]))
    text = moment.isoformat(sep=draw(st.sampled_from(["T", " "])), timespec=spec)
    if text.endswith("+00:00") and draw(st.booleans()):
        text = text[:-6] + "Z"
    return text


def strategy(schema: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """Values that satisfy `schema` (plus unknown keys and unknown enum values)."""
    schema = resolve(schema)
    if "anyOf" in schema:
        return st.one_of([strategy(s, name) for s in schema["anyOf"]])
    if "enum" in schema:  # the SDK's enums are open: unknown values must decode too
        return st.sampled_from(schema["enum"]) | st.text(max_size=10)
    kind = schema.get("type", "object")
    if kind == "null":
        return st.none()
    if kind == "string" and name == "created_at":
        return timestamps()
    if kind == "integer" and name in ("id", "agent_run_id"):
        return st.integers(min_value=1)  # the SDK refuses an id <= 0 (tests/api/test_models.py)
    if kind == "string" and name == "status":
        return st.sampled_from([s.value for s in models.RunStatus]) | st.text(max_size=10)
    leaves: dict[str, st.SearchStrategy[Any]] = {
        "string": st.text(max_size=12),
        "integer": st.integers(),
        "boolean": st.booleans(),
    }
    if kind in leaves:
        return leaves[kind]
    if kind == "array":
        return st.lists(strategy(schema.get("items", {})), max_size=3)
    props = schema.get("properties")
    if props:
        required = set(schema.get("required", ()))
        known = st.fixed_dictionaries(
            {k: strategy(v, k) for k, v in props.items() if k in required},
            optional={k: strategy(v, k) for k, v in props.items() if k not in required},
        )
        unknown = st.dictionaries(st.text(max_size=6).map("x-{}".format), JSON, max_size=2)
        return st.builds(lambda a, b: {**b, **a}, known, unknown)
    extra = schema.get("additionalProperties", True)
    values = strategy(extra) if isinstance(extra, dict) else JSON
    return st.dictionaries(st.text(max_size=8), values, max_size=3)


def schema_of(name: str) -> dict[str, Any]:
    return dict(load_spec()["components"]["schemas"][name])


@functools.cache
def samples(name: str) -> st.SearchStrategy[Any]:
    return strategy(schema_of(name))


def locations(value: Any, schema: dict[str, Any], path: str = "") -> list[tuple[str, list[Any]]]:
    """Every (error path, access keys) inside `value` that the model reads."""
    schema = resolve(schema)
    if "anyOf" in schema:
        kinds: dict[type, str] = {dict: "object", list: "array"}
        fits = [
            s for s in schema["anyOf"] if resolve(s).get("type", "object") == kinds.get(type(value))
        ]
        return locations(value, fits[0], path) if fits else []
    found: list[tuple[str, list[Any]]] = []
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    if isinstance(value, dict) and props:
        for key, element in value.items():
            if key in props:
                where = f"{path}.{key}" if path else key
                found.append((where, [key]))
                found += [(p, [key, *ks]) for p, ks in locations(element, props[key], where)]
    elif isinstance(value, dict) and isinstance(extra, dict):
        for key, element in value.items():
            where = f"{path}[{key!r}]"
            found.append((where, [key]))
            found += [(p, [key, *ks]) for p, ks in locations(element, extra, where)]
    elif isinstance(value, list):
        for index, element in enumerate(value):
            where = f"{path}[{index}]"
            found.append((where, [index]))
            found += [(p, [index, *ks]) for p, ks in locations(element, schema["items"], where)]
    return found


def decode(data: object, cls: Any) -> ResponseValidationError | None:
    """Decode; check the outcome is the model or our error, and that both tiers agree."""
    result: object = None
    error: ResponseValidationError | None = None
    try:
        result = structure(data, cls)
    except ResponseValidationError as exc:
        error = exc
    if error is not None:
        assert _locate(data, cls, "") == (error.path, error.message.split(": ", 1)[1])
        return error
    assert isinstance(result, typing.get_origin(cls) or cls)
    assert _locate(data, cls, "") is None
    return None


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@FUZZ
@given(data=st.data())
def test_spec_shaped_data_decodes_and_one_bad_location_is_named(
    name: str, data: st.DataObject
) -> None:
    value = data.draw(samples(name))
    assert decode(value, SCHEMAS[name]) is None
    places = [("", []), *locations(value, schema_of(name))]
    path, keys = data.draw(st.sampled_from(places))
    bad = data.draw(JSON)
    if keys:
        value = copy.deepcopy(value)
        parent = value
        for key in keys[:-1]:
            parent = parent[key]
        parent[keys[-1]] = bad
    else:
        value = bad
    err = decode(value, SCHEMAS[name])
    if err is not None:
        assert err.path == path or err.path.startswith((f"{path}.", f"{path}[")) or not path, (
            err.path,
            path,
        )


@settings(FUZZ, max_examples=400)
@given(cls=st.sampled_from(sorted(SCHEMAS.values(), key=str)), value=JSON)
def test_arbitrary_json_never_escapes(cls: Any, value: object) -> None:
    decode(value, cls)


@settings(FUZZ, max_examples=200)
@given(value=JSON | st.datetimes().map(datetime.isoformat))
def test_timestamps_of_any_input(value: object) -> None:
    err = decode({"id": 1, "created_at": value}, models.GithubPullRequest)
    if err is None:
        parsed = structure({"id": 1, "created_at": value}, models.GithubPullRequest).created_at
        assert parsed.tzinfo is not None
    else:
        assert err.path == "created_at"
