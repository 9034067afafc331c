"""Join a feature frame and a label frame into one modelling dataset.

A :class:`Dataset` is the single input of model training: one row per ``(date, symbol)`` that
has both features and a label, sorted by ``(date, symbol)`` so that positional row indices from
a date-based splitter address contiguous blocks. The frame carries the label interval
``[t0, t1]`` that purged cross-validation needs.

Timing: a feature row dated ``t`` must use data up to the close of ``t`` only and a label row
dated ``t`` uses data in ``(t, t1]``; the join pairs them on ``(date, symbol)`` and never shifts
either side. Rows whose label runs past the end of the data are absent from the label frame and
so drop out of the inner join.

Missing values: null labels and rows with a null or NaN feature are dropped when
``drop_null=True`` (the default). A NaN or infinite *label*, or an infinite feature, is always a
:class:`DataError`: those come from a division by zero upstream rather than from a genuinely
missing observation, and silently dropping them would hide the bug.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from quantdesk.quant_core.dataset_join import join_general, join_indexed, key_index
from quantdesk.quant_core.errors import DataError, InputError, SchemaError
from quantdesk.quant_core.schema import require_columns

__all__ = ["KEY_COLUMNS", "Dataset", "frame_hash", "make_dataset"]

#: Columns that identify a row or describe its label; never used as features.
KEY_COLUMNS: tuple[str, ...] = ("date", "symbol", "t0", "t1", "label", "ret")


@dataclass(frozen=True)
class Dataset:
    """Features and labels aligned on ``(date, symbol)``, ready for fold-by-fold training.

    Attributes:
        frame: Columns ``date, symbol, t0, t1, <features...>, label`` and ``ret`` when the label
            frame had it; sorted by ``(date, symbol)``; feature columns are Float64.
        feature_names: Feature columns in model order.
        label_name: Name of the label column in the source label frame (``label`` in ``frame``).
        data_hash: SHA-256 of the frame content, stable across runs and processes.
        n_dropped: Joined rows removed because of a null label or a null/NaN feature.
    """

    frame: pl.DataFrame
    feature_names: tuple[str, ...]
    label_name: str
    data_hash: str
    n_dropped: int = 0

    @property
    def n_rows(self) -> int:
        """Number of rows."""
        return self.frame.height

    @property
    def n_dates(self) -> int:
        """Number of distinct dates."""
        return self.frame["date"].n_unique()

    @property
    def date_range(self) -> tuple[date, date]:
        """First and last date."""
        return self.frame["date"].min(), self.frame["date"].max()  # type: ignore[return-value]

    @property
    def has_ret(self) -> bool:
        """Whether the frame carries the realised forward return ``ret``."""
        return "ret" in self.frame.columns

    def X(self, dtype: type[np.floating] = np.float64) -> np.ndarray:  # noqa: N802 (sklearn's X)
        """Return the feature matrix, shape ``(n_rows, n_features)``, row-major.

        Each call converts the frame again: convert once per training run and index the
        result per fold. Null features become NaN.

        Args:
            dtype: ``np.float64`` (default) or ``np.float32`` to halve memory.
        """
        if dtype not in (np.float64, np.float32):
            raise InputError(
                f"dtype={dtype!r} is not supported for the feature matrix.",
                fix="use numpy.float64 or numpy.float32.",
            )
        matrix = self.frame.select(self.feature_names).to_numpy(order="c")
        return np.ascontiguousarray(matrix, dtype=dtype)

    def y(self) -> np.ndarray:
        """Return the label vector (float64 for real labels, int64 for class labels)."""
        return self.frame["label"].to_numpy()

    def cv_frame(self) -> pl.DataFrame:
        """Return ``date, symbol, t0, t1``: the input a purged splitter's ``split`` expects."""
        return self.frame.select("date", "symbol", "t0", "t1")


def make_dataset(
    features: pl.DataFrame,
    labels: pl.DataFrame,
    *,
    feature_names: list[str] | tuple[str, ...] | None = None,
    label_column: str = "label",
    drop_null: bool = True,
) -> Dataset:
    """Inner-join features and labels on ``(date, symbol)`` and check the result.

    Args:
        features: ``date, symbol`` and numeric feature columns.
        labels: ``date, symbol, <label_column>`` and optionally ``t0``, ``t1``, ``ret``
            (``t0`` defaults to ``date``, ``t1`` to ``t0``).
        feature_names: Feature columns to use, in this order. Default: every numeric column of
            ``features`` except the key columns ``date, symbol, t0, t1, label, ret``.
        label_column: Label column in ``labels``; it is called ``label`` in the dataset.
        drop_null: Drop rows with a null label or a null/NaN feature. When ``False`` null
            features stay (as NaN in :meth:`Dataset.X`, which LightGBM handles) but a null
            label is still an error.

    Returns:
        The joined :class:`Dataset`.

    Raises:
        InputError: Not polars frames, or bad ``feature_names``.
        SchemaError: Missing columns or non-numeric features/labels.
        DataError: Duplicate keys, no overlap, NaN/inf labels, infinite features, t1 < t0.
        InsufficientDataError: Every joined row has a missing value.
    """
    for name, frame in (("features", features), ("labels", labels)):
        if not isinstance(frame, pl.DataFrame):
            raise InputError(
                f"make_dataset expects polars DataFrames; {name} is {type(frame).__name__}.",
                fix="convert with polars.from_pandas(...) or build it with the features/labels "
                "functions.",
            )
    require_columns(features, ["date", "symbol"], what="feature frame")
    require_columns(labels, ["date", "symbol", label_column], what="label frame")
    names = _resolve_feature_names(features, feature_names)

    label_part = labels.select(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").cast(pl.String),
        pl.col("t0" if "t0" in labels.columns else "date").cast(pl.Date).alias("t0"),
        pl.col("t1" if "t1" in labels.columns else ("t0" if "t0" in labels.columns else "date"))
        .cast(pl.Date)
        .alias("t1"),
        _label_expr(labels, label_column),
        *([pl.col("ret").cast(pl.Float64)] if "ret" in labels.columns else []),
    )
    feature_part = features.select(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").cast(pl.String),
        *[pl.col(c).cast(pl.Float64) for c in names],
    )
    index = key_index(feature_part, label_part)
    if index is None:
        # A null or repeated key: the general join keeps the old semantics and error messages.
        joined, n_before = join_general(feature_part, label_part, names, label_column, drop_null)
        _require_unique_keys(joined, features, labels)
    else:
        joined, n_before = join_indexed(
            feature_part, label_part, index, names, label_column, drop_null
        )
    return Dataset(
        frame=joined,
        feature_names=tuple(names),
        label_name=label_column,
        data_hash=frame_hash(joined),
        n_dropped=n_before - joined.height,
    )


