"""Tests of quant_core.backtest: timing, costs, drift, schedules, errors, reference checks."""

from __future__ import annotations

import math
import warnings
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from quantdesk.quant_core.backtest import backtest_signal, run_backtest
from quantdesk.quant_core.backtest_config import BacktestConfig, BacktestWarning
from quantdesk.quant_core.backtest_engine import backtest_arrays
from quantdesk.quant_core.costs import CostModel
from quantdesk.quant_core.errors import (
    ConfigError,
    DataError,
    InputError,
    InsufficientDataError,
    SchemaError,
)
from quantdesk.quant_core.synthetic import synthetic_market

MONDAY = date(2024, 1, 1)
FEES_ONLY = {"commission_bps": 1.0, "half_spread_bps": 2.0, "slippage_bps": 1.0}
GROSS = BacktestConfig(gross_study=True)


def frame(closes: dict[str, list[float]], opens: dict[str, list[float]] | None = None):
    """A canonical frame on consecutive calendar days from MONDAY."""
    parts = []
    for symbol, values in closes.items():
        close = np.asarray(values, dtype=np.float64)
        n = len(close)
        op = np.asarray((opens or {}).get(symbol, close), dtype=np.float64)
        parts.append(
            pl.DataFrame(
                {
                    "date": [MONDAY + timedelta(days=i) for i in range(n)],
                    "symbol": symbol,
                    "open": op,
                    "high": np.maximum(op, close),
                    "low": np.minimum(op, close),
                    "close": close,
                    "volume": [1e6] * n,
                }
            )
        )
    return pl.concat(parts).with_columns(pl.col("date").cast(pl.Date))


def weights(rows: list[tuple[int, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [MONDAY + timedelta(days=d) for d, _, _ in rows],
            "symbol": [s for _, s, _ in rows],
            "weight": [w for _, _, w in rows],
        }
    ).with_columns(pl.col("date").cast(pl.Date))


def reference(close, opens, targets, decisions, costs: CostModel, execution: str):
    """Per-session loop over shares and cash: the model written the slow, obvious way."""
    n_rows, n_cols = close.shape
    trades = {int(d) + 1: k for k, d in enumerate(decisions) if d + 1 < n_rows}
    cash, shares, short_prev = 1.0, np.zeros(n_cols), 0.0
    values, turnover = [], []
    for t in range(n_rows):
        if t > 0:
            cash -= costs.borrow_rate_daily * short_prev
        if t in trades:
            price = close[t] if execution == "next_close" else opens[t]
            value = cash + shares @ price
            target = targets[trades[t]]
            traded = np.abs(target - shares * price / value).sum()
            new = target * value / price
            cash -= (new - shares) @ price + costs.linear_rate * traded * value
            shares = new
            turnover.append(traded)
        short_prev = np.maximum(-shares * close[t], 0.0).sum()
        if t >= min(trades):
            values.append(cash + shares @ close[t])
    values = np.array(values)
    return values / np.concatenate([[1.0], values[:-1]]) - 1.0, np.array(turnover)


# ------------------------------------------------------------------------------ timing


def test_next_close_earns_first_the_session_after_the_trade():
    # Decision at the close of day 0, trade at the close of day 1: day 1 earns nothing.
    close = np.array([[100.0, 50.0], [110.0, 50.0], [121.0, 55.0], [121.0, 60.5]])
    result = backtest_arrays(close, None, np.array([[1.0, 0.0]] * 4), config=GROSS)
    assert result.rows.tolist() == [1, 2, 3]
    np.testing.assert_allclose(result.net, [0.0, 0.1, 0.0], atol=1e-15)
    np.testing.assert_allclose(result.gross, result.net, atol=0)


def test_next_open_splits_the_execution_session():
    close = np.array([[100.0], [110.0], [121.0]])
    opens = np.array([[100.0], [105.0], [115.0]])
    cfg = BacktestConfig(execution="next_open", gross_study=True)
    result = backtest_arrays(close, opens, np.array([[1.0]] * 3), config=cfg)
    # Flat over close_0 -> open_1, then long over open_1 -> close_1.
    np.testing.assert_allclose(result.net, [110 / 105 - 1, 0.1], rtol=1e-14)


def test_next_open_keeps_the_old_position_overnight():
    close = np.array([[100.0, 100.0], [100.0, 100.0], [90.0, 100.0]])
    opens = np.array([[100.0, 100.0], [100.0, 100.0], [95.0, 100.0]])
    targets = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    cfg = BacktestConfig(execution="next_open", gross_study=True)
    result = backtest_arrays(close, opens, targets, config=cfg)
    # Day 2: long A from close 1 to open 2 (-5%), then long B to the close (0%).
    np.testing.assert_allclose(result.net, [0.0, -0.05], atol=1e-15)


def test_perfect_foresight_signal_does_not_earn_the_return_it_sees(rng):
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (300, 4)), axis=0))
    ret = close[1:] / close[:-1] - 1.0
    foresight = np.zeros_like(close)
    foresight[:-1] = 0.25 * np.sign(ret)  # at t, the sign of the t -> t+1 return
    result = backtest_arrays(close, None, foresight, config=GROSS)
    would_earn = (foresight[:-1] * ret).sum(axis=1)  # the cheat: earn the bar that made it
    assert would_earn.mean() > 0.01
    # What the engine earns on day t + 2 is the t+1 -> t+2 return of the target of t.
    lagged = (foresight[:-2] * ret[1:]).sum(axis=1)
    np.testing.assert_allclose(result.net[1:], lagged, atol=1e-15)
    assert abs(result.net.mean()) < 0.1 * would_earn.mean()


