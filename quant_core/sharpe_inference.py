"""Is a Sharpe ratio real? PSR, minimum track record length, deflated Sharpe, effective trials.

Units. Every formula here works on the **per-period** Sharpe ratio ``SR = mean / std``
(ddof=1, daily for daily returns, not annualised) and on **raw** kurtosis ``γ4`` (normal = 3,
not excess). Moments computed from returns come from
:func:`quantdesk.quant_core.metrics.sample_moments` (moment estimators: skew ``m3 / m2^1.5``,
kurtosis ``m4 / m2^2``). Explicit Sharpe inputs are per period unless
``sharpe_units="annualized"``, in which case a Sharpe is divided by ``sqrt(annualization)`` and
a variance of Sharpes by ``annualization``. Explicit per-period inputs implying an annualised
Sharpe above 10 are refused, because that is almost always an annualised value passed as per
period.

Probabilistic Sharpe ratio (Bailey & López de Prado 2012, "The Sharpe Ratio Efficient
Frontier", Journal of Risk 15(2), §3; the variance of the Sharpe estimate from Mertens 2002)::

    PSR(SR*) = Φ( (SR - SR*) · sqrt(n - 1) / sqrt(1 - γ3·SR + (γ4 - 1)/4 · SR²) )

Minimum track record length (same paper, §4): the ``n`` at which PSR(SR*) reaches the
confidence ``1 - α``::

    MinTRL = 1 + (1 - γ3·SR + (γ4 - 1)/4 · SR²) · (Z_{1-α} / (SR - SR*))²

Deflated Sharpe ratio (Bailey & López de Prado 2014, "The Deflated Sharpe Ratio: Correcting
for Selection Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management
40(5), the DSR definition): ``DSR = PSR(SR0)`` where SR0 is the expected maximum Sharpe of
``N`` trials whose true Sharpe is zero and whose estimated Sharpes have variance ``V`` (from
Bailey, Borwein, López de Prado & Zhu 2014, "Pseudo-Mathematics and Financial Charlatanism",
Notices of the AMS 61(5), restated in the DSR paper; γ is the Euler-Mascheroni constant)::

    SR0 = sqrt(V) · ((1 - γ) · Φ⁻¹(1 - 1/N) + γ · Φ⁻¹(1 - 1/(N·e)))

The paper's worked example (annualised SR 2.5, T = 1250 daily returns, N = 100, annualised
``V = 1/2``, skew -3, kurtosis 10) gives SR0 = 0.1132 and DSR = 0.9004 with 250 sessions a
year (the paper's own convention) and ``sqrt(T - 1)``; with 252 sessions it gives 0.8997. A
test pins both.

Effective number of trials: correlated trials are not independent draws, so ``N`` may be
replaced by an effective count. See :func:`effective_number_of_trials` for the methods.

The result types live in :mod:`.sharpe_results` and the effective number of trials in
:mod:`.effective_trials`; both are re-exported here.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Literal

from quantdesk.quant_core.conventions import PERIODS_PER_YEAR, finite_float
from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.sharpe_results import DSRResult, MinTRLResult, PSRResult

if TYPE_CHECKING:
    from quantdesk.quant_core.effective_trials import effective_number_of_trials
    from quantdesk.quant_core.metrics import ReturnsLike

# The standard normal from the standard library (erf-based CDF, Wichura's AS241 quantile): as
# accurate as scipy.stats.norm here and free to import. numpy and polars are imported only when
# returns or trial Sharpe lists are given: a Sharpe ratio given by its statistics (one CLI call)
# needs neither.
_NORMAL = NormalDist()

__all__ = [
    "EULER_MASCHERONI",
    "DSRResult",
    "MinTRLResult",
    "PSRResult",
    "SharpeUnits",
    "deflated_sharpe_ratio",
    "effective_number_of_trials",
    "expected_max_sharpe",
    "min_track_record_length",
    "probabilistic_sharpe_ratio",
]

# Re-exported from .effective_trials on first access (overfitting and multiple_testing import
# _as_return_matrix from here).
_FROM_EFFECTIVE_TRIALS = frozenset({"_as_return_matrix", "effective_number_of_trials"})


def __getattr__(name: str) -> Any:
    if name not in _FROM_EFFECTIVE_TRIALS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from quantdesk.quant_core import effective_trials

    value = getattr(effective_trials, name)
    globals()[name] = value
    return value


EULER_MASCHERONI = 0.5772156649015329
SharpeUnits = Literal["per_period", "annualized"]
# Above this annualised Sharpe an explicit "per-period" input is almost surely annualised.
_MAX_PLAUSIBLE_ANNUAL_SHARPE = 10.0


def _numpy_types(*names: str) -> tuple[type, ...]:
    """The numpy scalar types ``names``; none when numpy is not imported (no value is one)."""
    np = sys.modules.get("numpy")
    return tuple(getattr(np, n) for n in names) if np is not None else ()


@dataclass(frozen=True)
class _Moments:
    sr: float
    n_obs: int
    skew: float
    kurtosis: float
    source: str


def _check_annualization(annualization: Any) -> int:
    if (
        isinstance(annualization, bool)
        or not isinstance(annualization, (int, *_numpy_types("integer")))
        or annualization < 1
    ):
        raise InputError(
            f"annualization={annualization!r} must be a positive integer (periods per year).",
            fix="use 252 for daily returns, 52 for weekly, 12 for monthly.",
        )
    return int(annualization)


def _sharpe_per_period(
    value: Any,
    name: str,
    units: SharpeUnits,
    annualization: int,
    *,
    power: int = 1,
    check: bool = True,
) -> float:
    """Convert a Sharpe (power 1) or a variance of Sharpes (power 2) to per-period units."""
    x = finite_float(value, name)
    if units == "annualized":
        return x / annualization ** (power / 2)
    if units != "per_period":
        raise InputError(
            f"sharpe_units={units!r} is not a unit.", fix="use 'per_period' or 'annualized'."
        )
    implied = math.sqrt(abs(x)) if power == 2 else abs(x)
    implied *= math.sqrt(annualization)
    if check and implied > _MAX_PLAUSIBLE_ANNUAL_SHARPE:
        what = "standard deviation of Sharpes" if power == 2 else "Sharpe ratio"
        raise InputError(
            f"{name}={x!r} is read per period, which implies an annualised {what} of "
            f"{implied:.3g} at annualization={annualization}.",
            fix="pass sharpe_units='annualized' if the value is annualised (the formulas use "
            "per-period Sharpes: divide a Sharpe by sqrt(annualization), a variance by "
            "annualization); if it really is per period, the backtest is too good to be true: "
            "look for look-ahead bias or pass the returns themselves.",
        )
    return x


def _check_n_obs(n_obs: Any) -> int:
    if (
        isinstance(n_obs, bool)
        or not isinstance(n_obs, (int, *_numpy_types("integer")))
        or n_obs < 2
    ):
        raise InputError(
            f"n_obs={n_obs!r} must be an integer of at least 2 (the number of returns).",
            fix="pass the length of the return series the Sharpe was measured on.",
        )
    return int(n_obs)


def _resolve(
    returns: ReturnsLike | None,
    sr: Any,
    n_obs: Any,
    skew: Any,
    kurtosis: Any,
    *,
    units: SharpeUnits,
    annualization: int,
    need_n_obs: bool = True,
    check: bool = True,
) -> _Moments:
    explicit = {"sr": sr, "n_obs": n_obs, "skew": skew, "kurtosis": kurtosis}
    if returns is not None:
        given = [k for k, v in explicit.items() if v is not None]
        if given:
            raise InputError(
                f"Both returns and explicit moments {given} were given.",
                fix="pass either the returns (moments are computed from them) or sr, n_obs, "
                "skew and kurtosis, not both.",
            )
        from quantdesk.quant_core.metrics import sample_moments

        m = sample_moments(returns)
        return _Moments(m.sharpe, m.n_obs, m.skew, m.kurtosis, "returns")
    required = ["sr", "skew", "kurtosis"] + (["n_obs"] if need_n_obs else [])
    missing = [k for k in required if explicit[k] is None]
    if missing:
        raise InputError(
            f"Without returns, {missing} must be given.",
            fix="pass the returns, or the per-period sr, n_obs, skew and RAW kurtosis "
            "(skew=0, kurtosis=3 to assume normal returns).",
        )
    g3, g4 = finite_float(skew, "skew"), finite_float(kurtosis, "kurtosis")
    if g4 < 1.0 + g3 * g3:
        # Any distribution has kurtosis >= 1 + skew^2; failing it usually means excess kurtosis.
        raise InputError(
            f"kurtosis={g4!r} is impossible with skew={g3!r} (raw kurtosis >= 1 + skew² = "
            f"{1.0 + g3 * g3:.4g}).",
            fix="pass RAW kurtosis (normal = 3): raw = excess + 3.",
        )
    n = _check_n_obs(n_obs) if n_obs is not None else 0
    return _Moments(
        _sharpe_per_period(sr, "sr", units, annualization, check=check), n, g3, g4, "moments"
    )


def _sr_variance_factor(m: _Moments) -> float:
    """``1 - γ3·SR + (γ4 - 1)/4·SR²``: n-1 times the variance of the Sharpe estimate."""
    factor = 1.0 - m.skew * m.sr + (m.kurtosis - 1.0) / 4.0 * m.sr**2
    if not factor > 0.0:
        raise InputError(
            f"The Sharpe estimate has no positive variance (1 - skew·SR + (kurtosis-1)/4·SR² "
            f"= {factor:.3g} with SR={m.sr:.4g}, skew={m.skew:.4g}, kurtosis={m.kurtosis:.4g}).",
            fix="check the moments: kurtosis must be raw and the returns must not be two-valued.",
        )
    return factor


def probabilistic_sharpe_ratio(
    returns: ReturnsLike | None = None,
    *,
    sr: float | None = None,
    sr_benchmark: float = 0.0,
    n_obs: int | None = None,
    skew: float | None = None,
    kurtosis: float | None = None,
    annualization: int = PERIODS_PER_YEAR,
    sharpe_units: SharpeUnits = "per_period",
) -> PSRResult:
    """Probability that the true Sharpe ratio exceeds ``sr_benchmark`` (Bailey & LdP 2012).

    Args:
        returns: Simple returns (array, list, polars Series or frame ``date, <series>``).
            Alternatively give ``sr``, ``n_obs``, ``skew`` and ``kurtosis``.
        sr: Observed Sharpe ratio (per period unless ``sharpe_units='annualized'``).
        sr_benchmark: Benchmark Sharpe SR*, in the same units as ``sr``.
        n_obs: Number of returns behind ``sr``.
        skew: Skewness of the returns.
        kurtosis: RAW kurtosis of the returns (normal = 3).
        annualization: Periods per year, for unit conversion and annualised views.
        sharpe_units: Units of the explicit Sharpe inputs.

    Returns:
        A :class:`PSRResult`.

    Raises:
        InputError: mixed or missing inputs, excess kurtosis, implausible units, zero variance.
        InsufficientDataError: fewer than two returns.
    """
    ann = _check_annualization(annualization)
    m = _resolve(returns, sr, n_obs, skew, kurtosis, units=sharpe_units, annualization=ann)
    bench = _sharpe_per_period(sr_benchmark, "sr_benchmark", sharpe_units, ann)
    se = math.sqrt(_sr_variance_factor(m) / (m.n_obs - 1))
    z = (m.sr - bench) / se
    return PSRResult(
        psr=float(_NORMAL.cdf(z)),
        z=z,
        sr=m.sr,
        sr_benchmark=bench,
        sr_std=se,
        n_obs=m.n_obs,
        skew=m.skew,
        kurtosis=m.kurtosis,
        annualization=ann,
        source=m.source,
    )


def min_track_record_length(
    returns: ReturnsLike | None = None,
    *,
    sr: float | None = None,
    sr_benchmark: float = 0.0,
    skew: float | None = None,
    kurtosis: float | None = None,
    n_obs: int | None = None,
    confidence: float = 0.95,
    annualization: int = PERIODS_PER_YEAR,
    sharpe_units: SharpeUnits = "per_period",
) -> MinTRLResult:
    """Observations needed before the Sharpe beats ``sr_benchmark`` with ``confidence``.

    Args:
        returns: Simple returns; or give ``sr``, ``skew`` and ``kurtosis`` (``n_obs`` optional,
            only to report whether the record is long enough).
        sr: Observed Sharpe ratio (per period unless ``sharpe_units='annualized'``).
        sr_benchmark: Benchmark Sharpe SR*, same units as ``sr``.
        skew: Skewness of the returns.
        kurtosis: RAW kurtosis (normal = 3).
        n_obs: Observations available.
        confidence: Required probability ``1 - α``, in (0, 1).
        annualization: Periods per year (``min_years = min_obs / annualization``).
        sharpe_units: Units of the explicit Sharpe inputs.

    Returns:
        A :class:`MinTRLResult`.

    Raises:
        InputError: the Sharpe does not exceed the benchmark (no length is enough), or bad inputs.
    """
    ann = _check_annualization(annualization)
    conf = finite_float(confidence, "confidence")
    if not 0.0 < conf < 1.0:
        raise InputError(f"confidence={conf!r} is not in (0, 1).", fix="use e.g. 0.95.")
    m = _resolve(
        returns, sr, n_obs, skew, kurtosis, units=sharpe_units, annualization=ann, need_n_obs=False
    )
    bench = _sharpe_per_period(sr_benchmark, "sr_benchmark", sharpe_units, ann)
    if m.sr <= bench:
        raise InputError(
            f"The Sharpe ratio {m.sr:.4g} (per period) does not exceed the benchmark "
            f"{bench:.4g}: no track record length makes it significant.",
            fix="compare against a lower benchmark; this strategy has not beaten it.",
        )
    min_obs = 1.0 + _sr_variance_factor(m) * (_NORMAL.inv_cdf(conf) / (m.sr - bench)) ** 2
    return MinTRLResult(
        min_obs=float(min_obs),
        min_years=float(min_obs) / ann,
        sr=m.sr,
        sr_benchmark=bench,
        skew=m.skew,
        kurtosis=m.kurtosis,
        confidence=conf,
        annualization=ann,
        n_obs=m.n_obs or None,
        source=m.source,
    )


def _check_n_trials(n_trials: Any) -> float:
    if isinstance(n_trials, bool) or not isinstance(
        n_trials, (int, float, *_numpy_types("integer", "floating"))
    ):
        raise InputError(
            f"n_trials={n_trials!r} must be a number of at least 1.",
            fix="count every configuration tried (the trial registry does), or pass an "
            "effective number from effective_number_of_trials(...).",
        )
    n = float(n_trials)
    if not (math.isfinite(n) and n >= 1.0):
        raise InputError(
            f"n_trials={n_trials!r} must be at least 1.",
            fix="count every configuration tried, including this one (so N >= 1).",
        )
    return n


def expected_max_sharpe(n_trials: float, var_trial_sharpes: float) -> float:
    """Expected maximum Sharpe of ``n_trials`` skill-less trials (False Strategy Theorem).

    ``sqrt(V) · ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))``, in the units of ``sqrt(V)``
    (pass a per-period variance to get a per-period Sharpe). ``N = 1`` gives 0. The
    approximation can dip below 0 for effective counts in (1, 1.5); as the maximum of at
    least one zero-mean Sharpe has a non-negative expectation, the result is floored at 0.

    Args:
        n_trials: Number of trials N >= 1 (an effective, non-integer count is allowed).
        var_trial_sharpes: Variance V of the trial Sharpe estimates, >= 0.

    Raises:
        InputError: N < 1 or a negative/non-finite variance.
    """
    n = _check_n_trials(n_trials)
    v = finite_float(var_trial_sharpes, "var_trial_sharpes")
    if v < 0.0:
        raise InputError(
            f"var_trial_sharpes={v!r} is negative.", fix="pass the variance of the trial Sharpes."
        )
    if n == 1.0:
        return 0.0
    g = EULER_MASCHERONI
    core = (1.0 - g) * _NORMAL.inv_cdf(1.0 - 1.0 / n) + g * _NORMAL.inv_cdf(
        1.0 - 1.0 / (n * math.e)
    )
    return max(0.0, math.sqrt(v) * float(core))


def _trial_variance(
    n_trials: float,
    var_trial_sharpes: Any,
    trial_sharpes: Any,
    units: SharpeUnits,
    annualization: int,
    *,
    check: bool = True,
) -> float | None:
    if var_trial_sharpes is not None and trial_sharpes is not None:
        raise InputError(
            "Both var_trial_sharpes and trial_sharpes were given.",
            fix="pass one: the trial Sharpes (their ddof=1 variance is used) or their variance.",
        )
    if trial_sharpes is not None:
        import numpy as np

        from quantdesk.quant_core.metrics import as_returns

        values = as_returns(trial_sharpes, what="trial Sharpe ratios", min_obs=2)
        if units == "annualized":
            values = values / math.sqrt(annualization)
        else:
            _sharpe_per_period(
                float(np.max(np.abs(values))),
                "max |trial_sharpes|",
                units,
                annualization,
                check=check,
            )
        return float(np.var(values, ddof=1))
    if var_trial_sharpes is not None:
        v = _sharpe_per_period(
            var_trial_sharpes, "var_trial_sharpes", units, annualization, power=2, check=check
        )
        if v < 0.0:
            raise InputError(
                f"var_trial_sharpes={v!r} is negative.",
                fix="pass the variance of the trial Sharpes.",
            )
        return v
    if n_trials > 1.0:
        raise InputError(
            f"n_trials={n_trials:g} needs the dispersion of the trial Sharpes.",
            fix="pass trial_sharpes=[...] (every trial's Sharpe) or var_trial_sharpes=V.",
        )
    return None


def deflated_sharpe_ratio(
    returns: ReturnsLike | None = None,
    *,
    sr: float | None = None,
    n_obs: int | None = None,
    skew: float | None = None,
    kurtosis: float | None = None,
    n_trials: float,
    var_trial_sharpes: float | None = None,
    trial_sharpes: Any = None,
    annualization: int = PERIODS_PER_YEAR,
    sharpe_units: SharpeUnits = "per_period",
    check_plausible: bool = True,
) -> DSRResult:
    """Deflated Sharpe ratio ``PSR(SR0)`` of the selected strategy (Bailey & LdP 2014).

    Args:
        returns: Simple returns of the selected strategy; or give ``sr``, ``n_obs``, ``skew``
            and ``kurtosis``.
        sr: Observed Sharpe ratio of the selected strategy.
        n_obs: Number of returns behind ``sr``.
        skew: Skewness of the returns.
        kurtosis: RAW kurtosis (normal = 3).
        n_trials: Trials run in the search that produced the strategy, >= 1 (may be an
            effective count). ``N = 1`` gives ``DSR = PSR(0)``.
        var_trial_sharpes: Variance of the trial Sharpes (``sharpe_units`` apply: an
            annualised variance is divided by ``annualization``).
        trial_sharpes: The trial Sharpes themselves, instead of ``var_trial_sharpes``.
        annualization: Periods per year.
        sharpe_units: Units of every explicit Sharpe input (``sr``, ``var_trial_sharpes``,
            ``trial_sharpes``). Sharpes computed from ``returns`` are always per period.

        check_plausible: Refuse explicit per-period Sharpes that imply an annualised Sharpe
            above 10 (a units mistake, or a backtest too good to be true). Callers that
            computed the moments from the returns themselves (the trial registry) pass False.

    Returns:
        A :class:`DSRResult`; ``result.passed()`` applies the 0.95 threshold.

    Raises:
        InputError: N < 1, missing trial dispersion when N > 1, mixed inputs, excess kurtosis,
            implausible units, zero variance of the returns.
    """
    ann = _check_annualization(annualization)
    n = _check_n_trials(n_trials)
    m = _resolve(
        returns,
        sr,
        n_obs,
        skew,
        kurtosis,
        units=sharpe_units,
        annualization=ann,
        check=check_plausible,
    )
    v = _trial_variance(
        n, var_trial_sharpes, trial_sharpes, sharpe_units, ann, check=check_plausible
    )
    sr0 = expected_max_sharpe(n, v) if v is not None else 0.0
    se = math.sqrt(_sr_variance_factor(m) / (m.n_obs - 1))
    z = (m.sr - sr0) / se
    return DSRResult(
        dsr=float(_NORMAL.cdf(z)),
        z=z,
        sr=m.sr,
        sr0=sr0,
        psr=float(_NORMAL.cdf(m.sr / se)),
        sr_std=se,
        n_trials=n,
        n_obs=m.n_obs,
        skew=m.skew,
        kurtosis=m.kurtosis,
        var_trial_sharpes=v,
        annualization=ann,
        source=m.source,
    )
