"""Tests for quant_core.training (fold-by-fold CV) and quant_core.training_report (metrics)."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from scipy.stats import spearmanr
from sklearn import metrics as skm

from quantdesk.quant_core.dataset import Dataset, make_dataset
from quantdesk.quant_core.errors import (
    DataError,
    InputError,
    InsufficientDataError,
    QuantdeskRuntimeError,
)
from quantdesk.quant_core.models import ModelSpec, QuantModel
from quantdesk.quant_core.purged_cv import CombinatorialPurgedCV, PurgedKFold, PurgedWalkForward
from quantdesk.quant_core.training import train_cv
from quantdesk.quant_core.training_report import (
    build_report,
    calibration_table,
    classification_metrics,
    confusion_matrix,
    ic_by_date,
    ic_summary,
    regression_metrics,
    roc_auc,
    threshold_sweep,
)
from quantdesk.quant_core.trial_recording import holding_period

FAST = {"num_boost_round": 40, "num_leaves": 7, "min_data_in_leaf": 20}


def _dataset(seed: int, task: str, n_dates: int = 120, n_symbols: int = 12) -> Dataset:
    """A panel whose label depends on feature ``signal`` (5-session label horizon)."""
    rng = np.random.default_rng(seed)
    start = dt.date(2020, 1, 1)
    dates = pl.date_range(start, start + dt.timedelta(n_dates - 1), eager=True)
    keys = pl.DataFrame({"date": dates}).join(
        pl.DataFrame({"symbol": [f"S{i:02d}" for i in range(n_symbols)]}), how="cross"
    )
    n = keys.height
    signal, noise1, noise2 = rng.normal(size=(3, n))
    ret = 0.8 * signal + rng.normal(size=n)
    label = {
        "regression": ret,
        "binary": (ret > 0).astype(np.int64),
        "multiclass": np.digitize(ret, [-0.6, 0.6]) - 1,
    }[task]
    features = keys.with_columns(
        signal=pl.Series(signal), noise1=pl.Series(noise1), noise2=pl.Series(noise2)
    )
    labels = keys.with_columns(
        t0=pl.col("date"),
        t1=pl.col("date") + pl.duration(days=5),
        label=pl.Series(label),
        ret=pl.Series(ret),
    )
    return make_dataset(features, labels)


def _spec(kind: str, task: str) -> ModelSpec:
    return ModelSpec(kind=kind, task=task, params=FAST if kind == "lightgbm" else {}, seed=5)


# --- metric golden values ------------------------------------------------------------------


def test_binary_metrics_golden_values() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.7, 0.9])
    headline, per_class, cm = classification_metrics(y, np.column_stack([1 - p1, p1]))
    assert cm.tolist() == [[1, 1], [0, 2]]
    assert confusion_matrix([2, 0, 1, 2], [2, 1, 1, 0], 3).tolist() == [
        [0, 1, 0],
        [0, 1, 0],
        [1, 0, 1],
    ]
    assert headline["accuracy"] == pytest.approx(0.75)
    assert headline["precision"] == pytest.approx(2 / 3)
    assert headline["recall"] == pytest.approx(1.0)
    assert headline["f1"] == pytest.approx(0.8)
    assert headline["mcc"] == pytest.approx(2 / math.sqrt(12))  # (TP·TN − FP·FN)/sqrt(...)
    assert headline["roc_auc"] == pytest.approx(1.0)
    assert headline["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.7, 0.9])))
    assert headline["brier"] == pytest.approx(np.mean([0.01, 0.36, 0.09, 0.01]))
    assert per_class[0]["support"] == 2
    assert per_class[0]["recall"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("y", "score", "expected"),
    [
        ([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.8], 0.875),  # one tied pair counts one half
        ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0),
        ([1, 1, 1], [0.1, 0.2, 0.3], math.nan),
    ],
)
def test_roc_auc_golden_values(y, score, expected) -> None:
    got = roc_auc(np.array(y), np.array(score))
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


def test_regression_metrics_golden_values() -> None:
    got = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 5.0]))
    assert got["mae"] == pytest.approx(0.25)
    assert got["rmse"] == pytest.approx(0.5)
    assert got["r2"] == pytest.approx(0.8)  # 1 − 1/5
    assert got["spearman"] == pytest.approx(1.0)
    assert got["sign_accuracy"] == pytest.approx(1.0)


def test_ic_golden_values() -> None:
    stats = ic_summary(np.array([0.1, 0.2, 0.3]))
    assert (stats.n_dates, stats.hit_rate) == (3, 1.0)
    assert stats.mean == pytest.approx(0.2)
    assert stats.std == pytest.approx(0.1)
    assert stats.ir == pytest.approx(2.0)
    assert stats.t_stat == pytest.approx(2.0 * math.sqrt(3))
    d1, d2, d3, d4 = (dt.date(2024, 1, d) for d in (1, 2, 3, 4))
    frame = pl.DataFrame(
        {
            "fold": [0] * 9,
            "date": [d1, d1, d1, d2, d2, d2, d3, d4, d4],
            "score": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 1.0, 5.0, 5.0],
            "y_true": [10.0, 20.0, 30.0, 3.0, 2.0, 1.0, 1.0, 1.0, 2.0],
        }
    )
    expected = pl.DataFrame(
        {"fold": [0, 0], "date": [d1, d2], "ic": [1.0, -1.0], "n": [3, 3]},
        schema_overrides={"n": pl.UInt32},
    )
    # d3 has one row and d4 a constant score: no IC on either date.
    assert_frame_equal(ic_by_date(frame), expected)


def test_threshold_sweep_and_calibration_golden_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.6, 0.7, 0.9])
    rows = threshold_sweep(y, p, np.array([0.5, 0.8]))
    assert rows[0] == {
        "threshold": 0.5, "n_flagged": 3, "coverage": 0.75, "precision": pytest.approx(2 / 3),
        "recall": 1.0, "f1": pytest.approx(0.8), "accuracy": 0.75,
    }  # fmt: skip
    assert rows[1] == {
        "threshold": 0.8, "n_flagged": 1, "coverage": 0.25, "precision": 1.0,
        "recall": 0.5, "f1": pytest.approx(2 / 3), "accuracy": 0.75,
    }  # fmt: skip
    table = calibration_table(y, p, n_bins=2)
    assert table == [
        {"bin_lo": 0.0, "bin_hi": 0.5, "n": 1, "mean_pred": 0.1, "frac_pos": 0.0},
        {"bin_lo": 0.5, "bin_hi": 1.0, "n": 3, "mean_pred": pytest.approx(2.2 / 3),
         "frac_pos": pytest.approx(2 / 3)},
    ]  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(2, 4), n=st.integers(8, 200))
def test_classification_metrics_agree_with_scikit_learn(seed: int, k: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), size=n)
    headline, per_class, cm = classification_metrics(y, proba)
    pred = proba.argmax(axis=1)
    labels = list(range(k))
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y, pred, labels=labels))
    assert headline["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert headline["mcc"] == pytest.approx(skm.matthews_corrcoef(y, pred), abs=1e-12)
    assert headline["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=labels))
    f1 = skm.f1_score(y, pred, labels=labels, average=None, zero_division=0)
    np.testing.assert_allclose([r["f1"] for r in per_class], f1, atol=1e-12)
    present = np.unique(y)
    if present.size == k:
        expected = (
            skm.roc_auc_score(y, proba[:, 1])
            if k == 2
            else skm.roc_auc_score(y, proba, multi_class="ovr", average="macro")
        )
        assert headline["roc_auc_macro" if k > 2 else "roc_auc"] == pytest.approx(expected)
    if k == 2:
        thresholds = np.array([0.2, 0.5, 0.7])
        for row, t in zip(threshold_sweep(y, proba[:, 1], thresholds), thresholds, strict=True):
            flagged = proba[:, 1] >= t
            assert row["n_flagged"] == flagged.sum()
            assert row["accuracy"] == pytest.approx(np.mean(flagged == (y == 1)))
            assert row["recall"] == pytest.approx(skm.recall_score(y, flagged, zero_division=0))


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_dates=st.integers(1, 6), ties=st.booleans())
def test_ic_by_date_matches_scipy_spearman(seed: int, n_dates: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(n_dates, 12 * n_dates))
    day = rng.integers(0, n_dates, n)
    score = rng.integers(0, 4, n).astype(float) if ties else rng.normal(size=n)
    frame = pl.DataFrame(
        {
            "fold": np.zeros(n, dtype=np.int32),
            "date": [dt.date(2024, 1, 1) + dt.timedelta(int(d)) for d in day],
            "score": score,
            "y_true": rng.normal(size=n),
        }
    )
    got = {row["date"]: row["ic"] for row in ic_by_date(frame).iter_rows(named=True)}
    for d in np.unique(day):
        mask = day == d
        if mask.sum() < 2 or np.unique(score[mask]).size < 2:
            assert dt.date(2024, 1, 1) + dt.timedelta(int(d)) not in got
            continue
        expected = spearmanr(score[mask], frame["y_true"].to_numpy()[mask]).statistic
        assert got[dt.date(2024, 1, 1) + dt.timedelta(int(d))] == pytest.approx(expected)


def _sorted_dates(rng: np.random.Generator, n: int, span: int) -> np.ndarray:
    return np.datetime64("2024-01-01", "D") + np.sort(rng.integers(0, span, n))


def _ic_reference(frame: pl.DataFrame, target: str) -> pl.DataFrame:
    """Per-(fold, date) IC the plain polars way: rank within groups, correlate."""
    return (
        frame.group_by("fold", "date")
        .agg(
            pl.corr(pl.col("score").rank("average"), pl.col(target).rank("average")).alias("ic"),
            pl.len().alias("n"),
        )
        .filter(pl.col("ic").is_not_null() & pl.col("ic").is_not_nan())
        .sort("fold", "date")
    )


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
    shuffled=st.booleans(),
    holes=st.sampled_from([None, "null", "nan"]),
)
def test_ic_by_date_equals_a_polars_group_by(
    seed: int, ties: bool, shuffled: bool, holes: str | None
) -> None:
    """The sorted numpy path (and the polars fallback for null/NaN) equal plain polars."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    frame = pl.DataFrame(
        {
            "fold": np.sort(rng.integers(0, 3, n)).astype(np.int32),
            "date": _sorted_dates(rng, n, 12),
            "score": rng.integers(0, 3, n).astype(float) if ties else rng.normal(size=n),
            "y_true": rng.integers(0, 2, n),
            "ret": rng.normal(size=n),
        }
    )
    if holes is not None:
        hole = rng.random(n) < 0.1
        value = None if holes == "null" else float("nan")
        frame = frame.with_columns(ret=pl.when(pl.Series(hole)).then(value).otherwise("ret"))
    if shuffled:
        frame = frame.sample(fraction=1.0, shuffle=True, seed=seed % 2**31)
    for target in ("y_true", "ret"):
        got, expected = ic_by_date(frame, "score", target), _ic_reference(frame, target)
        assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def test_fold_aucs_and_sweep_in_the_report_equal_the_public_functions() -> None:
    """build_report shares one sort; each fold's AUC must still be that fold's own AUC."""
    rng = np.random.default_rng(5)
    n = 3000
    p1 = np.round(rng.random(n), 2)  # many ties, across and within folds
    frame = pl.DataFrame(
        {
            "date": _sorted_dates(rng, n, 60),
            "symbol": "S",
            "fold": np.repeat(np.arange(3, dtype=np.int32), n // 3),
            "y_true": (rng.random(n) < 0.3 + 0.4 * p1).astype(np.int64),
            "y_pred": (p1 > 0.5).astype(np.int64),
            "score": p1,
            "proba_0": 1.0 - p1,
            "proba_1": p1,
        }
    )
    folds = [{"fold": k, "error": None} for k in range(3)]
    report = build_report(
        frame, task="binary", kind="lightgbm", classes=np.array([0, 1]), folds=folds,
        feature_names=("f",), fold_importance=np.ones((3, 1)), importance_type="gain",
        permutation=None, permutation_metric=None, timings={}, data_hash="h", spec={},
    )  # fmt: skip
    y = frame["y_true"].to_numpy()
    for row in report.folds:
        rows = frame["fold"].to_numpy() == row["fold"]
        assert row["roc_auc"] == roc_auc(y[rows], p1[rows])
        assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(y[rows], p1[rows]), abs=1e-15)
    assert report.metrics["roc_auc"] == roc_auc(y, p1)
    assert list(report.threshold_sweep) == threshold_sweep(y, p1)


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 60))
def test_holding_period_is_the_median_row_length_in_sessions(seed: int, n: int) -> None:
    """train_cv's trial uses holding_period; it counts (t0, t1) pairs instead of sorting rows.

    (Here rather than in test_trial_recording.py, which belongs to another module owner.)
    """
    rng = np.random.default_rng(seed)
    day = rng.integers(0, 30, n)
    t0 = day + rng.integers(0, 3, n)
    t1 = t0 + rng.integers(0, 8, n)
    start = np.datetime64("2024-01-01", "D")
    frame = pl.DataFrame({"date": start + day, "t0": start + t0, "t1": start + t1})
    calendar = np.unique(frame["date"].to_numpy())
    lengths = np.searchsorted(calendar, frame["t1"].to_numpy()) - np.searchsorted(
        calendar, frame["t0"].to_numpy()
    )
    assert holding_period(frame) == max(1, round(float(np.median(lengths))))


