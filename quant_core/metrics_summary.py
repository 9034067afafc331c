"""The one-call summary of a return series: :class:`PerformanceSummary` and its builder.

:func:`performance_summary` runs every metric of :mod:`.metrics` on one series and collects them
in a frozen dataclass that renders as a dict or a markdown table. A ratio that is undefined for the
series (Sortino without losses, Calmar without a drawdown, ...) is recorded as ``None`` with a
note instead of raising, so a summary can always be shown. The metric conventions are those of
:mod:`.metrics`; the metric functions themselves stay there (one module of pure functions).

:mod:`.metrics` re-exports both names; it does so lazily because this module imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Literal

import numpy as np
import polars as pl

from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.metrics import (
    PERIODS_PER_YEAR,
    ReturnsLike,
    UndefinedMetricError,
    _check_periods,
    _pick_column,
    alpha_beta,
    annual_turnover,
    annual_volatility,
    as_returns,
    cagr,
    calmar_ratio,
    conditional_value_at_risk,
    cumulative_return,
    hit_rate,
    max_drawdown,
    max_drawdown_duration,
    profit_factor,
    sample_moments,
    sharpe_ratio,
    sortino_ratio,
    tail_ratio,
    value_at_risk,
)

__all__ = ["PerformanceSummary", "performance_summary"]


_PERCENT_FIELDS = frozenset(
    {
        "total_return",
        "cagr",
        "annual_volatility",
        "max_drawdown",
        "hit_rate",
        "var_95",
        "cvar_95",
        "var_99",
        "cvar_99",
        "alpha",
    }
)


_UNDEFINABLE = frozenset({"sortino", "calmar", "hit_rate", "profit_factor", "tail_ratio"})


@dataclass(frozen=True, slots=True)
class PerformanceSummary:
    """Every metric of one return series; ratios that are undefined are ``None``.

    Return-like fields are fractions (0.12 = 12%); annualised ones use ``periods``.
    ``max_drawdown`` and the VaR/CVaR fields are negative returns. ``kurtosis`` is RAW
    (normal = 3); ``excess_kurtosis`` = kurtosis - 3. ``notes`` says why a field is ``None``.
    """

    n_obs: int
    start: date | None
    end: date | None
    periods: int
    risk_free: float
    total_return: float
    cagr: float
    annual_volatility: float
    sharpe: float
    sortino: float | None
    max_drawdown: float
    max_drawdown_duration: int
    calmar: float | None
    hit_rate: float | None
    profit_factor: float | None
    tail_ratio: float | None
    var_95: float
    cvar_95: float
    var_99: float
    cvar_99: float
    skew: float
    kurtosis: float
    excess_kurtosis: float
    alpha: float | None
    beta: float | None
    mean_daily_turnover: float | None
    annual_turnover: float | None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (dates as ISO strings, ``notes`` as a list)."""
        out = asdict(self)
        out["start"] = self.start.isoformat() if self.start else None
        out["end"] = self.end.isoformat() if self.end else None
        out["notes"] = list(self.notes)
        out["kurtosis_convention"] = "raw"
        return out

    def to_markdown(self) -> str:
        """Two-column markdown table of the metrics, followed by the notes."""
        lines = ["| metric | value |", "|---|---|"]
        for name, value in asdict(self).items():
            if name == "notes":
                continue
            if value is None:
                # None is "undefined" for a ratio (see notes), "n/a" for an input not given.
                text = "undefined" if name in _UNDEFINABLE else "n/a"
            elif name in _PERCENT_FIELDS:
                text = f"{value:.2%}"
            elif isinstance(value, float):
                text = f"{value:.4g}"
            else:
                text = str(value)
            lines.append(f"| {name} | {text} |")
        lines.extend(f"\n- {note}" for note in self.notes)
        return "\n".join(lines)


def _or_none(fn: Callable[[], float], name: str, notes: list[str]) -> float | None:
    try:
        return fn()
    except UndefinedMetricError as exc:
        notes.append(f"{name}: {exc.message}")
        return None


