"""Rank statistics from one sort: ROC AUC with ties and the per-group Spearman correlation.

The training report needs the same ranks several times over a million out-of-fold rows: the
pooled ROC AUC, the AUC of every fold, the threshold sweep and the per-date information
coefficient all rank the same score. Sorting is the only super-linear step, so these helpers
take a sort order computed once (``numpy.argsort`` of the score) and derive everything else
in linear passes.

Ties get average ranks, as ``scipy.stats.rankdata(method="average")`` and polars
``rank("average")`` give them. The AUC is the Mann-Whitney statistic
``(sum of positive ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``; average ranks are
half-integers, so the rank sums are exact in float64 below 2**52 and the AUC does not depend on
the summation order. Spearman's correlation is Pearson's on the average ranks, computed from
ranks centred on their group mean ``(n + 1) / 2`` (also half-integers: exact sums, no
cancellation).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["GroupedRows", "auc_sorted", "spearman_by_group"]


class _TieRuns:
    """Runs of equal values in sorted data, from the positions ``p`` that tie with ``p + 1``.

    Attributes:
        start: First position of each run.
        size: Length of each run (at least 2).
        first: Where each run begins in ``members``.
        members: Every position inside a run, run by run.
    """

    def __init__(self, tied: np.ndarray) -> None:
        opens = np.concatenate(([True], tied[1:] != tied[:-1] + 1))  # p starts a new run
        self.start = tied[opens]
        end = np.append(tied[np.flatnonzero(opens)[1:] - 1], tied[-1]) + 2  # exclusive
        self.size = end - self.start
        self.first = np.cumsum(self.size) - self.size
        self.members = np.repeat(self.start - self.first, self.size) + np.arange(self.size.sum())


def auc_sorted(y_sorted: np.ndarray, values_sorted: np.ndarray) -> float:
    """ROC AUC of scores already sorted ascending, with their boolean targets in that order.

    Args:
        y_sorted: Boolean (or 0/1) target of each row, rows in ascending score order.
        values_sorted: The scores, ascending (ties in any order; NaN last, as numpy sorts).

    Returns:
        The AUC, or NaN when ``y`` has a single class or a score is NaN (as ``rankdata``
        propagates NaN).
    """
    y_sorted = np.asarray(y_sorted, dtype=bool)
    n_pos = int(np.count_nonzero(y_sorted))
    n_neg = y_sorted.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    if values_sorted.dtype.kind == "f" and np.isnan(values_sorted[-1]):
        return math.nan
    # Untied, position p has rank p + 1. A run of ties spanning [a, b) gives each member the
    # average rank (a + b + 1) / 2 instead; model scores tie rarely, so only those runs are
    # visited to correct the sum.
    rank_sum = float(np.flatnonzero(y_sorted).sum() + n_pos)
    tied = np.flatnonzero(values_sorted[1:] == values_sorted[:-1])  # p ties with p + 1
    if tied.size:
        runs = _TieRuns(tied)
        positive = y_sorted[runs.members]
        n_pos_run = np.add.reduceat(positive.astype(np.int64), runs.first)
        own_ranks = int(runs.members[positive].sum()) + int(n_pos_run.sum())
        average = runs.start + (runs.size + 1) / 2  # (a + b + 1) / 2 for the run [a, b)
        rank_sum += float(np.dot(n_pos_run, average)) - own_ranks
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


class GroupedRows:
    """Rows split into contiguous groups (e.g. one ``(fold, date)`` each), for per-group ranks.

    Args:
        starts: First row of each group, ascending, starting at 0; groups are contiguous.
        n_rows: Total number of rows.
    """

    def __init__(self, starts: np.ndarray, n_rows: int) -> None:
        self.starts = np.asarray(starts, dtype=np.int64)
        self.sizes = np.diff(np.append(self.starts, n_rows))
        self.group = np.repeat(np.arange(self.starts.size), self.sizes)
        self._new_group = self.group[1:] != self.group[:-1]
        # Centred rank of each position of a group when the group has no ties.
        self._untied = np.arange(n_rows) - np.repeat(self.starts + (self.sizes - 1) / 2, self.sizes)

    def centred_ranks(self, values: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
        """Average ranks of ``values`` within each group minus the group's mean rank.

        Args:
            values: One value per row, without NaN.
            order: ``argsort(values)`` when already computed (any order among ties).
        """
        values = np.asarray(values)
        order = self._group_order(values, order)
        # Group g now occupies rows starts[g]:starts[g] + sizes[g] of the sorted sequence.
        ordered = values[order]
        same = ordered[1:] == ordered[:-1]
        same &= ~self._new_group
        tied = np.flatnonzero(same)  # p ties with p + 1 inside its group
        # Untied, a row's centred rank is its position in the group minus the centre; each run
        # of ties takes the mean of its members' positions instead.
        centred = self._untied
        if tied.size:
            runs = _TieRuns(tied)
            centred = centred.copy()
            mean = centred[runs.start] + (runs.size - 1) / 2
            centred[runs.members] = np.repeat(mean, runs.size)
        out = np.empty(order.size)
        out[order] = centred
        return out

    def _group_order(self, values: np.ndarray, order: np.ndarray | None) -> np.ndarray:
        """Rows sorted by group, then value.

        numpy's stable sort of 16-bit keys is a radix sort, linear in the rows.
        """
        n_groups = self.starts.size
        if self.sizes.size and np.all(self.sizes == self.sizes[0]):
            # A balanced panel (every group the same size): sort each group on its own, a
            # short sort per row of a (groups, size) view instead of a global one.
            within = np.argsort(values.reshape(n_groups, -1), axis=1)
            return (within + self.starts[:, None]).ravel()
        if order is None and values.size and values.dtype.kind in "iub":
            low = int(values.min())
            span = int(values.max()) - low + 1
            if span * n_groups < 2**16:  # class labels: one sort of (group, value) codes
                key = self.group * span + (values.astype(np.int64) - low)
                return np.argsort(key.astype(np.uint16), kind="stable")
        if order is None:
            order = np.argsort(values)
        # A stable sort by group keeps the value order inside each group.
        groups = self.group[order]
        if n_groups < 2**16:
            groups = groups.astype(np.uint16)
        return order[np.argsort(groups, kind="stable")]

    def correlation(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Pearson correlation of two centred series per group; NaN where either is constant."""
        sab = np.add.reduceat(a * b, self.starts)
        saa = np.add.reduceat(a * a, self.starts)
        sbb = np.add.reduceat(b * b, self.starts)
        out = np.full(self.starts.size, math.nan)
        ok = (saa > 0) & (sbb > 0)
        out[ok] = sab[ok] / np.sqrt(saa[ok] * sbb[ok])
        return out


def spearman_by_group(
    grouped: GroupedRows, x: np.ndarray, ys: list[np.ndarray], x_order: np.ndarray | None = None
) -> list[np.ndarray]:
    """Spearman correlation of ``x`` with each of ``ys`` inside every group.

    Args:
        grouped: The groups (contiguous rows).
        x: Values ranked once and shared by every correlation (e.g. a model score).
        ys: Targets, each one value per row; none may contain NaN.
        x_order: ``argsort(x)`` when already computed.

    Returns:
        One array per target with a correlation per group (NaN for a group of one row or a
        constant input).
    """
    rx = grouped.centred_ranks(x, x_order)
    return [grouped.correlation(rx, grouped.centred_ranks(y)) for y in ys]
