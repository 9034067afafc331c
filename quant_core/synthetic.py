"""Seeded synthetic markets with planted effects of known strength.

The generator is the known truth for tests and the data of the offline demo. Everything is
drawn from one seed, on a Monday-to-Friday calendar (no holidays), for symbols ``SYN000``,
``SYN001``, ... Prices are a canonical frame (see :mod:`quantdesk.quant_core.schema`) without
corporate actions, so ``close`` is also the adjusted close.

What is planted (``r`` is a daily log return, ``s_i = vol_i / sqrt(252)``)::

    r_{i,t}   = drift_i / 252 + beta_i * m_t + s_i * u_{i,t}
    m_t       ~ N(market_drift / 252, market_vol^2 / 252)            (market factor)
    u_{i,t+1} = alpha_t * z_{i,t} + sqrt(1 - alpha_t^2) * e_{i,t+1},  e ~ N(0, 1) i.i.d.

``z_{i,t}`` is the cross-sectional rank-normal score of the signal
``mom_{L}_{S}(t) = close_{t-S} / close_{t-L} - 1`` (``L = signal_lookback``, ``S = signal_skip``;
the same definition as ``mom_{l}_{s}`` in :mod:`quantdesk.quant_core.features`): the symbol ranked
k-th of N gets ``Phi^-1((k - 0.5) / N)``. The signal is a function of past closes only, and
``alpha_t`` switches at the regime shift (``ic`` before, ``ic_after`` from the shift date on).

Strength. The planted IC is the expected cross-sectional **Spearman** rank correlation between
the signal at t and the forward return ``close_{t+h} / close_t - 1`` (``h = horizon``):

* ``h = 1``: ``alpha`` solves ``E[Spearman(z_t, u_{t+1})] = ic`` exactly for the N fixed
  rank-normal scores (:func:`expected_rank_ic`; for large N ``alpha -> 2 sin(pi ic / 6)``).
  When every symbol has the same drift, vol and beta, the forward return is one increasing
  function of ``u_{t+1}`` for the whole cross-section, so the measured IC equals ``ic`` in
  expectation, exactly.
* ``h > 1``: the h-session return loads on ``z_t, ..., z_{t+h-1}``, which overlap with ``z_t``
  by ``rho_j = 1 - j / (L - S)``; the daily loading is scaled so that the h-session IC is
  ``ic`` under that overlap. Measured: within 1% of ``ic`` when ``h`` is well below ``L - S``,
  about +3% when ``h >= L - S`` (see ``docs/synthetic_market.md``).
* Dispersion of vol, beta and drift across symbols (the defaults) biases the measured IC by
  +2% to +5% of ``ic``; :attr:`SyntheticMarket.ic_by_date` reports the realised IC per date.
* ``effect="none"`` plants nothing; :func:`noise_universe` also equalises expected returns so
  that every IC is zero in expectation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri

from quantdesk.quant_core.errors import ConfigError
from quantdesk.quant_core.schema import canonical_schema

__all__ = [
    "SyntheticMarket",
    "SyntheticMarketConfig",
    "demo_universe",
    "expected_rank_ic",
    "loading_for_ic",
    "noise_universe",
    "session_calendar",
    "synthetic_market",
]

_TRADING_DAYS = 252
# Above this cross-section the O(N^2) exact expectation is replaced by its limit
# 6/pi * asin(alpha/2); the relative difference is below 3e-4 there.
_EXACT_IC_MAX_N = 1000
# Open lower and closed upper bounds of the (low, high) range fields.
_RANGE_BOUNDS: dict[str, tuple[float, float]] = {
    "drift_range": (-2.0, 2.0),
    "vol_range": (0.0, 3.0),
    "beta_range": (-5.0, 5.0),
    "price_range": (0.0, math.inf),
    "volume_range": (0.0, math.inf),
}


class SyntheticMarketConfig(BaseModel):
    """What :func:`synthetic_market` generates. Annual figures are in log-return units.

    Attributes:
        n_symbols: Symbols in the universe (``SYN000`` ...).
        n_sessions: Sessions (Monday-to-Friday business days).
        start: First session; a weekend rolls forward to Monday.
        seed: Seed of every random draw.
        effect: ``"momentum"`` plants the signal, ``"none"`` gives a pure-noise universe.
        ic: Planted Spearman IC of the signal against the ``horizon``-session forward return.
        signal_lookback: ``L`` of the planted signal ``close_{t-S} / close_{t-L} - 1``.
        signal_skip: ``S`` of the planted signal (sessions skipped at the end), ``S < L``.
        horizon: Forward horizon in sessions at which the IC holds.
        regime_shift_at: Fraction of the sessions in (0, 1), or a date, from which the IC is
            ``ic_after``; ``None`` for no shift.
        ic_after: IC after the shift; ``None`` flips the sign (``-ic``).
        drift_range: Range of the per-symbol idiosyncratic annual drift (uniform).
        vol_range: Range of the per-symbol idiosyncratic annual volatility (uniform).
        beta_range: Range of the per-symbol market beta (uniform).
        market_drift: Annual drift of the market factor.
        market_vol: Annual volatility of the market factor (0 for none).
        price_range: Range of the first close (log-uniform).
        volume_range: Range of the per-symbol typical daily volume in shares (log-uniform).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_symbols: int = Field(default=100, ge=3, le=10_000)
    n_sessions: int = Field(default=1512, ge=3, le=100_000)
    start: date = date(2015, 1, 2)
    seed: int = Field(default=7, ge=0)
    effect: Literal["momentum", "none"] = "momentum"
    ic: float = Field(default=0.05, gt=-1.0, lt=1.0)
    signal_lookback: int = Field(default=252, ge=1)
    signal_skip: int = Field(default=21, ge=0)
    horizon: int = Field(default=5, ge=1, le=252)
    regime_shift_at: float | date | None = None
    ic_after: float | None = Field(default=None, gt=-1.0, lt=1.0)
    drift_range: tuple[float, float] = (0.0, 0.08)
    vol_range: tuple[float, float] = (0.15, 0.35)
    beta_range: tuple[float, float] = (0.8, 1.2)
    market_drift: float = Field(default=0.06, ge=-1.0, le=1.0)
    market_vol: float = Field(default=0.16, ge=0.0, le=2.0)
    price_range: tuple[float, float] = (10.0, 200.0)
    volume_range: tuple[float, float] = (1e5, 5e6)

    @model_validator(mode="after")
    def _check(self) -> SyntheticMarketConfig:
        for name, (floor, cap) in _RANGE_BOUNDS.items():
            lo, hi = getattr(self, name)
            if not (floor < lo <= hi <= cap and math.isfinite(hi)):
                raise ValueError(f"{name}={(lo, hi)} must satisfy {floor} < low <= high <= {cap}")
        if self.signal_skip >= self.signal_lookback:
            raise ValueError(
                f"signal_skip={self.signal_skip} must be < signal_lookback={self.signal_lookback}"
            )
        needed = self.signal_lookback + self.horizon + 2
        if self.n_sessions < needed:
            raise ValueError(
                f"n_sessions={self.n_sessions} leaves no date with both the signal and its "
                f"forward return; need n_sessions >= signal_lookback + horizon + 2 = {needed}"
            )
        if self.effect == "none" and (self.ic != 0 or self.ic_after not in (None, 0)):
            raise ValueError(
                f"effect='none' plants nothing but ic={self.ic}, ic_after={self.ic_after}; "
                "set ic=0 (and ic_after=None) or effect='momentum'"
            )
        if isinstance(self.regime_shift_at, float) and not 0 < self.regime_shift_at < 1:
            raise ValueError(f"regime_shift_at={self.regime_shift_at} must be in (0, 1) or a date")
        if self.regime_shift_at is not None:
            shift = _shift_index(self)
            if not 0 < shift < self.n_sessions:
                raise ValueError(
                    f"regime_shift_at={self.regime_shift_at} falls outside the sessions "
                    f"after {self.start} (n_sessions={self.n_sessions})"
                )
        for name, value in (("ic", self.ic), ("ic_after", self.ic_after)):
            if value is not None and self.effect == "momentum":
                daily = _daily_loading(value, self)
                if not abs(daily) < 1:
                    raise ValueError(
                        f"{name}={value} needs a daily loading {daily:.3f} >= 1 at "
                        f"horizon={self.horizon}; lower |{name}| or the horizon"
                    )
        return self

    @property
    def signal_name(self) -> str:
        """Name of the planted signal as a feature (``mom_{lookback}_{skip}``)."""
        return f"mom_{self.signal_lookback}_{self.signal_skip}"


