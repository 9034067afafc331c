"""Tests for quant_core.models: seeded LightGBM/linear models, save/load, named features."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import StandardScaler

from quantdesk.quant_core.errors import (
    ConfigError,
    DataError,
    InputError,
    InsufficientDataError,
    NotFittedError,
    SchemaError,
)
from quantdesk.quant_core.models import (
    FORMAT_VERSION,
    ModelSpec,
    QuantModel,
    coerce_spec,
    proba_column_names,
)

FEATURES = ("mom", "vol", "noise")
FAST = {"num_boost_round": 30, "num_leaves": 7, "min_data_in_leaf": 10}
KINDS_TASKS = [
    (k, t) for k in ("lightgbm", "linear") for t in ("regression", "binary", "multiclass")
]


def _data(rng: np.random.Generator, task: str, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Features with a planted signal in column 0 and a label of the requested task."""
    X = rng.normal(size=(n, len(FEATURES)))
    latent = 1.5 * X[:, 0] + rng.normal(size=n)
    if task == "regression":
        return X, latent
    if task == "binary":
        return X, (latent > 0).astype(np.int64)
    return X, np.digitize(latent, [-0.7, 0.7]) - 1  # classes -1, 0, 1


def _spec(kind: str, task: str, **extra) -> ModelSpec:
    params = FAST if kind == "lightgbm" else {}
    return ModelSpec(kind=kind, task=task, params=params, seed=3, **extra)


def _fit(kind: str, task: str, rng: np.random.Generator) -> tuple[QuantModel, np.ndarray]:
    X, y = _data(rng, task)
    return QuantModel(_spec(kind, task)).fit(X, y, feature_names=FEATURES, data_hash="abc"), X


@pytest.mark.parametrize(("kind", "task"), KINDS_TASKS)
def test_each_model_learns_the_planted_feature(kind: str, task: str, rng) -> None:
    model, _ = _fit(kind, task, rng)
    X_new, y_new = _data(rng, task)
    out = model.predict_outputs(X_new)
    assert np.corrcoef(out.score, y_new)[0, 1] > 0.4
    assert np.argmax(model.feature_importance_) == 0
    if task == "regression":
        assert out.proba is None
        np.testing.assert_array_equal(model.predict(X_new), out.y_pred)
    else:
        proba = model.predict_proba(X_new)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert set(np.unique(model.predict(X_new))) <= set(model.classes_)
        assert np.mean(model.predict(X_new) == y_new) > 0.55


def test_multiclass_labels_map_back_to_their_values(rng) -> None:
    model, X = _fit("lightgbm", "multiclass", rng)
    assert model.classes_.tolist() == [-1, 0, 1]
    assert proba_column_names(model.classes_) == ["proba_-1", "proba_0", "proba_1"]
    out = model.predict_outputs(X)
    # The score is the expected class value, P(1) - P(-1) for classes -1/0/1.
    np.testing.assert_allclose(out.score, out.proba[:, 2] - out.proba[:, 0])


@pytest.mark.parametrize("kind", ["lightgbm", "linear"])
def test_classes_absent_from_a_fold_get_zero_or_valid_probability(kind: str, rng) -> None:
    X, y = _data(rng, "multiclass")
    keep = y >= 0
    model = QuantModel(_spec(kind, "multiclass")).fit(X[keep], y[keep], classes=[-1, 0, 1])
    proba = model.predict_proba(X)
    assert proba.shape == (X.shape[0], 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    if kind == "linear":
        assert np.all(proba[:, 0] == 0.0)


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_lightgbm_is_deterministic_under_a_seed_even_with_bagging(task: str, rng) -> None:
    X, y = _data(rng, task)
    params = {**FAST, "bagging_fraction": 0.7, "bagging_freq": 1, "feature_fraction": 0.7}

    def predict(seed: int) -> np.ndarray:
        spec = ModelSpec(kind="lightgbm", task=task, params=params, seed=seed)
        return QuantModel(spec).fit(X, y).predict_outputs(X).score

    np.testing.assert_array_equal(predict(11), predict(11))
    assert not np.array_equal(predict(11), predict(12))


def test_linear_matches_scikit_learn_pipelines(rng) -> None:
    X, y = _data(rng, "regression")
    ours = QuantModel(ModelSpec(kind="linear", task="regression", params={"alpha": 3.0}))
    Z = StandardScaler().fit_transform(X)
    ref = Ridge(alpha=3.0).fit(Z, y)
    np.testing.assert_allclose(ours.fit(X, y).predict(X), ref.predict(Z), rtol=1e-10)
    for task in ("binary", "multiclass"):
        X, y = _data(rng, task)
        ours = QuantModel(ModelSpec(kind="linear", task=task, params={"C": 0.5})).fit(X, y)
        ref = LogisticRegression(C=0.5, max_iter=1000).fit(StandardScaler().fit_transform(X), y)
        Z = StandardScaler().fit(X).transform(X)
        np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(Z), atol=1e-6)


