"""Tests of the seeded synthetic market: determinism, schema, and the strength of what is planted.

Measured ICs are computed here directly with polars (per-date Spearman of the trailing return
against the forward return), independently of the generator's own bookkeeping. Tolerances are
4 standard errors: one date's Spearman IC over N symbols has a standard deviation of about
``1 / sqrt(N - 1)``, and a mean over D dates at horizon h has a standard error of about
``1 / sqrt((N - 1) * D / h)`` (overlapping h-session returns count as D / h independent dates).
"""

from __future__ import annotations

import math
from datetime import date
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from quantdesk.quant_core.errors import ConfigError
from quantdesk.quant_core.schema import canonical_schema, require_canonical
from quantdesk.quant_core.synthetic import (
    SyntheticMarket,
    SyntheticMarketConfig,
    demo_universe,
    expected_rank_ic,
    loading_for_ic,
    noise_universe,
    session_calendar,
    synthetic_market,
)

# Same drift, vol and beta for every symbol: the forward return is then one increasing function
# of the planted idiosyncratic return, so the measured rank IC equals `ic` in expectation.
HOMOGENEOUS = {"drift_range": (0.05, 0.05), "vol_range": (0.25, 0.25), "beta_range": (1.0, 1.0)}
SMALL = {"n_symbols": 12, "n_sessions": 80, "signal_lookback": 10, "signal_skip": 2, "horizon": 3}


def measured_ic(market: SyntheticMarket) -> pl.DataFrame:
    """Per-date Spearman IC of mom_{L}_{S} against the horizon-session forward return."""
    cfg = market.config
    lookback, skip, h = cfg.signal_lookback, cfg.signal_skip, cfg.horizon
    close = pl.col("close")
    return (
        market.prices.with_columns(
            signal=(close.shift(skip) / close.shift(lookback) - 1).over("symbol"),
            forward=(close.shift(-h) / close - 1).over("symbol"),
        )
        .drop_nulls(["signal", "forward"])
        .group_by("date")
        .agg(ic=pl.corr("signal", "forward", method="spearman"))
        .sort("date")
    )


def expected_se(n_symbols: int, n_dates: int, horizon: int) -> float:
    return 1.0 / math.sqrt((n_symbols - 1) * n_dates / horizon)


# --- determinism and the canonical contract ---------------------------------------------


def test_same_seed_same_market_and_different_seed_differs() -> None:
    first, again = synthetic_market(seed=3, **SMALL), synthetic_market(seed=3, **SMALL)
    assert_frame_equal(first.prices, again.prices)
    assert_frame_equal(first.ic_by_date, again.ic_by_date)
    assert_frame_equal(first.symbols, again.symbols)
    other = synthetic_market(seed=4, **SMALL)
    assert not other.prices["close"].equals(first.prices["close"])


def test_config_object_and_overrides_combine() -> None:
    cfg = SyntheticMarketConfig(seed=5, **SMALL)
    assert_frame_equal(synthetic_market(cfg).prices, synthetic_market(**SMALL, seed=5).prices)
    bigger = synthetic_market(cfg, n_symbols=20)
    assert bigger.config.n_symbols == 20
    assert bigger.config.seed == 5


def check_prices(market: SyntheticMarket) -> None:
    prices, cfg = market.prices, market.config
    require_canonical(prices)
    assert prices.schema == canonical_schema()
    assert prices.height == cfg.n_symbols * cfg.n_sessions
    ok = prices.select(
        ohlc=(
            (pl.col("low") <= pl.min_horizontal("open", "close"))
            & (pl.max_horizontal("open", "close") <= pl.col("high"))
            & (pl.col("low") > 0)
        ).all(),
        finite=pl.all_horizontal(pl.col("open", "high", "low", "close").is_finite()).all(),
        volume=(pl.col("volume") >= 1).all(),
        weekdays=(pl.col("date").dt.weekday() <= 5).all(),
    )
    assert ok.row(0) == (True, True, True, True)
    n_dates = cfg.n_sessions - cfg.signal_lookback - cfg.horizon
    assert market.ic_by_date.height == n_dates


def test_default_market_is_canonical_with_consistent_ohlc() -> None:
    market = synthetic_market(n_symbols=20, n_sessions=300)
    check_prices(market)
    assert market.prices["symbol"].unique().sort().to_list()[:2] == ["SYN000", "SYN001"]
    assert market.signal_name == "mom_252_21"
    assert market.prices["date"].min() == date(2015, 1, 2)


@settings(max_examples=40, deadline=None)
@given(
    n_symbols=st.integers(3, 25),
    extra=st.integers(2, 60),
    lookback=st.integers(1, 15),
    seed=st.integers(0, 2**32 - 1),
    ic=st.floats(-0.3, 0.3),
    horizon=st.integers(1, 5),
)
def test_any_small_config_gives_a_valid_market(
    n_symbols: int, extra: int, lookback: int, seed: int, ic: float, horizon: int
) -> None:
    market = synthetic_market(
        n_symbols=n_symbols,
        n_sessions=lookback + horizon + extra,
        signal_lookback=lookback,
        signal_skip=lookback // 3,
        horizon=horizon,
        seed=seed,
        ic=ic,
        regime_shift_at=0.5,
    )
    check_prices(market)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), short=st.integers(20, 60), more=st.integers(1, 40))
