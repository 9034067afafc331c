"""``walk_forward_cv``: train and evaluate a model with purged cross-validation, as a trial.

The tool chains the guarded pipeline (prices, look-ahead-checked features, labels), applies
the leakage guardrail (purging is mandatory when the label horizon exceeds one session; the
embargo defaults to the horizon), checks the trial budget, and runs
:func:`~quantdesk.quant_core.training.train_cv`, which records the run as a ``cv`` trial in
the research context and deflates its Sharpe ratio by every trial of the context.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from quantdesk.tools.envelope import ToolInputError, ToolModel
from quantdesk.tools.guardrails import (
    ToolRun,
    check_trial_budget,
    resolve_as_of,
    settle_data_validation,
)
from quantdesk.tools.inputs import DataSource, ToolInput
from quantdesk.tools.outputs import (
    DeflatedSharpe,
    LookaheadSummary,
    TrialSummary,
    finite,
    finite_dict,
)
from quantdesk.tools.pipeline import (
    FeatureSetInput,
    LabelInput,
    checked_features,
    checked_labels,
    load_checked_prices,
    model_columns,
    resolve_feature_names,
)
from quantdesk.tools.registry import tool

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "CVInput",
    "FeatureImportance",
    "FoldSummary",
    "ICSummary",
    "ModelInput",
    "WalkForwardCVInput",
    "WalkForwardCVOutput",
    "walk_forward_cv",
]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)
_TASK = {
    "forward_return": "regression",
    "binary": "binary",
    "ternary": "multiclass",
    "triple_barrier": "multiclass",
}


class ModelInput(ToolModel):
    """The model to train.

    Attributes:
        kind: ``lightgbm`` or ``linear`` (ridge / logistic regression); the task follows the
            label kind.
        params: Model parameters (LightGBM: ``num_boost_round``, ``learning_rate``,
            ``num_leaves``, ...; linear: ``alpha`` or ``C``).
        seed: Model seed.
        num_threads: LightGBM threads.
    """

    model_config = _STRICT

    kind: Literal["lightgbm", "linear"] = "lightgbm"
    params: dict[str, float | int | str | bool] = Field(default_factory=dict, max_length=32)
    seed: int = Field(default=7, ge=0, le=2**31 - 1)
    num_threads: int = Field(default=1, ge=1, le=16)


class CVInput(ToolModel):
    """How the data is split.

    Attributes:
        splitter: ``walk_forward`` (train on the past, test the next block) or ``kfold``
            (contiguous date blocks, training on both sides).
        n_splits: Test blocks (2-20).
        window: Walk-forward training window: ``expanding`` or ``rolling``.
        purge: Drop training rows whose label interval overlaps a test label. Required when
            the label horizon exceeds one session (the leakage guardrail).
        embargo: Sessions embargoed around each test block; omitted: the label horizon.
    """

    model_config = _STRICT

    splitter: Literal["walk_forward", "kfold"] = "walk_forward"
    n_splits: int = Field(default=5, ge=2, le=20)
    window: Literal["expanding", "rolling"] = "expanding"
    purge: bool = True
    embargo: int | None = Field(default=None, ge=0, le=252)


class WalkForwardCVInput(ToolInput):
    """Request of ``walk_forward_cv``.

    Attributes:
        source: Where the prices come from.
        features: Model features and transform.
        label: What the model predicts.
        model: Model kind and parameters.
        cv: Splitter, purging and embargo.
        permutation_importance: Also measure permutation importance (slower).
        top_features: Features listed in the importance table (0-64).
    """

    source: DataSource
    features: FeatureSetInput = Field(default_factory=FeatureSetInput)
    label: LabelInput = Field(default_factory=LabelInput)
    model: ModelInput = Field(default_factory=ModelInput)
    cv: CVInput = Field(default_factory=CVInput)
    permutation_importance: bool = False
    top_features: int = Field(default=10, ge=0, le=64)


class ICSummary(ToolModel):
    """Per-date Spearman information coefficient of the out-of-fold scores."""

    n_dates: int
    mean: float | None
    std: float | None
    ir: float | None
    t_stat: float | None
    hit_rate: float | None


class FoldSummary(ToolModel):
    """One test fold."""

    fold: int
    n_train: int
    n_test: int
    train_start: date
    train_end: date
    test_start: date
    test_end: date
    n_purged: int | None
    n_embargoed: int | None
    ic_mean: float | None
    error: str | None


class FeatureImportance(ToolModel):
    """Mean gain share (LightGBM) or |coefficient| share (linear), and permutation importance."""

    feature: str
    share: float | None
    permutation_mean: float | None = None
    permutation_std: float | None = None


class WalkForwardCVOutput(ToolModel):
    """Out-of-fold evaluation of the model, the recorded trial and its deflated Sharpe.

    Attributes:
        task: ``regression``, ``binary`` or ``multiclass``.
        n_rows: Dataset rows (features and label present).
        n_dates: Dataset dates.
        first_date: First dataset date.
        last_date: Last dataset date.
        features: Model columns.
        splitter: The splitter as run (kind, splits, window, purge, embargo).
        metrics: Pooled out-of-fold metrics (r2/mse or accuracy/AUC/log loss ...).
        ic: IC of the score against the label.
        ic_ret: IC against the realised forward return, when available.
        folds: Per-fold sizes, dates, purged/embargoed rows and IC.
        feature_importance: The most important features.
        trial: The recorded ``cv`` trial (non-overlapping long-short series of the scores), or
            ``None`` when no series could be formed (a warning says why).
        deflated_sharpe: DSR of that trial given every trial of the context.
        lookahead: What the look-ahead check compared.
        seconds: Time of the model work (``train_cv`` total) in seconds.
    """

    task: str
    n_rows: int
    n_dates: int
    first_date: date
    last_date: date
    features: list[str]
    splitter: dict[str, Any]
    metrics: dict[str, float | None]
    ic: ICSummary
    ic_ret: ICSummary | None
    folds: list[FoldSummary]
    feature_importance: list[FeatureImportance]
    trial: TrialSummary | None
    deflated_sharpe: DeflatedSharpe | None
    lookahead: LookaheadSummary
    seconds: float


def _check_leakage(run: ToolRun, cv: CVInput, horizon: int) -> int:
    """Apply the leakage guardrail; return the embargo in sessions."""
    embargo = horizon if cv.embargo is None else cv.embargo
    if not cv.purge and horizon > 1:
        run.refuse(
            "leakage",
            f"Cross-validation without purging was requested with a {horizon}-session label: "
            f"training labels would overlap the test labels by up to {horizon - 1} sessions, "
            "so the model is scored on outcomes it was trained on.",
            fix="send cv.purge=true (the default); purging cannot be switched off for "
            "multi-session labels.",
        )
    if embargo < horizon:
        run.warn(
            f"embargo={embargo} is below the label horizon {horizon}: serially correlated "
            "features may still carry information across the test boundary."
        )
    how = "purged" if cv.purge else "not purged (one-session labels)"
    default = " (the default: the label horizon)" if cv.embargo is None else ""
    run.passed("leakage", f"labels of {horizon} session(s), {how}, embargo {embargo}{default}.")
    return embargo


class _WithoutPurging:
    """A splitter that sees no label ends, so it purges nothing (one-session labels only)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def split(self, X: pl.DataFrame, y: Any = None, groups: Any = None) -> Any:
        return self.inner.split(X.drop("t1", strict=False))

    def describe(self, X: pl.DataFrame) -> Any:
        return self.inner.describe(X.drop("t1", strict=False))


