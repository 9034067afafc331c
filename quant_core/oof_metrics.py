"""Out-of-fold metrics: information coefficient, ROC AUC, classification and regression metrics.

Every metric is a pure, vectorised function of numpy arrays, so a report on a million
out-of-fold rows costs a fraction of a second. Ranks come from sorts
(:mod:`~quantdesk.quant_core.rank_statistics`), and a caller that already sorted the score can
pass the order on (``ic_frames(score_order=...)``, ``threshold_sweep_sorted``,
``classification_metrics(binary_auc=...)``) so one sort serves every metric.

Information coefficient (IC): the Spearman rank correlation between the model's score and the
realised target across symbols on one date (Grinold & Kahn, *Active Portfolio Management*,
ch. 6). From the per-date series ``IC_d`` over ``n`` dates:
``IC IR = mean(IC) / std(IC)`` (per period, **not annualised**: daily dates with horizon-``h``
labels are not independent draws, so no single annualisation factor is right) and
``t = mean(IC) / (std(IC) / sqrt(n))``. Overlapping label horizons make consecutive ICs
correlated, so the t-statistic overstates significance by roughly ``sqrt(h)`` for an ``h``-day
horizon. Dates with fewer than 2 rows or a constant score/target have no IC and are skipped.
With combinatorial CV a row can be out-of-fold in several folds, so ICs are computed per
``(fold, date)``.

ROC AUC is computed from average ranks (Mann-Whitney U), which equals scikit-learn's
``roc_auc_score`` including ties; multiclass AUC is the unweighted mean of one-vs-rest AUCs.
MCC uses the K-class formula of Gorodkin (2004), which reduces to Matthews (1975) for K = 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from quantdesk.quant_core.rank_statistics import GroupedRows, auc_sorted, spearman_by_group

__all__ = [
    "ICStats",
    "calibration_table",
    "classification_metrics",
    "confusion_matrix",
    "ic_by_date",
    "ic_frames",
    "ic_summary",
    "regression_metrics",
    "roc_auc",
    "threshold_sweep",
    "threshold_sweep_sorted",
]

_EPS = 1e-15


@dataclass(frozen=True)
class ICStats:
    """Summary of a per-date information-coefficient series.

    Attributes:
        n_dates: Dates with a defined IC.
        mean: Mean IC.
        std: Sample standard deviation (ddof=1) of the IC.
        ir: ``mean / std`` per period (not annualised).
        t_stat: ``mean / (std / sqrt(n_dates))``.
        hit_rate: Share of dates with a positive IC.
    """

    n_dates: int
    mean: float
    std: float
    ir: float
    t_stat: float
    hit_rate: float


def ic_by_date(
    frame: pl.DataFrame, score: str = "score", target: str = "y_true", by: str | None = "fold"
) -> pl.DataFrame:
    """Return the Spearman IC per ``(by, date)``: columns ``[by,] date, ic, n``.

    Undefined ICs (fewer than 2 rows, constant inputs) are dropped.
    """
    return ic_frames(frame, score, [target], by)[0]


def ic_frames(
    frame: pl.DataFrame,
    score: str,
    targets: list[str],
    by: str | None,
    score_order: np.ndarray | None = None,
) -> list[pl.DataFrame]:
    """:func:`ic_by_date` for several targets, ranking the score once.

    Args:
        frame: Rows with the key columns ``[by,] date``, the score and the targets.
        score: Score column.
        targets: Target columns; one IC frame per target, in this order.
        by: Extra grouping column (``fold``) or ``None``.
        score_order: ``numpy.argsort`` of the score column when already computed.

    Without nulls or NaN the ranks and correlations come from sorted numpy arrays
    (:mod:`~quantdesk.quant_core.rank_statistics`); otherwise polars ranks per group and skips
    what it cannot rank.
    """
    keys = [by, "date"] if by is not None else ["date"]
    grouped, order = _contiguous_groups(frame, keys)
    if grouped is None or not all(_rankable(frame[c]) for c in (score, *targets)):
        return [_ic_by_date_polars(frame, score, t, keys) for t in targets]

    def column(name: str) -> np.ndarray:
        values = frame[name].to_numpy()
        return values if order is None else values[order]

    ics = spearman_by_group(
        grouped,
        column(score),
        [column(t) for t in targets],
        score_order if order is None else None,
    )
    first = frame.select(keys)[grouped.starts if order is None else order[grouped.starts]]
    n = pl.Series("n", grouped.sizes, dtype=pl.UInt32)
    return [
        first.with_columns(pl.Series("ic", ic), n).filter(pl.Series(~np.isnan(ic))) for ic in ics
    ]


def _ic_by_date_polars(
    frame: pl.DataFrame, score: str, target: str, keys: list[str]
) -> pl.DataFrame:
    return (
        frame.group_by(keys)
        .agg(
            pl.corr(pl.col(score).rank("average"), pl.col(target).rank("average")).alias("ic"),
            pl.len().alias("n"),
        )
        .filter(pl.col("ic").is_not_null() & pl.col("ic").is_not_nan())
        .sort(keys)
    )


def _rankable(series: pl.Series) -> bool:
    if series.null_count() or not (series.dtype.is_numeric() or series.dtype == pl.Boolean):
        return False
    return not (series.dtype.is_float() and series.is_nan().any())


def _contiguous_groups(
    frame: pl.DataFrame, keys: list[str]
) -> tuple[GroupedRows | None, np.ndarray | None]:
    """Rows grouped by ``keys`` and the sorting permutation (``None`` when already sorted).

    Returns ``(None, None)`` when a key is null or not an integer/temporal column (polars
    then groups), or the frame is empty.
    """
    columns = [frame[k] for k in keys]
    if frame.height == 0 or any(
        c.null_count() or not (c.dtype.is_integer() or c.dtype.is_temporal()) for c in columns
    ):
        return None, None
    arrays = [c.to_physical().to_numpy() for c in columns]
    order = None
    # Out-of-fold frames come sorted by (fold, date); check before paying for a sort.
    tied = np.ones(frame.height - 1, dtype=bool)
    for a in arrays:
        if np.any(tied & (a[1:] < a[:-1])):
            order = np.lexsort(arrays[::-1])
            arrays = [a[order] for a in arrays]
            break
        tied &= a[1:] == a[:-1]
    change = np.zeros(frame.height - 1, dtype=bool)
    for a in arrays:
        change |= a[1:] != a[:-1]
    starts = np.concatenate(([0], np.flatnonzero(change) + 1))
    return GroupedRows(starts, frame.height), order


def ic_summary(ic: np.ndarray) -> ICStats:
    """Summarise a per-date IC series (see the module docstring for the formulas)."""
    ic = np.asarray(ic, dtype=np.float64)
    n = ic.size
    mean = float(ic.mean()) if n else math.nan
    std = float(ic.std(ddof=1)) if n > 1 else math.nan
    ir = mean / std if std > 0 else math.nan
    return ICStats(
        n_dates=n,
        mean=mean,
        std=std,
        ir=ir,
        t_stat=ir * math.sqrt(n) if std > 0 else math.nan,
        hit_rate=float(np.mean(ic > 0)) if n else math.nan,
    )


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of ``score`` for the boolean/0-1 target ``y``; NaN when ``y`` has one class."""
    score = np.asarray(score)
    order = np.argsort(score)
    return auc_sorted(np.asarray(y, dtype=bool)[order], score[order])


