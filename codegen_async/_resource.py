"""What every resource holds: the client's pipeline and its organization."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

from ._http import Pipeline
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
        """Send `op` through the pipeline: its method, its path (the template filled with
        `path_params` and, when it names one not given, the client's organization), its rate class
        and retry rule; decoded into its response model (free-form JSON when it has none)."""
        if op.in_org and "org_id" not in path_params:
            path_params["org_id"] = await self._org.organization_id()
        path = op.url(**path_params)
        if op.response is None:
            result: T = await self._http.call_json(
                op.method,
                path,
                params=params,
                json_body=json_body,
                rate_class=op.rate_class,
                retry=op.retry,
                template=op.path,
            )
            return result
        return await self._http.call(
            op.method,
            path,
            op.response,
            params=params,
            json_body=json_body,
            rate_class=op.rate_class,
            retry=op.retry,
            on_send=on_send,
            template=op.path,
        )
