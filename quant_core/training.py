"""Fold-by-fold training on purged splits, out-of-fold predictions and the training report.

:func:`train_cv` converts the dataset's features to one numpy matrix once, asks the splitter
for positional ``(train_idx, test_idx)`` pairs on ``date, symbol, t0, t1``, and for each fold
fits a fresh :class:`~quantdesk.quant_core.models.QuantModel` on the training rows and
predicts the test rows. Every test prediction is kept in an out-of-fold (OOF) frame from which
:func:`~quantdesk.quant_core.training_report.build_report` computes the metrics.

Timing assumption: the splitter is responsible for purging and embargo (training rows whose
label interval ``[t0, t1]`` overlaps a test label are removed); ``train_cv`` only checks that
no row is on both sides.

Cost accounting: ``Timings`` separates LightGBM's (or the linear model's) own fit and predict
time from the overhead (conversion to numpy, splitting, per-fold row gathers, OOF assembly,
metrics), and times permutation importance and the final refit separately, so a benchmark can
report ``overhead_fraction`` of the cross-validation proper.

Permutation importance (Breiman, 2001) is measured on a capped random sample of OOF rows: each
sampled row is re-predicted by the model of its own fold with one feature shuffled among that
fold's sampled rows; the importance is the increase of the pooled loss (MSE for regression,
log loss for classification), averaged over ``n_repeats`` shuffles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from time import perf_counter
from typing import Any, Protocol

import numpy as np
import polars as pl

from quantdesk.quant_core.dataset import Dataset
from quantdesk.quant_core.errors import InputError, InsufficientDataError, QuantdeskRuntimeError
from quantdesk.quant_core.metrics import UndefinedMetricError
from quantdesk.quant_core.models import (
    ModelOutput,
    ModelSpec,
    QuantModel,
    coerce_spec,
    infer_classes,
    proba_column_names,
)
from quantdesk.quant_core.research_context import guard_holdout
from quantdesk.quant_core.training_report import TrainingReport, build_report
from quantdesk.quant_core.trial_recording import (
    RecordedRun,
    holding_period,
    oof_long_short_returns,
    record_run,
)

__all__ = ["FoldResult", "Splitter", "Timings", "TrainingResult", "train_cv"]


class Splitter(Protocol):
    """A scikit-learn style splitter over a frame with ``date``/``t0``/``t1`` columns."""

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Any:
        """Yield ``(train_idx, test_idx)`` positional index arrays."""
        ...


@dataclass(frozen=True)
class Timings:
    """Wall-clock seconds per phase of :func:`train_cv`.

    Attributes:
        to_numpy: Features and labels to numpy (once).
        split: Running the splitter (purging, embargo).
        slicing: Gathering each fold's train/test rows from the matrix.
        fit: Model fitting, summed over folds (LightGBM's own work, incl. binning).
        predict: Model prediction on the test rows, summed over folds.
        assemble: Building the OOF frame.
        metrics: Computing the report.
        permutation: Permutation importance (outside the CV proper).
        final_fit: Refit on all rows (outside the CV proper).
        total: Whole call.
    """

    to_numpy: float
    split: float
    slicing: float
    fit: float
    predict: float
    assemble: float
    metrics: float
    permutation: float
    final_fit: float
    total: float

    @property
    def cv_seconds(self) -> float:
        """Time of the cross-validation proper: total minus permutation and final refit."""
        return self.total - self.permutation - self.final_fit

    @property
    def model_seconds(self) -> float:
        """Fit plus predict time inside the cross-validation."""
        return self.fit + self.predict

    @property
    def overhead_seconds(self) -> float:
        """Everything in the cross-validation that is not the model's own fit/predict."""
        return self.cv_seconds - self.model_seconds

    @property
    def overhead_fraction(self) -> float:
        """``overhead_seconds / cv_seconds`` (the acceptance target is at most 0.10)."""
        return self.overhead_seconds / self.cv_seconds if self.cv_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        """All phases plus the derived totals, in seconds."""
        out = dataclasses.asdict(self)
        for name in ("cv_seconds", "model_seconds", "overhead_seconds", "overhead_fraction"):
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True)
class FoldResult:
    """One fold: sizes, date ranges, timing and the error if it failed.

    Attributes:
        fold: Fold number in splitter order.
        n_train: Training rows.
        n_test: Test rows.
        train_start: First training date.
        train_end: Last training date.
        test_start: First test date.
        test_end: Last test date.
        n_purged: Training rows the splitter purged (``None`` if it has no ``describe``).
        n_embargoed: Training rows the splitter embargoed (``None`` likewise).
        fit_seconds: Fit time.
        predict_seconds: Predict time.
        error: ``"<ExceptionType>: <message>"`` when the fold failed (only with
            ``raise_on_failure=False``), else ``None``.
    """

    fold: int
    n_train: int
    n_test: int
    train_start: date
    train_end: date
    test_start: date
    test_end: date
    n_purged: int | None
    n_embargoed: int | None
    fit_seconds: float
    predict_seconds: float
    error: str | None = None