def _drop_missing(
    returns: ReturnsLike, benchmark: ReturnsLike | None, column: str | None, notes: list[str]
) -> tuple[ReturnsLike, ReturnsLike | None]:
    if isinstance(returns, pl.DataFrame):
        series = _pick_column(returns, "returns", column)
        keep = series.is_not_null() & series.is_finite()
        kept: ReturnsLike = returns.filter(keep)
        dropped = returns.height - kept.height
    else:
        arr = np.asarray(returns.to_numpy() if isinstance(returns, pl.Series) else returns, float)
        keep_arr = np.isfinite(arr)
        kept, dropped = arr[keep_arr], int((~keep_arr).sum())
        if benchmark is not None and not isinstance(benchmark, pl.DataFrame):
            bench = np.asarray(benchmark, dtype=np.float64)
            if bench.shape == arr.shape:
                benchmark = bench[keep_arr]
    if dropped:
        notes.append(f"nan_policy='omit': dropped {dropped} missing return(s).")
    return kept, benchmark


def performance_summary(
    returns: ReturnsLike,
    *,
    benchmark: ReturnsLike | None = None,
    turnover: ReturnsLike | None = None,
    column: str | None = None,
    risk_free: float = 0.0,
    periods: int = PERIODS_PER_YEAR,
    nan_policy: Literal["raise", "omit"] = "raise",
) -> PerformanceSummary:
    """Compute every metric of this module for one return series.

    Args:
        returns: Daily simple returns (array, Series, or frame ``date, <series>``).
        benchmark: Optional benchmark returns for alpha and beta (see :func:`alpha_beta`).
        turnover: Optional per-session turnover (array, or a frame with a ``turnover``
            column such as ``BacktestResult.returns``).
        column: Column of ``returns`` to use when it is a frame with several series
            (e.g. ``"net"`` for a backtest's returns frame).
        risk_free: Per-period risk-free return for Sharpe and alpha.
        periods: Periods per year.
        nan_policy: ``"raise"`` (default: a missing return is a data bug) or ``"omit"``
            (drop them, recorded in ``notes``).

    Raises:
        UndefinedMetricError: constant returns (Sharpe undefined).
        InsufficientDataError: fewer than two returns.
        DataError: NaN returns under ``nan_policy="raise"``.
    """
    if nan_policy not in ("raise", "omit"):
        raise InputError(f"nan_policy={nan_policy!r} is unknown.", fix="use 'raise' or 'omit'.")
    _check_periods(periods)
    notes: list[str] = []
    if isinstance(returns, pl.DataFrame):
        series = _pick_column(returns, "returns", column)
        keep = ["date", series.name] if "date" in returns.columns else [series.name]
        returns, column = returns.select(keep), None
    if nan_policy == "omit":
        returns, benchmark = _drop_missing(returns, benchmark, column, notes)
    r = as_returns(returns, min_obs=2)
    moments = sample_moments(r)
    start = end = None
    if isinstance(returns, pl.DataFrame) and "date" in returns.columns:
        start, end = returns["date"].min(), returns["date"].max()
    ab = None if benchmark is None else alpha_beta(returns, benchmark, risk_free, periods)
    turn = None if turnover is None else annual_turnover(turnover, periods)
    return PerformanceSummary(
        n_obs=moments.n_obs,
        start=start,
        end=end,
        periods=periods,
        risk_free=float(risk_free),
        total_return=cumulative_return(r),
        cagr=cagr(r, periods),
        annual_volatility=annual_volatility(r, periods),
        sharpe=sharpe_ratio(r, risk_free, periods),
        sortino=_or_none(lambda: sortino_ratio(r, risk_free, periods), "sortino", notes),
        max_drawdown=max_drawdown(r),
        max_drawdown_duration=max_drawdown_duration(r),
        calmar=_or_none(lambda: calmar_ratio(r, periods), "calmar", notes),
        hit_rate=_or_none(lambda: hit_rate(r), "hit_rate", notes),
        profit_factor=_or_none(lambda: profit_factor(r), "profit_factor", notes),
        tail_ratio=_or_none(lambda: tail_ratio(r), "tail_ratio", notes),
        var_95=value_at_risk(r, 0.95),
        cvar_95=conditional_value_at_risk(r, 0.95),
        var_99=value_at_risk(r, 0.99),
        cvar_99=conditional_value_at_risk(r, 0.99),
        skew=moments.skew,
        kurtosis=moments.kurtosis,
        excess_kurtosis=moments.excess_kurtosis,
        alpha=None if ab is None else ab.alpha,
        beta=None if ab is None else ab.beta,
        mean_daily_turnover=None if turn is None else turn / periods,
        annual_turnover=turn,
        notes=tuple(notes),
    )
