from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from arch.bootstrap import SPA
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import false_discovery_control

from quantdesk.quant_core.errors import DataError, InputError
from quantdesk.quant_core.multiple_testing import (
    _stationary_variance,
    benjamini_hochberg,
    reality_check,
    sharpe_confidence_interval,
    spa_test,
)

SR3_DAILY = 3.0 / math.sqrt(252)  # a per-period Sharpe of annualised 3


def _heteroskedastic(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([3, seed])
    strategies = rng.normal(0.0, 0.01, size=(600, 8)) * np.linspace(1.0, 3.0, 8)
    strategies[:, 2] += 0.0012
    benchmark = rng.normal(0.0, 0.005, size=600)
    return strategies, benchmark


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unstudentized_spa_reproduces_arch_exactly(seed: int) -> None:
    strategies, benchmark = _heteroskedastic(seed)
    ours = spa_test(strategies, benchmark, block_size=5, reps=500, seed=seed, studentize=False)
    # arch takes losses: benchmark loss -b, model losses -r, so its differential is r - b.
    theirs = SPA(-benchmark, -strategies, block_size=5, reps=500, seed=seed)
    theirs.compute()
    assert (ours.p_value_lower, ours.p_value_consistent, ours.p_value_upper) == (
        theirs.pvalues["lower"],
        theirs.pvalues["consistent"],
        theirs.pvalues["upper"],
    )


@pytest.mark.parametrize("block", [1, 3, 10])
def test_stationary_variance_matches_the_direct_kernel_sum(block: int) -> None:
    d = np.random.default_rng(block).normal(size=(57, 3)) + np.linspace(0, 1, 57)[:, None]
    n = d.shape[0]
    x = d - d.mean(axis=0)
    q = 1.0 / block
    expected = (x**2).sum(axis=0) / n
    for i in range(1, n):
        kappa = (n - i) / n * (1 - q) ** i + i / n * (1 - q) ** (n - i)
        expected = expected + 2 * kappa * (x[:-i] * x[i:]).sum(axis=0) / n
    np.testing.assert_allclose(_stationary_variance(d, block), expected, rtol=1e-10)


def test_noise_search_is_not_rejected() -> None:
    noise = np.random.default_rng([5, 0]).normal(0.0, 0.01, size=(1000, 100))
    for result in (spa_test(noise, reps=500, seed=1), reality_check(noise, reps=500, seed=1)):
        assert result.p_value > 0.1  # seeded: SPA 0.27, RC 0.31
        assert not result.rejected()
        assert (result.n_strategies, result.n_obs, result.reps, result.seed) == (100, 1000, 500, 1)


def test_noise_rejection_rate_is_at_most_nominal() -> None:
    # Under the null the tests are at most 5% likely to reject at 5% (both are conservative
    # when all strategies are exactly null). Binomial(15, 0.05) >= 3 has probability 3.6%.
    rejections = 0
    for seed in range(15):
        noise = np.random.default_rng([6, seed]).normal(0.0, 0.01, size=(750, 100))
        rejections += spa_test(noise, reps=300, seed=seed).rejected()
    assert rejections <= 2


def test_planted_strong_strategy_is_found() -> None:
    returns = np.random.default_rng([5, 1]).normal(0.0, 0.01, size=(1000, 100))
    returns[:, 42] += 0.01 * SR3_DAILY
    for result in (spa_test(returns, reps=500, seed=2), reality_check(returns, reps=500, seed=2)):
        assert result.p_value < 0.01
        assert result.rejected()
        assert result.best_strategy == "s42"


def test_studentization_finds_a_low_volatility_edge_that_the_reality_check_misses() -> None:
    # A quiet strategy with a real edge (daily vol 0.5%, annualised SR 3) among 19 loud noise
    # strategies (vol 2%): White's unscaled maximum is dominated by the loud ones.
    rng = np.random.default_rng([7, 0])
    returns = rng.normal(0.0, 0.02, size=(1000, 20))
    returns[:, 0] = rng.normal(0.005 * SR3_DAILY, 0.005, size=1000)
    spa = spa_test(returns, reps=500, seed=1)
    rc = reality_check(returns, reps=500, seed=1)
    assert spa.p_value < 0.01
    assert spa.best_strategy == "s0"
    assert rc.p_value > 0.2  # seeded: 0.78


def test_benchmark_frame_input_and_reproducibility() -> None:
    strategies, benchmark = _heteroskedastic(4)
    frame = pl.DataFrame({"date": np.datetime64("2020-01-01") + np.arange(600)}).with_columns(
        pl.Series(f"v{i}", strategies[:, i]) for i in range(8)
    )
    a = spa_test(frame, benchmark, reps=200, seed=9)
    b = spa_test(strategies, benchmark, reps=200, seed=9)
    assert a.best_strategy == "v" + b.best_strategy[1:]
    assert a.p_value == b.p_value
    assert a.benchmark == "given"
    excess = spa_test(strategies - benchmark[:, None], reps=200, seed=9)
    assert excess.p_value == a.p_value
    assert a.to_dict()["bootstrap"] == "stationary"


def test_default_seed_comes_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    strategies, _ = _heteroskedastic(5)
    monkeypatch.setenv("QUANTDESK_SEED", "123")
    default = spa_test(strategies, reps=200, block_size=3)
    assert default.seed == 123
    assert default == spa_test(strategies, reps=200, block_size=3, seed=123)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"benchmark": np.zeros(10)}, InputError, "benchmark has 10"),
        ({"reps": 10}, InputError, "reps"),
        ({"block_size": 0}, InputError, "block_size"),
        ({"seed": -1}, InputError, "seed"),
    ],
)
def test_superiority_tests_refuse_bad_settings(kwargs: dict, error: type, message: str) -> None:
    strategies, _ = _heteroskedastic(6)
    with pytest.raises(error, match=message):
        spa_test(strategies, **kwargs)