@dataclass(frozen=True)
class TrainingResult:
    """Output of :func:`train_cv`.

    Attributes:
        report: Metrics, IC, importance, fold table (:class:`TrainingReport`).
        oof: Out-of-fold predictions: ``date, symbol, fold, y_true, y_pred, score``
            [, ``ret``] [, ``proba_<class>``...], one row per (fold, test row).
        folds: One :class:`FoldResult` per split, failed ones included.
        fold_models: The model of each fold (``None`` where the fold failed).
        final_model: Model refit on every row (``refit_final=True``), else ``None``.
        final_error: Why the final refit failed (``raise_on_failure=False``), else ``None``.
        timings: Seconds per phase.
        run: The counted trial and its deflated Sharpe ratio (see
            :mod:`~quantdesk.quant_core.trial_recording`), or ``None`` when the out-of-fold
            predictions could not form a trial series (``run_error`` says why).
        run_error: Why the run was not recorded as a trial, else ``None``.
    """

    report: TrainingReport
    oof: pl.DataFrame
    folds: tuple[FoldResult, ...]
    fold_models: tuple[QuantModel | None, ...]
    final_model: QuantModel | None
    final_error: str | None
    timings: Timings
    run: RecordedRun | None = None
    run_error: str | None = None

    @property
    def failed_folds(self) -> tuple[FoldResult, ...]:
        """Folds that raised during fit or predict."""
        return tuple(f for f in self.folds if f.error is not None)


