"""End to end on known truth: the engine, the registry and the deflation together.

A planted momentum effect, backtested once with costs, passes the deflated Sharpe ratio; a search
over 100 signal variants on a pure-noise market finds a flattering best Sharpe that the registry's
deflation and the probability of backtest overfitting reject.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import polars as pl
import pytest

from quantdesk.quant_core import (
    TrialRegistry,
    backtest_signal,
    compute_features,
    create_context,
    noise_universe,
    probability_of_backtest_overfitting,
    synthetic_market,
    use_context,
)
from quantdesk.quant_core.backtest_config import BacktestWarning


def _scores(prices: pl.DataFrame, feature: str, sign: float) -> pl.DataFrame:
    return (
        compute_features(prices, [feature], cross_sectional=None)
        .select("date", "symbol", (pl.col(feature) * sign).alias("score"))
        .drop_nulls()
    )


@pytest.mark.slow
def test_planted_effect_passes_deflation() -> None:
    market = synthetic_market(
        n_symbols=100, n_sessions=1500, ic=0.05, horizon=5, regime_shift_at=None, seed=11
    )
    ctx = create_context("planted")
    with use_context(ctx):
        result = backtest_signal(
            market.prices, _scores(market.prices, market.signal_name, 1.0), config={}
        )
    assert result.run is not None
    assert result.run.dsr.n_trials == 1
    assert result.run.dsr.dsr > 0.95, result.run.summary_line()


@pytest.mark.slow
def test_noise_search_over_100_variants_is_rejected() -> None:
    prices = noise_universe(seed=12, n_symbols=60, n_sessions=1500).prices
    ctx = create_context("noise-search", trial_budget=200)
    grid = itertools.product(
        ("mom_21_0", "mom_63_0", "mom_63_5", "mom_126_5", "mom_252_21", "ret_5", "rev_21"),
        (1.0, -1.0),
        (0.1, 0.2, 0.3),
        ("weekly", "monthly", "daily"),
    )
    variants = list(grid)[:100]
    cache: dict[tuple[str, float], pl.DataFrame] = {}
    nets: dict[str, pl.DataFrame] = {}
    with use_context(ctx), warnings.catch_warnings():
        warnings.simplefilter("ignore", BacktestWarning)
        for k, (feature, sign, quantile, rebalance) in enumerate(variants):
            key = (feature, sign)
            if key not in cache:
                cache[key] = _scores(prices, feature, sign)
            result = backtest_signal(
                prices, cache[key], config={"rebalance": rebalance}, quantile=quantile
            )
            assert result.run is not None
            nets[f"v{k}"] = result.returns.select("date", pl.col("net").alias(f"v{k}"))
    registry = TrialRegistry()
    trials = registry.trials(ctx)
    assert len(trials) == 100
    best = max(trials, key=lambda t: t.sr_per_session)
    assert best.sr_annualised > 0.3  # the search finds something that looks good...
    dsr = registry.deflated_sharpe(ctx, best)
    assert dsr.n_trials == 100
    assert dsr.dsr < 0.95, dsr  # ...which the deflation by 100 trials rejects
    # every variant on the dates they all share: the in-sample winner does not persist
    frames = iter(nets.values())
    matrix = next(frames)
    for frame in frames:
        matrix = matrix.join(frame, on="date", how="inner")
    pbo = probability_of_backtest_overfitting(matrix.sort("date").drop("date").to_numpy())
    assert pbo.pbo > 0.2, pbo
    assert np.isfinite(pbo.pbo)
