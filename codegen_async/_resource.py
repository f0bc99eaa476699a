"""What every resource holds: the client's pipeline and its organization."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from ._http import Pipeline, Request
from ._operations import Operation

__all__ = ["Organization", "Resource"]

T = TypeVar("T")


class Organization(Protocol):
    """Where a resource learns the id of the organization it works in (the client's
    shared state: as configured, else the caller's first, resolved once)."""

    async def organization_id(self) -> int: ...


class Resource:
    """A thin group of operations: build the request, call the pipeline, return a model."""

    __slots__ = ("_http", "_org")

    def __init__(self, http: Pipeline, org: Organization) -> None:
        self._http = http
        self._org = org

    async def _org_id(self) -> int:
        return await self._org.organization_id()

    async def _call(
        self,
        op: Operation[T],
        *,
        params: Mapping[str, Any] | None = None,
        json_body: object = None,
        on_send: Callable[[], object] | None = None,
        **path_params: object,
    ) -> T:
        """Send `op` through the pipeline: one `Request` with its path (the template filled
        with `path_params` and, when it names one not given, the client's organization),
        the query and the body; the row says the rest (rate class, retry rule, model)."""
        if op.in_org and "org_id" not in path_params:
            path_params["org_id"] = await self._org.organization_id()
        request = Request(
            op.method, op.url(**path_params), params=params, json=json_body, on_send=on_send
        )
        return await self._http.send(op, request)
