"""Organizations the caller belongs to."""

from __future__ import annotations

from collections.abc import AsyncIterator

from .._pagination import check_page_args, paginate
from ..models import Organization, Page
from ._base import Resource

__all__ = ["Organizations"]


class Organizations(Resource):
    __slots__ = ()

    async def list_page(self, *, skip: int = 0, limit: int = 100) -> Page[Organization]:
        """One page of the caller's organizations."""
        check_page_args(skip, limit)
        return await self._http.call(
            "GET", "/v1/organizations", Page[Organization], params={"skip": skip, "limit": limit}
        )

    def list(self) -> AsyncIterator[Organization]:
        """Every organization the caller belongs to."""
        return paginate(lambda skip, limit: self.list_page(skip=skip, limit=limit))
