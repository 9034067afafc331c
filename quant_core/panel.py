"""Dense alignment of target weights: rebalance schedules and ``(n_dates, n_symbols)`` panels.

The backtest engine works on dense float64 arrays. This module turns long ``date, symbol``
frames into them (:func:`dense_panel`, :class:`DensePanel`), checks and aligns a weights frame
to the price panel (:func:`require_weights_frame`, :func:`align_targets`, :func:`dense_targets`),
marks the sessions on which a schedule rebalances (:func:`rebalance_mask`), fills missing prices
explicitly (:func:`fill_missing_prices`) and names a bad cell in error messages
(:class:`PanelLabels`). Turning scores into weights is :mod:`.portfolio`'s job, which re-exports
this module's public names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError, SchemaError

__all__ = [
    "DensePanel",
    "PanelLabels",
    "Schedule",
    "align_targets",
    "as_panel",
    "dense_panel",
    "dense_targets",
    "fill_missing_prices",
    "rebalance_mask",
    "require_finite_targets",
    "require_valid_prices",
    "require_weights_frame",
]

Schedule = Literal["daily", "weekly", "monthly"]


def rebalance_mask(dates: Any, schedule: Schedule) -> np.ndarray:
    """Mark the sessions on which a ``schedule`` rebalance is decided.

    Args:
        dates: Sorted session dates (numpy ``datetime64``, a polars Series or a list).
        schedule: ``"daily"`` (every session), ``"weekly"`` (last session of each ISO week)
            or ``"monthly"`` (last session of each calendar month) in ``dates``.

    Returns:
        A boolean array, one entry per date (the last date is always marked).

    Raises:
        InputError: Unknown schedule.
    """
    days = np.asarray(pl.Series(dates).cast(pl.Date).to_numpy(), dtype="datetime64[D]")
    if schedule == "daily":
        return np.ones(days.size, dtype=bool)
    if schedule == "weekly":
        # 1970-01-01 was a Thursday: shifting by 3 days makes weeks start on Monday.
        period = (days.astype(np.int64) + 3) // 7
    elif schedule == "monthly":
        period = days.astype("datetime64[M]").astype(np.int64)
    else:
        raise InputError(
            f"Unknown rebalance schedule {schedule!r}.",
            fix="use 'daily', 'weekly' or 'monthly'.",
        )
    return np.append(period[1:] != period[:-1], True)


def require_weights_frame(weights: pl.DataFrame, symbols: Any = None) -> pl.DataFrame:
    """Check a weights frame and return it as ``date (Date), symbol (String), weight (Float64)``.

    Args:
        weights: ``date, symbol, weight`` (decision date = the date of the signal).
        symbols: Known symbols (those with prices); ``None`` skips that check.

    Returns:
        The frame with canonical dtypes, sorted by (date, symbol).

    Raises:
        InputError: Not a frame, empty, wrong types, non-finite or duplicated weights,
            unknown symbols, or every weight zero.
    """
    if not isinstance(weights, pl.DataFrame):
        raise InputError(
            f"Expected a polars DataFrame of weights, got {type(weights).__name__}.",
            fix="pass a frame with columns date, symbol, weight.",
        )
    missing = [c for c in ("date", "symbol", "weight") if c not in weights.columns]
    if missing:
        raise SchemaError(
            f"The weights frame lacks column(s) {missing}; it has {weights.columns}.",
            fix="build it with scores_to_weights(...) or rename the columns.",
        )
    if weights.height == 0:
        raise InputError("The weights frame is empty.", fix="give at least one target weight.")
    if weights.schema["date"] != pl.Date or not weights.schema["weight"].is_numeric():
        raise SchemaError(
            f"The weights frame has date: {weights.schema['date']}, weight: "
            f"{weights.schema['weight']}; expected Date and a number.",
            fix="cast with pl.col('date').cast(pl.Date), pl.col('weight').cast(pl.Float64).",
        )
    frame = weights.select(
        "date", pl.col("symbol").cast(pl.String), pl.col("weight").cast(pl.Float64)
    ).sort("date", "symbol")
    bad = frame.filter(~pl.col("weight").is_finite().fill_null(False))
    if bad.height:
        day, symbol, value = bad.row(0)
        raise DataError(
            f"Weight {value} for {symbol!r} on {day} is not a finite number "
            f"({bad.height} such row(s)).",
            fix="use weight 0 (or drop the row) for names that are not held.",
        )
    dupes = frame.height - frame.select("date", "symbol").n_unique()
    if dupes:
        raise InputError(
            f"The weights frame has {dupes} duplicate (date, symbol) row(s).",
            fix="keep one weight per symbol and date.",
        )
    if symbols is not None:
        unknown = sorted(set(frame["symbol"].unique().to_list()) - set(symbols))
        if unknown:
            raise InputError(
                f"Weights on {len(unknown)} symbol(s) without prices: {unknown[:5]}.",
                fix="drop those symbols from the weights or load their prices.",
            )
    if not frame.select((pl.col("weight") != 0).any()).item():
        raise InputError(
            "Every weight is zero: the backtest would hold nothing.",
            fix="check the signal and the weight settings (quantile, side, caps).",
        )
    if math.isinf(frame["weight"].abs().sum()):
        raise InputError("The weights overflow.", fix="use fractions of capital.")
    return frame


@dataclass(frozen=True)
class PanelLabels:
    """Names of the rows (dates) and columns (symbols) of dense arrays, for error messages."""

    dates: Sequence[Any] | None = None
    symbols: Sequence[str] | None = None

    def at(self, row: int, col: int | None = None) -> str:
        """Describe row ``row`` (and column ``col``), e.g. ``"symbol 'A' on date 2020-01-02"``."""
        day = f"date {self.dates[row]}" if self.dates is not None else f"row {row}"
        if col is None:
            return day
        name = f"symbol {self.symbols[col]!r}" if self.symbols is not None else f"column {col}"
        return f"{name} on {day}"


def as_panel(values: Any, name: str, *, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Return ``values`` as a 2-D float64 array (no copy when it already is one).

    Raises:
        InputError: Not 2-D, or not of ``shape``.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or (shape is not None and array.shape != shape):
        want = "(n_dates, n_symbols)" if shape is None else str(shape)
        raise InputError(
            f"The {name} array has shape {array.shape}; expected {want}.",
            fix="pivot the prices to one row per session and one column per symbol.",
        )
    return array


def align_targets(
    weights: Any, rebalance: Any, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Return the decision rows that can trade and their ``(K, N)`` target rows.

    Args:
        weights: ``(T, N)`` targets, or one row per True entry of ``rebalance``.
        rebalance: ``(T,)`` boolean mask of decision rows, or None for every row.
        shape: ``(T, N)`` of the prices.

    Raises:
        InputError: Bad mask or weights shape.
        InsufficientDataError: No decision before the last row.
    """
    n_rows, n_cols = shape
    if rebalance is None:
        decisions = np.arange(n_rows, dtype=np.int64)
    else:
        mask = np.asarray(rebalance)
        if mask.dtype != np.bool_ or mask.shape != (n_rows,):
            raise InputError(
                f"rebalance must be a boolean array of shape ({n_rows},), got dtype "
                f"{mask.dtype} and shape {mask.shape}.",
                fix="pass a boolean mask of the decision rows, e.g. from rebalance_mask(...).",
            )
        decisions = np.flatnonzero(mask).astype(np.int64)
    targets = np.asarray(weights, dtype=np.float64)
    if targets.shape == (n_rows, n_cols) and decisions.size != n_rows:
        targets = targets[decisions]
    elif targets.shape != (decisions.size, n_cols):
        raise InputError(
            f"The weights array has shape {targets.shape}; expected {(n_rows, n_cols)} or "
            f"one row per rebalance decision {(decisions.size, n_cols)}.",
            fix="align the weights with the price array (same dates and symbols).",
        )
    if decisions.size and decisions[-1] == n_rows - 1:  # nothing trades after the last close
        decisions, targets = decisions[:-1], targets[:-1]
    if decisions.size and not targets[0].any():  # start at the first non-flat target
        first = _first_held_row(targets)
        if first is None:
            raise InputError(
                "Every target weight is zero: the backtest would hold nothing.",
                fix="check the signal and the weight settings (quantile, side, caps).",
            )
        decisions, targets = decisions[first:], targets[first:]
    if decisions.size == 0:
        raise InsufficientDataError(
            f"No rebalance decision before the last of the {n_rows} sessions, so nothing "
            "can trade.",
            fix="give target weights dated before the last price date.",
        )
    return decisions, targets


