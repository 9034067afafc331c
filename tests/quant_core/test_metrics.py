"""Tests for quant_core.metrics: empyrical cross-check, golden values, errors, properties."""

from __future__ import annotations

import datetime as dt
import json
import math

import empyrical
import empyrical.stats
import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from quantdesk.quant_core import metrics as m
from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError


def _series(seed: int = 42, n: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Fat-tailed daily returns (t with 4 dof) and a correlated benchmark."""
    rng = np.random.default_rng(seed)
    r = rng.standard_t(4, n) * 0.01 + 0.0004
    b = 0.6 * r + rng.normal(0.0, 0.008, n)
    return r, b


R, B = _series()

# (name, ours, empyrical's) on the same fixed series; identical formulas -> 1e-10 relative.
CROSS_CHECKS = [
    ("annual_return", lambda: m.annual_return(R), lambda: empyrical.annual_return(R)),
    ("cagr", lambda: m.cagr(R), lambda: empyrical.cagr(R)),
    ("cumulative_return", lambda: m.cumulative_return(R), lambda: empyrical.cum_returns_final(R)),
    ("annual_volatility", lambda: m.annual_volatility(R), lambda: empyrical.annual_volatility(R)),
    ("sharpe_ratio", lambda: m.sharpe_ratio(R), lambda: empyrical.sharpe_ratio(R)),
    ("sharpe_rf", lambda: m.sharpe_ratio(R, 1e-4), lambda: empyrical.sharpe_ratio(R, 1e-4)),
    ("sortino_ratio", lambda: m.sortino_ratio(R), lambda: empyrical.sortino_ratio(R)),
    ("sortino_req", lambda: m.sortino_ratio(R, 2e-4), lambda: empyrical.sortino_ratio(R, 2e-4)),
    ("downside_risk", lambda: m.downside_risk(R), lambda: empyrical.downside_risk(R)),
    ("max_drawdown", lambda: m.max_drawdown(R), lambda: empyrical.max_drawdown(R)),
    ("calmar_ratio", lambda: m.calmar_ratio(R), lambda: empyrical.calmar_ratio(R)),
    ("tail_ratio", lambda: m.tail_ratio(R), lambda: empyrical.tail_ratio(R)),
    ("var_95", lambda: m.value_at_risk(R, 0.95), lambda: empyrical.value_at_risk(R, 0.05)),
    ("var_99", lambda: m.value_at_risk(R, 0.99), lambda: empyrical.value_at_risk(R, 0.01)),
    (
        "cvar_95",
        lambda: m.conditional_value_at_risk(R, 0.95),
        lambda: empyrical.conditional_value_at_risk(R, 0.05),
    ),
    (
        "cvar_99",
        lambda: m.conditional_value_at_risk(R, 0.99),
        lambda: empyrical.conditional_value_at_risk(R, 0.01),
    ),
    ("alpha", lambda: m.alpha_beta(R, B).alpha, lambda: empyrical.alpha_beta(R, B)[0]),
    ("beta", lambda: m.alpha_beta(R, B).beta, lambda: empyrical.alpha_beta(R, B)[1]),
    (
        "alpha_rf",
        lambda: m.alpha_beta(R, B, 1e-4).alpha,
        lambda: empyrical.alpha_beta(R, B, 1e-4)[0],
    ),
    (
        "sharpe_weekly",
        lambda: m.sharpe_ratio(R, periods=52),
        lambda: empyrical.sharpe_ratio(R, period="weekly"),
    ),
]


@pytest.mark.parametrize(("name", "ours", "theirs"), CROSS_CHECKS, ids=[c[0] for c in CROSS_CHECKS])
def test_matches_empyrical(name: str, ours, theirs) -> None:
    assert ours() == pytest.approx(theirs(), rel=1e-10, abs=1e-15), name


def test_drawdown_series_matches_empyrical() -> None:
    np.testing.assert_allclose(
        m.drawdown_series(R), empyrical.stats.drawdown_series(R), rtol=0, atol=1e-14
    )


def test_polars_inputs_match_numpy() -> None:
    days = [dt.date(2000, 1, 1) + dt.timedelta(days=i) for i in range(R.size)]
    frame = pl.DataFrame({"date": days, "net": R})
    assert m.sharpe_ratio(frame) == m.sharpe_ratio(R)
    assert m.sharpe_ratio(pl.Series(R)) == m.sharpe_ratio(R)
    assert m.max_drawdown(list(R)) == m.max_drawdown(R)


# Tiny series worked by hand: wealth 1 -> 1.1 -> 0.88 -> 0.924 -> 1.0164.
TINY = [0.1, -0.2, 0.05, 0.1]
TINY_STD = math.sqrt((0.0875**2 + 0.2125**2 + 0.0375**2 + 0.0875**2) / 3)


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (lambda r: m.cumulative_return(r), 0.0164),
        (lambda r: m.cagr(r, periods=4), 0.0164),  # one year of four periods
        (lambda r: m.cagr(r, periods=2), 1.0164**0.5 - 1),
        (lambda r: m.max_drawdown(r), -0.2),
        (lambda r: m.max_drawdown_duration(r), 3),  # peak at 1.1, not recovered
        (lambda r: m.hit_rate(r), 0.75),
        (lambda r: m.profit_factor(r), 0.25 / 0.2),
        (lambda r: m.per_period_sharpe(r), 0.0125 / TINY_STD),
        (lambda r: m.sharpe_ratio(r, periods=4), 0.0125 / TINY_STD * 2),
        (lambda r: m.annual_volatility(r, periods=4), TINY_STD * 2),
        (lambda r: m.downside_risk(r, periods=1), math.sqrt(0.04 / 4)),
        (lambda r: m.sortino_ratio(r, periods=1), 0.0125 / math.sqrt(0.04 / 4)),
        (lambda r: m.calmar_ratio(r, periods=4), 0.0164 / 0.2),
        (lambda r: list(m.drawdown_series(r)), [0.0, -0.2, -0.16, 1.0164 / 1.1 - 1]),
    ],
)
def test_golden_tiny_series(fn, expected) -> None:
    assert fn(TINY) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("returns", "expected"),
    [
        ([-0.1, 0.2], 2),  # peak at the start, recovered on session 2
        ([0.1, -0.1], 1),  # still open at the end: counted to the last session
        ([0.01, 0.02], 0),
        ([0.0, 0.0, 0.0], 0),
        ([-0.1, 0.05, 0.06, -0.01], 3),
        ([0.1, -0.5, 1.0, -0.01, -0.01], 2),
    ],
)
def test_max_drawdown_duration_golden(returns: list[float], expected: int) -> None:
    assert m.max_drawdown_duration(returns) == expected


# 20 returns -0.10, -0.09, ..., 0.09: percentile 5 sits at position 19 * 0.05 = 0.95.
LADDER = np.arange(-10, 10) / 100


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (lambda: m.value_at_risk(LADDER, 0.95), -0.10 + 0.95 * 0.01),
        (lambda: m.value_at_risk(LADDER, 0.99), -0.10 + 0.19 * 0.01),
        (lambda: m.conditional_value_at_risk(LADDER, 0.95), -0.10),  # int(0.95) + 1 = 1 return
        (lambda: m.conditional_value_at_risk(LADDER, 0.90), -0.095),  # int(1.9) + 1 = 2 returns
        (lambda: m.tail_ratio(LADDER), (0.08 + 0.05 * 0.01) / (0.10 - 0.95 * 0.01)),
    ],
)
def test_golden_tail_measures(fn, expected: float) -> None:
    assert fn() == pytest.approx(expected, rel=1e-12)


def test_moments_match_scipy() -> None:
    mom = m.sample_moments(R)
    assert mom.n_obs == R.size
    assert mom.std == pytest.approx(np.std(R, ddof=1), rel=1e-12)
    assert mom.skew == pytest.approx(stats.skew(R, bias=True), rel=1e-10)
    assert mom.kurtosis == pytest.approx(stats.kurtosis(R, fisher=False, bias=True), rel=1e-10)
    assert mom.excess_kurtosis == pytest.approx(mom.kurtosis - 3.0)
    assert mom.sharpe == pytest.approx(m.per_period_sharpe(R), rel=1e-12)
    assert m.skewness(R) == pytest.approx(mom.skew, rel=1e-12)
    assert m.kurtosis(R, excess=False) == pytest.approx(mom.kurtosis, rel=1e-12)
    assert m.kurtosis(R, excess=True) == pytest.approx(stats.kurtosis(R), rel=1e-10)
    assert mom.to_dict()["kurtosis_convention"] == "raw"


def test_kurtosis_convention_must_be_explicit() -> None:
    with pytest.raises(TypeError):
        m.kurtosis(R)  # type: ignore[call-arg]


def test_alpha_beta_aligns_frames_on_date() -> None:
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=i) for i in range(R.size)]
    strat = pl.DataFrame({"date": days, "net": R})
    # The benchmark covers more dates and comes in another order.
    extra = pl.DataFrame({"date": [dt.date(2019, 12, 31)], "spy": [0.5]})
    bench = pl.concat([pl.DataFrame({"date": days, "spy": B}), extra]).reverse()
    assert m.alpha_beta(strat, bench) == pytest.approx(tuple(m.alpha_beta(R, B)), rel=1e-12)
    with pytest.raises(DataError, match="lacks 1 of the"):
        m.alpha_beta(strat, bench.filter(pl.col("date") != days[5]))
    with pytest.raises(InputError, match="equal length"):
        m.alpha_beta(R, B[:-1])


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: m.sharpe_ratio([]), InsufficientDataError, "0 observation"),
        (lambda: m.sharpe_ratio([0.01]), InsufficientDataError, "at least 2"),
        (lambda: m.cagr([]), InsufficientDataError, "0 observation"),
        (lambda: m.sharpe_ratio([0.01] * 30), m.UndefinedMetricError, "Sharpe ratio undefined"),
        (lambda: m.sample_moments([0.0] * 5), m.UndefinedMetricError, "zero variance"),
        (lambda: m.sharpe_ratio([0.01, np.nan, 0.02]), DataError, "NaN/inf"),
        (lambda: m.max_drawdown([0.01, np.inf]), DataError, "row 1"),
        (lambda: m.sharpe_ratio(pl.Series([0.01, None, 0.02])), DataError, "null"),
        (lambda: m.sharpe_ratio(np.zeros((3, 2))), InputError, "one-dimensional"),
        (lambda: m.sharpe_ratio(["a", "b"]), InputError, "not numeric"),
        (lambda: m.cagr([0.1, -1.5]), DataError, "below -100%"),
        (lambda: m.calmar_ratio([0.01, 0.02]), m.UndefinedMetricError, "no drawdown"),
        (lambda: m.sortino_ratio([0.01, 0.02]), m.UndefinedMetricError, "Sortino"),
        (lambda: m.profit_factor([0.01, 0.0]), m.UndefinedMetricError, "Profit factor"),
        (lambda: m.hit_rate([0.0, 0.0]), m.UndefinedMetricError, "all 2 returns are zero"),
        (lambda: m.tail_ratio([0.0] * 10 + [0.1]), m.UndefinedMetricError, "5th percentile"),
        (lambda: m.value_at_risk(R, 95), InputError, "level=95"),
        (lambda: m.sharpe_ratio(R, periods=0), InputError, "periods=0"),
        (lambda: m.alpha_beta(R, np.full(R.size, 0.001)), m.UndefinedMetricError, "Beta"),
        (lambda: m.annual_turnover([0.1, -0.1]), DataError, "Turnover"),
        (
            lambda: m.sharpe_ratio(
                pl.DataFrame({"date": [1, 2], "a": [0.1, 0.2], "b": [0.1, 0.3]})
            ),
            InputError,
            "expected 'date' plus one series",
        ),
        (lambda: m.performance_summary([0.002] * 40), m.UndefinedMetricError, "Sharpe"),
        (lambda: m.performance_summary(R, nan_policy="drop"), InputError, "nan_policy"),  # type: ignore[arg-type]
    ],
)
def test_errors_name_the_problem(call, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match) as info:
        call()
    assert info.value.fix  # every error says what to do


def test_annual_turnover() -> None:
    assert m.annual_turnover([0.1, 0.3]) == pytest.approx(0.2 * 252)
    frame = pl.DataFrame({"date": [1, 2], "net": [0.0, 0.1], "turnover": [0.2, 0.4]})
    assert m.annual_turnover(frame, 12) == pytest.approx(0.3 * 12)


def test_performance_summary_on_a_backtest_frame() -> None:
    days = [dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(R.size)]
    frame = pl.DataFrame(
        {"date": days, "gross": R + 1e-4, "net": R, "turnover": np.full(R.size, 0.05)}
    )
    bench = pl.DataFrame({"date": days, "spy": B})
    s = m.performance_summary(frame, column="net", benchmark=bench, turnover=frame)
    assert (s.start, s.end, s.n_obs) == (days[0], days[-1], R.size)
    assert s.sharpe == m.sharpe_ratio(R)
    assert s.max_drawdown == m.max_drawdown(R)
    assert s.cvar_99 == m.conditional_value_at_risk(R, 0.99)
    assert (s.alpha, s.beta) == tuple(m.alpha_beta(R, B))
    assert s.annual_turnover == pytest.approx(0.05 * 252)
    assert s.kurtosis == pytest.approx(s.excess_kurtosis + 3)
    assert s.notes == ()
    d = s.to_dict()
    json.dumps(d)
    assert d["start"] == days[0].isoformat()
    assert d["kurtosis_convention"] == "raw"
    md = s.to_markdown()
    assert "| sharpe |" in md
    assert f"{s.cagr:.2%}" in md


def test_performance_summary_marks_undefined_ratios() -> None:
    s = m.performance_summary([0.01, 0.02, 0.005, 0.0])
    assert (s.sortino, s.calmar, s.profit_factor) == (None, None, None)
    assert (s.alpha, s.annual_turnover) == (None, None)
    assert len(s.notes) == 3
    assert any(n.startswith("calmar:") for n in s.notes)
    assert "| calmar | undefined |" in s.to_markdown()
    assert "| beta | n/a |" in s.to_markdown()


def test_performance_summary_nan_policy() -> None:
    with_nan = np.concatenate([R[:10], [np.nan], R[10:]])
    with pytest.raises(DataError, match="row 10"):
        m.performance_summary(with_nan)
    s = m.performance_summary(
        with_nan, nan_policy="omit", benchmark=np.concatenate([B[:10], [0.0], B[10:]])
    )
    assert s.sharpe == m.sharpe_ratio(R)
    assert s.beta == pytest.approx(m.alpha_beta(R, B).beta, rel=1e-12)
    assert s.notes == ("nan_policy='omit': dropped 1 missing return(s).",)


def _naive_duration(r: np.ndarray) -> int:
    """Reference: walk the wealth path, tracking the peak session."""
    wealth, peak, peak_at, longest = 1.0, 1.0, 0, 0
    for i, x in enumerate(r, start=1):
        wealth *= 1.0 + x
        if wealth >= peak:
            longest = max(longest, i - peak_at if i - peak_at > 1 else 0)
            peak, peak_at = wealth, i
    return max(longest, len(r) - peak_at)


returns_arrays = arrays(
    np.float64,
    st.integers(2, 80),
    elements=st.floats(-0.5, 0.5, allow_nan=False, allow_infinity=False, width=64),
)


@settings(max_examples=80, deadline=None)
@given(r=returns_arrays)
def test_drawdown_properties(r: np.ndarray) -> None:
    dd = m.drawdown_series(r)
    assert dd.shape == r.shape
    assert (dd <= 0).all()
    assert -1.0 <= m.max_drawdown(r) <= 0.0
    assert m.max_drawdown_duration(r) == _naive_duration(r)
    assert m.max_drawdown(r) == pytest.approx(empyrical.max_drawdown(r), abs=1e-12)


@settings(max_examples=80, deadline=None)
@given(r=returns_arrays, scale=st.floats(0.01, 100.0))
def test_ratio_properties(r: np.ndarray, scale: float) -> None:
    assume(np.ptp(r) > 1e-6)
    sharpe = m.sharpe_ratio(r)
    assert sharpe == pytest.approx(empyrical.sharpe_ratio(r), rel=1e-9, abs=1e-12)
    # Sharpe is invariant to leverage; VaR scales with it and CVaR sits below VaR.
    assert m.sharpe_ratio(r * scale) == pytest.approx(sharpe, rel=1e-9, abs=1e-12)
    assert m.conditional_value_at_risk(r) <= m.value_at_risk(r) + 1e-15
    assert m.value_at_risk(r * scale) == pytest.approx(
        m.value_at_risk(r) * scale, rel=1e-9, abs=1e-15
    )
    assert m.cagr(r) == pytest.approx(empyrical.cagr(r), rel=1e-9, abs=1e-12)
