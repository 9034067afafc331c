"""The perturbation check catches features that read the future, and only those."""

from __future__ import annotations

import functools

import polars as pl
import pytest

from quantdesk.quant_core import DEFAULT_FEATURES, compute_features, demo_universe
from quantdesk.tools import check_lookahead


@pytest.fixture(scope="module")
def prices() -> pl.DataFrame:
    return demo_universe(11, n_symbols=10, n_sessions=500).prices


@pytest.mark.parametrize("cross_sectional", [None, ("rank", "zscore")])
def test_library_features_pass(prices: pl.DataFrame, cross_sectional) -> None:
    fn = functools.partial(
        compute_features, names=DEFAULT_FEATURES, cross_sectional=cross_sectional
    )
    report = check_lookahead(prices, fn, seed=4)
    assert report.passed, report.first_violation
    assert report.leaking == ()
    assert report.n_values > 0
    assert len(report.cut_dates) == 2
    assert len(report.symbols) == 6


def _with(extra: pl.Expr):
    def fn(frame: pl.DataFrame) -> pl.DataFrame:
        return compute_features(frame, ["ret_5"], cross_sectional=None).with_columns(extra)

    return fn


@pytest.mark.parametrize(
    ("name", "expr"),
    [
        ("peek", pl.col("ret_5").shift(-1).over("symbol").alias("peek")),
        ("demeaned", (pl.col("ret_5") - pl.col("ret_5").mean().over("symbol")).alias("demeaned")),
        ("centred", pl.col("ret_5").rolling_mean(5, center=True).over("symbol").alias("centred")),
        ("rank_all", pl.col("ret_5").rank().over("symbol").alias("rank_all")),
    ],
)
def test_leaky_features_fail(prices: pl.DataFrame, name: str, expr: pl.Expr) -> None:
    report = check_lookahead(prices, _with(expr), seed=4)
    assert not report.passed
    assert report.leaking == (name,)
    assert name in (report.first_violation or "")
    assert "after" in report.summary()


def test_truncation_catches_what_perturbation_cannot(prices: pl.DataFrame) -> None:
    # The row count of the whole history is unchanged by perturbing prices, not by cutting.
    def fn(frame: pl.DataFrame) -> pl.DataFrame:
        out = compute_features(frame, ["ret_5"], cross_sectional=None)
        return out.with_columns(pl.len().over("symbol").cast(pl.Float64).alias("n_rows"))

    report = check_lookahead(prices, fn, seed=1)
    assert report.leaking == ("n_rows",)
    assert "removing" in (report.first_violation or "")


def test_check_is_seeded(prices: pl.DataFrame) -> None:
    fn = functools.partial(compute_features, names=["ret_5"], cross_sectional=None)
    assert check_lookahead(prices, fn, seed=9) == check_lookahead(prices, fn, seed=9)
