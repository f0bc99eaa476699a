"""Decoding the spec's response shapes into the models, and the errors for bad data.

Samples are built from the spec's schemas (tests/spec_tools.py), so every field of every
schema is exercised; a few hand-written cases pin the behaviours the SDK relies on.
"""

from __future__ import annotations

import inspect
import json
import pickle
import typing
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import codegen_async
from codegen_async import _convert, models
from codegen_async._convert import _parse_iso_slow, parse_timestamp, structure, unstructure
from codegen_async._errors import ResponseValidationError
from codegen_async.models import TERMINAL_STATUSES, AgentRun, Page, RunStatus, SourceType

from ..spec_tools import SCHEMAS, load_spec, resolve, sample, sample_field

RUN = {
    "id": 11,
    "organization_id": 7,
    "status": "RUNNING",
    "created_at": "2026-01-02T03:04:05.678901+00:00",
    "web_url": "https://codegen.com/agent/trace/11",
    "result": None,
    "summary": None,
    "source_type": "API",
    "github_pull_requests": [
        {
            "id": 5,
            "title": "Fix",
            "url": "https://github.com/o/r/pull/5",
            "created_at": "2026-01-02T04:00:00Z",
            "head_branch_name": "codegen/fix",
        }
    ],
    "metadata": {"team": "a", "nested": [1, {"x": None}]},
}


def schema(name: str) -> dict[str, Any]:
    return dict(load_spec()["components"]["schemas"][name])


def expect_error(data: object, cls: Any) -> ResponseValidationError:
    with pytest.raises(ResponseValidationError) as info:
        structure(data, cls)
    return info.value


def nullable(prop: dict[str, Any]) -> bool:
    return any(s.get("type") == "null" for s in prop.get("anyOf", ()))


def minimal(name: str) -> dict[str, Any]:
    """A sample of schema `name` with only its required properties."""
    sch = schema(name)
    full = sample(sch)
    return {key: full[key] for key in sch.get("required", ())}


def matches(decoded: Any, raw: Any) -> bool:
    """Whether a decoded value carries exactly the raw JSON value."""
    if attrs.has(type(decoded)):
        return isinstance(raw, dict) and all(
            matches(getattr(decoded, key), value) for key, value in raw.items()
        )
    if isinstance(decoded, datetime):
        return decoded == datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if isinstance(decoded, list):
        return len(decoded) == len(raw) and all(map(matches, decoded, raw))
    if isinstance(decoded, models.RunStatus | models.SourceType):
        return bool(decoded.value == raw)
    return type(decoded) is type(raw) and bool(decoded == raw)


# ------------------------------------------------------------------- spec coverage


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_model_fields_are_the_schema_properties(name: str) -> None:
    cls = typing.get_origin(SCHEMAS[name]) or SCHEMAS[name]
    assert {f.name for f in attrs.fields(cls)} == set(schema(name)["properties"])


