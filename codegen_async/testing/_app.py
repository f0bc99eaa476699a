"""The Emulator's ASGI app: routing, auth, rate limits, validation and handlers.

Hand-written (no web framework): routes come from the SDK's operation table
(`codegen_async._operations`: each row's id, method, path and rate class; this module
adds only the inputs each validates and its handler) and are compiled once; a request
is matched, counted, put through faults, auth (Bearer key), the rate limiter and
validation (FastAPI-shaped 422s), then handled against the `Store`. Every response is
JSON with content-type, content-length and x-request-id.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any, get_args
from urllib.parse import parse_qsl

import anyio
import attrs
import httpx

from .. import _operations as ops
from .._limits import RateClass
from .._operations import Operation
from .._pagination import MAX_PAGE_SIZE
from ..models import AgentType, PRState, SourceType
from ._faults import FAULT_HEADER, NO_PLAN, Action, Faults
from ._lifecycle import Run, logs_at, run_view, spell_status
from ._ratelimit import ServerRateLimiter
from ._state import Conflict, NotFound, Store

__all__ = [
    "CREATING_ROUTES",
    "ROUTES",
    "ROUTE_RATE_CLASSES",
    "SOURCE_TYPES",
    "Core",
    "EmulatorApp",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

SOURCE_TYPES: tuple[str, ...] = tuple(s.value for s in SourceType)
_MESSAGES = {
    401: "Invalid or missing API key.",
    402: "Alloted agent runs for the current billing plan have been reached. "
    "Please upgrade your plan to continue.",
    403: "You do not have access to this organization.",
    429: "Rate limit exceeded. Please try again later.",
}
_NOT_FOUND = {
    "run": "Agent run not found.",
    "user": "User not found.",
    "repo": "Repository not found.",
    "sandbox": "Sandbox not found.",
    "pr": "Pull request not found.",
}
_NO_REPOS = "No repos found in the organization. Please add some repos and try again."


# -- validation ---------------------------------------------------------------------


@attrs.frozen
class Field:
    """One input: where it comes from, its type and its bounds.

    kinds: int, bool, str, enum (query enum), literal (body enum), object,
    str_list, int_map, str_map.
    """

    name: str
    kind: str
    where: str = "body"
    required: bool = False
    nullable: bool = True
    default: Any = None
    ge: int | None = None
    le: int | None = None
    choices: tuple[str, ...] = ()


class Invalid(Exception):
    """A FastAPI-shaped validation error list."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail


def _error(
    type_: str, loc: list[str | int], msg: str, value: Any, ctx: dict[str, Any] | None = None
) -> dict[str, Any]:
    err: dict[str, Any] = {"type": type_, "loc": loc, "msg": msg, "input": value}
    if ctx is not None:
        err["ctx"] = ctx
    return err


_INT_RE = re.compile(r"\s*[+-]?\d+\s*")
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _expected(choices: tuple[str, ...]) -> str:
    quoted = [f"'{c}'" for c in choices]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _as_int(value: Any, loc: list[str | int], from_text: bool) -> int:
    if from_text:
        if isinstance(value, str) and _INT_RE.fullmatch(value):
            return int(value)
        msg = "Input should be a valid integer, unable to parse string as an integer"
        raise Invalid([_error("int_parsing", loc, msg, value)])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, float):
        msg = "Input should be a valid integer, got a number with a fractional part"
        raise Invalid([_error("int_from_float", loc, msg, value)])
    raise Invalid([_error("int_type", loc, "Input should be a valid integer", value)])


def _as_str(value: Any, loc: list[str | int]) -> str:
    if not isinstance(value, str):
        raise Invalid([_error("string_type", loc, "Input should be a valid string", value)])
    return value


def _as_list(value: Any, loc: list[str | int]) -> list[str]:
    if not isinstance(value, list):
        raise Invalid([_error("list_type", loc, "Input should be a valid list", value)])
    errors: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            errors.append(_error("string_type", [*loc, i], "Input should be a valid string", item))
    if errors:
        raise Invalid(errors)
    return value


