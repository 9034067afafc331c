"""Tests of quant_core.portfolio: scores to weights, caps, exposures, schedules, alignment."""

from __future__ import annotations

import warnings
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from quantdesk.quant_core.errors import ConfigError, InputError, SchemaError
from quantdesk.quant_core.labels import trailing_volatility
from quantdesk.quant_core.portfolio import (
    PanelLabels,
    PortfolioWarning,
    WeightSpec,
    align_targets,
    dense_panel,
    dense_targets,
    fill_missing_prices,
    proportional_weights,
    quantile_weights,
    rebalance_mask,
    require_weights_frame,
    scores_to_weights,
    vol_scaled_weights,
)

DAY = date(2024, 1, 1)  # a Monday


def scores(values: list[float | None], day: date = DAY) -> pl.DataFrame:
    symbols = [chr(ord("A") + i) for i in range(len(values))]
    return pl.DataFrame(
        {"date": [day] * len(values), "symbol": symbols, "score": values},
        schema={"date": pl.Date, "symbol": pl.String, "score": pl.Float64},
    )


def weights_of(frame: pl.DataFrame) -> list[float]:
    return frame.sort("symbol")["weight"].to_list()


# ---------------------------------------------------------------------------- goldens


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"quantile": 0.2}, [0.5, 0, 0, 0, -0.5]),
        ({"quantile": 0.4}, [0.25, 0.25, 0, -0.25, -0.25]),
        ({"quantile": 0.4, "side": "long_only"}, [0.5, 0.5, 0, 0, 0]),
        (
            {"quantile": 0.4, "side": "long_short", "gross": 1.6, "net": 1.0},
            [0.65, 0.65, 0, -0.15, -0.15],
        ),
        ({"quantile": 0.2, "gross": 2.0}, [1.0, 0, 0, 0, -1.0]),
    ],
)
def test_quantile_weights(options, expected):
    result = quantile_weights(scores([5.0, 4.0, 3.0, 2.0, 1.0]), **options)
    np.testing.assert_allclose(weights_of(result), expected, atol=1e-15)


@pytest.mark.parametrize(
    ("side", "expected"),
    [
        ("dollar_neutral", [-0.375, -0.125, 0.125, 0.375]),
        ("long_only", [0.0, 0.0, 0.25, 0.75]),
    ],
)
def test_proportional_weights(side, expected):
    result = proportional_weights(scores([1.0, 2.0, 3.0, 4.0]), side=side)
    np.testing.assert_allclose(weights_of(result), expected, atol=1e-15)


def test_cap_spreads_the_excess_over_the_rest_of_the_leg():
    # Demeaned scores 6, 3, 1 (and -10): raw long weights 0.6, 0.3, 0.1.
    frame = scores([6.0, 3.0, 1.0, -10.0])
    free = proportional_weights(frame, side="long_only")
    np.testing.assert_allclose(weights_of(free), [0.6, 0.3, 0.1, 0.0], atol=1e-15)
    capped = proportional_weights(frame, side="long_only", max_weight=0.4)
    np.testing.assert_allclose(weights_of(capped), [0.4, 0.4, 0.2, 0.0], atol=1e-15)


def test_a_cap_too_tight_for_the_names_warns_and_holds_what_it_can():
    with pytest.warns(PortfolioWarning, match="below the exposure target"):
        result = quantile_weights(
            scores([2.0, 1.0]), quantile=1.0, side="long_only", max_weight=0.3
        )
    np.testing.assert_allclose(weights_of(result), [0.3, 0.3])


def test_vol_scaled_divides_the_demeaned_score_by_trailing_volatility():
    n = 12
    rows = []
    for symbol, swing in (("A", 0.01), ("B", 0.02), ("C", 0.04)):
        close = 100 * np.cumprod(1 + swing * (-1.0) ** np.arange(n))
        rows.append(
            pl.DataFrame(
                {
                    "date": [DAY + timedelta(days=i) for i in range(n)],
                    "symbol": symbol,
                    "open": close,
                    "high": close,
                    "low": close,
                    "close": close,
                    "volume": 1e6,
                }
            )
        )
    prices = pl.concat(rows).with_columns(pl.col("date").cast(pl.Date))
    last = DAY + timedelta(days=n - 1)
    result = vol_scaled_weights(scores([3.0, 2.0, -5.0], last), prices, vol_window=5)
    vol = (
        prices.select("symbol", trailing_volatility("close", 5).alias("v"))
        .filter(prices["date"] == last)["v"]
        .to_numpy()
    )
    raw = (np.array([3.0, 2.0, -5.0]) - 0.0) / vol
    expected = np.where(raw > 0, 0.5 * raw / raw[raw > 0].sum(), -0.5 * raw / raw[raw < 0].sum())
    np.testing.assert_allclose(weights_of(result), expected, rtol=1e-12)


