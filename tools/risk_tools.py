"""``risk_report``: drawdowns, VaR/CVaR, exposures, position sizing and kill-switch levels.

Sizing rules (documented in ``docs/tools.md``), with per-period mean ``mu`` and standard
deviation ``sigma`` of the strategy's returns and ``P`` periods a year:

* Kelly leverage ``mu / sigma**2`` (the growth-optimal leverage of a strategy with these
  moments, continuous approximation); the report uses a fraction of it (default a quarter),
  because the estimate of ``mu`` is noisy and full Kelly's drawdowns are deep;
* volatility targeting: leverage ``target_volatility / (sigma * sqrt(P))``;
* recommended leverage: the smallest of the two and ``max_leverage`` (0 when ``mu <= 0``).

Kill switches, for the book at the recommended leverage ``L``: stop when the drawdown reaches
``drawdown_multiple`` times the historical maximum drawdown (scaled by ``L``), or when one
period loses more than ``daily_loss_sigmas`` standard deviations (``L * k * sigma``).
"""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from quantdesk.tools.backtest_tools import (
    CostInput,
    PerformanceOutput,
    StrategyInput,
    run_strategy,
)
from quantdesk.tools.envelope import ToolInputError, ToolModel
from quantdesk.tools.guardrails import (
    ToolRun,
    check_trial_dates,
    context_trial,
    resolve_as_of,
)
from quantdesk.tools.inference_tools import TrialId
from quantdesk.tools.inputs import DataSource, ToolInput
from quantdesk.tools.outputs import DeflatedSharpe, TrialSummary, finite
from quantdesk.tools.registry import tool

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

__all__ = [
    "DrawdownEpisode",
    "ExposureSummary",
    "KillSwitch",
    "RiskReportInput",
    "RiskReportOutput",
    "Sizing",
    "TailRisk",
    "drawdown_episodes",
    "risk_report",
]


class RiskReportInput(ToolInput):
    """Request of ``risk_report``: a recorded trial, or a strategy to backtest.

    Attributes:
        trial_id: A recorded trial (returns only: no exposures).
        source: Prices for a strategy backtest (then ``strategy`` applies; exposures too).
        strategy: The strategy, as in ``backtest``.
        costs: Trading costs, as in ``backtest``.
        gross_study: As in ``backtest``.
        capital: As in ``backtest``.
        kelly_fraction: Fraction of the Kelly leverage used for sizing.
        target_volatility: Annual volatility the vol-targeted book aims at.
        max_leverage: Cap on the recommended leverage.
        drawdown_multiple: Kill switch at this multiple of the historical max drawdown.
        daily_loss_sigmas: Kill switch on a one-period loss of this many standard deviations.
        top_drawdowns: Drawdown episodes listed (0-20).
    """

    trial_id: TrialId | None = None
    source: DataSource | None = None
    strategy: StrategyInput = Field(default_factory=StrategyInput)
    costs: CostInput | None = None
    gross_study: bool = False
    capital: float | None = Field(default=None, gt=0.0, le=1e13)
    kelly_fraction: float = Field(default=0.25, gt=0.0, le=1.0)
    target_volatility: float = Field(default=0.10, gt=0.0, le=1.0)
    max_leverage: float = Field(default=2.0, gt=0.0, le=10.0)
    drawdown_multiple: float = Field(default=1.5, ge=1.0, le=5.0)
    daily_loss_sigmas: float = Field(default=4.0, ge=1.0, le=20.0)
    top_drawdowns: int = Field(default=5, ge=0, le=20)


class DrawdownEpisode(ToolModel):
    """One peak-to-recovery episode (``recovery`` is ``None`` while it lasts)."""

    peak: date
    trough: date
    recovery: date | None
    depth: float
    sessions_to_trough: int
    sessions_to_recovery: int | None


class TailRisk(ToolModel):
    """Historical and Gaussian value at risk and expected shortfall (returns; negative)."""

    var_95: float | None
    cvar_95: float | None
    var_99: float | None
    cvar_99: float | None
    gaussian_var_99: float | None


class ExposureSummary(ToolModel):
    """Exposures of the backtested book (weights as fractions of capital)."""

    mean_gross: float | None
    max_gross: float | None
    mean_net: float | None
    mean_long: float | None
    mean_short: float | None
    mean_positions: float | None
    max_abs_weight: float | None
    annual_turnover: float | None


class Sizing(ToolModel):
    """Position sizing from the return moments (see the module docstring)."""

    periods_per_year: int
    annual_volatility: float | None
    kelly_leverage: float | None
    fractional_kelly_leverage: float | None
    vol_target_leverage: float | None
    recommended_leverage: float