# --- training end to end -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lightgbm", "linear"])
@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_train_cv_finds_the_planted_signal(kind: str, task: str) -> None:
    ds = _dataset(1, task)
    result = train_cv(ds, _spec(kind, task), PurgedWalkForward(4, embargo=2))
    report = result.report
    assert report.ic.mean > 0.2
    assert report.ic.t_stat > 3
    assert report.ic_ret is not None
    assert report.ic_ret.mean > 0.2
    assert report.feature_importance[0]["feature"] == "signal"
    assert max(report.feature_importance, key=lambda r: r["permutation_mean"])["feature"] == (
        "signal"
    )
    if task == "regression":
        assert report.metrics["r2"] > 0
        assert report.metrics["spearman"] > 0.2
    elif task == "binary":
        assert report.metrics["roc_auc"] > 0.6
        assert report.calibration
        assert report.threshold_sweep
    else:
        assert report.metrics["roc_auc_macro"] > 0.6
        assert len(report.confusion) == 3
        assert report.classes == (-1, 0, 1)
    assert len(report.folds) == 4
    assert not result.failed_folds
    for fold in result.folds:
        assert fold.train_end < fold.test_start
        assert fold.n_purged > 0  # 5-session labels reach into every test block


def test_oof_frame_and_report_contents() -> None:
    ds = _dataset(2, "binary")
    result = train_cv(ds, _spec("lightgbm", "binary"), PurgedKFold(3, embargo=1))
    oof = result.oof
    assert oof.columns == [
        "date", "symbol", "fold", "y_true", "y_pred", "score", "ret", "proba_0", "proba_1",
    ]  # fmt: skip
    # K-fold: every row is tested exactly once, with the dataset's key and label.
    assert oof.height == ds.n_rows
    joined = oof.join(ds.frame, on=["date", "symbol"], how="inner")
    assert joined.height == ds.n_rows
    assert (joined["y_true"] == joined["label"]).all()
    assert_frame_equal(oof.select("score"), oof.select(pl.col("proba_1").alias("score")))
    report = result.report
    as_json = json.dumps(report.to_dict(), allow_nan=False)
    assert '"threshold_sweep"' in as_json
    text = report.to_markdown(heading_level=2)
    for section in (
        "## Training report",
        "### Headline metrics",
        "### Folds",
        "### Confusion matrix",
        "### Threshold sweep",
        "### Calibration",
    ):
        assert section in text  # fmt: skip
    timings = result.timings
    assert timings.total >= timings.cv_seconds >= timings.model_seconds > 0
    assert 0 <= timings.overhead_fraction <= 1
    assert report.timings["overhead_fraction"] == timings.overhead_fraction