def _as_map(value: Any, loc: list[str | int], item_kind: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid([_error("dict_type", loc, "Input should be a valid dictionary", value)])
    errors: list[dict[str, Any]] = []
    for key, item in value.items():
        try:
            if item_kind == "int":
                value[key] = _as_int(item, [*loc, key], False)
            else:
                _as_str(item, [*loc, key])
        except Invalid as exc:
            errors.extend(exc.detail)
    if errors:
        raise Invalid(errors)
    return value


def _convert(field: Field, value: Any, loc: list[str | int]) -> Any:
    """Check and convert one present, non-null value."""
    text = field.where != "body"
    kind = field.kind
    if kind == "int":
        number = _as_int(value, loc, text)
        if field.ge is not None and number < field.ge:
            msg = f"Input should be greater than or equal to {field.ge}"
            raise Invalid([_error("greater_than_equal", loc, msg, value, {"ge": field.ge})])
        if field.le is not None and number > field.le:
            msg = f"Input should be less than or equal to {field.le}"
            raise Invalid([_error("less_than_equal", loc, msg, value, {"le": field.le})])
        return number
    if kind == "bool":
        lowered = str(value).lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        msg = "Input should be a valid boolean, unable to interpret input"
        raise Invalid([_error("bool_parsing", loc, msg, value)])
    if kind == "str":
        return _as_str(value, loc)
    if kind in ("enum", "literal"):
        if value in field.choices:
            return value
        expected = _expected(field.choices)
        type_ = "enum" if kind == "enum" else "literal_error"
        raise Invalid(
            [_error(type_, loc, f"Input should be {expected}", value, {"expected": expected})]
        )
    if kind == "object":
        if not isinstance(value, dict):
            raise Invalid([_error("dict_type", loc, "Input should be a valid dictionary", value)])
        return value
    if kind == "str_list":
        return _as_list(value, loc)
    return _as_map(value, loc, "int" if kind == "int_map" else "str")


def validate(fields: tuple[Field, ...], sources: dict[str, Any]) -> dict[str, Any]:
    """Check every field against its source; raise Invalid with all errors found."""
    out: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for field in fields:
        source = sources[field.where]
        loc: list[str | int] = [field.where, field.name]
        if field.name not in source:
            if field.required:
                errors.append(_error("missing", loc, "Field required", None))
            out[field.name] = field.default
            continue
        value = source[field.name]
        if value is None and field.nullable and field.where == "body":
            out[field.name] = None
            continue
        try:
            out[field.name] = _convert(field, value, loc)
        except Invalid as exc:
            errors.extend(exc.detail)
    if errors:
        raise Invalid(errors)
    return out


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body the way FastAPI reports problems with it."""
    if not raw:
        raise Invalid([_error("missing", ["body"], "Field required", None)])
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        position = getattr(exc, "pos", 0)
        error = getattr(exc, "msg", str(exc))
        raise Invalid(
            [_error("json_invalid", ["body", position], "JSON decode error", {}, {"error": error})]
        ) from None
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        raise Invalid([_error("model_attributes_type", ["body"], msg, body)])
    return body


# -- routes -------------------------------------------------------------------------


class Reply(Exception):
    """Raised by a handler to answer with an error status and body."""

    def __init__(self, status: int, payload: Any) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload


@attrs.define(eq=False)
class Ctx:
    """One request as a handler sees it."""

    core: Core
    route: Route
    args: dict[str, Any]
    commit_delay: float = 0.0  # emulated seconds before a create commits (commit_delay fault)

    @property
    def store(self) -> Store:
        return self.core.store


Handler = Callable[[Ctx], Any]


@attrs.frozen
class Route:
    name: str
    method: str
    template: str
    rate_class: RateClass
    fields: tuple[Field, ...]
    handler: Handler
    has_body: bool = False
    org_field: str | None = "org_id"


def _page(items: list[Any], skip: int, limit: int) -> dict[str, Any]:
    total = len(items)
    return {
        "items": items[skip : skip + limit],
        "total": total,
        "page": skip // limit + 1,
        "size": limit,
        "pages": math.ceil(total / limit),
    }


def _not_found(kind: str, message: str | None = None) -> Reply:
    return Reply(404, {"message": message or _NOT_FOUND[kind], "status_code": 404})


def _run_or_404(ctx: Ctx, run_id: int) -> Run:
    try:
        return ctx.store.get_run(run_id)
    except NotFound:
        raise _not_found("run") from None


# Handlers: one per operation. Each returns the 200 payload (or bytes) or raises Reply.


def h_get_users(ctx: Ctx) -> Any:
    return _page(ctx.store.users, ctx.args["skip"], ctx.args["limit"])


def h_get_user(ctx: Ctx) -> Any:
    user = ctx.store.users_by_id.get(ctx.args["user_id"])
    if user is None:
        raise _not_found("user")
    return user


def h_get_current_user(ctx: Ctx) -> Any:
    return ctx.store.caller


def _create(ctx: Ctx, prompt: str, source_type: str, **kwargs: Any) -> Any:
    delay = max(ctx.core.faults.take_list_delay(ctx.route.name), ctx.commit_delay)
    return ctx.store.create_run(
        prompt,
        user_id=ctx.store.caller["id"],
        source_type=source_type,
        list_delay=delay,
        **kwargs,
    )


def h_create_agent_run(ctx: Ctx) -> Any:
    a = ctx.args
    try:
        run = _create(
            ctx,
            a["prompt"],
            "API",
            metadata=a["metadata"],
            images=a["images"],
            repo_id=a["repo_id"],
            model=a["model"],
            agent_type=a["agent_type"],
        )
    except NotFound:
        raise Reply(404, {"message": _NO_REPOS, "status_code": 404}) from None
    return ctx.core.view(run)


def h_get_agent_run(ctx: Ctx) -> Any:
    return ctx.core.view_bytes(_run_or_404(ctx, ctx.args["agent_run_id"]))


def h_list_agent_runs(ctx: Ctx) -> Any:
    a = ctx.args
    runs = ctx.store.list_runs(a["user_id"], a["source_type"])
    page = _page(runs, a["skip"], a["limit"])
    page["items"] = [ctx.core.view(r) for r in page["items"]]
    return page


def h_resume_agent_run(ctx: Ctx) -> Any:
    run_id = ctx.args["agent_run_id"]
    try:
        run = ctx.store.resume_run(run_id, ctx.args["prompt"])
    except NotFound:
        raise _not_found("run") from None
    except Conflict as exc:
        msg = f"Value error, {exc}"
        raise Invalid([_error("value_error", ["body", "agent_run_id"], msg, run_id)]) from None
    return ctx.core.view(run)


def _stopper(ban: bool | None, message: str) -> Handler:
    def handler(ctx: Ctx) -> Any:
        run_id = ctx.args["agent_run_id"]
        try:
            ctx.store.stop_run(run_id, ban=ban)
        except NotFound:
            raise _not_found("run") from None
        return {"message": message.format(run_id), "agent_run_id": run_id}

    return handler


def h_get_repositories(ctx: Ctx) -> Any:
    return _page(ctx.store.repos, ctx.args["skip"], ctx.args["limit"])


def h_get_check_suite_settings(ctx: Ctx) -> Any:
    return ctx.store.check_suite_settings(ctx.args["repo_id"])


_SETTINGS_KEYS = (
    "check_retry_count", "ignored_checks", "check_retry_counts", "custom_prompts",
    "high_priority_apps",
)  # fmt: skip


def h_update_check_suite_settings(ctx: Ctx) -> Any:
    changes = {k: ctx.args[k] for k in _SETTINGS_KEYS}
    settings = ctx.store.update_check_suite_settings(ctx.args["repo_id"], changes)
    return {"success": True, "message": "Check suite settings updated.", "settings": settings}


def h_edit_pull_request(ctx: Ctx) -> Any:
    state = ctx.args["state"]
    try:
        pr = ctx.store.edit_pr(ctx.args["pr_id"], state, ctx.args.get("repo_id"))
    except NotFound:
        return {"success": False, "url": None, "number": None, "title": None, "state": None,
                "error": _NOT_FOUND["pr"]}  # fmt: skip
    return {"success": True, "url": pr["url"], "number": pr["number"], "title": pr["title"],
            "state": pr["state"], "error": None}  # fmt: skip


def h_get_integrations(ctx: Ctx) -> Any:
    store = ctx.store
    items = store.integrations
    return {
        "organization_id": store.org["id"],
        "organization_name": store.org["name"],
        "integrations": items,
        "total_active_integrations": sum(1 for i in items if i["active"]),
    }


def h_generate_setup_commands(ctx: Ctx) -> Any:
    repo = ctx.store.repos_by_id.get(ctx.args["repo_id"])
    if repo is None:
        raise _not_found("repo")
    prompt = ctx.args["prompt"] or f"Generate setup commands for {repo['full_name']}"
    run = _create(ctx, prompt, "SETUP_COMMANDS", repo_id=repo["id"])
    status = ctx.core.spell(run.status(ctx.store.clock.now()))
    return {"agent_run_id": run.id, "status": status, "url": run.web_url}


def h_get_organizations(ctx: Ctx) -> Any:
    return _page([ctx.store.org], ctx.args["skip"], ctx.args["limit"])


def h_get_mcp_providers(ctx: Ctx) -> Any:
    return ctx.store.mcp_providers


def h_get_oauth_token_status(ctx: Ctx) -> Any:
    return [{"provider": p, "is_active": True} for p in ctx.store.active_oauth_providers()]


def h_revoke_oauth_token(ctx: Ctx) -> Any:
    provider = ctx.args["provider"]
    revoked = ctx.store.revoke_oauth(provider)
    return {"success": True, "provider": provider, "revoked_tokens": revoked}


def h_analyze_sandbox_logs(ctx: Ctx) -> Any:
    sandbox_id = ctx.args["sandbox_id"]
    has_logs = ctx.store.sandboxes.get(sandbox_id)
    if has_logs is None:
        raise _not_found("sandbox")
    if not has_logs:
        raise Reply(400, {"message": "No logs available for analysis.", "status_code": 400})
    run = _create(ctx, f"Analyze the setup logs of sandbox {sandbox_id}", "API")
    return {
        "agent_run_id": run.id,
        "status": ctx.core.spell(run.status(ctx.store.clock.now())),
        "message": f"Log analysis started for sandbox {sandbox_id}.",
    }


def h_get_cli_rules(ctx: Ctx) -> Any:
    return ctx.store.cli_rules


def h_generate_slack_token(ctx: Ctx) -> Any:
    token = ctx.store.slack_token(ctx.store.caller["id"])
    return {
        "token": token,
        "message": f'Send "Connect my account: {token}" to the Codegen bot in a DM.',
        "expires_in_minutes": 10,
    }


def h_get_agent_run_logs(ctx: Ctx) -> Any:
    a = ctx.args
    run = _run_or_404(ctx, a["agent_run_id"])
    now = ctx.store.clock.now()
    view = ctx.core.view(run, now)
    logs = logs_at(run, now)
    if a["reverse"]:
        logs.reverse()
    skip, limit = a["skip"], a["limit"]
    del view["summary"], view["source_type"], view["github_pull_requests"]
    view.update(
        logs=logs[skip : skip + limit],
        total_logs=len(logs),
        page=skip // limit + 1,
        size=limit,
        pages=math.ceil(len(logs) / limit),
    )
    return view


def h_legacy_run(ctx: Ctx) -> Any:
    a = ctx.args
    repo = ctx.store.repos_by_name.get(a["repo_full_name"])
    if repo is None:
        return {"success": False, "web_link": None, "observation": None,
                "error": f"Repository {a['repo_full_name']} not found.", "logs": None}  # fmt: skip
    name, message = a["codemod_name"], a["message"] or ""
    observation = f"Ran {name} on {repo['full_name']}: {result_for_legacy(name, message)}"
    return {
        "success": True,
        "web_link": f"https://codegen.com/codemod/{repo['id']}/{name}",
        "observation": observation,
        "error": None,
        "logs": f"[emulator] {name} started\n[emulator] {name} finished",
    }


def result_for_legacy(codemod: str, message: str) -> str:
    """What the legacy function run reports; fixed by its inputs."""
    return f"{codemod} completed ({len(message)} chars of instructions)"


def _q(name: str, kind: str = "int", **kw: Any) -> Field:
    return Field(name, kind, where="query", **kw)


def _p(name: str) -> Field:
    return Field(name, "int", where="path", required=True)


_ORG = _p("org_id")
_PAGING = (
    _q("skip", default=0, ge=0),
    _q("limit", default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
)
_RUN_ID = Field("agent_run_id", "int", required=True, nullable=False)
_IMAGES = Field("images", "str_list")
_PR_STATE = Field(
    "state", "literal", required=True, nullable=False,
    choices=get_args(PRState),
)  # fmt: skip
_STOP_BODY = (
    _RUN_ID,
    Field("before_card_order_id", "str"),
    Field("after_card_order_id", "str"),
)


def _route(op: Operation[Any], fields: tuple[Field, ...], handler: Handler, **kw: Any) -> Route:
    """The Emulator's route for `op`: the row's id, method, path and rate class, with the
    handler and the inputs it validates."""
    return Route(op.id, op.method, op.path, op.rate_class, fields, handler, **kw)


def _routes() -> tuple[Route, ...]:
    create_fields = (
        _ORG,
        Field("prompt", "str", required=True, nullable=False),
        _IMAGES,
        Field("metadata", "object"),
        Field("repo_id", "int"),
        Field("model", "str"),
        Field("agent_type", "literal", choices=get_args(AgentType)),
    )
    settings_fields = (
        Field("check_retry_count", "int", ge=0, le=10),
        Field("ignored_checks", "str_list"),
        Field("check_retry_counts", "int_map"),
        Field("custom_prompts", "str_map"),
        Field("high_priority_apps", "str_list"),
    )
    repo_q = _q("repo_id", required=True)
    run_path = _p("agent_run_id")
    r = _route
    return (
        r(ops.GET_USERS, (_ORG, *_PAGING), h_get_users),
        r(ops.GET_USER, (_ORG, _p("user_id")), h_get_user),
        r(ops.GET_CURRENT_USER_INFO, (), h_get_current_user,
          org_field=None),
        r(ops.CREATE_AGENT_RUN, create_fields,
          h_create_agent_run, has_body=True),
        r(ops.GET_AGENT_RUN, (run_path, _ORG),
          h_get_agent_run),
        r(ops.LIST_AGENT_RUNS,
          (_ORG, _q("user_id"), _q("source_type", "enum", choices=SOURCE_TYPES), *_PAGING),
          h_list_agent_runs),
        r(ops.RESUME_AGENT_RUN,
          (_ORG, _RUN_ID, Field("prompt", "str", required=True, nullable=False), _IMAGES),
          h_resume_agent_run, has_body=True),
        r(ops.BAN_ALL_CHECKS_FOR_AGENT_RUN,
          (_ORG, *_STOP_BODY), _stopper(True, "All checks banned for agent run {}."),
          has_body=True),
        r(ops.UNBAN_ALL_CHECKS_FOR_AGENT_RUN,
          (_ORG, *_STOP_BODY), _stopper(False, "All checks unbanned for agent run {}."),
          has_body=True),
        r(ops.REMOVE_CODEGEN_FROM_PR,
          (_ORG, *_STOP_BODY), _stopper(None, "Codegen removed from the PR of agent run {}."),
          has_body=True),
        r(ops.GET_REPOSITORIES, (_ORG, *_PAGING), h_get_repositories),
        r(ops.GET_CHECK_SUITE_SETTINGS,
          (_ORG, repo_q), h_get_check_suite_settings),
        r(ops.UPDATE_CHECK_SUITE_SETTINGS,
          (_ORG, repo_q, *settings_fields), h_update_check_suite_settings, has_body=True),
        r(ops.EDIT_PULL_REQUEST_SIMPLE,
          (_ORG, _p("pr_id"), _PR_STATE), h_edit_pull_request, has_body=True),
        r(ops.EDIT_PULL_REQUEST, (_ORG, _p("repo_id"), _p("pr_id"), _PR_STATE), h_edit_pull_request,
          has_body=True),
        r(ops.GET_ORGANIZATION_INTEGRATIONS, (_ORG,),
          h_get_integrations),
        r(ops.GENERATE_SETUP_COMMANDS,
          (_ORG, Field("repo_id", "int", required=True, nullable=False), Field("prompt", "str"),
           Field("trigger_source", "str", nullable=False, default="setup-commands")),
          h_generate_setup_commands, has_body=True),
        r(ops.GET_ORGANIZATIONS, _PAGING, h_get_organizations,
          org_field=None),
        r(ops.GET_MCP_PROVIDERS, (), h_get_mcp_providers,
          org_field=None),
        r(ops.GET_OAUTH_TOKEN_STATUS,
          (_q("org_id", required=True),), h_get_oauth_token_status),
        r(ops.REVOKE_OAUTH_TOKEN,
          (_q("provider", "str", required=True), _q("org_id", required=True)),
          h_revoke_oauth_token),
        r(ops.ANALYZE_SANDBOX_LOGS, (_p("sandbox_id"), _ORG), h_analyze_sandbox_logs),
        r(ops.GET_CLI_RULES, (_ORG,),
          h_get_cli_rules),
        r(ops.GENERATE_SLACK_CONNECT_TOKEN,
          (Field("org_id", "int", required=True, nullable=False),), h_generate_slack_token,
          has_body=True, org_field=None),
        r(ops.GET_AGENT_RUN_LOGS,
          (run_path, _ORG, *_PAGING, _q("reverse", "bool", default=False)),
          h_get_agent_run_logs),
        r(ops.LEGACY_RUN,
          (Field("repo_full_name", "str", required=True, nullable=False),
           Field("codemod_name", "str", required=True, nullable=False),
           Field("message", "str")),
          h_legacy_run, has_body=True, org_field=None),
    )  # fmt: skip


_ROUTE_TABLE = _routes()
ROUTES: tuple[str, ...] = tuple(r.name for r in _ROUTE_TABLE)
ROUTE_RATE_CLASSES: dict[str, RateClass] = {r.name: r.rate_class for r in _ROUTE_TABLE}
CREATING_ROUTES = ("create_agent_run", "generate_setup_commands", "analyze_sandbox_logs")


class Router:
    """Matches (method, path) to a route: static paths by dict, the rest by regex."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        self._static: dict[str, dict[str, Route]] = {}
        self._dynamic: dict[int, list[tuple[re.Pattern[str], dict[str, Route]]]] = {}
        patterns: dict[str, dict[str, Route]] = {}
        for route in routes:
            if "{" not in route.template:
                self._static.setdefault(route.template, {})[route.method] = route
            else:
                patterns.setdefault(route.template, {})[route.method] = route
        for template, by_method in sorted(patterns.items(), key=lambda i: i[0].count("{")):
            regex = re.compile(re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template))
            self._dynamic.setdefault(template.count("/"), []).append((regex, by_method))

    def match(
        self, method: str, path: str
    ) -> tuple[Route | None, dict[str, Route] | None, dict[str, str]]:
        """The route for (method, path), the routes at `path` by method (for a 405),
        and the raw path parameters. Templates with fewer parameters win."""
        by_method = self._static.get(path)
        if by_method is not None:
            return by_method.get(method), by_method, {}
        partial = None
        for regex, candidates in self._dynamic.get(path.count("/"), ()):
            m = regex.fullmatch(path)
            if m is None:
                continue
            route = candidates.get(method)
            if route is not None:
                return route, candidates, m.groupdict()
            partial = partial or candidates
        return None, partial, {}