def train_cv(
    dataset: Dataset,
    spec: ModelSpec | Mapping[str, Any],
    splitter: Splitter,
    *,
    permutation_importance: bool = True,
    max_permutation_rows: int = 20_000,
    n_repeats: int = 3,
    refit_final: bool = True,
    raise_on_failure: bool = True,
    dtype: type[np.floating] = np.float64,
) -> TrainingResult:
    """Train and evaluate a model fold by fold on a splitter's purged splits.

    Args:
        dataset: Output of :func:`~quantdesk.quant_core.dataset.make_dataset`.
        spec: Model spec (or a dict of its fields).
        splitter: Object whose ``split(X)`` takes ``dataset.cv_frame()`` and yields
            ``(train_idx, test_idx)``, e.g. ``PurgedWalkForward``.
        permutation_importance: Also measure permutation importance on sampled OOF rows.
        max_permutation_rows: Cap on the OOF rows used for permutation importance.
        n_repeats: Shuffles per feature for permutation importance.
        refit_final: Fit a final model on all rows (for deployment and ``save``).
        raise_on_failure: Raise the first fold error (default); when ``False`` failed folds
            are recorded in ``folds`` with their error and the others are still reported.
        dtype: Feature matrix dtype (``np.float32`` halves memory).

    Returns:
        A :class:`TrainingResult`.

    Raises:
        InputError: Bad arguments, or a splitter that yields empty or overlapping index sets.
        QuantdeskRuntimeError: Every fold failed (with ``raise_on_failure=False``).
    """
    started = perf_counter()
    spec = coerce_spec(spec)
    if not isinstance(dataset, Dataset):
        raise InputError(
            f"train_cv expects a Dataset, got {type(dataset).__name__}.",
            fix="build one with make_dataset(features, labels).",
        )
    if not hasattr(splitter, "split"):
        raise InputError(
            f"splitter {splitter!r} has no split() method.",
            fix="pass e.g. PurgedWalkForward(n_splits=5, embargo=5).",
        )
    if max_permutation_rows < 1 or n_repeats < 1:
        raise InputError(
            f"max_permutation_rows={max_permutation_rows} and n_repeats={n_repeats} must be "
            "at least 1.",
            fix="use e.g. max_permutation_rows=20_000, n_repeats=3, or "
            "permutation_importance=False.",
        )
    guard_holdout(dataset.frame, what="training dataset")
    clock = perf_counter()
    X = dataset.X(dtype)
    y = dataset.y()
    dates = dataset.frame["date"].to_numpy()
    # Class labels are checked on the whole dataset up front: a wrong task for the labels is
    # the caller's mistake, not a per-fold failure.
    classes = infer_classes(y, spec.task) if spec.task != "regression" else None
    t_numpy = perf_counter() - clock

    clock = perf_counter()
    cv_frame = dataset.cv_frame()
    splits = [
        _check_split(k, tr, te, X.shape[0]) for k, (tr, te) in enumerate(splitter.split(cv_frame))
    ]
    # Purged splitters also report how many rows purging and embargo removed per fold.
    described = splitter.describe(cv_frame) if hasattr(splitter, "describe") else []
    removed = [
        (getattr(info, "n_purged", None), getattr(info, "n_embargoed", None)) for info in described
    ]
    if len(removed) != len(splits):
        removed = [(None, None)] * len(splits)
    t_split = perf_counter() - clock
    if not splits:
        raise InputError(f"{splitter!r} yielded no split.", fix="check its n_splits.")

    folds: list[FoldResult] = []
    models: list[QuantModel | None] = []
    outputs: list[tuple[int, np.ndarray, ModelOutput]] = []
    t_slice = t_fit = t_predict = 0.0
    for k, (train_idx, test_idx) in enumerate(splits):
        clock = perf_counter()
        X_train, y_train, X_test = _rows(X, train_idx), y[train_idx], _rows(X, test_idx)
        t_slice += perf_counter() - clock
        fit_s = predict_s = 0.0
        error = None
        model: QuantModel | None = QuantModel(spec)
        try:
            clock = perf_counter()
            model.fit(X_train, y_train, feature_names=dataset.feature_names, classes=classes)
            fit_s = perf_counter() - clock
            clock = perf_counter()
            outputs.append((k, test_idx, model.predict_outputs(X_test)))
            predict_s = perf_counter() - clock
        except Exception as exc:  # recorded per fold or re-raised, never dropped
            if raise_on_failure:
                exc.add_note(f"while training fold {k} of {len(splits)} in train_cv")
                raise
            error, model = f"{type(exc).__name__}: {exc}", None
        t_fit += fit_s
        t_predict += predict_s
        models.append(model)
        folds.append(
            _fold_result(k, train_idx, test_idx, dates, removed[k], fit_s, predict_s, error)
        )
    if not outputs:
        raise QuantdeskRuntimeError(
            f"All {len(splits)} folds failed; first error: {folds[0].error}",
            fix="fix the error above, e.g. longer training windows or a different label.",
        )

    clock = perf_counter()
    oof = _assemble_oof(dataset, outputs, classes)
    t_assemble = perf_counter() - clock

    clock = perf_counter()
    permutation = None
    if permutation_importance:
        permutation = _permutation_importance(
            models, outputs, X, y, classes, max_permutation_rows, n_repeats, spec.seed
        )
    t_perm = perf_counter() - clock

    clock = perf_counter()
    trained = [m for m in models if m is not None]
    report = build_report(
        oof,
        task=spec.task,
        kind=spec.kind,
        classes=classes,
        folds=[dataclasses.asdict(f) for f in folds],
        feature_names=dataset.feature_names,
        fold_importance=np.vstack([m.feature_importance_ for m in trained]),
        importance_type="gain" if spec.kind == "lightgbm" else "abs_coef",
        permutation=permutation,
        permutation_metric=None if permutation is None else _loss_name(classes),
        timings={},
        data_hash=dataset.data_hash,
        spec=spec.model_dump(mode="json"),
    )
    t_metrics = perf_counter() - clock

    clock = perf_counter()
    final_model = final_error = None
    if refit_final:
        try:
            final_model = QuantModel(spec).fit(
                X,
                y,
                feature_names=dataset.feature_names,
                classes=classes,
                data_hash=dataset.data_hash,
            )
        except Exception as exc:  # same policy as the folds
            if raise_on_failure:
                exc.add_note("while refitting the final model on all rows in train_cv")
                raise
            final_error = f"{type(exc).__name__}: {exc}"
    t_final = perf_counter() - clock

    timings = Timings(
        to_numpy=t_numpy,
        split=t_split,
        slicing=t_slice,
        fit=t_fit,
        predict=t_predict,
        assemble=t_assemble,
        metrics=t_metrics,
        permutation=t_perm,
        final_fit=t_final,
        total=perf_counter() - started,
    )
    run, run_error = _record_cv_trial(dataset, spec, splitter, oof)
    return TrainingResult(
        report=dataclasses.replace(report, timings=timings.to_dict()),
        oof=oof,
        folds=tuple(folds),
        fold_models=tuple(models),
        final_model=final_model,
        final_error=final_error,
        timings=timings,
        run=run,
        run_error=run_error,
    )


