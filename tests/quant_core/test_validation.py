from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.quant_core.errors import DataError, InputError, SchemaError
from quantdesk.quant_core.loaders import load_prices
from quantdesk.quant_core.validation import (
    ISSUE_KINDS,
    ISSUE_SCHEMA,
    ValidationReport,
    validate_prices,
)

N = 120
START = date(2022, 1, 3)
T = 60  # the session where issues are planted
DAY = START + timedelta(days=T)


def clean(seed: int = 11, symbols: tuple[str, ...] = ("AAA", "BBB")) -> pl.DataFrame:
    """Random-walk OHLCV bars that are internally consistent (no issue of any kind)."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, sym in enumerate(symbols):
        close = (50 + 30 * k) * np.exp(np.cumsum(rng.normal(0, 0.015, N)))
        open_ = close * np.exp(rng.normal(0, 0.004, N))
        high = np.maximum(open_, close) * (1 + rng.uniform(0.001, 0.01, N))
        low = np.minimum(open_, close) * (1 - rng.uniform(0.001, 0.01, N))
        parts.append(
            pl.DataFrame(
                {
                    "date": [START + timedelta(days=i) for i in range(N)],
                    "symbol": sym,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "volume": rng.integers(1_000, 50_000, N).astype(float),
                }
            )
        )
    return pl.concat(parts)


def at(symbol: str = "AAA", day: date = DAY) -> pl.Expr:
    return (pl.col("symbol") == symbol) & (pl.col("date") == day)


def set_at(frame: pl.DataFrame, **values: float) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(at()).then(pl.lit(v)).otherwise(pl.col(k)).alias(k) for k, v in values.items()
    )


def scale_from(frame: pl.DataFrame, factor: float) -> pl.DataFrame:
    """Scale AAA's prices from DAY on: an unadjusted split when factor is 1/2."""
    later = (pl.col("symbol") == "AAA") & (pl.col("date") >= DAY)
    return frame.with_columns(
        pl.when(later).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c)
        for c in ("open", "high", "low", "close")
    )


def scale_day(frame: pl.DataFrame, factor: float, cols: tuple[str, ...]) -> pl.DataFrame:
    return frame.with_columns(
        pl.when(at()).then(pl.col(c) * factor).otherwise(pl.col(c)).alias(c) for c in cols
    )


def with_split_column(frame: pl.DataFrame, ratio: float) -> pl.DataFrame:
    return frame.with_columns(pl.when(at()).then(ratio).otherwise(1.0).alias("split_factor"))


def frozen(frame: pl.DataFrame) -> pl.DataFrame:
    close = frame.filter(at())["close"][0]
    return set_at(frame, open=close, high=close, low=close)


Plant = tuple[Callable[[pl.DataFrame], pl.DataFrame], str, str, date | None]
# Severity "any": the planted jump lands within the warning or the error band of a split
# ratio depending on that day's random return; exact matches are tested on flat prices.
PLANTS: dict[str, Plant] = {
    "zero close": (lambda f: set_at(f, close=0.0, low=0.0), "non_positive_price", "error", DAY),
    "nan volume": (lambda f: set_at(f, volume=float("nan")), "non_finite_value", "error", DAY),
    "inf high": (lambda f: set_at(f, high=float("inf")), "non_finite_value", "error", DAY),
    "negative volume": (lambda f: set_at(f, volume=-5.0), "negative_volume", "error", DAY),
    "high below low": (lambda f: set_at(f, high=1.0, low=2.0), "high_below_low", "error", DAY),
    "close outside": (
        lambda f: scale_day(f, 1.05, ("close",)),
        "close_outside_range",
        "error",
        DAY,
    ),
    "open outside": (lambda f: scale_day(f, 0.9, ("open",)), "open_outside_range", "error", DAY),
    "duplicate": (lambda f: pl.concat([f, f.filter(at())]), "duplicate_row", "error", DAY),
    "unsorted": (lambda f: pl.concat([f.filter(~at()), f.filter(at())]), "unsorted", "error", DAY),
    "missing": (lambda f: f.filter(~at()), "missing_session", "warning", DAY),
    "frozen": (frozen, "frozen_bar", "warning", DAY),
    "island print": (
        lambda f: scale_day(f, 1.25, ("open", "high", "low", "close")),
        "bad_print",
        "error",
        DAY,
    ),
    "spike inside range": (
        lambda f: scale_day(f, 1.25, ("high", "close")),
        "bad_print",
        "warning",
        DAY,
    ),
    "split": (lambda f: scale_from(f, 0.5), "unadjusted_split", "any", DAY),
    "reverse split": (lambda f: scale_from(f, 10.0), "unadjusted_split", "any", DAY),
    "split factor without move": (
        lambda f: with_split_column(f, 3.0),
        "unadjusted_split",
        "any",
        DAY,
    ),
    "negative dividend": (
        lambda f: f.with_columns(pl.when(at()).then(-1.0).otherwise(0.0).alias("dividend")),
        "invalid_corporate_action",
        "error",
        DAY,
    ),
}


