"""Data-snooping tests over many strategies, false discovery control, bootstrap Sharpe intervals.

White's Reality Check (White 2000, "A Reality Check for Data Snooping", Econometrica 68(5):
the statistic ``V`` and its bootstrap p-value) and Hansen's test of superior predictive
ability (Hansen 2005, "A Test for Superior Predictive Ability", Journal of Business & Economic
Statistics 23(4): statistic ``T^SPA``, recentring ``μ̂^l, μ̂^c, μ̂^u``, variance ``ω̂²``).
Null hypothesis: no strategy has a higher expected return than the benchmark. With
``d_{k,t} = r_{k,t} - b_t`` (benchmark ``b``; zero unless given) and ``d̄_k`` its mean over
``n`` periods:

* Reality Check: ``V = max_k sqrt(n) d̄_k``; bootstrap ``V* = max_k sqrt(n)(d̄*_k - d̄_k)``;
  ``p = share of V* > V``. Not studentized, recentred at ``d̄`` (Hansen's "upper" p-value).
* SPA: ``T = max(0, max_k sqrt(n) d̄_k / ω̂_k)``; bootstrap
  ``T* = max(0, max_k sqrt(n)(d̄*_k - μ̂_k) / ω̂_k)`` with ``μ̂^u = d̄`` (upper),
  ``μ̂^c = d̄ · 1{sqrt(n) d̄ / ω̂ >= -sqrt(2 ln ln n)}`` (consistent, the headline p-value) and
  ``μ̂^l = max(d̄, 0)`` (lower). ``ω̂²_k = γ̂_0 + 2 Σ_{i>=1} κ(n, i) γ̂_i`` with
  ``κ(n, i) = (n-i)/n (1-q)^i + i/n (1-q)^{n-i}``, ``q = 1 / block_size`` (Hansen's
  stationary-bootstrap variance, computed for all lags by FFT).

The resampling is ``arch.bootstrap.StationaryBootstrap`` (Politis & Romano 1994, JASA 89),
seeded. ``arch.bootstrap.SPA`` is not used for the statistic because arch 8 never studentizes
it (its ``studentize`` flag only feeds the consistent threshold); without studentization this
module reproduces ``arch.bootstrap.SPA``'s three p-values exactly (a test checks this).
The default block size is the Politis & White (2004) automatic choice for the stationary
bootstrap (Patton, Politis & White 2009 correction; ``arch.bootstrap.optimal_block_length``),
the median over strategies, rounded up.

False discovery rate: Benjamini & Hochberg (1995, JRSS-B 57(1), step-up procedure §3) and,
for arbitrary dependence, Benjamini & Yekutieli (2001, Annals of Statistics 29(4), Theorem
1.3: ``α`` divided by ``Σ_{i<=m} 1/i``). Adjusted q-values
``q_(i) = min_{j>=i} min(1, m c(m) p_(j) / j)`` equal ``scipy.stats.false_discovery_control``.

Sharpe confidence interval: the per-period Sharpe (mean / std, ddof=1) is re-estimated on
``reps`` seeded block-bootstrap resamples (stationary by default). ``interval="percentile"``
(default) takes the quantiles of the bootstrap Sharpes; ``"bca"`` adds Efron's (1987) bias
correction and acceleration, whose delete-one jackknife ignores serial dependence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from arch.bootstrap import (
    CircularBlockBootstrap,
    IIDBootstrap,
    StationaryBootstrap,
    optimal_block_length,
)

from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.metrics import (
    PERIODS_PER_YEAR,
    ReturnsLike,
    UndefinedMetricError,
    as_returns,
    per_period_sharpe,
)
from quantdesk.quant_core.settings import get_settings
from quantdesk.quant_core.sharpe_inference import _as_return_matrix

__all__ = [
    "FDRResult",
    "SharpeIntervalResult",
    "SuperiorityTestResult",
    "benjamini_hochberg",
    "reality_check",
    "sharpe_confidence_interval",
    "spa_test",
]

_REP_CHUNK = 256


@dataclass(frozen=True)
class SuperiorityTestResult:
    """Outcome of White's Reality Check or Hansen's SPA test, with the inputs used.

    Attributes:
        test: ``"white_reality_check"`` or ``"hansen_spa"``.
        p_value: Headline p-value (RC: upper, non-studentized; SPA: consistent, studentized).
        p_value_lower: p-value with the lower recentring ``max(d̄, 0)``.
        p_value_consistent: p-value with Hansen's consistent recentring.
        p_value_upper: p-value with the upper recentring ``d̄``.
        statistic: Observed statistic (``V`` or ``T^SPA``).
        studentized: Whether each strategy's mean was divided by ``ω̂_k``.
        best_strategy: Name of the strategy with the largest (studentized) excess mean.
        best_mean_excess: Its mean excess return per period over the benchmark.
        n_strategies: Number of strategies.
        n_obs: Number of periods.
        block_size: Expected block length of the stationary bootstrap.
        reps: Bootstrap replications.
        seed: Seed of the bootstrap.
        benchmark: ``"zero"`` or ``"given"``.
    """

    test: str
    p_value: float
    p_value_lower: float
    p_value_consistent: float
    p_value_upper: float
    statistic: float
    studentized: bool
    best_strategy: str
    best_mean_excess: float
    n_strategies: int
    n_obs: int
    block_size: int
    reps: int
    seed: int
    benchmark: str

    def rejected(self, alpha: float = 0.05) -> bool:
        """Whether the null "no strategy beats the benchmark" is rejected at ``alpha``."""
        return self.p_value <= alpha

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {**asdict(self), "bootstrap": "stationary"}


@dataclass(frozen=True)
class FDRResult:
    """Benjamini-Hochberg (or -Yekutieli) decisions, in the order the p-values were given.

    Attributes:
        rejected: Boolean mask of discoveries.
        q_values: Adjusted p-values; ``rejected == (q_values <= alpha)``.
        p_values: The input p-values.
        alpha: Target false discovery rate.
        method: ``"bh"`` (independent or positively dependent tests) or ``"by"`` (any dependence).
        n_tests: Number of hypotheses m.
        n_rejected: Number of discoveries.
        p_threshold: Largest p-value rejected (``None`` when nothing is rejected).
        names: Labels of the hypotheses (``None`` when the p-values had none).
    """

    rejected: np.ndarray = field(compare=False)
    q_values: np.ndarray = field(compare=False)
    p_values: np.ndarray = field(compare=False)
    alpha: float
    method: str
    n_tests: int
    n_rejected: int
    p_threshold: float | None
    names: tuple[str, ...] | None

    def discoveries(self) -> list[str | int]:
        """Names (or positions) of the rejected hypotheses, in input order."""
        where = np.flatnonzero(self.rejected)
        return [self.names[i] for i in where] if self.names else [int(i) for i in where]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "rejected": self.rejected.tolist(),
            "q_values": self.q_values.tolist(),
            "p_values": self.p_values.tolist(),
            "alpha": self.alpha,
            "method": self.method,
            "n_tests": self.n_tests,
            "n_rejected": self.n_rejected,
            "p_threshold": self.p_threshold,
            "names": list(self.names) if self.names else None,
        }


@dataclass(frozen=True)
class SharpeIntervalResult:
    """Bootstrap confidence interval of the per-period Sharpe ratio.

    Attributes:
        sr: Per-period Sharpe of the sample.
        lower: Lower bound, per period.
        upper: Upper bound, per period.
        level: Coverage, e.g. 0.95.
        method: Resampling scheme: ``"stationary"``, ``"circular"`` or ``"iid"``.
        interval: ``"percentile"`` or ``"bca"``.
        block_size: Expected (stationary) or fixed (circular) block length; 1 for iid.
        reps: Bootstrap replications.
        seed: Seed of the bootstrap.
        n_obs: Number of returns.
        annualization: Periods per year, for the annualised views.
    """

    sr: float
    lower: float
    upper: float
    level: float
    method: str
    interval: str
    block_size: int
    reps: int
    seed: int
    n_obs: int
    annualization: int

    @property
    def annualized(self) -> tuple[float, float, float]:
        """``(sr, lower, upper)`` times ``sqrt(annualization)``."""
        f = math.sqrt(self.annualization)
        return self.sr * f, self.lower * f, self.upper * f

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict with the annualised views."""
        sr_a, lo_a, up_a = self.annualized
        return {
            **asdict(self),
            "sr_annualized": sr_a,
            "lower_annualized": lo_a,
            "upper_annualized": up_a,
        }


