"""Result types of the Sharpe-ratio tests: PSRResult, MinTRLResult and DSRResult.

Each result carries the statistic and every input it used (per-period Sharpe, number of
observations, skew, RAW kurtosis, annualisation, where the moments came from), so a reported
number can be checked and reproduced. The formulas are in :mod:`.sharpe_inference`, which
re-exports these types.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DSRResult", "MinTRLResult", "PSRResult"]


@dataclass(frozen=True)
class PSRResult:
    """Probabilistic Sharpe ratio and the inputs it used.

    Attributes:
        psr: Probability that the true Sharpe exceeds ``sr_benchmark``.
        z: The standardised statistic inside Φ.
        sr: Observed per-period Sharpe ratio.
        sr_benchmark: Benchmark per-period Sharpe ratio SR*.
        sr_std: Standard error of the per-period Sharpe estimate.
        n_obs: Number of returns.
        skew: Skewness of the returns.
        kurtosis: RAW kurtosis of the returns (normal = 3).
        annualization: Periods per year, used only for the annualised views.
        source: ``"returns"`` or ``"moments"`` (explicit inputs).
    """

    psr: float
    z: float
    sr: float
    sr_benchmark: float
    sr_std: float
    n_obs: int
    skew: float
    kurtosis: float
    annualization: int
    source: str

    @property
    def sr_annualized(self) -> float:
        """Observed Sharpe times ``sqrt(annualization)``."""
        return self.sr * math.sqrt(self.annualization)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, with the kurtosis convention spelled out."""
        return {**asdict(self), "sr_annualized": self.sr_annualized, "kurtosis_convention": "raw"}


@dataclass(frozen=True)
class MinTRLResult:
    """Minimum track record length and the inputs it used.

    Attributes:
        min_obs: Observations needed for PSR(sr_benchmark) to reach ``confidence`` (real number).
        min_years: ``min_obs / annualization``.
        sr: Observed per-period Sharpe ratio.
        sr_benchmark: Benchmark per-period Sharpe ratio SR*.
        skew: Skewness of the returns.
        kurtosis: RAW kurtosis of the returns (normal = 3).
        confidence: Required probability ``1 - α``.
        annualization: Periods per year.
        n_obs: Observations available (``None`` for explicit moments without ``n_obs``).
        source: ``"returns"`` or ``"moments"``.
    """

    min_obs: float
    min_years: float
    sr: float
    sr_benchmark: float
    skew: float
    kurtosis: float
    confidence: float
    annualization: int
    n_obs: int | None
    source: str

    @property
    def sufficient(self) -> bool | None:
        """Whether the available track record is long enough (``None`` when unknown)."""
        return None if self.n_obs is None else self.n_obs >= self.min_obs

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, with the kurtosis convention spelled out."""
        return {**asdict(self), "sufficient": self.sufficient, "kurtosis_convention": "raw"}


@dataclass(frozen=True)
class DSRResult:
    """Deflated Sharpe ratio and every input it used.

    Attributes:
        dsr: ``PSR(sr0)``: probability that the true Sharpe exceeds the best Sharpe expected
            from ``n_trials`` skill-less trials.
        z: The standardised statistic inside Φ.
        sr: Observed per-period Sharpe ratio of the selected strategy.
        sr0: Deflated benchmark: expected maximum per-period Sharpe of ``n_trials`` null trials.
        psr: Undeflated ``PSR(0)``, for comparison.
        sr_std: Standard error of the per-period Sharpe estimate.
        n_trials: Number of trials (may be an effective, non-integer count).
        n_obs: Number of returns.
        skew: Skewness of the returns.
        kurtosis: RAW kurtosis of the returns (normal = 3).
        var_trial_sharpes: Variance of the per-period trial Sharpes (``None`` when N = 1).
        annualization: Periods per year.
        source: ``"returns"`` or ``"moments"``.
    """

    dsr: float
    z: float
    sr: float
    sr0: float
    psr: float
    sr_std: float
    n_trials: float
    n_obs: int
    skew: float
    kurtosis: float
    var_trial_sharpes: float | None
    annualization: int
    source: str

    @property
    def sr_annualized(self) -> float:
        """Observed Sharpe times ``sqrt(annualization)``."""
        return self.sr * math.sqrt(self.annualization)

    @property
    def sr0_annualized(self) -> float:
        """Deflated benchmark times ``sqrt(annualization)``."""
        return self.sr0 * math.sqrt(self.annualization)

    def passed(self, threshold: float = 0.95) -> bool:
        """Whether ``dsr >= threshold`` (0.95: a 5% false-positive rate after deflation)."""
        return self.dsr >= threshold

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, with annualised views and the kurtosis convention."""
        return {
            **asdict(self),
            "sr_annualized": self.sr_annualized,
            "sr0_annualized": self.sr0_annualized,
            "kurtosis_convention": "raw",
        }
