"""Data-quality checks on canonical price frames: vendor glitches, gaps and broken rows.

:func:`validate_prices` never repairs anything; it returns a :class:`ValidationReport` whose
``issues`` frame has one row per finding (``kind``, ``symbol``, ``date``, ``value``,
``severity``, ``detail``). Severities mean:

* ``error``: the row cannot be right (non-positive or non-finite price, high below low, close
  or open outside the bar, duplicated or unsorted rows), or the evidence of a vendor glitch
  is overwhelming (an *island* bad print, a jump matching a split ratio to 0.5%).
  ``raise_on_error`` refuses these.
* ``warning``: suspicious but possibly genuine (spike-and-reverse days inside the
  neighbours' ranges, frozen O=H=L=C bars, jumps near a split ratio, missing sessions).

Time-series checks (spikes, splits, gaps) run per symbol on a sorted copy without duplicated
sessions. Returns are total returns in raw-price terms, ``(C[t] + D[t]) * S[t] / C[t-1]``,
with ``D``/``S`` from the ``dividend``/``split_factor`` columns when present, so recorded
events are not mistaken for jumps. Robust volatility is ``1.4826 * median |r|`` over a
centred ``volatility_window`` (whole-history median when too short), floored at
``min_volatility`` so that tick-size noise of near-cash ETFs (BIL moves 0.01 on 91) is not a
spike. The checks look at the whole history (centred windows); they are a data audit, not a
point-in-time signal.

Thresholds were set on the three real files of the shared data folder (see the tests):
Alpha Vantage yields 3 island bad prints (EFA 2014-07-03, XLP 2014-08-05, XLV 2014-08-08,
all absent from Yahoo), frozen bars (e.g. BA 2009-11-03, NFLX 2013-10-22 with 25.9M shares)
and warnings on genuine crisis moves; the two Yahoo files yield no errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from quantdesk.quant_core.errors import DataError, InputError, SchemaError
from quantdesk.quant_core.schema import REQUIRED_COLUMNS, require_columns
from quantdesk.quant_core.validation_series import issues_frame, pick, series_checks

__all__ = [
    "DEFAULT_SPLIT_RATIOS",
    "ISSUE_KINDS",
    "ISSUE_SCHEMA",
    "ValidationReport",
    "validate_prices",
]

ISSUE_KINDS: tuple[str, ...] = (
    "non_positive_price",
    "non_finite_value",
    "negative_volume",
    "invalid_corporate_action",
    "high_below_low",
    "close_outside_range",
    "open_outside_range",
    "duplicate_row",
    "unsorted",
    "missing_session",
    "frozen_bar",
    "bad_print",
    "unadjusted_split",
)
ISSUE_SCHEMA = pl.Schema(
    {
        "kind": pl.String(),
        "symbol": pl.String(),
        "date": pl.Date(),
        "value": pl.Float64(),
        "severity": pl.String(),
        "detail": pl.String(),
    }
)
DEFAULT_SPLIT_RATIOS: tuple[float, ...] = (1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 8.0, 10.0, 20.0)
_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}
_BY_SEVERITY = pl.col("severity").replace_strict(_SEVERITY_RANK, return_dtype=pl.Int8)
_PRICES = ("open", "high", "low", "close")


@dataclass(frozen=True)
class ValidationReport:
    """Findings of :func:`validate_prices`.

    Attributes:
        issues: One row per finding, columns ``kind, symbol, date, value, severity, detail``
            (see :data:`ISSUE_SCHEMA`), sorted by severity, kind, symbol and date.
        n_rows: Rows of the validated frame.
        n_symbols: Distinct symbols of the validated frame.
    """

    issues: pl.DataFrame
    n_rows: int
    n_symbols: int

    @property
    def errors(self) -> pl.DataFrame:
        """Issues of severity ``error``."""
        return self.issues.filter(pl.col("severity") == "error")

    @property
    def warnings(self) -> pl.DataFrame:
        """Issues of severity ``warning``."""
        return self.issues.filter(pl.col("severity") == "warning")

    @property
    def ok(self) -> bool:
        """True when there is no issue of severity ``error``."""
        return self.errors.height == 0

    def summary(self) -> pl.DataFrame:
        """Count issues by ``kind`` and ``severity`` (columns ``kind, severity, count``)."""
        return (
            self.issues.group_by("kind", "severity")
            .agg(pl.len().cast(pl.Int64).alias("count"))
            .sort(_BY_SEVERITY, "kind")
        )

    def to_markdown(self, *, max_rows: int = 50) -> str:
        """Render the counts and the first ``max_rows`` issues as a markdown report."""
        n_err, n_warn = self.errors.height, self.warnings.height
        n_info = self.issues.height - n_err - n_warn
        lines = [
            f"**Price validation**: {self.n_rows:,} rows, {self.n_symbols} symbols: "
            f"{n_err} error(s), {n_warn} warning(s), {n_info} info.",
        ]
        if self.issues.height == 0:
            return "\n".join([*lines, "", "No issues found."])
        lines += ["", "| kind | severity | count |", "|---|---|---:|"]
        lines += [f"| {k} | {s} | {n:,} |" for k, s, n in self.summary().iter_rows()]
        shown = self.issues.head(max(max_rows, 0))
        if shown.height:
            lines += [
                "",
                "| severity | kind | symbol | date | value | detail |",
                "|---|---|---|---|---:|---|",
            ]
            for kind, sym, day, value, severity, detail in shown.iter_rows():
                shown_value = "" if value is None else f"{value:.6g}"
                text = (detail or "").replace("|", "\\|")
                lines.append(f"| {severity} | {kind} | {sym} | {day} | {shown_value} | {text} |")
        if self.issues.height > shown.height:
            lines.append(f"\n... {self.issues.height - shown.height:,} more issue(s).")
        return "\n".join(lines)

    def raise_on_error(self) -> None:
        """Raise :class:`DataError` naming the first errors when there are any.

        Raises:
            DataError: at least one issue has severity ``error``.
        """
        errors = self.errors
        if errors.height == 0:
            return
        first = "; ".join(
            f"{kind} {sym} {day} ({detail})"
            for kind, sym, day, _, _, detail in errors.head(3).iter_rows()
        )
        raise DataError(
            f"Price validation found {errors.height} error(s), first: {first}.",
            fix="inspect report.errors or report.to_markdown(), then repair or drop those "
            "rows (duplicates: frame.unique(['symbol', 'date']) after checking which row is "
            "right; unsorted: frame.sort(['symbol', 'date'])).",
        )


def _row_checks(frame: pl.DataFrame, range_tolerance: float) -> list[pl.DataFrame]:
    high, low, vol, present = pl.col("high"), pl.col("low"), pl.col("volume"), frame.columns
    rules: list[tuple] = []  # (kind, severity, condition, value, template, *args)
    for name in (*_PRICES, "volume", "adj_close", "dividend", "split_factor"):
        if name in present:
            col = pl.col(name)
            # Missing corporate actions are read as "no event" by adjust_prices.
            severity = "warning" if name in ("dividend", "split_factor") else "error"
            what = pl.when(col.is_null()).then(pl.lit("missing")).otherwise(col.cast(pl.String))
            bad = col.is_null() | ~col.is_finite()
            rules.append(("non_finite_value", severity, bad, col, f"{name} is {{}}", what))
    rules += [
        ("non_finite_value", "error", pl.col(n).is_null(), pl.lit(None), f"{n} is missing")
        for n in ("date", "symbol")
    ]
    rules += [
        ("non_positive_price", "error", pl.col(n) <= 0, pl.col(n), f"{n} = {{}}", pl.col(n))
        for n in (*_PRICES, "adj_close")
        if n in present
    ]
    rules.append(("negative_volume", "error", vol < 0, vol, "volume = {}", vol))
    for name, bad in (
        ("dividend", pl.col("dividend") < 0),
        ("split_factor", pl.col("split_factor") <= 0),
    ):
        if name in present:
            col = pl.col(name)
            rules.append(("invalid_corporate_action", "error", bad, col, f"{name} = {{}}", col))
    rules.append(
        ("high_below_low", "error", high < low, high / low - 1, "high {} < low {}", high, low)
    )
    for name in ("close", "open"):
        col = pl.col(name)
        # Separately adjusted columns round differently (Yahoo: ~4e-16), hence the tolerance.
        outside = (col > high * (1 + range_tolerance)) | (col < low * (1 - range_tolerance))
        template = f"{name} {{}} outside [low {{}}, high {{}}]"
        rules.append((f"{name}_outside_range", "error", outside, col, template, col, low, high))
    frozen = (pl.col("open") == high) & (high == low) & (low == pl.col("close")) & (vol > 0)
    template = "open = high = low = close = {} with volume {}"
    rules.append(("frozen_bar", "warning", frozen, vol, template, pl.col("close"), vol))
    return [
        issues_frame(frame.filter(when), kind, severity, value, *detail)
        for kind, severity, when, value, *detail in rules
    ]


def _strictly_ordered(frame: pl.DataFrame) -> bool:
    """Whether (symbol, date) strictly increases row by row with no null key.

    One pass over two columns proves the frame sorted and free of duplicates, so the order
    checks and the sorted, deduplicated copy for the time-series checks can be skipped.
    """
    if frame.height == 0:
        return True
    sym, day = pl.col("symbol"), pl.col("date")
    step = (sym > sym.shift(1)) | ((sym == sym.shift(1)) & (day > day.shift(1)))
    first = pl.int_range(pl.len()) == 0
    ok = pl.when(first).then(sym.is_not_null() & day.is_not_null()).otherwise(step.fill_null(False))
    return bool(frame.select(ok.all()).item())


def _order_checks(frame: pl.DataFrame) -> list[pl.DataFrame]:
    keyed = frame.drop_nulls(["symbol", "date"])
    dupes = (
        keyed.group_by("symbol", "date", maintain_order=True)
        .agg(pl.len().alias("n"), pl.struct(pl.all()).n_unique().alias("versions"))
        .filter(pl.col("n") > 1)
    )
    same = pick(pl.col("versions") == 1, "identical", "conflicting values")
    prev_sym, prev_date = pl.col("symbol").shift(1), pl.col("date").shift(1)
    backwards = (pl.col("symbol") < prev_sym) | (
        (pl.col("symbol") == prev_sym) & (pl.col("date") < prev_date)
    )
    broken = (
        keyed.select("symbol", "date", pl.format("{} {}", prev_sym, prev_date).alias("after"))
        .filter(backwards.fill_null(False))
        .group_by("symbol", maintain_order=True)
        .agg(pl.col("date", "after").first(), pl.len().alias("n"))
    )
    template = "{} row(s) of this symbol out of (symbol, date) order; first here, after {}"
    n = pl.col("n")
    return [
        issues_frame(dupes, "duplicate_row", "error", n, "{} rows for this session ({})", n, same),
        issues_frame(broken, "unsorted", "error", n, template, n, pl.col("after")),
    ]


def _calendar_series(calendar: object) -> pl.Series:
    if isinstance(calendar, pl.DataFrame):
        require_columns(calendar, ["date"], what="calendar")
        calendar = calendar["date"]
    series = pl.Series("date", calendar) if not isinstance(calendar, pl.Series) else calendar
    series = series.dt.date() if isinstance(series.dtype, pl.Datetime) else series
    if series.dtype != pl.Date or series.drop_nulls().len() == 0:
        raise InputError(
            f"calendar must hold dates; got {series.drop_nulls().len()} of dtype {series.dtype}.",
            fix="pass a list of datetime.date, a Date Series or a frame with a 'date' column.",
        )
    return series.drop_nulls().unique().sort().alias("date")


def _missing_sessions(ts: pl.DataFrame, calendar: pl.Series | None) -> pl.DataFrame:
    source = "the calendar passed in" if calendar is not None else "the union of all symbols"
    cal = (calendar if calendar is not None else ts["date"].unique().sort()).to_frame("date")
    bounds = ts.group_by("symbol").agg(
        pl.col("date").min().alias("first"),
        pl.col("date").max().alias("last"),
        pl.len().alias("rows"),
    )
    # A symbol with as many rows as calendar sessions in its span misses none (ts has unique
    # (symbol, date) keys, and rows off the calendar only make it look fuller): only the
    # others need the session-by-session comparison.
    days = cal["date"].to_numpy()
    span = np.searchsorted(days, bounds["last"].to_numpy(), side="right") - np.searchsorted(
        days, bounds["first"].to_numpy(), side="left"
    )
    bounds = bounds.filter(
        pl.Series(bounds["rows"].to_numpy() < span) | pl.lit(calendar is not None)
    )
    expected = bounds.join_where(
        cal, pl.col("date") >= pl.col("first"), pl.col("date") <= pl.col("last")
    ).select("symbol", "date")
    missing = expected
    if expected.height:  # only the few symbols with gaps: no hash table of every row
        listed = pl.col("symbol").is_in(bounds["symbol"].implode())
        have = ts.select("symbol", "date").filter(listed)
        missing = expected.join(have, on=["symbol", "date"], how="anti")
    detail = f"no row on this session of {source}"
    return issues_frame(
        missing.sort("symbol", "date"), "missing_session", "warning", pl.lit(None), detail
    )


def _check_frame(frame: pl.DataFrame) -> pl.DataFrame:
    if not isinstance(frame, pl.DataFrame):
        raise InputError(
            f"Expected a polars DataFrame of prices, got {type(frame).__name__}.",
            fix="convert with polars.from_pandas(...) or load with load_prices(...).",
        )
    if frame.height == 0:
        raise DataError(
            "The price frame to validate is empty.",
            fix="check the file, the symbols and the date range (as_of/start) you asked for.",
        )
    require_columns(frame, REQUIRED_COLUMNS, what="price frame to validate")
    wanted = {"date": pl.Date(), "symbol": pl.String()}
    wrong = {c: str(frame.schema[c]) for c, t in wanted.items() if frame.schema[c] != t}
    numeric = [
        c
        for c in (*REQUIRED_COLUMNS, "adj_close", "dividend", "split_factor")
        if c in frame.columns and c not in wanted
    ]
    wrong |= {c: str(frame.schema[c]) for c in numeric if not frame.schema[c].is_numeric()}
    if wrong:
        raise SchemaError(
            f"The price frame to validate has columns of the wrong type: {wrong}.",
            fix="load it with load_prices(...), which casts to the canonical schema "
            "(date: Date, symbol: String, prices and volume: Float64).",
        )
    cast = frame.select("date", "symbol", *numeric).with_columns(pl.col(numeric).cast(pl.Float64))
    return cast.rechunk()


def validate_prices(
    frame: pl.DataFrame,
    *,
    calendar: Sequence[date] | pl.Series | pl.DataFrame | None = None,
    spike_threshold: float = 6.0,
    spike_reversal: float = 0.75,
    min_volatility: float = 1e-3,
    volatility_window: int = 63,
    split_ratios: Sequence[float] = DEFAULT_SPLIT_RATIOS,
    split_tolerance: float = 0.025,
    range_tolerance: float = 1e-9,
) -> ValidationReport:
    """Check a price frame for broken rows, vendor glitches and gaps.

    Only the schema is enforced; unsorted, duplicated, NaN or negative data are what the
    report is for.

    Args:
        frame: Frame with the canonical required columns (``date`` Date, ``symbol`` String,
            numeric ``open/high/low/close/volume``); optional ``adj_close``, ``dividend`` and
            ``split_factor`` are used when present.
        calendar: Trading sessions to expect. Default: the union of the dates of all
            symbols. Each symbol is only checked between its own first and last date.
        spike_threshold: ``bad_print`` needs ``|r| > spike_threshold`` robust sds.
        spike_reversal: ... and the next session must reverse at least this fraction of it.
        min_volatility: Floor of the robust daily volatility (log-return units).
        volatility_window: Sessions of the centred window of the robust volatility.
        split_ratios: Split ratios (> 1) whose moves ``1/q`` and reverse moves ``q`` are
            checked for ``unadjusted_split``.
        split_tolerance: Largest ``|log(move) - log(ratio)|`` reported as a split.
        range_tolerance: Relative slack for ``close``/``open`` outside ``[low, high]``.

    Returns:
        The :class:`ValidationReport`.

    Raises:
        InputError: not a DataFrame or a bad argument.
        SchemaError: missing columns or wrong dtypes.
        DataError: empty frame.
    """
    checks = {
        "spike_threshold": (spike_threshold, spike_threshold > 0),
        "spike_reversal": (spike_reversal, 0 < spike_reversal <= 2),
        "min_volatility": (min_volatility, min_volatility > 0),
        "volatility_window": (volatility_window, volatility_window >= 1),
        "split_ratios": (split_ratios, bool(split_ratios) and all(q > 1 for q in split_ratios)),
        "split_tolerance": (split_tolerance, split_tolerance > 0),
        "range_tolerance": (range_tolerance, range_tolerance >= 0),
    }
    bad = {name: value for name, (value, good) in checks.items() if not good}
    if bad:
        raise InputError(
            f"Invalid validation setting(s): {bad}.",
            fix="use positive thresholds, 0 < spike_reversal <= 2, range_tolerance >= 0 and "
            "split ratios above 1 (e.g. 2.0 for 2-for-1).",
        )
    cal = _calendar_series(calendar) if calendar is not None else None
    data = _check_frame(frame)
    key = ["symbol", "date"]
    if _strictly_ordered(data):
        # sorted and unique already (the usual case): no copy, no duplicate search
        ts, order_issues = data, []
    else:
        ts = data.drop_nulls(key).unique(key, keep="first").sort(key)
        order_issues = _order_checks(data)
    found = [*_row_checks(data, range_tolerance), *order_issues]
    found.append(_missing_sessions(ts, cal))
    found += series_checks(
        ts,
        spike_threshold=spike_threshold,
        spike_reversal=spike_reversal,
        min_volatility=min_volatility,
        volatility_window=volatility_window,
        split_ratios=split_ratios,
        split_tolerance=split_tolerance,
    )
    issues = pl.concat([f.cast(ISSUE_SCHEMA) for f in found])
    issues = issues.sort(_BY_SEVERITY, "kind", "symbol", "date", nulls_last=True)
    return ValidationReport(issues=issues, n_rows=frame.height, n_symbols=data["symbol"].n_unique())