def _positive_int(value: Any, name: str, minimum: int, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(f"{name}={value!r} must be an integer >= {minimum}.", fix=fix)
    return int(value)


def _resolve_seed(seed: int | None) -> int:
    if seed is None:
        return get_settings().seed
    return _positive_int(seed, "seed", 0, "pass a non-negative integer seed.")


def _resolve_block(data: np.ndarray, block_size: int | None) -> int:
    if block_size is not None:
        return _positive_int(
            block_size, "block_size", 1, "pass a positive block length or None (automatic)."
        )
    # Sparse series (mostly zeros) can make arch divide 0 by 0 in an autocorrelation; such
    # columns give NaN and are left out of the median (all NaN: no dependence found, 1).
    with np.errstate(invalid="ignore", divide="ignore"):
        lengths = optimal_block_length(data)["stationary"].to_numpy(dtype=np.float64)
    lengths = lengths[np.isfinite(lengths)]
    return max(1, math.ceil(float(np.median(lengths)))) if lengths.size else 1


def _stationary_variance(d: np.ndarray, block: int) -> np.ndarray:
    """Hansen's ``ω̂²`` per column: kernel-weighted autocovariances of all lags (by FFT)."""
    n = d.shape[0]
    x = d - d.mean(axis=0)
    nfft = 1 << (2 * n - 1).bit_length()
    spec = np.fft.rfft(x, n=nfft, axis=0)
    acov = np.fft.irfft(spec * spec.conj(), n=nfft, axis=0)[:n] / n
    lag = np.arange(n, dtype=np.float64)
    q = 1.0 / block
    kappa = (n - lag) / n * (1.0 - q) ** lag + lag / n * (1.0 - q) ** (n - lag)
    return acov[0] + 2.0 * (kappa[1:, None] * acov[1:]).sum(axis=0)


def _bootstrap_means(d: np.ndarray, block: int, reps: int, seed: int) -> np.ndarray:
    """(reps x k) means of stationary-bootstrap resamples of the rows of ``d``."""
    n = d.shape[0]
    # Resampling positions 0..n-1 yields the index draws themselves (same stream as arch's SPA).
    draws = StationaryBootstrap(block, np.arange(n), seed=seed).bootstrap(reps)
    out = np.empty((reps, d.shape[1]))
    counts = np.empty((min(reps, _REP_CHUNK), n))
    filled = 0
    for rep, (pos, _) in enumerate(draws):
        counts[rep - filled] = np.bincount(pos[0], minlength=n)
        if rep - filled + 1 == counts.shape[0] or rep + 1 == reps:
            used = rep - filled + 1
            out[filled : filled + used] = counts[:used] @ d / n
            filled += used
    return out


def _superiority(
    returns: Any,
    benchmark: ReturnsLike | None,
    *,
    test: str,
    studentize: bool,
    floor_at_zero: bool,
    block_size: int | None,
    reps: int,
    seed: int | None,
) -> SuperiorityTestResult:
    matrix, names = _as_return_matrix(returns, what="strategy returns matrix", min_obs=10)
    n, k = matrix.shape
    if benchmark is None:
        d = matrix
    else:
        b = as_returns(benchmark, what="benchmark returns")
        if b.size != n:
            raise InputError(
                f"The benchmark has {b.size} returns but the strategies have {n}.",
                fix="align the benchmark on the strategies' dates.",
            )
        d = matrix - b[:, None]
    reps = _positive_int(reps, "reps", 100, "use at least 100 (1000+ for reported p-values).")
    seed = _resolve_seed(seed)
    flat = d.max(axis=0) == d.min(axis=0)
    if not flat.any():
        block = _resolve_block(d, block_size)
        omega2 = _stationary_variance(d, block)
        flat = ~(omega2 > 0.0)
    if flat.any():
        raise UndefinedMetricError(
            f"Strategy {names[int(np.argmax(flat))]!r} has zero variance against the benchmark.",
            fix="drop strategies that never traded (or equal the benchmark) before testing.",
        )
    dbar = d.mean(axis=0)
    scale = np.sqrt(omega2) if studentize else np.ones(k)
    root_n = math.sqrt(n)
    t_obs = root_n * dbar / scale
    stat = float(max(t_obs.max(), 0.0) if floor_at_zero else t_obs.max())
    relevant = root_n * dbar / np.sqrt(omega2) >= -math.sqrt(2.0 * math.log(math.log(n)))
    centres = {
        "lower": np.maximum(dbar, 0.0),
        "consistent": np.where(relevant, dbar, 0.0),
        "upper": dbar,
    }
    boot = _bootstrap_means(d, block, reps, seed)
    p = {}
    for name, mu in centres.items():
        t_star = (root_n * (boot - mu) / scale).max(axis=1)
        if floor_at_zero:
            t_star = np.maximum(t_star, 0.0)
        p[name] = float(np.mean(t_star > stat))
    best = int(np.argmax(t_obs))
    return SuperiorityTestResult(
        test=test,
        p_value=p["consistent"] if studentize else p["upper"],
        p_value_lower=p["lower"],
        p_value_consistent=p["consistent"],
        p_value_upper=p["upper"],
        statistic=stat,
        studentized=studentize,
        best_strategy=names[best],
        best_mean_excess=float(dbar[best]),
        n_strategies=k,
        n_obs=n,
        block_size=block,
        reps=reps,
        seed=seed,
        benchmark="zero" if benchmark is None else "given",
    )


def reality_check(
    returns: Any,
    benchmark: ReturnsLike | None = None,
    *,
    block_size: int | None = None,
    reps: int = 1000,
    seed: int | None = None,
) -> SuperiorityTestResult:
    """White's Reality Check: does the best of many strategies beat the benchmark?

    Args:
        returns: T x N returns of every strategy tried (numpy 2-D or polars
            ``date, <strategy>...``), aligned, no gaps. Include all variants, not only the
            best, or the test loses its point.
        benchmark: Benchmark returns (length T); ``None`` tests against a zero return.
        block_size: Expected block length of the stationary bootstrap (``None``: automatic).
        reps: Bootstrap replications (>= 100).
        seed: Bootstrap seed (``None``: the ``QUANTDESK_SEED`` setting).

    Returns:
        A :class:`SuperiorityTestResult`; ``p_value`` is White's (upper, non-studentized).

    Raises:
        InputError: zero-variance strategy, misaligned benchmark, bad settings.
        DataError: NaN/inf in the returns.
    """
    return _superiority(
        returns,
        benchmark,
        test="white_reality_check",
        studentize=False,
        floor_at_zero=False,
        block_size=block_size,
        reps=reps,
        seed=seed,
    )


def spa_test(
    returns: Any,
    benchmark: ReturnsLike | None = None,
    *,
    block_size: int | None = None,
    reps: int = 1000,
    seed: int | None = None,
    studentize: bool = True,
) -> SuperiorityTestResult:
    """Hansen's test of superior predictive ability (studentized, consistent p-value).

    Less sensitive than the Reality Check to poor or irrelevant strategies in the set, and
    studentization stops high-volatility strategies from dominating the maximum.

    Args:
        returns: T x N returns of every strategy tried, aligned, no gaps.
        benchmark: Benchmark returns (length T); ``None`` tests against a zero return.
        block_size: Expected block length of the stationary bootstrap (``None``: automatic).
        reps: Bootstrap replications (>= 100).
        seed: Bootstrap seed (``None``: the ``QUANTDESK_SEED`` setting).
        studentize: Divide each mean by ``ω̂_k`` (Hansen). ``False`` reproduces
            ``arch.bootstrap.SPA`` (the statistic is then floored at 0 as in Hansen).

    Returns:
        A :class:`SuperiorityTestResult`; ``p_value`` is the consistent p-value when
        studentized, else the upper one.

    Raises:
        InputError: zero-variance strategy, misaligned benchmark, bad settings.
        DataError: NaN/inf in the returns.
    """
    return _superiority(
        returns,
        benchmark,
        test="hansen_spa",
        studentize=studentize,
        floor_at_zero=True,
        block_size=block_size,
        reps=reps,
        seed=seed,
    )


def benjamini_hochberg(
    p_values: Any,
    alpha: float = 0.05,
    *,
    method: Literal["bh", "by"] = "bh",
) -> FDRResult:
    """Control the false discovery rate across many signals (Benjamini & Hochberg 1995).

    Args:
        p_values: One p-value per hypothesis: an array-like, or a mapping ``name -> p``.
        alpha: Target false discovery rate, in (0, 1).
        method: ``"bh"`` (independent or positively dependent tests) or ``"by"``
            (Benjamini-Yekutieli, valid under any dependence, more conservative).

    Returns:
        An :class:`FDRResult` in the input order.

    Raises:
        InputError: empty input, p-values outside [0, 1] or not finite, bad alpha or method.
    """
    names: tuple[str, ...] | None = None
    if isinstance(p_values, Mapping):
        names = tuple(str(key) for key in p_values)
        p_values = list(p_values.values())
    p = as_returns(p_values, what="p-values")
    if ((p < 0.0) | (p > 1.0)).any():
        bad = float(p[np.argmax((p < 0.0) | (p > 1.0))])
        raise InputError(f"p-value {bad!r} is outside [0, 1].", fix="pass probabilities.")
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise InputError(f"alpha={alpha!r} is not in (0, 1).", fix="use e.g. 0.05 or 0.10.")
    if method not in ("bh", "by"):
        raise InputError(f"method={method!r} is unknown.", fix="use 'bh' or 'by'.")
    m = p.size
    c_m = float(np.sum(1.0 / np.arange(1, m + 1))) if method == "by" else 1.0
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, m * c_m * p[order] / np.arange(1, m + 1))
    q_sorted = np.minimum.accumulate(scaled[::-1])[::-1]
    q = np.empty(m)
    q[order] = q_sorted
    rejected = q <= alpha
    return FDRResult(
        rejected=rejected,
        q_values=q,
        p_values=p,
        alpha=float(alpha),
        method=method,
        n_tests=m,
        n_rejected=int(rejected.sum()),
        p_threshold=float(p[rejected].max()) if rejected.any() else None,
        names=names,
    )


