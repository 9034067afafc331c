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


def _run_edges(sorted_values: np.ndarray) -> np.ndarray:
    """Boundaries ``[0, ..., n]`` of the runs of equal values of sorted data."""
    change = sorted_values[1:] != sorted_values[:-1]
    return np.concatenate(([0], np.flatnonzero(change) + 1, [sorted_values.size]))


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
    edges = _run_edges(values_sorted)
    if edges.size == y_sorted.size + 1:  # no ties: the rank of position p is p + 1
        rank_sum = float(np.flatnonzero(y_sorted).sum() + n_pos)
    else:
        positives = np.concatenate(([0], np.cumsum(y_sorted, dtype=np.int64)))[edges]
        # A run spanning positions [a, b) has the average 1-based rank (a + b + 1) / 2.
        rank_sum = float(np.dot(np.diff(positives), (edges[:-1] + edges[1:] + 1) / 2))
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _argsort(values: np.ndarray) -> np.ndarray:
    """``argsort``; integers spanning fewer than 2**16 values (class labels) use a radix sort."""
    if values.size and values.dtype.kind in "iub":
        low = int(values.min())
        if int(values.max()) - low < 2**16:
            return np.argsort((values.astype(np.int64) - low).astype(np.uint16), kind="stable")
    return np.argsort(values)


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
        if order is None:
            order = _argsort(np.asarray(values))
        # A stable sort by group keeps the value order inside each group; group numbers fit
        # 16 bits on daily panels, where numpy's stable sort is a linear radix sort.
        groups = self.group[order]
        if self.starts.size < 2**16:
            groups = groups.astype(np.uint16)
        order = order[np.argsort(groups, kind="stable")]
        # Group g now occupies rows starts[g]:starts[g] + sizes[g] of the sorted sequence.
        ordered = np.asarray(values)[order]
        change = ordered[1:] != ordered[:-1]
        change |= self._new_group
        edges = np.concatenate(([0], np.flatnonzero(change) + 1, [ordered.size]))
        if edges.size == ordered.size + 1:  # no ties: rank = position in the group
            centred = self._untied
        else:
            first = self.group[edges[:-1]]
            average = (edges[:-1] + edges[1:] + 1) / 2 - self.starts[first]
            centred = np.repeat(average - (self.sizes[first] + 1) / 2, np.diff(edges))
        out = np.empty(order.size)
        out[order] = centred
        return out

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