def _first_held_row(targets: np.ndarray) -> int | None:
    """Index of the first row with a non-zero (or NaN) target, scanning from the top."""
    # In growing chunks: a warm-up of flat rows is short, and a full-array pass is not free.
    start, size = 0, 64
    while start < targets.shape[0]:
        held = np.flatnonzero(targets[start : start + size].any(axis=1))
        if held.size:
            return start + int(held[0])
        start, size = start + size, 2 * size
    return None


def require_finite_targets(targets: np.ndarray, decisions: np.ndarray, labels: PanelLabels) -> None:
    """Raise :class:`InputError` naming the first non-finite target weight, if any."""
    if np.isfinite(targets.sum()):
        return
    bad = np.argwhere(~np.isfinite(targets))
    if bad.size == 0:  # the sum overflowed; every weight is finite but absurd
        raise InputError(
            f"The weights sum to {targets.sum()}; they must be fractions of capital.",
            fix="scale the weights so that sum(|w|) per date is a few units at most.",
        )
    row, col = bad[0]
    raise InputError(
        f"Weight {targets[row, col]} for {labels.at(int(decisions[row]), int(col))} "
        f"({len(bad)} non-finite weight(s) in all).",
        fix="replace NaN/inf weights with 0 (not held) or drop those rows before the backtest.",
    )