def test_frame_lag_matches_the_array_lag():
    prices = frame({"A": [100, 110, 121, 133.1, 133.1], "B": [50, 50, 55, 55, 60.5]})
    result = run_backtest(prices, weights([(0, "A", 1.0)]), gross_study=True)
    assert result.start == MONDAY + timedelta(days=1)
    np.testing.assert_allclose(result.returns["net"], [0.0, 0.1, 0.1, 0.0], atol=1e-15)


# ------------------------------------------------------------------------------- costs


def test_proportional_costs_by_kind_on_the_first_trade():
    close = np.array([[100.0], [110.0], [121.0]])
    mask = np.array([True, False, False])
    cfg = BacktestConfig(costs=FEES_ONLY | {"borrow_bps_annual": 0.0})
    result = backtest_arrays(close, None, np.array([[1.0]]), rebalance=mask, config=cfg)
    np.testing.assert_allclose(result.turnover, [1.0, 0.0])
    np.testing.assert_allclose(result.commission, [1e-4, 0.0], rtol=1e-12)
    np.testing.assert_allclose(result.spread, [2e-4, 0.0], rtol=1e-12)
    np.testing.assert_allclose(result.slippage, [1e-4, 0.0], rtol=1e-12)
    # Fees are paid from cash: the holding is 1 unit of pre-fee value, cash is -4e-4.
    np.testing.assert_allclose(result.net, [-4e-4, (1.1 - 4e-4) / (1 - 4e-4) - 1], rtol=1e-12)
    np.testing.assert_allclose(result.gross, [0.0, (1.1 - 4e-4) / (1 - 4e-4) - 1], atol=1e-15)
    np.testing.assert_allclose(result.long_exposure, [1 / (1 - 4e-4), 1.1 / (1.1 - 4e-4)])


def test_borrow_is_charged_on_the_short_value_held_overnight():
    close = np.array([[100.0, 10.0]] * 4)
    mask = np.array([True, False, False, False])
    cfg = BacktestConfig(
        costs={**dict.fromkeys(FEES_ONLY, 0.0), "commission_bps": 1.0, "borrow_bps_annual": 252.0}
    )
    result = backtest_arrays(close, None, np.array([[-0.5, 0.0]]), rebalance=mask, config=cfg)
    c = 0.5e-4
    assert result.borrow[0] == 0.0
    np.testing.assert_allclose(result.short_exposure[0], 0.5 / (1 - c), rtol=1e-12)
    np.testing.assert_allclose(result.borrow[1], 1e-4 * 0.5 / (1 - c), rtol=1e-12)
    np.testing.assert_allclose(result.borrow[2], 1e-4 * 0.5 / (1 - c - 0.5e-4), rtol=1e-12)
    np.testing.assert_allclose(result.net, -(result.commission + result.borrow), atol=1e-15)
    np.testing.assert_allclose(result.gross, 0.0, atol=1e-15)


