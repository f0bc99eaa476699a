"""Organization rules and the caller's custom prompt, for CLI agents."""

from __future__ import annotations

from .. import _operations as ops
from .._resource import Resource
from ..models import CLIRules

__all__ = ["CLIRulesResource"]


class CLIRulesResource(Resource):
    __slots__ = ()

    async def get(self) -> CLIRules:
        """The rules agents should follow in this organization, and the caller's prompt."""
        return await self._call(ops.GET_CLI_RULES)