def test_every_response_schema_has_a_model() -> None:
    spec = load_spec()
    used: set[str] = set()
    for ops in spec["paths"].values():
        for op in ops.values():
            ref = json.dumps(op["responses"].get("200", {}))
            used.update(n for n in spec["components"]["schemas"] if f'/{n}"' in ref)
    returned = {n for n in used if n not in ("HTTPValidationError", "ValidationError")}
    assert returned <= set(SCHEMAS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_full_sample_decodes_every_field(name: str) -> None:
    raw = sample(schema(name))
    decoded = structure(raw, SCHEMAS[name])
    assert matches(decoded, raw)
    assert structure(unstructure(decoded), SCHEMAS[name]) == decoded
    json.dumps(unstructure(decoded))  # JSON-able


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_minimal_sample_decodes_with_defaults(name: str) -> None:
    sch = schema(name)
    decoded = structure(minimal(name), SCHEMAS[name])
    for key, prop in sch["properties"].items():
        if key not in sch.get("required", ()):
            assert getattr(decoded, key) == prop.get("default"), key


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_null_accepted_exactly_where_the_spec_allows_it(name: str) -> None:
    sch = schema(name)
    for key, prop in sch["properties"].items():
        data = {**sample(sch), key: None}
        if nullable(prop):
            assert getattr(structure(data, SCHEMAS[name]), key) is None
        else:
            err = expect_error(data, SCHEMAS[name])
            assert err.path == key
            assert "null" in err.message


def wrong_kind(prop: dict[str, Any]) -> object:
    """A JSON value whose kind the property's schema does not allow."""
    prop = resolve(prop)
    kinds = {resolve(s).get("type", "object") for s in prop.get("anyOf", [prop])}
    if "$ref" in str(prop.get("anyOf", "")):
        kinds.add("object")
    candidates = [({"x": 1}, "object"), ([1], "array"), ("s", "string"), (True, "boolean")]
    candidates += [(5, "integer"), (1.5, "number")]
    return next(value for value, kind in candidates if kind not in kinds)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_wrong_kind_is_named_by_path(name: str) -> None:
    sch = schema(name)
    for key, prop in sch["properties"].items():
        bad = wrong_kind(prop)
        err = expect_error({**sample(sch), key: bad}, SCHEMAS[name])
        assert err.path == key, (key, bad)
        assert "expected" in err.message


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_missing_required_is_named_by_path(name: str) -> None:
    sch = schema(name)
    for key in sch.get("required", ()):
        data = sample(sch)
        del data[key]
        if nullable(sch["properties"][key]):  # required but nullable: read as None
            assert getattr(structure(data, SCHEMAS[name]), key) is None
            continue
        err = expect_error(data, SCHEMAS[name])
        assert (err.path, err.message) == (
            key,
            f"cannot read {name_of(SCHEMAS[name])}: missing required field",
        )


def name_of(cls: Any) -> str:
    origin = typing.get_origin(cls)
    if origin is None:
        return str(cls.__name__)
    return f"{origin.__name__}[{typing.get_args(cls)[0].__name__}]"


def test_source_type_is_the_spec_enum() -> None:
    assert [m.value for m in SourceType] == schema("ApiAgentRunSourceType")["enum"]


def test_literal_aliases_are_the_spec_enums() -> None:
    agent_type = schema("CreateAgentRunInput")["properties"]["agent_type"]["anyOf"][0]
    assert list(typing.get_args(models.AgentType)) == agent_type["enum"]
    assert (
        list(typing.get_args(models.PRState))
        == schema("EditPRInput")["properties"]["state"]["enum"]
    )


def test_field_sample_helper_gives_timestamps() -> None:
    assert sample_field("created_at", {"type": "string"}, 1).endswith("Z")


# ------------------------------------------------------------------------ behaviour


def test_agent_run_decodes() -> None:
    run = structure(RUN, AgentRun)
    assert run.id == 11
    assert run.organization_id == 7
    assert run.status is RunStatus.RUNNING
    assert run.source_type is SourceType.API
    assert run.created_at == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    assert run.github_pull_requests is not None
    pr = run.github_pull_requests[0]
    assert (pr.id, pr.title, pr.head_branch_name) == (5, "Fix", "codegen/fix")
    assert pr.created_at == datetime(2026, 1, 2, 4, tzinfo=timezone.utc)
    assert run.metadata == {"team": "a", "nested": [1, {"x": None}]}
    assert not run.is_terminal
    assert not run.succeeded


def test_models_are_frozen_and_slotted() -> None:
    run = structure(RUN, AgentRun)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        run.status = RunStatus.COMPLETE  # type: ignore[misc]
    assert not hasattr(run, "__dict__")
    assert attrs.evolve(run, status=RunStatus.COMPLETE).succeeded


def test_unknown_fields_are_ignored() -> None:
    data = {**RUN, "brand_new_field": {"a": 1}, "another": [1, 2]}
    assert structure(data, AgentRun) == structure(RUN, AgentRun)


def test_unknown_status_is_kept_and_not_terminal() -> None:
    run = structure({**RUN, "status": "HIBERNATING", "source_type": "CARRIER_PIGEON"}, AgentRun)
    assert isinstance(run.status, RunStatus)
    assert run.status == "HIBERNATING"
    assert run.status.value == "HIBERNATING"
    assert str(run.status) == "HIBERNATING"
    assert f"{run.status}" == "HIBERNATING"
    assert not run.status.is_known
    assert not run.is_terminal
    assert not run.succeeded
    assert run.source_type == "CARRIER_PIGEON"
    assert unstructure(run)["status"] == "HIBERNATING"


@pytest.mark.parametrize("status", list(RunStatus))
def test_terminal_and_succeeded_follow_the_status(status: RunStatus) -> None:
    run = structure({**RUN, "status": status.value}, AgentRun)
    assert run.status is status
    assert str(status) == status.value
    assert run.is_terminal is (status.value in TERMINAL_STATUSES)
    assert run.succeeded is (status is RunStatus.COMPLETE)
    logs = structure(
        {"id": 1, "organization_id": 2, "logs": [], "status": status.value}, models.AgentRunWithLogs
    )
    assert (logs.is_terminal, logs.succeeded) == (run.is_terminal, run.succeeded)


def test_missing_status_is_neither_terminal_nor_succeeded() -> None:
    run = structure({"id": 1, "organization_id": 2}, AgentRun)
    assert run.status is None
    assert not run.is_terminal
    assert not run.succeeded


def test_terminal_statuses_are_run_statuses() -> None:
    assert {RunStatus(s) for s in TERMINAL_STATUSES} <= set(RunStatus)


UTC = timezone.utc
TIMESTAMPS = {
    "2026-01-02T03:04:05Z": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    "2026-01-02T03:04:05z": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    "2026-01-02T03:04:05+00:00": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    "2026-01-02T03:04:05": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    "2026-01-02 03:04:05.5": datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=UTC),
    "2026-01-02T03:04:05.1234567Z": datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    "2026-01-02T03:04:05.123+05:30": datetime(
        2026, 1, 2, 3, 4, 5, 123000, tzinfo=timezone(timedelta(hours=5, minutes=30))
    ),
    "2026-01-02T03:04:05-0800": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=8))),
    "2026-01-02T03:04": datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    "2026-01-02": datetime(2026, 1, 2, tzinfo=UTC),
    "20260102T030405Z": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
}


