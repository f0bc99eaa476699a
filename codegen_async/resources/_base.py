"""What every resource holds: the client's pipeline and its organization."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .._http import Pipeline

__all__ = ["Resource"]


class Resource:
    """A thin group of operations: build the request, call the pipeline, return a model."""

    __slots__ = ("_http", "_org_id")

    def __init__(self, http: Pipeline, org_id: Callable[[], Awaitable[int]]) -> None:
        self._http = http
        self._org_id = org_id

    async def _org_path(self, suffix: str) -> str:
        """`/v1/organizations/{org_id}` + suffix, with the client's organization."""
        return f"/v1/organizations/{await self._org_id()}{suffix}"