@dataclass(frozen=True)
class SyntheticMarket:
    """A generated market and the truth planted in it.

    Attributes:
        prices: Canonical frame (date, symbol, open, high, low, close, volume), sorted by
            (symbol, date), with ``low <= open, close <= high`` and positive prices.
        config: The configuration that produced it.
        signal_name: Feature name of the planted signal, e.g. ``"mom_252_21"``.
        ic_by_date: One row per date with a signal and a forward return: ``date``, ``regime``
            (0 before the shift, 1 after), ``target_ic`` (the planted IC; a day-weighted mix
            for the ``horizon - 1`` dates whose forward window straddles the shift) and
            ``realised_ic`` (Spearman of signal vs. forward return on that date).
        regimes: One row per regime: ``regime``, ``start``, ``end``, ``ic`` (planted) and
            ``daily_loading`` (``alpha``).
        shift_date: First session of the second regime, or ``None``.
        symbols: Per-symbol truth: ``symbol``, ``annual_drift``, ``annual_vol``, ``beta``,
            ``base_volume``.
        market: ``date`` and ``market_return`` (the daily log return of the market factor).
    """

    prices: pl.DataFrame
    config: SyntheticMarketConfig
    signal_name: str
    ic_by_date: pl.DataFrame
    regimes: pl.DataFrame
    shift_date: date | None
    symbols: pl.DataFrame
    market: pl.DataFrame


