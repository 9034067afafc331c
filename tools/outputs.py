"""Output pieces shared by several tools: trial, deflated Sharpe and look-ahead summaries.

Non-finite numbers never reach an envelope: :func:`finite` maps NaN and infinity to ``None``,
so every result is valid JSON.
"""

from __future__ import annotations

import math
from datetime import date
from typing import TYPE_CHECKING, Any

from quantdesk.tools.envelope import ToolModel

if TYPE_CHECKING:
    from quantdesk.quant_core.sharpe_inference import DSRResult
    from quantdesk.quant_core.trials import TrialRecord
    from quantdesk.tools.lookahead import LookaheadReport

__all__ = [
    "DeflatedSharpe",
    "LookaheadSummary",
    "TrialSummary",
    "finite",
    "finite_dict",
]


def finite(value: Any) -> float | None:
    """Return ``value`` as a float, or ``None`` when it is missing, NaN or infinite."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def finite_dict(values: dict[str, Any]) -> dict[str, float | None]:
    """Apply :func:`finite` to every numeric value of a mapping (others are dropped)."""
    numeric = {k: v for k, v in values.items() if v is None or _is_number(v)}
    return {k: finite(v) for k, v in numeric.items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class TrialSummary(ToolModel):
    """A recorded trial, as tools report it.

    Attributes:
        trial_id: Registry id (pass it to ``deflated_sharpe``, ``pbo``, ``risk_report``).
        number: 1, 2, ... within the research context.
        kind: ``cv`` or ``backtest`` (or another registry kind).
        description: What was run.
        created_at: Recording time (UTC, ISO).
        n_obs: Returns in the trial series.
        period_sessions: Sessions per return (the label horizon for CV trials).
        first_date: First return date.
        last_date: Last return date.
        sharpe_annualised: Annualised Sharpe of the trial series (per-session Sharpe x sqrt 252).
        config_hash: Hash of the configuration.
        data_hash: Hash of the data.
    """

    trial_id: str
    number: int
    kind: str
    description: str
    created_at: str
    n_obs: int
    period_sessions: int
    first_date: date | None
    last_date: date | None
    sharpe_annualised: float | None
    config_hash: str
    data_hash: str

    @classmethod
    def of(cls, record: TrialRecord) -> TrialSummary:
        """Summarise a :class:`~quantdesk.quant_core.trials.TrialRecord`."""
        return cls(
            trial_id=record.trial_id,
            number=record.number,
            kind=record.kind,
            description=record.description,
            created_at=record.created_at.isoformat(),
            n_obs=record.n_obs,
            period_sessions=record.period_sessions,
            first_date=record.first_date,
            last_date=record.last_date,
            sharpe_annualised=finite(record.sr_annualised),
            config_hash=record.config_hash,
            data_hash=record.data_hash,
        )


class DeflatedSharpe(ToolModel):
    """The deflated Sharpe ratio of a reported Sharpe, given its context's trials.

    Attributes:
        dsr: Probability that the true Sharpe exceeds the best of ``n_trials`` skill-less
            trials (Bailey & López de Prado 2014); 0.95 is the usual bar.
        passes_0_95: ``dsr >= 0.95``.
        psr: Undeflated probabilistic Sharpe ratio PSR(0).
        sharpe_annualised: The observed Sharpe, annualised.
        sr0_annualised: The deflated benchmark (expected best null Sharpe), annualised.
        n_trials: Trials it was deflated by (may be effective, non-integer).
        n_obs: Observations behind the Sharpe (sessions).
        skew: Skewness of the returns.
        kurtosis: RAW kurtosis (normal = 3).
    """

    dsr: float | None
    passes_0_95: bool
    psr: float | None
    sharpe_annualised: float | None
    sr0_annualised: float | None
    n_trials: float
    n_obs: int
    skew: float | None
    kurtosis: float | None

    @classmethod
    def of(cls, result: DSRResult) -> DeflatedSharpe:
        """Summarise a :class:`~quantdesk.quant_core.sharpe_inference.DSRResult`."""
        return cls(
            dsr=finite(result.dsr),
            passes_0_95=bool(result.passed(0.95)),
            psr=finite(result.psr),
            sharpe_annualised=finite(result.sr_annualized),
            sr0_annualised=finite(result.sr0_annualized),
            n_trials=float(result.n_trials),
            n_obs=int(result.n_obs),
            skew=finite(result.skew),
            kurtosis=finite(result.kurtosis),
        )


class LookaheadSummary(ToolModel):
    """What the look-ahead perturbation check compared.

    Attributes:
        passed: No feature value at or before a cut changed.
        symbols: The symbol sample.
        cut_dates: The cut dates.
        n_values: Feature values compared.
        leaking: Features that changed (empty when passed).
        seconds: Time the check took.
    """

    passed: bool
    symbols: list[str]
    cut_dates: list[date]
    n_values: int
    leaking: list[str]
    seconds: float

    @classmethod
    def of(cls, report: LookaheadReport) -> LookaheadSummary:
        """Summarise a :class:`~quantdesk.tools.lookahead.LookaheadReport`."""
        return cls(
            passed=report.passed,
            symbols=list(report.symbols),
            cut_dates=list(report.cut_dates),
            n_values=report.n_values,
            leaking=list(report.leaking),
            seconds=round(report.seconds, 4),
        )
