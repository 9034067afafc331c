"""The canonical long OHLCV frame and the checks every quant-core entry point runs on it.

A canonical frame is a :class:`polars.DataFrame` in long format, one row per (date, symbol):

=============== ========= ===================================================================
column          dtype     meaning
=============== ========= ===================================================================
``date``        Date      trading session (no time zone, no intraday time)
``symbol``      String    instrument identifier
``open``        Float64   session open
``high``        Float64   session high
``low``         Float64   session low
``close``       Float64   session close (as traded unless the source is already adjusted)
``volume``      Float64   shares traded (float so that split-adjusted volume stays exact)
``adj_close``   Float64   optional: split- and dividend-adjusted close
``dividend``    Float64   optional: cash dividend per share with ex-date on this session
``split_factor`` Float64  optional: split ratio effective on this session (2.0 = 2-for-1, 1 = none)
=============== ========= ===================================================================

Frames are sorted by ``(symbol, date)``. Functions that compute per-symbol quantities rely on
that order; :func:`require_canonical` checks it and says how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import polars as pl

from quantdesk.quant_core.errors import DataError, InputError, SchemaError

__all__ = [
    "OPTIONAL_COLUMNS",
    "PRICE_COLUMNS",
    "REQUIRED_COLUMNS",
    "canonical_schema",
    "coerce_as_of",
    "require_canonical",
    "require_columns",
    "select_as_of",
]

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
REQUIRED_COLUMNS: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "symbol": pl.String(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
}
OPTIONAL_COLUMNS: dict[str, pl.DataType] = {
    "adj_close": pl.Float64(),
    "dividend": pl.Float64(),
    "split_factor": pl.Float64(),
}


def canonical_schema(*, optional: Iterable[str] = ()) -> pl.Schema:
    """Return the canonical schema, with the named optional columns appended in order."""
    cols = dict(REQUIRED_COLUMNS)
    for name in optional:
        if name not in OPTIONAL_COLUMNS:
            raise InputError(
                f"Unknown optional column {name!r}.",
                fix=f"use one of {sorted(OPTIONAL_COLUMNS)}.",
            )
        cols[name] = OPTIONAL_COLUMNS[name]
    return pl.Schema(cols)


def require_columns(frame: pl.DataFrame, columns: Iterable[str], *, what: str = "frame") -> None:
    """Raise :class:`SchemaError` naming the columns of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"The {what} lacks column(s) {missing}; it has {frame.columns}.",
            fix="load data with quantdesk.quant_core.load_prices (column mapping) "
            "or rename the columns.",
        )


def require_canonical(
    frame: pl.DataFrame, *, what: str = "price frame", check_sorted: bool = True
) -> None:
    """Check that ``frame`` is a non-empty canonical frame; raise a clear error otherwise.

    Checks: it is a polars DataFrame, not empty, has the required columns with the canonical
    dtypes, has no duplicate ``(symbol, date)`` and (optionally) is sorted by
    ``(symbol, date)``. Value checks (NaN, non-positive prices, ...) belong to
    :func:`quantdesk.quant_core.validate_prices`.

    Raises:
        DataError: empty, duplicated or unsorted input.
        SchemaError: missing columns or wrong dtypes.
    """
    if not isinstance(frame, pl.DataFrame):
        raise InputError(
            f"Expected a polars DataFrame as the {what}, got {type(frame).__name__}.",
            fix="convert with polars.from_pandas(...) or load with load_prices(...).",
        )
    if frame.height == 0:
        raise DataError(
            f"The {what} is empty.",
            fix="check the file, the symbols and the date range (as_of/start) you asked for.",
        )
    require_columns(frame, REQUIRED_COLUMNS, what=what)
    wrong = {
        c: str(frame.schema[c])
        for c, dtype in {**REQUIRED_COLUMNS, **OPTIONAL_COLUMNS}.items()
        if c in frame.columns and frame.schema[c] != dtype
    }
    if wrong:
        raise SchemaError(
            f"The {what} has columns of the wrong type: {wrong}.",
            fix="load it with load_prices(...), which casts to the canonical schema "
            "(date: Date, symbol: String, prices and volume: Float64).",
        )
    # Strictly increasing (symbol, date) proves both order and uniqueness in one cheap pass;
    # the slower duplicate search runs only when that check fails.
    strictly_sorted = frame.select(
        (
            (pl.col("symbol") > pl.col("symbol").shift(1))
            | (
                (pl.col("symbol") == pl.col("symbol").shift(1))
                & (pl.col("date") > pl.col("date").shift(1))
            )
        )
        .fill_null(True)
        .all()
    ).item()
    if strictly_sorted:
        return
    n_dupes = frame.height - frame.select(["symbol", "date"]).n_unique()
    if n_dupes:
        first = (
            frame.filter(pl.struct("symbol", "date").is_duplicated())
            .select("symbol", "date")
            .row(0)
        )
        raise DataError(
            f"The {what} has {n_dupes} duplicate (symbol, date) row(s), first {first}.",
            fix="deduplicate, e.g. frame.unique(['symbol', 'date'], keep='last'), "
            "after checking which row is right.",
        )
    if check_sorted:
        raise DataError(
            f"The {what} is not sorted by (symbol, date).",
            fix="call frame.sort(['symbol', 'date']) first.",
        )


def coerce_as_of(as_of: date | datetime | str | None) -> date | None:
    """Turn an ``as_of`` argument into a :class:`datetime.date` (or ``None``).

    Strings must be ISO dates (``YYYY-MM-DD``). A datetime keeps only its date: a daily bar
    dated ``d`` is treated as known at the close of ``d``.

    Raises:
        InputError: the string is not an ISO date or the type is unsupported.
    """
    if as_of is None or (isinstance(as_of, date) and not isinstance(as_of, datetime)):
        return as_of
    if isinstance(as_of, datetime):
        return as_of.date()
    if isinstance(as_of, str):
        try:
            return date.fromisoformat(as_of.strip())
        except ValueError:
            raise InputError(
                f"as_of={as_of!r} is not an ISO date.",
                fix="write dates as YYYY-MM-DD, e.g. 2019-12-31.",
            ) from None
    raise InputError(
        f"as_of must be a date, datetime or ISO string, got {type(as_of).__name__}: {as_of!r}.",
        fix="pass e.g. datetime.date(2019, 12, 31) or '2019-12-31'.",
    )


def select_as_of(
    frame: pl.DataFrame, as_of: date | datetime | str | None, *, column: str = "date"
) -> pl.DataFrame:
    """Return the rows of ``frame`` dated on or before ``as_of`` (all rows when ``None``).

    This is the point-in-time cut used by every read: nothing dated after the decision time
    is returned.
    """
    cut = coerce_as_of(as_of)
    if cut is None:
        return frame
    require_columns(frame, [column])
    return frame.filter(pl.col(column) <= cut)