# -------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(["quantile", "proportional"]),
    side=st.sampled_from(["long_only", "long_short", "dollar_neutral"]),
    gross=st.floats(0.5, 3.0),
    net_share=st.floats(-1.0, 1.0),
    cap=st.one_of(st.none(), st.floats(0.01, 1.0)),
)
def test_legs_meet_their_targets_and_caps(seed, method, side, gross, net_share, cap):
    rng = np.random.default_rng(seed)
    n_dates, n_names = 4, int(rng.integers(6, 30))
    days = [DAY + timedelta(days=i) for i in range(n_dates) for _ in range(n_names)]
    frame = pl.DataFrame(
        {
            "date": days,
            "symbol": [f"S{i:02d}" for i in range(n_names)] * n_dates,
            "score": rng.normal(size=n_dates * n_names),
        },
        schema={"date": pl.Date, "symbol": pl.String, "score": pl.Float64},
    )
    net = {"long_only": None, "dollar_neutral": None}.get(side, net_share * gross)
    spec = WeightSpec(method=method, side=side, gross=gross, net=net, max_weight=cap)
    long_target, short_target = spec.legs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PortfolioWarning)  # infeasible caps are checked below
        result = scores_to_weights(frame, spec)
    assert result.height == frame.height
    legs = result.group_by("date").agg(
        pl.col("weight").clip(lower_bound=0).sum().alias("long"),
        (-pl.col("weight").clip(upper_bound=0)).sum().alias("short"),
        (pl.col("weight") > 0).sum().alias("n_long"),
        (pl.col("weight") < 0).sum().alias("n_short"),
        pl.col("weight").abs().max().alias("largest"),
    )
    for row in legs.iter_rows(named=True):
        if cap is not None:
            assert row["largest"] <= cap * (1 + 1e-12)
        for leg, target in (("long", long_target), ("short", short_target)):
            feasible = cap is None or row[f"n_{leg}"] * cap >= target * (1 + 1e-9)
            if feasible:
                assert row[leg] == pytest.approx(target, rel=1e-9, abs=1e-12)
            else:
                assert row[leg] <= target * (1 + 1e-9)
    if side == "long_only":
        assert result["weight"].min() >= 0.0