@pytest.mark.parametrize(("text", "expected"), TIMESTAMPS.items())
def test_timestamps_are_aware(text: str, expected: datetime) -> None:
    for parsed in (parse_timestamp(text), structure(text, datetime)):
        assert parsed.tzinfo is not None
        assert parsed == expected
        assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(("text", "expected"), TIMESTAMPS.items())
def test_old_python_fallback_parser_agrees(text: str, expected: datetime) -> None:
    # The path taken where datetime.fromisoformat is narrower (Python 3.10).
    parsed = _parse_iso_slow(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "yesterday",
        "2026-13-01T00:00:00",
        "2026-01-02T25:00:00",
        "2026-01-02T03:04:05+24:00",
        "\uff12\uff10\uff12\uff16-01-02",
    ],
)
def test_bad_timestamps_are_named(bad: str) -> None:
    err = expect_error({**RUN, "github_pull_requests": [{"id": 1, "created_at": bad}]}, AgentRun)
    assert err.path == "github_pull_requests[0].created_at"
    assert "timestamp" in err.message


@pytest.mark.parametrize(
    ("data", "cls", "path", "fragment"),
    [
        ([RUN], AgentRun, "", "expected object, got array"),
        (None, AgentRun, "", "expected object, got null"),
        ("text", AgentRun, "", "expected object, got string"),
        ({**RUN, "id": True}, AgentRun, "id", "expected integer, got boolean true"),
        ({**RUN, "id": "11"}, AgentRun, "id", "expected integer, got string '11'"),
        ({**RUN, "id": 11.0}, AgentRun, "id", "expected integer, got number 11.0"),
        ({**RUN, "web_url": 5}, AgentRun, "web_url", "expected string or null, got integer 5"),
        ({**RUN, "status": ["RUNNING"]}, AgentRun, "status", "RunStatus"),
        ({**RUN, "metadata": []}, AgentRun, "metadata", "expected object or null, got array"),
        (
            {**RUN, "github_pull_requests": [{"id": 1, "created_at": 3}]},
            AgentRun,
            "github_pull_requests[0].created_at",
            "expected an ISO 8601 timestamp string, got integer 3",
        ),
        (
            {**RUN, "github_pull_requests": [RUN["github_pull_requests"][0], {"id": 2}]},  # type: ignore[index]
            AgentRun,
            "github_pull_requests[1].created_at",
            "missing required field",
        ),
        (
            {
                "items": [RUN, RUN, RUN, {**RUN, "status": 3}],
                "total": 4,
                "page": 1,
                "size": 4,
                "pages": 1,
            },
            Page[AgentRun],
            "items[3].status",
            "cannot read Page[AgentRun]: expected string (RunStatus) or null, got integer 3",
        ),
        (
            {"items": [], "total": None, "page": 1, "size": 4, "pages": 1},
            Page[AgentRun],
            "total",
            "expected integer, got null",
        ),
        (
            {"id": 1, "organization_id": 2, "logs": [{"agent_run_id": 1}, {"agent_run_id": False}]},
            models.AgentRunWithLogs,
            "logs[1].agent_run_id",
            "expected integer, got boolean false",
        ),
        (
            {"agent_run_id": 1, "observation": 5},
            models.AgentRunLog,
            "observation",
            "expected object or string or null, got integer 5",
        ),
        (
            {"id": 1, "name": "n", "settings": {"enable_pr_creation": "yes"}},
            models.Organization,
            "settings.enable_pr_creation",
            "expected boolean, got string 'yes'",
        ),
        (
            {
                **sample(resolve({"$ref": "#/components/schemas/CheckSuiteSettingsResponse"})),
                "check_retry_counts": {"lint": 1, "test": "2"},
            },
            models.CheckSuiteSettings,
            "check_retry_counts['test']",
            "expected integer, got string '2'",
        ),
        (
            {
                **sample(resolve({"$ref": "#/components/schemas/CheckSuiteSettingsResponse"})),
                "ignored_checks": ["a", None],
            },
            models.CheckSuiteSettings,
            "ignored_checks[1]",
            "expected string, got null",
        ),
        (
            [{"id": 1}],
            list[models.OAuthProvider],
            "[0].name",
            "cannot read list[OAuthProvider]: missing required field",
        ),
        ({"success": 1}, models.FunctionResult, "success", "expected boolean, got integer 1"),
    ],
)
def test_errors_name_the_field(data: object, cls: Any, path: str, fragment: str) -> None:
    err = expect_error(data, cls)
    assert err.path == path
    assert fragment in err.message
    assert err.body is data
    assert str(err).endswith(f" at {path or '<root>'}")


