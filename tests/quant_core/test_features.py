"""Tests of quant_core.features: golden values, warm-up, cross-sectional transforms, errors."""

from __future__ import annotations

import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from quantdesk.quant_core.errors import DataError, InputError, SchemaError
from quantdesk.quant_core.features import (
    DEFAULT_FEATURES,
    FeatureDef,
    _dense_cross_sectional,
    compute_features,
    cross_sectional_expressions,
    feature_expressions,
    parse_feature,
    price_column,
)

START = date(2021, 1, 4)


def random_panel(
    rng: np.random.Generator, n_symbols: int = 2, n_days: int = 30, *, adj: bool = False
) -> pl.DataFrame:
    """A canonical frame of random walks with consistent OHLC and positive volumes."""
    parts = []
    for s in range(n_symbols):
        close = 50.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, n_days)))
        open_ = close * np.exp(rng.normal(0.0, 0.005, n_days))
        wiggle = 1.0 + rng.uniform(0.0, 0.01, n_days)
        cols = {
            "date": [START + timedelta(days=i) for i in range(n_days)],
            "symbol": f"S{s}",
            "open": open_,
            "high": np.maximum(open_, close) * wiggle,
            "low": np.minimum(open_, close) / wiggle,
            "close": close,
            "volume": np.round(rng.lognormal(13.0, 0.5, n_days)),
        }
        if adj:
            cols["adj_close"] = close * np.cumprod(rng.uniform(0.99, 1.0, n_days))[::-1]
        parts.append(pl.DataFrame(cols))
    return pl.concat(parts).with_columns(pl.col("date").cast(pl.Date))


# ---------------------------------------------------------------- independent numpy references


def ref_ret(p: np.ndarray, v: np.ndarray, w: int) -> np.ndarray:
    out = np.full(p.size, np.nan)
    out[w:] = p[w:] / p[:-w] - 1.0
    return out


def ref_mom(p: np.ndarray, v: np.ndarray, lookback: int, skip: int) -> np.ndarray:
    out = np.full(p.size, np.nan)
    for i in range(lookback, p.size):
        out[i] = p[i - skip] / p[i - lookback] - 1.0
    return out


def ref_rvol(p: np.ndarray, v: np.ndarray, w: int) -> np.ndarray:
    lr = np.diff(np.log(p))  # lr[j] is the return into row j + 1
    out = np.full(p.size, np.nan)
    for i in range(w, p.size):
        out[i] = np.std(lr[i - w : i], ddof=1) * math.sqrt(252)
    return out


def ref_volz(p: np.ndarray, v: np.ndarray, w: int) -> np.ndarray:
    lv = np.log(np.maximum(v, 1.0))
    out = np.full(p.size, np.nan)
    for i in range(w, p.size):
        past = lv[i - w : i]
        out[i] = (lv[i] - past.mean()) / np.std(past, ddof=1)
    return out


def ref_rsi(p: np.ndarray, v: np.ndarray, w: int) -> np.ndarray:
    d = np.diff(p)
    gains, losses = np.maximum(d, 0.0), np.maximum(-d, 0.0)
    out = np.full(p.size, np.nan)
    g, loss = gains[:w].mean(), losses[:w].mean()
    out[w] = 100.0 * g / (g + loss)
    for i in range(w + 1, p.size):
        g = (g * (w - 1) + gains[i - 1]) / w
        loss = (loss * (w - 1) + losses[i - 1]) / w
        out[i] = 100.0 * g / (g + loss)
    return out


def ref_ma_dist(p: np.ndarray, v: np.ndarray, w: int) -> np.ndarray:
    out = np.full(p.size, np.nan)
    for i in range(w - 1, p.size):
        out[i] = p[i] / p[i - w + 1 : i + 1].mean() - 1.0
    return out


