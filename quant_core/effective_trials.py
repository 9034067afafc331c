"""Effective number of trials among correlated ones, and the return-matrix validation it uses.

Correlated trials are not independent draws, so the ``N`` of the Deflated Sharpe Ratio may be
replaced by an effective count (:func:`effective_number_of_trials`; the methods and their
sources are in its docstring). :func:`_as_return_matrix` validates a T x N matrix of returns
(numpy 2-D, or polars ``date, <s1>, <s2>, ...``) and is shared with :mod:`.overfitting` and
:mod:`.multiple_testing`. :mod:`.sharpe_inference` re-exports :func:`effective_number_of_trials`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import polars as pl

from quantdesk.quant_core.conventions import finite_float
from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError
from quantdesk.quant_core.metrics import UndefinedMetricError

__all__ = ["effective_number_of_trials"]

_EFFECTIVE_METHODS = ("clusters", "average_correlation", "participation_ratio")


def _as_return_matrix(
    returns: Any, *, what: str = "returns matrix", min_obs: int = 2, min_cols: int = 1
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Validate a T x N matrix of returns (numpy 2-D or polars ``date, <s1>, <s2>, ...``)."""
    if isinstance(returns, pl.DataFrame):
        frame = returns.drop("date") if "date" in returns.columns else returns
        non_numeric = [c for c, t in frame.schema.items() if not t.is_numeric()]
        if non_numeric:
            raise InputError(
                f"The {what} has non-numeric columns {non_numeric}.",
                fix="keep 'date' plus one numeric column per strategy.",
            )
        names = tuple(frame.columns)
        matrix = frame.to_numpy().astype(np.float64) if frame.width else np.empty((0, 0))
    else:
        try:
            matrix = np.asarray(returns, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"The {what} is not numeric: {exc}.", fix="pass a T x N array of floats."
            ) from None
        if matrix.ndim != 2:
            raise InputError(
                f"The {what} must be two-dimensional (T observations x N strategies), got shape "
                f"{matrix.shape}.",
                fix="stack the strategies as columns, e.g. np.column_stack([...]).",
            )
        names = tuple(f"s{i}" for i in range(matrix.shape[1]))
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"The {what} has {int(bad.sum())} NaN/inf/null value(s), first at row {row}, "
            f"column {names[col]!r}.",
            fix="align the strategies on common dates (inner join) and drop or fill the gaps "
            "explicitly before testing.",
        )
    t, k = matrix.shape
    if t < min_obs or k < min_cols:
        raise InsufficientDataError(
            f"The {what} has shape {matrix.shape}; this needs at least {min_obs} observations "
            f"and {min_cols} strategies.",
            fix="use a longer sample or more strategies.",
        )
    return matrix, names


def _correlation_from(returns: Any, correlation: Any) -> np.ndarray:
    if (returns is None) == (correlation is None):
        raise InputError(
            "Pass exactly one of returns (T x N) or correlation (N x N).",
            fix="e.g. effective_number_of_trials(returns_matrix) or (correlation=corr).",
        )
    if returns is not None:
        matrix, names = _as_return_matrix(returns, what="trial returns", min_obs=3)
        flat = matrix.max(axis=0) == matrix.min(axis=0)
        if flat.any():
            raise UndefinedMetricError(
                f"Correlation undefined: trial {names[int(np.argmax(flat))]!r} has zero variance.",
                fix="drop trials that never traded before counting effective trials.",
            )
        return np.atleast_2d(np.corrcoef(matrix, rowvar=False))
    corr = np.asarray(correlation, dtype=np.float64)
    ok = (
        corr.ndim == 2
        and corr.shape[0] == corr.shape[1]
        and corr.shape[0] >= 1
        and bool(np.isfinite(corr).all())
        and np.allclose(corr, corr.T, atol=1e-8)
        and np.allclose(np.diag(corr), 1.0, atol=1e-8)
        and bool((np.abs(corr) <= 1.0 + 1e-8).all())
    )
    if not ok:
        raise InputError(
            f"correlation (shape {corr.shape}) is not a correlation matrix (square, symmetric, "
            "unit diagonal, entries in [-1, 1], finite).",
            fix="pass np.corrcoef(returns, rowvar=False) or the returns themselves.",
        )
    return corr


