"""Sandbox log analysis (an agent run of its own)."""

from __future__ import annotations

from .. import _operations as ops
from .. import _validate
from .._resource import Resource
from ..models import LogAnalysis

__all__ = ["Sandbox"]


class Sandbox(Resource):
    __slots__ = ()

    async def analyze_logs(self, sandbox_id: int) -> LogAnalysis:
        """Start an agent that reads the sandbox's setup logs and explains what failed."""
        sandbox_id = _validate.positive_int("sandbox_id", sandbox_id)
        return await self._call(ops.ANALYZE_SANDBOX_LOGS, sandbox_id=sandbox_id)
