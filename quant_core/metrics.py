"""Performance metrics of daily simple returns, with empyrical-reloaded's conventions.

Every function is pure and takes a 1-D array of daily *simple* returns (a numpy array, a
list, a :class:`polars.Series` or a polars frame ``date, <series>``). Conventions, equal to
empyrical-reloaded 0.7 where it has the metric (a test cross-checks them):

* ``periods`` = 252 sessions a year; volatility is the sample standard deviation (ddof=1)
  times ``sqrt(periods)``; Sharpe = mean / std (ddof=1) * ``sqrt(periods)`` of the returns
  minus a constant per-period ``risk_free`` (0 unless given). ``per_period_sharpe`` is the
  same ratio without the ``sqrt(periods)``.
* CAGR (empyrical's ``annual_return``) = ``prod(1 + r) ** (periods / n) - 1``.
* Wealth starts at 1 *before* the first return, so a loss on the first session is a drawdown.
  ``max_drawdown`` is a negative fraction (-0.25 = a 25% fall from the peak).
* Sortino = mean excess return * periods / downside risk, where downside risk is
  ``sqrt(mean(min(r - required, 0) ** 2)) * sqrt(periods)`` over *all* sessions
  (Sortino & Price 1994, as empyrical).
* ``value_at_risk`` and ``conditional_value_at_risk`` are historical and expressed as
  returns (usually negative): VaR(0.95) is the 5th percentile (numpy's linear
  interpolation); CVaR is the mean of the ``int((n - 1) * 0.05) + 1`` lowest returns.
* ``alpha_beta``: beta = cov(r, b) / var(b); alpha is the mean daily residual
  ``r - rf - beta * (b - rf)`` compounded over a year: ``(1 + mean) ** periods - 1``.
* ``skewness`` and ``kurtosis`` are moment estimators (scipy's ``bias=True``); kurtosis must
  be asked for as raw (normal = 3, what PSR/DSR formulas use) or excess (normal = 0).

Where empyrical returns NaN or inf, these functions raise instead: NaN/inf or null returns
raise :class:`DataError` (a missing return is a data bug: drop or fill it before measuring);
empty input raises :class:`InsufficientDataError`; a ratio whose denominator is zero (Sharpe
of constant returns, Calmar without a drawdown, ...) raises :class:`UndefinedMetricError`.
:func:`performance_summary` records such undefined ratios as ``None`` with a note; it and
:class:`PerformanceSummary` live in :mod:`.metrics_summary` and are re-exported here.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import polars as pl

from quantdesk.quant_core.conventions import PERIODS_PER_YEAR
from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError

if TYPE_CHECKING:
    from quantdesk.quant_core.metrics_summary import PerformanceSummary, performance_summary

__all__ = [
    "PERIODS_PER_YEAR",
    "AlphaBeta",
    "PerformanceSummary",
    "ReturnsLike",
    "SampleMoments",
    "UndefinedMetricError",
    "alpha_beta",
    "annual_return",
    "annual_turnover",
    "annual_volatility",
    "as_returns",
    "cagr",
    "calmar_ratio",
    "conditional_value_at_risk",
    "cumulative_return",
    "downside_risk",
    "drawdown_series",
    "hit_rate",
    "kurtosis",
    "max_drawdown",
    "max_drawdown_duration",
    "per_period_sharpe",
    "performance_summary",
    "profit_factor",
    "sample_moments",
    "sharpe_ratio",
    "skewness",
    "sortino_ratio",
    "tail_ratio",
    "value_at_risk",
]

ReturnsLike = np.ndarray | pl.Series | pl.DataFrame | Sequence[float]


class UndefinedMetricError(InputError):
    """A ratio is undefined for these returns (its denominator is zero)."""


def _pick_column(frame: pl.DataFrame, what: str, column: str | None) -> pl.Series:
    if column is not None and column in frame.columns:
        return frame[column]
    values = [c for c in frame.columns if c != "date"]
    if len(values) != 1 or column is not None:
        raise InputError(
            f"The {what} frame has columns {frame.columns}; expected 'date' plus one series"
            + ("." if column is None else f" or a column named {column!r}."),
            fix="pass column='<name>' or select one series, e.g. frame.select('date', 'net').",
        )
    return frame[values[0]]


def as_returns(
    returns: ReturnsLike, *, what: str = "returns", min_obs: int = 1, column: str | None = None
) -> np.ndarray:
    """Validate returns and return them as a 1-D float64 numpy array.

    Args:
        returns: Array, list, polars Series, or polars frame ``date, <series>``.
        what: Name used in error messages.
        min_obs: Minimum number of observations.
        column: For a frame with several series, the column to use.

    Raises:
        InputError: not one-dimensional or not numeric.
        DataError: NaN, inf or null values (a missing return is a data bug).
        InsufficientDataError: fewer than ``min_obs`` observations.
    """
    if isinstance(returns, pl.DataFrame):
        returns = _pick_column(returns, what, column)
    if isinstance(returns, pl.Series):
        if returns.null_count():
            first = int(returns.is_null().arg_max() or 0)
            raise DataError(
                f"The {what} have {returns.null_count()} null value(s), first at row {first}.",
                fix="drop or fill the missing returns explicitly before measuring.",
            )
        returns = returns.to_numpy()
    try:
        arr = np.asarray(returns, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"The {what} are not numeric: {exc}.", fix="pass daily simple returns as floats."
        ) from None
    if arr.ndim != 1:
        raise InputError(
            f"The {what} must be one-dimensional, got shape {arr.shape}.",
            fix="pass one series at a time (e.g. arr.ravel() for an (n, 1) array).",
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"The {what} have {int(bad.sum())} NaN/inf value(s), first at row {first} "
            f"({arr[first]}).",
            fix="drop or fill the missing returns explicitly, e.g. r[np.isfinite(r)]; a NaN "
            "return is usually a data bug upstream.",
        )
    if arr.size < min_obs:
        raise InsufficientDataError(
            f"The {what} have {arr.size} observation(s); this needs at least {min_obs}.",
            fix="measure over a longer period.",
        )
    return arr


def _check_periods(periods: int) -> None:
    if isinstance(periods, bool) or not isinstance(periods, int | np.integer) or periods < 1:
        raise InputError(
            f"periods={periods!r} must be a positive integer (sessions per year).",
            fix="use 252 for daily returns, 52 for weekly, 12 for monthly.",
        )


def _wealth(r: np.ndarray, what: str) -> np.ndarray:
    """Wealth path starting at 1 before the first return (length n + 1)."""
    if (r < -1.0).any():
        first = int(np.argmax(r < -1.0))
        raise DataError(
            f"The {what} have a return below -100% at row {first} ({r[first]}); wealth would "
            "turn negative.",
            fix="check the return units (fractions, not percent) and the leverage.",
        )
    return np.concatenate(([1.0], np.cumprod(1.0 + r)))


def _require_dispersion(x: np.ndarray, metric: str) -> None:
    # An exact test: the float std of identical values can be a 1e-18 residue, not 0.
    if x.max() == x.min():
        raise UndefinedMetricError(
            f"{metric} undefined: the returns have zero variance (all {x.size} equal to {x[0]!r}).",
            fix="check that the strategy traded; a constant or empty return series has no "
            "risk-adjusted performance.",
        )


def cumulative_return(returns: ReturnsLike) -> float:
    """Total compounded return ``prod(1 + r) - 1``."""
    r = as_returns(returns)
    return float(_wealth(r, "returns")[-1] - 1.0)


def cagr(returns: ReturnsLike, periods: int = PERIODS_PER_YEAR) -> float:
    """Compound annual growth rate ``prod(1 + r) ** (periods / n) - 1``.

    Raises:
        DataError: a return below -100% (negative wealth has no growth rate).
    """
    _check_periods(periods)
    r = as_returns(returns)
    ending = float(_wealth(r, "returns")[-1])
    return ending ** (1.0 / (r.size / periods)) - 1.0


def annual_return(returns: ReturnsLike, periods: int = PERIODS_PER_YEAR) -> float:
    """Empyrical's name for :func:`cagr` (the compounded, not arithmetic, annual return)."""
    return cagr(returns, periods)