def test_superiority_tests_refuse_flat_or_missing_returns() -> None:
    strategies, _ = _heteroskedastic(7)
    strategies[:, 3] = 0.0
    with pytest.raises(InputError, match="'s3' has zero variance"):
        reality_check(strategies, reps=200)
    strategies[5, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        reality_check(strategies, reps=200)


# --- Benjamini-Hochberg ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "q", "rejected"),
    [
        # sorted 0.005, 0.01, 0.03, 0.04 -> 4p/rank = 0.02, 0.02, 0.04, 0.04: all rejected.
        ([0.01, 0.04, 0.03, 0.005], [0.02, 0.04, 0.04, 0.02], [True] * 4),
        # 4p/rank = 0.04, 0.04, 0.04, 0.5: the first three are rejected.
        ([0.01, 0.02, 0.03, 0.5], [0.04, 0.04, 0.04, 0.5], [True, True, True, False]),
        # Step-up: 0.03 > 0.05/4 alone, but 0.04 <= 2 * 0.05 / 2... q = min over later ranks.
        ([0.03, 0.04], [0.04, 0.04], [True, True]),
        ([0.2, 0.9], [0.4, 0.9], [False, False]),
    ],
)
def test_bh_golden(p: list[float], q: list[float], rejected: list[bool]) -> None:
    result = benjamini_hochberg(p, alpha=0.05)
    np.testing.assert_allclose(result.q_values, q)
    assert result.rejected.tolist() == rejected
    assert result.n_rejected == sum(rejected)
    assert result.p_threshold == (
        max(x for x, r in zip(p, rejected, strict=True) if r) if any(rejected) else None
    )


