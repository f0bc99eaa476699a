"""Organization rules and the caller's custom prompt, for CLI agents."""

from __future__ import annotations

from .._limits import RateClass
from ..models import CLIRules
from ._base import Resource

__all__ = ["CLIRulesResource"]


class CLIRulesResource(Resource):
    __slots__ = ()

    async def get(self) -> CLIRules:
        """The rules agents should follow in this organization, and the caller's prompt."""
        path = await self._org_path("/cli/rules")
        return await self._http.call("GET", path, CLIRules, rate_class=RateClass.CLI_RULES)
