"""Pull requests opened by agents."""

from __future__ import annotations

from typing import get_args

from .. import _operations as ops
from .. import _validate
from .._resource import Resource
from ..models import EditPRResult, PRState

__all__ = ["PullRequests"]


def _state_body(value: object) -> dict[str, str]:
    states = get_args(PRState)
    if value not in states:
        raise ValueError(f"state must be one of {', '.join(states)}, got {value!r}")
    return {"state": str(value)}


class PullRequests(Resource):
    __slots__ = ()

    async def edit(self, pr_id: int, *, state: PRState) -> EditPRResult:
        """Set a pull request's state (open, closed, draft, ready_for_review)."""
        pr_id = _validate.positive_int("pr_id", pr_id)
        return await self._call(
            ops.EDIT_PULL_REQUEST_SIMPLE, json_body=_state_body(state), pr_id=pr_id
        )

    async def edit_in_repo(self, repo_id: int, pr_id: int, *, state: PRState) -> EditPRResult:
        """Set a pull request's state, addressed by repository and pull request."""
        repo_id = _validate.positive_int("repo_id", repo_id)
        pr_id = _validate.positive_int("pr_id", pr_id)
        return await self._call(
            ops.EDIT_PULL_REQUEST, json_body=_state_body(state), repo_id=repo_id, pr_id=pr_id
        )
