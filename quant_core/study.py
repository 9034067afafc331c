"""Walk-forward study: features, labels, purged walk-forward CV of a model and of a raw signal.

This is the quant-core job behind ``quantdesk demo`` and ``quantdesk model train``. It wires the
pieces together in the only order that is safe:

1. cut the prices at ``as_of`` (nothing later is read) and validate them; errors stop the study;
2. compute point-in-time features and labels (each label row carries ``[t0, t1]``);
3. split by date with :class:`~quantdesk.quant_core.purged_cv.PurgedWalkForward`, purging
   overlapping labels and leaving a gap (embargo) of ``horizon`` sessions before each test block;
4. on the same test folds, measure the raw signal (no fitting: its per-date Spearman IC with the
   label and the top-minus-bottom quintile spread) and a trained model (the training report).

The raw-signal line is the model-free baseline: a model that does not beat it adds nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, field_validator

from quantdesk.quant_core.dataset import Dataset, make_dataset
from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.features import DEFAULT_FEATURES, compute_features
from quantdesk.quant_core.labels import make_labels
from quantdesk.quant_core.models import ModelSpec
from quantdesk.quant_core.purged_cv import PurgedWalkForward
from quantdesk.quant_core.research_context import guard_holdout
from quantdesk.quant_core.schema import coerce_as_of, require_canonical, select_as_of
from quantdesk.quant_core.training import TrainingResult, train_cv
from quantdesk.quant_core.validation import ValidationReport, validate_prices

__all__ = ["SignalStudy", "StudyConfig", "StudyResult", "run_walk_forward_study"]

LabelKind = Literal["forward_return", "binary", "ternary", "triple_barrier"]
_TASK_OF_LABEL: dict[str, Literal["regression", "binary", "multiclass"]] = {
    "forward_return": "regression",
    "binary": "binary",
    "ternary": "multiclass",
    "triple_barrier": "multiclass",
}


class StudyConfig(BaseModel):
    """What a walk-forward study computes.

    Attributes:
        signal: The feature studied on its own as the model-free baseline (higher = long).
        features: Features the model is trained on (the signal is added when missing).
        feature_set: The model sees per-date cross-sectional ranks (``rank``, default: robust to
            market-wide level shifts), z-scores (``zscore``) or the raw values (``raw``).
        label: Label kind; the model task follows from it.
        horizon: Label horizon in sessions.
        model: ``lightgbm`` or ``linear`` (ridge / logistic).
        n_splits: Walk-forward test folds.
        scheme: ``expanding`` or ``rolling`` training windows.
        embargo: Sessions embargoed after each test block; defaults to ``horizon``.
        as_of: Decision date: no price after it is read. ``None`` uses all data.
        seed: Seed of the model.
        params: Extra model parameters.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal: str = "mom_252_21"
    features: tuple[str, ...] = DEFAULT_FEATURES
    label: LabelKind = "forward_return"
    horizon: int = Field(default=5, ge=1, le=252)
    feature_set: Literal["rank", "zscore", "raw"] = "rank"
    model: Literal["lightgbm", "linear"] = "lightgbm"
    n_splits: int = Field(default=5, ge=2, le=50)
    scheme: Literal["expanding", "rolling"] = "expanding"
    embargo: int | None = Field(default=None, ge=0)
    as_of: date | None = None
    seed: int = Field(default=7, ge=0)
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)

    @field_validator("as_of", mode="before")
    @classmethod
    def _parse_as_of(cls, value: object) -> object:
        return coerce_as_of(value) if isinstance(value, str) else value

    @property
    def task(self) -> Literal["regression", "binary", "multiclass"]:
        """The model task implied by the label kind."""
        return _TASK_OF_LABEL[self.label]

    @property
    def effective_embargo(self) -> int:
        """Embargo in sessions (the label horizon unless set)."""
        return self.horizon if self.embargo is None else self.embargo


@dataclass(frozen=True)
class SignalStudy:
    """Model-free evaluation of one signal on the walk-forward test folds.

    Attributes:
        signal: Feature name.
        ic_mean: Mean per-date Spearman IC between signal and label over test dates.
        ic_std: Standard deviation of the per-date IC.
        ic_tstat: t-statistic of the mean IC on non-overlapping test dates (every
            ``horizon``-th date), so that overlapping labels do not inflate it.
        ic_positive_share: Share of test dates with a positive IC.
        n_dates: Test dates with at least five symbols.
        spread_mean: Mean per-date top-minus-bottom quintile forward return, per session.
        per_fold: Frame with fold, dates, mean IC and mean spread per fold.
    """

    signal: str
    ic_mean: float
    ic_std: float
    ic_tstat: float
    ic_positive_share: float
    n_dates: int
    spread_mean: float
    per_fold: pl.DataFrame


