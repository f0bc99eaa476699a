"""Repositories of the organization and their check-suite settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from .. import _operations as ops
from .. import _validate
from .._pagination import MAX_PAGE_SIZE, check_page_args, paginate
from .._resource import Resource
from ..models import CheckSuiteSettings, Page, Repository

__all__ = ["Repositories"]


class Repositories(Resource):
    __slots__ = ()

    async def list_page(self, *, skip: int = 0, limit: int = MAX_PAGE_SIZE) -> Page[Repository]:
        """One page of the organization's repositories."""
        check_page_args(skip, limit)
        return await self._call(ops.GET_REPOSITORIES, params={"skip": skip, "limit": limit})

    def list(self) -> AsyncIterator[Repository]:
        """Every repository of the organization."""
        return paginate(lambda skip, limit: self.list_page(skip=skip, limit=limit))

    async def get_check_suite_settings(self, repo_id: int) -> CheckSuiteSettings:
        """The repository's check-suite settings."""
        repo_id = _validate.positive_int("repo_id", repo_id)
        return await self._call(ops.GET_CHECK_SUITE_SETTINGS, params={"repo_id": repo_id})

    async def update_check_suite_settings(
        self,
        repo_id: int,
        *,
        check_retry_count: int | None = None,
        ignored_checks: Sequence[str] | None = None,
        check_retry_counts: Mapping[str, int] | None = None,
        custom_prompts: Mapping[str, str] | None = None,
        high_priority_apps: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Change the given settings (the others are left as they are); returns the API's answer."""
        repo_id = _validate.positive_int("repo_id", repo_id)
        if check_retry_count is not None and (
            not isinstance(check_retry_count, int)
            or isinstance(check_retry_count, bool)
            or not 0 <= check_retry_count <= 10
        ):
            raise ValueError(
                f"check_retry_count must be an int in 0..10, got {check_retry_count!r}"
            )
        body = {
            "check_retry_count": check_retry_count,
            "ignored_checks": None
            if ignored_checks is None
            else _validate.strings("ignored_checks", ignored_checks),
            "check_retry_counts": _validate.json_object("check_retry_counts", check_retry_counts),
            "custom_prompts": _validate.json_object("custom_prompts", custom_prompts),
            "high_priority_apps": None
            if high_priority_apps is None
            else _validate.strings("high_priority_apps", high_priority_apps),
        }
        return await self._call(
            ops.UPDATE_CHECK_SUITE_SETTINGS,
            params={"repo_id": repo_id},
            json_body={k: v for k, v in body.items() if v is not None},
        )
