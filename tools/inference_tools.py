"""Inference tools: ``deflated_sharpe`` and ``pbo``, both read from the trial registry.

The deflation is never optional: N and the variance of the trial Sharpes always come from the
research context's recorded trials (a candidate that is not recorded counts as one more
trial, because looking at it is a trial too), so N can never be set below what was tried.
"""

from __future__ import annotations

import math
import statistics
from datetime import date
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from quantdesk.tools.envelope import ToolInputError, ToolModel
from quantdesk.tools.guardrails import (
    ToolRun,
    check_trial_dates,
    context_trial,
    resolve_as_of,
    touches_holdout,
)
from quantdesk.tools.inputs import ToolInput
from quantdesk.tools.outputs import DeflatedSharpe, TrialSummary, finite
from quantdesk.tools.registry import tool

if TYPE_CHECKING:
    from quantdesk.quant_core.research_context import ResearchContext
    from quantdesk.quant_core.sharpe_inference import DSRResult

__all__ = [
    "DeflatedSharpeInput",
    "DeflatedSharpeOutput",
    "PBOInput",
    "PBOOutput",
    "SharpeStats",
    "TrialId",
    "deflated_sharpe",
    "pbo",
    "recorded_sharpes",
]

TrialId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# A simple return lies above -100%; above +10,000% a period's return is a data error.
Return = Annotated[float, Field(gt=-1.0, le=100.0)]
_ANNUAL = 252


