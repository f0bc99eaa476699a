"""Organizations the caller belongs to."""

from __future__ import annotations

from collections.abc import AsyncIterator

from .. import _operations as ops
from .._pagination import MAX_PAGE_SIZE, check_page_args, paginate
from .._resource import Resource
from ..models import Organization, Page

__all__ = ["Organizations"]


class Organizations(Resource):
    __slots__ = ()

    async def list_page(self, *, skip: int = 0, limit: int = MAX_PAGE_SIZE) -> Page[Organization]:
        """One page of the caller's organizations."""
        check_page_args(skip, limit)
        return await self._call(ops.GET_ORGANIZATIONS, params={"skip": skip, "limit": limit})

    def list(self) -> AsyncIterator[Organization]:
        """Every organization the caller belongs to."""
        return paginate(lambda skip, limit: self.list_page(skip=skip, limit=limit))