def test_train_cv_is_deterministic() -> None:
    ds = _dataset(3, "multiclass")
    spec = ModelSpec(
        kind="lightgbm",
        task="multiclass",
        params={**FAST, "bagging_fraction": 0.8, "bagging_freq": 1},
        seed=9,
    )
    first = train_cv(ds, spec, PurgedWalkForward(3, embargo=1), refit_final=False)
    second = train_cv(ds, spec, PurgedWalkForward(3, embargo=1), refit_final=False)
    assert_frame_equal(first.oof, second.oof)
    assert first.report.metrics == second.report.metrics
    assert first.report.feature_importance == second.report.feature_importance


def test_final_model_carries_the_data_hash_and_round_trips(tmp_path: Path) -> None:
    ds = _dataset(4, "regression")
    result = train_cv(ds, _spec("lightgbm", "regression"), PurgedWalkForward(3), dtype=np.float32)
    direct = QuantModel(_spec("lightgbm", "regression")).fit_dataset(ds)
    assert (direct.data_hash_, direct.feature_names_) == (ds.data_hash, ds.feature_names)
    final = result.final_model
    assert final is not None
    assert final.data_hash_ == ds.data_hash == result.report.data_hash
    loaded = QuantModel.load(final.save(tmp_path / "final"))
    features = ds.frame.select("date", "symbol", *ds.feature_names)
    assert_frame_equal(loaded.predict_frame(features), final.predict_frame(features))


