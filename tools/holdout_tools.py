"""``evaluate_holdout``: the final strategy on the locked holdout, once per hypothesis.

The tool runs the strategy (same fields as ``backtest``) through the holdout window inside
:func:`~quantdesk.quant_core.research_context.evaluate_holdout`, the only way to read holdout
data, and reports the performance of the holdout sessions alone. Everything that can be
checked without holdout data (the context has a holdout, the signal name, the costs) is
checked first, because the attempt counts from the moment the evaluation is registered: a
hypothesis is evaluated at most once per research context, even if the run then fails.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from quantdesk.tools.backtest_tools import (
    BacktestInput,
    PerformanceOutput,
    check_costs,
    performance_of,
    run_strategy,
)
from quantdesk.tools.envelope import ToolInputError, ToolModel, ToolRefusedError
from quantdesk.tools.guardrails import ToolRun, resolve_as_of, settle_data_validation
from quantdesk.tools.outputs import DeflatedSharpe, LookaheadSummary
from quantdesk.tools.pipeline import FeatureSetInput, resolve_feature_names
from quantdesk.tools.registry import tool

__all__ = ["EvaluateHoldoutInput", "EvaluateHoldoutOutput", "evaluate_holdout"]

_DEMO = {"kind": "demo", "seed": 7}

Hypothesis = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class EvaluateHoldoutInput(BacktestInput):
    """Request of ``evaluate_holdout``: the final strategy and the hypothesis it tests.

    Attributes:
        hypothesis: Name of the final hypothesis; each may be evaluated once per context.
        description: What the hypothesis claims.
        as_of: Last date of the evaluation; default: the holdout's end (or the context's
            as_of).
    """

    hypothesis: Hypothesis
    description: str = Field(default="", max_length=2000)


class EvaluateHoldoutOutput(ToolModel):
    """Performance of the strategy on the holdout sessions only.

    Attributes:
        hypothesis: The hypothesis evaluated.
        evaluation_id: Registry id of this (only) evaluation.
        holdout_start: First holdout date.
        holdout_end: Last holdout date evaluated.
        performance: Net performance over the holdout sessions.
        deflated_sharpe: Its DSR given the context's search trials (its ``psr`` is the
            single-test probability).
        lookahead: What the look-ahead check of the signal compared.
    """

    hypothesis: str
    evaluation_id: str
    holdout_start: date
    holdout_end: date
    performance: PerformanceOutput
    deflated_sharpe: DeflatedSharpe
    lookahead: LookaheadSummary


def _holdout_fields(run: ToolRun, requested: date | None) -> tuple[date, date]:
    ctx = run.context
    if not ctx.has_holdout:
        raise ToolInputError(
            "context",
            f"Research context {ctx.name!r} has no holdout window to evaluate on.",
            fix="run evaluate_holdout in a context created with a holdout window.",
        )
    as_of = requested or ctx.holdout_end or ctx.as_of
    if as_of is None:
        raise ToolInputError(
            "as_of",
            f"The holdout of {ctx.name!r} is open-ended and no as_of was given.",
            fix="send as_of: the last date to evaluate, YYYY-MM-DD.",
        )
    resolve_as_of(run, as_of)
    if as_of < ctx.holdout_start:  # type: ignore[operator]
        raise ToolInputError(
            "as_of",
            f"as_of={as_of} is before the holdout start {ctx.holdout_start}.",
            fix="send an as_of inside or after the holdout window.",
        )
    end = as_of if ctx.holdout_end is None else min(as_of, ctx.holdout_end)
    return ctx.holdout_start, end  # type: ignore[return-value]


@tool(
    "evaluate_holdout",
    summary="Evaluate the final strategy on the locked holdout, once per hypothesis.",
    description="The only way to read holdout data. Runs the strategy (same fields as "
    "backtest) through the holdout window and reports the performance of the holdout "
    "sessions alone. The attempt is registered before it runs: a hypothesis is evaluated at "
    "most once per research context, even if the run fails. Not a search trial.",
    input_model=EvaluateHoldoutInput,
    output_model=EvaluateHoldoutOutput,
    guardrails=("as_of", "holdout", "data_validation", "lookahead", "costs", "multiple_testing"),
    example={
        "context": "momentum-2019",
        "hypothesis": "12-1 momentum, weekly, dollar neutral",
        "source": _DEMO,
        "strategy": {"signal": "mom_252_21"},
    },
)
def evaluate_holdout(inputs: EvaluateHoldoutInput, run: ToolRun) -> EvaluateHoldoutOutput:
    """Run the strategy inside the holdout evaluation and summarise the holdout sessions."""
    import polars as pl

    from quantdesk.quant_core import research_context as rc
    from quantdesk.quant_core.errors import InputError
    from quantdesk.quant_core.trials import TrialRegistry

    start, end = _holdout_fields(run, inputs.as_of)
    resolve_feature_names(FeatureSetInput(names=[inputs.strategy.signal]), field="strategy.signal")
    check_costs(run, inputs.costs, inputs.gross_study)

    def evaluate() -> dict[str, Any]:
        try:
            done = run_strategy(
                run,
                inputs.source,
                inputs.strategy,
                inputs.costs,
                gross_study=inputs.gross_study,
                capital=inputs.capital,
                as_of=end,
                record=False,
            )
        finally:  # a validation verdict on holdout data belongs to this (counted) attempt
            settle_data_validation(run)
        window = done.result.returns.filter(pl.col("date").is_between(start, end))
        if window.height < 2:
            raise ToolInputError(
                "as_of",
                f"The backtest has {window.height} session(s) inside the holdout {start} to {end}.",
                fix="evaluate once the holdout holds enough sessions (or check the data's end).",
            )
        dsr = TrialRegistry(run.context.registry).deflated_sharpe(
            run.context, returns=window.select("date", "net")
        )
        if done.result.run is not None:
            run.warn(
                f"the backtest engine recorded this holdout run as trial "
                f"{done.result.run.trial.trial_id}; trial readers (deflated_sharpe, pbo, "
                "risk_report) refuse or skip it because its returns are in the holdout."
            )
        return {
            "performance": performance_of(window).model_dump(mode="json"),
            "deflated_sharpe": DeflatedSharpe.of(dsr).model_dump(mode="json"),
            "lookahead": LookaheadSummary.of(done.lookahead).model_dump(mode="json"),
        }

    try:
        record = rc.evaluate_holdout(
            run.context,
            inputs.hypothesis,
            evaluate,
            description=inputs.description,
            config=inputs.model_dump(mode="json", exclude={"context", "description"}),
        )
    except rc.HoldoutEvaluationFailedError as exc:
        cause = exc.__cause__
        counted = " The attempt is recorded and counts: this hypothesis cannot be evaluated again."
        if isinstance(cause, ToolRefusedError):
            raise ToolRefusedError(cause.guardrail, cause.message + counted, fix=exc.fix) from None
        if isinstance(cause, InputError):
            field = getattr(cause, "field", None)
            raise ToolInputError(field, cause.message + counted, fix=exc.fix) from None
        raise
    run.passed("holdout", f"holdout {start} to {end} read once, by evaluate_holdout.")
    summary = record.result or {}
    run.passed(
        "multiple_testing",
        "the holdout Sharpe is reported with its DSR against the context's search trials and "
        "its single-test PSR.",
    )
    return EvaluateHoldoutOutput(
        hypothesis=record.hypothesis,
        evaluation_id=record.evaluation_id,
        holdout_start=start,
        holdout_end=end,
        performance=PerformanceOutput.model_validate(summary["performance"]),
        deflated_sharpe=DeflatedSharpe.model_validate(summary["deflated_sharpe"]),
        lookahead=LookaheadSummary.model_validate(summary["lookahead"]),
    )