def test_page_is_generic() -> None:
    page = structure(
        {"items": [RUN, RUN], "total": 2, "page": 1, "size": 50, "pages": 1}, Page[AgentRun]
    )
    assert [type(r) for r in page.items] == [AgentRun, AgentRun]
    assert (page.total, page.page, page.size, page.pages) == (2, 1, 50, 1)
    users = structure(
        {
            "items": [{"id": 1, "github_user_id": "9", "github_username": "u"}],
            "total": 1,
            "page": 1,
            "size": 1,
            "pages": 1,
        },
        Page[models.User],
    )
    assert users.items[0] == models.User(id=1, github_user_id="9", github_username="u")
    # An unparameterized Page keeps its items as given.
    assert structure(
        {"items": [{"a": 1}], "total": 1, "page": 1, "size": 1, "pages": 1}, Page
    ).items == [{"a": 1}]


def test_function_result_accepts_any_logs() -> None:
    for logs in (None, "text", ["a", 1], {"k": [None]}):
        result = structure(
            {"success": True, "web_link": "https://x", "logs": logs}, models.FunctionResult
        )
        assert result.logs == logs
        assert (result.success, result.web_link, result.error) == (True, "https://x", None)


def test_log_observation_is_object_or_text() -> None:
    for obs in ({"out": 1}, "plain", None):
        log = structure(
            {"agent_run_id": 1, "observation": obs, "created_at": None}, models.AgentRunLog
        )
        assert log.observation == obs
        assert log.created_at is None


def test_values_are_not_coerced() -> None:
    assert expect_error({**RUN, "result": 5}, AgentRun).path == "result"
    assert expect_error({**RUN, "organization_id": "7"}, AgentRun).path == "organization_id"
    assert expect_error({"success": "true"}, models.EditPRResult).path == "success"


def test_organization_settings_default_as_the_spec_says() -> None:
    org = structure({"id": 1, "name": "n", "settings": {}}, models.Organization)
    assert org.settings == models.OrganizationSettings(True, True)