@pytest.mark.parametrize(("kind", "task"), KINDS_TASKS)
def test_save_load_round_trip_gives_identical_predictions(
    kind: str, task: str, rng, tmp_path: Path
) -> None:
    model, X = _fit(kind, task, rng)
    folder = model.save(tmp_path / "model")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["format_version"] == FORMAT_VERSION
    loaded = QuantModel.load(folder)
    assert loaded.spec == model.spec
    assert loaded.feature_names_ == FEATURES
    assert loaded.data_hash_ == "abc"
    np.testing.assert_array_equal(loaded.feature_importance_, model.feature_importance_)
    frame = pl.DataFrame({"symbol": [f"S{i}" for i in range(len(X))]}).with_columns(
        pl.Series(name, X[:, j]) for j, name in enumerate(FEATURES)
    )
    assert_frame_equal(loaded.predict_frame(frame), model.predict_frame(frame))
    if task != "regression":
        assert loaded.classes_.tolist() == model.classes_.tolist()
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_load_refuses_unknown_versions_tampering_and_empty_folders(rng, tmp_path: Path) -> None:
    model, _ = _fit("lightgbm", "binary", rng)
    folder = model.save(tmp_path / "m")
    with pytest.raises(InputError, match=r"model\.json missing"):
        QuantModel.load(tmp_path / "nowhere")
    booster = folder / "booster.txt"
    booster.write_text(booster.read_text() + "\n")
    with pytest.raises(DataError, match="does not match the hash"):
        QuantModel.load(folder)
    meta = json.loads((folder / "model.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (folder / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="version"):
        QuantModel.load(folder)
    with pytest.raises(NotFittedError):
        QuantModel(_spec("linear", "binary")).save(tmp_path / "x")
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is a file"):
        model.save(tmp_path / "file")


def test_predict_frame_selects_by_name_and_names_bad_columns(rng) -> None:
    model, X = _fit("lightgbm", "regression", rng)
    frame = pl.DataFrame({name: X[:, j] for j, name in enumerate(FEATURES)})
    reordered = frame.select("noise", "mom", "vol").with_columns(extra=pl.lit(1.0))
    np.testing.assert_array_equal(
        model.predict_frame(reordered)["y_pred"].to_numpy(), model.predict(X)
    )
    np.testing.assert_array_equal(model.predict(reordered), model.predict(X))
    with pytest.raises(SchemaError, match=r"lacks feature column\(s\) \['vol'\]") as info:
        model.predict_frame(frame.rename({"vol": "volatility"}))
    assert "'volatility'" in str(info.value)
    with pytest.raises(SchemaError, match=r"extra column\(s\) \['extra'\]"):
        model.predict_frame(reordered, strict=True)
    with pytest.raises(SchemaError, match="reordered"):
        model.predict_frame(reordered.drop("extra"), strict=True)
    with pytest.raises(SchemaError, match="not numeric"):
        model.predict_frame(frame.with_columns(pl.col("mom").cast(pl.String)))
    with pytest.raises(InputError, match="fitted on 3"):
        model.predict(X[:, :2])


@pytest.mark.parametrize(
    ("task", "kind", "y", "X", "error", "match"),
    [
        ("regression", "lightgbm", [1.0, np.nan, 2.0], None, DataError, "NaN"),
        ("regression", "lightgbm", [], np.zeros((0, 3)), InsufficientDataError, "0 rows"),
        ("binary", "lightgbm", [0, 1, 2], None, DataError, "exactly 2 classes"),
        ("binary", "linear", [1, 1, 1], None, InsufficientDataError, "single class"),
        ("multiclass", "lightgbm", [0.5, 1.0, 2.0], None, DataError, "integer class"),
        ("regression", "linear", [1.0, 2.0, 3.0], np.full((3, 3), np.nan), DataError, "NaN/inf"),
        ("regression", "linear", [1.0, 2.0], None, InputError, "one label per row"),
        ("regression", "linear", [1.0, 2.0, 3.0], np.zeros(3), InputError, "2-D"),
    ],
)
def test_bad_fit_inputs(task, kind, y, X, error, match) -> None:
    X = np.arange(9.0).reshape(3, 3) if X is None else X
    with pytest.raises(error, match=match):
        QuantModel(_spec(kind, task)).fit(X, np.asarray(y))


def test_unfitted_and_wrong_task_calls() -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        QuantModel(_spec("linear", "regression")).predict(np.zeros((2, 3)))
    model = QuantModel(_spec("linear", "regression")).fit(np.eye(3), np.arange(3.0))
    with pytest.raises(InputError, match="predict_proba"):
        model.predict_proba(np.eye(3))


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"task": "ranking"}, "task"),
        ({"kind": "xgboost"}, "kind"),
        ({"params": {"seed": 1}}, "may not set"),
        ({"params": {"n_jobs": 4}}, "may not set"),
        ({"task": "binary", "params": {"objective": "regression"}}, "objective"),
        ({"params": {"n_estimators": 10, "num_boost_round": 5}}, "twice"),
        ({"kind": "linear", "params": {"l1_ratio": 0.5}}, "unknown linear"),
        ({"params": {"callback": object()}}, "JSON"),
        ({"colour": "red"}, "Extra inputs"),
    ],
)
def test_spec_validation(fields: dict, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        ModelSpec(**fields)
    with pytest.raises(ConfigError, match=match):
        coerce_spec(fields)


def test_spec_defaults_and_coercion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUANTDESK_SEED", "99")
    spec = coerce_spec({"task": "binary"})
    assert (spec.kind, spec.task, spec.seed, spec.num_threads) == ("lightgbm", "binary", 99, 1)
    assert coerce_spec(spec) is spec
    with pytest.raises(ConfigError, match="ModelSpec or a dict"):
        coerce_spec("lightgbm")  # type: ignore[arg-type]
    assert ModelSpec(params={"objective": "huber"}).params == {"objective": "huber"}


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(20, 80),
    task=st.sampled_from(["binary", "multiclass"]),
)
def test_linear_probabilities_are_distributions_and_survive_save_load(
    seed: int, n: int, task: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rng = np.random.default_rng(seed)
    X, y = _data(rng, task, n)
    if np.unique(y).size < 2 or (task == "binary" and np.unique(y).size != 2):
        return
    model = QuantModel(_spec("linear", task)).fit(X, y)
    proba = model.predict_proba(X)
    assert np.all((proba >= 0) & (proba <= 1))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    loaded = QuantModel.load(model.save(tmp_path_factory.mktemp("m")))
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)