def test_clean_frame_has_no_issues() -> None:
    report = validate_prices(clean())
    assert report.issues.height == 0
    assert report.issues.schema == ISSUE_SCHEMA
    assert report.ok
    assert report.n_rows == 2 * N
    assert report.n_symbols == 2


@pytest.mark.parametrize("name", list(PLANTS))
def test_planted_issue_is_found(name: str) -> None:
    plant, kind, severity, day = PLANTS[name]
    report = validate_prices(plant(clean()))
    found = report.issues.filter(pl.col("kind") == kind)
    assert found.height >= 1, report.to_markdown()
    first = found.row(0, named=True)
    assert first["symbol"] == "AAA"
    assert severity == "any" or first["severity"] == severity
    if day is not None:
        assert first["date"] == day
    assert kind in ISSUE_KINDS
    # Nothing is reported for the untouched symbol.
    assert report.issues.filter(pl.col("symbol") == "BBB").height == 0


def test_recorded_split_is_not_reported() -> None:
    frame = with_split_column(scale_from(clean(), 0.5), 2.0)
    assert validate_prices(frame).issues.height == 0


def flat() -> pl.DataFrame:
    """Constant prices: every move in a test is exactly the one planted."""
    return clean().with_columns(
        open=pl.lit(100.0), high=pl.lit(101.0), low=pl.lit(99.0), close=pl.lit(100.0)
    )


@pytest.mark.parametrize(
    ("factor", "severity"),
    [(0.5, "error"), (1 / 3, "error"), (8.0, "error"), (0.66, "warning"), (0.7, None)],
)
def test_split_bands(factor: float, severity: str | None) -> None:
    # 0.66 is 1.0% (log) off the 3-for-2 move: warning band; 0.70 is 4.9% off: nothing.
    report = validate_prices(scale_from(flat(), factor))
    expected = [] if severity is None else [("unadjusted_split", "AAA", DAY, severity)]
    assert report.issues.select("kind", "symbol", "date", "severity").rows() == expected


def test_duplicate_detail_says_whether_rows_conflict() -> None:
    frame = clean()
    other = frame.filter(at()).with_columns(pl.col("volume") + 1)
    same = validate_prices(pl.concat([frame, frame.filter(at())])).errors
    conflict = validate_prices(pl.concat([frame, other])).errors
    assert "identical" in same["detail"][0]
    assert "conflicting" in conflict["detail"][0]
    assert same["value"][0] == 2.0


def test_user_calendar() -> None:
    frame = clean()
    sessions = frame["date"].unique().sort().to_list()
    extra = START + timedelta(days=N + 5)
    # Sessions outside the calendar are not reported; only calendar sessions are expected.
    assert validate_prices(frame, calendar=sessions[:10]).issues.height == 0
    gap = frame.filter(~at())
    report = validate_prices(gap, calendar=pl.DataFrame({"date": [*sessions, extra]}))
    # The extra session is after every symbol's last row, so only the dropped one counts.
    assert report.issues.select("kind", "symbol", "date").rows() == [
        ("missing_session", "AAA", DAY)
    ]


def test_report_helpers() -> None:
    frame = frozen(clean())
    frame = pl.concat([frame, frame.tail(1)])
    report = validate_prices(frame)
    assert not report.ok
    assert report.errors["kind"].to_list() == ["duplicate_row"]
    assert report.warnings["kind"].to_list() == ["frozen_bar"]
    assert report.summary().rows() == [("duplicate_row", "error", 1), ("frozen_bar", "warning", 1)]
    text = report.to_markdown(max_rows=1)
    assert "1 error(s), 1 warning(s)" in text
    assert "| error | duplicate_row | BBB |" in text
    assert "1 more issue" in text
    with pytest.raises(DataError, match="duplicate_row BBB"):
        report.raise_on_error()
    validate_prices(clean()).raise_on_error()
    assert "No issues found" in validate_prices(clean()).to_markdown()


def test_report_is_frozen() -> None:
    report = validate_prices(clean())
    with pytest.raises(AttributeError):
        report.n_rows = 3  # type: ignore[misc]
    assert isinstance(report, ValidationReport)