class KillSwitch(ToolModel):
    """Stop-trading thresholds for the book at the recommended leverage (losses positive)."""

    leverage: float
    max_drawdown_limit: float | None
    period_loss_limit: float | None
    rule: str


class RiskReportOutput(ToolModel):
    """Risk of a strategy or trial.

    Attributes:
        source: ``trial`` or ``strategy``.
        performance: Headline performance of the returns.
        current_drawdown: Drawdown at the last date (0 at a new high).
        drawdowns: The deepest episodes, deepest first.
        tail: VaR/CVaR per period.
        exposures: Book exposures (strategy input only).
        sizing: Kelly, volatility target and the recommended leverage.
        kill_switch: Stop-trading thresholds.
        trial: The trial the returns belong to.
        deflated_sharpe: DSR of that trial given every trial of the context.
    """

    source: Literal["trial", "strategy"]
    performance: PerformanceOutput
    current_drawdown: float | None
    drawdowns: list[DrawdownEpisode]
    tail: TailRisk
    exposures: ExposureSummary | None
    sizing: Sizing
    kill_switch: KillSwitch
    trial: TrialSummary | None
    deflated_sharpe: DeflatedSharpe | None


def drawdown_episodes(dates: np.ndarray, returns: np.ndarray) -> list[DrawdownEpisode]:
    """Split a return series into peak-to-recovery drawdown episodes, deepest first.

    Wealth starts at 1 before the first return (a loss on day one is a drawdown from 1).
    """
    import numpy as np

    wealth = np.cumprod(1.0 + returns)
    peak = np.maximum.accumulate(np.concatenate([[1.0], wealth]))[1:]
    under = wealth < peak
    episodes: list[DrawdownEpisode] = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], under.astype(np.int8), [0]])))
    days = [d.astype("datetime64[D]").item() for d in dates]
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        dd = wealth[start:stop] / peak[start:stop] - 1.0
        trough = start + int(np.argmin(dd))
        peak_at = max(start - 1, 0)
        episodes.append(
            DrawdownEpisode(
                peak=days[peak_at],
                trough=days[trough],
                recovery=days[stop] if stop < len(days) else None,
                depth=float(dd.min()),
                sessions_to_trough=trough - peak_at,
                sessions_to_recovery=stop - peak_at if stop < len(days) else None,
            )
        )
    return sorted(episodes, key=lambda e: e.depth)


def _sizing(r: np.ndarray, periods: int, inputs: RiskReportInput, run: ToolRun) -> Sizing:
    mu, sigma = float(r.mean()), float(r.std(ddof=1))
    kelly = mu / sigma**2 if sigma > 0 else None
    vol_lev = inputs.target_volatility / (sigma * math.sqrt(periods)) if sigma > 0 else None
    frac = None if kelly is None else inputs.kelly_fraction * kelly
    candidates = [x for x in (frac, vol_lev, inputs.max_leverage) if x is not None]
    recommended = max(0.0, min(candidates))
    if kelly is not None and kelly <= 0:
        run.warn("the mean return is not positive: Kelly sizing says do not allocate.")
    return Sizing(
        periods_per_year=periods,
        annual_volatility=finite(sigma * math.sqrt(periods)),
        kelly_leverage=finite(kelly),
        fractional_kelly_leverage=finite(frac),
        vol_target_leverage=finite(vol_lev),
        recommended_leverage=recommended,
    )


def _exposures(weights: pl.DataFrame, returns: pl.DataFrame) -> ExposureSummary:
    import polars as pl

    per_date = weights.group_by("date").agg(
        pl.col("weight").abs().sum().alias("gross"),
        pl.col("weight").sum().alias("net"),
        pl.len().alias("positions"),
        pl.col("weight").abs().max().alias("max_abs"),
    )
    stats = per_date.select(
        pl.col("gross").mean().alias("mean_gross"),
        pl.col("gross").max().alias("max_gross"),
        pl.col("net").mean().alias("mean_net"),
        pl.col("positions").mean().alias("mean_positions"),
        pl.col("max_abs").max().alias("max_abs_weight"),
    ).row(0, named=True)
    return ExposureSummary(
        **{k: finite(v) for k, v in stats.items()},
        mean_long=finite(returns["long_exposure"].mean()),
        mean_short=finite(returns["short_exposure"].mean()),
        annual_turnover=finite(returns["turnover"].mean() * 252),  # type: ignore[operator]
    )