def test_square_root_impact_on_a_hand_example():
    close = np.array([[100.0], [102.0], [100.98], [103.0], [104.0], [105.0]])
    volume = np.full_like(close, 1e4)
    mask = np.array([False, False, False, True, False, False])
    cfg = BacktestConfig(
        costs={**dict.fromkeys(FEES_ONLY, 0.0), "impact_coef": 0.5, "impact_window": 3},
        capital=1e6,
    )
    result = backtest_arrays(
        close, None, np.array([[0.5]]), rebalance=mask, dollar_volume=close * volume, config=cfg
    )
    returns = np.array([102 / 100, 100.98 / 102, 103 / 100.98]) - 1
    sigma = returns.std(ddof=1)
    adv = (close[1:4, 0] * 1e4).mean()
    expected = 0.5 * sigma * math.sqrt(0.5 * 1e6 / adv) * 0.5
    np.testing.assert_allclose(result.impact[0], expected, rtol=1e-12)
    np.testing.assert_allclose(result.net[0], -expected, rtol=1e-12)


def test_impact_scales_with_the_growing_portfolio(rng):
    close = 100 * np.exp(np.cumsum(rng.normal(0.002, 0.01, (60, 3)), axis=0))
    targets = rng.uniform(0, 0.3, (60, 3))
    targets[:25] = 0.0
    base = {"costs": {"impact_coef": 0.3, "impact_window": 10}, "capital": 1e7}
    result = backtest_arrays(close, None, targets, dollar_volume=close * 1e5, config=base)
    bigger = backtest_arrays(
        close, None, targets, dollar_volume=close * 1e5, config=base | {"capital": 4e7}
    )
    ratio = bigger.impact[bigger.turnover > 0] / result.impact[result.turnover > 0]
    assert ratio[0] == pytest.approx(2.0, rel=1e-12)  # sqrt(4) on the first trade
    np.testing.assert_allclose(ratio, 2.0, rtol=0.02)  # later: paths drift apart a little


# ---------------------------------------------------------------------- drift, turnover


def test_drift_between_rebalances_sets_the_next_turnover():
    close = np.array([[100.0, 100.0], [100.0, 100.0], [120.0, 100.0], [120.0, 100.0], [120, 100]])
    mask = np.array([True, False, True, False, False])
    result = backtest_arrays(close, None, np.array([[0.5, 0.5]] * 2), rebalance=mask, config=GROSS)
    np.testing.assert_allclose(result.net, [0.0, 0.1, 0.0, 0.0], atol=1e-15)
    drifted = np.array([0.6, 0.5]) / 1.1
    np.testing.assert_allclose(result.turnover, [1.0, 0.0, np.abs(0.5 - drifted).sum(), 0.0])
    held = result.held_weights()
    np.testing.assert_allclose(held[1], drifted, rtol=1e-14)  # drifted at the close of row 2
    np.testing.assert_allclose(held[2], [0.5, 0.5], rtol=1e-14)  # re-established at row 3


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    execution=st.sampled_from(["next_close", "next_open"]),
    every=st.integers(1, 4),
    bps=st.floats(0.5, 60.0),
    borrow=st.floats(0.0, 2000.0),
    leverage=st.floats(0.2, 3.0),
)
def test_engine_matches_a_per_session_loop(seed, execution, every, bps, borrow, leverage):
    rng = np.random.default_rng(seed)
    n_rows, n_cols = 25, 4
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, (n_rows, n_cols)), axis=0))
    opens = close * np.exp(rng.normal(0, 0.01, close.shape))
    targets = rng.normal(0, 1, close.shape)
    targets *= leverage / np.abs(targets).sum(axis=1, keepdims=True)
    targets[rng.uniform(size=close.shape) < 0.2] = 0.0
    mask = np.arange(n_rows) % every == 0
    costs = CostModel(
        commission_bps=bps, half_spread_bps=0.0, slippage_bps=0.0, borrow_bps_annual=borrow
    )
    cfg = BacktestConfig(execution=execution, costs=costs)
    result = backtest_arrays(close, opens, targets, rebalance=mask, config=cfg)
    decisions = np.flatnonzero(mask)
    net, turnover = reference(close, opens, targets[decisions], decisions, costs, execution)
    np.testing.assert_allclose(result.net, net, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        result.turnover[result.turnover > 0], turnover[turnover > 0], rtol=0, atol=1e-12
    )
    costs_paid = sum(result.costs().values())
    np.testing.assert_allclose(result.gross - costs_paid, result.net, atol=1e-15)


