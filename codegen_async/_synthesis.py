"""`multi_run`: several agents on one prompt, then one run that synthesizes their answers.

The candidates are one fan-out (`RunMany`) of the same spec, `concurrency` times, sharing
a group id in their metadata (role "candidate"). What comes out:

- `candidates`: the results of the candidates that ended COMPLETE with a result, in
  start order; `agent_runs`: every candidate run that was created and ended;
  `outcomes`: one `RunOutcome` per candidate, errors included.
- Two or more candidates and `synthesize=True`: one synthesis run (role "synthesis")
  gets the prompt built from the template; `final` is its result when it succeeds, else
  None (then `synthesis_error` or `synthesis_run.status` says why).
- Exactly one candidate: it is `final`; no synthesis run (there is nothing to combine).
- No candidate (every run failed): `final` is None, no synthesis run. If not a single
  candidate run could even be created, the first error is raised instead.
- `synthesize=False`: `final` is the first candidate.

`timeout` covers the candidates and the synthesis together. Cancelled during the
synthesis, `multi_run` accounts for the synthesis run like the fan-out does for its
candidates: a WARNING names it (its id once created, else its create's idempotency key,
which is also in `client.agent_runs.unconfirmed_creates` when the POST went out).
"""

from __future__ import annotations

import logging
import string
import uuid
from collections.abc import Callable, Iterable
from typing import Protocol

import anyio
import attrs

from . import _errors, _validate
from ._constants import GROUP_METADATA_KEY, ROLE_METADATA_KEY
from ._fanout import ProgressEvent, RunMany, RunOutcome
from ._runspec import RunSpec, create_body
from .models import AgentRun
from .resources.agent_runs import AgentRuns

__all__ = ["DEFAULT_SYNTHESIS_PROMPT", "MultiRunResult", "Runner", "check_template", "multi_run"]

logger = logging.getLogger("codegen_async")

DEFAULT_SYNTHESIS_PROMPT = """\
Several agents worked independently on the same task. Their answers follow.

The task:
{prompt}

The answers:
{candidates}

Compare the answers, keep what is correct and best in each, resolve where they \
disagree, and give the single best answer to the task."""

_PLACEHOLDERS = frozenset({"prompt", "candidates"})


class Runner(Protocol):
    """What `multi_run` runs on: the client's public `run_many` and `agent_runs`."""

    agent_runs: AgentRuns

    def run_many(
        self,
        items: Iterable[str | RunSpec],
        *,
        max_concurrency: int,
        timeout: float | None,
        on_progress: Callable[[ProgressEvent], object] | None,
    ) -> RunMany: ...


@attrs.frozen
class MultiRunResult:
    """What `multi_run` produced (see the module's rules)."""

    final: str | None
    candidates: list[str]
    agent_runs: list[AgentRun]
    synthesis_run: AgentRun | None
    group_id: str
    outcomes: list[RunOutcome]
    synthesis_error: Exception | None = None


def check_template(template: object) -> str:
    """A synthesis prompt template: a str with exactly the {prompt} and {candidates} fields."""
    if not isinstance(template, str):
        raise TypeError(f"synthesis_prompt must be a str, got {type(template).__name__}")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"synthesis_prompt is not a valid template: {exc}") from None
    unknown = fields - _PLACEHOLDERS
    if unknown:
        raise ValueError(
            f"synthesis_prompt has unknown placeholders {sorted(unknown)}; only {{prompt}} and "
            "{candidates} are filled in (write literal braces as {{ and }})"
        )
    missing = _PLACEHOLDERS - fields
    if missing:
        raise ValueError(f"synthesis_prompt must contain {{{min(missing)}}}")
    return template


def synthesis_text(template: str, prompt: str, candidates: list[str]) -> str:
    """The synthesis run's prompt: the template filled with the prompt and each candidate."""
    blocks = "\n\n".join(
        f"--- Answer {number} ---\n{text}" for number, text in enumerate(candidates, 1)
    )
    return template.format(prompt=prompt, candidates=blocks)


async def multi_run(
    client: Runner,
    spec: RunSpec,
    *,
    concurrency: int,
    synthesize: bool,
    synthesis_prompt: str | None,
    timeout: float | None,
    on_progress: Callable[[ProgressEvent], object] | None,
) -> MultiRunResult:
    """See `AsyncCodegen.multi_run`: `spec` is the task each candidate runs."""
    template = (
        DEFAULT_SYNTHESIS_PROMPT if synthesis_prompt is None else check_template(synthesis_prompt)
    )
    _validate.positive_int("concurrency", concurrency)
    _validate.strict_bool("synthesize", synthesize)
    create_body(spec)  # checked here, so its errors name the argument, not `items[0]`
    metadata = spec.metadata or {}
    candidate = attrs.evolve(spec, metadata={**metadata, ROLE_METADATA_KEY: "candidate"})
    started = anyio.current_time()
    fan_out = client.run_many(
        [candidate] * concurrency,
        max_concurrency=concurrency,
        timeout=timeout,
        on_progress=on_progress,
    )
    outcomes = await fan_out.gather()
    if not fan_out.created:
        error = outcomes[0].error
        assert error is not None
        raise error
    runs = [outcome.run for outcome in outcomes if outcome.run is not None]
    candidates = [run.result for run in runs if run.succeeded and run.result]
    result = MultiRunResult(
        final=candidates[0] if candidates else None,
        candidates=candidates,
        agent_runs=runs,
        synthesis_run=None,
        group_id=fan_out.group_id,
        outcomes=outcomes,
    )
    if not synthesize or len(candidates) < 2:
        return result
    remaining = None if timeout is None else started + timeout - anyio.current_time()
    if remaining is not None and remaining <= 0:
        error = _errors.WaitTimeoutError(f"no time left for the synthesis within {timeout}s")
        return attrs.evolve(result, final=None, synthesis_error=error)
    synthesis = attrs.evolve(
        spec,
        prompt=synthesis_text(template, spec.prompt, candidates),
        metadata={**metadata, GROUP_METADATA_KEY: fan_out.group_id, ROLE_METADATA_KEY: "synthesis"},
    )
    key = uuid.uuid4().hex
    created: AgentRun | None = None
    try:
        created = await client.agent_runs.create_spec(synthesis, idempotency_key=key)
        run = await client.agent_runs.wait(created, timeout=remaining)
    except _errors.WaitTimeoutError as exc:
        return attrs.evolve(result, final=None, synthesis_run=exc.run, synthesis_error=exc)
    except _errors.CodegenError as exc:
        return attrs.evolve(result, final=None, synthesis_run=created, synthesis_error=exc)
    except BaseException:  # cancelled (or interrupted): the synthesis run is not forgotten
        if created is not None:
            logger.warning(
                "multi_run %s left with its synthesis run still in flight: %s",
                fan_out.group_id,
                created.id,
            )
        elif any(u.idempotency_key == key for u in client.agent_runs.unconfirmed_creates):
            logger.warning(
                "multi_run %s left with its synthesis create of unknown outcome: %s",
                fan_out.group_id,
                key,
            )
        raise
    return attrs.evolve(result, final=run.result if run.succeeded else None, synthesis_run=run)