# -- the core -----------------------------------------------------------------------


@attrs.frozen
class Outcome:
    """A response to send, and the connection fault to execute with it, if any."""

    status: int
    body: bytes
    headers: Headers
    fault: Action | None = None


_JSON = (b"content-type", b"application/json")
_ids = itertools.count(1)


def _encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def outcome(status: int, payload: Any, extra: Headers | None = None) -> Outcome:
    body = payload if isinstance(payload, bytes) else _encode(payload)
    headers = [
        _JSON,
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", b"emu-%08x" % next(_ids)),
    ]
    if extra:
        headers.extend(extra)
    return Outcome(status, body, headers)


def _rate_limited(retry_after: float) -> Outcome:
    """429 with the spec's body, Retry-After (whole seconds, up) and retry-after-ms."""
    extra = [
        (b"retry-after", str(math.ceil(retry_after)).encode()),
        (b"retry-after-ms", str(max(1, math.ceil(retry_after * 1000))).encode()),
    ]
    return outcome(429, {"message": _MESSAGES[429], "status_code": 429}, extra)


def error_payload(status: int) -> dict[str, Any]:
    """The spec's `{"message", "status_code"}` error body."""
    message = _MESSAGES.get(status)
    if message is None:
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "Error"
    return {"message": message, "status_code": status}