REFERENCES = [
    ("ret_1", lambda p, v: ref_ret(p, v, 1)),
    ("ret_5", lambda p, v: ref_ret(p, v, 5)),
    ("mom_10_2", lambda p, v: ref_mom(p, v, 10, 2)),
    ("mom_7_0", lambda p, v: ref_mom(p, v, 7, 0)),
    ("rev_3", lambda p, v: -ref_ret(p, v, 3)),
    ("rvol_5", lambda p, v: ref_rvol(p, v, 5)),
    ("volz_5", lambda p, v: ref_volz(p, v, 5)),
    ("rsi_5", lambda p, v: ref_rsi(p, v, 5)),
    ("rsi_14", lambda p, v: ref_rsi(p, v, 14)),
    ("ma_dist_5", lambda p, v: ref_ma_dist(p, v, 5)),
]


@pytest.mark.parametrize(("name", "reference"), REFERENCES, ids=[r[0] for r in REFERENCES])
@pytest.mark.parametrize("adj", [False, True])
def test_feature_matches_numpy_reference(
    rng: np.random.Generator, name: str, reference, adj: bool
) -> None:
    frame = random_panel(rng, n_symbols=2, n_days=30, adj=adj)
    out = compute_features(frame, [name], cross_sectional=None)
    assert out.columns == ["date", "symbol", name]
    assert_frame_equal(out.select("date", "symbol"), frame.select("date", "symbol"))
    price = "adj_close" if adj else "close"
    for symbol in ("S0", "S1"):
        part = frame.filter(pl.col("symbol") == symbol)
        expected = reference(part[price].to_numpy(), part["volume"].to_numpy())
        got = out.filter(pl.col("symbol") == symbol)[name].fill_null(np.nan).to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, equal_nan=True)


HAND_PRICES = [100.0, 110.0, 99.0, 99.0, 108.9]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ret_1", [None, 0.1, -0.1, 0.0, 0.1]),
        ("ret_2", [None, None, -0.01, -0.1, 0.1]),
        ("rev_2", [None, None, 0.01, 0.1, -0.1]),
        ("mom_3_1", [None, None, None, -0.01, -0.1]),
        ("ma_dist_2", [None, 110 / 105 - 1, 99 / 104.5 - 1, 0.0, 108.9 / 103.95 - 1]),
        # Wilder: changes +10, -11, 0, +9.9; seed (10+0)/2 vs (0+11)/2, then alpha = 1/2.
        ("rsi_2", [None, None, 100 * 5 / 10.5, 100 * 2.5 / 5.25, 100 * 6.2 / 7.575]),
    ],
)
def test_golden_values_on_hand_series(name: str, expected: list[float | None]) -> None:
    n = len(HAND_PRICES)
    frame = pl.DataFrame(
        {
            "date": [START + timedelta(days=i) for i in range(n)],
            "symbol": "A",
            "open": HAND_PRICES,
            "high": HAND_PRICES,
            "low": HAND_PRICES,
            "close": HAND_PRICES,
            "volume": [1e6] * n,
        }
    )
    out = compute_features(frame, [name], cross_sectional=None)
    got = out[name].to_list()
    assert [g is None for g in got] == [e is None for e in expected]
    np.testing.assert_allclose(
        [g for g in got if g is not None], [e for e in expected if e is not None], rtol=1e-12
    )


def test_warmup_rows_are_null_then_defined(rng: np.random.Generator) -> None:
    frame = random_panel(rng, n_symbols=3, n_days=40)
    names = ["ret_3", "mom_12_2", "rev_1", "rvol_4", "volz_6", "rsi_5", "ma_dist_8"]
    out = compute_features(frame, names, cross_sectional=None)
    assert out.height == frame.height  # warm-up rows are kept, not dropped
    pos = out.select(pl.int_range(pl.len()).over("symbol")).to_series()
    for name in names:
        warmup = parse_feature(name).warmup
        is_null = out[name].is_null()
        assert (is_null == (pos < warmup)).all(), name


