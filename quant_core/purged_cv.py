"""Purged cross-validation for label frames: walk-forward, K-fold and combinatorial (CPCV).

Timing convention (shared by every splitter here and by ``labels.py``): a row decided at the
close of ``t0`` carries a label whose information interval is the CLOSED date interval
``[t0, t1]``. Two rows ``a`` and ``b`` overlap iff ``a.t0 <= b.t1 and b.t0 <= a.t1``; a label
ending on the day another starts overlaps it.

* Panels are split by date, never by row: the sessions are the sorted unique values of the
  ``date`` column and every row of a session is on the same side (or purged).
* Purging: every training row whose interval overlaps any test interval is dropped.
* Embargo (López de Prado, *Advances in Financial Machine Learning*, 2018, §7.4.2): after each
  contiguous test block, training rows whose ``t0`` falls in the ``embargo`` sessions that
  follow the block's last label end (the largest test ``t1``, not its last ``t0``) are dropped,
  so ``embargo`` always removes sessions beyond what purging removes. Walk-forward has no
  training after its test block, so there the embargo is a gap on the only side there is:
  training labels must end before the ``embargo`` sessions preceding the test block.

Inputs: ``split(X)`` takes a polars (or pandas) DataFrame with a ``date`` column and optional
``t0``/``t1`` columns (``t0`` defaults to ``date``, ``t1`` to ``t0``); rows may be in any order
and indices are positional. For a numpy ``X`` (what scikit-learn passes to ``cv.split``) give
the dates to the constructor (``dates=``, ``t1=``), aligned with the rows of ``X``.

The purging and embargo machinery shared by the splitters (:func:`purge_mask`, :class:`FoldInfo`,
the base class) lives in :mod:`.purging` and is re-exported here.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

import numpy as np

from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.purging import (
    FoldInfo,
    _block_edges,
    _check_int,
    _Plan,
    _PurgedSplitter,
    _too_few,
    purge_mask,
)

__all__ = ["CombinatorialPurgedCV", "FoldInfo", "PurgedKFold", "PurgedWalkForward", "purge_mask"]


class PurgedWalkForward(_PurgedSplitter):
    """Walk-forward splits with purging: train on the past, test on the next block.

    Layout: ``n_splits`` consecutive, non-overlapping test blocks of ``test_sessions``
    sessions fill the end of the sample; the sessions before the first block are the initial
    training window. Without ``test_sessions`` the block length is ``n // (n_splits + 1)``
    (as scikit-learn's ``TimeSeriesSplit``), or ``(n - min_train_sessions) // n_splits`` when
    ``min_train_sessions`` is set; leftover sessions go to the initial window.

    Training for a block = sessions before it (``expanding``: all of them; ``rolling``: the
    last ``train_sessions``, default the initial window length, counted before purging), minus
    rows whose interval reaches the block's first test date (purge), minus rows whose ``t1``
    falls in the ``embargo`` sessions just before the block (gap). Intervals are closed
    ``[t0, t1]``.

    Args:
        n_splits: Number of test blocks (>= 2).
        scheme: ``"expanding"`` or ``"rolling"`` training window.
        train_sessions: Rolling window length in sessions (``rolling`` only).
        test_sessions: Sessions per test block.
        embargo: Gap in sessions between the end of training labels and the test block.
        min_train_sessions: Smallest initial training window in sessions (default 1).
        date_col, t0_col, t1_col, dates, t1: Where the dates come from, as in
            :class:`PurgedKFold`.
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        scheme: Literal["expanding", "rolling"] = "expanding",
        train_sessions: int | None = None,
        test_sessions: int | None = None,
        embargo: int = 0,
        min_train_sessions: int | None = None,
        date_col: str = "date",
        t0_col: str = "t0",
        t1_col: str = "t1",
        dates: Any = None,
        t1: Any = None,
    ) -> None:
        self.n_splits = _check_int("n_splits", n_splits, 2)
        if scheme not in ("expanding", "rolling"):
            raise InputError(f"scheme={scheme!r} is unknown.", fix="use 'expanding' or 'rolling'.")
        if train_sessions is not None and scheme != "rolling":
            raise InputError(
                f"train_sessions={train_sessions!r} only applies to scheme='rolling'.",
                fix="drop train_sessions or pass scheme='rolling'.",
            )
        self.scheme = scheme
        self.train_sessions = _check_int("train_sessions", train_sessions, 1, optional=True)
        self.test_sessions = _check_int("test_sessions", test_sessions, 1, optional=True)
        self.min_train_sessions = _check_int(
            "min_train_sessions", min_train_sessions, 1, optional=True
        )
        super().__init__(embargo, (date_col, t0_col, t1_col), dates, t1)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Return ``n_splits`` (the arguments are ignored)."""
        return self.n_splits

    def _plans(self, n_sessions: int) -> list[_Plan]:
        k, min_train = self.n_splits, self.min_train_sessions or 1
        if self.test_sessions is not None:
            size, required = self.test_sessions, k * self.test_sessions + min_train
        elif self.min_train_sessions is not None:
            size, required = (n_sessions - min_train) // k, min_train + k
        else:
            size, required = n_sessions // (k + 1), k + 1
        if n_sessions < required:
            raise _too_few(n_sessions, required, f"{k} walk-forward splits")
        first = n_sessions - k * size
        window = self.train_sessions or first
        plans = []
        for a in range(first, n_sessions, size):
            lo = 0 if self.scheme == "expanding" else max(0, a - window)
            plans.append(_Plan(((a, a + size),), (lo, a), "before"))
        return plans


class PurgedKFold(_PurgedSplitter):
    """K-fold over contiguous date blocks with purging and embargo; every date tested once.

    Sessions are cut into ``n_splits`` contiguous blocks (the first ``n % n_splits`` one
    session longer). Training = every other row, minus rows whose closed interval
    ``[t0, t1]`` overlaps a test interval, minus rows whose ``t0`` falls in the ``embargo``
    sessions right after the block's largest test ``t1``. Training rows lie before and after
    the test block.

    Args:
        n_splits: Number of folds (>= 2).
        embargo: Sessions embargoed after each test block (>= 0).
        date_col: Date column of ``X``.
        t0_col: Label start column (defaults to the dates when absent).
        t1_col: Label end column (defaults to ``t0`` when absent).
        dates: Row dates when ``X`` is an array (scikit-learn use).
        t1: Row label ends when ``X`` is an array (defaults to ``dates``).
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        embargo: int = 0,
        date_col: str = "date",
        t0_col: str = "t0",
        t1_col: str = "t1",
        dates: Any = None,
        t1: Any = None,
    ) -> None:
        self.n_splits = _check_int("n_splits", n_splits, 2)
        super().__init__(embargo, (date_col, t0_col, t1_col), dates, t1)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Return ``n_splits`` (the arguments are ignored)."""
        return self.n_splits

    def _plans(self, n_sessions: int) -> list[_Plan]:
        if n_sessions < self.n_splits:
            raise _too_few(n_sessions, self.n_splits, f"{self.n_splits} folds")
        edges = _block_edges(n_sessions, self.n_splits)
        return [
            _Plan(((int(edges[i]), int(edges[i + 1])),), (0, n_sessions), "after")
            for i in range(self.n_splits)
        ]


class CombinatorialPurgedCV(_PurgedSplitter):
    """Combinatorial purged CV (López de Prado, AFML 2018, ch. 12).

    Sessions are cut into ``n_groups`` contiguous groups; each split tests one of the
    ``C(n_groups, n_test_groups)`` combinations of groups (lexicographic order, see
    :meth:`test_groups`) and trains on the rest, purged (closed intervals ``[t0, t1]``) and
    embargoed after each contiguous test block (adjacent test groups form one block).

    Every group is tested in ``n_paths = n_test_groups / n_groups * C(n_groups,
    n_test_groups)`` splits, which yields that many full backtest paths: :meth:`paths` gives,
    for path ``p`` and group ``g``, the split whose test predictions on group ``g`` belong to
    path ``p`` (the ``p``-th split, in order, that tests ``g``). :meth:`group_of` gives each
    row's group, so a path's predictions are assembled group by group.

    Args:
        n_groups: Number of contiguous session groups (>= 2).
        n_test_groups: Groups tested per split (1 <= n_test_groups < n_groups).
        embargo: Sessions embargoed after each contiguous test block (>= 0).
        date_col, t0_col, t1_col, dates, t1: Where the dates come from, as in
            :class:`PurgedKFold`.
    """

    def __init__(
        self,
        n_groups: int = 6,
        n_test_groups: int = 2,
        *,
        embargo: int = 0,
        date_col: str = "date",
        t0_col: str = "t0",
        t1_col: str = "t1",
        dates: Any = None,
        t1: Any = None,
    ) -> None:
        self.n_groups = _check_int("n_groups", n_groups, 2)
        self.n_test_groups = _check_int("n_test_groups", n_test_groups, 1)
        if self.n_test_groups >= self.n_groups:
            raise InputError(
                f"n_test_groups={n_test_groups} must be below n_groups={n_groups}.",
                fix="test fewer groups per split so that some remain for training.",
            )
        super().__init__(embargo, (date_col, t0_col, t1_col), dates, t1)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Return ``C(n_groups, n_test_groups)`` (the arguments are ignored)."""
        return math.comb(self.n_groups, self.n_test_groups)

    @property
    def n_paths(self) -> int:
        """Number of backtest paths, ``C(n_groups - 1, n_test_groups - 1)``."""
        return math.comb(self.n_groups - 1, self.n_test_groups - 1)

    def test_groups(self) -> list[tuple[int, ...]]:
        """Return the test groups of each split, in ``split`` order."""
        return list(itertools.combinations(range(self.n_groups), self.n_test_groups))

    def paths(self) -> np.ndarray:
        """Return an int64 array ``(n_paths, n_groups)``: the split that feeds each cell."""
        out = np.empty((self.n_paths, self.n_groups), dtype=np.int64)
        seen = np.zeros(self.n_groups, dtype=np.int64)
        for s, groups in enumerate(self.test_groups()):
            for g in groups:
                out[seen[g], g] = s
                seen[g] += 1
        return out

    def group_of(self, X: Any) -> np.ndarray:
        """Return the group index (int64) of each row of ``X``."""
        panel = self._panel(X)
        n = panel.sessions.size
        if n < self.n_groups:
            raise _too_few(n, self.n_groups, f"{self.n_groups} groups")
        edges = _block_edges(n, self.n_groups)
        return (np.searchsorted(edges, panel.session, side="right") - 1).astype(np.int64)

    def _plans(self, n_sessions: int) -> list[_Plan]:
        if n_sessions < self.n_groups:
            raise _too_few(n_sessions, self.n_groups, f"{self.n_groups} groups")
        edges = [int(e) for e in _block_edges(n_sessions, self.n_groups)]
        plans = []
        for groups in self.test_groups():
            blocks: list[tuple[int, int]] = []
            for g in groups:
                if blocks and blocks[-1][1] == edges[g]:  # adjacent: one contiguous block
                    blocks[-1] = (blocks[-1][0], edges[g + 1])
                else:
                    blocks.append((edges[g], edges[g + 1]))
            plans.append(_Plan(tuple(blocks), (0, n_sessions), "after"))
        return plans
