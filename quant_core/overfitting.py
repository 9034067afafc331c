"""Probability of backtest overfitting (PBO) by combinatorially symmetric cross-validation.

Source: Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting",
SSRN 2326253 (2015), Journal of Computational Finance 20(4), 2017: the CSCV procedure and its
PBO, performance-degradation and probability-of-loss statistics.

Given ``M``, a T x N matrix of the returns of N strategy variants (columns) over T periods:

1. Split the rows into ``S`` (even) contiguous blocks of equal size. When ``T`` is not a
   multiple of ``S`` the oldest ``T mod S`` rows are dropped (reported as ``rows_dropped``).
2. For each of the ``C(S, S/2)`` combinations ``c`` of blocks, the union is the in-sample (IS)
   set ``J`` and the complement the out-of-sample (OOS) set ``J̄`` (same length).
3. Score every strategy on ``J`` (vector ``R``) and on ``J̄`` (vector ``R̄``) with the metric
   (default: per-period Sharpe ratio, mean / std with ddof=1).
4. Select the IS-best strategy ``n* = argmax R`` (first on ties), take its OOS relative rank
   ``ω̄_c = rank(R̄_{n*}) / (N + 1)`` (ranks 1..N, ties averaged) and its logit
   ``λ_c = ln(ω̄_c / (1 - ω̄_c))``.
5. ``PBO = Σ_c 1{λ_c <= 0} / C(S, S/2)``: the share of splits in which the IS-best strategy
   lands at or below the OOS median.

When every strategy is noise, the IS choice says nothing about the OOS rank, which is then
uniform, so the expected PBO is 0.5 (exactly 0.5 for even N). Performance degradation is the
least-squares line ``R̄_{n*} = a + b · R_{n*}`` across splits (``b < 0``: the better it looks
IS, the worse OOS); the probability of loss is the share of splits with ``R̄_{n*} < 0``.

Vectorisation: per-block sums of the (column-centred) returns and of their squares are
computed once; a combination's IS sums are an indicator matrix (combinations x S) times the
block sums and its OOS sums the complement, so S = 16 (12,870 splits) over hundreds of
strategies takes milliseconds. Combinations are processed in chunks to bound memory. A
callable metric is supported but evaluated split by split (slow).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from quantdesk.quant_core.errors import InputError, InsufficientDataError
from quantdesk.quant_core.metrics import UndefinedMetricError
from quantdesk.quant_core.sharpe_inference import _as_return_matrix

__all__ = ["PBOResult", "probability_of_backtest_overfitting"]

MetricName = Literal["sharpe", "mean"]
_MAX_SPLITS = 20  # C(20, 10) = 184,756 splits; beyond that the count explodes
_CHUNK_ELEMENTS = 1_000_000  # bounds memory: combinations per chunk x 2N


@dataclass(frozen=True)
class PBOResult:
    """CSCV outcome: PBO, degradation and probability of loss, with the inputs used.

    Attributes:
        pbo: Share of splits whose IS-best strategy ranks at or below the OOS median.
        n_strategies: Number of strategies N.
        n_obs: Rows used (T minus ``rows_dropped``).
        n_splits: Number of blocks S.
        n_combinations: ``C(S, S/2)``, the number of IS/OOS splits.
        rows_per_block: Rows in each block.
        rows_dropped: Oldest rows dropped so that the blocks are equal.
        metric: Name of the performance metric.
        degradation_slope: Slope ``b`` of OOS on IS performance of the selected strategy
            (``None`` when the IS performance does not vary across splits).
        degradation_intercept: Intercept ``a`` of that line (``None`` likewise).
        degradation_r2: R² of that line (``None`` likewise).
        prob_oos_loss: Share of splits in which the selected strategy loses OOS (metric < 0).
        mean_logit: Mean of the logits λ_c.
        strategy_names: Column names (``s0, s1, ...`` for numpy input).
        logits: λ_c per split (lexicographic order of the IS block combinations).
        selected: Index of the IS-best strategy per split.
        is_performance: IS metric of the selected strategy per split.
        oos_performance: OOS metric of the selected strategy per split.
    """

    pbo: float
    n_strategies: int
    n_obs: int
    n_splits: int
    n_combinations: int
    rows_per_block: int
    rows_dropped: int
    metric: str
    degradation_slope: float | None
    degradation_intercept: float | None
    degradation_r2: float | None
    prob_oos_loss: float
    mean_logit: float
    strategy_names: tuple[str, ...] = field(repr=False)
    logits: np.ndarray = field(repr=False, compare=False)
    selected: np.ndarray = field(repr=False, compare=False)
    is_performance: np.ndarray = field(repr=False, compare=False)
    oos_performance: np.ndarray = field(repr=False, compare=False)

    def to_dict(self, *, include_arrays: bool = False) -> dict[str, Any]:
        """Plain JSON-ready dict; the per-split arrays only when ``include_arrays``."""
        out: dict[str, Any] = {
            name: getattr(self, name)
            for name in (
                "pbo",
                "n_strategies",
                "n_obs",
                "n_splits",
                "n_combinations",
                "rows_per_block",
                "rows_dropped",
                "metric",
                "degradation_slope",
                "degradation_intercept",
                "degradation_r2",
                "prob_oos_loss",
                "mean_logit",
            )
        }
        out["strategy_names"] = list(self.strategy_names)
        if include_arrays:
            for name in ("logits", "selected", "is_performance", "oos_performance"):
                out[name] = getattr(self, name).tolist()
        return out


def _check_splits(n_splits: Any, n_rows: int) -> int:
    if (
        isinstance(n_splits, bool)
        or not isinstance(n_splits, int | np.integer)
        or n_splits < 2
        or n_splits % 2
        or n_splits > _MAX_SPLITS
    ):
        raise InputError(
            f"n_splits={n_splits!r} must be an even integer between 2 and {_MAX_SPLITS}.",
            fix="use 16 (the paper's choice: 12,870 splits), or 8-12 for short samples.",
        )
    if n_rows // n_splits < 2:
        raise InsufficientDataError(
            f"{n_rows} rows cannot fill {n_splits} blocks of at least 2 rows.",
            fix="use fewer splits or a longer sample.",
        )
    return int(n_splits)


@functools.lru_cache(maxsize=4)
def _block_indicator(n_splits: int) -> np.ndarray:
    """Read-only (combinations x S) 0/1 matrix of the IS blocks, lexicographic order."""
    combos = list(itertools.combinations(range(n_splits), n_splits // 2))
    ind = np.zeros((len(combos), n_splits), dtype=np.float64)
    for row, combo in enumerate(combos):
        ind[row, list(combo)] = 1.0
    ind.flags.writeable = False
    return ind


def _sharpe_from_sums(
    shift: np.ndarray, s1: np.ndarray, s2: np.ndarray, n: int, names: tuple[str, ...], half: str
) -> np.ndarray:
    mean_dev = s1 / n
    var = (s2 - s1 * mean_dev) / (n - 1)
    # Relative floor: cancellation can leave a tiny positive residue for a flat series.
    flat = var <= 1e-14 * np.maximum(s2 / n, np.finfo(np.float64).tiny)
    if flat.any():
        col = int(np.argwhere(flat)[0][1])
        raise UndefinedMetricError(
            f"Sharpe ratio undefined: strategy {names[col]!r} has zero variance in some {half} "
            "half of the CSCV splits.",
            fix="drop strategies that do not trade for half the sample, trim the sample to "
            "when all trade, or use metric='mean'.",
        )
    return (shift + mean_dev) / np.sqrt(var)


def _scores_vectorised(
    matrix: np.ndarray,
    ind: np.ndarray,
    n_splits: int,
    metric: str,
    names: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t, k = matrix.shape
    rows = t // n_splits
    # Centring per column keeps the sum-of-squares variance free of cancellation.
    shift = matrix.mean(axis=0)
    dev = (matrix - shift).reshape(n_splits, rows, k)
    b1, b2 = dev.sum(axis=1), (dev**2).sum(axis=1)
    tot1, tot2 = b1.sum(axis=0), b2.sum(axis=0)
    n_half = rows * n_splits // 2
    both = np.hstack([b1, b2])
    chunk = max(256, _CHUNK_ELEMENTS // (2 * k))
    outputs = ([], [], [], [])
    for start in range(0, ind.shape[0], chunk):
        is12 = ind[start : start + chunk] @ both  # one product: BLAS calls are the cost here
        is1, is2 = is12[:, :k], is12[:, k:]
        oos1, oos2 = tot1 - is1, tot2 - is2
        if metric == "sharpe":
            r_is = _sharpe_from_sums(shift, is1, is2, n_half, names, "in-sample")
            r_oos = _sharpe_from_sums(shift, oos1, oos2, n_half, names, "out-of-sample")
        else:
            r_is, r_oos = shift + is1 / n_half, shift + oos1 / n_half
        for out, part in zip(outputs, _select(r_is, r_oos), strict=True):
            out.append(part)
    return tuple(np.concatenate(parts) for parts in outputs)  # type: ignore[return-value]


def _scores_callable(
    matrix: np.ndarray,
    ind: np.ndarray,
    n_splits: int,
    metric: Callable[[np.ndarray], Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t, k = matrix.shape
    block_of_row = np.repeat(np.arange(n_splits), t // n_splits)
    is_rows, oos_rows = [], []
    for combo in ind.astype(bool):
        in_sample = combo[block_of_row]
        for rows, sub in ((is_rows, matrix[in_sample]), (oos_rows, matrix[~in_sample])):
            values = np.asarray(metric(sub), dtype=np.float64)
            if values.shape != (k,) or not np.isfinite(values).all():
                raise InputError(
                    f"The metric returned {values!r} for a {sub.shape} block; it must return "
                    f"{k} finite values (one per strategy column).",
                    fix="make the metric map a (rows x strategies) array to one finite score "
                    "per column.",
                )
            rows.append(values)
    r_is, r_oos = np.vstack(is_rows), np.vstack(oos_rows)
    return _select(r_is, r_oos)


def _select(
    r_is: np.ndarray, r_oos: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """IS-best index, its OOS relative rank ω̄, and its IS and OOS scores, per split."""
    n_strat = r_is.shape[1]
    best = np.argmax(r_is, axis=1)
    pick = np.arange(best.size)
    oos_best = r_oos[pick, best]
    below = (r_oos < oos_best[:, None]).sum(axis=1)
    tied = (r_oos == oos_best[:, None]).sum(axis=1)  # includes the selected strategy
    rank = below + (tied + 1) / 2.0
    return best, rank / (n_strat + 1.0), r_is[pick, best], oos_best


def probability_of_backtest_overfitting(
    returns_matrix: Any,
    n_splits: int = 16,
    metric: MetricName | Callable[[np.ndarray], Any] = "sharpe",
) -> PBOResult:
    """Probability of backtest overfitting of a strategy search, by CSCV.

    Args:
        returns_matrix: T x N returns of the N variants tried (numpy 2-D, or a polars frame
            ``date, <variant>...``), aligned on the same T periods, no gaps, in time order.
        n_splits: Number of blocks S, even, 2..20 (16 in the paper: 12,870 splits).
        metric: ``"sharpe"`` (per-period mean / std, ddof=1), ``"mean"`` (mean return), or a
            callable mapping a (rows x N) array to N scores (evaluated split by split: slow).

    Returns:
        A :class:`PBOResult`.

    Raises:
        InputError: bad ``n_splits``/``metric``; a strategy with zero variance in a half.
        DataError: NaN/inf in the returns.
        InsufficientDataError: fewer than 2 strategies or too few rows for the blocks.
    """
    matrix, names = _as_return_matrix(
        returns_matrix, what="strategy returns matrix", min_obs=4, min_cols=2
    )
    s = _check_splits(n_splits, matrix.shape[0])
    dropped = matrix.shape[0] % s
    matrix = matrix[dropped:]
    ind = _block_indicator(s)
    if callable(metric):
        metric_name = getattr(metric, "__name__", "callable")
        best, omega, perf_is, perf_oos = _scores_callable(matrix, ind, s, metric)
    elif metric in ("sharpe", "mean"):
        metric_name = metric
        best, omega, perf_is, perf_oos = _scores_vectorised(matrix, ind, s, metric, names)
    else:
        raise InputError(
            f"metric={metric!r} is unknown.",
            fix="use 'sharpe', 'mean' or a callable (rows x strategies) -> scores.",
        )
    logits = np.log(omega / (1.0 - omega))
    slope = intercept = r2 = None
    x_dev = perf_is - perf_is.mean()
    sxx = float(x_dev @ x_dev)
    if sxx > 0.0:
        y_dev = perf_oos - perf_oos.mean()
        slope = float(x_dev @ y_dev) / sxx
        intercept = float(perf_oos.mean() - slope * perf_is.mean())
        syy = float(y_dev @ y_dev)
        r2 = float((x_dev @ y_dev) ** 2 / (sxx * syy)) if syy > 0.0 else 0.0
    return PBOResult(
        pbo=float(np.mean(logits <= 0.0)),
        n_strategies=matrix.shape[1],
        n_obs=matrix.shape[0],
        n_splits=s,
        n_combinations=math.comb(s, s // 2),
        rows_per_block=matrix.shape[0] // s,
        rows_dropped=dropped,
        metric=metric_name,
        degradation_slope=slope,
        degradation_intercept=intercept,
        degradation_r2=r2,
        prob_oos_loss=float(np.mean(perf_oos < 0.0)),
        mean_logit=float(logits.mean()),
        strategy_names=names,
        logits=logits,
        selected=best.astype(np.int64),
        is_performance=perf_is,
        oos_performance=perf_oos,
    )