def require_valid_prices(values: np.ndarray, name: str, labels: PanelLabels) -> None:
    """Raise :class:`DataError` unless every price is NaN (missing) or finite and positive."""
    bad = np.argwhere(~np.isnan(values) & ~((values > 0) & np.isfinite(values)))
    if bad.size:
        row, col = (int(x) for x in bad[0])
        raise DataError(
            f"The {name} price {values[row, col]} for {labels.at(row, col)} is not finite "
            f"and positive ({len(bad)} such value(s)).",
            fix="run validate_prices and drop or repair those rows; NaN means no price.",
        )


def _forward_fill(values: np.ndarray) -> np.ndarray:
    present = ~np.isnan(values)
    index = np.where(present, np.arange(values.shape[0])[:, None], 0)
    np.maximum.accumulate(index, axis=0, out=index)
    filled = np.take_along_axis(values, index, axis=0)
    filled[np.isnan(filled)] = 1.0  # before a name's first price: never held, any value works
    return filled


def fill_missing_prices(
    close: np.ndarray,
    opens: np.ndarray | None,
    targets: np.ndarray,
    decisions: np.ndarray,
    labels: PanelLabels,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check prices, fill their gaps and zero the targets that cannot trade.

    A name without a close (or open, when ``opens`` is given) on the execution session
    ``decision + 1`` cannot trade or be held: its target becomes 0 (a held position is closed
    at its last known price) and ``notes`` says so. Closes are forward-filled, so a held name
    earns 0 over a gap; a missing open is the previous close. Without any NaN or non-positive
    price this returns the inputs unchanged (no copy).

    Returns:
        ``(close, execution prices, targets)`` ready for the simulation.

    Raises:
        DataError: A price that is not NaN and not finite and positive.
        InputError: A non-finite target (also caught by the simulation on the fast path).
    """
    lowest = close.min() if opens is None else min(close.min(), opens.min())
    if lowest > 0:  # no NaN and nothing non-positive: the fast path (inf is caught later)
        return close, close if opens is None else opens, targets
    require_finite_targets(targets, decisions, labels)
    trade_rows = decisions + 1
    require_valid_prices(close, "close", labels)
    if opens is not None:
        require_valid_prices(opens, "open", labels)
    tradable = ~np.isnan(close[trade_rows])
    if opens is not None:
        tradable &= ~np.isnan(opens[trade_rows])
    blocked = ~tradable & (targets != 0.0)
    if blocked.any():
        row, col = (int(x) for x in np.argwhere(blocked)[0])
        notes.append(
            f"{int(blocked.sum())} target weight(s) on names without a price on the execution "
            f"session were set to 0, first {labels.at(int(trade_rows[row]), col)}."
        )
        targets = np.where(tradable, targets, 0.0)
    mark = _forward_fill(close)
    if opens is None:
        return mark, mark, targets
    before_open = np.vstack([np.ones((1, close.shape[1])), mark[:-1]])
    return mark, np.where(np.isnan(opens), before_open, opens), targets


@dataclass(frozen=True, eq=False)
class DensePanel:
    """Columns of a long frame pivoted to ``(n_dates, n_symbols)`` float64 arrays.

    Attributes:
        dates: Sorted sessions (``datetime64[D]``).
        symbols: Sorted symbols.
        values: Column name -> array, NaN where the frame has no row.
    """

    dates: np.ndarray
    symbols: tuple[str, ...]
    values: dict[str, np.ndarray]

    @property
    def labels(self) -> PanelLabels:
        """Row and column names for error messages."""
        return PanelLabels(self.dates.astype(str).tolist(), self.symbols)


def dense_panel(frame: pl.DataFrame, columns: Sequence[str]) -> DensePanel:
    """Pivot ``columns`` of a long ``date, symbol`` frame to dense arrays (one scatter each).

    The calendar is the sorted union of the frame's dates; a (date, symbol) without a row is
    NaN. Assumes unique (date, symbol) rows (see ``require_canonical``).
    """
    dates = frame["date"].unique().sort()
    symbols = frame["symbol"].unique().sort()
    at = frame.select(
        (pl.col("date").rank("dense") - 1).alias("t"),
        (pl.col("symbol").rank("dense") - 1).alias("s"),
    )
    rows, cols = at["t"].to_numpy(), at["s"].to_numpy()
    values = {}
    for column in columns:
        array = np.full((dates.len(), symbols.len()), np.nan)
        array[rows, cols] = frame[column].cast(pl.Float64).to_numpy()
        values[column] = array
    days = np.asarray(dates.to_numpy(), dtype="datetime64[D]")
    return DensePanel(days, tuple(symbols.to_list()), values)


def dense_targets(
    weights: pl.DataFrame, panel: DensePanel, schedule: Schedule
) -> tuple[np.ndarray, np.ndarray]:
    """Align a weights frame on the price calendar as of each rebalance decision.

    At each session marked by ``rebalance_mask(panel.dates, schedule)`` the target is the
    latest weights date on or before it (a later date is never used); sessions before the
    first weights date decide nothing.

    Args:
        weights: A frame checked by :func:`require_weights_frame`.
        panel: The dense prices.
        schedule: ``"daily"``, ``"weekly"`` or ``"monthly"``.

    Returns:
        The ``(T,)`` boolean mask of decision sessions and the ``(K, N)`` targets, one row
        per marked session.
    """
    weight_dates = weights["date"].unique().sort()
    index = {symbol: i for i, symbol in enumerate(panel.symbols)}
    at = weights.select(
        (pl.col("date").rank("dense") - 1).alias("t"),
        pl.col("symbol").replace_strict(index, return_dtype=pl.Int64).alias("s"),
    )
    dense = np.zeros((weight_dates.len(), len(panel.symbols)))
    dense[at["t"].to_numpy(), at["s"].to_numpy()] = weights["weight"].to_numpy()
    known = np.asarray(weight_dates.to_numpy(), dtype="datetime64[D]")
    latest = np.searchsorted(known, panel.dates, side="right") - 1
    mask = rebalance_mask(panel.dates, schedule) & (latest >= 0)
    return mask, dense[latest[mask]]