def annual_volatility(returns: ReturnsLike, periods: int = PERIODS_PER_YEAR) -> float:
    """Sample standard deviation (ddof=1) times ``sqrt(periods)``; needs two returns."""
    _check_periods(periods)
    r = as_returns(returns, min_obs=2)
    return float(np.std(r, ddof=1) * np.sqrt(periods))


def _excess(returns: ReturnsLike, risk_free: float | ReturnsLike, min_obs: int) -> np.ndarray:
    r = as_returns(returns, min_obs=min_obs)
    if np.isscalar(risk_free):
        rf = as_returns([risk_free], what="risk_free")
    else:
        rf = as_returns(risk_free, what="risk_free")
        if rf.size != r.size:
            raise InputError(
                f"risk_free has {rf.size} values but the returns have {r.size}.",
                fix="pass a constant per-period rate or one value per return.",
            )
    return r - rf


def per_period_sharpe(returns: ReturnsLike, risk_free: float | ReturnsLike = 0.0) -> float:
    """Sharpe ratio per period: mean / std (ddof=1) of ``returns - risk_free``, not annualised.

    Raises:
        UndefinedMetricError: zero variance (constant returns).
    """
    x = _excess(returns, risk_free, min_obs=2)
    _require_dispersion(x, "Sharpe ratio")
    return float(np.mean(x) / np.std(x, ddof=1))