def test_default_features_and_cross_sectional_columns(rng: np.random.Generator) -> None:
    frame = random_panel(rng, n_symbols=4, n_days=300)
    out = compute_features(frame)
    expected = ["date", "symbol", *DEFAULT_FEATURES]
    for name in DEFAULT_FEATURES:
        expected += [f"cs_rank_{name}", f"cs_z_{name}"]
    assert out.columns == expected
    assert 10 <= len(DEFAULT_FEATURES) <= 20
    assert out.filter(pl.col("date") == out["date"].max()).null_count().sum_horizontal().item() == 0
    only_rank = compute_features(frame, ["ret_1"], cross_sectional=("rank",))
    assert only_rank.columns == ["date", "symbol", "ret_1", "cs_rank_ret_1"]
    assert_frame_equal(compute_features(frame, ["ret_1"], cross_sectional="rank"), only_rank)
    only_z = compute_features(frame, ["ret_1"], cross_sectional=["zscore"])
    assert only_z.columns == ["date", "symbol", "ret_1", "cs_z_ret_1"]


def test_cross_sectional_golden_values() -> None:
    d1, d2, d3 = date(2022, 1, 3), date(2022, 1, 4), date(2022, 1, 5)
    frame = pl.DataFrame(
        {
            "date": [d1, d1, d1, d1, d2, d3, d3],
            "symbol": ["A", "B", "C", "D", "A", "A", "B"],
            "x": [3.0, 1.0, 3.0, None, 7.0, 0.1, 0.1],
        }
    )
    out = frame.with_columns(cross_sectional_expressions(["x"]))
    sd = math.sqrt(4.0 / 3.0)
    expected = pl.DataFrame(
        {
            "cs_rank_x": [0.75, 0.0, 0.75, None, 0.5, 0.5, 0.5],
            # d2 has one value and d3 no dispersion: the z-score is undefined there.
            "cs_z_x": [(2 / 3) / sd, -(4 / 3) / sd, (2 / 3) / sd, None, None, None, None],
        }
    )
    assert_frame_equal(out.select("cs_rank_x", "cs_z_x"), expected)


def test_cross_sectional_moments_per_date(rng: np.random.Generator) -> None:
    frame = random_panel(rng, n_symbols=6, n_days=40)
    out = compute_features(frame, ["ret_5", "rvol_5"])
    stats = (
        out.drop_nulls("ret_5")
        .group_by("date")
        .agg(
            pl.col("cs_z_ret_5").mean().alias("m"),
            pl.col("cs_z_ret_5").std().alias("s"),
            pl.col("cs_rank_ret_5").min().alias("lo"),
            pl.col("cs_rank_ret_5").max().alias("hi"),
        )
    )
    np.testing.assert_allclose(stats["m"].to_numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(stats["s"].to_numpy(), 1.0, rtol=1e-12)
    assert (stats["lo"] == 0.0).all()
    assert (stats["hi"] == 1.0).all()
    # The rank must order the symbols of a date like the raw feature does.
    day = out.filter(pl.col("date") == out["date"].max())
    assert day.sort("ret_5")["symbol"].to_list() == day.sort("cs_rank_ret_5")["symbol"].to_list()


def _tied_ragged_panel(seed: int, n_symbols: int, n_days: int) -> pl.DataFrame:
    # Prices on a coarse grid give many tied returns; random listing dates and gaps make the
    # panel ragged, so some dates have one symbol or none with a value.
    rng = np.random.default_rng(seed)
    frame = random_panel(rng, n_symbols=n_symbols, n_days=n_days)
    keep = pl.Series(rng.uniform(size=frame.height) > 0.3)
    return frame.with_columns(pl.col("close").round(0).clip(lower_bound=1.0)).filter(keep)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_symbols=st.integers(1, 7), n_days=st.integers(3, 40))
