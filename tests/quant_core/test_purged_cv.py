"""Purged CV splitters: worked examples, brute-force property tests, errors, sklearn use."""

from __future__ import annotations

import itertools
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import Ridge
from sklearn.model_selection import check_cv, cross_val_score

from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError, SchemaError
from quantdesk.quant_core.purged_cv import (
    CombinatorialPurgedCV,
    FoldInfo,
    PurgedKFold,
    PurgedWalkForward,
    purge_mask,
)

D0 = date(2024, 1, 1)
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def day(i: int) -> date:
    return D0 + timedelta(days=i)


def label_frame(n_symbols: int, n_dates: int, horizon: int) -> pl.DataFrame:
    """Canonical-order label rows: t1 = t0 + horizon sessions; rows past the end dropped."""
    rows = [
        (day(i), sym, day(i), day(i + horizon))
        for sym in "AB"[:n_symbols]
        for i in range(n_dates - horizon)
    ]
    return pl.DataFrame(rows, schema=["date", "symbol", "t0", "t1"], orient="row")


def as_lists(splits: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[list[int], list[int]]]:
    for train, test in splits:
        assert train.dtype == np.int64
        assert test.dtype == np.int64
    return [(train.tolist(), test.tolist()) for train, test in splits]


# --- worked examples: 2 symbols x 10 dates, horizon 2 (8 label rows per symbol), embargo 1 ------
# Rows 0-7 are symbol A on d0..d7, rows 8-15 symbol B; row i labels (d_i, d_{i+2}].
# K-fold blocks: d0-d2, d3-d5, d6-d7.
#  fold 0: test d0-d2, largest t1 = d4 -> d3, d4 purged; embargo = the next session d5.
#  fold 1: test d3-d5 -> d1, d2 purged (t1 >= d3); d6, d7 purged (t0 <= d7); nothing after d7.
#  fold 2: test d6-d7 -> d4, d5 purged (t1 >= d6).
KFOLD_EXPECTED = [
    ([6, 7, 14, 15], [0, 1, 2, 8, 9, 10]),
    ([0, 8], [3, 4, 5, 11, 12, 13]),
    ([0, 1, 2, 3, 8, 9, 10, 11], [6, 7, 14, 15]),
]
# Walk-forward, 2 blocks of 2 sessions at the end (d4-d5, d6-d7), expanding, gap 1:
#  fold 0: d2, d3 purged (t1 >= d4); d1 embargoed (t1 = d3 inside the 1-session gap).
#  fold 1: d4, d5 purged; d3 embargoed.
WALK_EXPECTED = [
    ([0, 8], [4, 5, 12, 13]),
    ([0, 1, 2, 8, 9, 10], [6, 7, 14, 15]),
]


def test_kfold_worked_example() -> None:
    cv = PurgedKFold(3, embargo=1)
    assert as_lists(list(cv.split(label_frame(2, 10, 2)))) == KFOLD_EXPECTED


def test_walk_forward_worked_example() -> None:
    cv = PurgedWalkForward(2, test_sessions=2, embargo=1)
    assert as_lists(list(cv.split(label_frame(2, 10, 2)))) == WALK_EXPECTED


def test_rolling_walk_forward_limits_the_window() -> None:
    cv = PurgedWalkForward(2, scheme="rolling", train_sessions=3, test_sessions=2)
    # fold 1 tests d6-d7; its window is d3-d5, of which d4 and d5 reach d6 and are purged.
    assert as_lists(list(cv.split(label_frame(1, 10, 2))))[1] == ([3], [6, 7])


# CPCV: 1 symbol x 12 label rows, t1 = next session, 4 groups of 3 sessions, 2 test groups.
#  split (0, 1): one block d0-d5, largest t1 = d6 -> d6 purged, d7 embargoed.
#  split (0, 2): block d0-d2 (d3 purged, d4 embargoed) and block d6-d8 (d5 purged as its
#  t1 = d6; d9 purged, d10 embargoed).
#  split (2, 3): one block d6-d11 -> d5 purged; nothing after.
@pytest.mark.parametrize(
    ("split_no", "train", "test"),
    [
        (0, [8, 9, 10, 11], [0, 1, 2, 3, 4, 5]),
        (1, [11], [0, 1, 2, 6, 7, 8]),
        (5, [0, 1, 2, 3, 4], [6, 7, 8, 9, 10, 11]),
    ],
)
def test_cpcv_worked_example(split_no: int, train: list[int], test: list[int]) -> None:
    cv = CombinatorialPurgedCV(4, 2, embargo=1)
    splits = as_lists(list(cv.split(label_frame(1, 13, 1))))
    assert len(splits) == cv.get_n_splits() == 6
    assert splits[split_no] == (train, test)


