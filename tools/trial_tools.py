"""``list_trials``: what a research context has tried, its budget and its holdout looks."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from quantdesk.tools.envelope import ToolModel
from quantdesk.tools.guardrails import ToolRun, resolve_as_of
from quantdesk.tools.inputs import ToolInput
from quantdesk.tools.outputs import TrialSummary
from quantdesk.tools.registry import tool

__all__ = [
    "ContextSummary",
    "HoldoutLook",
    "ListTrialsInput",
    "ListTrialsOutput",
    "list_trials",
]


class ListTrialsInput(ToolInput):
    """Request of ``list_trials``.

    Attributes:
        kind: Only trials of this kind; omitted: all.
        limit: Most recent trials listed (1-500); counts always cover every trial.
    """

    kind: Literal["backtest", "cv", "walk_forward", "study", "other"] | None = None
    limit: int = Field(default=100, ge=1, le=500)


class ContextSummary(ToolModel):
    """A research context as tools see it."""

    id: str
    name: str
    as_of: date | None
    holdout_start: date | None
    holdout_end: date | None
    trial_budget: int
    trials_used: int
    trials_remaining: int
    notes: str


class HoldoutLook(ToolModel):
    """One recorded evaluation of the holdout."""

    hypothesis: str
    status: str
    started_at: str
    summary: dict[str, object]


class ListTrialsOutput(ToolModel):
    """The context, its trials (most recent last) and its holdout evaluations.

    Attributes:
        context: The research context with its budget use.
        n_trials: Trials matching ``kind`` (all of them, not only those listed).
        trials: The last ``limit`` of them, in recording order.
        best_trial_id: Trial with the highest annualised Sharpe among all matching ones.
        holdout_evaluations: Every look at the holdout, with its outcome.
    """

    context: ContextSummary
    n_trials: int
    trials: list[TrialSummary]
    best_trial_id: str | None
    holdout_evaluations: list[HoldoutLook]


@tool(
    "list_trials",
    summary="List the trials of a research context, its trial budget and holdout looks.",
    description="Use to see how many configurations were tried (every CV and backtest is a "
    "trial), how much of the budget is left, which trial ids exist for deflated_sharpe, pbo "
    "and risk_report, and whether a hypothesis was already evaluated on the holdout.",
    input_model=ListTrialsInput,
    output_model=ListTrialsOutput,
    guardrails=(),
    reads_data=False,
    example={"kind": "cv", "limit": 20},
)
def list_trials(inputs: ListTrialsInput, run: ToolRun) -> ListTrialsOutput:
    """Read the registry of the research context."""
    from quantdesk.quant_core.research_context import holdout_evaluations
    from quantdesk.quant_core.trials import TrialRegistry

    resolve_as_of(run, inputs.as_of, required=False)
    ctx = run.context
    registry = TrialRegistry(ctx.registry)
    records = registry.trials(ctx, kind=inputs.kind)
    used = registry.count(ctx)
    best = max(records, key=lambda r: r.sr_annualised, default=None)
    looks = holdout_evaluations(ctx) if ctx.has_holdout else []
    return ListTrialsOutput(
        context=ContextSummary(
            id=ctx.id,
            name=ctx.name,
            as_of=ctx.as_of,
            holdout_start=ctx.holdout_start,
            holdout_end=ctx.holdout_end,
            trial_budget=ctx.trial_budget,
            trials_used=used,
            trials_remaining=max(0, ctx.trial_budget - used),
            notes=ctx.notes,
        ),
        n_trials=len(records),
        trials=[TrialSummary.of(r) for r in records[-inputs.limit :]],
        best_trial_id=None if best is None else best.trial_id,
        holdout_evaluations=[
            HoldoutLook(
                hypothesis=e.hypothesis,
                status=e.status,
                started_at=e.started_at.isoformat(),
                summary=e.summary,
            )
            for e in looks
        ],
    )