def test_dense_transforms_equal_expressions(seed: int, n_symbols: int, n_days: int) -> None:
    frame = _tied_ragged_panel(seed, n_symbols, n_days)
    if frame.height == 0:
        return
    names = ["ret_1", "ret_2", "ma_dist_2"]
    fast = compute_features(frame, names)
    raw = compute_features(frame, names, cross_sectional=None)
    slow = raw.with_columns(cross_sectional_expressions(names))
    ranks = [f"cs_rank_{n}" for n in names]
    assert_frame_equal(fast.select(ranks), slow.select(ranks), check_exact=True)
    assert_frame_equal(fast, slow, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)


def test_sparse_panel_falls_back_to_expressions(rng: np.random.Generator) -> None:
    # Five symbols listed one after another: a dense date x symbol matrix would be 5x the rows.
    panel = random_panel(rng, n_symbols=5, n_days=20)
    shift = pl.duration(days=20 * pl.col("symbol").str.slice(1).cast(pl.Int64))
    frame = panel.with_columns(pl.col("date") + shift)
    raw = compute_features(frame, ["ret_1"], cross_sectional=None)
    assert _dense_cross_sectional(raw, ["ret_1"], ("rank", "zscore")) is None
    assert_frame_equal(
        compute_features(frame, ["ret_1"]),
        raw.with_columns(cross_sectional_expressions(["ret_1"])),
    )


@pytest.mark.parametrize("sparse", [False, True])
def test_results_are_reproducible_to_the_last_bit(rng: np.random.Generator, sparse: bool) -> None:
    frame = random_panel(rng, n_symbols=40, n_days=60).sort("symbol", "date")
    if sparse:  # staggered listings force the expression path
        shift = pl.duration(days=60 * pl.col("symbol").str.slice(1).cast(pl.Int64))
        frame = frame.with_columns(pl.col("date") + shift)
    names = ["ret_1", "rvol_5", "volz_5"]
    first = compute_features(frame, names)
    for _ in range(5):
        assert_frame_equal(compute_features(frame, names), first, check_exact=True)


def test_price_column_prefers_adj_close(rng: np.random.Generator) -> None:
    frame = random_panel(rng, adj=True)
    assert price_column(frame) == "adj_close"
    assert price_column(frame.drop("adj_close")) == "close"
    from_adj = compute_features(frame, DEFAULT_FEATURES[:6])
    swapped = frame.drop("close").rename({"adj_close": "close"})
    assert_frame_equal(from_adj, compute_features(swapped, DEFAULT_FEATURES[:6]))


def test_as_of_cuts_before_computing(rng: np.random.Generator) -> None:
    frame = random_panel(rng, n_symbols=3, n_days=40)
    cut = START + timedelta(days=25)
    full = compute_features(frame, ["ret_2", "rsi_5", "volz_4"])
    assert_frame_equal(
        compute_features(frame, ["ret_2", "rsi_5", "volz_4"], as_of=cut.isoformat()),
        full.filter(pl.col("date") <= cut),
    )


def test_feature_expressions_are_reusable(rng: np.random.Generator) -> None:
    frame = random_panel(rng)
    exprs = feature_expressions(["ret_1", "ma_dist_3"], price="close")
    out = frame.lazy().with_columns(exprs).collect()
    assert_frame_equal(
        out.select("date", "symbol", "ret_1", "ma_dist_3"),
        compute_features(frame, ["ret_1", "ma_dist_3"], cross_sectional=None),
    )


@pytest.mark.parametrize(
    ("name", "family", "window", "skip", "warmup"),
    [
        ("ret_21", "ret", 21, 0, 21),
        ("mom_252_21", "mom", 252, 21, 252),
        ("ma_dist_200", "ma_dist", 200, 0, 199),
        ("rsi_14", "rsi", 14, 0, 14),
    ],
)
def test_parse_feature(name: str, family: str, window: int, skip: int, warmup: int) -> None:
    parsed = parse_feature(name)
    assert parsed == FeatureDef(name=name, family=family, window=window, skip=skip)
    assert parsed.warmup == warmup


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (["momentum"], "Unknown feature name 'momentum'.*mom_\\{lookback\\}_\\{skip\\}"),
        (["ret_0"], "window 0"),
        (["rvol_1"], "rvol needs at least 2"),
        (["mom_21_252"], "lookback 21 <= skip 252"),
        (["ret_5", "ret_5"], "more than once"),
        ([], "No feature names"),
    ],
)
def test_bad_feature_names(rng: np.random.Generator, names: list[str], match: str) -> None:
    with pytest.raises(InputError, match=match):
        compute_features(random_panel(rng), names)