def session_calendar(start: date, n_sessions: int) -> np.ndarray:
    """Return ``n_sessions`` Monday-to-Friday dates from ``start`` (rolled forward).

    Args:
        start: First session; a Saturday or Sunday rolls to the next Monday.
        n_sessions: Number of sessions.

    Returns:
        A ``datetime64[D]`` array.
    """
    first = np.busday_offset(np.datetime64(start, "D"), 0, roll="forward")
    return np.busday_offset(first, np.arange(n_sessions))


def _rank_normal_scores(n: int) -> np.ndarray:
    return ndtri((np.arange(1, n + 1) - 0.5) / n)


def expected_rank_ic(loading: float, n_symbols: int) -> float:
    """Expected Spearman IC of the rank-normal scores ``z`` against ``loading*z + noise``.

    For the N fixed scores ``c_k = Phi^-1((k - 0.5) / N)`` and ``y_k = a c_k + sqrt(1-a^2) e_k``
    with i.i.d. standard normal ``e``, Spearman's rho is linear in the ranks of ``y``, whose
    expectation is ``1 + sum_{j != k} Phi(a (c_k - c_j) / sqrt(2 (1 - a^2)))``; this returns
    the exact expectation (its limit ``6/pi * asin(a/2)`` above 1000 symbols).

    Args:
        loading: ``a`` in [-1, 1].
        n_symbols: Cross-section size N (at least 3).

    Returns:
        The expected per-date Spearman rank correlation.
    """
    a = float(np.clip(loading, -1.0, 1.0))
    if n_symbols > _EXACT_IC_MAX_N:
        return 6.0 / math.pi * math.asin(a / 2.0)
    if abs(a) == 1.0:
        return a
    c = _rank_normal_scores(n_symbols)
    scale = a / math.sqrt(2.0 * (1.0 - a * a))
    # E[rank_k] = 1 + sum_{j != k} P(y_j < y_k); the j == k term of the full sum is 0.5.
    expected_rank = 0.5 + ndtr(scale * (c[:, None] - c[None, :])).sum(axis=1)
    centred = np.arange(1, n_symbols + 1) - (n_symbols + 1) / 2.0
    return float(12.0 * (centred @ expected_rank) / (n_symbols * (n_symbols**2 - 1)))


