"""CV runs are counted trials; entry points refuse holdout data."""

from __future__ import annotations

import math
from datetime import date

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from quantdesk.quant_core import (
    HoldoutViolationError,
    ModelSpec,
    PurgedWalkForward,
    TrialRegistry,
    compute_features,
    create_context,
    deflated_sharpe_ratio,
    evaluate_holdout,
    make_dataset,
    make_labels,
    synthetic_market,
    train_cv,
    use_context,
)
from quantdesk.quant_core.metrics import sample_moments
from quantdesk.quant_core.trial_recording import (
    DEFAULT_CONTEXT_NAME,
    holding_period,
    oof_long_short_returns,
)

FEATURES = ["mom_63_5", "ret_5", "rvol_21"]


@pytest.fixture(scope="module")
def market() -> pl.DataFrame:
    return synthetic_market(
        n_symbols=30, n_sessions=500, ic=0.1, signal_lookback=63, signal_skip=5, horizon=5, seed=3
    ).prices


def _dataset(prices: pl.DataFrame):
    features = compute_features(prices, FEATURES, cross_sectional=("rank",))
    labels = make_labels(prices, kind="forward_return", horizon=5)
    return make_dataset(features, labels, feature_names=[f"cs_rank_{f}" for f in FEATURES])


SPEC = ModelSpec(kind="linear", task="regression", seed=1)


def test_oof_long_short_takes_every_period_th_date_per_fold() -> None:
    d = [date(2020, 1, k) for k in range(1, 6)]
    rows = []
    for fold, dates in ((0, d[:3]), (1, d[3:])):
        for day in dates:
            # scores 1..4; ret equals the score / 100, so long-short = (4 - 1) / 100
            rows += [
                {"date": day, "fold": fold, "score": s, "ret": s / 100, "y_true": 0.0}
                for s in (1.0, 2.0, 3.0, 4.0)
            ]
    oof = pl.DataFrame(rows)
    out = oof_long_short_returns(oof, period=2, quantile=0.25)
    expected = pl.DataFrame({"date": [d[0], d[2], d[3]], "ret": [0.03, 0.03, 0.03]})
    assert_frame_equal(out, expected)


def test_cv_run_is_recorded_in_the_default_context(market: pl.DataFrame) -> None:
    dataset = _dataset(market)
    assert holding_period(dataset.frame) == 5
    first = train_cv(dataset, SPEC, PurgedWalkForward(n_splits=3, embargo=5))
    second = train_cv(dataset, SPEC, PurgedWalkForward(n_splits=4, embargo=5))
    assert first.run is not None, first.run_error
    assert second.run is not None, second.run_error
    assert first.run.context.name == DEFAULT_CONTEXT_NAME
    assert (first.run.trial.number, second.run.trial.number) == (1, 2)
    trial = second.run.trial
    assert trial.kind == "cv"
    assert trial.period_sessions == 5
    assert trial.data_hash == dataset.data_hash
    assert trial.config["splitter"]["n_splits"] == 4
    assert second.run.dsr.n_trials == 2
    assert TrialRegistry().count(DEFAULT_CONTEXT_NAME) == 2


def test_dsr_pools_trials_in_per_session_units(market: pl.DataFrame) -> None:
    result = train_cv(_dataset(market), SPEC, PurgedWalkForward(n_splits=3, embargo=5))
    run = result.run
    assert run is not None
    registry = TrialRegistry()
    series = registry.returns(run.trial)
    m = sample_moments(series["ret"].to_numpy())
    daily = registry.record(
        DEFAULT_CONTEXT_NAME,
        "backtest",
        pl.DataFrame({"date": series["date"], "ret": series["ret"].reverse()}),
        config={"k": 1},
        data_hash="x",
    )
    assert daily.period_sessions == 1
    h = run.trial.period_sessions
    assert run.trial.sr_per_session == pytest.approx(m.sharpe / math.sqrt(h))
    dsr = registry.deflated_sharpe(DEFAULT_CONTEXT_NAME, run.trial)
    expected = deflated_sharpe_ratio(
        sr=m.sharpe / math.sqrt(h),
        n_obs=m.n_obs * h,
        skew=m.skew,
        kurtosis=m.kurtosis,
        n_trials=2,
        trial_sharpes=[m.sharpe / math.sqrt(h), daily.sr_per_period],
    )
    assert dsr.dsr == pytest.approx(expected.dsr, rel=1e-12)


