"""`RunSpec`: the arguments of one run's create, written once.

`agent_runs.create`, `AsyncCodegen.run` and `multi_run` turn their keyword arguments into
a `RunSpec` on their first line; `agent_runs.create_spec`, the fan-out and `multi_run`'s
candidates and synthesis run pass specs on (derived with `attrs.evolve`). `create_body`
checks a spec and builds the create request's body from it: the one place both happen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from . import _validate
from .models import AgentType

__all__ = ["RunSpec", "create_body"]


def _images(value: Iterable[str] | None) -> Sequence[str] | None:
    """Images kept as given when a sequence (or not iterable at all: `create_body` then
    names the problem); any other iterable is read once, into a tuple, so a spec used
    for several runs sends the same images each time."""
    if value is None or isinstance(value, Sequence) or not isinstance(value, Iterable):
        return value
    return tuple(value)


@attrs.frozen
class RunSpec:
    """One run to start: a prompt and, optionally, where and how to run it."""

    prompt: str
    repo_id: int | None = None
    model: str | None = None
    agent_type: AgentType | None = None
    metadata: Mapping[str, Any] | None = None
    # data URIs, as for `agent_runs.create`
    images: Sequence[str] | None = attrs.field(default=None, converter=_images)


def create_body(spec: RunSpec) -> dict[str, Any]:
    """The create request's body for `spec`, every field checked first (`TypeError` or
    `ValueError` naming the field). Its `metadata` is always a fresh dict of its own."""
    if not isinstance(spec, RunSpec):
        raise TypeError(f"spec must be a RunSpec, got {type(spec).__name__}")
    body: dict[str, Any] = {"prompt": _validate.text("prompt", spec.prompt)}
    if spec.repo_id is not None:
        body["repo_id"] = _validate.positive_int("repo_id", spec.repo_id)
    if spec.model is not None:
        body["model"] = _validate.text("model", spec.model)
    if spec.agent_type is not None:
        body["agent_type"] = _validate.agent_type(spec.agent_type)
    if spec.images is not None:
        body["images"] = _validate.data_uris(spec.images)
    body["metadata"] = _validate.json_object("metadata", spec.metadata) or {}
    return body