def sharpe_ratio(
    returns: ReturnsLike,
    risk_free: float | ReturnsLike = 0.0,
    periods: int = PERIODS_PER_YEAR,
) -> float:
    """Annualised Sharpe ratio ``mean / std(ddof=1) * sqrt(periods)`` of excess returns.

    Args:
        returns: Daily simple returns.
        risk_free: Per-period (daily) risk-free return, a constant or one value per return.
        periods: Periods per year.

    Raises:
        UndefinedMetricError: zero variance ("Sharpe ratio undefined ...").
        InsufficientDataError: fewer than two returns.
    """
    _check_periods(periods)
    return per_period_sharpe(returns, risk_free) * float(np.sqrt(periods))


def downside_risk(
    returns: ReturnsLike, required_return: float = 0.0, periods: int = PERIODS_PER_YEAR
) -> float:
    """Annualised downside deviation ``sqrt(mean(min(r - required, 0) ** 2) * periods)``."""
    _check_periods(periods)
    x = _excess(returns, required_return, min_obs=1)
    return float(np.sqrt(np.mean(np.minimum(x, 0.0) ** 2)) * np.sqrt(periods))


def sortino_ratio(
    returns: ReturnsLike, required_return: float = 0.0, periods: int = PERIODS_PER_YEAR
) -> float:
    """Sortino ratio: annualised mean excess return over :func:`downside_risk`.

    Raises:
        UndefinedMetricError: no return below ``required_return`` (zero downside risk).
    """
    _check_periods(periods)
    x = _excess(returns, required_return, min_obs=2)
    risk = downside_risk(x, 0.0, periods)
    if risk == 0.0:
        raise UndefinedMetricError(
            f"Sortino ratio undefined: none of the {x.size} returns is below the required "
            f"return {required_return!r}, so the downside risk is zero.",
            fix="report the Sharpe ratio instead, or measure over a period with losses.",
        )
    return float(np.mean(x) * periods / risk)


