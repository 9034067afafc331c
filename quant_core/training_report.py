"""The training report: every out-of-fold metric of one cross-validated run, and its rendering.

:func:`build_report` turns the out-of-fold frame of
:func:`~quantdesk.quant_core.training.train_cv` into a :class:`TrainingReport`; the metrics
themselves (IC, ROC AUC, classification and regression metrics) are pure functions in
:mod:`~quantdesk.quant_core.oof_metrics`, re-exported here. The score is sorted once and that
order serves the IC ranks, the pooled and per-fold AUCs and the threshold sweep.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from quantdesk.quant_core.oof_metrics import (
    ICStats,
    calibration_table,
    classification_metrics,
    confusion_matrix,
    ic_by_date,
    ic_frames,
    ic_summary,
    regression_metrics,
    roc_auc,
    threshold_sweep,
    threshold_sweep_sorted,
)
from quantdesk.quant_core.rank_statistics import auc_sorted

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
    score = oof["score"].to_numpy()
    # One sort of the score serves the IC ranks and, when the score is P(positive) as for a
    # binary model, the pooled and per-fold AUCs and the threshold sweep too.
    score_order = np.argsort(score)
    per_class = confusion = calibration = sweep = None
    if classes is None:
        metrics = regression_metrics(y_true, oof["y_pred"].to_numpy())
        pred = oof["y_pred"].to_numpy()

        def fold_metric(k: int) -> float:
            mask = fold_ids == k
            return regression_metrics(y_true[mask], pred[mask])["r2"]

        metric_name = "r2"
    else:
        codes = np.searchsorted(classes, y_true.astype(np.int64))
        proba = oof.select(f"proba_{int(c)}" for c in classes).to_numpy()
        binary = None
        if task == "binary":
            positive = proba[:, 1]
            order = score_order if np.array_equal(positive, score) else np.argsort(positive)
            # Rows in ascending P(positive): target and probability, pooled and by fold.
            binary = ((codes == 1)[order], positive[order])
            by_fold = _by_fold(fold_ids[order], *binary)
        binary_auc = auc_sorted(*binary) if binary else None
        metrics, class_rows, cm = classification_metrics(codes, proba, binary_auc=binary_auc)
        per_class = tuple({"class": int(classes[r["code"]]), **r} for r in class_rows)
        confusion = tuple(tuple(int(v) for v in row) for row in cm)
        if binary:
            calibration = tuple(calibration_table(codes, proba[:, 1]))
            sweep = tuple(threshold_sweep_sorted(*binary))
            metrics["ece"] = sum(
                r["n"] * abs(r["mean_pred"] - r["frac_pos"]) for r in calibration
            ) / len(codes)

        def fold_metric(k: int) -> float:
            if binary:  # the fold's rows, still in ascending P(positive) order
                return auc_sorted(*by_fold[k]) if k in by_fold else math.nan
            mask = fold_ids == k
            return float(np.mean(np.argmax(proba[mask], axis=1) == codes[mask]))

        metric_name = "roc_auc" if task == "binary" else "accuracy"

    targets = ["y_true", *(["ret"] if "ret" in oof.columns else [])]
    ic_frame, *ic_other = ic_frames(oof, "score", targets, "fold", score_order)
    ic_ret = ic_summary(ic_other[0]["ic"].to_numpy()) if ic_other else None
    fold_ic = dict(
        ic_frame.group_by("fold").agg(pl.col("ic").mean()).select("fold", "ic").iter_rows()
    )
    fold_rows = []
    for info in folds:
        k = info["fold"]
        trained = info.get("error") is None
        row = {**info, "ic_mean": fold_ic.get(k, math.nan) if trained else math.nan}
        row[metric_name] = fold_metric(k) if trained else math.nan
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


def _by_fold(fold: np.ndarray, *columns: np.ndarray) -> dict[int, tuple[np.ndarray, ...]]:
    """Split row-aligned ``columns`` by ``fold``, keeping their order inside each fold."""
    if fold.size == 0:
        return {}
    # One stable sort by fold (a linear radix sort for small non-negative fold numbers)
    # instead of a boolean mask per fold.
    key = fold.astype(np.uint16) if fold.min() >= 0 and fold.max() < 2**16 else fold
    perm = np.argsort(key, kind="stable")
    ordered = fold[perm]
    edges = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    starts, ends = np.concatenate(([0], edges)), np.concatenate((edges, [fold.size]))
    moved = [c[perm] for c in columns]
    return {
        int(ordered[a]): tuple(c[a:b] for c in moved) for a, b in zip(starts, ends, strict=True)
    }


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