class _ListSplitter:
    """A splitter that yields fixed index pairs (to exercise failures)."""

    def __init__(self, splits: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.splits = splits

    def split(self, X, y=None, groups=None):
        yield from self.splits


def test_failed_folds_raise_by_default_or_are_recorded() -> None:
    ds = _dataset(5, "binary", n_dates=40)
    y = ds.y()
    one_class = np.flatnonzero(y == 1)[:50]  # training rows of a single class
    good_train, test = np.arange(0, 240), np.arange(300, ds.n_rows)
    splitter = _ListSplitter([(one_class, test), (good_train, test)])
    spec = _spec("linear", "binary")
    with pytest.raises(InsufficientDataError, match="single class") as info:
        train_cv(ds, spec, splitter)
    assert "while training fold 0" in "".join(info.value.__notes__)
    result = train_cv(ds, spec, splitter, raise_on_failure=False)
    assert [f.error is None for f in result.folds] == [False, True]
    assert "InsufficientDataError" in result.folds[0].error
    assert result.folds[1].n_purged is None  # this splitter cannot describe its folds
    assert result.fold_models[0] is None
    assert result.report.folds[0]["error"] == result.folds[0].error
    assert math.isnan(result.report.folds[0]["ic_mean"])
    assert set(result.oof["fold"].unique()) == {1}
    with pytest.raises(QuantdeskRuntimeError, match="All 1 folds failed"):
        train_cv(ds, spec, _ListSplitter([(one_class, test)]), raise_on_failure=False)


@pytest.mark.parametrize(
    ("splits", "match"),
    [
        ([(np.arange(10), np.arange(5, 20))], "both train and test"),
        ([(np.arange(10), np.array([], dtype=np.int64))], "empty"),
        ([(np.arange(10), np.array([10**6]))], "outside"),
        ([], "no split"),
    ],
)
def test_bad_splits_are_refused(splits, match) -> None:
    ds = _dataset(6, "regression", n_dates=20)
    with pytest.raises(InputError, match=match):
        train_cv(ds, _spec("linear", "regression"), _ListSplitter(splits))


def test_bad_arguments() -> None:
    ds = _dataset(7, "regression", n_dates=20)
    with pytest.raises(InputError, match="Dataset"):
        train_cv(ds.frame, _spec("linear", "regression"), PurgedKFold(2))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="split"):
        train_cv(ds, _spec("linear", "regression"), object())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="n_repeats"):
        train_cv(ds, _spec("linear", "regression"), PurgedKFold(2), n_repeats=0)
    with pytest.raises(InputError, match="Invalid model spec"):
        train_cv(ds, {"task": "ranking"}, PurgedKFold(2))
    # Real-valued labels with a classification task fail up front, even when fold failures
    # are tolerated.
    with pytest.raises(DataError, match="integer class labels"):
        train_cv(ds, _spec("linear", "binary"), PurgedKFold(2), raise_on_failure=False)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n_splits=st.integers(2, 5), embargo=st.integers(0, 3))