def test_top_level_leaf_types() -> None:
    assert structure("RUNNING", RunStatus) is RunStatus.RUNNING
    assert structure("NEW", RunStatus) == "NEW"
    assert structure({"a": [1]}, dict[str, Any]) == {"a": [1]}
    assert expect_error(True, int).path == ""
    assert expect_error(5, str).message == "cannot read str: expected string, got integer 5"


def test_unstructure_is_json() -> None:
    data = unstructure(structure(RUN, AgentRun))
    assert data["status"] == "RUNNING"
    assert type(data["status"]) is str
    assert data["created_at"] == "2026-01-02T03:04:05.678901+00:00"
    assert data["github_pull_requests"][0]["created_at"] == "2026-01-02T04:00:00+00:00"
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize("bad_id", [0, -5])
@pytest.mark.parametrize(
    ("cls", "data", "path"),
    [
        (AgentRun, {"organization_id": 1}, "id"),
        (models.AgentRunWithLogs, {"organization_id": 1, "logs": []}, "id"),
        (models.AgentRunLog, {}, "agent_run_id"),
        (models.SetupCommandsResult, {"status": "queued", "url": "u"}, "agent_run_id"),
        (models.LogAnalysis, {"status": "queued", "message": "m"}, "agent_run_id"),
    ],
)
def test_a_run_id_below_one_is_a_response_validation_error(
    bad_id: int, cls: Any, data: dict[str, Any], path: str
) -> None:
    # Before: decoded, then `get(run.id)` raised a bare ValueError from argument checks.
    error = expect_error({**data, path: bad_id}, cls)
    assert error.path == path
    assert "id > 0" in str(error)
    assert structure({**data, path: 7}, cls) is not None


def test_a_bad_run_id_inside_a_page_is_named_by_its_place() -> None:
    runs = [{"id": 3, "organization_id": 1}, {"id": -5, "organization_id": 1}]
    page = {"items": runs, "total": 2, "page": 1, "size": 2, "pages": 1}
    error = expect_error(page, Page[AgentRun])
    assert error.path == "items[1].id"


# -- the converter's one dispatcher and its generated source ------------------------------


def test_both_tiers_follow_one_dispatcher() -> None:
    from codegen_async import _convert

    assert set(_convert._EMITTERS) == set(_convert._LOCATORS)
    shapes = {
        _convert._shape(tp)
        for tp in (Any, int, str | None, RunStatus, datetime, Literal["a"], list[int],
                   dict[str, int], AgentRun, complex)
    }  # fmt: skip
    assert shapes == set(_convert._EMITTERS)


def test_generated_hooks_show_their_source_in_tracebacks() -> None:
    import traceback

    from codegen_async import _convert

    hook = _convert.get_converter().get_structure_hook(Page[AgentRun])
    with pytest.raises(_convert._Invalid) as caught:
        hook({"items": [{"id": "seven", "organization_id": 1}], "total": 1}, Page[AgentRun])
    generated = [
        frame
        for frame in traceback.extract_tb(caught.value.__traceback__)
        if frame.filename.startswith("<codegen_async structure")
    ]
    assert generated, "no frame of generated code in the traceback"
    assert all(frame.line for frame in generated)  # linecache holds the source
    assert any("AgentRun" in frame.filename for frame in generated)


# ------------------------------------------------------------------ values that travel


def model_classes() -> list[type[Any]]:
    """Every model class of `codegen_async.models` (its `__all__`), Page included."""
    found = [getattr(models, name) for name in models.__all__]
    return [cls for cls in found if isinstance(cls, type) and attrs.has(cls)]


JSON_LEAF = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)
JSON_LEAF |= st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
AWARE = st.datetimes(
    timezones=st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
)


