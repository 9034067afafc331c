"""Hypothesis properties: features never see the future; labels see only (t, t1].

Frames are random ragged panels (symbols listed on different dates, with missing sessions)
built from a seeded numpy generator whose seed Hypothesis draws, so every example replays.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from quantdesk.quant_core.features import compute_features
from quantdesk.quant_core.labels import LabelSpec, labels_from_spec

START = date(2020, 1, 1)
FEATURES = ("ret_1", "ret_4", "mom_12_3", "rev_2", "rvol_5", "volz_6", "rsi_7", "ma_dist_9")
PRICE_COLS = ("open", "high", "low", "close", "adj_close")
SPECS = [
    LabelSpec(kind="forward_return", horizon=3),
    LabelSpec(kind="binary", horizon=5, threshold=0.01),
    LabelSpec(kind="ternary", horizon=4, threshold=0.02),
    LabelSpec(kind="ternary", horizon=4, threshold=0.5, vol_scaled=True, vol_window=6),
    LabelSpec(kind="triple_barrier", horizon=6, pt_mult=1.0, sl_mult=1.0, vol_window=5),
    LabelSpec(kind="triple_barrier", horizon=8, pt_mult=0.4, sl_mult=1.5, vol_window=8),
    LabelSpec(kind="triple_barrier", horizon=5, pt_mult=None, sl_mult=0.8, vertical="zero"),
]
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


def build_panel(seed: int, n_symbols: int, n_days: int, adj: bool) -> pl.DataFrame:
    """Random walks with consistent OHLC on a ragged calendar (late listings, gaps)."""
    rng = np.random.default_rng(seed)
    calendar = np.array([START + timedelta(days=i) for i in range(n_days)])
    parts = []
    for s in range(n_symbols):
        keep = rng.uniform(size=n_days) > 0.15
        keep[: rng.integers(0, n_days // 3)] = False
        dates = calendar[keep]
        n = dates.size
        close = 30.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, n)))
        open_ = close * np.exp(rng.normal(0.0, 0.01, n))
        cols = {
            "date": dates.tolist(),
            "symbol": [f"S{s}"] * n,
            "open": open_,
            "high": np.maximum(open_, close) * 1.005,
            "low": np.minimum(open_, close) * 0.995,
            "close": close,
            "volume": np.round(rng.lognormal(12.0, 0.7, n)),
        }
        if adj:
            cols["adj_close"] = close * np.cumprod(rng.uniform(0.98, 1.0, n))[::-1]
        parts.append(pl.DataFrame(cols, schema_overrides={"date": pl.Date}))
    return pl.concat(parts)


@st.composite
def panels(draw: st.DrawFn, min_days: int = 30) -> pl.DataFrame:
    return build_panel(
        seed=draw(st.integers(0, 2**32 - 1)),
        n_symbols=draw(st.integers(1, 4)),
        n_days=draw(st.integers(min_days, min_days + 50)),
        adj=draw(st.booleans()),
    )


def perturb(
    frame: pl.DataFrame, where: pl.Expr, seed: int, columns: tuple[str, ...] = PRICE_COLS
) -> pl.DataFrame:
    """Rescale ``columns`` (by one factor per row, so OHLC stays consistent) and volume."""
    rng = np.random.default_rng(seed)
    price_factor = pl.Series(np.exp(rng.normal(0.0, 0.3, frame.height)))
    volume_factor = pl.Series(np.exp(rng.normal(0.0, 1.0, frame.height)))
    cols = [c for c in columns if c in frame.columns]
    return frame.with_columns(
        *(
            pl.when(where).then(pl.col(c) * price_factor).otherwise(pl.col(c)).alias(c)
            for c in cols
        ),
        pl.when(where).then(pl.col("volume") * volume_factor).otherwise("volume").alias("volume"),
    )


# ---------------------------------------------------------------------------------- features


@PROPERTY_SETTINGS
@given(frame=panels(), where=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1))
def test_changing_data_after_t_never_changes_features_at_t(
    frame: pl.DataFrame, where: float, seed: int
) -> None:
    dates = frame["date"].unique().sort()
    t = dates[int(where * (dates.len() - 1))]
    changed = perturb(frame, pl.col("date") > t, seed)
    before = compute_features(frame, FEATURES)
    after = compute_features(changed, FEATURES)
    assert_frame_equal(
        before.filter(pl.col("date") <= t), after.filter(pl.col("date") <= t), check_exact=True
    )
    # Dropping the future altogether (as_of) gives the same values too.
    assert_frame_equal(
        compute_features(frame, FEATURES, as_of=t),
        before.filter(pl.col("date") <= t),
        check_exact=True,
    )
    # The perturbation is real: one-day returns after t do move.
    later = before.filter(pl.col("date") > t)["ret_1"].drop_nulls()
    if later.len():
        assert not later.equals(after.filter(pl.col("date") > t)["ret_1"].drop_nulls())


@PROPERTY_SETTINGS
@given(
    frame=panels(),
    where=st.floats(0.0, 1.0),
    factor=st.floats(0.05, 20.0),
)
def test_backward_adjustment_never_changes_features_before_the_event(
    frame: pl.DataFrame, where: float, factor: float
) -> None:
    # A split or dividend on day e rescales every earlier price by one constant (and volume
    # by its inverse): features dated before e must not move.
    dates = frame["date"].unique().sort()
    event = dates[int(where * (dates.len() - 1))]
    before_event = pl.col("date") < event
    cols = [c for c in PRICE_COLS if c in frame.columns]
    adjusted = frame.with_columns(
        *(pl.when(before_event).then(pl.col(c) * factor).otherwise(c).alias(c) for c in cols),
        pl.when(before_event).then(pl.col("volume") / factor).otherwise("volume").alias("volume"),
    )
    a = compute_features(frame, FEATURES).filter(before_event)
    b = compute_features(adjusted, FEATURES).filter(before_event)
    assert_frame_equal(a, b, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


# ------------------------------------------------------------------------------------ labels


def _row_position(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.int_range(pl.len()).over("symbol").alias("_pos"))


def _long_enough(frame: pl.DataFrame, spec: LabelSpec) -> bool:
    needed = spec.horizon + 1 + (spec.vol_window if spec.uses_volatility else 0)
    return frame.group_by("symbol").len()["len"].max() >= needed


@PROPERTY_SETTINGS
@given(
    frame=panels(min_days=40),
    spec=st.sampled_from(SPECS),
    pick=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_label_depends_only_on_data_in_its_interval(
    frame: pl.DataFrame, spec: LabelSpec, pick: float, seed: int
) -> None:
    assume(_long_enough(frame, spec))
    labels = labels_from_spec(frame, spec)
    row = labels.row(int(pick * (labels.height - 1)), named=True)
    key = (pl.col("symbol") == row["symbol"]) & (pl.col("date") == row["date"])
    assert row["t0"] == row["date"]
    assert row["t1"] > row["t0"]
    pos = _row_position(frame)
    t_pos = pos.filter(key)["_pos"].item()
    # Known at t and allowed: the base close and, for vol-based kinds, the trailing window.
    first_known = t_pos - (spec.vol_window if spec.uses_volatility else 0)
    inside = (pl.col("symbol") == row["symbol"]) & (
        (pl.col("_pos") >= first_known) & (pl.col("date") <= row["t1"])
    )
    price = "adj_close" if "adj_close" in frame.columns else "close"
    others = tuple(c for c in PRICE_COLS if c != price)
    changed = perturb(pos, ~inside, seed)  # every price column outside the interval
    changed = perturb(changed, pl.lit(True), seed + 1, columns=others).drop("_pos")
    again = labels_from_spec(changed, spec).filter(key)
    assert again.height == 1
    assert again.row(0, named=True) == row

    # Moving the price at t1 itself must be visible in the label row.
    at_t1 = (pl.col("symbol") == row["symbol"]) & (pl.col("date") == row["t1"])
    bumped = frame.with_columns(
        pl.when(at_t1).then(pl.col(price) * 1.25).otherwise(price).alias(price)
    )
    moved = labels_from_spec(bumped, spec).filter(key).row(0, named=True)
    assert (moved["t1"], moved["ret"]) != (row["t1"], row["ret"])


@PROPERTY_SETTINGS
@given(frame=panels(min_days=40), spec=st.sampled_from(SPECS))
def test_label_intervals_are_well_formed(frame: pl.DataFrame, spec: LabelSpec) -> None:
    assume(_long_enough(frame, spec))
    labels = labels_from_spec(frame, spec)
    assert (labels["t0"] == labels["date"]).all()
    assert (labels["t1"] > labels["t0"]).all()
    pos = _row_position(frame).select("symbol", "date", "_pos")
    span = labels.join(pos, on=["symbol", "date"]).join(
        pos, left_on=["symbol", "t1"], right_on=["symbol", "date"], suffix="_t1"
    )
    assert span.height == labels.height
    assert (span["_pos_t1"] - span["_pos"]).is_between(1, spec.horizon).all()
    # Every row with a full horizon (and a defined volatility) is labelled, no other.
    sizes = frame.group_by("symbol").len()
    warm = spec.vol_window if spec.uses_volatility else 0
    per_symbol = pl.col("len").cast(pl.Int64) - spec.horizon - warm  # len is unsigned
    expected = sizes.select(per_symbol.clip(lower_bound=0).sum()).item()
    assert labels.height == expected