def test_missing_scores_are_not_held_and_warm_up_is_silent():
    frame = pl.concat(
        [
            scores([None, None, None, None], DAY),
            scores([4.0, None, 2.0, 1.0], DAY + timedelta(days=1)),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = quantile_weights(frame, quantile=0.34)
    first = result.filter(pl.col("date") == DAY)["weight"]
    assert first.to_list() == [0.0] * 4
    second = result.filter(pl.col("date") == DAY + timedelta(days=1)).sort("symbol")
    assert second["weight"].to_list() == [0.5, 0.0, 0.0, -0.5]


def test_a_date_that_cannot_fill_both_legs_is_flat_and_warns():
    frame = scores([1.0, None, None])
    with pytest.warns(PortfolioWarning, match="too few valid scores"):
        result = quantile_weights(frame)
    assert result["weight"].to_list() == [0.0, 0.0, 0.0]


# --------------------------------------------------------------------------- schedules


def test_rebalance_mask_marks_the_last_session_of_each_period():
    days = [DAY + timedelta(days=i) for i in (0, 1, 2, 3, 4, 7, 8, 9, 10, 11)]
    days += [date(2024, 2, 1), date(2024, 2, 2)]
    assert np.flatnonzero(rebalance_mask(days, "daily")).tolist() == list(range(12))
    assert np.flatnonzero(rebalance_mask(days, "weekly")).tolist() == [4, 9, 11]
    assert np.flatnonzero(rebalance_mask(days, "monthly")).tolist() == [9, 11]
    with pytest.raises(InputError, match="quarterly"):
        rebalance_mask(days, "quarterly")


def test_dense_targets_use_the_latest_weights_known_at_each_decision():
    days = [DAY + timedelta(days=i) for i in (0, 1, 2, 3, 4, 7, 8, 9, 10, 11)]
    prices = pl.DataFrame(
        {
            "date": days * 2,
            "symbol": ["A"] * 10 + ["B"] * 10,
            "close": np.arange(1.0, 21.0),
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    panel = dense_panel(prices, ["close"])
    assert panel.symbols == ("A", "B")
    np.testing.assert_array_equal(panel.values["close"][:, 1], np.arange(11.0, 21.0))
    weights = pl.DataFrame(
        {
            "date": [days[2], days[6]],
            "symbol": ["A", "B"],
            "weight": [1.0, -1.0],
        }
    ).with_columns(pl.col("date").cast(pl.Date))
    mask, targets = dense_targets(weights, panel, "weekly")
    assert np.flatnonzero(mask).tolist() == [4, 9]  # the two Fridays
    np.testing.assert_array_equal(targets, [[1.0, 0.0], [0.0, -1.0]])
    mask, targets = dense_targets(weights, panel, "daily")
    assert np.flatnonzero(mask).tolist() == list(range(2, 10))  # nothing before the first
    np.testing.assert_array_equal(targets[3], [1.0, 0.0])  # Tuesday of week 2: still Wednesday's
    np.testing.assert_array_equal(targets[4], [0.0, -1.0])


# ----------------------------------------------------------------- arrays, missing prices


def test_align_targets_skips_leading_flat_decisions():
    targets = np.array([[0.0, 0.0], [0.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    decisions, kept = align_targets(targets, None, (4, 2))
    assert decisions.tolist() == [2]  # the last row cannot trade
    np.testing.assert_array_equal(kept, [[0.5, 0.5]])
    with pytest.raises(InputError, match="Every target weight is zero"):
        align_targets(np.zeros((4, 2)), None, (4, 2))


def test_fill_missing_prices_zeroes_untradable_targets_and_fills_gaps():
    close = np.array([[np.nan, 10.0], [5.0, 10.0], [np.nan, 11.0], [6.0, 12.0]])
    targets = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    notes: list[str] = []
    labels = PanelLabels(["d0", "d1", "d2", "d3"], ["A", "B"])
    mark, execute, kept = fill_missing_prices(close, None, targets, np.arange(3), labels, notes)
    np.testing.assert_array_equal(mark[:, 0], [1.0, 5.0, 5.0, 6.0])  # leading 1.0 never used
    np.testing.assert_array_equal(kept, [[0.5, 0.5], [0.0, 0.5], [0.5, 0.5]])
    assert notes == [
        "1 target weight(s) on names without a price on the execution session were set to 0, "
        "first symbol 'A' on date d2."
    ]
    assert execute is mark


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"side": "long_only", "net": 0.5}, "net = gross"),
        ({"side": "dollar_neutral", "net": 0.5}, "net = 0"),
        ({"net": 2.0}, "cannot exceed"),
        ({"quantile": 0.6}, "both sides"),
        ({"gross": -1.0}, "gross"),
        ({"max_weight": 0.0}, "max_weight"),
        ({"leverage": 2.0}, "leverage"),
    ],
)
def test_weight_spec_refuses_bad_settings(options, match):
    with pytest.raises(ConfigError, match=match):
        WeightSpec(**options)
    with pytest.raises(ConfigError, match=match):
        scores_to_weights(scores([1.0, 2.0, 3.0]), **options)


def test_bad_score_frames_are_refused():
    with pytest.raises(SchemaError, match="lacks"):
        quantile_weights(scores([1.0, 2.0]).drop("score"))
    with pytest.raises(SchemaError, match="not numeric"):
        quantile_weights(scores([1.0, 2.0]).with_columns(pl.col("score").cast(pl.String)))
    with pytest.raises(InputError, match="duplicate"):
        quantile_weights(pl.concat([scores([1.0, 2.0]), scores([1.0, 2.0])]))
    with pytest.raises(InputError, match="empty"):
        quantile_weights(scores([1.0]).clear())
    with pytest.raises(InputError, match="needs the prices"):
        scores_to_weights(scores([1.0, 2.0]), method="vol_scaled")


def test_require_weights_frame_normalises_types_and_order():
    raw = pl.DataFrame({"date": [DAY, DAY], "symbol": ["B", "A"], "weight": [1, -1]}).with_columns(
        pl.col("date").cast(pl.Date)
    )
    expected = pl.DataFrame(
        {"date": [DAY, DAY], "symbol": ["A", "B"], "weight": [-1.0, 1.0]},
        schema={"date": pl.Date, "symbol": pl.String, "weight": pl.Float64},
    )
    assert_frame_equal(require_weights_frame(raw, ["A", "B"]), expected)
    with pytest.raises(SchemaError, match="Date"):
        require_weights_frame(raw.with_columns(pl.col("date").cast(pl.String)))