def effective_number_of_trials(
    returns: Any = None,
    *,
    correlation: Any = None,
    method: Literal["clusters", "average_correlation", "participation_ratio"] = "clusters",
    min_correlation: float = 0.9,
) -> float:
    """Effective number of independent trials among correlated ones.

    Methods (``N`` trials, correlation matrix ``C`` with eigenvalues ``λ``):

    * ``"clusters"`` (default): trials are grouped by complete-linkage hierarchical
      clustering on the distance ``1 - ρ`` cut at ``1 - min_correlation``, so every pair of
      trials inside a group correlates at least ``min_correlation``; the count of groups is
      returned. This is the clustered-trials idea of López de Prado (2020), *Machine Learning
      for Asset Managers*, ch. 8 (there with ONC clustering), with a fixed, auditable threshold.
      Re-runs and small parameter tweaks collapse into one trial, while strategies that merely
      share a market factor (ρ ≈ 0.5-0.8) stay separate, which keeps the DSR conservative.
    * ``"average_correlation"``: ``N / (1 + (N - 1) ρ̄)`` with ρ̄ the mean off-diagonal
      correlation floored at 0: the number of independent draws whose mean has the variance of
      the mean of ``N`` equicorrelated ones. Caution: a common factor (all long-only equity
      strategies) drives it towards 1 although the DSR's cross-sectional ``V`` already removes
      that factor, so it understates N for the DSR.
    * ``"participation_ratio"``: ``(Σλ)² / Σλ² = N² / ||C||_F²``, the eigenvalue-based count
      of dimensions; continuous in ``C``, with the same common-factor caveat (weaker: ρ²).

    Eigenvalue counts built on fractional parts (Li & Ji 2005) or on eigenvalue variance
    (Nyholt 2004) are not offered: Li-Ji counts two trials with ρ = 0.999 as 2 but with
    ρ = 1 as 1, and Nyholt counts 10 groups of 10 duplicates as 91.

    Args:
        returns: T x N trial returns (numpy or polars ``date, <trial>...``), aligned, no gaps.
        correlation: Alternatively the N x N correlation matrix.
        method: One of the methods above.
        min_correlation: Threshold of the ``"clusters"`` method, in (-1, 1].

    Returns:
        The effective number of trials, in ``[1, N]``.

    Raises:
        InputError: both or neither input, a malformed correlation matrix, an unknown method.
        DataError: NaN or gaps in the returns.
    """
    if method not in _EFFECTIVE_METHODS:
        raise InputError(f"method={method!r} is unknown.", fix=f"use one of {_EFFECTIVE_METHODS}.")
    corr = _correlation_from(returns, correlation)
    n = corr.shape[0]
    if n == 1:
        return 1.0
    if method == "clusters":
        threshold = finite_float(min_correlation, "min_correlation")
        if not -1.0 < threshold <= 1.0:
            raise InputError(
                f"min_correlation={threshold!r} is not in (-1, 1].", fix="use e.g. 0.9."
            )
        dist = np.clip(1.0 - (corr + corr.T) / 2.0, 0.0, 2.0)
        np.fill_diagonal(dist, 0.0)
        # imported here: scipy.cluster costs ~0.25 s to import and only this method needs it
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import squareform

        tree = linkage(squareform(dist, checks=False), method="complete")
        # A hair of tolerance so that exact duplicates at rho == threshold merge despite rounding.
        labels = fcluster(tree, t=1.0 - threshold + 1e-12, criterion="distance")
        return float(np.unique(labels).size)
    if method == "average_correlation":
        rho = (corr.sum() - np.trace(corr)) / (n * (n - 1))
        return float(n / (1.0 + (n - 1) * max(0.0, rho)))
    return float(min(n, max(1.0, n**2 / float(np.sum(corr**2)))))
