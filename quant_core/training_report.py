"""Out-of-fold metrics and the training report.

Every metric is a pure, vectorised function of numpy arrays (or, for the per-date information
coefficient, a polars ``group_by``), so a report on a million out-of-fold rows costs a fraction
of a second.

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
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import rankdata

__all__ = [
    "ICStats",
    "TrainingReport",
    "build_report",
    "calibration_table",
    "classification_metrics",
    "confusion_matrix",
    "ic_by_date",
    "ic_summary",
    "regression_metrics",
    "roc_auc",
    "threshold_sweep",
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
    keys = [by, "date"] if by is not None else ["date"]
    return (
        frame.group_by(keys)
        .agg(
            pl.corr(pl.col(score).rank("average"), pl.col(target).rank("average")).alias("ic"),
            pl.len().alias("n"),
        )
        .filter(pl.col("ic").is_not_null() & pl.col("ic").is_not_nan())
        .sort(keys)
    )


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
    y = np.asarray(y).astype(bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def confusion_matrix(true_codes: np.ndarray, pred_codes: np.ndarray, k: int) -> np.ndarray:
    """K x K counts: row = true class code, column = predicted class code."""
    flat = np.asarray(true_codes, dtype=np.int64) * k + np.asarray(pred_codes, dtype=np.int64)
    return np.bincount(flat, minlength=k * k).reshape(k, k)


def classification_metrics(
    true_codes: np.ndarray, proba: np.ndarray
) -> tuple[dict[str, float], list[dict[str, Any]], np.ndarray]:
    """Metrics of class probabilities ``proba`` (n x K) against class codes ``0..K-1``.

    Returns:
        Headline metrics (accuracy, balanced accuracy, MCC, macro F1, macro ROC AUC, log
        loss), per-class rows (precision, recall, F1, support, one-vs-rest AUC) and the
        confusion matrix. Binary adds the positive class's precision/recall/F1, Brier score
        and ROC AUC of P(class 1).
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
        aucs = [roc_auc(true_codes == 1, proba[:, 1])] * 2
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
    if thresholds is None:
        thresholds = np.round(np.arange(1, 20) * 0.05, 2)
    y = np.asarray(y).astype(bool)
    order = np.argsort(p)
    p_sorted = np.asarray(p)[order]
    # Positives among predictions >= t, via a cumulative count over p sorted ascending.
    pos_sorted = np.concatenate([[0], np.cumsum(y[order])])
    n, n_pos = y.size, int(y.sum())
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


