"""The legacy function endpoint: run a named function (codemod) on a repository."""

from __future__ import annotations

from collections.abc import Iterable

import anyio
import attrs

from .. import _errors, _validate
from .. import _operations as ops
from .._resource import Resource
from ..models import FunctionResult

__all__ = ["FunctionOutcome", "Functions"]


@attrs.frozen
class FunctionOutcome:
    """What became of one repository of `functions.run_many`: its result, or the error."""

    index: int
    repo_full_name: str
    result: FunctionResult | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """True when the function ran and reported success."""
        return self.result is not None and self.result.success

    def unwrap(self) -> FunctionResult:
        """The result, or raise the error that kept it from one."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class Functions(Resource):
    __slots__ = ()

    async def run(
        self, name: str, *, repo_full_name: str, message: str | None = None
    ) -> FunctionResult:
        """Run function `name` on `repo_full_name` ("owner/repo") through `POST /v1/run`."""
        body = _body(name, repo_full_name, message)
        return await self._call(ops.LEGACY_RUN, json_body=body)

    async def run_many(
        self,
        name: str,
        repo_full_names: Iterable[str],
        *,
        message: str | None = None,
        max_concurrency: int = 5,
    ) -> list[FunctionOutcome]:
        """Run function `name` on every repository, at most `max_concurrency` at a time.

        One `FunctionOutcome` per repository, in the order given; a failure on one
        repository is its outcome's `error` and does not stop the others. Every argument
        is checked before anything is sent.
        """
        if isinstance(repo_full_names, str):
            raise TypeError("repo_full_names must be an iterable of 'owner/repo' names, not a str")
        repos = list(repo_full_names)
        for index, repo in enumerate(repos):
            try:
                _body(name, repo, message)
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"repo_full_names[{index}]: {exc}") from None
        _validate.positive_int("max_concurrency", max_concurrency)
        outcomes: list[FunctionOutcome] = []
        todo = iter(enumerate(repos))

        async def worker() -> None:
            for index, repo in todo:
                try:
                    result = await self.run(name, repo_full_name=repo, message=message)
                except _errors.CodegenError as exc:
                    outcomes.append(FunctionOutcome(index, repo, error=exc))
                else:
                    outcomes.append(FunctionOutcome(index, repo, result=result))

        async with anyio.create_task_group() as tg:
            for _ in range(min(max_concurrency, len(repos))):
                tg.start_soon(worker)
        return sorted(outcomes, key=lambda outcome: outcome.index)


def _body(name: str, repo_full_name: str, message: str | None) -> dict[str, str | None]:
    note = None if message is None else _validate.text("message", message, allow_empty=True)
    body = {
        "codemod_name": _validate.text("name", name),
        "repo_full_name": _validate.text("repo_full_name", repo_full_name),
        "message": note,
    }
    if "/" not in repo_full_name.strip("/"):
        raise ValueError(f"repo_full_name must look like 'owner/repo', got {repo_full_name!r}")
    return body
