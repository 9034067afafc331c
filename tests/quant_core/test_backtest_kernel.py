"""Tests of quant_core.backtest_kernel: the numba kernel against the numpy engine and a loop."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.quant_core.backtest_config import BacktestConfig, BacktestWarning
from quantdesk.quant_core.backtest_engine import backtest_arrays
from quantdesk.quant_core.backtest_kernel import KERNEL_ENV, kernel_choice, numba_available
from quantdesk.quant_core.costs import CostModel
from quantdesk.quant_core.errors import (
    ConfigError,
    DataError,
    InputError,
    InsufficientDataError,
    QuantdeskError,
)

pytest.importorskip("numba", reason="the compiled kernel needs numba")

KERNELS = ["numpy", "numba"]
FIELDS = (
    "gross",
    "net",
    "turnover",
    "commission",
    "spread",
    "slippage",
    "impact",
    "borrow",
    "long_exposure",
    "short_exposure",
)
GROSS = BacktestConfig(gross_study=True)


@contextmanager
def kernel(name: str) -> Iterator[None]:
    """Force one kernel (a context manager, usable inside Hypothesis examples)."""
    saved = os.environ.get(KERNEL_ENV)
    os.environ[KERNEL_ENV] = name
    try:
        yield
    finally:
        if saved is None:
            del os.environ[KERNEL_ENV]
        else:
            os.environ[KERNEL_ENV] = saved


def both(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``backtest_arrays`` under the numpy and the numba kernel."""
    runs = []
    for name in KERNELS:
        with kernel(name):
            runs.append(backtest_arrays(*args, **kwargs))
    return runs[0], runs[1]


def assert_same(ours: Any, theirs: Any, atol: float) -> None:
    for name in ("rows", "decision_rows", "trade_rows"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name))
    for name in FIELDS:
        # relative as well as absolute: exposures of a book shrunk by heavy impact costs reach
        # 20x capital, where 1e-12 absolute would demand more digits than float64 carries
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=atol, atol=atol)
    np.testing.assert_allclose(ours.nav, theirs.nav, rtol=atol, atol=0)
    np.testing.assert_allclose(ours.held_weights(), theirs.held_weights(), rtol=0, atol=atol)
    assert ours.notes == theirs.notes


def reference(close, opens, targets, decisions, costs: CostModel, execution: str):
    """Per-session loop over shares and cash (the model, as in test_backtest.py)."""
    n_rows, n_cols = close.shape
    trades = {int(d) + 1: k for k, d in enumerate(decisions) if d + 1 < n_rows}
    cash, shares, short_prev = 1.0, np.zeros(n_cols), 0.0
    values = []
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
        short_prev = np.maximum(-shares * close[t], 0.0).sum()
        if t >= min(trades):
            values.append(cash + shares @ close[t])
    values = np.array(values)
    return values / np.concatenate([[1.0], values[:-1]]) - 1.0


def market(seed: int, n_rows: int = 25, n_cols: int = 4, leverage: float = 1.0):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.03, (n_rows, n_cols)), axis=0))
    opens = close * np.exp(rng.normal(0, 0.01, close.shape))
    targets = rng.normal(0, 1, close.shape)
    targets *= leverage / np.abs(targets).sum(axis=1, keepdims=True)
    targets[rng.uniform(size=close.shape) < 0.2] = 0.0
    return close, opens, targets


# ---------------------------------------------------------------------- kernel choice


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("numpy", "numpy"),
        ("NUMPY", "numpy"),
        ("numba", "numba"),
        ("auto", "numba"),
        (None, "numba"),
    ],
)
def test_kernel_choice_reads_the_environment(value, expected):
    environ = {} if value is None else {KERNEL_ENV: value}
    assert numba_available()
    assert kernel_choice(environ) == expected


def test_an_unknown_kernel_is_refused():
    with pytest.raises(ConfigError, match="'cuda' is not a backtest kernel"):
        kernel_choice({KERNEL_ENV: "cuda"})