def drawdown_series(returns: ReturnsLike) -> np.ndarray:
    """Drawdown after each session: wealth / running peak - 1 (<= 0), one value per return."""
    w = _wealth(as_returns(returns), "returns")
    peak = np.maximum.accumulate(w)
    return ((w - peak) / peak)[1:]


def max_drawdown(returns: ReturnsLike) -> float:
    """Largest peak-to-trough fall, as a negative fraction (0.0 when wealth never falls)."""
    return float(min(drawdown_series(returns).min(), 0.0))


def max_drawdown_duration(returns: ReturnsLike) -> int:
    """Longest drawdown, in sessions from the peak to the recovery.

    The peak is the last session at a running high (the start counts, at wealth 1); the
    recovery is the first later session whose wealth is back at or above that high. A
    drawdown still open at the end counts up to the last session. So ``[-0.1, 0.2]`` lasts 2
    sessions (peak at the start, recovered at session 2) and ``[0.1, -0.1]`` lasts 1. A series
    that never falls has duration 0.
    """
    w = _wealth(as_returns(returns), "returns")
    at_high = np.flatnonzero(w >= np.maximum.accumulate(w))
    gaps = np.diff(at_high)
    longest_closed = int(gaps.max()) if gaps.size and gaps.max() > 1 else 0
    still_open = int(w.size - 1 - at_high[-1])
    return max(longest_closed, still_open)


def calmar_ratio(returns: ReturnsLike, periods: int = PERIODS_PER_YEAR) -> float:
    """CAGR divided by the absolute maximum drawdown.

    Raises:
        UndefinedMetricError: the returns never draw down.
    """
    mdd = max_drawdown(returns)
    if mdd == 0.0:
        raise UndefinedMetricError(
            "Calmar ratio undefined: the returns have no drawdown.",
            fix="measure over a period with at least one loss.",
        )
    return cagr(returns, periods) / abs(mdd)


def hit_rate(returns: ReturnsLike) -> float:
    """Share of positive returns among the non-zero ones.

    Sessions with a return of exactly zero (flat, not invested) are left out, so a strategy
    that trades rarely is judged on the days it was exposed.

    Raises:
        UndefinedMetricError: every return is zero.
    """
    r = as_returns(returns)
    active = r[r != 0.0]
    if active.size == 0:
        raise UndefinedMetricError(
            f"Hit rate undefined: all {r.size} returns are zero.",
            fix="check that the strategy took positions.",
        )
    return float(np.mean(active > 0.0))


def profit_factor(returns: ReturnsLike) -> float:
    """Sum of gains over the absolute sum of losses.

    Raises:
        UndefinedMetricError: no losing session.
    """
    r = as_returns(returns)
    losses = -r[r < 0.0].sum()
    if losses == 0.0:
        raise UndefinedMetricError(
            f"Profit factor undefined: none of the {r.size} returns is negative.",
            fix="measure over a period with at least one loss.",
        )
    return float(r[r > 0.0].sum() / losses)


def tail_ratio(returns: ReturnsLike) -> float:
    """``|95th percentile| / |5th percentile|`` (empyrical): above 1, right tail is fatter.

    Raises:
        UndefinedMetricError: the 5th percentile is zero.
    """
    r = as_returns(returns)
    left = abs(float(np.percentile(r, 5)))
    if left == 0.0:
        raise UndefinedMetricError(
            "Tail ratio undefined: the 5th percentile of the returns is zero.",
            fix="check for mostly-zero returns (a rarely invested strategy).",
        )
    return abs(float(np.percentile(r, 95))) / left