@dataclass(frozen=True)
class TrainingReport:
    """Everything measured in one cross-validated training run.

    Attributes:
        task: ``regression``, ``binary`` or ``multiclass``.
        kind: ``lightgbm`` or ``linear``.
        n_rows: Out-of-fold rows scored.
        n_dates: Distinct out-of-fold dates.
        classes: Class labels (classification) or ``None``.
        metrics: Headline metrics on the pooled out-of-fold predictions.
        ic: Per-date Spearman IC of the score against the label.
        ic_ret: Same against the realised return ``ret`` when the labels carry it.
        per_class: Per-class precision/recall/F1/support/AUC (classification).
        confusion: Confusion matrix, rows = true class, columns = predicted.
        calibration: Reliability buckets of P(positive) (binary).
        threshold_sweep: Metrics per decision threshold on P(positive) (binary).
        folds: One row per fold: sizes, date ranges, fold IC and metric, timing, error.
        feature_importance: Per feature: mean gain share (``abs_coef`` share for linear),
            permutation importance mean/std when computed; sorted by gain.
        importance_type: ``gain`` or ``abs_coef``.
        permutation_metric: Loss the permutation importance increases (``mse``/``log_loss``).
        timings: Seconds per phase (see ``training.Timings``).
        data_hash: Hash of the training dataset.
        spec: The model spec as a dict.
    """

    task: str
    kind: str
    n_rows: int
    n_dates: int
    classes: tuple[int, ...] | None
    metrics: dict[str, float]
    ic: ICStats
    ic_ret: ICStats | None
    per_class: tuple[dict[str, Any], ...] | None
    confusion: tuple[tuple[int, ...], ...] | None
    calibration: tuple[dict[str, Any], ...] | None
    threshold_sweep: tuple[dict[str, Any], ...] | None
    folds: tuple[dict[str, Any], ...]
    feature_importance: tuple[dict[str, Any], ...]
    importance_type: str
    permutation_metric: str | None
    timings: dict[str, float]
    data_hash: str
    spec: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN becomes ``None``, dates ISO strings)."""
        return _jsonable(asdict(self))

    def to_markdown(self, *, top_features: int = 15, heading_level: int = 1) -> str:
        """Render a readable report: headline metrics, IC, folds, features, diagnostics.

        Args:
            top_features: Feature rows shown, by importance.
            heading_level: Markdown level of the title (sections are one level deeper), to
                embed the report in a larger document.
        """
        h = "#" * (heading_level + 1)
        lines = [
            f"{'#' * heading_level} Training report: {self.kind} {self.task}",
            "",
            f"{self.n_rows} out-of-fold rows over {self.n_dates} dates, "
            f"{len(self.folds)} folds; data hash `{self.data_hash[:12]}`; seed "
            f"{self.spec.get('seed')}; params {self.spec.get('params')}.",
            "",
            f"{h} Headline metrics",
            "",
            *_table(["metric", "value"], [[k, v] for k, v in self.metrics.items()]),
            "",
            f"{h} Information coefficient (per-date Spearman, not annualised)",
            "",
        ]
        ic_rows = [["label", *asdict(self.ic).values()]]
        if self.ic_ret is not None:
            ic_rows.append(["ret", *asdict(self.ic_ret).values()])
        lines += _table(["target", *asdict(self.ic)], ic_rows)
        lines += ["", f"{h} Folds", ""]
        fold_cols = list(self.folds[0]) if self.folds else []
        lines += _table(fold_cols, [[f.get(c) for c in fold_cols] for f in self.folds])
        metric = self.permutation_metric
        perm = f"; permutation: increase of {metric}" if metric else ""
        lines += ["", f"{h} Top features ({self.importance_type} share{perm})", ""]
        imp_cols = list(self.feature_importance[0]) if self.feature_importance else []
        top = self.feature_importance[:top_features]
        lines += _table(imp_cols, [[f.get(c) for c in imp_cols] for f in top])
        if self.per_class is not None:
            lines += ["", f"{h} Per class", ""]
            cols = list(self.per_class[0])
            lines += _table(cols, [[r[c] for c in cols] for r in self.per_class])
        if self.confusion is not None and self.classes is not None:
            lines += ["", f"{h} Confusion matrix (rows: true, columns: predicted)", ""]
            header = ["true \\ pred", *[str(c) for c in self.classes]]
            body = [[str(c), *row] for c, row in zip(self.classes, self.confusion, strict=True)]
            lines += _table(header, body)
        for title, rows in (
            ("Calibration of P(positive)", self.calibration),
            ("Threshold sweep on P(positive)", self.threshold_sweep),
        ):
            if rows:
                lines += ["", f"{h} {title}", ""]
                cols = list(rows[0])
                lines += _table(cols, [[r[c] for c in cols] for r in rows])
        lines += ["", f"{h} Timings (seconds)", ""]
        lines += _table(["phase", "seconds"], [[k, v] for k, v in self.timings.items()])
        return "\n".join(lines) + "\n"


def build_report(
    oof: pl.DataFrame,
    *,
    task: str,
    kind: str,
    classes: np.ndarray | None,
    folds: list[dict[str, Any]],
    feature_names: tuple[str, ...],
    fold_importance: np.ndarray,
    importance_type: str,
    permutation: tuple[np.ndarray, np.ndarray] | None,
    permutation_metric: str | None,
    timings: dict[str, float],
    data_hash: str,
    spec: dict[str, Any],
) -> TrainingReport:
    """Compute every metric of a :class:`TrainingReport` from an out-of-fold frame.

    Args:
        oof: Columns ``date, symbol, fold, y_true, y_pred, score`` [, ``ret``]
            [, ``proba_<class>``...] (see ``training.train_cv``).
        task: ``regression``, ``binary`` or ``multiclass``.
        kind: Model kind, for the record.
        classes: Sorted class labels (classification) or ``None``.
        folds: One dict per fold (sizes, dates, timing, error); fold metrics are added.
        feature_names: Feature names in column order.
        fold_importance: ``(n_trained_folds, n_features)`` raw importance per fold.
        importance_type: ``gain`` or ``abs_coef``.
        permutation: Mean and std of the permutation importance per feature, or ``None``.
        permutation_metric: The loss the permutation importance is measured on.
        timings: Seconds per phase.
        data_hash: Dataset hash.
        spec: Model spec as a dict.
    """
    y_true = oof["y_true"].to_numpy()
    fold_ids = oof["fold"].to_numpy()
    per_class = confusion = calibration = sweep = None
    if classes is None:
        metrics = regression_metrics(y_true, oof["y_pred"].to_numpy())
        pred = oof["y_pred"].to_numpy()

        def fold_metric(mask: np.ndarray) -> float:
            return regression_metrics(y_true[mask], pred[mask])["r2"]

        metric_name = "r2"
    else:
        codes = np.searchsorted(classes, y_true.astype(np.int64))
        proba = oof.select(f"proba_{int(c)}" for c in classes).to_numpy()
        metrics, class_rows, cm = classification_metrics(codes, proba)
        per_class = tuple({"class": int(classes[r["code"]]), **r} for r in class_rows)
        confusion = tuple(tuple(int(v) for v in row) for row in cm)
        if task == "binary":
            calibration = tuple(calibration_table(codes, proba[:, 1]))
            sweep = tuple(threshold_sweep(codes, proba[:, 1]))
            metrics["ece"] = sum(
                r["n"] * abs(r["mean_pred"] - r["frac_pos"]) for r in calibration
            ) / len(codes)

        def fold_metric(mask: np.ndarray) -> float:
            if task == "binary":
                return roc_auc(codes[mask] == 1, proba[mask, 1])
            return float(np.mean(np.argmax(proba[mask], axis=1) == codes[mask]))

        metric_name = "roc_auc" if task == "binary" else "accuracy"

    ic_frame = ic_by_date(oof, "score", "y_true")
    ic_ret = None
    if "ret" in oof.columns:
        ic_ret = ic_summary(ic_by_date(oof, "score", "ret")["ic"].to_numpy())
    fold_ic = dict(
        ic_frame.group_by("fold").agg(pl.col("ic").mean()).select("fold", "ic").iter_rows()
    )
    fold_rows = []
    for info in folds:
        k = info["fold"]
        trained = info.get("error") is None
        row = {**info, "ic_mean": fold_ic.get(k, math.nan) if trained else math.nan}
        row[metric_name] = fold_metric(fold_ids == k) if trained else math.nan
        fold_rows.append(row)

    shares = fold_importance / np.maximum(fold_importance.sum(axis=1, keepdims=True), _EPS)
    importance = []
    for j, name in enumerate(feature_names):
        row = {
            "feature": name,
            importance_type: float(shares[:, j].mean()),
            f"{importance_type}_std": float(shares[:, j].std()),
        }
        if permutation is not None:
            row["permutation_mean"] = float(permutation[0][j])
            row["permutation_std"] = float(permutation[1][j])
        importance.append(row)
    importance.sort(key=lambda r: -r[importance_type])
    return TrainingReport(
        task=task,
        kind=kind,
        n_rows=oof.height,
        n_dates=oof["date"].n_unique(),
        classes=None if classes is None else tuple(int(c) for c in classes),
        metrics=metrics,
        ic=ic_summary(ic_frame["ic"].to_numpy()),
        ic_ret=ic_ret,
        per_class=per_class,
        confusion=confusion,
        calibration=calibration,
        threshold_sweep=sweep,
        folds=tuple(fold_rows),
        feature_importance=tuple(importance),
        importance_type=importance_type,
        permutation_metric=permutation_metric,
        timings=timings,
        data_hash=data_hash,
        spec=spec,
    )


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.integer | bool | np.bool_):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, date):
        return value.isoformat()
    return value