@tool(
    "risk_report",
    summary="Drawdowns, VaR/CVaR, exposures, Kelly / vol-target sizing and kill switches.",
    description="Give a recorded trial_id (returns only) or a source and strategy (backtested "
    "with the same guardrails as backtest, counted once per identical configuration). Reports "
    "drawdown episodes, tail risk, exposures, a recommended leverage (fractional Kelly capped "
    "by a volatility target) and stop-trading thresholds.",
    input_model=RiskReportInput,
    output_model=RiskReportOutput,
    guardrails=(
        "as_of",
        "holdout",
        "data_validation",
        "lookahead",
        "costs",
        "trial_budget",
        "multiple_testing",
    ),
    example={"source": {"kind": "demo", "seed": 7}, "as_of": "2019-12-31"},
)
def risk_report(inputs: RiskReportInput, run: ToolRun) -> RiskReportOutput:
    """Compute the risk report of a trial or a strategy."""
    import numpy as np

    from quantdesk.quant_core.metrics import performance_summary
    from quantdesk.quant_core.trials import TrialRegistry

    if (inputs.trial_id is None) == (inputs.source is None):
        raise ToolInputError(
            "trial_id",
            "Send exactly one of trial_id (a recorded trial) or source (with a strategy).",
            fix='e.g. {"trial_id": "<id from list_trials>"}.',
        )
    exposures = None
    if inputs.trial_id is not None:
        as_of = resolve_as_of(run, inputs.as_of, required=False)
        registry = TrialRegistry(run.context.registry)
        record = context_trial(registry, run, inputs.trial_id)
        check_trial_dates(run, [record], as_of)
        series = registry.returns(record)
        if series["date"].null_count():
            raise ToolInputError(
                "trial_id",
                "The trial's returns carry no dates.",
                fix="use a dated trial (every CV and backtest trial is dated).",
            )
        frame, column, period = series, "ret", record.period_sessions
        dsr = registry.deflated_sharpe(run.context, record)
        run.trial_id = record.trial_id
        run.passed("multiple_testing", f"deflated by the {dsr.n_trials:g} trial(s) of the context.")
        source: Literal["trial", "strategy"] = "trial"
    else:
        as_of = resolve_as_of(run, inputs.as_of)
        done = run_strategy(
            run,
            inputs.source,
            inputs.strategy,
            inputs.costs,
            gross_study=inputs.gross_study,
            capital=inputs.capital,
            as_of=as_of,  # type: ignore[arg-type]
        )
        record, dsr = done.trial, done.dsr
        run.warn(
            "the strategy was backtested again and counted as a trial; pass trial_id to "
            "report on a recorded trial without counting it again (exposures need the strategy)."
        )
        frame, column, period = done.result.returns, "net", 1
        exposures = _exposures(done.result.weights, done.result.returns)
        source = "strategy"
    periods = max(1, round(252 / period))
    with run.timed("work"):
        summary = performance_summary(frame.select("date", column), column=column, periods=periods)
        r = frame[column].to_numpy()
        dates = frame["date"].to_numpy()
        episodes = drawdown_episodes(dates, r)
        wealth = np.cumprod(1.0 + r)
        current = float(wealth[-1] / max(1.0, wealth.max()) - 1.0)
        sizing = _sizing(r, periods, inputs, run)
    lev = sizing.recommended_leverage
    sigma = float(r.std(ddof=1))
    perf = PerformanceOutput.of(summary)
    return RiskReportOutput(
        source=source,
        performance=perf,
        current_drawdown=finite(current),
        drawdowns=episodes[: inputs.top_drawdowns],
        tail=TailRisk(
            var_95=finite(summary.var_95),
            cvar_95=finite(summary.cvar_95),
            var_99=finite(summary.var_99),
            cvar_99=finite(summary.cvar_99),
            gaussian_var_99=finite(float(r.mean()) - 2.3263478740408408 * sigma),
        ),
        exposures=exposures,
        sizing=sizing,
        kill_switch=KillSwitch(
            leverage=lev,
            max_drawdown_limit=finite(inputs.drawdown_multiple * abs(summary.max_drawdown) * lev),
            period_loss_limit=finite(inputs.daily_loss_sigmas * sigma * lev),
            rule=f"stop at a drawdown of {inputs.drawdown_multiple:g}x the historical maximum, "
            f"or a one-period loss of {inputs.daily_loss_sigmas:g} standard deviations, both at "
            f"leverage {lev:.3g}.",
        ),
        trial=None if record is None else TrialSummary.of(record),
        deflated_sharpe=None if dsr is None else DeflatedSharpe.of(dsr),
    )
