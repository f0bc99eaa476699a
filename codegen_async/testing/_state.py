"""The Emulator's in-memory store: a seeded organization and everything in it.

Every mutation and every multi-field read takes `Store.lock` (a threading.Lock),
because a served Emulator is used from the serving thread and the test at once.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from typing import Any

import attrs

from .._constants import IDEMPOTENCY_METADATA_KEY
from ._lifecycle import Clock, LifecycleConfig, Run, plan_leg, pr_id_for

__all__ = ["Conflict", "Counts", "NotFound", "Store"]

_WEB = "https://codegen.com"
_USERS = (
    ("ada", "Ada Lovelace", "ADMIN"),
    ("grace", "Grace Hopper", "MANAGER"),
    ("alan", "Alan Turing", "MEMBER"),
    ("katherine", "Katherine Johnson", "MEMBER"),
    ("edsger", "Edsger Dijkstra", "MEMBER"),
)
_REPOS = (
    ("api-server", "Python", "private", "The service behind the public API."),
    ("web-app", "TypeScript", "private", "Customer-facing web application."),
    ("infra", "HCL", "private", None),
    ("docs", "MDX", "public", "Public documentation site."),
    ("cli", "Go", "public", "Command line tool."),
    ("legacy-monolith", "Java", "private", "Archived; kept for reference."),
)
_CHECK_SUITE_NAMES = ("ci / test", "ci / lint", "ci / typecheck", "build")


class NotFound(Exception):
    """The named thing does not exist; `kind` is run, user, repo, sandbox or pr."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Conflict(Exception):
    """The request is valid but the thing is not in a state that allows it."""


@attrs.define
class Counts:
    """Mutable counters, read through `Store.counts_snapshot`."""

    requests_by_route: dict[str, int] = attrs.field(factory=dict)
    rate_limited: int = 0
    runs_created: int = 0
    duplicate_creates: int = 0


def _users(org_id: int) -> list[dict[str, Any]]:
    users = []
    for i, (login, name, role) in enumerate(_USERS):
        uid = 101 + i
        users.append(
            {
                "id": uid,
                "email": f"{login}@example.com",
                "github_user_id": str(5_000_000 + uid),
                "github_username": f"{login}-{org_id}",
                "avatar_url": f"https://avatars.githubusercontent.com/u/{5_000_000 + uid}",
                "full_name": name,
                "role": role,
                "is_admin": role == "ADMIN",
            }
        )
    return users


def _repos(org_id: int, owner: str) -> list[dict[str, Any]]:
    repos = []
    for i, (name, language, visibility, description) in enumerate(_REPOS):
        rid = 501 + i
        repos.append(
            {
                "id": rid,
                "name": name,
                "full_name": f"{owner}/{name}",
                "description": description,
                "github_id": str(80_000_000 + rid),
                "organization_id": org_id,
                "visibility": visibility,
                "archived": name == "legacy-monolith",
                "setup_status": "COMPLETE" if i < 3 else "NOT_STARTED",
                "language": language,
            }
        )
    return repos


def _integrations() -> list[dict[str, Any]]:
    return [
        {"integration_type": "github", "active": True, "token_id": None, "installation_id": 9001,
         "metadata": {"account": "emulated-org"}},
        {"integration_type": "slack", "active": True, "token_id": 9101, "installation_id": None,
         "metadata": {"team": "Emulated"}},
        {"integration_type": "linear", "active": True, "token_id": 9102, "installation_id": None,
         "metadata": None},
        {"integration_type": "jira", "active": False, "token_id": None, "installation_id": None,
         "metadata": None},
        {"integration_type": "notion", "active": False, "token_id": None, "installation_id": None,
         "metadata": None},
    ]  # fmt: skip


def _mcp_providers() -> list[dict[str, Any]]:
    def provider(pid: int, name: str, host: str) -> dict[str, Any]:
        return {
            "id": pid,
            "name": name,
            "issuer": f"https://{host}",
            "authorization_endpoint": f"https://{host}/oauth/authorize",
            "token_endpoint": f"https://{host}/oauth/token",
            "default_scopes": ["read", "write"],
            "is_mcp": True,
            "meta": {"display_name": name.title()},
        }

    return [provider(1, "linear", "linear.app"), provider(2, "notion", "notion.so")]


