"""Tests for quant_core.rank_statistics: AUC and per-group Spearman from one sort."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import rankdata, spearmanr
from sklearn.metrics import roc_auc_score

from quantdesk.quant_core.rank_statistics import GroupedRows, auc_sorted, spearman_by_group


def _values(rng: np.random.Generator, n: int, ties: bool) -> np.ndarray:
    return rng.integers(0, 5, n).astype(float) if ties else rng.normal(size=n)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 300), ties=st.booleans())
def test_auc_sorted_equals_scikit_learn(seed: int, n: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    score = _values(rng, n, ties)
    order = np.argsort(score)
    shuffled_ties = np.lexsort((rng.random(n), score))  # any order among ties: same AUC
    got = auc_sorted(y[order], score[order])
    if y.all() or not y.any():
        assert math.isnan(got)
        return
    assert got == auc_sorted(y[shuffled_ties], score[shuffled_ties])
    assert got == pytest.approx(roc_auc_score(y, score), abs=1e-15)


def test_auc_sorted_golden_values_and_nan() -> None:
    # One tied pair between a positive and a negative counts one half: (3 + 0.5) / 4.
    y, s = np.array([0, 1, 0, 1]), np.array([0.2, 0.5, 0.5, 0.8])
    assert auc_sorted(y, s) == 0.875
    assert math.isnan(auc_sorted(y, np.array([0.2, 0.5, 0.8, np.nan])))


def _groups(
    rng: np.random.Generator, n_groups: int, balanced: bool
) -> tuple[GroupedRows, np.ndarray]:
    """Contiguous groups of random sizes, or all of one size (the per-group sort path)."""
    sizes = np.full(n_groups, rng.integers(1, 9)) if balanced else rng.integers(1, 9, n_groups)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    return GroupedRows(starts, int(sizes.sum())), np.repeat(np.arange(n_groups), sizes)


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_groups=st.integers(1, 30),
    ties=st.booleans(),
    balanced=st.booleans(),
)
def test_centred_ranks_are_scipy_average_ranks_minus_the_group_mean(
    seed: int, n_groups: int, ties: bool, balanced: bool
) -> None:
    rng = np.random.default_rng(seed)
    grouped, group = _groups(rng, n_groups, balanced)
    values = _values(rng, group.size, ties)
    got = grouped.centred_ranks(values)
    for g in range(n_groups):
        rows = group == g
        expected = rankdata(values[rows]) - (rows.sum() + 1) / 2
        np.testing.assert_array_equal(got[rows], expected)  # half-integers: exact


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_groups=st.integers(1, 30),
    ties=st.booleans(),
    balanced=st.booleans(),
)
def test_spearman_by_group_matches_scipy(
    seed: int, n_groups: int, ties: bool, balanced: bool
) -> None:
    rng = np.random.default_rng(seed)
    grouped, group = _groups(rng, n_groups, balanced)
    x = _values(rng, group.size, ties)
    ys = [_values(rng, group.size, True), x + 0.1 * rng.normal(size=group.size)]
    for y, got in zip(ys, spearman_by_group(grouped, x, ys, np.argsort(x)), strict=True):
        for g in range(n_groups):
            rows = group == g
            constant = np.ptp(x[rows]) == 0 or np.ptp(y[rows]) == 0
            if rows.sum() < 2 or constant:
                assert math.isnan(got[g])
            else:
                assert got[g] == pytest.approx(spearmanr(x[rows], y[rows]).statistic, abs=1e-12)
