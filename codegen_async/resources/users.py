"""Users of the organization, and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator

from .. import _operations as ops
from .. import _validate
from .._pagination import MAX_PAGE_SIZE, check_page_args, paginate
from .._resource import Resource
from ..models import Page, User

__all__ = ["Users"]


class Users(Resource):
    __slots__ = ()

    async def me(self) -> User:
        """The user the API key belongs to."""
        return await self._call(ops.GET_CURRENT_USER_INFO)

    async def get(self, user_id: int) -> User:
        """One user of the organization."""
        user_id = _validate.positive_int("user_id", user_id)
        return await self._call(ops.GET_USER, user_id=user_id)

    async def list_page(self, *, skip: int = 0, limit: int = MAX_PAGE_SIZE) -> Page[User]:
        """One page of the organization's users, with `total` and `pages`."""
        check_page_args(skip, limit)
        return await self._call(ops.GET_USERS, params={"skip": skip, "limit": limit})

    def list(self) -> AsyncIterator[User]:
        """Every user of the organization, page by page."""
        return paginate(lambda skip, limit: self.list_page(skip=skip, limit=limit))
