"""The organization's integrations (GitHub, Slack, Linear, ...)."""

from __future__ import annotations

from ..models import OrganizationIntegrations
from ._base import Resource

__all__ = ["Integrations"]


class Integrations(Resource):
    __slots__ = ()

    async def get(self) -> OrganizationIntegrations:
        """Every integration of the organization, with its status."""
        path = await self._org_path("/integrations")
        return await self._http.call("GET", path, OrganizationIntegrations)