@lru_cache(maxsize=256)  # validation and generation both solve it; each step is O(N^2)
def loading_for_ic(ic: float, n_symbols: int) -> float:
    """Return the loading ``a`` with :func:`expected_rank_ic` ``(a, n_symbols) == ic``.

    Args:
        ic: Target Spearman IC in (-1, 1).
        n_symbols: Cross-section size N.

    Returns:
        The loading in (-1, 1) (0 for ``ic == 0``).
    """
    if ic == 0:
        return 0.0
    return float(
        brentq(lambda a: expected_rank_ic(a, n_symbols) - ic, -1.0, 1.0, xtol=1e-13, rtol=1e-12)
    )


def _daily_loading(ic: float, cfg: SyntheticMarketConfig) -> float:
    """Daily ``alpha`` that gives ``ic`` at ``cfg.horizon`` sessions (see the module docstring)."""
    a = loading_for_ic(ic, cfg.n_symbols)
    h = cfg.horizon
    if h == 1:
        return a
    window = cfg.signal_lookback - cfg.signal_skip
    rho = np.clip(1.0 - np.arange(h) / window, 0.0, None)
    lag = np.abs(np.arange(h)[:, None] - np.arange(h)[None, :])
    overlap, total = rho.sum(), rho[lag].sum()
    # corr(z_t, sum_j u_{t+j}) = alpha P / sqrt(h + alpha^2 (Q - h)) = a, solved for alpha.
    denom = overlap**2 - a * a * (total - h)
    return math.copysign(math.inf, a) if denom <= 0 else a * math.sqrt(h / denom)


def _shift_index(cfg: SyntheticMarketConfig) -> int:
    at = cfg.regime_shift_at
    if isinstance(at, float):
        return round(at * cfg.n_sessions)
    calendar = session_calendar(cfg.start, cfg.n_sessions)
    return int(np.searchsorted(calendar, np.datetime64(at, "D")))


def _build_config(
    config: SyntheticMarketConfig | None, overrides: dict[str, Any]
) -> SyntheticMarketConfig:
    base = {} if config is None else config.model_dump(exclude_unset=True)
    try:
        return SyntheticMarketConfig.model_validate({**base, **overrides})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(
            f"Invalid synthetic market configuration: {problems}.",
            fix="correct the named field(s); see SyntheticMarketConfig for ranges.",
        ) from exc