def values(tp: Any, positive: bool = False) -> st.SearchStrategy[Any]:
    """Any value of the type `tp` a model field can hold (JSON-safe where it is Any)."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return JSON
    if tp is int:
        return st.integers(1 if positive else -(2**53), 2**53)
    simple = {str: st.text(max_size=12), bool: st.booleans(), datetime: AWARE}
    simple[float] = st.floats(allow_nan=False, allow_infinity=False)
    if tp in simple:
        return simple[tp]
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        return st.one_of([values(a) for a in args])
    if tp is type(None):
        return st.none()
    if origin is Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(values(args[0]), max_size=3)
    if origin is dict:
        if args[1] is Any:
            return st.dictionaries(st.text(max_size=5), JSON, max_size=3)
        return st.dictionaries(values(args[0]), values(args[1]), max_size=3)
    if isinstance(tp, type) and issubclass(tp, models._OpenStrEnum):
        return st.sampled_from(list(tp)) | st.from_regex(r"[A-Z]{1,8}_X", fullmatch=True).map(tp)
    if attrs.has(origin or tp):
        return instances(tp)
    raise AssertionError(f"no strategy for {tp!r}")


def instances(tp: Any) -> st.SearchStrategy[Any]:
    """Instances of the model `tp` (a class, or `Page[Item]`) with every field drawn."""
    cls = typing.get_origin(tp) or tp
    fields = _convert._fields(tp)
    drawn = {
        f.name: values(
            typing.get_args(tp)[0] if f.name == "items" and cls is Page else f.type, f.positive
        )
        for f in fields
    }
    if cls is Page:
        drawn["items"] = st.lists(values(typing.get_args(tp)[0]), max_size=3)
    return st.fixed_dictionaries(drawn).map(lambda kw: cls(**kw))


def only_json(value: object, path: str = "") -> None:
    """Fail unless `value` is made only of dict (str keys), list, str, int, float, bool, None."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, f"{path}: key {key!r}"
            only_json(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            only_json(item, f"{path}[{index}]")
    else:
        assert type(value) in (str, int, float, bool, type(None)), f"{path}: {type(value)}"


MODEL_TYPES = [Page[AgentRun] if cls is Page else cls for cls in model_classes()]


@pytest.mark.parametrize("tp", MODEL_TYPES, ids=lambda tp: _convert._type_name(tp))
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_model_travels_as_json_and_by_pickle(tp: Any, data: st.DataObject) -> None:
    model = data.draw(instances(tp))
    as_dict = model.to_dict()
    only_json(as_dict)
    assert json.loads(json.dumps(as_dict)) == as_dict
    if typing.get_origin(tp) is Page:
        back = Page.from_dict(as_dict, typing.get_args(tp)[0])
    else:
        back = tp.from_dict(as_dict)
    assert back == model
    assert type(back) is type(model)
    copy = pickle.loads(pickle.dumps(model))
    assert copy == model
    assert type(copy) is type(model)


def test_the_walk_covers_every_model() -> None:
    names = {cls.__name__ for cls in model_classes()}
    assert {"AgentRun", "AgentRunLog", "User", "Organization", "Repository", "Page"} <= names
    assert len(names) == len([n for n in models.__all__ if attrs.has(getattr(models, n))])


def test_to_dict_uses_the_api_names_and_values() -> None:
    run = AgentRun.from_dict(RUN)
    out = run.to_dict()
    assert out["status"] == "RUNNING"
    assert type(out["status"]) is str
    assert out["source_type"] == "API"
    assert type(out["source_type"]) is str
    assert parse_timestamp(out["created_at"]) == parse_timestamp(RUN["created_at"])
    assert out["github_pull_requests"][0]["id"] == 5
    assert set(out) == set(RUN)
    out["metadata"]["team"] = "changed"  # a copy: the model is not touched
    assert run.metadata == RUN["metadata"]


def test_to_dict_undoes_a_rename(monkeypatch: pytest.MonkeyPatch) -> None:
    @attrs.frozen
    class Renamed(models._Model):
        from_: str
        size: int = 0

    monkeypatch.setitem(_convert._RENAMES, Renamed, {"from_": "from"})
    model = Renamed.from_dict({"from": "here", "size": 3})
    assert model == Renamed("here", 3)
    assert model.to_dict() == {"from": "here", "size": 3}


def test_from_dict_names_the_bad_field() -> None:
    with pytest.raises(ResponseValidationError) as info:
        AgentRun.from_dict({**RUN, "organization_id": "seven"})
    assert info.value.path == "organization_id"
    with pytest.raises(ResponseValidationError):
        AgentRun.from_dict(["not", "a", "dict"])


def test_a_page_without_an_item_type_keeps_its_items_as_data() -> None:
    page = Page(items=[AgentRun.from_dict(RUN)], total=1, page=1, size=100, pages=1)
    assert Page.from_dict(page.to_dict()).items == [page.items[0].to_dict()]
    assert Page.from_dict(page.to_dict(), AgentRun) == page


def test_a_model_keeps_an_unknown_enum_value_through_both_roads() -> None:
    run = AgentRun.from_dict({**RUN, "status": "BRAND_NEW_STATE", "source_type": "FAX"})
    assert run.to_dict()["status"] == "BRAND_NEW_STATE"
    copy = pickle.loads(pickle.dumps(run))
    assert copy == run
    assert copy.status == "BRAND_NEW_STATE"
    assert not copy.status.is_known


# ------------------------------------------------------------------ exceptions pickle


# Values for the constructor parameters of the exported errors, by name. A parameter not
# listed (a class added later) gets a string naming it, so the walk still covers it.
SAMPLE_ARGUMENTS: dict[str, Any] = {
    "message": "something went wrong",
    "status_code": 418,
    "body": {"detail": "no"},
    "request_id": "req-1",
    "headers": {"x-request-id": "req-1"},
    "retry_after": 2.5,
    "sent": False,
    "path": "/tmp/journal.sqlite3",
    "index": 4,
    "idempotency_key": "key-1",
    "started_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    "cause": ValueError("underneath"),
    "run": AgentRun(id=9, organization_id=7, status=RunStatus.FAILED),
}


def exported_errors() -> list[type[BaseException]]:
    found = [getattr(codegen_async, name) for name in codegen_async.__all__]
    return [c for c in found if isinstance(c, type) and issubclass(c, BaseException)]


def build(cls: type[BaseException]) -> BaseException:
    """An instance of `cls` with every constructor parameter given."""
    given_args: list[Any] = []
    given_kwargs: dict[str, Any] = {}
    try:
        parameters = inspect.signature(cls).parameters
    except ValueError:  # Exception's own constructor: a message
        return cls(SAMPLE_ARGUMENTS["message"])
    for name, param in parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        value = SAMPLE_ARGUMENTS.get(name, f"value of {name}")
        if param.kind == param.KEYWORD_ONLY:
            given_kwargs[name] = value
        else:
            given_args.append(value)
    return cls(*given_args, **given_kwargs)


def same_attributes(a: BaseException, b: BaseException) -> None:
    assert a.__dict__.keys() == b.__dict__.keys()
    for name, value in a.__dict__.items():
        other = b.__dict__[name]
        if isinstance(value, BaseException):
            assert type(other) is type(value), name
            assert other.args == value.args, name
        else:
            assert other == value, name


def test_the_walk_finds_the_errors() -> None:
    names = {cls.__name__ for cls in exported_errors()}
    assert {"APIStatusError", "NotFoundError", "AmbiguousCreateError", "JournalError"} <= names
    assert {"JournalMismatchError", "JournalInUseError", "RateLimitError"} <= names


@pytest.mark.parametrize("cls", exported_errors(), ids=lambda c: c.__name__)
def test_every_exported_error_survives_pickle(cls: type[BaseException]) -> None:
    error = build(cls)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert copy.args == error.args
    same_attributes(error, copy)
    nested = pickle.loads(pickle.dumps(ValueError(error)))  # and inside something else
    assert type(nested.args[0]) is cls


def test_an_error_added_later_pickles_without_code_of_its_own() -> None:
    class TokenWaitTimeout(codegen_async.CodegenError):
        def __init__(self, message: str, *, bucket: str, waited: float) -> None:
            super().__init__(message)
            self.bucket, self.waited = bucket, waited

    globals()["TokenWaitTimeout"] = TokenWaitTimeout  # pickle finds classes by name
    TokenWaitTimeout.__qualname__ = "TokenWaitTimeout"
    try:
        copy = pickle.loads(pickle.dumps(TokenWaitTimeout("slow", bucket="create", waited=3.0)))
        assert (type(copy), str(copy), copy.bucket, copy.waited) == (
            TokenWaitTimeout, "slow", "create", 3.0,
        )  # fmt: skip
    finally:
        del globals()["TokenWaitTimeout"]