# ------------------------------------------------------------------ agreement, exactness


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    execution=st.sampled_from(["next_close", "next_open"]),
    every=st.integers(1, 4),
    bps=st.floats(0.5, 60.0),
    borrow=st.floats(0.0, 2000.0),
    leverage=st.floats(0.2, 3.0),
)
def test_kernels_agree_and_match_a_per_session_loop(seed, execution, every, bps, borrow, leverage):
    close, opens, targets = market(seed, leverage=leverage)
    mask = np.arange(close.shape[0]) % every == 0
    costs = CostModel(
        commission_bps=bps, half_spread_bps=0.0, slippage_bps=0.0, borrow_bps_annual=borrow
    )
    cfg = BacktestConfig(execution=execution, costs=costs)
    numpy_run, numba_run = both(close, opens, targets, rebalance=mask, config=cfg)
    assert_same(numba_run, numpy_run, atol=1e-12)
    decisions = np.flatnonzero(mask)
    loop = reference(close, opens, targets[decisions], decisions, costs, execution)
    np.testing.assert_allclose(numba_run.net, loop, rtol=0, atol=1e-12)
    paid = sum(numba_run.costs().values())
    np.testing.assert_allclose(numba_run.gross - paid, numba_run.net, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    execution=st.sampled_from(["next_close", "next_open"]),
    every=st.integers(1, 3),
    coef=st.floats(0.05, 2.0),
    capital=st.floats(1e5, 1e9),
)
def test_kernels_agree_with_square_root_impact(seed, execution, every, coef, capital):
    close, opens, targets = market(seed, n_rows=40)
    targets[:12] = 0.0  # trade once the trailing volatility is defined
    volume = np.random.default_rng(seed + 1).uniform(1e4, 1e6, close.shape)
    mask = np.arange(close.shape[0]) % every == 0
    cfg = BacktestConfig(
        execution=execution, costs={"impact_coef": coef, "impact_window": 10}, capital=capital
    )
    args = (close, opens, targets)
    options = {"rebalance": mask, "dollar_volume": close * volume, "config": cfg}
    errors = []
    for name in KERNELS:
        with kernel(name):
            try:
                backtest_arrays(*args, **options)
            except QuantdeskError as exc:  # e.g. impact so large the book goes bankrupt
                errors.append((type(exc), str(exc)))
    if errors:
        # an undefined run is refused by both kernels, with the same error
        assert len(errors) == len(KERNELS)
        assert errors[0] == errors[1]
        return
    numpy_run, numba_run = both(*args, **options)
    assert numba_run.impact.max() > 0.0
    assert_same(numba_run, numpy_run, atol=1e-12)


def test_kernels_agree_on_a_larger_book(rng):
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, (400, 60)), axis=0))
    targets = rng.normal(0, 1, close.shape)
    targets -= targets.mean(axis=1, keepdims=True)
    targets /= np.abs(targets).sum(axis=1, keepdims=True)
    for mask in (None, np.arange(400) % 5 == 0):
        assert_same(*both(close, None, targets, rebalance=mask, config=BacktestConfig()), 1e-13)


@pytest.mark.parametrize("name", KERNELS)
def test_missing_prices_are_handled_alike(name):
    close = np.array([[10.0, 20.0], [11.0, np.nan], [12.0, 21.0], [12.5, 22.0], [13.0, 23.0]])
    with kernel(name), pytest.warns(BacktestWarning, match="set to 0"):
        result = backtest_arrays(close, None, np.full((5, 2), 0.5), config=BacktestConfig())
    with kernel("numpy"), pytest.warns(BacktestWarning):
        expected = backtest_arrays(close, None, np.full((5, 2), 0.5), config=BacktestConfig())
    assert_same(result, expected, atol=1e-15)
    assert result.held_weights()[0, 1] == 0.0  # B could not be bought on its gap day


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("name", KERNELS)
def test_errors_are_the_numpy_engines(name):
    close = np.array([[1.0, 2.0], [1.1, 2.1], [1.2, 2.2]])
    with kernel(name):
        with pytest.raises(DataError, match="bankrupt"):
            backtest_arrays(np.array([[1.0], [1.0], [3.0]]), None, -np.ones((3, 1)), config=GROSS)
        with pytest.raises(InputError, match=r"Weight nan for column 1 on row 0"):
            backtest_arrays(close, None, [[0.5, np.nan]] * 3)
        impact = BacktestConfig(costs={"impact_coef": 1.0}, capital=1e6)
        with pytest.raises(InsufficientDataError, match="impact cost"):
            backtest_arrays(close, None, np.ones((3, 2)), dollar_volume=close, config=impact)