def test_cpcv_paths_by_hand() -> None:
    cv = CombinatorialPurgedCV(4, 2)
    assert cv.test_groups() == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert cv.n_paths == 3
    np.testing.assert_array_equal(cv.paths(), [[0, 0, 1, 2], [1, 3, 3, 4], [2, 4, 5, 5]])
    np.testing.assert_array_equal(cv.group_of(label_frame(1, 13, 1)), np.repeat([0, 1, 2, 3], 3))


@pytest.mark.parametrize(("n", "k"), [(2, 1), (5, 1), (6, 2), (7, 3), (8, 4)])
def test_cpcv_paths_use_each_split_group_once(n: int, k: int) -> None:
    cv = CombinatorialPurgedCV(n, k)
    assert cv.n_paths == k * math.comb(n, k) // n
    paths, groups = cv.paths(), cv.test_groups()
    for g in range(n):
        assert sorted(paths[:, g]) == [s for s, gs in enumerate(groups) if g in gs]


def test_describe_reports_counts_and_dates() -> None:
    info = PurgedKFold(3, embargo=1).describe(label_frame(2, 10, 2))
    assert info[0] == FoldInfo(0, 4, 6, 4, 2, day(6), day(7), day(0), day(2))
    assert [(f.n_train, f.n_purged, f.n_embargoed) for f in info] == [
        (4, 4, 2),
        (2, 8, 0),
        (8, 4, 0),
    ]


def test_row_order_and_pandas_input_do_not_change_the_split() -> None:
    frame = label_frame(2, 10, 2)
    perm = np.random.default_rng(3).permutation(frame.height)
    cv = PurgedKFold(3, embargo=1)
    for (train, test), (exp_train, exp_test) in zip(
        cv.split(frame[perm]), KFOLD_EXPECTED, strict=True
    ):
        assert sorted(perm[train].tolist()) == exp_train
        assert sorted(perm[test].tolist()) == exp_test
        assert np.all(np.diff(train) > 0)
    pandas_frame = pd.DataFrame({c: frame[c].to_list() for c in frame.columns})
    for c in ("date", "t0", "t1"):
        pandas_frame[c] = pd.to_datetime(pandas_frame[c])
    assert as_lists(list(cv.split(pandas_frame))) == KFOLD_EXPECTED


# --- property tests on random panels (brute-force reference) ----------------------------------


@st.composite
def panels(draw: st.DrawFn) -> pl.DataFrame:
    """Ragged panel in random or date order; t1 may run past the panel's last date."""
    seed = draw(st.integers(0, 2**32 - 1))
    shuffled = draw(st.booleans())  # date-sorted rows take the splitters' sorted fast path
    n_dates, n_symbols = draw(st.integers(4, 40)), draw(st.integers(1, 4))
    max_horizon = draw(st.integers(0, 4))
    rng = np.random.default_rng(seed)
    calendar = np.cumsum(rng.integers(1, 4, n_dates + max_horizon + 1))
    keep = rng.random((n_symbols, n_dates)) < 0.8
    keep[0] = True  # every session has a row
    sym, i = np.nonzero(keep)
    j = i + rng.integers(0, max_horizon + 1, i.size)
    frame = pl.DataFrame(
        {
            "date": (np.datetime64("2020-01-01") + calendar[i]).astype("datetime64[D]"),
            "symbol": sym.astype(str),
            "t1": (np.datetime64("2020-01-01") + calendar[j]).astype("datetime64[D]"),
        }
    ).with_columns(pl.col("date").alias("t0"))
    return frame[rng.permutation(frame.height)] if shuffled else frame.sort("date", "symbol")


