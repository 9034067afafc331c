"""The inner join behind :func:`~quantdesk.quant_core.dataset.make_dataset`, by row positions.

Features usually arrive sorted by ``(symbol, date)`` (per-symbol computations) while a dataset
is sorted by ``(date, symbol)``, so a plain join followed by a sort copies every column three
times (join, null filter, sort) over a million rows. When both frames have unique, non-null
keys, :func:`key_index` instead finds the matching row positions already in ``(date, symbol)``
order, and :func:`join_indexed` checks and filters those positions and gathers each column
once. Null or repeated keys go through :func:`join_general` (polars join, filter, sort), which
reports them as before. Both paths return the same frame for the same input.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import polars as pl

from quantdesk.quant_core.errors import DataError, InsufficientDataError

__all__ = ["RowIndex", "join_general", "join_indexed", "key_index"]


class RowIndex(NamedTuple):
    """Matching row positions in the feature and label frames, in output order."""

    features: np.ndarray
    labels: np.ndarray


def key_index(feature_part: pl.DataFrame, label_part: pl.DataFrame) -> RowIndex | None:
    """Row positions of the inner join on ``(date, symbol)``, in ``(date, symbol)`` order.

    Returns ``None`` when a key is null or repeated on either side; the general join handles
    (and reports) those. Otherwise no frame is joined or sorted: each row gets one integer key
    that orders like ``(date, symbol)`` (day offset times the number of symbols plus the
    symbol's rank), and matching keys give the positions to gather.
    """
    f_date, f_sym, l_date, l_sym = (
        feature_part["date"],
        feature_part["symbol"],
        label_part["date"],
        label_part["symbol"],
    )
    if any(s.null_count() for s in (f_date, f_sym, l_date, l_sym)):
        return None
    if f_date.len() == 0 or l_date.len() == 0:
        return RowIndex(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    symbols = pl.concat([f_sym.unique(), l_sym.unique()]).unique().sort()
    codes = pl.Enum(symbols)  # physical code = rank in the sorted symbol list
    f_day, l_day = f_date.to_physical().to_numpy(), l_date.to_physical().to_numpy()
    first = min(int(f_day.min()), int(l_day.min()))
    n_sym = symbols.len()
    f_key = _keys(f_day, f_sym.cast(codes).to_physical().to_numpy(), first, n_sym)
    l_key = _keys(l_day, l_sym.cast(codes).to_physical().to_numpy(), first, n_sym)
    size = (max(int(f_day.max()), int(l_day.max())) - first + 1) * n_sym
    if size <= 2 * (f_key.size + l_key.size):
        # A dense panel: a position table over every possible key finds the matches in
        # O(rows) and lists them in key order, with no sort.
        f_pos, l_pos = _dense_positions(f_key, size), _dense_positions(l_key, size)
        if f_pos is None or l_pos is None:
            return None
        both = np.flatnonzero((f_pos >= 0) & (l_pos >= 0))
        return RowIndex(f_pos[both], l_pos[both])
    f_order, l_order = _unique_order(f_key), _unique_order(l_key)
    if f_order is None or l_order is None:
        return None
    _, i, j = np.intersect1d(
        f_key[f_order], l_key[l_order], assume_unique=True, return_indices=True
    )
    return RowIndex(f_order[i], l_order[j])


def _keys(day: np.ndarray, code: np.ndarray, first: int, n_sym: int) -> np.ndarray:
    """``(day - first) * n_sym + code`` as int64, computed in place (one allocation)."""
    key = day.astype(np.int64)
    key -= first
    key *= n_sym
    key += code
    return key


def _dense_positions(key: np.ndarray, size: int) -> np.ndarray | None:
    """Row of each key value (-1 where absent), or ``None`` when a key repeats."""
    pos = np.full(size, -1, dtype=np.intp)  # intp: the positions index arrays later
    pos[key] = np.arange(key.size)
    return pos if np.count_nonzero(pos >= 0) == key.size else None


def _unique_order(key: np.ndarray) -> np.ndarray | None:
    """Sorting permutation of ``key``, or ``None`` when a key repeats."""
    if np.all(key[1:] > key[:-1]):  # already in (date, symbol) order
        return np.arange(key.size)
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    return None if np.any(ordered[1:] == ordered[:-1]) else order


def join_indexed(
    feature_part: pl.DataFrame,
    label_part: pl.DataFrame,
    index: RowIndex,
    names: list[str],
    label_column: str,
    drop_null: bool,
) -> tuple[pl.DataFrame, int]:
    """Check the matched rows, drop the missing ones and gather every column once."""
    f_rows, l_rows = index
    n_before = f_rows.size
    if n_before == 0:
        raise _no_overlap(feature_part, label_part)
    # The checks run on the matched rows before the null filter, as in the general join.
    label = label_part["label"]
    bad_label = (label.is_nan() | label.is_infinite()) if label.dtype.is_float() else None
    t_order = label_part["t1"] < label_part["t0"]
    has_inf = feature_part.select(pl.col(names).is_infinite().any()).row(0, named=True)
    counts = {c: _count_at(feature_part[c].is_infinite(), f_rows) for c in names if has_inf[c]}
    _raise_bad_values(
        label_bad=_count_at(bad_label, l_rows),
        t_order=_count_at(t_order, l_rows),
        infinite={c: n for c, n in counts.items() if n},
        label_column=label_column,
    )
    n_null = _count_at(label.is_null(), l_rows)
    if drop_null:
        missing = feature_part.select(
            pl.any_horizontal(*[pl.col(c).is_null() | pl.col(c).is_nan() for c in names])
        ).to_series()
        drop = missing.to_numpy()[f_rows]
        if n_null:
            drop |= label.is_null().to_numpy()[l_rows]
        if drop.any():
            keep = ~drop
            f_rows, l_rows = f_rows[keep], l_rows[keep]
        if f_rows.size == 0:
            raise _all_missing(n_before)
    elif n_null:
        raise _null_labels(n_null, label_column)
    f_take, l_take = pl.Series(f_rows), pl.Series(l_rows)
    joined = pl.concat(
        [
            feature_part.select(pl.all().gather(f_take)),
            label_part.drop("date", "symbol").select(pl.all().gather(l_take)),
        ],
        how="horizontal",
    ).select(_columns(names, label_part))
    # Rows come out in (date, symbol) order; flag it as a sort would.
    return joined.with_columns(pl.col("date").set_sorted()), n_before


def _count_at(flags: pl.Series | None, rows: np.ndarray) -> int:
    """How many of ``rows`` are flagged (null flags count as not flagged)."""
    if flags is None or not flags.any():
        return 0
    return int(np.count_nonzero(flags.fill_null(False).to_numpy()[rows]))


def join_general(
    feature_part: pl.DataFrame,
    label_part: pl.DataFrame,
    names: list[str],
    label_column: str,
    drop_null: bool,
) -> tuple[pl.DataFrame, int]:
    """Join, filter and sort with polars: for keys that are null or repeat."""
    joined = (
        feature_part.lazy()
        .join(label_part.lazy(), on=["date", "symbol"], how="inner")
        .select(_columns(names, label_part))
        .collect()
    )
    n_before = joined.height
    if n_before == 0:
        raise _no_overlap(feature_part, label_part)
    label = pl.col("label").cast(pl.Float64)
    counts = joined.select(
        (label.is_nan() | label.is_infinite()).sum().alias("__label_bad"),
        (pl.col("t1") < pl.col("t0")).sum().alias("__t_order"),
        *[pl.col(c).is_infinite().sum().alias(c) for c in names],
    ).row(0, named=True)
    _raise_bad_values(
        label_bad=counts.pop("__label_bad"),
        t_order=counts.pop("__t_order"),
        infinite={c: n for c, n in counts.items() if n},
        label_column=label_column,
    )
    if drop_null:
        missing = pl.any_horizontal(
            pl.col("label").is_null(), *[pl.col(c).is_null() | pl.col(c).is_nan() for c in names]
        )
        joined = joined.filter(~missing)
        if joined.height == 0:
            raise _all_missing(n_before)
    elif (n_null := joined["label"].null_count()) > 0:
        raise _null_labels(n_null, label_column)
    return joined.sort("date", "symbol"), n_before


def _columns(names: list[str], label_part: pl.DataFrame) -> list[str]:
    extra = ["ret"] if "ret" in label_part.columns else []
    return ["date", "symbol", "t0", "t1", *names, "label", *extra]


def _raise_bad_values(
    *, label_bad: int, t_order: int, infinite: dict[str, int], label_column: str
) -> None:
    if label_bad:
        raise DataError(
            f"The label column {label_column!r} contains NaN or infinite values.",
            fix="undefined labels must be null (or dropped), not NaN: check the label "
            "computation for divisions by zero.",
        )
    if t_order:
        raise DataError(
            f"{t_order} label row(s) have t1 before t0.",
            fix="t1 is the last session the label uses and must be on or after t0.",
        )
    if infinite:
        raise DataError(
            f"Feature column(s) contain infinite values (count per column): {infinite}.",
            fix="guard the feature's denominator or replace inf with null before make_dataset.",
        )


def _no_overlap(feature_part: pl.DataFrame, label_part: pl.DataFrame) -> DataError:
    return DataError(
        f"Features ({_span(feature_part)}) and labels ({_span(label_part)}) share no "
        "(date, symbol) row.",
        fix="compute both from the same price frame and symbols; check date dtypes.",
    )


def _all_missing(n_before: int) -> InsufficientDataError:
    return InsufficientDataError(
        f"All {n_before} joined rows have a null label or a null/NaN feature.",
        fix="check the feature warm-up windows and the label horizon against the data length.",
    )


def _null_labels(n_null: int, label_column: str) -> DataError:
    return DataError(
        f"{n_null} joined row(s) have a null {label_column!r}.",
        fix="pass drop_null=True or drop rows without a label first.",
    )


def _span(frame: pl.DataFrame) -> str:
    return f"{frame.height} rows, {frame['date'].min()} to {frame['date'].max()}"