def _splitter(cv: CVInput, embargo: int) -> Any:
    from quantdesk.quant_core.purged_cv import PurgedKFold, PurgedWalkForward

    if cv.splitter == "walk_forward":
        inner: Any = PurgedWalkForward(n_splits=cv.n_splits, scheme=cv.window, embargo=embargo)
    else:
        inner = PurgedKFold(n_splits=cv.n_splits, embargo=embargo)
    return inner if cv.purge else _WithoutPurging(inner)


def _ic(stats: Any) -> ICSummary:
    return ICSummary(
        n_dates=int(stats.n_dates),
        **{k: finite(getattr(stats, k)) for k in ("mean", "std", "ir", "t_stat", "hit_rate")},
    )


@tool(
    "walk_forward_cv",
    summary="Train and evaluate a model with purged walk-forward (or K-fold) CV; a counted trial.",
    description="Computes look-ahead-checked features and labels from the source, splits by "
    "date with purging and an embargo (default: the label horizon), trains LightGBM or a "
    "linear model per fold and reports out-of-fold metrics, IC and feature importance. Every "
    "run is recorded as a trial of the research context (refused once its budget is used) and "
    "its Sharpe comes with the deflated Sharpe ratio given all of the context's trials.",
    input_model=WalkForwardCVInput,
    output_model=WalkForwardCVOutput,
    guardrails=(
        "as_of",
        "holdout",
        "data_validation",
        "lookahead",
        "leakage",
        "trial_budget",
        "multiple_testing",
    ),
    records_trial=True,
    example={
        "source": {"kind": "demo", "seed": 7},
        "as_of": "2019-12-31",
        "features": {"names": ["mom_252_21", "ret_21", "rvol_63"], "transform": "rank"},
        "label": {"kind": "forward_return", "horizon": 5},
        "model": {"kind": "linear"},
        "cv": {"splitter": "walk_forward", "n_splits": 4},
    },
)
def walk_forward_cv(inputs: WalkForwardCVInput, run: ToolRun) -> WalkForwardCVOutput:
    """Run the guarded CV and return its evaluation and trial."""
    from quantdesk.quant_core.dataset import make_dataset
    from quantdesk.quant_core.models import ModelSpec
    from quantdesk.quant_core.training import train_cv

    as_of = resolve_as_of(run, inputs.as_of)
    names = resolve_feature_names(inputs.features)
    horizon = inputs.label.horizon
    embargo = _check_leakage(run, inputs.cv, horizon)
    try:
        spec = ModelSpec(**inputs.model.model_dump(), task=_TASK[inputs.label.kind])
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ToolInputError(
            "model.params",
            f"Invalid model settings: {problems}.",
            fix="LightGBM takes e.g. num_boost_round, learning_rate, num_leaves; linear takes "
            "alpha (regression) or C (classification); seed and threads have their own fields.",
        ) from None
    prices = load_checked_prices(run, inputs.source, as_of)
    features, report = checked_features(run, prices, names, inputs.features.transform)
    labels = checked_labels(prices, inputs.label, run)
    columns = model_columns(names, inputs.features.transform)
    with run.timed("work"):
        dataset = make_dataset(features, labels, feature_names=columns)
    splitter = _splitter(inputs.cv, embargo)
    settle_data_validation(run)
    with run.timed("guardrails"):
        check_trial_budget(run)
    with run.timed("work"):
        result = train_cv(
            dataset,
            spec,
            splitter,
            permutation_importance=inputs.permutation_importance,
            refit_final=False,
        )
    trial = dsr = None
    if result.run is not None:
        run.trial_id = result.run.trial.trial_id
        trial = TrialSummary.of(result.run.trial)
        dsr = DeflatedSharpe.of(result.run.dsr)
        run.passed(
            "multiple_testing",
            f"recorded as trial #{trial.number}; its Sharpe is deflated by "
            f"{dsr.n_trials:g} trial(s) of research context {run.context.name!r} "
            f"(DSR {dsr.dsr if dsr.dsr is None else round(dsr.dsr, 4)}).",
        )
    else:
        run.warn(f"the run was not recorded as a trial: {result.run_error}")
        run.not_applicable("multiple_testing", "no trial series, so no Sharpe is reported.")
    tr = result.report
    importance_key = tr.importance_type
    return WalkForwardCVOutput(
        task=tr.task,
        n_rows=dataset.n_rows,
        n_dates=dataset.n_dates,
        first_date=dataset.date_range[0],
        last_date=dataset.date_range[1],
        features=columns,
        splitter={
            "kind": inputs.cv.splitter,
            "n_splits": inputs.cv.n_splits,
            "window": inputs.cv.window,
            "purge": inputs.cv.purge,
            "embargo": embargo,
        },
        metrics=finite_dict(tr.metrics),
        ic=_ic(tr.ic),
        ic_ret=None if tr.ic_ret is None else _ic(tr.ic_ret),
        folds=[
            FoldSummary(
                **{k: f.get(k) for k in FoldSummary.model_fields if k != "ic_mean"},
                ic_mean=finite(f.get("ic_mean")),
            )
            for f in tr.folds
        ],
        feature_importance=[
            FeatureImportance(
                feature=row["feature"],
                share=finite(row[importance_key]),
                permutation_mean=finite(row.get("permutation_mean")),
                permutation_std=finite(row.get("permutation_std")),
            )
            for row in tr.feature_importance[: inputs.top_features]
        ],
        trial=trial,
        deflated_sharpe=dsr,
        lookahead=LookaheadSummary.of(report),
        seconds=round(result.timings.total, 4),
    )