def test_kfold_oof_holds_every_row_exactly_once(seed: int, n_splits: int, embargo: int) -> None:
    ds = _dataset(seed, "regression", n_dates=30, n_symbols=3)
    result = train_cv(
        ds,
        _spec("linear", "regression"),
        PurgedKFold(n_splits, embargo=embargo),
        permutation_importance=False,
        refit_final=False,
    )
    assert result.oof.height == ds.n_rows
    assert result.oof.select(pl.struct("date", "symbol").is_unique().all()).item()
    assert sum(f.n_test for f in result.folds) == ds.n_rows
    assert result.oof["fold"].n_unique() == n_splits


def test_combinatorial_cv_scores_each_row_once_per_path() -> None:
    ds = _dataset(8, "binary", n_dates=60, n_symbols=6)
    result = train_cv(ds, _spec("linear", "binary"), CombinatorialPurgedCV(4, 2, embargo=1))
    # With 4 groups and 2 test groups, each group is tested in C(3, 1) = 3 of the 6 splits.
    assert len(result.folds) == 6
    assert result.oof.height == 3 * ds.n_rows
    counts = result.oof.group_by("date", "symbol").len()["len"]
    assert counts.min() == counts.max() == 3
    # ICs are per (fold, date); dates whose 6 labels are all equal have none.
    assert ds.n_dates < result.report.ic.n_dates <= 3 * ds.n_dates