def test_int_volume_is_accepted() -> None:
    frame = clean().with_columns(pl.col("volume").cast(pl.Int64))
    assert validate_prices(frame).issues.height == 0


@pytest.mark.parametrize(
    ("frame", "kwargs", "error", "match"),
    [
        (clean().head(0), {}, DataError, "empty"),
        (clean().drop("low"), {}, SchemaError, "lacks column"),
        (clean().with_columns(pl.col("date").cast(pl.String)), {}, SchemaError, "wrong type"),
        (clean().with_columns(pl.lit("x").alias("volume")), {}, SchemaError, "volume"),
        ({"close": [1.0]}, {}, InputError, "polars DataFrame"),
        (clean(), {"spike_threshold": 0}, InputError, "spike_threshold"),
        (clean(), {"split_ratios": (0.5,)}, InputError, "split_ratios"),
        (clean(), {"spike_reversal": 3.0}, InputError, "spike_reversal"),
        (clean(), {"calendar": []}, InputError, "calendar"),
        (clean(), {"calendar": pl.DataFrame({"day": [START]})}, SchemaError, "date"),
    ],
)
def test_bad_input(frame: object, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        validate_prices(frame, **kwargs)  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    copies=st.lists(st.integers(0, 2 * N - 1), max_size=5),
    shuffle=st.booleans(),
)
def test_shuffled_and_duplicated_frames_are_reported_not_refused(
    seed: int, copies: list[int], shuffle: bool
) -> None:
    base = clean(seed)
    frame = pl.concat([base, base[copies]]) if copies else base
    if shuffle:
        frame = frame.sample(fraction=1.0, shuffle=True, seed=seed)
    report = validate_prices(frame)
    dupes = report.issues.filter(pl.col("kind") == "duplicate_row")
    assert dupes["value"].sum() - dupes.height == len(copies)
    # Apart from order and duplicates, a clean random walk yields nothing.
    other = report.issues.filter(~pl.col("kind").is_in(["duplicate_row", "unsorted"]))
    assert other.height == 0


@pytest.fixture(scope="module")
def av_report(shared_data: Path) -> ValidationReport:
    frame = load_prices(shared_data / "prices" / "alphavantage_raw_adj_1999_2020.parquet")
    return validate_prices(frame)


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("kind", "symbol", "day", "severity"),
    [
        # Whole bars displaced and reversed the next day; Yahoo has normal bars there.
        ("bad_print", "XLV", date(2014, 8, 8), "error"),
        ("bad_print", "XLP", date(2014, 8, 5), "error"),
        ("bad_print", "EFA", date(2014, 7, 3), "error"),
        # O=H=L=C on liquid sessions; Yahoo shows real ranges (NFLX traded 4.59-5.56 adj.).
        ("frozen_bar", "BA", date(2009, 11, 3), "warning"),
        ("frozen_bar", "NFLX", date(2013, 10, 22), "warning"),
        ("frozen_bar", "PEP", date(2018, 6, 8), "warning"),
    ],
)
def test_alpha_vantage_glitches_are_found(
    av_report: ValidationReport, kind: str, symbol: str, day: date, severity: str
) -> None:
    hit = av_report.issues.filter(
        (pl.col("kind") == kind) & (pl.col("symbol") == symbol) & (pl.col("date") == day)
    )
    assert hit["severity"].to_list() == [severity]


@pytest.mark.realdata
def test_alpha_vantage_summary(av_report: ValidationReport) -> None:
    counts = {(k, s): n for k, s, n in av_report.summary().iter_rows()}
    assert counts[("frozen_bar", "warning")] == 24
    assert counts[("bad_print", "error")] == 3
    # Splits are recorded in split_factor, so none of the 37 shows up.
    assert counts.get(("unadjusted_split", "error"), 0) == 0
    assert not av_report.ok


@pytest.mark.realdata
@pytest.mark.parametrize(
    "name", ["yfinance_adjusted_ohlcv_2005_2024", "yfinance_raw_and_adjclose_etfs_2005_2024"]
)
def test_yahoo_files_have_no_errors(shared_data: Path, name: str) -> None:
    report = validate_prices(load_prices(shared_data / "prices" / f"{name}.parquet"))
    assert report.ok, report.to_markdown()
    # A handful of warnings: crisis-day reversals in bond ETFs, AMD/NFLX moves near 3:2,
    # and frozen bars of the thinly traded BIL in 2007.
    assert report.warnings.height <= 15, report.to_markdown()