def test_bad_cross_sectional_kind(rng: np.random.Generator) -> None:
    with pytest.raises(InputError, match="'percentile'"):
        compute_features(random_panel(rng), ["ret_1"], cross_sectional=("percentile",))


def test_bad_frames(rng: np.random.Generator) -> None:
    frame = random_panel(rng)
    with pytest.raises(DataError, match="not sorted"):
        compute_features(frame.sort("date"), ["ret_1"])
    with pytest.raises(DataError, match="empty"):
        compute_features(frame.head(0), ["ret_1"])
    with pytest.raises(SchemaError, match="volume"):
        compute_features(frame.drop("volume"), ["ret_1"])
    with pytest.raises(DataError, match="as_of=2020-01-01"):
        compute_features(frame, ["ret_1"], as_of="2020-01-01")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0, -3.0])
def test_bad_prices_raise_data_error(rng: np.random.Generator, bad: float) -> None:
    frame = random_panel(rng)
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 7).then(bad).otherwise(pl.col("close")).alias("close")
    )
    with pytest.raises(DataError, match=r"'close'.*'S0'"):
        compute_features(broken, ["ret_1"])


def test_bad_volume_only_matters_for_volume_features(rng: np.random.Generator) -> None:
    frame = random_panel(rng)
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(-1.0).otherwise(pl.col("volume")).alias("volume")
    )
    compute_features(broken, ["ret_1"])
    with pytest.raises(DataError, match="'volume'"):
        compute_features(broken, ["volz_5"])


def test_zero_and_constant_volume_give_finite_or_null(rng: np.random.Generator) -> None:
    frame = random_panel(rng, n_symbols=1, n_days=30).with_columns(
        pl.when(pl.int_range(pl.len()) < 12).then(5e5).otherwise(0.0).alias("volume")
    )
    out = compute_features(frame, ["volz_5"], cross_sectional=None)["volz_5"]
    # Up to row 12 the trailing window is constant: no dispersion, so the z-score is undefined.
    assert out[:13].null_count() == 13
    assert out[13] < -1.0  # a zero-volume day (floored at one share) stands out
    assert out.drop_nulls().is_finite().all()


def _load_yfinance(folder: Path) -> pl.DataFrame:
    raw = pl.read_parquet(folder / "prices" / "yfinance_adjusted_ohlcv_2005_2024.parquet")
    return (
        raw.select(
            pl.col("date").cast(pl.Date),
            pl.col("ticker").alias("symbol"),
            *(pl.col(c).cast(pl.Float64) for c in ("open", "high", "low", "close", "volume")),
        )
        .filter(pl.col("close") > 0)
        .sort("symbol", "date")
    )


@pytest.mark.realdata
def test_real_panel_features_are_finite(shared_data: Path) -> None:
    frame = _load_yfinance(shared_data)
    out = compute_features(frame)
    assert out.height == frame.height
    values = out.select(pl.exclude("date", "symbol"))
    assert values.select(pl.all().is_nan().any()).sum_horizontal().item() == 0
    assert values.select(pl.all().is_infinite().any()).sum_horizontal().item() == 0
    ranks = out.select(pl.col("^cs_rank_.*$"))
    assert ranks.min().min_horizontal().item() == 0.0
    assert ranks.max().max_horizontal().item() == 1.0
    last = out.filter(pl.col("date") == out["date"].max())
    assert last["mom_252_21"].null_count() < last.height
