"""Setup-command generation for a repository (an agent run of its own)."""

from __future__ import annotations

from .. import _operations as ops
from .. import _validate
from .._resource import Resource
from ..models import SetupCommandsResult

__all__ = ["SetupCommands"]


class SetupCommands(Resource):
    __slots__ = ()

    async def generate(
        self, repo_id: int, *, prompt: str | None = None, trigger_source: str = "setup-commands"
    ) -> SetupCommandsResult:
        """Start an agent that works out the repository's setup commands."""
        body: dict[str, object] = {
            "repo_id": _validate.positive_int("repo_id", repo_id),
            "trigger_source": _validate.text("trigger_source", trigger_source),
        }
        if prompt is not None:
            body["prompt"] = _validate.text("prompt", prompt)
        return await self._call(ops.GENERATE_SETUP_COMMANDS, json_body=body)
