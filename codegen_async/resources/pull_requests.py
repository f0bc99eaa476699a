"""Pull requests opened by agents."""

from __future__ import annotations

from typing import get_args

from .. import _validate
from .._http import RetryPolicy
from .._limits import RateClass
from ..models import EditPRResult, PRState
from ._base import Resource

__all__ = ["PullRequests"]


def _state(value: object) -> str:
    states = get_args(PRState)
    if value not in states:
        raise ValueError(f"state must be one of {', '.join(states)}, got {value!r}")
    return str(value)


class PullRequests(Resource):
    __slots__ = ()

    async def edit(self, pr_id: int, *, state: PRState) -> EditPRResult:
        """Set a pull request's state (open, closed, draft, ready_for_review)."""
        pr_id = _validate.positive_int("pr_id", pr_id)
        path = await self._org_path(f"/prs/{pr_id}")
        return await self._patch(path, state)

    async def edit_in_repo(self, repo_id: int, pr_id: int, *, state: PRState) -> EditPRResult:
        """Set a pull request's state, addressed by repository and pull request."""
        repo_id = _validate.positive_int("repo_id", repo_id)
        pr_id = _validate.positive_int("pr_id", pr_id)
        path = await self._org_path(f"/repos/{repo_id}/prs/{pr_id}")
        return await self._patch(path, state)

    async def _patch(self, path: str, state: object) -> EditPRResult:
        return await self._http.call(
            "PATCH",
            path,
            EditPRResult,
            json_body={"state": _state(state)},
            rate_class=RateClass.PR_EDIT,
            retry=RetryPolicy.IDEMPOTENT,
        )
