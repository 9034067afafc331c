from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal

from quantdesk.quant_core.corporate_actions import adjust_prices, adjustment_factors
from quantdesk.quant_core.errors import DataError, InputError, SchemaError
from quantdesk.quant_core.loaders import load_prices


def tiny() -> pl.DataFrame:
    """Five sessions: a 2-for-1 split on day 3 and a 1.00 dividend on day 4."""
    close = [100.0, 102.0, 50.0, 50.5, 51.0]
    return pl.DataFrame(
        {
            "date": [date(2021, 3, d) for d in range(1, 6)],
            "symbol": "X",
            "open": close,
            "high": [c + 1 for c in close],
            "low": [c - 1 for c in close],
            "close": close,
            "volume": [1000.0, 1000.0, 2000.0, 2000.0, 2000.0],
            "dividend": [0.0, 0.0, 0.0, 1.0, 0.0],
            "split_factor": [1.0, 1.0, 2.0, 1.0, 1.0],
        }
    )


# Hand computation. previous_close: dividend factor 1 - 1.00 / 50 = 0.98, split 1/2.
# ex_close: 50.5 / (50.5 + 1.00) = 0.98058252...
EX = 50.5 / 51.5


@pytest.mark.parametrize(
    ("method", "price_factor"),
    [
        ("previous_close", [0.49, 0.49, 0.98, 1.0, 1.0]),
        ("ex_close", [EX / 2, EX / 2, EX, 1.0, 1.0]),
    ],
)
def test_golden_factors(method: str, price_factor: list[float]) -> None:
    factors = adjustment_factors(tiny(), method=method)
    assert_series_equal(factors["price_factor"], pl.Series("price_factor", price_factor))
    assert factors["volume_factor"].to_list() == [2.0, 2.0, 1.0, 1.0, 1.0]
    assert factors["split_ratio"].to_list() == [1.0, 1.0, 2.0, 1.0, 1.0]
    frame = adjust_prices(tiny(), method=method)
    expected_close = [c * f for c, f in zip(tiny()["close"], price_factor, strict=True)]
    assert frame["adj_close"].to_list() == pytest.approx(expected_close, rel=1e-12)
    assert frame["adj_volume"].to_list() == [2000.0] * 5


def test_golden_adjusted_close_previous_close() -> None:
    frame = adjust_prices(tiny())
    assert frame["adj_close"].to_list() == pytest.approx([49.0, 49.98, 49.0, 50.5, 51.0])
    assert frame["adj_high"].to_list() == pytest.approx([49.49, 50.47, 49.98, 51.5, 52.0])


def test_columns_output_keeps_raw_values() -> None:
    frame = adjust_prices(tiny())
    assert_frame_equal(frame.select(tiny().columns), tiny())
    assert frame.columns[-5:] == ["adj_open", "adj_high", "adj_low", "adj_close", "adj_volume"]


def test_canonical_output_is_fully_adjusted() -> None:
    wide = adjust_prices(tiny())
    frame = adjust_prices(tiny(), output="canonical")
    assert frame.columns == [
        "date",
        "symbol",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "adj_close",
    ]
    assert_series_equal(frame["close"], wide["adj_close"], check_names=False)
    assert_series_equal(frame["adj_close"], wide["adj_close"])
    assert_series_equal(frame["volume"], wide["adj_volume"], check_names=False)


def test_split_and_dividend_on_the_same_session() -> None:
    base = tiny().with_columns(
        pl.Series("dividend", [0.0, 0.0, 0.5, 0.0, 0.0]),
    )
    factors = adjustment_factors(base)
    # Previous close 102 is 51 per post-split share: (1 - 0.5 / 51) / 2.
    assert factors["price_factor"][0] == pytest.approx((1 - 0.5 / 51) / 2)


def test_first_row_dividend_falls_back_to_ex_close() -> None:
    base = tiny().with_columns(pl.Series("dividend", [2.0, 0.0, 0.0, 0.0, 0.0]))
    factors = adjustment_factors(base)
    assert factors["dividend_factor"][0] == pytest.approx(100 / 102)
    # Nothing happens after the first row, so its own event leaves every factor at 1/2 or 1.
    assert factors["price_factor"].to_list() == [0.5, 0.5, 1.0, 1.0, 1.0]


def test_implausible_dividend_falls_back_to_ex_close() -> None:
    base = tiny().with_columns(pl.Series("dividend", [0.0, 0.0, 0.0, 60.0, 0.0]))
    factor = adjustment_factors(base)["dividend_factor"][3]
    assert factor == pytest.approx(50.5 / 110.5)