def _tail_probability(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise InputError(
            f"level={level!r} must lie strictly between 0 and 1.",
            fix="use a confidence level such as 0.95 or 0.99.",
        )
    # 100 - 100 * 0.95 is exactly 5.0 whereas 1 - 0.95 is 0.05000000000000004, which would
    # move the percentile and the CVaR cut-off index away from empyrical's cutoff=0.05.
    return (100.0 - 100.0 * level) / 100.0


def value_at_risk(returns: ReturnsLike, level: float = 0.95) -> float:
    """Historical value at risk as a return: the ``1 - level`` percentile (e.g. -0.021)."""
    alpha = _tail_probability(level)
    return float(np.percentile(as_returns(returns), 100.0 * alpha))


def conditional_value_at_risk(returns: ReturnsLike, level: float = 0.95) -> float:
    """Historical expected shortfall as a return: mean of the worst ``int((n-1)(1-level))+1``."""
    alpha = _tail_probability(level)
    r = as_returns(returns)
    k = int((r.size - 1) * alpha)
    return float(np.mean(np.partition(r, k)[: k + 1]))


@dataclass(frozen=True, slots=True)
class SampleMoments:
    """Moments of a return series, as the Sharpe-inference formulas use them.

    Attributes:
        n_obs: Number of returns.
        mean: Arithmetic mean per period.
        std: Sample standard deviation (ddof=1).
        skew: Moment skewness ``m3 / m2 ** 1.5`` (scipy ``bias=True``).
        kurtosis: RAW moment kurtosis ``m4 / m2 ** 2`` (normal = 3, not excess).
        sharpe: Per-period Sharpe ratio ``mean / std``, not annualised.
    """

    n_obs: int
    mean: float
    std: float
    skew: float
    kurtosis: float
    sharpe: float

    @property
    def excess_kurtosis(self) -> float:
        """Kurtosis minus 3 (normal = 0)."""
        return self.kurtosis - 3.0

    def to_dict(self) -> dict[str, float | int | str]:
        """Plain dict, with ``kurtosis_convention='raw'`` spelled out."""
        return {**asdict(self), "kurtosis_convention": "raw"}


def _central_moments(r: np.ndarray) -> tuple[float, float, float]:
    d = r - r.mean()
    m2 = float(np.mean(d**2))
    return m2, float(np.mean(d**3)), float(np.mean(d**4))


def sample_moments(returns: ReturnsLike) -> SampleMoments:
    """Mean, std (ddof=1), skew and RAW kurtosis of the returns, for PSR/DSR/MinTRL.

    Raises:
        UndefinedMetricError: zero variance.
        InsufficientDataError: fewer than two returns.
    """
    r = as_returns(returns, min_obs=2)
    _require_dispersion(r, "Sharpe ratio")
    m2, m3, m4 = _central_moments(r)
    std = float(np.std(r, ddof=1))
    return SampleMoments(
        n_obs=int(r.size),
        mean=float(r.mean()),
        std=std,
        skew=m3 / m2**1.5,
        kurtosis=m4 / m2**2,
        sharpe=float(r.mean()) / std,
    )


def skewness(returns: ReturnsLike) -> float:
    """Moment skewness ``m3 / m2 ** 1.5`` (scipy ``skew(bias=True)``)."""
    r = as_returns(returns, min_obs=2)
    _require_dispersion(r, "Skewness")
    m2, m3, _ = _central_moments(r)
    return m3 / m2**1.5


def kurtosis(returns: ReturnsLike, *, excess: bool) -> float:
    """Moment kurtosis; ``excess`` is required so that the convention is always explicit.

    Args:
        returns: Daily simple returns.
        excess: True for excess kurtosis (normal = 0, scipy's default ``fisher=True``);
            False for raw kurtosis (normal = 3, what PSR/DSR formulas use).
    """
    r = as_returns(returns, min_obs=2)
    _require_dispersion(r, "Kurtosis")
    m2, _, m4 = _central_moments(r)
    return m4 / m2**2 - (3.0 if excess else 0.0)


class AlphaBeta(NamedTuple):
    """Annualised alpha (compounded, empyrical's convention) and beta against a benchmark."""

    alpha: float
    beta: float


def _aligned(returns: ReturnsLike, benchmark: ReturnsLike) -> tuple[np.ndarray, np.ndarray]:
    if (
        isinstance(returns, pl.DataFrame)
        and isinstance(benchmark, pl.DataFrame)
        and "date" in returns.columns
        and "date" in benchmark.columns
    ):
        left = _pick_column(returns, "returns", None).alias("__r")
        right = _pick_column(benchmark, "benchmark", None).alias("__b")
        joined = pl.DataFrame([returns["date"], left]).join(
            pl.DataFrame([benchmark["date"], right]), on="date", how="left"
        )
        missing = joined.filter(pl.col("__b").is_null())
        if missing.height:
            raise DataError(
                f"The benchmark lacks {missing.height} of the {joined.height} return "
                f"dates, first {missing['date'][0]}.",
                fix="restrict the returns to dates the benchmark covers.",
            )
        returns, benchmark = joined["__r"], joined["__b"]
    r = as_returns(returns, min_obs=2)
    b = as_returns(benchmark, what="benchmark returns", min_obs=2)
    if r.size != b.size:
        raise InputError(
            f"The returns have {r.size} values and the benchmark {b.size}.",
            fix="pass aligned arrays of equal length, or two polars frames with a date column.",
        )
    return r, b


def alpha_beta(
    returns: ReturnsLike,
    benchmark: ReturnsLike,
    risk_free: float = 0.0,
    periods: int = PERIODS_PER_YEAR,
) -> AlphaBeta:
    """CAPM alpha and beta against a benchmark (empyrical's ``alpha_beta``).

    Arrays must be aligned session by session; two polars frames ``date, <series>`` are
    aligned on ``date`` and every return date must have a benchmark value.

    Returns:
        ``AlphaBeta(alpha, beta)``: ``beta = cov(r, b) / var(b)``; ``alpha`` is the mean
        residual ``r - rf - beta * (b - rf)`` compounded: ``(1 + mean) ** periods - 1``.

    Raises:
        UndefinedMetricError: the benchmark has zero variance.
    """
    _check_periods(periods)
    r, b = _aligned(returns, benchmark)
    if b.max() == b.min():
        raise UndefinedMetricError(
            "Beta undefined: the benchmark returns have zero variance.",
            fix="use a benchmark that moves (e.g. SPY returns), not a constant series.",
        )
    db = b - b.mean()
    beta = float(np.mean(db * r) / np.mean(db**2))
    residual = (r - risk_free) - beta * (b - risk_free)
    return AlphaBeta(alpha=float((1.0 + residual.mean()) ** periods - 1.0), beta=beta)


def annual_turnover(
    turnover: ReturnsLike, periods: int = PERIODS_PER_YEAR, *, column: str | None = None
) -> float:
    """Mean per-session turnover times ``periods`` (e.g. 12.6 = the book traded 12.6x a year).

    Args:
        turnover: Per-session turnover (fraction of capital traded), as an array, a Series,
            or a frame with a ``turnover`` column (a backtest's ``returns`` frame).
        periods: Periods per year.
        column: Column read from a frame (default: ``turnover`` when present).

    Raises:
        DataError: negative turnover.
    """
    _check_periods(periods)
    if isinstance(turnover, pl.DataFrame) and column is None and "turnover" in turnover.columns:
        column = "turnover"
    t = as_returns(turnover, what="turnover", column=column)
    if (t < 0).any():
        raise DataError(
            f"Turnover must be >= 0, found {t.min()}.",
            fix="pass traded notional as a fraction of capital (sum of |weight changes|).",
        )
    return float(t.mean() * periods)


# PerformanceSummary and performance_summary live in metrics_summary, which imports this module:
# they are re-exported lazily (PEP 562) so that either module can be imported first.
_SUMMARY_NAMES = frozenset({"PerformanceSummary", "performance_summary"})


def __getattr__(name: str) -> Any:
    if name in _SUMMARY_NAMES:
        return getattr(importlib.import_module("quantdesk.quant_core.metrics_summary"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