class Store:
    """The organization, its users, repositories, integrations and agent runs."""

    def __init__(self, *, org_id: int, clock: Clock, lifecycle: LifecycleConfig) -> None:
        self.lock = threading.Lock()
        self.clock = clock
        self.lifecycle = lifecycle
        owner = "emulated-org"
        self.org: dict[str, Any] = {
            "id": org_id,
            "name": f"Emulated Org {org_id}",
            "settings": {"enable_pr_creation": True, "enable_rules_detection": True},
        }
        self.users = _users(org_id)
        self.users_by_id = {u["id"]: u for u in self.users}
        self.caller = self.users[0]
        self.repos = _repos(org_id, owner)
        self.repos_by_id = {r["id"]: r for r in self.repos}
        self.repos_by_name = {r["full_name"]: r for r in self.repos}
        self.integrations = _integrations()
        self.mcp_providers = _mcp_providers()
        self.oauth_tokens: dict[str, bool] = {"linear": True, "notion": True, "github": False}
        self.sandboxes: dict[int, bool] = {301: True, 302: False}  # id -> has logs
        self.check_suite: dict[int, dict[str, Any]] = {}
        self.prs: dict[int, dict[str, Any]] = {}
        for i, (repo, title) in enumerate(((501, "Add CI workflow"), (502, "Fix login redirect"))):
            self.prs[7001 + i] = {
                "id": 7001 + i,
                "repo_id": repo,
                "number": 11 + i,
                "title": title,
                "state": "open",
                "url": f"https://github.com/{self.repos_by_id[repo]['full_name']}/pull/{11 + i}",
            }
        self.cli_rules = {
            "organization_rules": "Keep changes small and covered by tests.",
            "user_custom_prompt": "Prefer clear names over comments.",
        }
        self.runs: dict[int, Run] = {}
        self.run_order: list[Run] = []
        self._next_run_id = 1001
        self._tokens: dict[str, int] = {}
        self.counts = Counts()

    # -- counters ---------------------------------------------------------------

    def count_request(self, route: str) -> None:
        with self.lock:
            by_route = self.counts.requests_by_route
            by_route[route] = by_route.get(route, 0) + 1

    def count_rate_limited(self) -> None:
        with self.lock:
            self.counts.rate_limited += 1

    def reset_counts(self) -> None:
        with self.lock:
            self.counts = Counts()

    # -- runs -------------------------------------------------------------------

    def create_run(
        self,
        prompt: str,
        *,
        user_id: int,
        source_type: str,
        metadata: dict[str, Any] | None = None,
        images: list[str] | None = None,
        repo_id: int | None = None,
        model: str | None = None,
        agent_type: str | None = None,
        list_delay: float = 0.0,
        counted: bool = True,
    ) -> Run:
        """Store a new run starting now; raise NotFound("repo") for an unknown repo_id."""
        if repo_id is not None and repo_id not in self.repos_by_id:
            raise NotFound("repo")
        repo_name = None if repo_id is None else self.repos_by_id[repo_id]["full_name"]
        with self.lock:
            now = self.clock.now()
            run_id = self._next_run_id
            self._next_run_id += 1
            leg = plan_leg(run_id, 0, prompt, now, self.lifecycle, self.clock)
            run = Run(
                id=run_id,
                organization_id=self.org["id"],
                user_id=user_id,
                source_type=source_type,
                created_at=now,
                created_at_iso=self.clock.iso(now),
                web_url=f"{_WEB}/agent/trace/{run_id}",
                metadata=metadata,
                images=images,
                repo_id=repo_id,
                repo_full_name=repo_name,
                model=model,
                agent_type=agent_type,
                legs=[leg],
                list_visible_at=now + list_delay,
            )
            self.runs[run_id] = run
            self.run_order.append(run)
            if counted:
                self.counts.runs_created += 1
            self._note_token(metadata)
            return run

    def _note_token(self, metadata: dict[str, Any] | None) -> None:
        token = None if metadata is None else metadata.get(IDEMPOTENCY_METADATA_KEY)
        if token is None:
            return
        key = repr(token)
        seen = self._tokens.get(key, 0)
        if seen:
            self.counts.duplicate_creates += 1
        self._tokens[key] = seen + 1

    def get_run(self, run_id: int) -> Run:
        run = self.runs.get(run_id)
        if run is None:
            raise NotFound("run")
        return run

    def list_runs(self, user_id: int | None, source_type: str | None) -> list[Run]:
        """Listed runs, newest first, filtered; hidden ones (list_delay) left out."""
        now = self.clock.now()
        with self.lock:
            return [
                r
                for r in reversed(self.run_order)
                if r.list_visible_at <= now
                and (user_id is None or r.user_id == user_id)
                and (source_type is None or r.source_type == source_type)
            ]

    def resume_run(self, run_id: int, prompt: str) -> Run:
        """Start a new leg on a finished run; Conflict if it is still going."""
        with self.lock:
            run = self.get_run(run_id)
            now = self.clock.now()
            status = run.status(now)
            if not run.is_terminal(now):
                raise Conflict(f"agent run {run_id} is {status}; only a finished run can resume")
            run.legs.append(
                plan_leg(run.id, len(run.legs), prompt, now, self.lifecycle, self.clock)
            )
            run.cache = None
            return run

    def stop_run(self, run_id: int, *, ban: bool | None) -> Run:
        """Stop a run still going (status CANCELLED); `ban` sets or clears the PR flag."""
        with self.lock:
            run = self.get_run(run_id)
            now = self.clock.now()
            if ban is not False and not run.is_terminal(now):
                run.legs[-1].stopped_at = now
            if ban is not None:
                run.checks_banned = ban
            run.cache = None
            return run

    # -- other areas ------------------------------------------------------------

    def check_suite_settings(self, repo_id: int) -> dict[str, Any]:
        """A repository's check-suite settings, defaults until first changed. Any id
        is accepted: the spec documents no 404 here."""
        with self.lock:
            settings = self.check_suite.get(repo_id)
            if settings is None:
                settings = self.check_suite[repo_id] = {
                    "check_retry_count": 3,
                    "ignored_checks": [],
                    "check_retry_counts": {},
                    "custom_prompts": {},
                    "high_priority_apps": [],
                    "available_check_suite_names": list(_CHECK_SUITE_NAMES),
                }
            return copy.deepcopy(settings)

    def update_check_suite_settings(self, repo_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        self.check_suite_settings(repo_id)
        with self.lock:
            settings = self.check_suite[repo_id]
            settings.update({k: v for k, v in changes.items() if v is not None})
            return copy.deepcopy(settings)

    def edit_pr(self, pr_id: int, state: str, repo_id: int | None) -> dict[str, Any]:
        """Set a pull request's state; NotFound("pr") when it does not exist (in the repo)."""
        with self.lock:
            pr = self.prs.get(pr_id) or self._pr_of_run(pr_id)
            if pr is None or (repo_id is not None and pr["repo_id"] != repo_id):
                raise NotFound("pr")
            pr["state"] = "open" if state == "ready_for_review" else state
            return dict(pr)

    def _pr_of_run(self, pr_id: int) -> dict[str, Any] | None:
        run = self.runs.get(pr_id - pr_id_for(0))
        if run is None or run.repo_id is None or run.status(self.clock.now()) != "COMPLETE":
            return None
        pr = self.prs[pr_id] = {
            "id": pr_id,
            "repo_id": run.repo_id,
            "number": run.id,
            "title": f"Changes from agent run {run.id}",
            "state": "open",
            "url": f"https://github.com/{run.repo_full_name}/pull/{run.id}",
        }
        return pr

    def revoke_oauth(self, provider: str) -> int:
        """Mark the caller's tokens for `provider` inactive; return how many were active."""
        with self.lock:
            active = self.oauth_tokens.get(provider, False)
            if provider in self.oauth_tokens:
                self.oauth_tokens[provider] = False
            return int(active)

    def active_oauth_providers(self) -> list[str]:
        with self.lock:
            return sorted(p for p, active in self.oauth_tokens.items() if active)

    def slack_token(self, user_id: int) -> str:
        with self.lock:
            n = len(self.runs)
        digest = hashlib.sha256(f"{user_id}:{self.clock.now()}:{n}".encode()).hexdigest()
        return f"slk-{digest[:24]}"
