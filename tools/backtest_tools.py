"""``backtest``: a signal traded as a portfolio with explicit costs, as a counted trial.

A strategy here is a signal (one feature, higher = long unless ``higher_is_better`` is false)
turned into weights per date and traded with explicit costs by
:func:`~quantdesk.quant_core.backtest.backtest_signal`. Costs are on by default; zero costs
are refused unless the request says ``gross_study: true`` (recorded as an override).

Each backtest is a ``backtest`` trial of the research context, recorded on its net returns by
:func:`~quantdesk.quant_core.backtest.run_backtest` itself; the tool checks the trial budget
before it runs and reports the trial with its deflated Sharpe ratio. :func:`run_strategy` is
shared with ``risk_report`` and ``evaluate_holdout``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from quantdesk.tools.envelope import ToolInputError, ToolModel
from quantdesk.tools.guardrails import (
    ToolRun,
    check_trial_budget,
    resolve_as_of,
    settle_data_validation,
)
from quantdesk.tools.inputs import DataSource, DemoSource, FileSource, ToolInput
from quantdesk.tools.outputs import DeflatedSharpe, LookaheadSummary, TrialSummary, finite
from quantdesk.tools.pipeline import (
    FeatureSetInput,
    checked_features,
    load_checked_prices,
    model_columns,
    resolve_feature_names,
)
from quantdesk.tools.registry import tool

if TYPE_CHECKING:
    import polars as pl

    from quantdesk.quant_core.backtest import BacktestResult
    from quantdesk.quant_core.sharpe_inference import DSRResult
    from quantdesk.quant_core.trials import TrialRecord
    from quantdesk.tools.lookahead import LookaheadReport

__all__ = [
    "BacktestInput",
    "BacktestOutput",
    "CostInput",
    "PerformanceOutput",
    "StrategyInput",
    "StrategyRun",
    "backtest",
    "check_costs",
    "performance_of",
    "run_strategy",
]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
_DEMO = {"kind": "demo", "seed": 7}


class StrategyInput(ToolModel):
    """A signal and how it becomes a traded portfolio.

    Attributes:
        signal: Feature used as the score (e.g. ``mom_252_21``).
        transform: ``raw``, ``rank`` or ``zscore`` of the signal per date.
        higher_is_better: Long high scores (``true``) or low scores (``false``).
        method: ``quantile`` (equal weights in the top/bottom buckets), ``proportional`` or
            ``vol_scaled``.
        side: ``long_short``, ``dollar_neutral`` or ``long_only``.
        quantile: Share of names in each bucket (``quantile`` method).
        gross: Target sum of absolute weights.
        max_weight: Cap on one name's absolute weight.
        rebalance: ``daily``, ``weekly`` or ``monthly``.
        execution: ``next_close`` or ``next_open`` of the session after the decision.
    """

    model_config = _STRICT

    signal: str = Field(default="mom_252_21", min_length=1, max_length=64)
    transform: Literal["raw", "rank", "zscore"] = "raw"
    higher_is_better: bool = True
    method: Literal["quantile", "proportional", "vol_scaled"] = "quantile"
    side: Literal["long_short", "dollar_neutral", "long_only"] = "dollar_neutral"
    quantile: float = Field(default=0.2, gt=0.0, le=1.0)
    gross: float = Field(default=1.0, gt=0.0, le=10.0)
    max_weight: float | None = Field(default=None, gt=0.0, le=10.0)
    rebalance: Literal["daily", "weekly", "monthly"] = "weekly"
    execution: Literal["next_close", "next_open"] = "next_close"


class CostInput(ToolModel):
    """Trading costs in basis points of traded notional (defaults are on, not zero)."""

    model_config = _STRICT

    commission_bps: float = Field(default=1.0, ge=0.0, le=1000.0)
    half_spread_bps: float = Field(default=2.0, ge=0.0, le=1000.0)
    slippage_bps: float = Field(default=1.0, ge=0.0, le=1000.0)
    borrow_bps_annual: float = Field(default=50.0, ge=0.0, le=100_000.0)
    impact_coef: float = Field(default=0.0, ge=0.0, le=100.0)


class PerformanceOutput(ToolModel):
    """Headline performance of a daily net return series (fractions; annualised with 252)."""

    n_obs: int
    start: date | None
    end: date | None
    total_return: float | None
    cagr: float | None
    annual_volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float | None
    max_drawdown_duration: int
    calmar: float | None
    hit_rate: float | None
    var_95: float | None
    cvar_95: float | None
    skew: float | None
    kurtosis: float | None
    annual_turnover: float | None

    @classmethod
    def of(cls, summary: Any) -> PerformanceOutput:
        """Summarise a :class:`~quantdesk.quant_core.metrics.PerformanceSummary`."""
        data = summary.to_dict()
        return cls(
            **{
                k: (finite(data[k]) if isinstance(data[k], float) else data[k])
                for k in cls.model_fields
            }
        )


@dataclass(frozen=True)
class StrategyRun:
    """A guarded strategy backtest and its trial (internal result of :func:`run_strategy`).

    Attributes:
        prices: The price frame used.
        result: The backtest.
        trial: Its trial (``None`` when not recorded: holdout evaluations).
        dsr: Deflated Sharpe of the trial.
        lookahead: The look-ahead check of the signal.
    """

    prices: pl.DataFrame
    result: BacktestResult
    trial: TrialRecord | None
    dsr: DSRResult | None
    lookahead: LookaheadReport


def check_costs(run: ToolRun, costs: CostInput | None, gross_study: bool) -> dict[str, Any]:
    """Apply the costs guardrail; return the cost model fields to trade with.

    Raises:
        ToolInputError: costs given together with ``gross_study``.
        ToolRefusedError: every trading cost is zero without ``gross_study``.
    """
    if gross_study:
        if costs is not None:
            raise ToolInputError(
                "costs",
                "gross_study=true charges no costs, but costs were also given.",
                fix="drop costs for a gross study, or drop gross_study to charge them.",
            )
        run.overridden(
            "costs",
            "gross_study=true: trading costs are zero on purpose; the returns are gross and "
            "overstate any strategy that trades.",
        )
        run.warn("gross study: costs are zero, so these returns are not achievable as such.")
        return {}
    cost = costs or CostInput()
    linear = cost.commission_bps + cost.half_spread_bps + cost.slippage_bps
    if linear == 0 and cost.impact_coef == 0:
        run.refuse(
            "costs",
            "Every trading cost is zero: a backtest without costs overstates any strategy "
            "that trades.",
            fix="send realistic costs (the defaults: commission 1 bp, half-spread 2 bp, "
            "slippage 1 bp), or gross_study=true to study gross returns on purpose.",
        )
    run.passed(
        "costs",
        f"{linear:g} bp per unit traded (commission {cost.commission_bps:g}, half-spread "
        f"{cost.half_spread_bps:g}, slippage {cost.slippage_bps:g}), borrow "
        f"{cost.borrow_bps_annual:g} bp/yr, impact {cost.impact_coef:g}.",
    )
    return cost.model_dump()


def _trial_of(run: ToolRun, result: BacktestResult) -> tuple[TrialRecord | None, DSRResult | None]:
    """The trial :func:`~quantdesk.quant_core.backtest.run_backtest` recorded, with its DSR."""
    recorded = result.run
    if recorded is None:
        run.warn(f"the backtest was not recorded as a trial: {result.run_error}")
        run.not_applicable("multiple_testing", "no trial series, so no Sharpe is reported.")
        return None, None
    run.trial_id = recorded.trial.trial_id
    run.passed(
        "multiple_testing",
        f"recorded as trial #{recorded.trial.number}; its Sharpe is deflated by "
        f"{recorded.dsr.n_trials:g} trial(s) of research context {run.context.name!r}.",
    )
    return recorded.trial, recorded.dsr


def run_strategy(
    run: ToolRun,
    source: FileSource | DemoSource,
    strategy: StrategyInput,
    costs: CostInput | None,
    *,
    gross_study: bool,
    capital: float | None,
    as_of: date,
    record: bool = True,
) -> StrategyRun:
    """Load, check and backtest a strategy (the engine records it as a ``backtest`` trial).

    Args:
        run: The call.
        source: Prices.
        strategy: Signal and portfolio construction.
        costs: Trading costs (``None``: the defaults).
        gross_study: Zero costs on purpose.
        capital: Capital for the impact model.
        as_of: Point-in-time date.
        record: A search trial: check the trial budget first and report the trial and its
            DSR (``False`` inside ``evaluate_holdout``).

    Raises:
        ToolInputError: bad signal name or settings.
        ToolRefusedError: a guardrail refused (holdout, validation, look-ahead, costs, budget).
    """
    import polars as pl

    from quantdesk.quant_core.backtest import backtest_signal
    from quantdesk.quant_core.backtest_config import BacktestConfig
    from quantdesk.quant_core.errors import ConfigError

    names = resolve_feature_names(FeatureSetInput(names=[strategy.signal]), field="strategy.signal")
    cost_fields = check_costs(run, costs, gross_study)
    try:
        config = BacktestConfig(
            execution=strategy.execution,
            rebalance=strategy.rebalance,
            gross_study=gross_study,
            capital=capital,
            **({"costs": cost_fields} if cost_fields else {}),
        )
    except ConfigError as exc:
        raise ToolInputError("costs", exc.message, fix=exc.fix) from None
    if record:  # refuse before the work, not after it
        with run.timed("guardrails"):
            check_trial_budget(run)
    prices = load_checked_prices(run, source, as_of)
    features, report = checked_features(run, prices, names, strategy.transform)
    column = model_columns(names, strategy.transform)[0]
    sign = 1.0 if strategy.higher_is_better else -1.0
    scores = features.select("date", "symbol", (pl.col(column) * sign).alias("score"))
    weight_options = {
        "side": strategy.side,
        "quantile": strategy.quantile,
        "gross": strategy.gross,
        "max_weight": strategy.max_weight,
    }
    settle_data_validation(run)  # the engine records the trial: decide the guardrail first
    with run.timed("work"):
        try:
            result = backtest_signal(
                prices, scores, method=strategy.method, config=config, **weight_options
            )
        except ConfigError as exc:
            raise ToolInputError("strategy", exc.message, fix=exc.fix) from None
    trial, dsr = _trial_of(run, result) if record else (None, None)
    return StrategyRun(prices, result, trial, dsr, report)


class BacktestInput(ToolInput):
    """Request of ``backtest``.

    Attributes:
        source: Where the prices come from.
        strategy: Signal, weighting and trading schedule.
        costs: Trading costs (omitted: the defaults, which are not zero).
        gross_study: Explicitly study gross returns (zero costs); recorded as an override.
        capital: Capital in currency (needed by the impact model only).
    """

    source: DataSource
    strategy: StrategyInput = Field(default_factory=StrategyInput)
    costs: CostInput | None = None
    gross_study: bool = False
    capital: float | None = Field(default=None, gt=0.0, le=1e13)


class BacktestOutput(ToolModel):
    """The net performance of the strategy, its costs, its trial and deflated Sharpe.

    Attributes:
        performance: Net performance (Sharpe, drawdown, VaR, turnover, ...).
        total_gross_return: Compounded return before costs.
        total_net_return: Compounded return after costs.
        cost_totals: Sum of each daily cost (fractions of capital).
        n_rebalances: Trades executed.
        mean_long_exposure: Average sum of long weights.
        mean_short_exposure: Average sum of short weights (positive).
        trial: The recorded ``backtest`` trial.
        deflated_sharpe: DSR of the trial given every trial of the context.
        lookahead: What the look-ahead check of the signal compared.
        notes: What the engine adjusted (missing prices, ...).
    """

    performance: PerformanceOutput
    total_gross_return: float | None
    total_net_return: float | None
    cost_totals: dict[str, float | None]
    n_rebalances: int
    mean_long_exposure: float | None
    mean_short_exposure: float | None
    trial: TrialSummary | None
    deflated_sharpe: DeflatedSharpe | None
    lookahead: LookaheadSummary
    notes: list[str]


def performance_of(returns: pl.DataFrame) -> PerformanceOutput:
    """Net performance of a backtest returns frame (``date, net, turnover, ...``)."""
    from quantdesk.quant_core.metrics import performance_summary

    return PerformanceOutput.of(
        performance_summary(returns.select("date", "net"), column="net", turnover=returns)
    )


@tool(
    "backtest",
    summary="Backtest a signal as a traded portfolio with explicit costs; a counted trial.",
    description="Turns a look-ahead-checked feature into weights per date (quantile buckets, "
    "proportional or volatility-scaled; long-short or long-only), trades at the next close or "
    "open with commission, spread, slippage and borrow costs, and reports net performance. "
    "Zero costs are refused unless gross_study is true. Every backtest is a trial of the "
    "research context and its Sharpe comes with the deflated Sharpe ratio.",
    input_model=BacktestInput,
    output_model=BacktestOutput,
    guardrails=(
        "as_of",
        "holdout",
        "data_validation",
        "lookahead",
        "costs",
        "trial_budget",
        "multiple_testing",
    ),
    records_trial=True,
    example={
        "source": _DEMO,
        "as_of": "2019-12-31",
        "strategy": {"signal": "mom_252_21", "side": "dollar_neutral", "rebalance": "weekly"},
    },
)
def backtest(inputs: BacktestInput, run: ToolRun) -> BacktestOutput:
    """Run the guarded backtest and record it."""
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
    result = done.result
    returns = result.returns
    return BacktestOutput(
        performance=performance_of(returns),
        total_gross_return=finite(result.total_gross_return),
        total_net_return=finite(result.total_net_return),
        cost_totals={k: finite(v) for k, v in result.cost_totals.items()},
        n_rebalances=result.n_rebalances,
        mean_long_exposure=finite(returns["long_exposure"].mean()),
        mean_short_exposure=finite(returns["short_exposure"].mean()),
        trial=None if done.trial is None else TrialSummary.of(done.trial),
        deflated_sharpe=None if done.dsr is None else DeflatedSharpe.of(done.dsr),
        lookahead=LookaheadSummary.of(done.lookahead),
        notes=list(result.notes),
    )