@pytest.mark.realdata
def test_real_panel_walk_forward(shared_data: Path) -> None:
    prices = pl.read_parquet(shared_data / "prices" / "yfinance_adjusted_ohlcv_2005_2024.parquet")
    date_col = "date" if "date" in prices.columns else "Date"
    sym_col = "symbol" if "symbol" in prices.columns else "ticker"
    close = "adj_close" if "adj_close" in prices.columns else "close"
    panel = (
        prices.select(
            pl.col(date_col).cast(pl.Date).alias("date"),
            pl.col(sym_col).cast(pl.String).alias("symbol"),
            pl.col(close).cast(pl.Float64).alias("px"),
        )
        .filter(pl.col("date") >= dt.date(2015, 1, 1))
        .sort("symbol", "date")
    )
    lr = (pl.col("px") / pl.col("px").shift(1)).log().over("symbol")
    features = panel.with_columns(
        mom20=(pl.col("px") / pl.col("px").shift(20) - 1).over("symbol"),
        rev5=(pl.col("px") / pl.col("px").shift(5) - 1).over("symbol"),
        vol20=lr.rolling_std(20).over("symbol"),
    ).drop("px")
    fwd = (pl.col("px").shift(-5) / pl.col("px") - 1).over("symbol")
    labels = panel.with_columns(
        t0=pl.col("date"),
        t1=pl.col("date").shift(-5).over("symbol"),
        label=(fwd > 0).cast(pl.Int64),
        ret=fwd,
    ).filter(pl.col("t1").is_not_null())
    ds = make_dataset(features, labels)
    result = train_cv(ds, _spec("lightgbm", "binary"), PurgedWalkForward(4, embargo=5))
    report = result.report
    assert report.n_rows > 20_000
    assert len(report.folds) == 4
    assert 0.4 < report.metrics["roc_auc"] < 0.65  # daily equity direction is near noise
    assert all(math.isfinite(v) for v in (report.ic.mean, report.ic.t_stat))
    json.dumps(report.to_dict(), allow_nan=False)