def reference(
    frame: pl.DataFrame, blocks: list[np.ndarray], window: np.ndarray, embargo: int, side: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Brute-force (train, test, blocked) masks and (purged, embargoed) counts for ``blocks``.

    ``window`` holds the candidate training sessions; ``side`` is where the embargo lies.
    """
    sessions = np.unique(frame["date"].to_numpy())
    sess = np.searchsorted(sessions, frame["date"].to_numpy())
    t0, t1 = frame["t0"].to_numpy(), frame["t1"].to_numpy()
    test = np.isin(sess, np.concatenate(blocks))
    overlap = ((t0[:, None] <= t1[test][None, :]) & (t0[test][None, :] <= t1[:, None])).any(1)
    blocked = np.zeros(frame.height, dtype=bool)
    for block in blocks if embargo else []:
        if side == "after":  # the `embargo` sessions after the block's last label end
            end = t1[np.isin(sess, block)].max()
            blocked |= np.isin(t0, sessions[sessions > end][:embargo])
        else:  # walk-forward gap: labels must end before the `embargo` sessions pre-block
            blocked |= t1 >= sessions[max(block[0] - embargo, 0)]
    candidate = np.isin(sess, window) & ~test
    train = candidate & ~overlap & ~blocked
    counts = (int((candidate & overlap).sum()), int((candidate & ~overlap & blocked).sum()))
    return train, test, blocked, counts


def run_and_compare(cv: object, frame: pl.DataFrame, plans: list) -> list:
    """Check the invariants on ``cv``'s splits, then equality with the brute-force reference."""
    expected = [reference(frame, *plan) for plan in plans]
    if any(not train.any() for train, *_ in expected):
        event("a fold has no training row")
        with pytest.raises(InsufficientDataError, match="no training row left"):
            list(cv.split(frame))
        return []
    event("compared with the reference")
    got = list(cv.split(frame))
    assert len(got) == len(expected) == cv.get_n_splits()
    t0, t1, dates = frame["t0"].to_numpy(), frame["t1"].to_numpy(), frame["date"].to_numpy()
    described = [(f.n_purged, f.n_embargoed, f.n_train, f.n_test) for f in cv.describe(frame)]
    for (train, test), (exp_train, exp_test, blocked, counts), info in zip(
        got, expected, described, strict=True
    ):
        assert info == (*counts, train.size, test.size)  # describe counts what split removed
        overlap = (t0[train, None] <= t1[None, test]) & (t0[None, test] <= t1[train, None])
        assert not overlap.any()  # no training label overlaps a test label
        assert not blocked[train].any()  # nothing embargoed is trained on
        assert not set(dates[train]) & set(dates[test])  # split by date
        # ... and nothing more was dropped than purge and embargo require.
        np.testing.assert_array_equal(train, np.flatnonzero(exp_train))
        np.testing.assert_array_equal(test, np.flatnonzero(exp_test))
    return got


def contiguous_runs(groups: tuple[int, ...], edges: list[np.ndarray]) -> list[np.ndarray]:
    runs: list[list[int]] = []
    for g in groups:
        if runs and runs[-1][-1] == g - 1:
            runs[-1].append(g)
        else:
            runs.append([g])
    return [np.concatenate([edges[g] for g in run]) for run in runs]


@PROPERTY
@given(frame=panels(), n_splits=st.integers(2, 6), embargo=st.integers(0, 3))
def test_kfold_matches_brute_force(frame: pl.DataFrame, n_splits: int, embargo: int) -> None:
    n = frame["date"].n_unique()
    cv = PurgedKFold(n_splits, embargo=embargo)
    if n < n_splits:
        with pytest.raises(InsufficientDataError, match=f"has {n} distinct date"):
            list(cv.split(frame))
        return
    blocks = np.array_split(np.arange(n), n_splits)
    plans = [([b], np.arange(n), embargo, "after") for b in blocks]
    got = run_and_compare(cv, frame, plans)
    if got:  # every row (hence every date) is tested exactly once
        np.testing.assert_array_equal(
            np.sort(np.concatenate([t for _, t in got])), np.arange(frame.height)
        )


@PROPERTY
@given(frame=panels(), n_groups=st.integers(2, 6), data=st.data(), embargo=st.integers(0, 3))
def test_cpcv_matches_brute_force(
    frame: pl.DataFrame, n_groups: int, data: st.DataObject, embargo: int
) -> None:
    k = data.draw(st.integers(1, n_groups - 1))
    n = frame["date"].n_unique()
    cv = CombinatorialPurgedCV(n_groups, k, embargo=embargo)
    if n < n_groups:
        with pytest.raises(InsufficientDataError):
            list(cv.split(frame))
        return
    edges = np.array_split(np.arange(n), n_groups)
    plans = [
        (contiguous_runs(gs, edges), np.arange(n), embargo, "after")
        for gs in itertools.combinations(range(n_groups), k)
    ]
    run_and_compare(cv, frame, plans)


@PROPERTY
@given(
    frame=panels(),
    n_splits=st.integers(2, 5),
    embargo=st.integers(0, 3),
    scheme=st.sampled_from(["expanding", "rolling"]),
    test_sessions=st.none() | st.integers(1, 5),
)
def test_walk_forward_matches_brute_force(
    frame: pl.DataFrame, n_splits: int, embargo: int, scheme: str, test_sessions: int | None
) -> None:
    n = frame["date"].n_unique()
    cv = PurgedWalkForward(
        n_splits,
        scheme=scheme,
        test_sessions=test_sessions,
        embargo=embargo,
        train_sessions=4 if scheme == "rolling" else None,
    )
    size = test_sessions or n // (n_splits + 1)
    if size == 0 or n < n_splits * size + 1:
        with pytest.raises(InsufficientDataError, match=f"has {n} distinct date"):
            list(cv.split(frame))
        return
    starts = range(n - n_splits * size, n, size)
    plans = [
        (
            [np.arange(a, a + size)],
            np.arange(a - 4 if scheme == "rolling" else 0, a),
            embargo,
            "before",
        )
        for a in starts
    ]
    for train, test in run_and_compare(cv, frame, plans):
        assert frame["date"][train].max() < frame["date"][test].min()  # training precedes


@PROPERTY
@given(data=st.data(), n=st.integers(0, 30), m=st.integers(0, 30))
def test_purge_mask_matches_brute_force(data: st.DataObject, n: int, m: int) -> None:
    def intervals(size: int) -> tuple[np.ndarray, np.ndarray]:
        start = np.array(data.draw(st.lists(st.integers(-50, 50), min_size=size, max_size=size)))
        length = np.array(data.draw(st.lists(st.integers(0, 10), min_size=size, max_size=size)))
        return start.astype(np.int64), (start + length).astype(np.int64)

    (a0, a1), (b0, b1) = intervals(n), intervals(m)
    brute = ((a0[:, None] <= b1[None, :]) & (b0[None, :] <= a1[:, None])).any(axis=1)
    np.testing.assert_array_equal(purge_mask(a0, a1, b0, b1), brute)


def test_purge_mask_accepts_dates() -> None:
    train_t0 = [day(0), day(3), day(10)]
    train_t1 = [day(2), day(5), day(12)]
    mask = purge_mask(train_t0, train_t1, pl.Series([day(5)]), np.array([day(9)], "datetime64[D]"))
    assert mask.tolist() == [False, True, False]


# --- scikit-learn use --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_cv",
    [
        lambda d, t1: PurgedKFold(4, embargo=2, dates=d, t1=t1),
        lambda d, t1: PurgedWalkForward(3, dates=d, t1=t1),
        lambda d, t1: CombinatorialPurgedCV(5, 2, dates=d, t1=t1),
    ],
)
def test_sklearn_cross_val_score_with_numpy_x(make_cv, rng: np.random.Generator) -> None:
    frame = label_frame(2, 60, 3)
    X = rng.normal(size=(frame.height, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=frame.height)
    cv = make_cv(frame["date"].to_numpy(), frame["t1"].to_numpy())
    assert check_cv(cv) is cv
    scores = cross_val_score(Ridge(), X, y, cv=cv)
    assert scores.shape == (cv.get_n_splits(),)
    assert np.all(scores > 0.9)


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: PurgedKFold(1), "n_splits=1"),
        (lambda: PurgedKFold(3, embargo=-1), "embargo=-1"),
        (lambda: PurgedKFold(3, embargo=1.5), "embargo=1.5"),
        (lambda: PurgedWalkForward(True), "n_splits=True"),
        (lambda: PurgedWalkForward(3, scheme="sliding"), "scheme='sliding'"),
        (lambda: PurgedWalkForward(3, train_sessions=10), "train_sessions=10"),
        (lambda: PurgedWalkForward(3, test_sessions=0), "test_sessions=0"),
        (lambda: CombinatorialPurgedCV(4, 4), "n_test_groups=4"),
        (lambda: PurgedKFold(3, t1=[day(1)]), "without dates"),
    ],
)
def test_bad_parameters(make, match: str) -> None:
    with pytest.raises(InputError, match=match):
        make()


