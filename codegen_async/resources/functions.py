"""The legacy function endpoint: run a named function (codemod) on a repository."""

from __future__ import annotations

from .. import _validate
from ..models import FunctionResult
from ._base import Resource

__all__ = ["Functions"]


class Functions(Resource):
    __slots__ = ()

    async def run(
        self, name: str, *, repo_full_name: str, message: str | None = None
    ) -> FunctionResult:
        """Run function `name` on `repo_full_name` ("owner/repo") through `POST /v1/run`."""
        body = {
            "codemod_name": _validate.text("name", name),
            "repo_full_name": _validate.text("repo_full_name", repo_full_name),
            "message": None
            if message is None
            else _validate.text("message", message, allow_empty=True),
        }
        if "/" not in repo_full_name.strip("/"):
            raise ValueError(f"repo_full_name must look like 'owner/repo', got {repo_full_name!r}")
        return await self._http.call("POST", "/v1/run", FunctionResult, json_body=body)
