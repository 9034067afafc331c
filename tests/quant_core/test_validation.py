from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from quantdesk.quant_core import validation, validation_series
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


# --- the fast robust z and split search against their plain polars definitions -------------


def reference_z(
    ts: pl.DataFrame,
    *,
    spike_threshold: float,
    min_volatility: float,
    volatility_window: int,
    candidates: pl.Expr,
) -> pl.Series:
    """The definition: centred rolling median of |r| per symbol on every row, in polars."""
    abs_r = pl.col("r").abs()
    rolling = abs_r.rolling_median(
        volatility_window, min_samples=min(20, volatility_window), center=True
    )
    sigma = pl.max_horizontal(1.4826 * pl.coalesce(rolling, abs_r.median()), pl.lit(min_volatility))
    return ts.select((abs_r / sigma).over("symbol").alias("z")).to_series()


def reference_split_moves(
    ts: pl.DataFrame, split_ratios: tuple[float, ...], split_tolerance: float
) -> pl.DataFrame:
    """The definition: the distance to every split ratio on every row."""
    targets = [(np.log(1 / q), validation_series._split_name(q)) for q in split_ratios]
    targets += [(np.log(q), validation_series._split_name(1 / q)) for q in split_ratios]
    dist = pl.min_horizontal([(pl.col("r") - t).abs() for t, _ in targets])
    nearest = pl.coalesce(
        [pl.when((pl.col("r") - t).abs() == pl.col("dist")).then(pl.lit(n)) for t, n in targets]
    )
    return (
        ts.with_columns(dist.alias("dist"))
        .filter(pl.col("dist") <= split_tolerance)
        .with_columns(nearest.alias("nearest"))
    )


def glitchy(seed: int, *, shuffle: bool = False) -> pl.DataFrame:
    """Symbols of 3 to 150 sessions with planted spikes, islands, splits, gaps and bad rows."""
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(int(rng.integers(2, 6))):
        n = int(rng.choice([3, 12, 25, 70, 150]))
        close = 40 * np.exp(np.cumsum(rng.normal(0, rng.choice([0.001, 0.01, 0.03]), n)))
        for day in rng.choice(n, size=min(n, 4), replace=False):
            kind = rng.integers(4)
            if kind == 0:  # a one-day spike (a bad print when the next day reverses it)
                close[day] *= rng.choice([0.5, 0.8, 1.25, 2.5])
            elif kind == 1:  # an unrecorded split from this day on
                close[day:] /= rng.choice([2.0, 3.0, 1.5, 10.0]) * rng.uniform(0.97, 1.03)
            elif kind == 2:  # a broken price: its return is missing
                close[day] = rng.choice([0.0, -1.0, np.nan, np.inf])
            else:  # a flat day: zero returns tie in the medians
                close[day] = close[day - 1]
        open_ = close * np.exp(rng.normal(0, 0.003, n))
        high = np.fmax(open_, close) * (1 + rng.uniform(0, 0.01, n))
        low = np.fmin(open_, close) * (1 - rng.uniform(0, 0.01, n))
        frame = pl.DataFrame(
            {
                "date": [START + timedelta(days=i) for i in range(n)],
                "symbol": f"S{k}",
                "open": open_,
                "high": high,
                "low": low,
                "close": close,
                "volume": rng.integers(0, 10_000, n).astype(float),
                "split_factor": np.where(rng.random(n) < 0.02, 2.0, 1.0),
            }
        )
        parts.append(frame.filter(pl.Series(rng.random(n) > 0.05)))  # missing sessions
    frame = pl.concat(parts)
    return frame.sample(fraction=1.0, shuffle=True, seed=seed) if shuffle else frame


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    window=st.sampled_from([1, 2, 5, 6, 20, 21, 63, 64]),
    threshold=st.sampled_from([1.5, 3.0, 6.0]),
    reversal=st.sampled_from([0.2, 0.75]),
    floor=st.sampled_from([1e-5, 1e-3]),
    shuffle=st.booleans(),
)
def test_fast_checks_equal_the_definition(
    seed: int,
    window: int,
    threshold: float,
    reversal: float,
    floor: float,
    shuffle: bool,
) -> None:
    frame = glitchy(seed, shuffle=shuffle)
    kwargs = {
        "volatility_window": window,
        "spike_threshold": threshold,
        "spike_reversal": reversal,
        "min_volatility": floor,
    }
    fast = validate_prices(frame, **kwargs)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(validation_series, "_robust_z", reference_z)
        patch.setattr(validation_series, "_split_moves", reference_split_moves)
        slow = validate_prices(frame, **kwargs)
    assert_frame_equal(fast.issues, slow.issues)