def test_symbols_are_adjusted_independently() -> None:
    other = tiny().with_columns(pl.lit("Y").alias("symbol"), pl.lit(0.0).alias("dividend"))
    frame = adjust_prices(pl.concat([tiny(), other]))
    assert frame.filter(pl.col("symbol") == "Y")["adj_close"].to_list() == [50, 51, 50, 50.5, 51]


def test_missing_event_column_is_treated_as_no_event() -> None:
    frame = adjust_prices(tiny().drop("dividend"))
    assert frame["adj_close"].to_list() == [50.0, 51.0, 50.0, 50.5, 51.0]


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda f: f.drop("dividend", "split_factor"), SchemaError, "nothing to adjust"),
        (lambda f: f.drop("volume"), SchemaError, "lacks column"),
        (lambda f: f.head(0), DataError, "empty"),
        (lambda f: f.reverse(), DataError, "not sorted"),
        (lambda f: pl.concat([f, f.tail(1)]), DataError, "duplicate"),
        (lambda f: f.with_columns(pl.lit(-1.0).alias("dividend")), DataError, "dividend"),
        (lambda f: f.with_columns(pl.lit(0.0).alias("split_factor")), DataError, "split_factor"),
        (lambda f: f.with_columns(pl.lit(0.0).alias("close")), DataError, "close"),
        (lambda f: f.with_columns(pl.lit(float("nan")).alias("close")), DataError, "close"),
    ],
)
def test_bad_frames(change, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        adjust_prices(change(tiny()))


def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="method"):
        adjust_prices(tiny(), method="forward")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="output"):
        adjust_prices(tiny(), output="wide")  # type: ignore[arg-type]


def random_raw(seed: int, n: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    split = np.where(rng.random(n) < 0.05, rng.choice([2.0, 3.0, 0.5], n), 1.0)
    split[0] = 1.0
    close = close / np.cumprod(split)  # as traded: the price drops on a split
    dividend = np.where(rng.random(n) < 0.1, close * rng.uniform(0.001, 0.05, n), 0.0)
    return pl.DataFrame(
        {
            "date": [date(2020, 1, 1) + timedelta(days=i) for i in range(n)],
            "symbol": "R",
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 100.0,
            "dividend": dividend,
            "split_factor": split,
        }
    )


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 80))
def test_adjusted_returns_are_total_returns(seed: int, n: int) -> None:
    raw = random_raw(seed, n)
    frame = adjust_prices(raw, method="ex_close")
    c, d, s = raw["close"].to_numpy(), raw["dividend"].to_numpy(), raw["split_factor"].to_numpy()
    adj = frame["adj_close"].to_numpy()
    # ex_close makes adjusted returns exactly the total return (C + D) * S / C_prev.
    np.testing.assert_allclose(adj[1:] / adj[:-1], (c[1:] + d[1:]) * s[1:] / c[:-1], rtol=1e-9)
    prev = adjust_prices(raw)["adj_close"].to_numpy()
    # previous_close: C * S / (C_prev - D * S), the CRSP-style factor return.
    np.testing.assert_allclose(prev[1:] / prev[:-1], c[1:] * s[1:] / (c[:-1] - d[1:] * s[1:]))
    assert adj[-1] == c[-1]
    assert prev[-1] == c[-1]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 80), data=st.data())
def test_returns_up_to_t_ignore_later_data(seed: int, n: int, data: st.DataObject) -> None:
    raw = random_raw(seed, n)
    t = data.draw(st.integers(1, n - 1))
    full = adjust_prices(raw)["adj_close"].to_numpy()[: t + 1]
    cut = adjust_prices(raw.head(t + 1))["adj_close"].to_numpy()
    # Backward adjustment rescales the past when events arrive, but never its returns.
    np.testing.assert_allclose(full[1:] / full[:-1], cut[1:] / cut[:-1], rtol=1e-9)


@pytest.mark.realdata
@pytest.mark.parametrize(("method", "bound"), [("previous_close", 0.01), ("ex_close", 1e-4)])
def test_matches_alpha_vantage_adjusted_close(shared_data: Path, method: str, bound: float) -> None:
    frame = load_prices(shared_data / "prices" / "alphavantage_raw_adj_1999_2020.parquet")
    vendor = frame["adj_close"]
    ours = adjust_prices(frame, method=method)["adj_close"]
    worst = (
        frame.select("symbol", "date")
        .with_columns((ours / vendor - 1).abs().alias("rel"))
        .filter(pl.col("date").is_between(date(2005, 1, 1), date(2020, 12, 31)))
        .group_by("symbol")
        .agg(pl.col("rel").max())
        .sort("rel", descending=True)
    )
    assert worst.height == 53
    symbol, rel = worst.row(0)
    assert rel < bound, f"{method}: worst ticker {symbol} deviates by {rel:.3%}"
