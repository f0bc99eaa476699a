"""MCP providers known to Codegen."""

from __future__ import annotations

from .. import _operations as ops
from .._resource import Resource
from ..models import OAuthProvider

__all__ = ["MCPProviders"]


class MCPProviders(Resource):
    __slots__ = ()

    async def list(self) -> list[OAuthProvider]:
        """Every OAuth provider that is an MCP provider."""
        return await self._call(ops.GET_MCP_PROVIDERS)