@dataclass(frozen=True)
class StudyResult:
    """Everything a walk-forward study produced.

    Attributes:
        config: The study configuration.
        n_symbols: Symbols in the study.
        first_date: First price date used.
        last_date: Last price date used (never after ``config.as_of``).
        validation: The validation report of the prices.
        dataset: The modelling dataset (features, labels, intervals, content hash).
        signal: Model-free study of ``config.signal``.
        training: The model's cross-validated training result.
        seconds: Wall time by stage.
    """

    config: StudyConfig
    n_symbols: int
    first_date: date
    last_date: date
    validation: ValidationReport
    dataset: Dataset
    signal: SignalStudy
    training: TrainingResult
    seconds: dict[str, float] = field(default_factory=dict)

    def to_markdown(self, *, title: str = "Walk-forward study") -> str:
        """A readable report: data, signal baseline, model, folds."""
        cfg = self.config
        sig = self.signal
        lines = [
            f"# {title}",
            "",
            f"- Universe: {self.n_symbols} symbols, {self.first_date} to {self.last_date}"
            + (f" (as of {cfg.as_of})" if cfg.as_of else ""),
            f"- Data checks: {_validation_line(self.validation)}",
            f"- Label: {cfg.label}, horizon {cfg.horizon} sessions; rows "
            f"{self.dataset.frame.height:,}; data hash `{self.dataset.data_hash[:12]}`",
            f"- Validation: purged walk-forward ({cfg.scheme}), {cfg.n_splits} folds, "
            f"embargo {cfg.effective_embargo} sessions",
            "",
            f"## Signal `{sig.signal}` on its own (no fitting)",
            "",
            f"- Mean rank IC {sig.ic_mean:+.4f} (std {sig.ic_std:.4f}; t {sig.ic_tstat:+.2f} on "
            f"non-overlapping dates; positive on {sig.ic_positive_share:.0%} of {sig.n_dates} "
            "test dates)",
            f"- Top-minus-bottom quintile: {sig.spread_mean * 1e4:+.2f} bp per session "
            f"({sig.spread_mean * 252:+.2%} a year, before costs)",
            "",
            "| fold | test dates | first | last | mean IC | spread bp/session |",
            "|---:|---:|---|---|---:|---:|",
        ]
        for row in sig.per_fold.iter_rows(named=True):
            lines.append(
                f"| {row['fold']} | {row['n_dates']} | {row['first']} | {row['last']} "
                f"| {row['ic_mean']:+.4f} | {row['spread_mean'] * 1e4:+.2f} |"
            )
        model_ic = self.training.report.ic
        verdict = (
            "the model adds IC over the raw signal"
            if model_ic.mean > sig.ic_mean
            else "the model does not beat the raw signal"
        )
        lines += [
            "",
            f"## Model: {cfg.model} ({cfg.task}) on {len(self.dataset.feature_names)} features",
            "",
            f"Out-of-fold rank IC {model_ic.mean:+.4f} vs signal {sig.ic_mean:+.4f}: {verdict}.",
            "",
            _trial_line(self.training),
            "",
            self.training.report.to_markdown(heading_level=3),
            "",
            "_Every CV and backtest run is a counted trial: its Sharpe ratio is deflated by all "
            "the trials of its research context (Bailey & López de Prado 2014)._",
        ]
        timing = ", ".join(f"{k} {v:.1f}s" for k, v in self.seconds.items())
        lines += ["", f"Timing: {timing}."]
        return "\n".join(lines)


def _trial_line(training: TrainingResult) -> str:
    if training.run is None:
        return f"Not counted as a trial: {training.run_error}"
    run = training.run
    return (
        f"Counted as {run.summary_line()}. The trial holds the model's out-of-fold top-minus-"
        f"bottom quintile returns over non-overlapping {run.trial.period_sessions}-session "
        "periods, before costs."
    )


def _validation_line(report: ValidationReport) -> str:
    counts = report.summary()
    if counts.height == 0:
        return "no issues"
    parts = [
        f"{n} {kind} ({severity})"
        for kind, severity, n in counts.select("kind", "severity", "count").iter_rows()
    ]
    return ", ".join(parts)