def sharpe_confidence_interval(
    returns: ReturnsLike,
    level: float = 0.95,
    method: Literal["stationary", "circular", "iid"] = "stationary",
    block_size: int | None = None,
    reps: int = 1000,
    seed: int | None = None,
    *,
    interval: Literal["percentile", "bca"] = "percentile",
    annualization: int = PERIODS_PER_YEAR,
) -> SharpeIntervalResult:
    """Block-bootstrap confidence interval of the per-period Sharpe ratio.

    Args:
        returns: Simple returns (array, list, polars Series or frame ``date, <series>``).
        level: Two-sided coverage, in (0, 1).
        method: ``"stationary"`` (Politis-Romano), ``"circular"`` block, or ``"iid"``.
        block_size: Block length (``None``: Politis-White automatic choice; 1 for iid).
        reps: Bootstrap replications (>= 100).
        seed: Bootstrap seed (``None``: the ``QUANTDESK_SEED`` setting).
        interval: ``"percentile"`` or ``"bca"`` (see the module docstring).
        annualization: Periods per year, for the annualised views only.

    Returns:
        A :class:`SharpeIntervalResult` (per-period bounds; ``.annualized`` for annual ones).

    Raises:
        InputError: zero variance, too sparse returns for a bootstrap, bad settings.
    """
    r = as_returns(returns, min_obs=10)
    sr = per_period_sharpe(r)
    if not (isinstance(level, int | float) and 0.0 < level < 1.0):
        raise InputError(f"level={level!r} is not in (0, 1).", fix="use e.g. 0.95.")
    if interval not in ("percentile", "bca"):
        raise InputError(f"interval={interval!r} is unknown.", fix="use 'percentile' or 'bca'.")
    ann = _positive_int(annualization, "annualization", 1, "use 252 for daily returns.")
    reps = _positive_int(reps, "reps", 100, "use at least 100 (1000+ for reported intervals).")
    seed = _resolve_seed(seed)
    if method == "iid":
        block, bs = 1, IIDBootstrap(r, seed=seed)
    elif method in ("stationary", "circular"):
        block = _resolve_block(r[:, None], block_size)
        kind = StationaryBootstrap if method == "stationary" else CircularBlockBootstrap
        bs = kind(block, r, seed=seed)
    else:
        raise InputError(
            f"method={method!r} is unknown.", fix="use 'stationary', 'circular' or 'iid'."
        )

    def _sharpe(x: np.ndarray) -> float:
        std = x.std(ddof=1)
        # NaN marks a constant resample; counted and refused below rather than hidden.
        return float(x.mean() / std) if std > 0.0 else math.nan

    with np.errstate(invalid="ignore"):
        bounds = bs.conf_int(_sharpe, reps=reps, method=interval, size=level).ravel()
    if not np.isfinite(bounds).all():
        raise InputError(
            "Some bootstrap resamples of the returns are constant, so their Sharpe ratio is "
            "undefined.",
            fix="the returns are too sparse (mostly one value) for a bootstrap interval; use a "
            "longer sample or probabilistic_sharpe_ratio(...) instead.",
        )
    return SharpeIntervalResult(
        sr=sr,
        lower=float(bounds[0]),
        upper=float(bounds[1]),
        level=float(level),
        method=method,
        interval=interval,
        block_size=block,
        reps=reps,
        seed=seed,
        n_obs=int(r.size),
        annualization=ann,
    )
