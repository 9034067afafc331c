"""What to train: :class:`ModelSpec` (model family, task, hyper-parameters, seed) and its checks.

A spec is a frozen pydantic model (``extra="forbid"``) that refuses, at construction, any
LightGBM parameter that would break determinism or the meaning of ``predict_proba`` (seed,
threads, number of classes, verbosity), a number of trees set twice, an objective for a
classification task, and unknown linear-model parameters. :func:`coerce_spec` turns a plain
mapping into a spec and a validation failure into a :class:`ConfigError`. The model itself is
:class:`~.models.QuantModel`; :mod:`.models` re-exports both names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from quantdesk.quant_core.errors import ConfigError
from quantdesk.quant_core.settings import get_settings

__all__ = ["ModelSpec", "coerce_spec"]

_ROUNDS = {
    "num_boost_round", "num_iterations", "num_iteration", "n_iter", "num_tree", "num_trees",
    "num_round", "num_rounds", "nrounds", "n_estimators", "max_iter",
}  # fmt: skip
# LightGBM parameters the spec owns; setting them in params would break determinism or the
# meaning of predict_proba.
_CONTROLLED = {
    "seed": "seed", "random_seed": "seed", "random_state": "seed",
    "num_threads": "num_threads", "num_thread": "num_threads", "nthread": "num_threads",
    "nthreads": "num_threads", "n_jobs": "num_threads", "num_class": "task",
    "num_classes": "task", "deterministic": "seed", "verbosity": "-", "verbose": "-",
}  # fmt: skip
_OBJECTIVE_KEYS = {"objective", "objective_type", "app", "application", "loss"}
_LINEAR_PARAMS = {
    "regression": {"alpha", "fit_intercept"},
    "binary": {"C", "max_iter", "tol", "class_weight", "fit_intercept"},
    "multiclass": {"C", "max_iter", "tol", "class_weight", "fit_intercept"},
}


class ModelSpec(BaseModel):
    """What to train: model family, task, hyper-parameters and seed.

    Attributes:
        kind: ``"lightgbm"`` or ``"linear"`` (ridge / logistic regression on standardised
            features).
        task: ``"regression"``, ``"binary"`` or ``"multiclass"``.
        params: LightGBM parameters (``num_boost_round`` or an alias sets the number of trees,
            default 100; ``objective`` may be changed for regression only) or linear
            parameters (ridge: ``alpha``, ``fit_intercept``; logistic: ``C``, ``max_iter``,
            ``tol``, ``class_weight``, ``fit_intercept``). Must be JSON-serialisable.
        seed: Random seed (default: the ``QUANTDESK_SEED`` setting).
        num_threads: Threads LightGBM uses for fit and predict. Default 1: on a busy machine
            OpenMP threads that outnumber free cores spin-wait, which made a small fit ~20x
            slower with 2 threads than with 1 (measured); raise it on dedicated hardware.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["lightgbm", "linear"] = "lightgbm"
    task: Literal["regression", "binary", "multiclass"] = "regression"
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(default_factory=lambda: get_settings().seed, ge=0)
    num_threads: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check_params(self) -> ModelSpec:
        try:
            json.dumps(self.params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"params must be JSON-serialisable: {exc}") from exc
        keys = set(self.params)
        if self.kind == "linear":
            unknown = sorted(keys - _LINEAR_PARAMS[self.task])
            if unknown:
                raise ValueError(
                    f"unknown linear {self.task} parameter(s) {unknown}; "
                    f"allowed: {sorted(_LINEAR_PARAMS[self.task])}"
                )
            return self
        owned = sorted(keys & set(_CONTROLLED))
        if owned:
            raise ValueError(
                f"params may not set {owned}: the spec controls seed, num_threads, task and "
                "verbosity (use ModelSpec(seed=..., num_threads=..., task=...))"
            )
        if len(keys & _ROUNDS) > 1:
            raise ValueError(f"params set the number of trees twice: {sorted(keys & _ROUNDS)}")
        objective = keys & _OBJECTIVE_KEYS
        if objective and self.task != "regression":
            raise ValueError(
                f"params may not set {sorted(objective)} for task={self.task!r}: the objective "
                "follows the task"
            )
        return self


def coerce_spec(spec: ModelSpec | Mapping[str, Any]) -> ModelSpec:
    """Return ``spec`` as a :class:`ModelSpec`, validating a plain mapping.

    Raises:
        ConfigError: The mapping is not a valid spec (unknown kind/task, bad params, ...).
    """
    if isinstance(spec, ModelSpec):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"Expected a ModelSpec or a dict, got {type(spec).__name__}.",
            fix="pass ModelSpec(kind='lightgbm', task='binary', ...).",
        )
    try:
        return ModelSpec(**spec)
    except ValidationError as exc:
        raise ConfigError(
            f"Invalid model spec {dict(spec)!r}: {exc}",
            fix="kind is 'lightgbm' or 'linear'; task is 'regression', 'binary' or "
            "'multiclass'; see ModelSpec for params.",
        ) from exc