def test_extending_the_sample_never_changes_the_past(seed: int, short: int, more: int) -> None:
    kwargs = {**SMALL, "seed": seed, "regime_shift_at": date(2015, 1, 16)}
    past = synthetic_market(**{**kwargs, "n_sessions": short}).prices
    longer = synthetic_market(**{**kwargs, "n_sessions": short + more}).prices
    cut = longer.filter(pl.col("date") <= past["date"].max())
    assert_frame_equal(past, cut)


def test_calendar_skips_weekends_and_rolls_a_weekend_start() -> None:
    days = session_calendar(date(2021, 1, 2), 6)  # a Saturday
    assert [str(d) for d in days] == [
        "2021-01-04",
        "2021-01-05",
        "2021-01-06",
        "2021-01-07",
        "2021-01-08",
        "2021-01-11",
    ]


# --- the planted loading ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("loading", "n_symbols", "expected"),
    [
        (0.0, 50, 0.0),
        (0.05, 50, 0.04738210073110134),
        (0.2, 200, 0.19101439811365947),
        (0.6, 20, 0.5777655302637088),
        (-0.05, 50, -0.04738210073110134),
        (1.0, 50, 1.0),
        # beyond 1000 symbols: the large-N limit 6/pi * asin(a/2)
        (0.05, 5000, 6 / math.pi * math.asin(0.025)),
    ],
)
def test_expected_rank_ic_golden(loading: float, n_symbols: int, expected: float) -> None:
    assert expected_rank_ic(loading, n_symbols) == pytest.approx(expected, abs=1e-12)


def test_expected_rank_ic_matches_monte_carlo(rng: np.random.Generator) -> None:
    n, a, draws = 10, 0.4, 20_000
    # The fixed rank-normal scores, ascending, so the rank of score k is k.
    scores = np.array([NormalDist().inv_cdf((k - 0.5) / n) for k in range(1, n + 1)])
    y = a * scores + math.sqrt(1 - a * a) * rng.standard_normal((draws, n))
    ranks = np.argsort(np.argsort(y, axis=1), axis=1)
    spearman = 1 - 6 * ((ranks - np.arange(n)) ** 2).sum(axis=1) / (n * (n * n - 1))
    se = spearman.std() / math.sqrt(draws)  # about 0.002
    assert abs(spearman.mean() - expected_rank_ic(a, n)) < 4 * se


@settings(max_examples=60, deadline=None)
@given(ic=st.floats(-0.9, 0.9), n_symbols=st.integers(3, 300))
def test_loading_for_ic_inverts_expected_rank_ic(ic: float, n_symbols: int) -> None:
    loading = loading_for_ic(ic, n_symbols)
    assert abs(loading) < 1
    assert expected_rank_ic(loading, n_symbols) == pytest.approx(ic, abs=1e-9)
    assert loading_for_ic(-ic, n_symbols) == pytest.approx(-loading, abs=1e-9)


def test_large_universe_loading_tends_to_the_bivariate_normal_formula() -> None:
    assert loading_for_ic(0.05, 5000) == pytest.approx(2 * math.sin(math.pi * 0.05 / 6))


# --- the planted strength, measured -----------------------------------------------------


def test_truth_frame_reports_the_measured_ic() -> None:
    market = synthetic_market(n_symbols=30, n_sessions=200, signal_lookback=21, signal_skip=1)
    mine = market.ic_by_date.select("date", ic="realised_ic")
    assert_frame_equal(mine, measured_ic(market), abs_tol=1e-12)


@pytest.mark.parametrize(
    ("horizon", "lookback", "skip", "ic", "n_symbols", "n_sessions"),
    [
        # h=1 is exact by construction; SE ~ 1/sqrt(199 * 1978) = 0.0016, 4 SE = 0.0064.
        (1, 21, 1, 0.05, 200, 2000),
        # h=5 relies on the window-overlap approximation; SE ~ 1/sqrt(299 * 2574 / 5) = 0.0025.
        (5, 21, 1, 0.10, 300, 2600),
    ],
)
def test_measured_ic_matches_the_planted_ic(
    horizon: int, lookback: int, skip: int, ic: float, n_symbols: int, n_sessions: int
) -> None:
    market = synthetic_market(
        n_symbols=n_symbols,
        n_sessions=n_sessions,
        signal_lookback=lookback,
        signal_skip=skip,
        horizon=horizon,
        ic=ic,
        seed=11,
        **HOMOGENEOUS,
    )
    ic_series = measured_ic(market)["ic"]
    se = expected_se(n_symbols, ic_series.len(), horizon)
    assert abs(ic_series.mean() - ic) < 4 * se
    # the spread of the per-date IC is what the stated standard error assumes
    assert ic_series.std() == pytest.approx(1 / math.sqrt(n_symbols - 1), rel=0.15)
    assert market.ic_by_date["target_ic"].unique().to_list() == [ic]


