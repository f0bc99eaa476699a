"""Users of the organization, and the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator

from .. import _validate
from .._pagination import check_page_args, paginate
from ..models import Page, User
from ._base import Resource

__all__ = ["Users"]


class Users(Resource):
    __slots__ = ()

    async def me(self) -> User:
        """The user the API key belongs to."""
        return await self._http.call("GET", "/v1/users/me", User)

    async def get(self, user_id: int) -> User:
        """One user of the organization."""
        user_id = _validate.positive_int("user_id", user_id)
        return await self._http.call("GET", await self._org_path(f"/users/{user_id}"), User)

    async def list_page(self, *, skip: int = 0, limit: int = 100) -> Page[User]:
        """One page of the organization's users, with `total` and `pages`."""
        check_page_args(skip, limit)
        path = await self._org_path("/users")
        return await self._http.call("GET", path, Page[User], params={"skip": skip, "limit": limit})

    def list(self) -> AsyncIterator[User]:
        """Every user of the organization, page by page."""
        return paginate(lambda skip, limit: self.list_page(skip=skip, limit=limit))