@settings(max_examples=80, deadline=None)
@given(
    p=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60),
    method=st.sampled_from(["bh", "by"]),
    alpha=st.floats(0.01, 0.3),
)
def test_bh_matches_scipy_and_is_monotone(p: list[float], method: str, alpha: float) -> None:
    result = benjamini_hochberg(p, alpha=alpha, method=method)
    np.testing.assert_allclose(
        result.q_values, false_discovery_control(p, method=method), rtol=1e-12, atol=1e-15
    )
    arr = np.asarray(p)
    if result.n_rejected:
        # Every p-value at or below the largest rejected one is rejected too.
        assert result.rejected[arr <= result.p_threshold].all()
    assert result.n_tests == len(p)


def test_bh_on_many_noise_signals_rejects_nothing_and_finds_planted_ones() -> None:
    rng = np.random.default_rng(12)
    noise = rng.uniform(size=200)
    assert benjamini_hochberg(noise).n_rejected == 0
    signals = {f"sig{i}": float(v) for i, v in enumerate(noise)}
    signals.update({"real_a": 1e-6, "real_b": 2e-5})
    result = benjamini_hochberg(signals, alpha=0.05)
    assert result.discoveries() == ["real_a", "real_b"]
    assert result.to_dict()["names"][-1] == "real_b"


@pytest.mark.parametrize(
    ("p", "kwargs", "message"),
    [
        ([], {}, "at least 1"),
        ([0.1, 1.2], {}, "outside"),
        ([0.1, np.nan], {}, "NaN"),
        ([0.1], {"alpha": 0.0}, "alpha"),
        ([0.1], {"method": "holm"}, "unknown"),
    ],
)
def test_bh_refuses_bad_input(p: list[float], kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        benjamini_hochberg(p, **kwargs)


# --- bootstrap Sharpe interval ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["stationary", "circular", "iid"])
@pytest.mark.parametrize("interval", ["percentile", "bca"])
def test_sharpe_interval_brackets_the_estimate(method: str, interval: str) -> None:
    r = np.random.default_rng(13).normal(0.0008, 0.01, size=750)
    result = sharpe_confidence_interval(r, reps=300, seed=4, method=method, interval=interval)
    assert result.lower < result.sr < result.upper
    # The normal-theory half-width is 1.96 * sqrt((1 + SR^2/2) / (n - 1)) ~ 0.072.
    assert result.upper - result.lower == pytest.approx(2 * 1.96 / math.sqrt(749), rel=0.25)
    assert (result.reps, result.seed, result.n_obs, result.level) == (300, 4, 750, 0.95)
    _sr_a, lo_a, _up_a = result.annualized
    assert lo_a == pytest.approx(result.lower * math.sqrt(252))
    again = sharpe_confidence_interval(r, reps=300, seed=4, method=method, interval=interval)
    assert again == result


def test_sharpe_interval_covers_the_true_sharpe() -> None:
    # 60 samples of 500 normal returns with true per-period Sharpe 0.05: the 90% interval
    # should cover about 54 of them; 45 is 3 s.d. (sqrt(60 * 0.9 * 0.1) = 2.3) below.
    true_sr = 0.05
    covered = 0
    for seed in range(60):
        r = np.random.default_rng([14, seed]).normal(true_sr * 0.01, 0.01, size=500)
        ci = sharpe_confidence_interval(r, level=0.9, reps=200, seed=seed, block_size=1)
        covered += ci.lower <= true_sr <= ci.upper
    assert covered >= 45


def test_sharpe_interval_refuses_flat_or_sparse_returns() -> None:
    with pytest.raises(InputError, match="zero variance"):
        sharpe_confidence_interval(np.zeros(50), reps=100, seed=1)
    sparse = np.zeros(30)
    sparse[3] = 0.01
    with pytest.raises(InputError, match="constant"):
        sharpe_confidence_interval(sparse, reps=200, seed=1, method="iid")
    with pytest.raises(InputError, match="level"):
        sharpe_confidence_interval(np.arange(20.0), level=95, reps=100, seed=1)
    with pytest.raises(InputError, match="method"):
        sharpe_confidence_interval(np.arange(20.0), method="wild", reps=100, seed=1)
