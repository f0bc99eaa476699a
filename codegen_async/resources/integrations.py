"""The organization's integrations (GitHub, Slack, Linear, ...)."""

from __future__ import annotations

from .. import _operations as ops
from .._resource import Resource
from ..models import OrganizationIntegrations

__all__ = ["Integrations"]


class Integrations(Resource):
    __slots__ = ()

    async def get(self) -> OrganizationIntegrations:
        """Every integration of the organization, with its status."""
        return await self._call(ops.GET_ORGANIZATION_INTEGRATIONS)