class SharpeStats(ToolModel):
    """A Sharpe ratio given by its statistics instead of a return series.

    Attributes:
        sharpe: The observed Sharpe ratio.
        units: ``annualized`` (x sqrt 252) or ``per_period`` (daily mean / std).
        n_obs: Daily returns behind it.
        skew: Skewness of the returns (0 for normal).
        kurtosis: RAW kurtosis of the returns (normal = 3, not excess).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    sharpe: float = Field(ge=-100.0, le=100.0)
    units: Literal["annualized", "per_period"] = "annualized"
    n_obs: int = Field(ge=2, le=10_000_000)
    skew: float = Field(default=0.0, ge=-100.0, le=100.0)
    kurtosis: float = Field(default=3.0, ge=1.0, le=10_000.0)


class DeflatedSharpeInput(ToolInput):
    """Request of ``deflated_sharpe``: exactly one of ``trial_id``, ``returns``, ``stats``.

    Attributes:
        trial_id: A recorded trial of the research context.
        returns: Daily simple returns of a candidate that is not recorded (counts as one
            more trial).
        stats: A candidate's Sharpe ratio, sample size and moments (counts as one more trial).
    """

    trial_id: TrialId | None = None
    returns: list[Return] | None = Field(default=None, min_length=2, max_length=50_000)
    stats: SharpeStats | None = None


class DeflatedSharpeOutput(ToolModel):
    """The deflated Sharpe ratio and what it was deflated by.

    Attributes:
        source: ``trial``, ``returns`` or ``stats``.
        trial: The trial, when one was named.
        recorded_trials: Trials recorded in the research context.
        candidate_counted: Whether an unrecorded candidate was added to N.
        deflated_sharpe: The DSR and its inputs.
        verdict: One sentence for a report.
    """

    source: Literal["trial", "returns", "stats"]
    trial: TrialSummary | None
    recorded_trials: int
    candidate_counted: bool
    deflated_sharpe: DeflatedSharpe
    verdict: str


def _verdict(d: DeflatedSharpe) -> str:
    sr = "n/a" if d.sharpe_annualised is None else f"{d.sharpe_annualised:+.2f}"
    bar = "n/a" if d.sr0_annualised is None else f"{d.sr0_annualised:.2f}"
    dsr = "n/a" if d.dsr is None else f"{d.dsr:.3f}"
    judged = "significant at 0.95" if d.passes_0_95 else "not significant at 0.95"
    return (
        f"Annualised Sharpe {sr} against an expected best-of-{d.n_trials:g} null Sharpe of "
        f"{bar}: DSR {dsr}, {judged}."
    )


@tool(
    "deflated_sharpe",
    summary="Deflated Sharpe ratio of a trial or candidate, given every trial of its context.",
    description="Give a recorded trial_id, a candidate's daily returns, or its Sharpe stats. "
    "N and the variance of the trial Sharpes come from the research context's registry; an "
    "unrecorded candidate counts as one more trial. DSR >= 0.95 is the usual bar (Bailey & "
    "López de Prado 2014).",
    input_model=DeflatedSharpeInput,
    output_model=DeflatedSharpeOutput,
    guardrails=("as_of", "holdout", "multiple_testing"),
    reads_data=False,
    example={"stats": {"sharpe": 1.1, "units": "annualized", "n_obs": 1260}},
)
def deflated_sharpe(inputs: DeflatedSharpeInput, run: ToolRun) -> DeflatedSharpeOutput:
    """Deflate the given Sharpe ratio by the trials of the research context."""
    given = [k for k in ("trial_id", "returns", "stats") if getattr(inputs, k) is not None]
    if len(given) != 1:
        raise ToolInputError(
            given[1] if len(given) > 1 else "trial_id",
            f"Send exactly one of trial_id, returns or stats; got {given or 'none'}.",
            fix='e.g. {"trial_id": "<id from list_trials>"} or {"stats": {"sharpe": 1.1, '
            '"n_obs": 1260}}.',
        )
    as_of = resolve_as_of(run, inputs.as_of, required=False)
    trial = None
    if inputs.stats is not None:
        recorded = recorded_sharpes(run.context)
        result = _from_stats(inputs.stats, recorded)
        n_recorded = len(recorded)
    else:
        from quantdesk.quant_core.trials import TrialRegistry

        registry = TrialRegistry(run.context.registry)
        n_recorded = registry.count(run.context)
        if inputs.trial_id is not None:
            record = context_trial(registry, run, inputs.trial_id)
            check_trial_dates(run, [record], as_of)
            result = registry.deflated_sharpe(run.context, record)
            trial = TrialSummary.of(record)
        else:
            result = registry.deflated_sharpe(run.context, returns=inputs.returns)
    summary = DeflatedSharpe.of(result)
    counted = inputs.trial_id is None
    run.passed(
        "multiple_testing",
        f"deflated by N={summary.n_trials:g}: {n_recorded} recorded trial(s) of research "
        f"context {run.context.name!r}" + (" plus this unrecorded candidate." if counted else "."),
    )
    return DeflatedSharpeOutput(
        source="trial" if inputs.trial_id else ("returns" if inputs.returns else "stats"),
        trial=trial,
        recorded_trials=n_recorded,
        candidate_counted=counted,
        deflated_sharpe=summary,
        verdict=_verdict(summary),
    )


def recorded_sharpes(context: ResearchContext) -> list[float]:
    """Per-session Sharpe ratios of the context's search trials, in recording order.

    The values of ``[r.sr_per_session for r in TrialRegistry(ctx.registry).trials(ctx)]``
    (a test pins the two equal), read with one query: the trial registry module imports numpy
    and polars, which a Sharpe ratio given by its statistics does not otherwise need.
    """
    from contextlib import closing

    from quantdesk.quant_core.registry_db import connect_registry

    with closing(connect_registry(context.registry)) as conn:
        rows = conn.execute(
            # holdout evaluations are not trials of the search (TrialRegistry.trials)
            "SELECT sr_per_period, period_sessions FROM trials "
            "WHERE context_id = ? AND kind != 'holdout' ORDER BY number",
            (context.id,),
        ).fetchall()
    return [sr / math.sqrt(period) for sr, period in rows]


def _from_stats(stats: SharpeStats, recorded: list[float]) -> DSRResult:
    """DSR of explicit statistics; N and V include the candidate (per-session units)."""
    from quantdesk.quant_core.sharpe_inference import deflated_sharpe_ratio

    sr = stats.sharpe / math.sqrt(_ANNUAL) if stats.units == "annualized" else stats.sharpe
    sharpes = [*recorded, sr]
    return deflated_sharpe_ratio(
        sr=sr,
        n_obs=stats.n_obs,
        skew=stats.skew,
        kurtosis=stats.kurtosis,
        n_trials=len(sharpes),
        var_trial_sharpes=statistics.variance(sharpes) if len(sharpes) > 1 else None,
    )


class PBOInput(ToolInput):
    """Request of ``pbo``: the variants tried, as trial ids or an inline returns matrix.

    Attributes:
        trial_ids: Trials to compare (2-500); omitted with no ``returns``: every trial of
            the context of ``kind``.
        kind: Trial kind used when ``trial_ids`` is omitted.
        returns: Inline T x N matrix (rows = periods in time order, columns = variants).
        n_splits: Even number of blocks S (2-20; 16 in the paper).
        metric: ``sharpe`` or ``mean``.
    """

    trial_ids: list[TrialId] | None = Field(default=None, min_length=2, max_length=500)
    kind: Literal["backtest", "cv"] = "backtest"
    returns: list[Annotated[list[Return], Field(max_length=500)]] | None = Field(
        default=None, min_length=4, max_length=20_000
    )
    n_splits: int = Field(default=16, ge=2, le=20)
    metric: Literal["sharpe", "mean"] = "sharpe"


class PBOOutput(ToolModel):
    """Probability of backtest overfitting by CSCV (Bailey, Borwein, López de Prado & Zhu).

    Attributes:
        pbo: Share of splits whose in-sample best variant ranks at or below the
            out-of-sample median (0.5 for pure noise; lower is better).
        n_strategies: Variants compared.
        n_obs: Periods used.
        n_splits: Blocks S.
        n_combinations: In/out-of-sample splits evaluated.
        prob_oos_loss: Share of splits in which the selected variant loses out of sample.
        degradation_slope: Slope of out-of-sample on in-sample performance.
        strategy_names: Trial ids or ``s0, s1, ...``.
        first_date: First aligned date (trial input).
        last_date: Last aligned date (trial input).
    """

    pbo: float
    n_strategies: int
    n_obs: int
    n_splits: int
    n_combinations: int
    prob_oos_loss: float
    degradation_slope: float | None
    strategy_names: list[str]
    first_date: date | None
    last_date: date | None


@tool(
    "pbo",
    summary="Probability of backtest overfitting (CSCV) of the variants a search tried.",
    description="Compares the return series of the variants tried (recorded trials aligned "
    "on their common dates, or an inline matrix): how often does the in-sample winner fall "
    "to the bottom half out of sample? Near 0.5 means the selection is noise.",
    input_model=PBOInput,
    output_model=PBOOutput,
    guardrails=("as_of", "holdout"),
    reads_data=False,
    example={
        "returns": [
            [0.01, -0.02, 0.003],
            [0.0, 0.01, -0.004],
            [-0.01, 0.005, 0.002],
            [0.02, 0.0, -0.001],
            [0.004, -0.006, 0.01],
            [-0.003, 0.012, 0.0],
        ],
        "n_splits": 2,
    },
)
def pbo(inputs: PBOInput, run: ToolRun) -> PBOOutput:
    """Run CSCV on the trial series (or the inline matrix)."""
    import numpy as np

    from quantdesk.quant_core.overfitting import probability_of_backtest_overfitting
    from quantdesk.quant_core.trials import TrialRegistry

    as_of = resolve_as_of(run, inputs.as_of, required=False)
    first = last = None
    if inputs.returns is not None:
        if inputs.trial_ids is not None:
            raise ToolInputError("returns", "Send trial_ids or returns, not both.", fix="drop one.")
        widths = {len(row) for row in inputs.returns}
        if len(widths) != 1:
            raise ToolInputError(
                "returns",
                f"The rows of the returns matrix have different lengths {sorted(widths)[:5]}.",
                fix="send one row per period with one return per variant in every row.",
            )
        matrix: object = np.array(inputs.returns, dtype=np.float64)
    else:
        registry = TrialRegistry(run.context.registry)
        if inputs.trial_ids is not None:
            records = [context_trial(registry, run, t) for t in dict.fromkeys(inputs.trial_ids)]
        else:
            every = registry.trials(run.context, kind=inputs.kind)
            records = [r for r in every if not touches_holdout(run.context, r)]
            if len(records) < len(every):
                run.warn(
                    f"{len(every) - len(records)} trial(s) dated inside the holdout (holdout "
                    "evaluations) were left out."
                )
        if len(records) < 2:
            raise ToolInputError(
                "trial_ids",
                f"PBO compares at least 2 variants; {len(records)} trial(s) were found.",
                fix="record more trials of the search, or pass trial_ids of at least two.",
            )
        if len({r.period_sessions for r in records}) > 1 or any(
            r.first_date is None for r in records
        ):
            raise ToolInputError(
                "trial_ids",
                "The trials have different return periods or no dates, so they cannot be "
                "aligned period by period.",
                fix="compare trials of one kind (all backtests, or CV trials of one horizon).",
            )
        check_trial_dates(run, records, as_of)
        frames = [registry.returns(r).rename({"ret": r.trial_id}) for r in records]
        aligned = frames[0]
        for frame in frames[1:]:
            aligned = aligned.join(frame, on="date", how="inner")
        if aligned.height == 0:
            raise ToolInputError(
                "trial_ids", "The trials share no date.", fix="pick trials of the same period."
            )
        aligned = aligned.sort("date")
        first, last = aligned["date"].min(), aligned["date"].max()
        matrix = aligned
    result = probability_of_backtest_overfitting(matrix, inputs.n_splits, inputs.metric)
    return PBOOutput(
        pbo=result.pbo,
        n_strategies=result.n_strategies,
        n_obs=result.n_obs,
        n_splits=result.n_splits,
        n_combinations=result.n_combinations,
        prob_oos_loss=result.prob_oos_loss,
        degradation_slope=finite(result.degradation_slope),
        strategy_names=list(result.strategy_names),
        first_date=first,  # type: ignore[arg-type]
        last_date=last,  # type: ignore[arg-type]
    )