class Core:
    """Everything about answering a request except how bytes reach the socket."""

    def __init__(
        self,
        *,
        store: Store,
        limiter: ServerRateLimiter,
        faults: Faults,
        api_key: str,
        latency: float,
        status_spelling: str = "upper",
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.faults = faults
        self.token = api_key.encode()
        self.api_key = api_key
        self.latency = latency
        self.status_spelling = status_spelling
        self.router = Router(_ROUTE_TABLE)
        self.clock = store.clock

    def view(self, run: Run, now: float | None = None) -> dict[str, Any]:
        t = self.clock.now() if now is None else now
        view = run_view(run, t, self.clock)
        view["status"] = self.spell(view["status"])
        return view

    def spell(self, status: str) -> str:
        """A status as this Emulator answers it (see `Emulator(status_spelling=...)`)."""
        return spell_status(status, self.status_spelling)

    def view_bytes(self, run: Run) -> bytes:
        """The encoded run, reused while only time passed and the status held."""
        now = self.clock.now()
        status = run.status(now)
        cached = run.cache
        if cached is not None and cached[0] == status:
            return cached[1]
        view = run_view(run, now, self.clock, status)
        view["status"] = self.spell(status)
        body = _encode(view)
        run.cache = (status, body)
        return body

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return bool(scheme.lower() == b"bearer" and token.strip() == self.token)
        return False

    async def handle(self, scope: Scope, receive: Receive) -> Outcome:
        """Answer one HTTP request."""
        route, by_method, raw_path = self.router.match(scope["method"], scope["path"])
        if route is None:
            self.store.count_request("<unmatched>")
            if by_method is None:
                return outcome(404, {"detail": "Not Found"})
            allow = ", ".join(sorted(by_method)).encode()
            return outcome(405, {"detail": "Method Not Allowed"}, [(b"allow", allow)])
        self.store.count_request(route.name)
        plan = self.faults.take_before(route.name) if self.faults.active else NO_PLAN
        delay = self.latency + plan.latency
        if delay > 0:
            await anyio.sleep(delay)
        if plan.before is not None:
            return self._before_fault(plan.before)
        result = await self._answer(route, raw_path, scope, receive, plan.commit_delay)
        if plan.commit_delay > 0:  # the run was stored hidden: it commits, then we answer
            await anyio.sleep(plan.commit_delay * self.clock.scale)
        if 200 <= result.status < 300 and (self.faults.active or plan.after is not None):
            action = self.faults.take_after(route.name, plan)
            if action is not None:
                return self._after_fault(action, result)
        return result

    async def _answer(
        self,
        route: Route,
        raw_path: dict[str, str],
        scope: Scope,
        receive: Receive,
        commit_delay: float = 0.0,
    ) -> Outcome:
        if not self._authorized(scope):
            return outcome(401, error_payload(401))
        if self.limiter.enabled:
            wait = self.limiter.acquire(self.api_key, route.rate_class)
            if wait is not None:
                self.store.count_rate_limited()
                return _rate_limited(wait * self.clock.scale)
        try:
            args = await self._arguments(route, raw_path, scope, receive)
            if route.org_field is not None and args[route.org_field] != self.store.org["id"]:
                return outcome(403, error_payload(403))
            return outcome(200, route.handler(Ctx(self, route, args, commit_delay)))
        except Invalid as exc:
            return outcome(422, {"detail": exc.detail})
        except Reply as exc:
            return outcome(exc.status, exc.payload)

    async def _arguments(
        self, route: Route, raw_path: dict[str, str], scope: Scope, receive: Receive
    ) -> dict[str, Any]:
        query_string = scope.get("query_string", b"")
        query = (
            dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
            if query_string
            else {}
        )
        sources: dict[str, Any] = {"path": raw_path, "query": query, "body": {}}
        if route.has_body:
            sources["body"] = parse_body(await _read_body(receive))
        return validate(route.fields, sources)

    def _before_fault(self, action: Action) -> Outcome:
        if action.kind == "rate_limited":
            self.store.count_rate_limited()
            return _rate_limited(action.seconds)
        if action.kind == "error_before":
            return outcome(action.status, error_payload(action.status))
        # close_before / reset: nothing is done and nothing is answered.
        return attrs.evolve(outcome(503, error_payload(503)), fault=action)

    def _after_fault(self, action: Action, result: Outcome) -> Outcome:
        if action.kind == "error_after_commit":
            return outcome(action.status, error_payload(action.status))
        return attrs.evolve(result, fault=action)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


# -- the ASGI callables -------------------------------------------------------------


class EmulatorApp:
    """The ASGI app. `wire=False` (in process, behind httpx.ASGITransport) raises the
    httpx errors a client would see for connection faults; `wire=True` (served, behind
    the fault proxy) asks the proxy to execute them with the `x-emulator-fault` header."""

    def __init__(self, core: Core, *, wire: bool) -> None:
        self.core = core
        self.wire = wire

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            result = await self.core.handle(scope, receive)
            if result.fault is not None:
                result = await self._fault(result)
            await send({"type": "http.response.start", "status": result.status,
                        "headers": result.headers})  # fmt: skip
            await send({"type": "http.response.body", "body": result.body})
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _fault(self, result: Outcome) -> Outcome:
        action = result.fault
        assert action is not None
        signal = action.wire_signal()
        if signal is None:
            return result
        if self.wire:
            headers = [*result.headers, (FAULT_HEADER.encode(), signal.encode())]
            return attrs.evolve(result, headers=headers)
        if action.kind == "drip":
            await anyio.sleep(action.drip_seconds(len(result.body)))
            return result
        if action.kind == "silence_after_commit":
            raise httpx.ReadTimeout("Emulated silence: the server never answered.")
        if action.kind == "truncate":
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            )
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