def synthetic_market(
    config: SyntheticMarketConfig | None = None, **overrides: Any
) -> SyntheticMarket:
    """Generate a seeded synthetic market with the planted effect of ``config``.

    Args:
        config: The configuration; defaults to :class:`SyntheticMarketConfig()`.
        **overrides: Fields that replace those of ``config`` (e.g. ``seed=3, ic=0.1``).

    Returns:
        The prices and the planted truth. The same configuration always gives the same
        market; extending ``n_sessions`` leaves the earlier sessions unchanged (unless the
        regime shift is given as a fraction, which moves with ``n_sessions``).

    Raises:
        ConfigError: A field is invalid; the message names it.
    """
    cfg = _build_config(config, overrides)
    n, t_len = cfg.n_symbols, cfg.n_sessions
    lookback, skip = cfg.signal_lookback, cfg.signal_skip
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(6)]
    params, market_rng, idio_rng, gap_rng, range_rng, volume_rng = streams

    annual_drift = params.uniform(*cfg.drift_range, size=n)
    annual_vol = params.uniform(*cfg.vol_range, size=n)
    beta = params.uniform(*cfg.beta_range, size=n)
    log_p0 = params.uniform(*np.log(cfg.price_range), size=n)
    base_volume = np.exp(params.uniform(*np.log(cfg.volume_range), size=n))
    daily_vol = annual_vol / math.sqrt(_TRADING_DAYS)
    market = market_rng.normal(
        cfg.market_drift / _TRADING_DAYS, cfg.market_vol / math.sqrt(_TRADING_DAYS), size=t_len
    )
    noise = idio_rng.standard_normal((t_len, n))

    shift = _shift_index(cfg) if cfg.regime_shift_at is not None else t_len
    ic_after = -cfg.ic if cfg.ic_after is None else cfg.ic_after
    ic_t = np.where(np.arange(t_len) < shift, cfg.ic, ic_after)
    if cfg.effect == "none":
        ic_t[:] = 0.0
        loadings = (0.0, 0.0)
    else:
        loadings = (_daily_loading(cfg.ic, cfg), _daily_loading(ic_after, cfg))
    alpha_t = np.where(np.arange(t_len) < shift, *loadings)

    # The planted u_{t+1} needs the signal at t, which needs closes up to t: one pass over
    # time, vectorised across symbols.
    scores = _rank_normal_scores(n)
    u = noise.copy()
    log_close = np.empty((t_len, n))
    log_close[0] = log_p0 + annual_drift / _TRADING_DAYS + beta * market[0] + daily_vol * u[0]
    signal_rank = np.zeros((t_len, n), dtype=np.int64)
    step = annual_drift / _TRADING_DAYS + beta[None, :] * market[:, None]
    for t in range(t_len - 1):
        if t > 0:
            log_close[t] = log_close[t - 1] + step[t] + daily_vol * u[t]
        if t >= lookback:
            order = np.argsort(log_close[t - skip] - log_close[t - lookback], kind="stable")
            signal_rank[t, order] = np.arange(n)
            a = alpha_t[t]
            if a != 0.0:
                u[t + 1] = a * scores[signal_rank[t]] + math.sqrt(1.0 - a * a) * noise[t + 1]
    log_close[-1] = log_close[-2] + step[-1] + daily_vol * u[-1]

    calendar = session_calendar(cfg.start, t_len)
    ic_frame = _ic_by_date(calendar, log_close, signal_rank, ic_t, shift, cfg)
    prices = _ohlcv(
        cfg, calendar, log_close, u, daily_vol, base_volume, gap_rng, range_rng, volume_rng
    )
    names = _symbol_names(n)
    shift_date = calendar[shift].item() if shift < t_len else None
    regimes = pl.DataFrame(
        {
            "regime": [0, 1],
            "start": [calendar[0].item(), shift_date],
            "end": [calendar[min(shift, t_len) - 1].item(), calendar[-1].item()],
            "ic": [float(ic_t[0]), float(ic_t[-1])],
            "daily_loading": [float(x) for x in loadings],
        },
        schema_overrides={"regime": pl.Int8, "start": pl.Date},
    ).head(1 if shift_date is None else 2)
    return SyntheticMarket(
        prices=prices,
        config=cfg,
        signal_name=cfg.signal_name,
        ic_by_date=ic_frame,
        regimes=regimes,
        shift_date=shift_date,
        symbols=pl.DataFrame(
            {
                "symbol": names,
                "annual_drift": annual_drift,
                "annual_vol": annual_vol,
                "beta": beta,
                "base_volume": base_volume,
            }
        ),
        market=pl.DataFrame({"date": calendar, "market_return": market}),
    )


def _symbol_names(n: int) -> list[str]:
    width = max(3, len(str(n - 1)))
    return [f"SYN{i:0{width}d}" for i in range(n)]


def _ic_by_date(
    calendar: np.ndarray,
    log_close: np.ndarray,
    signal_rank: np.ndarray,
    ic_t: np.ndarray,
    shift: int,
    cfg: SyntheticMarketConfig,
) -> pl.DataFrame:
    """Realised and planted IC on each date that has a signal and a forward return."""
    n, h = cfg.n_symbols, cfg.horizon
    rows = np.arange(cfg.signal_lookback, cfg.n_sessions - h)
    forward = log_close[rows + h] - log_close[rows]
    forward_rank = np.argsort(np.argsort(forward, axis=1, kind="stable"), axis=1)
    centred = n - 1.0
    covariance = ((2.0 * signal_rank[rows] - centred) * (2.0 * forward_rank - centred)).sum(1)
    realised = 3.0 * covariance / (n * (n * n - 1.0))
    # The forward window of t uses the loadings of t .. t+h-1: weight the regimes by days.
    before = np.clip((shift - rows) / h, 0.0, 1.0)
    target = before * ic_t[0] + (1.0 - before) * ic_t[-1]
    return pl.DataFrame(
        {
            "date": calendar[rows],
            "regime": (rows >= shift).astype(np.int8),
            "target_ic": target,
            "realised_ic": realised,
        }
    )


