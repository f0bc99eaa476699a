"""MCP providers known to Codegen."""

from __future__ import annotations

from .. import _operations as ops
from ..models import OAuthProvider
from ._base import Resource

__all__ = ["MCPProviders"]


class MCPProviders(Resource):
    __slots__ = ()

    async def list(self) -> list[OAuthProvider]:
        """Every OAuth provider that is an MCP provider."""
        return await self._call(ops.GET_MCP_PROVIDERS)
