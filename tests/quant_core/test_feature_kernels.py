"""Tests of quant_core.feature_kernels: the dense fast path against the polars expressions.

``compute_features`` runs the numpy kernels; ``feature_expressions`` is the reference. On
seeded ragged panels (symbols listed and delisted on different dates, missing sessions, flat
price and volume stretches, zero volumes) both must give the same null masks, bit-identical
shifted ratios and RSI, and rolling statistics within 1e-9 relative.
"""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view
from polars.testing import assert_frame_equal

from quantdesk.quant_core.feature_kernels import (
    PanelBlock,
    PanelLayout,
    dense_features,
    rolling_mean,
    rolling_moments,
)
from quantdesk.quant_core.features import (
    compute_features,
    feature_expressions,
    parse_feature,
    price_column,
)
from quantdesk.quant_core.labels import LabelSpec, labels_from_spec, trailing_volatility

START = date(2015, 1, 1)
# Every family; windows on both sides of the two-pass/one-pass switch (8) and longer than
# some symbols' histories.
NAMES = (
    "ret_1",
    "ret_7",
    "ret_150",
    "mom_15_3",
    "mom_9_0",
    "rev_4",
    "rvol_2",
    "rvol_5",
    "rvol_9",
    "rvol_23",
    "rvol_63",
    "volz_2",
    "volz_8",
    "volz_9",
    "volz_17",
    "volz_63",
    "rsi_2",
    "rsi_9",
    "rsi_30",
    "ma_dist_2",
    "ma_dist_10",
    "ma_dist_31",
    "ma_dist_100",
)
# Same IEEE operations on both paths (RSI: the same kernel), so equal to the last bit.
BIT_EXACT_FAMILIES = ("ret", "rev", "mom", "rsi")
REL_TOL = 1e-9
# ma_dist (p / mean - 1) and volz (log v - mean, over std) cancel to values near 0, where
# both paths carry the same ~1e-15 absolute rounding: below this magnitude the difference is
# taken relative to the floor instead, so the test measures the kernels, not the cancellation.
REL_FLOOR = 1e-3