def test_default_dispersion_keeps_the_ic_close() -> None:
    # Vol, beta and drift dispersion bias the measured IC by a few percent (docs), well inside
    # 4 SE here: SE ~ 1/sqrt(199 * 1978) = 0.0016.
    market = synthetic_market(
        n_symbols=200, n_sessions=2000, signal_lookback=21, signal_skip=1, horizon=1, seed=2
    )
    ic_series = measured_ic(market)["ic"]
    assert abs(ic_series.mean() - 0.05) < 4 * expected_se(200, ic_series.len(), 1)


def test_noise_universe_has_no_ic() -> None:
    market = noise_universe(
        seed=1, n_symbols=200, n_sessions=1500, signal_lookback=21, signal_skip=1, horizon=1
    )
    ic_series = measured_ic(market)["ic"]
    # SE ~ 1/sqrt(199 * 1478) = 0.0018
    assert abs(ic_series.mean()) < 4 * expected_se(200, ic_series.len(), 1)
    assert market.ic_by_date["target_ic"].abs().max() == 0.0
    assert market.regimes["daily_loading"].to_list() == [0.0]


def test_regime_shift_flips_the_measured_ic() -> None:
    market = synthetic_market(
        n_symbols=100,
        n_sessions=2000,
        signal_lookback=21,
        signal_skip=1,
        horizon=1,
        ic=0.1,
        regime_shift_at="2019-01-01",
        seed=5,
        **HOMOGENEOUS,
    )
    assert market.shift_date == date(2019, 1, 1)
    assert market.regimes["ic"].to_list() == [0.1, -0.1]
    assert market.regimes["start"].to_list() == [date(2015, 1, 2), date(2019, 1, 1)]
    ic = measured_ic(market).join(market.ic_by_date.select("date", "regime"), on="date")
    for regime, sign in ((0, 1), (1, -1)):
        part = ic.filter(pl.col("regime") == regime)["ic"]
        # SE ~ 1/sqrt(99 * ~1000) = 0.0032 per regime
        assert abs(part.mean() - sign * 0.1) < 4 * expected_se(100, part.len(), 1)


def test_regime_shift_as_a_fraction_and_ic_after() -> None:
    market = synthetic_market(**SMALL, regime_shift_at=0.5, ic_after=0.02)
    assert market.shift_date == session_calendar(date(2015, 1, 2), 80)[40].item()
    assert market.regimes["ic"].to_list() == [0.05, 0.02]
    target = (
        market.ic_by_date.group_by("regime")
        .agg(low=pl.col("target_ic").min(), high=pl.col("target_ic").max())
        .sort("regime")
    )
    # the last date before the shift has 1 of its 3 forward days in regime 0: 0.05/3 + 0.04/3
    assert target.rows() == [(0, pytest.approx(0.03), 0.05), (1, 0.02, 0.02)]


def test_demo_universe_plants_12_1_momentum_with_a_regime_change() -> None:
    market = demo_universe(seed=7)
    assert market.prices.height == 50 * 1512
    assert market.signal_name == "mom_252_21"
    assert market.config.horizon == 5
    assert market.regimes["ic"].to_list() == [0.05, 0.0]
    before = market.ic_by_date.filter(pl.col("regime") == 0)["realised_ic"]
    # 5-session IC over 50 symbols: SE ~ 1/sqrt(49 * 937 / 5) = 0.0104
    assert before.mean() > 0.05 - 4 * expected_se(50, before.len(), 5)


@pytest.mark.slow
def test_benchmark_sized_panel_is_canonical() -> None:
    # Speed is measured in benchmarks/, not asserted here.
    market = synthetic_market(n_symbols=500, n_sessions=2520)
    assert market.prices.height == 1_260_000
    assert market.prices["symbol"].n_unique() == 500


# --- validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"n_symbols": 1}, "n_symbols"),
        ({"n_sessions": 0}, "n_sessions"),
        ({"ic": 1.0}, "ic"),
        ({"ic": -1.5}, "ic"),
        ({"ic_after": 2.0}, "ic_after"),
        ({"signal_skip": 252}, "signal_skip"),
        ({"horizon": 0}, "horizon"),
        ({"n_sessions": 100}, "n_sessions"),
        ({"vol_range": (0.3, 0.1)}, "vol_range"),
        ({"vol_range": (0.0, 0.2)}, "vol_range"),
        ({"price_range": (-1.0, 5.0)}, "price_range"),
        ({"regime_shift_at": 1.5}, "regime_shift_at"),
        ({"regime_shift_at": "2030-01-01"}, "regime_shift_at"),
        ({"effect": "none"}, "ic"),
        ({"effect": "reversal"}, "effect"),
        ({"n_symbol": 5}, "n_symbol"),
        ({"ic": 0.95, "horizon": 20, "signal_lookback": 30, "signal_skip": 0}, "ic"),
    ],
)
def test_invalid_config_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field) as info:
        synthetic_market(**overrides)
    assert "Fix:" in str(info.value)


def test_config_model_rejects_bad_values_directly() -> None:
    with pytest.raises(ValidationError, match="n_symbols"):
        SyntheticMarketConfig(n_symbols=2)
