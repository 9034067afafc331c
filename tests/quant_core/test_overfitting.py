from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError
from quantdesk.quant_core.overfitting import probability_of_backtest_overfitting as pbo


def _reference_pbo(matrix: np.ndarray, n_splits: int, metric: str) -> tuple[float, np.ndarray]:
    """CSCV written out split by split, straight from the paper's steps."""
    t, n = matrix.shape
    matrix = matrix[t % n_splits :]
    blocks = np.array_split(np.arange(matrix.shape[0]), n_splits)
    logits = []
    for combo in itertools.combinations(range(n_splits), n_splits // 2):
        is_rows = np.concatenate([blocks[i] for i in combo])
        oos_rows = np.concatenate([blocks[i] for i in range(n_splits) if i not in combo])

        def score(rows: np.ndarray) -> np.ndarray:
            sub = matrix[rows]
            if metric == "mean":
                return sub.mean(axis=0)
            return sub.mean(axis=0) / sub.std(axis=0, ddof=1)

        r_is, r_oos = score(is_rows), score(oos_rows)
        best = int(np.argmax(r_is))
        # Average rank among ties, 1 = worst.
        rank = (r_oos < r_oos[best]).sum() + ((r_oos == r_oos[best]).sum() + 1) / 2
        omega = rank / (n + 1)
        logits.append(math.log(omega / (1 - omega)))
    logits_arr = np.array(logits)
    return float(np.mean(logits_arr <= 0)), logits_arr


def test_hand_worked_example() -> None:
    # Two strategies, two blocks (rows 0-1 and 2-3), metric = mean return.
    a = [0.02, 0.02, -0.01, -0.01]  # great first half, bad second half
    b = [0.00, 0.01, 0.01, 0.00]  # steady
    result = pbo(np.column_stack([a, b]), n_splits=2, metric="mean")
    # IS = block 0: a wins (0.02 vs 0.005), OOS a = -0.01 ranks 1 of 2: ω = 1/3, λ = ln(1/2).
    # IS = block 1: b wins (0.005 vs -0.01), OOS b = 0.005 ranks 1 of 2: same λ.
    np.testing.assert_allclose(result.logits, [math.log(0.5)] * 2)
    assert result.pbo == 1.0
    np.testing.assert_array_equal(result.selected, [0, 1])
    np.testing.assert_allclose(result.is_performance, [0.02, 0.005])
    np.testing.assert_allclose(result.oos_performance, [-0.01, 0.005])
    assert result.prob_oos_loss == 0.5
    # OOS = a + b·IS through (0.02, -0.01) and (0.005, 0.005): b = -1, a = 0.01.
    assert result.degradation_slope == pytest.approx(-1.0)
    assert result.degradation_intercept == pytest.approx(0.01)
    assert result.degradation_r2 == pytest.approx(1.0)
    assert (result.n_combinations, result.rows_per_block, result.rows_dropped) == (2, 2, 0)


def test_consistent_winner_has_zero_pbo() -> None:
    a = [0.03, 0.02, 0.03, 0.02]
    b = [0.00, 0.01, 0.01, 0.00]
    result = pbo(np.column_stack([a, b]), n_splits=2, metric="mean")
    assert result.pbo == 0.0
    np.testing.assert_allclose(result.logits, [math.log(2.0)] * 2)  # rank 2 of 2: ω = 2/3


@pytest.mark.parametrize(("metric", "n_splits", "t"), [("sharpe", 8, 203), ("mean", 6, 120)])
def test_vectorised_cscv_matches_the_split_by_split_reference(
    metric: str, n_splits: int, t: int
) -> None:
    rng = np.random.default_rng(5)
    matrix = rng.normal(0.0002, 0.01, size=(t, 7))
    result = pbo(matrix, n_splits=n_splits, metric=metric)
    expected_pbo, expected_logits = _reference_pbo(matrix, n_splits, metric)
    assert result.pbo == expected_pbo
    np.testing.assert_allclose(result.logits, expected_logits, rtol=1e-10)
    assert result.rows_dropped == t % n_splits
    assert result.n_combinations == math.comb(n_splits, n_splits // 2)


def test_callable_metric_matches_the_builtin_sharpe() -> None:
    rng = np.random.default_rng(6)
    matrix = rng.normal(0.0, 0.01, size=(160, 6))

    def sharpe(x: np.ndarray) -> np.ndarray:
        return x.mean(axis=0) / x.std(axis=0, ddof=1)

    custom = pbo(matrix, n_splits=8, metric=sharpe)
    builtin = pbo(matrix, n_splits=8)
    assert custom.metric == "sharpe"
    assert custom.pbo == builtin.pbo
    np.testing.assert_allclose(custom.oos_performance, builtin.oos_performance, rtol=1e-10)


def test_pure_noise_gives_pbo_of_one_half_on_average() -> None:
    # With N even and noise strategies, the OOS rank of the IS winner is uniform, so
    # E[PBO] = 0.5 exactly. PBO varies a lot between samples (s.d. 0.155 over 40 seeds of
    # this design, because the 12,870 splits share one sample): the mean of 24 seeds has a
    # s.e. of ~0.032, and the tolerance of 0.1 is ~3 s.e.
    values = [
        pbo(np.random.default_rng([99, seed]).normal(0.0, 0.01, size=(1000, 50))).pbo
        for seed in range(24)
    ]
    assert np.mean(values) == pytest.approx(0.5, abs=0.1)
    assert min(values) >= 0.0
    assert max(values) <= 1.0


def test_planted_strategy_among_noise_gives_low_pbo() -> None:
    # One strategy with annualised Sharpe 3 among 49 noise strategies: it wins IS in almost
    # every split and stays near the top OOS. Over seeds 0-9 of this design: PBO <= 0.057,
    # IS-selection share >= 0.885, probability of OOS loss <= 0.048.
    for seed in range(3):
        matrix = np.random.default_rng([7, seed]).normal(0.0, 0.01, size=(1000, 50))
        matrix[:, 7] += 0.01 * 3.0 / math.sqrt(252)
        result = pbo(matrix)
        assert result.pbo < 0.1
        assert np.mean(result.selected == 7) > 0.8
        assert result.prob_oos_loss < 0.1


def test_polars_input_names_the_strategies() -> None:
    rng = np.random.default_rng(8)
    values = rng.normal(0.0, 0.01, size=(96, 3))
    frame = pl.DataFrame(
        {
            "date": np.datetime64("2021-01-01") + np.arange(96),
            "mom": values[:, 0],
            "rev": values[:, 1],
            "carry": values[:, 2],
        }
    )
    result = pbo(frame, n_splits=8)
    assert result.strategy_names == ("mom", "rev", "carry")
    assert result.pbo == pbo(values, n_splits=8).pbo
    d = result.to_dict()
    assert d["strategy_names"] == ["mom", "rev", "carry"]
    assert "logits" not in d
    assert len(result.to_dict(include_arrays=True)["logits"]) == math.comb(8, 4)


def test_identical_strategies_rank_at_the_median() -> None:
    column = np.random.default_rng(9).normal(0.0, 0.01, size=(64, 1))
    result = pbo(np.repeat(column, 4, axis=1), n_splits=4)
    np.testing.assert_allclose(result.logits, 0.0, atol=1e-12)  # ties: ω = 1/2, λ = 0
    assert result.pbo == 1.0


@pytest.mark.parametrize(
    ("matrix", "kwargs", "error", "message"),
    [
        (np.zeros((100, 1)) + 0.01, {}, InsufficientDataError, "at least"),
        (np.ones((100, 3)), {"n_splits": 7}, InputError, "even integer"),
        (np.ones((100, 3)), {"n_splits": 22}, InputError, "even integer"),
        (np.ones((20, 3)), {"n_splits": 16}, InsufficientDataError, "blocks"),
        (np.full((100, 3), np.nan), {}, DataError, "NaN"),
        (np.ones((100, 3)), {"metric": "sortino"}, InputError, "unknown"),
        (np.ones(100), {}, InputError, "two-dimensional"),
    ],
)
def test_refuses_bad_input(matrix: np.ndarray, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        pbo(matrix, **kwargs)


def test_zero_variance_half_is_refused() -> None:
    rng = np.random.default_rng(10)
    matrix = rng.normal(0.0, 0.01, size=(64, 3))
    matrix[:32, 1] = 0.0  # did not trade in the first half
    with pytest.raises(InputError, match="zero variance") as info:
        pbo(matrix, n_splits=2)
    assert "'s1'" in str(info.value)
    assert pbo(matrix, n_splits=2, metric="mean").pbo in (0.0, 0.5, 1.0)


def test_callable_metric_with_wrong_shape_is_refused() -> None:
    matrix = np.random.default_rng(11).normal(size=(40, 3))
    with pytest.raises(InputError, match="one finite score"):
        pbo(matrix, n_splits=4, metric=lambda x: x.mean())


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 8),
    n_splits=st.sampled_from([2, 4, 6, 8]),
    scales=st.lists(st.floats(0.01, 100.0), min_size=8, max_size=8),
)
def test_pbo_is_invariant_to_column_order_and_scale(
    seed: int, n: int, n_splits: int, scales: list[float]
) -> None:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, 0.01, size=(10 * n_splits + 3, n))
    base = pbo(matrix, n_splits=n_splits)
    assert 0.0 <= base.pbo <= 1.0
    assert base.logits.shape == (math.comb(n_splits, n_splits // 2),)
    order = rng.permutation(n)
    shuffled = pbo(matrix[:, order], n_splits=n_splits)
    assert shuffled.pbo == base.pbo
    np.testing.assert_array_equal(order[shuffled.selected], base.selected)
    # Sharpe does not depend on leverage, so rescaling each strategy changes nothing.
    rescaled = pbo(matrix * np.array(scales[:n]), n_splits=n_splits)
    assert rescaled.pbo == base.pbo
    np.testing.assert_allclose(rescaled.logits, base.logits)