def test_runs_go_to_the_active_context_and_failed_runs_record_nothing(
    market: pl.DataFrame,
) -> None:
    ctx = create_context("momentum-study")
    dataset = _dataset(market)
    with use_context(ctx):
        result = train_cv(dataset, SPEC, PurgedWalkForward(n_splits=3, embargo=5))
        with pytest.raises(ValueError, match="task"):
            train_cv(dataset, {"kind": "linear", "task": "nonsense"}, PurgedWalkForward(3))
    assert result.run is not None
    assert result.run.context.id == ctx.id
    assert TrialRegistry().count(ctx) == 1


def test_entry_points_refuse_holdout_data_until_it_is_evaluated(market: pl.DataFrame) -> None:
    last = market["date"].max()
    start = market["date"].unique().sort()[-60]
    ctx = create_context("locked", holdout=(start, last))
    with use_context(ctx):
        with pytest.raises(HoldoutViolationError, match="holdout"):
            compute_features(market, FEATURES)
        with pytest.raises(HoldoutViolationError):
            make_labels(market, horizon=5)
        before = market.filter(pl.col("date") < start)
        features = compute_features(before, FEATURES)  # allowed: nothing inside the holdout
        assert features["date"].max() < start
        evaluation = evaluate_holdout(
            ctx, "final momentum hypothesis", lambda: compute_features(market, FEATURES).height
        )
        assert evaluation.result == market.height


def test_backtest_is_a_counted_trial_and_a_refused_one_is_not(market: pl.DataFrame) -> None:
    from quantdesk.quant_core import backtest_signal
    from quantdesk.quant_core.errors import ConfigError

    scores = compute_features(market, ["mom_63_5"], cross_sectional=None).rename(
        {"mom_63_5": "score"}
    )
    ctx = create_context("bt")
    with use_context(ctx):
        result = backtest_signal(market, scores.drop_nulls(), config={"rebalance": "weekly"})
        with pytest.raises(ConfigError, match="gross_study"):
            backtest_signal(
                market,
                scores.drop_nulls(),
                config={"costs": {"commission_bps": 0, "half_spread_bps": 0, "slippage_bps": 0}},
            )
    assert result.run is not None, result.run_error
    assert result.run.trial.kind == "backtest"
    assert result.run.trial.period_sessions == 1
    assert result.to_dict()["trial_id"] == result.run.trial.trial_id
    assert TrialRegistry().count(ctx) == 1
    stored = TrialRegistry().returns(result.run.trial)
    assert stored["ret"].to_list() == result.returns["net"].to_list()


def test_runs_inside_a_holdout_evaluation_are_holdout_looks_not_search_trials(
    market: pl.DataFrame,
) -> None:
    from quantdesk.quant_core import backtest_signal

    start = market["date"].unique().sort()[-120]
    ctx = create_context("with-holdout", holdout=(start, None))
    scores = compute_features(market, ["mom_63_5"], cross_sectional=None).rename(
        {"mom_63_5": "score"}
    )
    with use_context(ctx):
        search = backtest_signal(
            market.filter(pl.col("date") < start), scores.filter(pl.col("date") < start), config={}
        )
        look = evaluate_holdout(
            ctx, "mom_63_5 weekly", lambda: backtest_signal(market, scores, config={})
        )
    registry = TrialRegistry()
    assert search.run is not None
    assert look.result.run is not None
    assert look.result.run.trial.kind == "holdout"
    assert registry.count(ctx) == 1  # the search
    assert registry.count(ctx, kind="holdout") == 1
    assert look.result.run.dsr.n_trials == 1  # deflated among holdout looks only