def ragged_panel(seed: int, shape: str = "ragged", n_days: int = 320) -> pl.DataFrame:
    """Seeded canonical frame; ``shape`` is ``balanced``, ``ragged`` or ``very_ragged``."""
    rng = np.random.default_rng(seed)
    calendar = np.array([START + timedelta(days=i) for i in range(n_days)])
    n_symbols = 12 if shape == "very_ragged" else 6
    parts = []
    for s in range(n_symbols):
        keep = np.ones(n_days, dtype=bool)
        if shape == "ragged":
            keep &= rng.uniform(size=n_days) > 0.1
            keep[: rng.integers(0, n_days // 2)] = False  # listed late
            keep[n_days - rng.integers(0, n_days // 3) :] = False  # delisted early
            if s == n_symbols - 1:
                keep[np.flatnonzero(keep)[4:]] = False  # a very short history
        elif shape == "very_ragged" and s > 0:
            keep[rng.integers(5, 30) :] = False  # one long history among short ones
        n = int(keep.sum())
        close = 40.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
        volume = np.round(rng.lognormal(12.0, 0.6, n))
        if n > 150:
            close[60:75] = close[59]  # a flat price stretch: zero log returns
            volume[90:120] = 4e5  # a constant volume stretch mid-history
            volume[130:133] = 0.0  # floored at one share
        parts.append(
            pl.DataFrame(
                {
                    "date": calendar[keep].tolist(),
                    "symbol": f"S{s:02d}",
                    "open": close,
                    "high": close * 1.01,
                    "low": close * 0.99,
                    "close": close,
                    "volume": volume,
                    "adj_close": close * np.cumprod(rng.uniform(0.995, 1.0, n))[::-1],
                },
                schema_overrides={"date": pl.Date},
            )
        )
    frame = pl.concat(parts)
    return frame if seed % 2 else frame.drop("adj_close")


def reference(frame: pl.DataFrame, names: tuple[str, ...] = NAMES) -> pl.DataFrame:
    exprs = feature_expressions(names, price_column(frame))
    return frame.lazy().select("date", "symbol", *exprs).collect()


def relative_difference(fast: pl.Series, ref: pl.Series) -> float:
    a, b = fast.to_numpy(), ref.to_numpy()
    both = ~np.isnan(a) & ~np.isnan(b)
    if not both.any():
        return 0.0
    scale = np.maximum(np.abs(b[both]), REL_FLOOR)
    return float(np.max(np.abs(a[both] - b[both]) / scale))


@pytest.mark.parametrize("shape", ["balanced", "ragged", "very_ragged"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_fast_path_equals_expressions(seed: int, shape: str) -> None:
    frame = ragged_panel(seed, shape)
    fast = compute_features(frame, NAMES, cross_sectional=None)
    ref = reference(frame)
    assert_frame_equal(fast.select("date", "symbol"), ref.select("date", "symbol"))
    for name in NAMES:
        assert (fast[name].is_null() == ref[name].is_null()).all(), name
        if parse_feature(name).family in BIT_EXACT_FAMILIES:
            assert_frame_equal(fast.select(name), ref.select(name), check_exact=True)
        else:
            assert relative_difference(fast[name], ref[name]) < REL_TOL, name


def test_flat_stretches_give_exactly_zero_dispersion() -> None:
    frame = ragged_panel(2, "balanced")
    names = ("rvol_5", "rvol_9", "volz_5", "volz_21")
    fast = compute_features(frame, names, cross_sectional=None)
    ref = reference(frame, names)
    position = frame.select(pl.int_range(pl.len()).over("symbol")).to_series()
    # returns into positions 61..74 are zero; volumes at 90..119 are equal
    flat_returns = position.is_between(61 + 9 - 1, 74)
    flat_volume = position.is_between(90 + 21, 119 + 1)
    for out in (fast, ref):
        assert (out.filter(flat_returns)["rvol_9"] == 0.0).all()
        assert out.filter(flat_volume)["volz_21"].null_count() == flat_volume.sum()
    assert_frame_equal(fast, ref, check_exact=False, rel_tol=REL_TOL, abs_tol=1e-12)


@pytest.mark.parametrize("w", [1, 2, 3, 7, 20, 64, 300])
def test_rolling_mean_equals_direct_means(rng: np.random.Generator, w: int) -> None:
    x = rng.normal(5.0, 2.0, (4, 250)) + np.linspace(0.0, 1e4, 250)  # far from any anchor
    got = rolling_mean(x, w)
    assert got.shape == x.shape
    if w <= x.shape[1]:
        exact = sliding_window_view(x.astype(np.longdouble), w, axis=1).mean(axis=2)
        np.testing.assert_allclose(got[:, w - 1 :], exact.astype(np.float64), rtol=1e-15)
    flat = np.full((3, 40), 0.1)
    assert (rolling_mean(flat, w)[:, min(w, 40) - 1 :] == 0.1).all()


@pytest.mark.parametrize("w", [2, 3, 8, 9, 21, 60])
def test_rolling_moments_equal_extended_precision_two_pass(
    rng: np.random.Generator, w: int
) -> None:
    # A far-off first value, a level shift and a random walk: all hurt a one-pass variance
    # anchored on a global value, not one anchored locally.
    x = np.cumsum(rng.normal(0.0, 0.01, (5, 400)), axis=1) + 13.0
    x[:, 0] += 3.0
    x[:, 200:] += 50.0
    mean, var = rolling_moments(x, w)
    windows = sliding_window_view(x.astype(np.longdouble), w, axis=1)
    exact_mean = windows.mean(axis=2)
    exact_var = ((windows - exact_mean[..., None]) ** 2).sum(axis=2) / (w - 1)
    np.testing.assert_allclose(mean[:, w - 1 :], exact_mean.astype(np.float64), rtol=1e-14)
    np.testing.assert_allclose(var[:, w - 1 :], exact_var.astype(np.float64), rtol=1e-11)
    constant = np.full((2, 50), 0.1)
    assert (rolling_moments(constant, w)[1][:, w - 1 :] == 0.0).all()


@pytest.mark.parametrize(
    "lengths",
    [[30] * 5, [3, 40, 17, 1, 40], [400] + [5] * 60 + [200, 3], [1]],
    ids=["balanced", "ragged", "very_ragged", "single_row"],
)
def test_layout_covers_every_row_once(lengths: list[int]) -> None:
    layout = PanelLayout.from_lengths(np.array(lengths))
    n = sum(lengths)
    assert layout.n_rows == n
    covered = np.zeros(n, dtype=int)
    values = np.arange(n, dtype=np.float64)
    cells = 0
    for block in layout.blocks:
        covered[block.rows] += 1
        matrix = block.to_matrix(values, fill=-1.0)
        np.testing.assert_array_equal(block.to_rows(matrix), values[block.rows])
        cells += matrix.size
    assert (covered == 1).all()
    assert cells <= 2 * n  # padding never more than doubles the work


@pytest.mark.parametrize("shape", ["ragged", "very_ragged"])
def test_blocking_never_changes_a_value(shape: str) -> None:
    frame = ragged_panel(5, shape)
    lengths = frame["symbol"].rle().struct.field("len").to_numpy()
    one_block = PanelLayout(n_rows=frame.height, blocks=(PanelBlock.of(lengths, slice(None)),))
    blocked = PanelLayout.from_lengths(lengths)
    price, volume = frame[price_column(frame)].to_numpy(), frame["volume"].to_numpy()
    specs = [parse_feature(n) for n in NAMES]
    a = dense_features(price, volume, blocked, specs)
    b = dense_features(price, volume, one_block, specs)
    for name in NAMES:
        np.testing.assert_array_equal(a[name], b[name])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cut=st.floats(0.0, 1.0))
def test_dropping_the_future_leaves_every_value_bit_identical(seed: int, cut: float) -> None:
    frame = ragged_panel(seed, "ragged", n_days=260)
    dates = frame["date"].unique().sort()
    t = dates[int(cut * (dates.len() - 1))]
    full = compute_features(frame, NAMES, cross_sectional=None)
    assert_frame_equal(
        compute_features(frame, NAMES, cross_sectional=None, as_of=t),
        full.filter(pl.col("date") <= t),
        check_exact=True,
    )


def reference_labels(frame: pl.DataFrame, spec: LabelSpec) -> pl.DataFrame:
    """Fixed-horizon labels written with per-symbol shifts, as labels.py had them."""
    h, p = spec.horizon, pl.col(price_column(frame))
    thr = pl.lit(spec.threshold)
    if spec.vol_scaled and spec.kind != "forward_return":
        sigma = trailing_volatility(price_column(frame), spec.vol_window)
        thr = pl.when(sigma > 0.0).then(spec.threshold * sigma * math.sqrt(h))
    ret, t = pl.col("ret"), pl.col("_thr")
    label = {
        "forward_return": ret,
        "binary": (ret > t).cast(pl.Int64),
        "ternary": pl.when(ret > t).then(1).when(ret < -t).then(-1).otherwise(0).cast(pl.Int64),
    }[spec.kind]
    return (
        frame.lazy()
        .select(
            "date",
            "symbol",
            pl.col("date").alias("t0"),
            pl.col("date").shift(-h).over("symbol").alias("t1"),
            (p.shift(-h).over("symbol") / p - 1.0).alias("ret"),
            thr.alias("_thr"),
        )
        .filter(pl.col("t1").is_not_null() & pl.col("_thr").is_not_null())
        .select("date", "symbol", "t0", "t1", label.alias("label"), "ret")
        .collect()
    )


@pytest.mark.parametrize(
    "spec",
    [
        LabelSpec(kind="forward_return", horizon=5),
        LabelSpec(kind="forward_return", horizon=3, vol_scaled=True),
        LabelSpec(kind="binary", horizon=5),
        LabelSpec(kind="binary", horizon=1, threshold=0.01, vol_scaled=True, vol_window=4),
        LabelSpec(kind="ternary", horizon=10, threshold=0.02),
        LabelSpec(kind="ternary", horizon=6, threshold=0.5, vol_scaled=True, vol_window=9),
    ],
    ids=lambda s: f"{s.kind}-h{s.horizon}{'-vol' if s.vol_scaled else ''}",
)
@pytest.mark.parametrize("shape", ["balanced", "ragged"])
def test_fixed_horizon_labels_equal_per_symbol_shifts(spec: LabelSpec, shape: str) -> None:
    frame = ragged_panel(3, shape)
    assert_frame_equal(
        labels_from_spec(frame, spec), reference_labels(frame, spec), check_exact=True
    )
