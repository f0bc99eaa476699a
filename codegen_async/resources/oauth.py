"""The caller's OAuth connections."""

from __future__ import annotations

from typing import Any

from .. import _operations as ops
from .. import _validate
from .._resource import Resource

__all__ = ["OAuth"]


class OAuth(Resource):
    __slots__ = ()

    async def token_status(self) -> Any:
        """Which providers have an active OAuth token for the caller in the organization."""
        org_id = await self._org_id()
        return await self._call(ops.GET_OAUTH_TOKEN_STATUS, params={"org_id": org_id})

    async def revoke(self, provider: str) -> Any:
        """Disconnect every token of `provider` for the caller in the organization."""
        provider = _validate.text("provider", provider)
        org_id = await self._org_id()
        return await self._call(
            ops.REVOKE_OAUTH_TOKEN, params={"provider": provider, "org_id": org_id}
        )