# ------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    ("schedule", "n_trades"),
    [("daily", 29), ("weekly", 6), ("monthly", 1)],
)
def test_rebalance_schedules_count_the_trades(schedule, n_trades):
    # 30 sessions from Friday 2015-01-02 to Thursday 2015-02-12: weekly decisions on the six
    # Fridays Jan 2 ... Feb 6 (the partial last week cannot trade), monthly on Jan 30.
    market = synthetic_market(
        n_symbols=5, n_sessions=30, signal_lookback=10, signal_skip=1, horizon=1, seed=1
    )
    prices = market.prices
    first = prices["date"].min()
    target = pl.DataFrame(
        {
            "date": [first] * 5,
            "symbol": prices["symbol"].unique().sort(),
            "weight": [0.2, 0.2, 0.2, 0.2, -0.1],
        }
    )
    result = run_backtest(prices, target, rebalance=schedule)
    assert result.n_rebalances == n_trades
    traded = result.returns.filter(pl.col("turnover") > 0)["date"]
    if schedule == "weekly":  # the session after each Friday (or last session of the week)
        assert all(d.weekday() == 0 for d in traded.to_list())


# ------------------------------------------------------------------- frames, determinism


@pytest.fixture(scope="module")
def market():
    return synthetic_market(
        n_symbols=12, n_sessions=160, signal_lookback=20, signal_skip=2, horizon=1, ic=0.1, seed=5
    )


def momentum(prices: pl.DataFrame) -> pl.DataFrame:
    past = pl.col("close").shift(20).over("symbol")
    return prices.select("date", "symbol", (pl.col("close") / past - 1).alias("score"))


@pytest.mark.parametrize("method", ["quantile", "proportional", "vol_scaled"])
def test_backtest_signal_is_deterministic_and_consistent(market, method):
    prices = market.prices
    runs = [
        backtest_signal(prices, momentum(prices), method=method, config={"rebalance": "weekly"})
        for _ in range(2)
    ]
    assert_frame_equal(runs[0].returns, runs[1].returns)
    assert_frame_equal(runs[0].weights, runs[1].weights)
    r = runs[0].returns
    assert r.columns == [
        "date",
        "gross",
        "net",
        "turnover",
        "cost_commission",
        "cost_spread",
        "cost_slippage",
        "cost_impact",
        "cost_borrow",
        "long_exposure",
        "short_exposure",
    ]
    costs = r.select(pl.sum_horizontal(pl.col("^cost_.*$"))).to_series()
    np.testing.assert_allclose(r["gross"] - costs, r["net"], atol=1e-15)
    summary = runs[0].to_dict()
    assert summary["n_sessions"] == r.height
    np.testing.assert_allclose(summary["total_net_return"], (1 + r["net"]).product() - 1)
    # dollar neutral: long and short exposure both near 0.5 after each trade
    traded = r.filter(pl.col("turnover") > 0)
    np.testing.assert_allclose(traded["long_exposure"], 0.5, rtol=0.01)
    np.testing.assert_allclose(traded["short_exposure"], 0.5, rtol=0.01)
    held = runs[0].weights.group_by("date").agg(pl.col("weight").abs().sum()).sort("date")
    exposures = r.join(held, on="date").select(
        (pl.col("long_exposure") + pl.col("short_exposure") - pl.col("weight")).abs().max()
    )
    assert exposures.item() < 1e-12


def test_adjusted_close_marks_the_positions():
    prices = frame({"A": [100, 100, 100, 100], "B": [10, 11, 12, 13]}).with_columns(
        (
            pl.col("close")
            * pl.when(pl.col("symbol") == "A")
            .then(pl.Series([0.5, 0.5, 0.6, 0.6] * 2))
            .otherwise(1.0)
        ).alias("adj_close")
    )
    result = run_backtest(prices, weights([(0, "A", 1.0)]), gross_study=True)
    assert result.price_column == "adj_close"
    np.testing.assert_allclose(result.returns["net"], [0.0, 0.2, 0.0], atol=1e-15)
    raw = run_backtest(prices, weights([(0, "A", 1.0)]), gross_study=True, price_column="close")
    np.testing.assert_allclose(raw.returns["net"], 0.0, atol=1e-15)