def confusion_matrix(true_codes: np.ndarray, pred_codes: np.ndarray, k: int) -> np.ndarray:
    """K x K counts: row = true class code, column = predicted class code."""
    flat = np.asarray(true_codes, dtype=np.int64) * k + np.asarray(pred_codes, dtype=np.int64)
    return np.bincount(flat, minlength=k * k).reshape(k, k)


def classification_metrics(
    true_codes: np.ndarray, proba: np.ndarray, *, binary_auc: float | None = None
) -> tuple[dict[str, float], list[dict[str, Any]], np.ndarray]:
    """Metrics of class probabilities ``proba`` (n x K) against class codes ``0..K-1``.

    Returns:
        Headline metrics (accuracy, balanced accuracy, MCC, macro F1, macro ROC AUC, log
        loss), per-class rows (precision, recall, F1, support, one-vs-rest AUC) and the
        confusion matrix. Binary adds the positive class's precision/recall/F1, Brier score
        and ROC AUC of P(class 1).

    Args:
        true_codes: Class code of each row.
        proba: Class probabilities, one column per class code.
        binary_auc: ROC AUC of ``proba[:, 1]`` when the caller already computed it (saves a
            sort of every row); binary only.
    """
    true_codes = np.asarray(true_codes, dtype=np.int64)
    k = proba.shape[1]
    pred_codes = np.argmax(proba, axis=1)
    cm = confusion_matrix(true_codes, pred_codes, k)
    n = cm.sum()
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, math.nan)
        recall = np.where(support > 0, tp / support, math.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    cov_tp = float(tp.sum() * n - support @ predicted)
    cov_tt = float(n * n - support @ support)
    cov_pp = float(n * n - predicted @ predicted)
    mcc = cov_tp / math.sqrt(cov_tt * cov_pp) if cov_tt * cov_pp > 0 else 0.0
    if k == 2:  # both one-vs-rest AUCs of a binary problem are the same number
        if binary_auc is None:
            binary_auc = roc_auc(true_codes == 1, proba[:, 1])
        aucs = [binary_auc] * 2
    else:
        aucs = [roc_auc(true_codes == c, proba[:, c]) for c in range(k)]
    p_true = np.clip(proba[np.arange(true_codes.size), true_codes], _EPS, 1.0)
    per_class = [
        {
            "code": c,
            "precision": float(precision[c]),
            "recall": float(recall[c]),
            "f1": float(f1[c]),
            "support": int(support[c]),
            "roc_auc_ovr": aucs[c],
        }
        for c in range(k)
    ]
    headline = {
        "accuracy": float(tp.sum() / n),
        "balanced_accuracy": float(np.nanmean(recall)),
        "mcc": mcc,
        "macro_f1": float(np.mean(f1)),
        "roc_auc_macro": float(np.nanmean(aucs)) if not np.all(np.isnan(aucs)) else math.nan,
        "log_loss": float(-np.mean(np.log(p_true))),
    }
    if k == 2:
        positive = proba[:, 1]
        headline.update(
            roc_auc=aucs[1],
            precision=float(precision[1]),
            recall=float(recall[1]),
            f1=float(f1[1]),
            brier=float(np.mean((positive - true_codes) ** 2)),
            base_rate=float(np.mean(true_codes)),
        )
    return headline, per_class, cm


def calibration_table(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[dict[str, Any]]:
    """Reliability buckets of a predicted probability.

    ``n_bins`` equal-width bins on ``[0, 1]`` with count, mean predicted probability and
    observed positive rate; empty bins are left out.
    """
    y = np.asarray(y, dtype=np.float64)
    bins = np.minimum((np.asarray(p) * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    sum_p = np.bincount(bins, weights=p, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    return [
        {
            "bin_lo": b / n_bins,
            "bin_hi": (b + 1) / n_bins,
            "n": int(count[b]),
            "mean_pred": float(sum_p[b] / count[b]),
            "frac_pos": float(sum_y[b] / count[b]),
        }
        for b in range(n_bins)
        if count[b] > 0
    ]


def threshold_sweep(
    y: np.ndarray, p: np.ndarray, thresholds: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Metrics of the rule "positive when ``p >= threshold``" for each threshold.

    Rows hold coverage (share flagged), precision, recall, F1 and accuracy; thresholds default
    to 0.05, 0.10, ..., 0.95.
    """
    order = np.argsort(p)
    return threshold_sweep_sorted(
        np.asarray(y).astype(bool)[order], np.asarray(p)[order], thresholds
    )


def threshold_sweep_sorted(
    y_sorted: np.ndarray, p_sorted: np.ndarray, thresholds: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """:func:`threshold_sweep` on rows already sorted by ascending ``p`` (ties in any order).

    Args:
        y_sorted: Boolean target of each row, in that order.
        p_sorted: The predicted probabilities, ascending.
        thresholds: As in :func:`threshold_sweep`.
    """
    if thresholds is None:
        thresholds = np.round(np.arange(1, 20) * 0.05, 2)
    # Positives among predictions >= t, via a cumulative count over p sorted ascending.
    pos_sorted = np.concatenate([[0], np.cumsum(y_sorted)])
    n, n_pos = y_sorted.size, int(pos_sorted[-1])
    rows = []
    for t in thresholds:
        first = int(np.searchsorted(p_sorted, t, side="left"))
        flagged = n - first
        tp = n_pos - int(pos_sorted[first])
        precision = tp / flagged if flagged else math.nan
        recall = tp / n_pos if n_pos else math.nan
        f1 = 2 * tp / (flagged + n_pos) if flagged + n_pos else math.nan
        rows.append(
            {
                "threshold": float(t),
                "n_flagged": flagged,
                "coverage": flagged / n,
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "accuracy": (tp + (n - flagged) - (n_pos - tp)) / n,
            }
        )
    return rows


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R², pooled Spearman and Pearson correlation, and sign accuracy."""
    y = np.asarray(y, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    err = pred - y
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    both = pl.DataFrame({"y": y, "p": pred})
    corr = both.select(
        pl.corr("p", "y", method="spearman").alias("spearman"),
        pl.corr("p", "y").alias("pearson"),
    ).row(0, named=True)
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else math.nan,
        "spearman": _float(corr["spearman"]),
        "pearson": _float(corr["pearson"]),
        "sign_accuracy": float(np.mean(np.sign(pred) == np.sign(y))),
    }


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)