def _frame(**columns: list) -> pl.DataFrame:
    base = {"date": [day(0), day(1), day(2)], "t1": [day(1), day(2), day(3)]}
    return pl.DataFrame({**base, **columns})


@pytest.mark.parametrize(
    ("cv", "X", "error", "match"),
    [
        (PurgedKFold(2), pl.DataFrame({"day": [day(0)]}), SchemaError, "lacks the date column"),
        (PurgedKFold(2), _frame(date=["2024-01-01"] * 3), SchemaError, "dtype String"),
        (PurgedKFold(2), _frame(date=[day(0), None, day(2)]), DataError, "1 null value"),
        (PurgedKFold(2), _frame(t1=[day(1), day(2), None]), DataError, "first at row 2"),
        (PurgedKFold(2), _frame(t1=[day(1), day(0), day(3)]), DataError, "Row 1 has t1=2024-01-01"),
        (PurgedKFold(5), _frame(), InsufficientDataError, "has 3 distinct date.*at least 5"),
        (PurgedWalkForward(2, test_sessions=2), _frame(), InsufficientDataError, "at least 5"),
        (CombinatorialPurgedCV(4, 1), _frame(), InsufficientDataError, "at least 4"),
        (PurgedKFold(2, t1_col="end"), _frame(), SchemaError, "lacks column 'end'"),
        (PurgedKFold(2), np.zeros((3, 2)), InputError, "carries no dates"),
        (PurgedKFold(2, dates=[day(0)]), np.zeros((3, 2)), InputError, "has 1 values but X"),
        (PurgedKFold(2), _frame(t1=[day(9)] * 3), InsufficientDataError, "no training row"),
    ],
)
def test_bad_inputs(cv: object, X: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        list(cv.split(X))
    assert info.value.fix


# --- scale -------------------------------------------------------------------------------------


def test_large_panel_counts() -> None:
    # Timing is checked by benchmarks/, never by a unit test (shared machines make timings flaky).
    n_dates, n_symbols, horizon = 2520, 500, 5
    days = np.datetime64("2010-01-04") + np.arange(n_dates + horizon)
    frame = pl.DataFrame(
        {"date": np.tile(days[:n_dates], n_symbols), "t1": np.tile(days[horizon:], n_symbols)}
    )
    cv = PurgedKFold(5, embargo=5)
    info = cv.describe(frame)
    assert [f.n_test for f in info] == [504 * n_symbols] * 5
    assert info[2].n_purged == 2 * horizon * n_symbols
    assert info[2].n_embargoed == 5 * n_symbols


@pytest.mark.realdata
def test_real_panel_kfold_leaves_no_overlap(shared_data) -> None:
    prices = pl.read_parquet(shared_data / "prices/yfinance_adjusted_ohlcv_2005_2024.parquet")
    horizon, embargo = 5, 3
    labels = (
        prices.select(pl.col("ticker").alias("symbol"), pl.col("date").dt.date())
        .sort("symbol", "date")
        .with_columns(pl.col("date").shift(-horizon).over("symbol").alias("t1"))
        .drop_nulls("t1")
        .with_columns(pl.col("date").alias("t0"))
    )
    sessions = labels["date"].unique().sort()
    for train, test in PurgedKFold(5, embargo=embargo).split(labels):
        tr, te = labels[train], labels[test]
        first, last_end = te["t0"].min(), te["t1"].max()
        before, after = tr.filter(pl.col("t0") < first), tr.filter(pl.col("t0") > first)
        assert before["t1"].max() is None or before["t1"].max() < first
        embargo_end = sessions.filter(sessions > last_end).head(embargo).max()
        if after.height:
            assert after["t0"].min() > (embargo_end or last_end)