def frame_hash(frame: pl.DataFrame) -> str:
    """Return a SHA-256 hex digest of a frame's schema and values.

    Unlike ``DataFrame.hash_rows`` (seeded, and documented as unstable across polars
    versions), the digest is built from the column names and dtypes and plain little-endian
    numpy bytes of the values and null masks, so it is stable across runs and processes.
    Row order matters.
    """
    digest = hashlib.sha256()
    digest.update(repr([(c, str(t)) for c, t in frame.schema.items()]).encode())
    digest.update(str(frame.height).encode())
    for series in frame.get_columns():
        digest.update(str(series.null_count()).encode())
        if series.null_count():
            digest.update(series.is_null().to_numpy().tobytes())
        if series.dtype == pl.String:
            # Strings hash as the sorted distinct values plus each row's position in that list
            # (an Enum over the sorted values has those positions as its codes): cheap on
            # panels with few symbols and many rows.
            uniques = series.drop_nulls().unique().sort()
            digest.update("\x00".join(uniques.to_list()).encode())
            if uniques.len():
                codes = series.cast(pl.Enum(uniques)).to_physical().fill_null(0).to_numpy()
            else:
                codes = np.zeros(series.len(), dtype=np.uint32)
            digest.update(np.ascontiguousarray(codes, dtype="<u4"))
        elif series.dtype.is_temporal():
            values = series.to_physical().fill_null(0).to_numpy()
            digest.update(np.ascontiguousarray(values, dtype="<i8"))
        else:
            # No copy for a Float64 column without nulls: hash the column's own buffer.
            values = series.cast(pl.Float64).fill_null(0.0).to_numpy()
            digest.update(np.ascontiguousarray(values, dtype="<f8"))
    return digest.hexdigest()


def _resolve_feature_names(
    features: pl.DataFrame, feature_names: list[str] | tuple[str, ...] | None
) -> list[str]:
    if feature_names is None:
        names = [
            c
            for c, t in features.schema.items()
            if c not in KEY_COLUMNS and (t.is_numeric() or t == pl.Boolean)
        ]
        if not names:
            raise SchemaError(
                f"The feature frame has no numeric feature column; it has {features.columns}.",
                fix="add feature columns (Float64) next to date and symbol.",
            )
        return names
    names = list(feature_names)
    if not names:
        raise InputError("feature_names is empty.", fix="name at least one feature column.")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InputError(f"feature_names repeats {dupes}.", fix="list each feature once.")
    reserved = [n for n in names if n in KEY_COLUMNS]
    if reserved:
        raise InputError(
            f"feature_names contains key column(s) {reserved}.",
            fix=f"features may not be named any of {list(KEY_COLUMNS)}; rename them.",
        )
    require_columns(features, names, what="feature frame")
    bad = {
        n: str(features.schema[n])
        for n in names
        if not (features.schema[n].is_numeric() or features.schema[n] == pl.Boolean)
    }
    if bad:
        raise SchemaError(
            f"Feature column(s) are not numeric: {bad}.",
            fix="encode them as numbers (e.g. one-hot or ordinal) before make_dataset.",
        )
    return names


def _label_expr(labels: pl.DataFrame, label_column: str) -> pl.Expr:
    dtype = labels.schema[label_column]
    if dtype == pl.Boolean:
        return pl.col(label_column).cast(pl.Int64).alias("label")
    if dtype.is_integer():
        return pl.col(label_column).cast(pl.Int64).alias("label")
    if dtype.is_float():
        return pl.col(label_column).cast(pl.Float64).alias("label")
    raise SchemaError(
        f"Label column {label_column!r} has dtype {dtype}; labels must be numeric.",
        fix="encode class labels as integers (e.g. -1/0/1) and returns as floats.",
    )


def _require_unique_keys(
    joined: pl.DataFrame, features: pl.DataFrame, labels: pl.DataFrame
) -> None:
    # On the sorted join a duplicate key is two equal adjacent rows: O(n) instead of hashing.
    dupe = (pl.col("date") == pl.col("date").shift(1)) & (
        pl.col("symbol") == pl.col("symbol").shift(1)
    )
    first = joined.filter(dupe.fill_null(False)).select("date", "symbol").head(1)
    if first.height == 0:
        return
    key = first.row(0)
    culprits = [
        name
        for name, frame in (("feature frame", features), ("label frame", labels))
        if frame.filter((pl.col("date") == key[0]) & (pl.col("symbol") == key[1])).height > 1
    ]
    raise DataError(
        f"The {' and the '.join(culprits)} repeat the (date, symbol) key {key}.",
        fix="deduplicate, e.g. frame.unique(['date', 'symbol'], keep='last'), after checking "
        "which row is right.",
    )
