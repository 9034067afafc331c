"""Seeded LightGBM and linear models with one interface, safe save/load and named features.

:class:`QuantModel` wraps either a LightGBM booster (regression, binary, multiclass) or a linear
baseline (standardise, then ridge regression or L2 logistic regression, multinomial for more
than two classes) behind scikit-learn style ``fit`` / ``predict`` / ``predict_proba``.

Determinism: LightGBM runs with ``deterministic=True``, the spec's ``seed`` (from which
LightGBM derives its bagging/feature-fraction seeds), a fixed ``num_threads`` and
``force_col_wise`` (LightGBM otherwise picks row- or column-wise histograms by timing, which
is not reproducible). Two fits on the same data give bit-identical predictions.

Persistence avoids pickle: a saved model is a folder holding ``model.json`` (format version,
spec, feature names, classes, data hash, linear coefficients and scaler) and, for LightGBM,
``booster.txt`` (LightGBM's own text format, whose SHA-256 is recorded in the JSON).

Class labels (e.g. ``-1/0/1``) are mapped to ``0..K-1`` internally and back on output;
probability columns follow the sorted class order.

The spec (:class:`ModelSpec`, :func:`coerce_spec`) lives in :mod:`.model_spec` and is
re-exported here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
from scipy.special import expit, softmax
from sklearn.linear_model import LogisticRegression, Ridge

from quantdesk.quant_core.errors import (
    DataError,
    InputError,
    InsufficientDataError,
    NotFittedError,
    SchemaError,
)
from quantdesk.quant_core.model_spec import (
    _ROUNDS,
    ModelSpec,
    coerce_spec,
)

__all__ = [
    "FORMAT_VERSION",
    "ModelOutput",
    "ModelSpec",
    "QuantModel",
    "coerce_spec",
    "infer_classes",
    "proba_column_names",
]

FORMAT_VERSION = 1
_KEY_COLUMNS = ("date", "symbol", "t0", "t1", "label", "ret")


def proba_column_names(classes: np.ndarray | list[int]) -> list[str]:
    """Return the probability column names ``proba_<class>`` in class order."""
    return [f"proba_{int(c)}" for c in classes]


@dataclass(frozen=True)
class ModelOutput:
    """What a model says about a batch of rows.

    Attributes:
        y_pred: Predicted value (regression) or class label (classification).
        score: Ranking score for IC and portfolios: the prediction (regression), P(larger
            class) (binary) or the expected class value (multiclass, e.g. ``P(1) - P(-1)``).
        proba: ``(n_rows, n_classes)`` probabilities in ``classes_`` order, or ``None``.
    """

    y_pred: np.ndarray
    score: np.ndarray
    proba: np.ndarray | None


class QuantModel:
    """A seeded LightGBM or linear model with named features.

    Args:
        spec: A :class:`ModelSpec` or a dict of its fields.

    Attributes (after ``fit``):
        feature_names_: Feature names in column order.
        classes_: Sorted class labels (classification) or ``None``.
        feature_importance_: Gain per feature (LightGBM) or mean absolute standardised
            coefficient (linear).
        data_hash_: Hash of the training data when known (``fit_dataset``/``fit(data_hash=)``).
        n_train_rows_: Rows the model was fitted on.
        booster_: The LightGBM booster (``kind="lightgbm"``).
        coef_, intercept_, mean_, scale_: Linear coefficients on standardised features and
            the standardisation (``kind="linear"``).
    """

    def __init__(self, spec: ModelSpec | Mapping[str, Any]) -> None:
        self.spec = coerce_spec(spec)

    def __repr__(self) -> str:
        return f"QuantModel(kind={self.spec.kind!r}, task={self.spec.task!r})"

    @property
    def is_classifier(self) -> bool:
        """Whether the task is binary or multiclass classification."""
        return self.spec.task != "regression"

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        *,
        feature_names: list[str] | tuple[str, ...] | None = None,
        classes: np.ndarray | list[int] | None = None,
        data_hash: str | None = None,
    ) -> QuantModel:
        """Fit on a feature matrix and labels.

        Args:
            X: Float matrix ``(n_rows, n_features)``; NaN allowed for LightGBM only.
            y: Labels: finite floats (regression) or integer-valued classes.
            feature_names: Column names (default ``f0..f{n-1}``); used by ``predict_frame``.
            classes: Full class set when ``y`` may lack some (a CV fold); default the
                classes present in ``y``.
            data_hash: Hash of the training data, stored with the model.

        Returns:
            ``self``.

        Raises:
            InputError: Bad shapes or feature names. DataError: NaN labels, NaN features for
            the linear model. InsufficientDataError: A single class in ``y``.
        """
        X = _check_matrix(X)
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise InputError(
                f"y has shape {y.shape}; expected ({X.shape[0]},) to match X.",
                fix="pass one label per row of X.",
            )
        if X.shape[0] == 0:
            raise InsufficientDataError("Cannot fit on 0 rows.", fix="check the fold sizes.")
        # Integer and boolean labels are finite by construction: check the others only.
        if y.dtype.kind not in "iub" and not np.all(np.isfinite(np.asarray(y, np.float64))):
            raise DataError(
                f"y contains {int(np.sum(~np.isfinite(y.astype(np.float64))))} NaN/inf value(s).",
                fix="drop rows without a label (make_dataset(drop_null=True)).",
            )
        names = tuple(feature_names) if feature_names is not None else None
        names = names or tuple(f"f{i}" for i in range(X.shape[1]))
        if len(names) != X.shape[1] or len(set(names)) != len(names):
            raise InputError(
                f"feature_names has {len(names)} entries ({len(set(names))} distinct) for "
                f"{X.shape[1]} columns.",
                fix="give one distinct name per column of X.",
            )
        self.classes_ = None
        if self.is_classifier:
            self.classes_ = infer_classes(y, self.spec.task, classes)
            target = np.searchsorted(self.classes_, y.astype(np.int64)).astype(np.float64)
            if target.min() == target.max():  # one class: no sort needed to see it
                raise InsufficientDataError(
                    f"The training labels hold a single class ({y[0].item()!r}).",
                    fix="use longer training windows or a balanced label.",
                )
        else:
            target = y.astype(np.float64)
        if self.spec.kind == "lightgbm":
            self._fit_lightgbm(X, target, names)
        else:
            self._fit_linear(X, target)
        self.feature_names_ = names
        self.n_features_in_ = X.shape[1]
        self.n_train_rows_ = X.shape[0]
        self.data_hash_ = data_hash
        return self

    def fit_dataset(self, dataset: Any) -> QuantModel:
        """Fit on every row of a :class:`~quantdesk.quant_core.dataset.Dataset`."""
        return self.fit(
            dataset.X(),
            dataset.y(),
            feature_names=dataset.feature_names,
            data_hash=dataset.data_hash,
        )

    def predict(self, X: np.ndarray | pl.DataFrame) -> np.ndarray:
        """Predict values (regression) or class labels (classification).

        A polars frame is matched to the stored feature names (see :meth:`predict_frame`).
        """
        return self.predict_outputs(X).y_pred

    def predict_proba(self, X: np.ndarray | pl.DataFrame) -> np.ndarray:
        """Class probabilities, shape ``(n_rows, n_classes)``, columns in ``classes_`` order."""
        if not self.is_classifier:
            raise InputError(
                "predict_proba is only defined for binary and multiclass tasks.",
                fix="use predict() for regression.",
            )
        return self.predict_outputs(X).proba  # type: ignore[return-value]

    def predict_outputs(self, X: np.ndarray | pl.DataFrame) -> ModelOutput:
        """Prediction, ranking score and probabilities from one pass over ``X``."""
        raw = self._raw(X)
        if not self.is_classifier:
            return ModelOutput(y_pred=raw, score=raw, proba=None)
        proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        score = raw if raw.ndim == 1 else raw @ self.classes_.astype(np.float64)
        return ModelOutput(y_pred=self.classes_[np.argmax(proba, axis=1)], score=score, proba=proba)

    def predict_frame(self, frame: pl.DataFrame, *, strict: bool = False) -> pl.DataFrame:
        """Predict on a frame, selecting the stored feature columns by name.

        Args:
            frame: Feature columns named as in training, plus optional ``date``/``symbol``.
            strict: Also refuse extra non-key columns and a different column order.

        Returns:
            The key columns present (``date``, ``symbol``), ``y_pred``, ``score`` and, for
            classification, ``proba_<class>`` columns.

        Raises:
            SchemaError: Missing (or, when strict, extra/reordered) feature columns.
        """
        out = self.predict_outputs(self._matrix_from_frame(frame, strict=strict))
        cols = {"y_pred": out.y_pred, "score": out.score}
        if out.proba is not None:
            cols.update(zip(proba_column_names(self.classes_), out.proba.T, strict=True))
        values = pl.DataFrame(cols)
        keys = [c for c in ("date", "symbol") if c in frame.columns]
        return pl.concat([frame.select(keys), values], how="horizontal") if keys else values

    def save(self, path: str | Path) -> Path:
        """Write the model to the folder ``path`` (created if needed) and return it.

        Raises:
            NotFittedError: The model is not fitted. InputError: ``path`` is a file.
        """
        self._require_fitted()
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise InputError(
                f"Cannot save a model to {folder}: it is a file.",
                fix="pass a folder path (it is created when missing).",
            )
        folder.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "format": "quantdesk.quant_model",
            "format_version": FORMAT_VERSION,
            "spec": self.spec.model_dump(mode="json"),
            "feature_names": list(self.feature_names_),
            "classes": None if self.classes_ is None else [int(c) for c in self.classes_],
            "data_hash": self.data_hash_,
            "n_train_rows": self.n_train_rows_,
            "feature_importance": [float(v) for v in self.feature_importance_],
            "lightgbm_version": lgb.__version__,
        }
        if self.spec.kind == "lightgbm":
            text = self.booster_.model_to_string()
            (folder / "booster.txt").write_text(text, encoding="utf-8")
            meta["booster_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        else:
            meta["linear"] = {
                k: getattr(self, f"{k}_").tolist()
                for k in ("coef", "intercept", "mean", "scale", "present")
            }
        # model.json is written last so that a folder with it is a complete save.
        (folder / "model.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        return folder

    @classmethod
    def load(cls, path: str | Path) -> QuantModel:
        """Read a model written by :meth:`save`.

        Raises:
            InputError: No saved model at ``path``. DataError: Unknown format version or a
            booster file that does not match its recorded hash.
        """
        folder = Path(path)
        meta_path = folder / "model.json"
        if not meta_path.is_file():
            raise InputError(
                f"No saved model at {folder} (model.json missing).",
                fix="pass the folder given to QuantModel.save().",
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        version = meta.get("format_version")
        if meta.get("format") != "quantdesk.quant_model" or version != FORMAT_VERSION:
            raise DataError(
                f"{meta_path} has format {meta.get('format')!r} version {version!r}; this "
                f"quantdesk reads version {FORMAT_VERSION}.",
                fix="re-train and save the model with this quantdesk version.",
            )
        model = cls(ModelSpec(**meta["spec"]))
        if model.spec.kind == "lightgbm":
            text = (folder / "booster.txt").read_text(encoding="utf-8")
            if hashlib.sha256(text.encode("utf-8")).hexdigest() != meta["booster_sha256"]:
                raise DataError(
                    f"{folder / 'booster.txt'} does not match the hash recorded in model.json.",
                    fix="the folder was modified or mixed with another save; save again.",
                )
            model.booster_ = lgb.Booster(model_str=text)
        else:
            for key, values in meta["linear"].items():
                setattr(model, f"{key}_", np.asarray(values))
            model.present_ = model.present_.astype(np.int64)
        classes = meta["classes"]
        model.classes_ = None if classes is None else np.asarray(classes, dtype=np.int64)
        model.feature_names_ = tuple(meta["feature_names"])
        model.n_features_in_ = len(model.feature_names_)
        model.n_train_rows_ = meta["n_train_rows"]
        model.data_hash_ = meta["data_hash"]
        model.feature_importance_ = np.asarray(meta["feature_importance"], dtype=np.float64)
        return model

    def _fit_lightgbm(self, X: np.ndarray, target: np.ndarray, names: tuple[str, ...]) -> None:
        params = {k: v for k, v in self.spec.params.items() if k not in _ROUNDS}
        rounds = next((int(v) for k, v in self.spec.params.items() if k in _ROUNDS), 100)
        if self.spec.task != "regression":
            params["objective"] = self.spec.task
        if self.spec.task == "multiclass":
            params["num_class"] = len(self.classes_)
        if "force_row_wise" not in params and "force_col_wise" not in params:
            params["force_col_wise"] = True
        params.update(
            seed=self.spec.seed,
            deterministic=True,
            num_threads=self.spec.num_threads,
            verbosity=-1,
        )
        # LightGBM refuses some characters in feature names, so it sees positional names; the
        # real names live in feature_names_.
        train_set = lgb.Dataset(
            X, label=target, feature_name=[f"f{i}" for i in range(X.shape[1])], params=params
        )
        self.booster_ = lgb.train(params, train_set, num_boost_round=rounds)
        self.feature_importance_ = self.booster_.feature_importance("gain").astype(np.float64)

    def _fit_linear(self, X: np.ndarray, target: np.ndarray) -> None:
        if not np.all(np.isfinite(X)):
            bad = int(np.sum(~np.isfinite(X).all(axis=1)))
            raise DataError(
                f"The linear model got {bad} row(s) with NaN/inf features.",
                fix="build the dataset with drop_null=True or use kind='lightgbm', which "
                "handles missing values.",
            )
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)  # constant columns: coefficient 0
        Z = (X - self.mean_) / self.scale_
        params = dict(self.spec.params)
        if self.spec.task == "regression":
            est = Ridge(
                alpha=params.get("alpha", 1.0), fit_intercept=params.get("fit_intercept", True)
            )
            est.fit(Z, target)
            self.coef_ = np.atleast_2d(est.coef_)
            self.intercept_ = np.atleast_1d(est.intercept_).astype(np.float64)
            self.present_ = np.zeros(0, dtype=np.int64)
        else:
            params.setdefault("max_iter", 1000)
            est = LogisticRegression(random_state=self.spec.seed, **params)
            est.fit(Z, target.astype(np.int64))
            self.coef_ = est.coef_
            self.intercept_ = est.intercept_
            self.present_ = est.classes_.astype(np.int64)
        self.feature_importance_ = np.abs(self.coef_).mean(axis=0)

    def _raw(self, X: np.ndarray | pl.DataFrame) -> np.ndarray:
        """Regression values, P(class 1) for binary, or (n, K) probabilities."""
        self._require_fitted()
        if isinstance(X, pl.DataFrame):
            X = self._matrix_from_frame(X, strict=False)
        X = _check_matrix(X)
        if X.shape[1] != self.n_features_in_:
            raise InputError(
                f"X has {X.shape[1]} columns; the model was fitted on {self.n_features_in_}: "
                f"{list(self.feature_names_)}.",
                fix="pass the same feature columns in the same order, or use predict_frame().",
            )
        if self.spec.kind == "lightgbm":
            return self.booster_.predict(X, num_threads=self.spec.num_threads)
        Z = (X - self.mean_) / self.scale_
        logits = Z @ self.coef_.T + self.intercept_
        if self.spec.task == "regression":
            return logits[:, 0]
        if logits.shape[1] == 1:
            present = expit(logits[:, 0])
            present = np.column_stack([1.0 - present, present])
        else:
            present = softmax(logits, axis=1)
        if self.spec.task == "binary":
            return present[:, 1]
        proba = np.zeros((X.shape[0], len(self.classes_)))
        proba[:, self.present_] = present  # classes absent from training get probability 0
        return proba

    def _matrix_from_frame(self, frame: pl.DataFrame, *, strict: bool) -> np.ndarray:
        self._require_fitted()
        if not isinstance(frame, pl.DataFrame):
            raise InputError(
                f"predict_frame expects a polars DataFrame, got {type(frame).__name__}.",
                fix="use predict() for numpy arrays.",
            )
        expected = list(self.feature_names_)
        given = [c for c in frame.columns if c not in _KEY_COLUMNS]
        missing = [c for c in expected if c not in frame.columns]
        extra = [c for c in given if c not in expected]
        if missing or (strict and extra):
            raise SchemaError(
                f"The frame lacks feature column(s) {missing} and has extra column(s) {extra} "
                f"compared with the model's features {expected}.",
                fix="compute the same features (same names) the model was trained on.",
            )
        if strict and given != expected:
            raise SchemaError(
                f"The frame's feature columns are reordered: {given} instead of {expected}.",
                fix="select the columns in training order or pass strict=False.",
            )
        bad = {c: str(frame.schema[c]) for c in expected if not frame.schema[c].is_numeric()}
        if bad:
            raise SchemaError(f"Feature column(s) are not numeric: {bad}.", fix="cast to Float64.")
        return frame.select(pl.col(expected).cast(pl.Float64)).to_numpy(order="c")

    def _require_fitted(self) -> None:
        if not hasattr(self, "feature_names_"):
            raise NotFittedError(
                f"This {self!r} is not fitted yet.", fix="call fit() or QuantModel.load()."
            )


def _check_matrix(X: Any) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] == 0:
        raise InputError(
            f"X must be a 2-D matrix with at least one column; got shape {X.shape}.",
            fix="pass dataset.X() or a (n_rows, n_features) array.",
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    return X


def infer_classes(y: np.ndarray, task: str, classes: Any = None) -> np.ndarray:
    """Return the sorted class labels of ``y`` for a classification ``task``.

    Args:
        y: Integer-valued labels.
        task: ``binary`` or ``multiclass``.
        classes: The full class set when ``y`` may lack some; default the classes in ``y``.

    Raises:
        DataError: Non-integer labels, labels outside ``classes``, or not 2 classes for binary.
        InsufficientDataError: Fewer than 2 classes.
    """
    y = np.asarray(y)
    if y.dtype.kind in "iub":  # integer-valued by construction: no float round trip
        found = np.unique(y.astype(np.int64, copy=False))
    else:
        values = y.astype(np.float64)
        if not np.all(values == np.round(values)):
            raise DataError(
                f"task={task!r} needs integer class labels; y holds non-integer values such as "
                f"{values[values != np.round(values)][0]!r}.",
                fix="use task='regression' for real-valued labels or encode classes as integers.",
            )
        found = np.unique(values.astype(np.int64))
    full = found if classes is None else np.unique(np.asarray(classes, dtype=np.int64))
    unseen = np.setdiff1d(found, full)
    if unseen.size:
        raise DataError(
            f"y holds class(es) {unseen.tolist()} outside classes={full.tolist()}.",
            fix="pass every class in classes=.",
        )
    if full.size < 2:
        raise InsufficientDataError(
            f"The training labels hold a single class {full.tolist()}.",
            fix="use longer training windows or check the label thresholds.",
        )
    if task == "binary" and full.size != 2:
        raise DataError(
            f"task='binary' needs exactly 2 classes; got {full.tolist()}.",
            fix="use task='multiclass' or relabel to two classes.",
        )
    return full