def _splitter_config(splitter: Splitter) -> dict[str, Any]:
    params = {
        key: value
        for key, value in vars(splitter).items()
        if not key.startswith("_") and isinstance(value, (int, float, str, bool, type(None)))
    }
    return {"class": type(splitter).__name__, **params}


def _record_cv_trial(
    dataset: Dataset, spec: ModelSpec, splitter: Splitter, oof: pl.DataFrame
) -> tuple[RecordedRun | None, str | None]:
    """Count this CV run as a trial (see :mod:`~quantdesk.quant_core.trial_recording`)."""
    period = holding_period(dataset.frame)
    try:
        series = oof_long_short_returns(oof, period=period)
        config = {
            "model": spec.model_dump(mode="json"),
            "splitter": _splitter_config(splitter),
            "features": list(dataset.feature_names),
            "label": dataset.label_name,
            "holding_period": period,
        }
        run = record_run(
            "cv",
            series,
            config=config,
            data_hash=dataset.data_hash,
            description=f"{spec.kind} {spec.task} CV on {len(dataset.feature_names)} features",
            period_sessions=period,
        )
    except (InsufficientDataError, UndefinedMetricError) as exc:
        # Too few names or constant out-of-fold returns: no Sharpe ratio exists to count.
        return None, str(exc)
    return run, None


