"""Purging and embargo machinery shared by the purged CV splitters.

The timing convention is the one of :mod:`.purged_cv`: a row decided at the close of ``t0``
carries a label whose information interval is the CLOSED date interval ``[t0, t1]``, and two
rows overlap iff ``a.t0 <= b.t1 and b.t0 <= a.t1``. This module holds what every splitter
shares: :func:`purge_mask` (the overlap test on its own), the interval and date helpers, the
per-fold bookkeeping (:class:`FoldInfo`) and the base class ``_PurgedSplitter`` that reads the
panel of ``X`` once, purges, embargoes and yields ``(train_idx, test_idx)``. The splitters
themselves (walk-forward, K-fold, combinatorial) only plan their test blocks; they live in
:mod:`.purged_cv`, which re-exports this module's public names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import polars as pl

from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError, SchemaError

__all__ = ["FoldInfo", "purge_mask"]

_EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class FoldInfo:
    """Summary of one split, for reports.

    Attributes:
        fold: Split number (0-based, in ``split`` order).
        n_train: Training rows kept.
        n_test: Test rows.
        n_purged: Candidate training rows dropped because their label overlaps a test label.
        n_embargoed: Candidate training rows dropped by the embargo only (not also purged).
        train_start: First date of a kept training row.
        train_end: Last date of a kept training row.
        test_start: First test date.
        test_end: Last test date (CPCV test sets may be several blocks inside this span).
    """

    fold: int
    n_train: int
    n_test: int
    n_purged: int
    n_embargoed: int
    train_start: date
    train_end: date
    test_start: date
    test_end: date


@dataclass(frozen=True)
class _Plan:
    """Test session blocks (half-open session-index ranges) and the training window."""

    test_blocks: tuple[tuple[int, int], ...]
    train_window: tuple[int, int]
    embargo_side: Literal["after", "before"]


@dataclass(frozen=True)
class _Fold:
    train: np.ndarray
    test: np.ndarray
    n_purged: int
    n_embargoed: int


@dataclass(frozen=True)
class _Panel:
    """Dates as day numbers relative to ``origin``, so every lookup is an array index."""

    origin: int  # epoch day of relative day 0
    size: int  # one past the largest relative day
    sessions: np.ndarray  # sorted unique relative dates
    session: np.ndarray  # session index of each row
    t0: np.ndarray
    t1: np.ndarray
    session_min_t0: np.ndarray  # smallest t0 among the rows of each session
    session_max_t0: np.ndarray  # largest t0 among the rows of each session
    session_max_t1: np.ndarray  # largest t1 among the rows of each session

    @classmethod
    def build(cls, day: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> _Panel:
        bad = t1 < t0
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"Row {i} has t1={_to_date(int(t1[i]))} before t0={_to_date(int(t0[i]))}.",
                fix="t1 must be the last session the label uses, on or after t0; "
                "rebuild the labels or fix the t0/t1 columns.",
            )
        origin = int(min(day.min(), t0.min()))
        day, t0, t1 = day - origin, t0 - origin, t1 - origin
        size = int(max(day.max(), t1.max())) + 1
        present = np.zeros(size, dtype=bool)
        present[day] = True
        session = (np.cumsum(present) - 1)[day]
        sessions = np.flatnonzero(present)
        if np.all(session[1:] >= session[:-1]):
            # Rows sorted by date (a dataset's cv_frame): per-session reductions over runs.
            starts = np.flatnonzero(np.diff(session, prepend=-1))
            per_session = [
                np.minimum.reduceat(t0, starts),
                np.maximum.reduceat(t0, starts),
                np.maximum.reduceat(t1, starts),
            ]
        else:
            per_session = [np.full(sessions.size, fill) for fill in (size, -1, -1)]
            np.minimum.at(per_session[0], session, t0)
            np.maximum.at(per_session[1], session, t0)
            np.maximum.at(per_session[2], session, t1)
        return cls(origin, size, sessions, session, t0, t1, *per_session)

    def date_of(self, rel_day: int) -> date:
        return _to_date(self.origin + int(rel_day))


def _to_date(epoch_day: int) -> date:
    return _EPOCH + timedelta(days=epoch_day)


def _overlaps(
    a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray, size: int
) -> np.ndarray:
    """Closed-interval overlap of each ``a`` with any ``b``; all values are ints in [0, size)."""
    # reach[x] = latest end among b intervals starting on or before x; a overlaps some b
    # iff a b starts by a1 and ends on or after a0, i.e. reach[a1] >= a0. O(n + m + size).
    reach = np.full(size, -1, dtype=np.int64)
    np.maximum.at(reach, b0, b1)
    np.maximum.accumulate(reach, out=reach)
    return reach[a1] >= a0


def purge_mask(train_t0: Any, train_t1: Any, test_t0: Any, test_t1: Any) -> np.ndarray:
    """Flag the training intervals that overlap at least one test interval.

    Intervals are closed: ``[a0, a1]`` and ``[b0, b1]`` overlap iff ``a0 <= b1 and b0 <= a1``.
    Runs in O((n + m) log(n + m)) without comparing every pair.

    Args:
        train_t0: Start of each training interval (dates: numpy datetime64, polars Date or
            ``datetime.date`` values; or integers on any common scale).
        train_t1: End of each training interval, same length as ``train_t0``.
        test_t0: Start of each test interval.
        test_t1: End of each test interval, same length as ``test_t0``.

    Returns:
        Boolean array, ``True`` where the training row must be purged.

    Raises:
        InputError: Lengths differ or an interval ends before it starts.
    """
    bounds = {"train_t0": train_t0, "train_t1": train_t1, "test_t0": test_t0, "test_t1": test_t1}
    parts = [_as_ordinal(v, name) for name, v in bounds.items()]
    a0, a1, b0, b1 = parts
    if a0.size != a1.size or b0.size != b1.size:
        raise InputError(
            f"Interval starts and ends differ in length: train {a0.size} vs {a1.size}, "
            f"test {b0.size} vs {b1.size}.",
            fix="pass one start and one end per interval.",
        )
    if (a1 < a0).any() or (b1 < b0).any():
        raise InputError("An interval ends before it starts.", fix="check t0 <= t1 per row.")
    if a0.size == 0 or b0.size == 0:
        return np.zeros(a0.size, dtype=bool)
    # Rank-compress the values so the dense reach array stays small whatever the scale.
    values, codes = np.unique(np.concatenate(parts), return_inverse=True)
    a0, a1, b0, b1 = np.split(codes, np.cumsum([p.size for p in parts])[:-1])
    return _overlaps(a0, a1, b0, b1, values.size)


def _as_ordinal(values: Any, name: str) -> np.ndarray:
    """Dates or integers as a 1-d int64 array."""
    if isinstance(values, pl.Series):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = arr.astype("datetime64[D]")
    if np.issubdtype(arr.dtype, np.datetime64):
        if np.isnat(arr).any():
            raise InputError(f"Interval bound {name} contains NaT.", fix="drop rows without dates.")
        arr = arr.astype("datetime64[D]")
    return arr.astype(np.int64).ravel()


def _check_int(name: str, value: Any, minimum: int, *, optional: bool = False) -> Any:
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise InputError(
            f"{name}={value!r} is invalid.", fix=f"pass an integer >= {minimum} for {name}."
        )
    return int(value)


def _to_series(values: Any, name: str) -> pl.Series:
    """Array-like to a polars Series; numpy datetimes of any unit keep their date."""
    if isinstance(values, pl.Series):
        return values
    arr = np.asarray(values)
    if np.issubdtype(arr.dtype, np.datetime64):
        arr = arr.astype("datetime64[D]")
    return pl.Series(name, arr)


def _days(series: pl.Series, what: str) -> np.ndarray:
    """Epoch day numbers of a Date (or Datetime: keeps the date) series without nulls."""
    if isinstance(series.dtype, pl.Datetime):
        series = series.dt.date()
    if series.dtype != pl.Date:
        raise SchemaError(
            f"{what} must hold dates (polars Date), got dtype {series.dtype}.",
            fix="cast it, e.g. pl.col(name).str.to_date() or .cast(pl.Date).",
        )
    if series.null_count():
        first = int(series.is_null().arg_max() or 0)
        raise DataError(
            f"{what} has {series.null_count()} null value(s), first at row {first}.",
            fix="drop rows without a date or label end before splitting.",
        )
    return series.to_physical().to_numpy().astype(np.int64)


class _PurgedSplitter:
    """Shared machinery: input handling, purge, embargo, fold metadata."""

    _DEFAULT_T0, _DEFAULT_T1 = "t0", "t1"

    def __init__(self, embargo: Any, cols: tuple[str, str, str], dates: Any, t1: Any) -> None:
        self.embargo = _check_int("embargo", embargo, 0)
        self.date_col, self.t0_col, self.t1_col = cols
        if t1 is not None and dates is None:
            raise InputError("t1= was given without dates=.", fix="pass dates= as well.")
        self.dates, self.t1 = dates, t1

    # --- subclass hooks -------------------------------------------------------------------
    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Return the number of splits (``X``, ``y``, ``groups`` are ignored)."""
        raise NotImplementedError

    def _plans(self, n_sessions: int) -> list[_Plan]:
        raise NotImplementedError

    # --- public interface -----------------------------------------------------------------
    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_idx, test_idx)``: sorted positional int64 row indices.

        Args:
            X: Polars or pandas DataFrame with the date column (and optional ``t0``/``t1``),
                or any array with ``len(X)`` rows when ``dates=`` was given to the constructor.
            y: Ignored (scikit-learn signature).
            groups: Ignored; the dates define the groups.

        Raises:
            InputError: Missing, null or malformed dates; ``t1 < t0``.
            InsufficientDataError: Too few dates for the folds, or a fold with no training
                row left after purging and embargo.
        """
        panel = self._panel(X)
        for k, plan in enumerate(self._plans(panel.sessions.size)):
            fold = self._fold(panel, plan, k)
            yield fold.train, fold.test

    def describe(self, X: Any, y: Any = None, groups: Any = None) -> list[FoldInfo]:
        """Return one :class:`FoldInfo` per split of ``X`` (same arguments as :meth:`split`)."""
        panel = self._panel(X)
        out = []
        for k, plan in enumerate(self._plans(panel.sessions.size)):
            f = self._fold(panel, plan, k)
            tr, te = panel.session[f.train], panel.session[f.test]
            out.append(
                FoldInfo(
                    fold=k,
                    n_train=int(f.train.size),
                    n_test=int(f.test.size),
                    n_purged=f.n_purged,
                    n_embargoed=f.n_embargoed,
                    train_start=panel.date_of(panel.sessions[tr.min()]),
                    train_end=panel.date_of(panel.sessions[tr.max()]),
                    test_start=panel.date_of(panel.sessions[te.min()]),
                    test_end=panel.date_of(panel.sessions[te.max()]),
                )
            )
        return out

    def __repr__(self) -> str:
        params = {k: v for k, v in vars(self).items() if k not in ("dates", "t1")}
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({shown})"

    # --- internals ------------------------------------------------------------------------
    def _panel(self, X: Any) -> _Panel:
        if self.dates is not None:
            n = len(X)
            day = self._array_days(self.dates, "dates", n)
            t1 = day if self.t1 is None else self._array_days(self.t1, "t1", n)
            return _Panel.build(day, day, t1)
        if not isinstance(X, pl.DataFrame):
            if not hasattr(X, "columns"):
                raise InputError(
                    f"X is a {type(X).__name__}, which carries no dates.",
                    fix=f"pass a polars DataFrame with a {self.date_col!r} column, or give the "
                    "dates to the splitter: e.g. PurgedKFold(5, dates=..., t1=...).",
                )
            # pandas (or similar): take just the columns we need, without pyarrow.
            cols = [c for c in (self.date_col, self.t0_col, self.t1_col) if c in X.columns]
            X = pl.DataFrame({c: _to_series(X[c], c) for c in cols})
        if self.date_col not in X.columns:
            raise SchemaError(
                f"X lacks the date column {self.date_col!r}; it has {X.columns}.",
                fix="add the column or pass date_col= naming it.",
            )
        if X.height == 0:
            raise InsufficientDataError("X has no rows.", fix="pass a non-empty frame.")
        day = _days(X[self.date_col], f"column {self.date_col!r}")
        t0 = self._optional(X, self.t0_col, self._DEFAULT_T0, day)
        t1 = self._optional(X, self.t1_col, self._DEFAULT_T1, t0)
        return _Panel.build(day, t0, t1)

    @staticmethod
    def _optional(X: pl.DataFrame, name: str, default: str, fallback: np.ndarray) -> np.ndarray:
        if name in X.columns:
            return _days(X[name], f"column {name!r}")
        if name != default:  # an explicitly named column must exist: never skip purging silently
            raise SchemaError(
                f"X lacks column {name!r}; it has {X.columns}.",
                fix="add the column or leave the column name at its default.",
            )
        return fallback

    @staticmethod
    def _array_days(values: Any, name: str, n: int) -> np.ndarray:
        try:
            series = _to_series(values, name)
        except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
            raise InputError(
                f"{name}= could not be read as dates: {exc}",
                fix=f"pass {name}= as numpy datetime64, datetime.date values or a polars Date.",
            ) from exc
        if series.len() != n:
            raise InputError(
                f"{name}= has {series.len()} values but X has {n} rows.",
                fix=f"give one {name} value per row of X, in the same order.",
            )
        if n == 0:
            raise InsufficientDataError("X has no rows.", fix="pass non-empty data.")
        return _days(series, f"{name}=")

    def _fold(self, panel: _Panel, plan: _Plan, k: int) -> _Fold:
        n_sess = panel.sessions.size
        test_s = np.zeros(n_sess, dtype=bool)
        for a, b in plan.test_blocks:
            test_s[a:b] = True
        lo, hi = plan.train_window
        candidate_s = np.zeros(n_sess, dtype=bool)
        candidate_s[lo:hi] = True
        candidate_s &= ~test_s
        # Purging and embargo can only touch sessions whose label span reaches the test
        # labels or the embargo window; only their rows get a row-by-row look.
        first_t0 = panel.session_min_t0[test_s].min()
        last_t1 = panel.session_max_t1[test_s].max()
        look_s = (panel.session_max_t1 >= first_t0) & (panel.session_min_t0 <= last_t1)
        windows = self._embargo_windows(panel, plan)
        for kind, start, end in windows:
            if kind == "t0":  # embargo after a block: t0 in (start, end]
                look_s |= (panel.session_max_t0 > start) & (panel.session_min_t0 <= end)
            else:  # embargo before a block: t1 >= start
                look_s |= panel.session_max_t1 >= start
        # One gather of a per-session code gives each row its role: 0 outside the training
        # window, 1 training candidate, 3 training candidate to look at, 2 test.
        code_s = np.zeros(n_sess, dtype=np.uint8)
        code_s[candidate_s] = 1
        code_s[candidate_s & look_s] = 3
        code_s[test_s] = 2
        code = code_s[panel.session]
        test = np.flatnonzero(code == 2)
        rows = np.flatnonzero(code == 3)
        a0, a1 = panel.t0[rows], panel.t1[rows]
        purged = _overlaps(a0, a1, panel.t0[test], panel.t1[test], panel.size)
        blocked = np.zeros(rows.size, dtype=bool)
        for kind, start, end in windows:
            blocked |= ((a0 > start) & (a0 <= end)) if kind == "t0" else (a1 >= start)
        n_purged, n_embargoed = int(purged.sum()), int((blocked & ~purged).sum())
        keep = (code & 1).view(bool)  # odd codes are the candidates
        keep[rows[purged | blocked]] = False
        train = np.flatnonzero(keep)
        if train.size == 0:
            first, last = plan.test_blocks[0][0], plan.test_blocks[-1][1] - 1
            n_candidates = train.size + n_purged + n_embargoed
            raise InsufficientDataError(
                f"Split {k} (test {panel.date_of(panel.sessions[first])} to "
                f"{panel.date_of(panel.sessions[last])}) has no training row left: "
                f"{n_candidates} candidate(s), {n_purged} purged, {n_embargoed} embargoed.",
                fix="use fewer splits, more dates, a shorter label horizon or a smaller embargo.",
            )
        return _Fold(train.astype(np.int64, copy=False), test, n_purged, n_embargoed)

    def _embargo_windows(self, panel: _Panel, plan: _Plan) -> list[tuple[str, int, int]]:
        """The embargo of each test block as ``("t0", after, until)`` or ``("t1", from, 0)``."""
        windows: list[tuple[str, int, int]] = []
        n_sess = panel.sessions.size
        for a, b in plan.test_blocks if self.embargo else ():
            if plan.embargo_side == "after":
                last_end = int(panel.session_max_t1[a:b].max())
                p = int(np.searchsorted(panel.sessions, last_end, side="right"))
                if p < n_sess:
                    until = int(panel.sessions[min(p + self.embargo, n_sess) - 1])
                    windows.append(("t0", last_end, until))
            else:
                windows.append(("t1", int(panel.sessions[max(a - self.embargo, 0)]), 0))
        return windows


def _block_edges(n_sessions: int, n_blocks: int) -> np.ndarray:
    """Edges of ``n_blocks`` contiguous session blocks; the first ``n % k`` get one extra."""
    sizes = np.full(n_blocks, n_sessions // n_blocks)
    sizes[: n_sessions % n_blocks] += 1
    return np.concatenate([[0], np.cumsum(sizes)])


def _too_few(n_sessions: int, required: int, what: str) -> InsufficientDataError:
    return InsufficientDataError(
        f"X has {n_sessions} distinct date(s); {what} need at least {required}.",
        fix="provide more dates or ask for fewer splits / shorter blocks.",
    )