def returns_frame(seed: int) -> pl.DataFrame:
    """A glitchy frame, sorted, with the log return ``r`` and the ``reversal`` column."""
    ts = validation._check_frame(glitchy(seed).sort("symbol", "date"))
    r = (pl.col("close") / validation_series._shift(pl.col("close"), 1)).log()
    ts = ts.with_columns(pl.when(r.is_finite()).then(r).alias("r"))
    return ts.with_columns(
        (-validation_series._shift(pl.col("r"), -1) / pl.col("r")).alias("reversal")
    )


@pytest.mark.parametrize("window", [1, 2, 5, 6, 20, 63, 64])
def test_fast_z_is_bit_identical_to_the_definition(window: int) -> None:
    # Threshold 0 and a tiny floor: every row with a return is computed and compared.
    kwargs = {"spike_threshold": 0.0, "min_volatility": 1e-300, "volatility_window": window}
    compared = 0
    for seed in range(20):
        ts = returns_frame(seed)
        fast = validation_series._robust_z(ts, candidates=pl.lit(value=True), **kwargs)
        full = reference_z(ts, candidates=pl.lit(value=True), **kwargs)
        computed = fast.is_not_null()
        assert (fast.filter(computed) == full.filter(computed)).all()
        assert full.filter(~computed).fill_null(0.0).max() == 0.0  # only r = 0 or missing
        compared += int(computed.sum())
    assert compared > 1000


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    window=st.integers(1, 12) | st.sampled_from([63, 64]),
    min_share=st.floats(0.0, 1.0),
)
def test_window_medians_equal_polars_rolling_median(
    seed: int, window: int, min_share: float
) -> None:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 90, size=int(rng.integers(1, 6)))
    # Heavy tails, ties and gaps: the two middle values of an even count often differ a lot.
    values = np.round(rng.lognormal(0.0, 2.0, int(lengths.sum())), int(rng.integers(1, 4)))
    values[rng.random(values.size) < rng.choice([0.0, 0.1, 0.4])] = np.nan
    min_samples = max(1, round(min_share * window))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ends = np.cumsum(lengths)
    rows = np.arange(values.size)
    fast = validation_series._window_medians(values, rows, starts, ends, window, min_samples)
    group = np.repeat(np.arange(lengths.size), lengths)
    expected = (
        pl.DataFrame({"x": values, "g": group})
        .select(
            pl.col("x")
            .fill_nan(None)
            .rolling_median(window, min_samples=min_samples, center=True)
            .over("g")
        )
        .to_series()
        .to_numpy()
    )
    np.testing.assert_array_equal(fast, expected)


def test_rows_left_out_of_the_fast_z_cannot_be_spikes() -> None:
    kwargs = {"spike_threshold": 3.0, "min_volatility": 1e-4, "volatility_window": 6}
    reverses = pl.col("reversal") >= 0.5
    spikes = 0
    for seed in range(30):
        ts = returns_frame(seed)
        fast = validation_series._robust_z(ts, candidates=reverses, **kwargs)
        full = reference_z(ts, candidates=reverses, **kwargs)
        left_out = ts.with_columns(full).filter(fast.is_null())
        assert left_out.filter((pl.col("z") > 3.0) & reverses).height == 0
        spikes += int((fast > 3.0).sum())
    assert spikes > 20  # the planted spikes are there


@pytest.mark.realdata
def test_alpha_vantage_findings_equal_the_definition(
    shared_data: Path, av_report: ValidationReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = load_prices(shared_data / "prices" / "alphavantage_raw_adj_1999_2020.parquet")
    monkeypatch.setattr(validation_series, "_robust_z", reference_z)
    monkeypatch.setattr(validation_series, "_split_moves", reference_split_moves)
    assert_frame_equal(av_report.issues, validate_prices(frame).issues)


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
