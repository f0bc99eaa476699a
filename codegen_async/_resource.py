"""What every resource holds: the client's pipeline and its organization."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ._http import Pipeline
from ._operations import Operation

__all__ = ["Resource"]

T = TypeVar("T")


class Resource:
    """A thin group of operations: build the request, call the pipeline, return a model."""

    __slots__ = ("_http", "_org_id")

    def __init__(self, http: Pipeline, org_id: Callable[[], Awaitable[int]]) -> None:
        self._http = http
        self._org_id = org_id

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
            path_params["org_id"] = await self._org_id()
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