def test_missing_price_zeroes_the_target_and_warns():
    prices = frame({"A": [100, 101, 102, 103, 104, 105], "B": [10, 11, 12, 13, 14, 15]})
    prices = prices.filter(~((pl.col("symbol") == "B") & (pl.col("date") == MONDAY + timedelta(3))))
    with pytest.warns(BacktestWarning, match="without a price on the execution session"):
        result = run_backtest(prices, weights([(0, "A", 0.5), (0, "B", 0.5)]), gross_study=True)
    held = result.weights.filter(pl.col("symbol") == "B")["date"].to_list()
    assert MONDAY + timedelta(3) not in held  # closed on the gap day, reopened the next day
    assert MONDAY + timedelta(4) in held


# ----------------------------------------------------------------------------- errors


def test_costs_are_on_by_default_and_zero_needs_a_flag():
    assert BacktestConfig().costs == CostModel()
    assert CostModel().linear_rate == pytest.approx(4e-4)
    with pytest.raises(ConfigError, match="gross_study=True"):
        BacktestConfig(costs=CostModel.zero())
    with pytest.raises(ConfigError, match="gross_study=True but costs are set"):
        BacktestConfig(gross_study=True, costs=CostModel())
    with pytest.raises(ConfigError, match="capital"):
        BacktestConfig(costs={"impact_coef": 0.5})


@pytest.mark.parametrize(
    "costs",
    [
        {"commission_bps": -1.0},
        {"half_spread_bps": -0.5},
        {"borrow_bps_annual": -5.0},
        {"slippage_bps": float("nan")},
        {"impact_coef": -1.0},
    ],
)
def test_negative_costs_are_refused(costs):
    key = next(iter(costs))
    with pytest.raises(ConfigError, match=key):
        CostModel(**costs)
    prices = frame({"A": [1.0, 2.0, 3.0]})
    with pytest.raises(ConfigError, match=key):
        run_backtest(prices, weights([(0, "A", 1.0)]), costs=costs)


def test_bad_weight_frames_are_refused():
    prices = frame({"A": [1.0, 2.0, 3.0], "B": [2.0, 2.0, 3.0]})
    with pytest.raises(DataError, match=r"Weight nan for 'A'"):
        run_backtest(prices, weights([(0, "A", float("nan"))]))
    with pytest.raises(InputError, match=r"without prices: \['Z'\]"):
        run_backtest(prices, weights([(0, "A", 0.5), (0, "Z", 0.5)]))
    with pytest.raises(InputError, match="Every weight is zero"):
        run_backtest(prices, weights([(0, "A", 0.0)]))
    with pytest.raises(InputError, match="duplicate"):
        run_backtest(prices, weights([(0, "A", 0.5), (0, "A", 0.5)]))
    with pytest.raises(InputError, match="empty"):
        run_backtest(prices, weights([(0, "A", 1.0)]).clear())
    with pytest.raises(SchemaError, match="lack"):
        run_backtest(prices, weights([(0, "A", 1.0)]).drop("weight"))


def test_bad_prices_are_refused():
    with pytest.raises(DataError, match="constant"):
        run_backtest(frame({"A": [5.0] * 4, "B": [2.0] * 4}), weights([(0, "A", 1.0)]))
    with pytest.raises(DataError, match="empty"):
        run_backtest(frame({"A": [1.0, 2.0]}).clear(), weights([(0, "A", 1.0)]))
    with pytest.raises(DataError, match=r"close price -1\.0 for column 0 on row 1"):
        backtest_arrays(np.array([[1.0], [-1.0], [np.nan]]), None, np.ones((3, 1)))
    with pytest.raises(InputError, match=r"Weight nan for column 1 on row 0"):
        backtest_arrays(np.ones((3, 2)) + np.arange(3)[:, None], None, [[0, np.nan]] * 3)


def test_bad_arrays_are_refused():
    close = np.array([[1.0, 2.0], [1.1, 2.1], [1.2, 2.2]])
    with pytest.raises(InputError, match="needs the open prices"):
        backtest_arrays(close, None, np.ones((3, 2)), config={"execution": "next_open"})
    with pytest.raises(InputError, match=r"weights array has shape \(2, 2\)"):
        backtest_arrays(close, None, np.ones((2, 2)))
    with pytest.raises(InputError, match="boolean"):
        backtest_arrays(close, None, np.ones((3, 2)), rebalance=np.array([1, 0, 0]))
    with pytest.raises(InsufficientDataError, match="before the last"):
        backtest_arrays(close, None, np.ones((1, 2)), rebalance=np.array([False, False, True]))
    with pytest.raises(DataError, match="bankrupt"):
        backtest_arrays(np.array([[1.0], [1.0], [3.0]]), None, -np.ones((3, 1)), config=GROSS)
    cfg = BacktestConfig(costs={"impact_coef": 1.0}, capital=1e6)
    with pytest.raises(InputError, match="dollar volume"):
        backtest_arrays(close, None, np.ones((3, 2)), config=cfg)
    with pytest.raises(InsufficientDataError, match="impact cost"):
        backtest_arrays(close, None, np.ones((3, 2)), dollar_volume=close, config=cfg)