def _ohlcv(
    cfg: SyntheticMarketConfig,
    calendar: np.ndarray,
    log_close: np.ndarray,
    u: np.ndarray,
    daily_vol: np.ndarray,
    base_volume: np.ndarray,
    gap_rng: np.random.Generator,
    range_rng: np.random.Generator,
    volume_rng: np.random.Generator,
) -> pl.DataFrame:
    """Open, high, low and volume around the closes, in the canonical long layout."""
    t_len, n = log_close.shape
    close = np.exp(log_close)
    previous = np.vstack([np.exp(log_close[:1] - daily_vol * u[:1]), close[:-1]])
    open_ = previous * np.exp(0.3 * daily_vol * gap_rng.standard_normal((t_len, n)))
    stretch = np.abs(range_rng.standard_normal((t_len, n, 2))) * 0.5 * daily_vol[:, None]
    high = np.maximum(open_, close) * np.exp(stretch[..., 0])
    low = np.minimum(open_, close) * np.exp(-stretch[..., 1])
    # Volume is log-normal around the symbol's base and rises on large moves.
    shock = 0.35 * volume_rng.standard_normal((t_len, n)) + 0.25 * (np.abs(u) - 0.8)
    volume = np.maximum(np.round(base_volume * np.exp(shock)), 1.0)
    return pl.DataFrame(
        {
            "date": np.tile(calendar, n),
            # Gathering from a polars Series avoids a slow numpy-unicode conversion.
            "symbol": pl.Series(_symbol_names(n)).gather(np.repeat(np.arange(n), t_len)),
            "open": open_.T.ravel(),
            "high": high.T.ravel(),
            "low": low.T.ravel(),
            "close": close.T.ravel(),
            "volume": volume.T.ravel(),
        },
        schema=canonical_schema(),
    )


def demo_universe(seed: int = 7, **overrides: Any) -> SyntheticMarket:
    """The offline demo market: 50 symbols x 1512 sessions (6 years) from 2015-01-02.

    Planted: ``mom_252_21`` (12-1 momentum) with a Spearman IC of 0.05 at the 5-session horizon
    until 80% of the sessions, after which the effect switches off (``ic_after=0``): enough for
    a walk-forward momentum study to find it, and a regime change for it to notice.

    Args:
        seed: Seed of the market.
        **overrides: Any :class:`SyntheticMarketConfig` field.

    Returns:
        The generated market.
    """
    preset: dict[str, Any] = {
        "n_symbols": 50,
        "n_sessions": 6 * _TRADING_DAYS,
        "seed": seed,
        "ic": 0.05,
        "signal_lookback": 252,
        "signal_skip": 21,
        "horizon": 5,
        "regime_shift_at": 0.8,
        "ic_after": 0.0,
    }
    return synthetic_market(**{**preset, **overrides})


def noise_universe(seed: int = 7, **overrides: Any) -> SyntheticMarket:
    """A pure-noise market: no function of the past predicts the cross-section of returns.

    Nothing is planted (``effect="none"``) and every symbol has the same expected return
    (one idiosyncratic drift, a market factor without drift), so even a long-horizon signal
    cannot pick up differences in drift: every IC is zero in expectation. Vol and beta still
    differ across symbols.

    Args:
        seed: Seed of the market.
        **overrides: Any :class:`SyntheticMarketConfig` field (default size 100 x 1512).

    Returns:
        The generated market.
    """
    preset: dict[str, Any] = {
        "seed": seed,
        "effect": "none",
        "ic": 0.0,
        "drift_range": (0.05, 0.05),
        "market_drift": 0.0,
    }
    return synthetic_market(**{**preset, **overrides})