def _signal_study(
    dataset: Dataset,
    signal: str,
    column: str,
    horizon: int,
    folds: list[tuple[np.ndarray, np.ndarray]],
) -> SignalStudy:
    frame = dataset.frame
    # The realised forward return when the label frame carries it (classes lose magnitude).
    target = "ret" if dataset.has_ret else "label"
    fold_ids = np.full(frame.height, -1, dtype=np.int64)
    for k, (_, test_idx) in enumerate(folds):
        fold_ids[test_idx] = k
    tested = (
        frame.select("date", pl.col(column).alias("s"), pl.col(target).alias("y"))
        .with_columns(pl.Series("fold", fold_ids))
        .filter((pl.col("fold") >= 0) & pl.col("s").is_not_null() & pl.col("y").is_not_null())
    )
    per_date = (
        tested.group_by("fold", "date")
        .agg(
            pl.len().alias("n"),
            pl.corr(pl.col("s").rank(), pl.col("y").rank()).alias("ic"),
            # quintile spread of the realised forward return, expressed per session
            (
                pl.col("y").filter(pl.col("s").rank() > 0.8 * pl.len()).mean()
                - pl.col("y").filter(pl.col("s").rank() <= 0.2 * pl.len()).mean()
            ).alias("spread"),
        )
        .filter((pl.col("n") >= 5) & pl.col("ic").is_not_nan())
        .with_columns(pl.col("spread") / horizon)
        .sort("date")
    )
    if per_date.height < 2:
        raise InputError(
            f"Too few test dates with at least five symbols to study signal {signal!r} "
            f"({per_date.height}).",
            fix="use more symbols or a longer history.",
        )
    ic = per_date["ic"].to_numpy()
    ic_mean, ic_std = float(ic.mean()), float(ic.std(ddof=1))
    # Labels of consecutive dates share horizon - 1 sessions; every horizon-th date does not.
    independent = ic[::horizon]
    sd_ind = float(independent.std(ddof=1)) if len(independent) > 1 else float("nan")
    tstat = float(independent.mean()) / (sd_ind / math.sqrt(len(independent)))
    per_fold = (
        per_date.group_by("fold")
        .agg(
            pl.len().alias("n_dates"),
            pl.col("date").min().alias("first"),
            pl.col("date").max().alias("last"),
            pl.col("ic").mean().alias("ic_mean"),
            pl.col("spread").mean().alias("spread_mean"),
        )
        .sort("fold")
    )
    return SignalStudy(
        signal=signal,
        ic_mean=ic_mean,
        ic_std=ic_std,
        ic_tstat=tstat if sd_ind > 0 else float("nan"),
        ic_positive_share=float((ic > 0).mean()),
        n_dates=len(ic),
        spread_mean=float(per_date["spread"].drop_nulls().mean() or 0.0),
        per_fold=per_fold,
    )


def run_walk_forward_study(prices: pl.DataFrame, config: StudyConfig | None = None) -> StudyResult:
    """Run a purged walk-forward study of ``config.signal`` and a model on ``prices``.

    Args:
        prices: Canonical price frame (see :mod:`quantdesk.quant_core.schema`).
        config: Study configuration; defaults to :class:`StudyConfig()`.

    Returns:
        The study result; ``result.to_markdown()`` is the readable report.

    Raises:
        DataError: the prices fail validation with errors (see ``result.validation``).
        InputError: bad configuration (unknown feature, horizon too long, too few dates).
    """
    config = config or StudyConfig()
    seconds: dict[str, float] = {}
    tick = time.perf_counter()
    prices = select_as_of(prices, config.as_of)
    require_canonical(prices)
    guard_holdout(prices, what="study prices")
    validation = validate_prices(prices)
    validation.raise_on_error()
    seconds["data"] = time.perf_counter() - tick

    tick = time.perf_counter()
    names = tuple(dict.fromkeys((config.signal, *config.features)))
    prefix = {"rank": "cs_rank_", "zscore": "cs_z_", "raw": ""}[config.feature_set]
    features = compute_features(
        prices,
        names,
        cross_sectional=None if config.feature_set == "raw" else (config.feature_set,),
    )
    labels = make_labels(prices, kind=config.label, horizon=config.horizon)
    model_features = [prefix + name for name in names]
    dataset = make_dataset(features, labels, feature_names=model_features)
    seconds["features"] = time.perf_counter() - tick

    splitter = PurgedWalkForward(
        n_splits=config.n_splits, scheme=config.scheme, embargo=config.effective_embargo
    )
    tick = time.perf_counter()
    folds = list(splitter.split(dataset.cv_frame()))
    signal = _signal_study(dataset, config.signal, prefix + config.signal, config.horizon, folds)
    seconds["signal"] = time.perf_counter() - tick

    tick = time.perf_counter()
    spec = ModelSpec(kind=config.model, task=config.task, params=config.params, seed=config.seed)
    training = train_cv(dataset, spec, splitter)
    seconds["model"] = time.perf_counter() - tick

    return StudyResult(
        config=config,
        n_symbols=prices["symbol"].n_unique(),
        first_date=prices["date"].min(),  # type: ignore[arg-type]
        last_date=prices["date"].max(),  # type: ignore[arg-type]
        validation=validation,
        dataset=dataset,
        signal=signal,
        training=training,
        seconds=seconds,
    )
