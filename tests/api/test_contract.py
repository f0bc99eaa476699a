"""Contract test: every Emulator response conforms to the Codegen OpenAPI spec.

The spec is `../shared/spec/codegen-openapi.json` relative to the repository
(or the file named by CODEGEN_OPENAPI_SPEC). The Emulator is served on a
loopback port (no fault proxy) and driven two ways:

- schemathesis generates requests for every operation (bounded examples) and
  checks status codes, content types, headers and body schemas;
- a scripted walk calls every operation once with real ids (a created run, a
  listed repository, ...) so the success responses are validated too.

Requests always carry the Emulator's API key and org id: the spec documents
no 401 at all, so a 401 is a nonconformance here, never expected.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from codegen_async.testing._serve import serve_app_in_thread

from ..spec_tools import spec_path

pytestmark = pytest.mark.network

SPEC_ENV = "CODEGEN_OPENAPI_SPEC"
SPEC = spec_path()
MAX_EXAMPLES = 15
TIME_SCALE = 0.001  # emulated seconds pass 1000 times faster

if not SPEC.is_file():
    pytest.skip(
        f"OpenAPI spec not found at {SPEC}; set {SPEC_ENV} to its path", allow_module_level=True
    )
pytest.importorskip("schemathesis", minversion="4")

import hypothesis  # noqa: E402
import schemathesis  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from codegen_async import _operations as ops  # noqa: E402
from codegen_async._operations import Operation  # noqa: E402
from codegen_async.testing import Emulator  # noqa: E402

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


EMULATOR = Emulator(time_scale=TIME_SCALE, rate_limits=False)
AUTH = {"Authorization": f"Bearer {EMULATOR.api_key}"}


def declare_path_parameters(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare `{name}` path parameters the spec uses but omits, as integers.

    The spec's check-suite-settings operations use `{org_id}` without declaring
    it; schemathesis rightly refuses such a template. This is a defect of the
    spec, not of the Emulator, so the test repairs it before loading.
    """
    for path, item in spec["paths"].items():
        names = re.findall(r"\{([^{}]+)\}", path)
        for operation in item.values():
            params = operation.setdefault("parameters", [])
            declared = {p.get("name") for p in params if p.get("in") == "path"}
            for name in names:
                if name not in declared:
                    params.append(
                        {
                            "name": name,
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    )
    return spec


def load_schema(mode: str) -> Any:
    """The spec with correct auth and org id on every request, generating `mode` data.

    Positive data must be accepted (2xx, or 403/404 for ids that don't exist);
    negative data must be rejected with a documented 4xx. Both modes check
    status codes, content types, headers and bodies against the spec.
    """
    acceptance = "positive_data_acceptance" if mode == "positive" else "negative_data_rejection"
    config = schemathesis.Config.from_dict(
        {
            "headers": AUTH,
            "parameters": {"org_id": EMULATOR.org_id},
            "request-timeout": 10,
            "generation": {
                "mode": mode,
                "max-examples": MAX_EXAMPLES,
                # unknown query parameters are ignored by the real API too (FastAPI)
                "allow-extra-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
                "content_type_conformance": {"enabled": True},
                "response_headers_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True, "validate-formats": True},
                "positive_data_acceptance": {
                    "enabled": mode == "positive",
                    "expected-statuses": ["2xx", 403, 404],
                },
                acceptance: {"enabled": True},
            },
        }
    )
    raw = declare_path_parameters(json.loads(SPEC.read_text(encoding="utf-8")))
    return schemathesis.openapi.from_dict(raw, config=config)


# Built at import (schemathesis parametrizes at collection); the base URL is given per call.
positive_schema = load_schema("positive")
# revoke has only string query parameters left once org_id is pinned: no negative data exists.
negative_schema = load_schema("negative").exclude(path=ops.REVOKE_OAUTH_TOKEN.path)
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,  # the same requests every run: a failure here is reproducible
    suppress_health_check=list(hypothesis.HealthCheck),
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """The Emulator on a loopback port, without the fault proxy."""
    with serve_app_in_thread(EMULATOR.wire_app, faults=False) as url:
        yield url


Test = TypeVar("Test", bound=Callable[..., None])


def each_operation(schema: Any) -> Callable[[Test], Test]:
    """`schema.parametrize()`, typed: one test per operation of `schema`."""
    decorator: Callable[[Test], Test] = schema.parametrize()
    return decorator


@each_operation(positive_schema)
@SETTINGS
def test_valid_requests_conform(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers=AUTH)


@each_operation(negative_schema)
@SETTINGS
def test_invalid_requests_are_rejected_as_documented(case: Any, base_url: str) -> None:
    case.call_and_validate(base_url=base_url, headers=AUTH)


# --------------------------------------------------------------------------- scripted walk


class Walk:
    """Calls operations with chosen data and validates each response against the spec."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.seen: set[str] = set()

    def call(
        self,
        op: Operation[Any],
        *,
        path_parameters: dict[str, Any] | None = None,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """Send one request; fail on any nonconformance; return the decoded JSON body."""
        method, path = op.method, op.path
        operation = positive_schema[path][method]
        params = {"org_id": EMULATOR.org_id, **(path_parameters or {})}
        names = {p.name for p in operation.path_parameters}
        kwargs: dict[str, Any] = {
            "path_parameters": {k: v for k, v in params.items() if k in names or k == "org_id"},
            "query": query or {},
            "headers": dict(AUTH),
        }
        if body is not None:
            kwargs["body"] = body
        case = operation.Case(**kwargs)
        response = case.call(base_url=self.base_url)
        case.validate_response(response, checks=CHECKS)
        self.seen.add(f"{method.upper()} {path}")
        return response.json()


def wait_terminal(walk: Walk, run_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        run: dict[str, Any] = walk.call(ops.GET_AGENT_RUN, path_parameters={"agent_run_id": run_id})
        if run.get("status") not in {"PENDING", "ACTIVE", "RUNNING", "EVALUATION", None}:
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run.get('status')}"
        time.sleep(0.02)


def first_pr(run: dict[str, Any]) -> dict[str, Any] | None:
    prs = run.get("github_pull_requests") or []
    return prs[0] if prs else None


def test_scripted_walk_covers_every_operation(base_url: str) -> None:
    walk = Walk(base_url)
    org = EMULATOR.org_id

    me = walk.call(ops.GET_CURRENT_USER_INFO)
    walk.call(ops.GET_ORGANIZATIONS, query={"skip": 0, "limit": 10})
    users = walk.call(ops.GET_USERS, query={"skip": 0, "limit": 5})
    user_id = users["items"][0]["id"] if users["items"] else me["id"]
    walk.call(ops.GET_USER, path_parameters={"user_id": user_id})
    walk.call(ops.GET_USER, path_parameters={"user_id": 987654321})

    repos = walk.call(ops.GET_REPOSITORIES, query={"skip": 0, "limit": 5})
    repo_id = repos["items"][0]["id"]
    walk.call(ops.GET_CHECK_SUITE_SETTINGS, query={"repo_id": repo_id})
    walk.call(
        ops.UPDATE_CHECK_SUITE_SETTINGS, query={"repo_id": repo_id}, body={"check_retry_count": 2}
    )

    walk.call(ops.GET_ORGANIZATION_INTEGRATIONS)
    walk.call(ops.GET_CLI_RULES)
    walk.call(ops.GET_MCP_PROVIDERS)
    walk.call(ops.GET_OAUTH_TOKEN_STATUS, query={"org_id": org})
    walk.call(ops.REVOKE_OAUTH_TOKEN, query={"provider": "github", "org_id": org})
    walk.call(ops.GENERATE_SLACK_CONNECT_TOKEN, body={"org_id": org})
    walk.call(ops.GENERATE_SETUP_COMMANDS, body={"repo_id": repo_id})
    walk.call(ops.ANALYZE_SANDBOX_LOGS, path_parameters={"sandbox_id": 1})

    created = walk.call(
        ops.CREATE_AGENT_RUN, body={"prompt": "contract", "repo_id": repo_id, "metadata": {"k": 1}}
    )
    run_id = created["id"]
    walk.call(ops.GET_AGENT_RUN, path_parameters={"agent_run_id": run_id})
    walk.call(ops.GET_AGENT_RUN, path_parameters={"agent_run_id": 987654321})
    walk.call(ops.LIST_AGENT_RUNS, query={"skip": 0, "limit": 5})
    walk.call(
        ops.GET_AGENT_RUN_LOGS,
        path_parameters={"agent_run_id": run_id},
        query={"skip": 0, "limit": 10, "reverse": True},
    )
    finished = wait_terminal(walk, run_id)
    walk.call(ops.RESUME_AGENT_RUN, body={"agent_run_id": run_id, "prompt": "more"})
    for stop in (
        ops.BAN_ALL_CHECKS_FOR_AGENT_RUN,
        ops.UNBAN_ALL_CHECKS_FOR_AGENT_RUN,
        ops.REMOVE_CODEGEN_FROM_PR,
    ):
        walk.call(stop, body={"agent_run_id": run_id})

    pr = first_pr(finished) or {"id": 1}
    pr_repo = pr.get("repo_id") or repo_id
    walk.call(
        ops.EDIT_PULL_REQUEST_SIMPLE, path_parameters={"pr_id": pr["id"]}, body={"state": "closed"}
    )
    walk.call(
        ops.EDIT_PULL_REQUEST,
        path_parameters={"repo_id": pr_repo, "pr_id": pr["id"]},
        body={"state": "open"},
    )

    documented = {
        f"{operation.method.upper()} {operation.path}"
        for operation in (result.ok() for result in positive_schema.get_all_operations())
    }
    assert documented - walk.seen == set()