def test_run_backtest_guards_the_holdout(monkeypatch):
    research_context = pytest.importorskip("quantdesk.quant_core.research_context")
    seen = []

    class RefusedError(InputError):
        pass

    def guard(frame, *, what, **kwargs):
        seen.append(what)
        raise RefusedError("inside the holdout")

    monkeypatch.setattr(research_context, "guard_holdout", guard)
    with pytest.raises(RefusedError):
        run_backtest(frame({"A": [1.0, 2.0, 3.0]}), weights([(0, "A", 1.0)]))
    assert seen == ["backtest prices"]


# ------------------------------------------------------------------- vectorbt cross-check


@pytest.mark.parametrize("execution", ["next_close", "next_open"])
@pytest.mark.parametrize("every", [1, 3])
def test_net_returns_agree_with_vectorbt(rng, execution, every):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vectorbt's own deprecation noise is not ours
        vbt = pytest.importorskip("vectorbt", reason="vectorbt is a bench extra")
        pd = pytest.importorskip("pandas")
    n_rows, n_cols = 80, 6
    close = 40 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_rows, n_cols)), axis=0))
    opens = close * np.exp(rng.normal(0, 0.01, close.shape))
    targets = rng.normal(0, 1, close.shape)
    targets -= targets.mean(axis=1, keepdims=True)
    targets /= np.abs(targets).sum(axis=1, keepdims=True)
    mask = np.arange(n_rows) % every == 0
    cfg = BacktestConfig(execution=execution, costs={"borrow_bps_annual": 0.0})
    ours = backtest_arrays(close, opens, targets, rebalance=mask, config=cfg)
    size = np.full(close.shape, np.nan)
    decisions = np.flatnonzero(mask[:-1])
    size[decisions + 1] = targets[decisions]  # vectorbt orders sit on the execution bar
    index = pd.date_range("2024-01-01", periods=n_rows, freq="B")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        portfolio = vbt.Portfolio.from_orders(
            close=pd.DataFrame(close, index=index),
            size=pd.DataFrame(size, index=index),
            price=pd.DataFrame(close if execution == "next_close" else opens, index=index),
            size_type="targetpercent",
            fees=cfg.costs.linear_rate,
            cash_sharing=True,
            group_by=True,
            call_seq="auto",
            init_cash=1e6,  # vectorbt ignores orders below 1e-12 shares: use real money
            freq="1D",
        )
        theirs = portfolio.returns().to_numpy()
    np.testing.assert_allclose(ours.net, theirs[ours.rows], rtol=0, atol=1e-6)
    assert np.abs(ours.net - theirs[ours.rows]).max() < 1e-10


# ---------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_momentum_backtest_is_consistent(shared_data):
    from quantdesk.quant_core.loaders import load_prices

    prices = load_prices(
        shared_data / "prices" / "yfinance_adjusted_ohlcv_2005_2024.parquet", start="2015-01-01"
    ).filter(pl.col("close") > 0)
    past = pl.col("close").shift(126).over("symbol")
    signal = prices.select("date", "symbol", (pl.col("close") / past - 1).alias("score"))
    result = backtest_signal(
        prices, signal, quantile=0.2, config={"rebalance": "monthly", "execution": "next_open"}
    )
    r = result.returns
    assert result.n_rebalances > 100
    assert r.select(pl.all().exclude("date").is_finite().all()).row(0) == (True,) * 10
    costs = r.select(pl.sum_horizontal(pl.col("^cost_.*$"))).to_series()
    np.testing.assert_allclose(r["gross"] - costs, r["net"], atol=1e-15)
    assert 0.0 < result.cost_totals["spread"] < 0.5
    traded = r.filter(pl.col("turnover") > 0)  # 0.5 at the open, drifted to the close
    np.testing.assert_allclose(traded["short_exposure"], 0.5, rtol=0.1)