def _rows(X: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``X[idx]``, as a zero-copy view when ``idx`` is one contiguous ascending run.

    Walk-forward folds on a date-sorted dataset are contiguous blocks, so most folds need no
    copy of the feature matrix at all.
    """
    if idx.size and idx[-1] - idx[0] + 1 == idx.size and np.all(np.diff(idx) == 1):
        return X[idx[0] : idx[-1] + 1]
    return X[idx]


def _check_split(k: int, train: Any, test: Any, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    train = np.asarray(train, dtype=np.int64)
    test = np.asarray(test, dtype=np.int64)
    problem = None
    if train.ndim != 1 or test.ndim != 1 or train.size == 0 or test.size == 0:
        problem = f"an empty or non-1-D index set (train {train.shape}, test {test.shape})"
    elif min(train.min(), test.min()) < 0 or max(train.max(), test.max()) >= n_rows:
        problem = f"indices outside 0..{n_rows - 1}"
    else:
        in_test = np.zeros(n_rows, dtype=bool)
        in_test[test] = True
        if (n_both := int(in_test[train].sum())) > 0:
            problem = f"{n_both} row(s) in both train and test"
    if problem:
        raise InputError(
            f"Split {k} has {problem}.",
            fix="use a purged splitter from quantdesk.quant_core.purged_cv on dataset.cv_frame().",
        )
    return train, test


def _fold_result(
    k: int,
    train: np.ndarray,
    test: np.ndarray,
    dates: np.ndarray,
    removed: tuple[int | None, int | None],
    fit_s: float,
    predict_s: float,
    error: str | None,
) -> FoldResult:
    # The dataset is sorted by date, so sorted positional indices give the date range ends.
    def day(i: int) -> date:
        return dates[i].astype("datetime64[D]").item()

    return FoldResult(
        fold=k,
        n_train=int(train.size),
        n_test=int(test.size),
        train_start=day(train.min()),
        train_end=day(train.max()),
        test_start=day(test.min()),
        test_end=day(test.max()),
        n_purged=removed[0],
        n_embargoed=removed[1],
        fit_seconds=fit_s,
        predict_seconds=predict_s,
        error=error,
    )


def _assemble_oof(
    dataset: Dataset, outputs: list[tuple[int, np.ndarray, ModelOutput]], classes: np.ndarray | None
) -> pl.DataFrame:
    rows = np.concatenate([idx for _, idx, _ in outputs])
    keys = ["date", "symbol", *(["ret"] if dataset.has_ret else [])]
    cols: dict[str, Any] = {
        "fold": np.concatenate([np.full(idx.size, k, dtype=np.int32) for k, idx, _ in outputs]),
        "y_true": dataset.y()[rows],
        "y_pred": np.concatenate([o.y_pred for _, _, o in outputs]),
        "score": np.concatenate([o.score for _, _, o in outputs]),
    }
    if classes is not None:
        proba = np.vstack([o.proba for _, _, o in outputs])
        cols.update(zip(proba_column_names(classes), proba.T, strict=True))
    base = dataset.frame.select(keys)[rows]
    out = base.with_columns(pl.Series(name, values) for name, values in cols.items())
    first = ["date", "symbol", "fold", "y_true", "y_pred", "score"]
    return out.select(*first, pl.exclude(first))


def _loss_name(classes: np.ndarray | None) -> str:
    return "mse" if classes is None else "log_loss"


def _row_loss(y: np.ndarray, out: ModelOutput, classes: np.ndarray | None) -> np.ndarray:
    """Squared error (regression) or negative log-likelihood of the true class, per row."""
    if classes is None or out.proba is None:
        return (out.score - y) ** 2
    codes = np.searchsorted(classes, y.astype(np.int64))
    return -np.log(np.clip(out.proba[np.arange(codes.size), codes], 1e-15, 1.0))


def _permutation_importance(
    models: list[QuantModel | None],
    outputs: list[tuple[int, np.ndarray, ModelOutput]],
    X: np.ndarray,
    y: np.ndarray,
    classes: np.ndarray | None,
    max_rows: int,
    n_repeats: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    total = sum(idx.size for _, idx, _ in outputs)
    share = min(1.0, max_rows / total)
    samples = []
    for k, idx, _ in outputs:
        rows = np.sort(rng.choice(idx, size=max(1, round(idx.size * share)), replace=False))
        samples.append((models[k], X[rows], y[rows]))
    n_sampled = sum(ys.size for _, _, ys in samples)
    baseline = sum(
        _row_loss(ys, model.predict_outputs(Xs), classes).sum() for model, Xs, ys in samples
    )
    # One predict call per (feature, fold): the n_repeats shuffled copies are stacked, which
    # keeps per-call overhead (thread start-up in LightGBM) out of the loop over repeats.
    increase = np.zeros((X.shape[1], n_repeats))
    for j in range(X.shape[1]):
        for model, Xs, ys in samples:
            stacked = np.tile(Xs, (n_repeats, 1))
            for r in range(n_repeats):
                stacked[r * ys.size : (r + 1) * ys.size, j] = Xs[rng.permutation(ys.size), j]
            losses = _row_loss(np.tile(ys, n_repeats), model.predict_outputs(stacked), classes)
            increase[j] += losses.reshape(n_repeats, ys.size).sum(axis=1)
    increase = (increase - baseline) / n_sampled
    return increase.mean(axis=1), increase.std(axis=1)
