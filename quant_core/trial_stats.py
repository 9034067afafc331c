"""Selection statistics of a set of trials: N, the variance of their Sharpes and N_eff.

The Deflated Sharpe Ratio of a trial needs the number of trials N and the variance V of their
Sharpe ratios (:class:`TrialStats`). Highly correlated trials (re-runs, small parameter tweaks)
are not independent tests, so :func:`_stats` can replace N by an effective number: it aligns the
return series on their dates, computes pairwise Pearson correlations over the dates each pair
shares (:func:`_aligned_correlation`) and hands the matrix to
:func:`quantdesk.quant_core.sharpe_inference.effective_number_of_trials`. Pairs sharing fewer than
``min_overlap`` observations count as uncorrelated, which can only raise N_eff (conservative).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import polars as pl

from quantdesk.quant_core.errors import InputError

__all__ = ["EffectiveMethod", "TrialStats"]

EffectiveMethod = Literal["count", "clusters", "average_correlation", "participation_ratio"]
_EFFECTIVE_METHODS: tuple[str, ...] = get_args(EffectiveMethod)


@dataclass(frozen=True)
class TrialStats:
    """What the DSR needs from a context's trials.

    Attributes:
        context_id: The research context.
        kind: Trial kind the statistics were restricted to (``None``: all kinds).
        n_trials: Number of trials N.
        var_trial_sharpes: Variance (``ddof=1``) of the per-period trial Sharpes; 0.0 when N = 1
            (one trial involves no selection).
        mean_trial_sharpe: Mean per-period trial Sharpe.
        max_trial_sharpe: Largest per-period trial Sharpe.
        n_effective: Effective number of independent trials (equals N with ``method="count"``).
        mean_correlation: Mean pairwise correlation ρ̄ of the aligned return series (``None``
            when not computed).
        method: ``"count"`` (N_eff = N) or ``"mean_correlation"`` (N_eff = ρ̄ + (1 - ρ̄) N).
        min_overlap: Fewest shared observations for a pair's correlation to be used.
        trial_ids: The trials included, in recording order.
    """

    context_id: str
    kind: str | None
    n_trials: int
    var_trial_sharpes: float
    mean_trial_sharpe: float
    max_trial_sharpe: float
    n_effective: float
    mean_correlation: float | None
    method: str
    min_overlap: int
    trial_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dictionary."""
        out = dataclasses.asdict(self)
        out["trial_ids"] = list(self.trial_ids)
        return out


def _aligned_correlation(series: list[pl.DataFrame], min_overlap: int) -> np.ndarray:
    """Pairwise Pearson correlation of return series aligned on their dates.

    Each pair uses the dates both series have. Series stored without dates align by position
    with each other and never with dated ones. Pairs sharing fewer than ``min_overlap``
    observations (or constant on their overlap) get 0.
    """
    keys = []
    for frame in series:
        dates = frame["date"]
        if dates.null_count() == 0:
            keys.append(dates.to_physical().to_numpy().astype(np.int64))
        else:  # dateless: a key space of its own, far from any date's day number
            keys.append(np.arange(frame.height, dtype=np.int64) + 10**9)
    union = np.unique(np.concatenate(keys))
    x = np.full((union.size, len(series)), np.nan)
    for j, (key, frame) in enumerate(zip(keys, series, strict=True)):
        x[np.searchsorted(union, key), j] = frame["ret"].to_numpy()
    present = ~np.isnan(x)
    mask = present.astype(np.float64)
    x = np.where(present, x - np.nanmean(x, axis=0), 0.0)  # centring improves the sums' precision
    with np.errstate(divide="ignore", invalid="ignore"):
        n = mask.T @ mask
        mean_i = (x.T @ mask) / n  # [i, j]: mean of series i over the dates shared with j
        var_i = ((x**2).T @ mask) / n - mean_i**2
        cov = (x.T @ x) / n - mean_i * mean_i.T
        corr = cov / np.sqrt(var_i * var_i.T)
        # A series constant on the overlap leaves a rounding residue, not a variance.
        varies = var_i > 1e-10 * (((x**2).T @ mask) / n)
    usable = (n >= min_overlap) & varies & varies.T & np.isfinite(corr)
    corr = np.where(usable, np.clip(corr, -1.0, 1.0), 0.0)
    corr = (corr + corr.T) / 2.0
    np.fill_diagonal(corr, 1.0)
    return corr


def _stats(
    context_id: str,
    kind: str | None,
    sharpes: dict[str, float],
    series: list[pl.DataFrame],
    method: str,
    min_correlation: float,
    min_overlap: int,
) -> TrialStats:
    if method not in _EFFECTIVE_METHODS:
        raise InputError(f"method={method!r} is unknown.", fix=f"use one of {_EFFECTIVE_METHODS}.")
    if isinstance(min_overlap, bool) or not isinstance(min_overlap, int) or min_overlap < 3:
        raise InputError(f"min_overlap={min_overlap!r} is invalid.", fix="pass an integer >= 3.")
    values = np.fromiter(sharpes.values(), dtype=np.float64, count=len(sharpes))
    n = values.size
    n_eff, rho = float(n), None
    if method != "count" and n > 1:
        from quantdesk.quant_core.sharpe_inference import effective_number_of_trials

        corr = _aligned_correlation(series, min_overlap)
        rho = float((corr.sum() - n) / (n * (n - 1)))
        n_eff = effective_number_of_trials(
            correlation=corr, method=method, min_correlation=min_correlation
        )
    return TrialStats(
        context_id=context_id,
        kind=kind,
        n_trials=n,
        var_trial_sharpes=float(np.var(values, ddof=1)) if n > 1 else 0.0,
        mean_trial_sharpe=float(values.mean()),
        max_trial_sharpe=float(values.max()),
        n_effective=n_eff,
        mean_correlation=rho,
        method=method,
        min_overlap=min_overlap,
        trial_ids=tuple(sharpes),
    )
