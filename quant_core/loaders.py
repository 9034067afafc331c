"""Load price files into the canonical long frame (see :mod:`quantdesk.quant_core.schema`).

One entry point, :func:`load_prices`, reads a parquet or CSV file, or a folder of them (for
example one ``AAPL.csv`` per ticker), maps vendor column names onto the canonical ones, casts
to the canonical dtypes and returns the frame sorted by ``(symbol, date)``.

Column names are matched case-, space- and underscore-insensitively against well-known
aliases (``Ticker``, ``Adj Close``, ``adjusted_close``, ``dividend_amount``,
``split_coefficient``, ``Stock Splits`` ...). An explicit ``columns={"source": "canonical"}``
mapping wins over the aliases. Columns that map to no canonical name are dropped.

The loader sorts but never deduplicates or repairs rows: duplicated sessions, NaNs and vendor
glitches come through unchanged so that :func:`quantdesk.quant_core.validation.validate_prices`
can report them. The one value rewrite is ``split_factor`` 0 -> 1, because yfinance writes 0
for "no split" on every ordinary session.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from pathlib import Path

import polars as pl

from quantdesk.quant_core.errors import DataError, InputError, SchemaError
from quantdesk.quant_core.schema import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    coerce_as_of,
    select_as_of,
)

__all__ = ["COLUMN_ALIASES", "SUPPORTED_SUFFIXES", "load_prices"]

SUPPORTED_SUFFIXES: tuple[str, ...] = (".parquet", ".pq", ".csv")
CANONICAL_COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)

# Keys are normalised names (lower case, without spaces, underscores, dashes or dots).
COLUMN_ALIASES: dict[str, str] = {
    "date": "date",
    "timestamp": "date",
    "datetime": "date",
    "symbol": "symbol",
    "ticker": "symbol",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
    "adjclose": "adj_close",
    "adjustedclose": "adj_close",
    "dividend": "dividend",
    "dividends": "dividend",
    "dividendamount": "dividend",
    "splitfactor": "split_factor",
    "splitcoefficient": "split_factor",
    "stocksplits": "split_factor",
    "splits": "split_factor",
    "splitratio": "split_factor",
}

# Day-first formats are deliberately absent: 01/02/2020 must not silently mean 1 February.
_DATE_FORMATS: tuple[str, ...] = ("%Y-%m-%d", "%Y%m%d", "%Y/%m/%d", "%m/%d/%Y")
_FLOAT_COLUMNS = [c for c in CANONICAL_COLUMNS if c not in ("date", "symbol")]


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-.]+", "", name.strip().lower())


def _as_date(value: date | datetime | str | None, name: str) -> date | None:
    try:
        return coerce_as_of(value)
    except InputError as exc:
        raise InputError(exc.message.replace("as_of", name, 1), fix=exc.fix) from None


def _list_files(source: Path) -> list[Path]:
    if not source.exists():
        raise InputError(
            f"Price source {str(source)!r} does not exist.",
            fix="pass an existing parquet/CSV file or a folder of them.",
        )
    if source.is_file():
        if source.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise InputError(
                f"Unsupported price file suffix {source.suffix!r} ({source.name}).",
                fix=f"use one of {list(SUPPORTED_SUFFIXES)} (convert other formats first).",
            )
        return [source]
    files = sorted(
        p
        for p in source.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUPPORTED_SUFFIXES
    )
    if not files:
        raise InputError(
            f"The folder {str(source)!r} holds no {'/'.join(SUPPORTED_SUFFIXES)} files.",
            fix="point at a folder of per-ticker CSV or parquet files, or at one file.",
        )
    return files


def _read(path: Path) -> pl.DataFrame:
    try:
        if path.suffix.lower() == ".csv":
            # Everything as text: dates like 20200102 must not become integers, and the
            # numeric casts below report bad cells by column.
            return pl.read_csv(path, infer_schema=False)
        return pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(
            f"Could not read price file {str(path)!r}: {exc}",
            fix="check that the file is a valid CSV (with a header row) or parquet file.",
        ) from exc


def _column_mapping(
    names: list[str], explicit: Mapping[str, str] | None, path: Path
) -> dict[str, str]:
    """Return ``{source column: canonical column}`` for one file."""
    mapping: dict[str, str] = {}
    if explicit:
        bad_targets = sorted({v for v in explicit.values() if v not in CANONICAL_COLUMNS})
        if bad_targets:
            raise InputError(
                f"columns= maps onto unknown canonical name(s) {bad_targets}.",
                fix=f"map onto one of {list(CANONICAL_COLUMNS)}.",
            )
        missing = [k for k in explicit if k not in names]
        if missing:
            raise InputError(
                f"columns= names source column(s) {missing} that {path.name} lacks; "
                f"it has {names}.",
                fix="use the exact column names of the file as keys.",
            )
        mapping.update(explicit)
    taken = set(mapping.values())
    auto: dict[str, list[str]] = {}
    for name in names:
        target = COLUMN_ALIASES.get(_normalise(name))
        if name in mapping or target is None or target in taken:
            continue
        auto.setdefault(target, []).append(name)
    clashes = {t: cols for t, cols in auto.items() if len(cols) > 1}
    if clashes:
        raise InputError(
            f"{path.name} has several columns for the same field: {clashes}.",
            fix="say which one to use, e.g. columns={'Close': 'close'}.",
        )
    mapping.update({cols[0]: target for target, cols in auto.items()})
    return mapping


def _parse_dates(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    dtype = frame.schema["date"]
    if dtype.is_integer():
        frame = frame.with_columns(pl.col("date").cast(pl.String))
        dtype = pl.String()
    if dtype == pl.Date:
        return frame
    if isinstance(dtype, pl.Datetime):
        # A daily bar belongs to its local session date, so a zoned stamp keeps its wall date.
        return frame.with_columns(pl.col("date").dt.date())
    if dtype != pl.String:
        raise SchemaError(
            f"The date column of {path.name} has type {dtype}; expected a date, datetime, "
            "text or YYYYMMDD integer column.",
            fix="convert it to ISO text (YYYY-MM-DD) or a date before loading.",
        )
    text = pl.col("date").str.strip_chars()
    # The first ten characters cover ISO stamps with a time or a UTC offset appended.
    attempts = [text.str.slice(0, 10).str.to_date(_DATE_FORMATS[0], strict=False)]
    attempts += [text.str.to_date(fmt, strict=False) for fmt in _DATE_FORMATS[1:]]
    parsed = frame.with_columns(pl.coalesce(attempts).alias("__parsed"))
    bad = parsed.filter(pl.col("__parsed").is_null())["date"]
    if bad.len():
        examples = bad.unique(maintain_order=True).head(3).to_list()
        raise DataError(
            f"{bad.len()} date value(s) in {path.name} could not be parsed, e.g. {examples}.",
            fix="write dates as YYYY-MM-DD (or YYYYMMDD, MM/DD/YYYY), "
            "or map the right column with columns={...: 'date'}.",
        )
    return parsed.with_columns(pl.col("__parsed").alias("date")).drop("__parsed")


def _to_float(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    present = [c for c in _FLOAT_COLUMNS if c in frame.columns]
    try:
        frame = frame.with_columns(pl.col(present).cast(pl.Float64, strict=True))
    except pl.exceptions.InvalidOperationError as exc:
        raise DataError(
            f"A numeric column of {path.name} holds non-numeric text: {exc}",
            fix="clean the column (placeholders like '-' or 'n/a' should be empty) "
            "or drop it from the file.",
        ) from exc
    if "split_factor" in frame.columns:
        # yfinance writes 0 for "no split" on ordinary sessions; a split ratio is never 0.
        frame = frame.with_columns(
            pl.when(pl.col("split_factor") == 0.0)
            .then(1.0)
            .otherwise(pl.col("split_factor"))
            .alias("split_factor")
        )
    return frame


def _load_file(
    path: Path,
    raw: pl.DataFrame,
    columns: Mapping[str, str] | None,
    symbol: str | None,
) -> pl.DataFrame:
    mapping = _column_mapping(raw.columns, columns, path)
    frame = raw.select([pl.col(src).alias(dst) for src, dst in mapping.items()])
    if "symbol" not in frame.columns:
        frame = frame.with_columns(pl.lit(symbol or path.stem, dtype=pl.String).alias("symbol"))
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise SchemaError(
            f"{path.name} lacks column(s) {missing} after name matching; it has {raw.columns}.",
            fix="map them explicitly, e.g. columns={'Px Last': 'close'}.",
        )
    if frame.height == 0:
        raise DataError(f"{path.name} has no rows.", fix="check the file or remove it.")
    frame = _parse_dates(frame, path)
    frame = frame.with_columns(pl.col("symbol").cast(pl.String))
    frame = _to_float(frame, path)
    return frame.select([c for c in CANONICAL_COLUMNS if c in frame.columns])


def _has_symbol_column(path: Path, columns: Mapping[str, str] | None) -> bool:
    try:
        if path.suffix.lower() == ".csv":
            names = pl.read_csv(path, n_rows=0).columns
        else:
            names = list(pl.read_parquet_schema(path))
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataError(
            f"Could not read the header of {str(path)!r}: {exc}",
            fix="check that the file is a valid CSV (with a header row) or parquet file.",
        ) from exc
    if columns and "symbol" in columns.values():
        return True
    return any(COLUMN_ALIASES.get(_normalise(n)) == "symbol" for n in names)


def _normalise_symbols(symbols: str | Iterable[str] | None) -> list[str] | None:
    if symbols is None:
        return None
    wanted = [symbols] if isinstance(symbols, str) else list(symbols)
    if not wanted or not all(isinstance(s, str) and s for s in wanted):
        raise InputError(
            f"symbols={symbols!r} must be a non-empty string or list of non-empty strings.",
            fix="pass e.g. symbols=['AAPL', 'MSFT'] or leave it out for all symbols.",
        )
    return list(dict.fromkeys(wanted))


def load_prices(
    source: str | Path,
    *,
    columns: Mapping[str, str] | None = None,
    symbols: str | Iterable[str] | None = None,
    start: date | datetime | str | None = None,
    as_of: date | datetime | str | None = None,
    symbol: str | None = None,
) -> pl.DataFrame:
    """Load a price file or folder into the canonical frame.

    Args:
        source: A ``.parquet``/``.pq``/``.csv`` file, or a folder of such files (for example
            one file per ticker).
        columns: Explicit ``{source column: canonical column}`` mapping; it overrides the
            automatic aliases (``Ticker`` -> ``symbol``, ``Adj Close`` -> ``adj_close``, ...).
        symbols: Keep only these symbols. Unknown ones raise :class:`InputError`.
        start: First date to keep (inclusive).
        as_of: Decision date: nothing dated after it is returned (point in time).
        symbol: Symbol for a single file without a symbol column. Without it, the file stem
            (``AAPL`` for ``AAPL.csv``) is used, as for every file of a folder.

    Returns:
        The canonical frame (required columns plus whichever optional ones the source
        has), sorted by ``(symbol, date)``; duplicated rows are kept for validation.

    Raises:
        InputError: missing path, unsupported suffix, bad arguments, unknown symbols.
        SchemaError: required columns missing after name matching.
        DataError: unreadable file, unparseable dates or numbers, empty result.
    """
    path = Path(source).expanduser()
    start_date = _as_date(start, "start")
    cut = coerce_as_of(as_of)
    if start_date is not None and cut is not None and start_date > cut:
        raise InputError(
            f"start={start_date} is after as_of={cut}.",
            fix="pass a start on or before as_of.",
        )
    wanted = _normalise_symbols(symbols)
    files = _list_files(path)
    if symbol is not None and (path.is_dir() or _has_symbol_column(files[0], columns)):
        raise InputError(
            f"symbol={symbol!r} only names a single file without a symbol column.",
            fix="use symbols=[...] to select symbols from this source.",
        )
    frames: list[pl.DataFrame] = []
    skipped: list[str] = []
    for file in files:
        # Per-ticker files that cannot hold a wanted symbol are not worth reading.
        if (
            wanted is not None
            and len(files) > 1
            and file.stem not in wanted
            and not _has_symbol_column(file, columns)
        ):
            skipped.append(file.stem)
            continue
        frames.append(_load_file(file, _read(file), columns, symbol))
    frame = (
        pl.concat(frames, how="diagonal_relaxed")
        if frames
        else pl.DataFrame(schema=REQUIRED_COLUMNS)
    )
    if wanted is not None:
        available = sorted(set(frame["symbol"].unique().to_list()) | set(skipped))
        unknown = [s for s in wanted if s not in available]
        if unknown:
            raise InputError(
                f"Unknown symbol(s) {unknown} in {path.name}; {len(available)} available, "
                f"e.g. {available[:10]}.",
                fix="check the spelling (symbols are case-sensitive) or drop them.",
            )
        frame = frame.filter(pl.col("symbol").is_in(wanted))
    if start_date is not None:
        frame = frame.filter(pl.col("date") >= start_date)
    frame = select_as_of(frame, cut)
    if frame.height == 0:
        raise DataError(
            f"No rows left in {path.name} for symbols={wanted}, start={start_date}, as_of={cut}.",
            fix="widen the date range (start/as_of) or check the symbols.",
        )
    ordered = [c for c in CANONICAL_COLUMNS if c in frame.columns]
    return frame.select(ordered).sort(["symbol", "date"], maintain_order=True)
