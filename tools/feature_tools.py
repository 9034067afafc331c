"""Feature and label tools: ``compute_features`` and ``make_labels`` (summaries, not frames)."""

from __future__ import annotations

from datetime import date

from pydantic import Field

from quantdesk.tools.envelope import ToolModel
from quantdesk.tools.guardrails import ToolRun, resolve_as_of
from quantdesk.tools.inputs import DataSource, ToolInput
from quantdesk.tools.outputs import LookaheadSummary, finite
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

__all__ = [
    "ComputeFeaturesInput",
    "ComputeFeaturesOutput",
    "FeatureStats",
    "MakeLabelsInput",
    "MakeLabelsOutput",
    "compute_features",
    "make_labels",
]

_DEMO = {"kind": "demo", "seed": 7}


class ComputeFeaturesInput(ToolInput):
    """Request of ``compute_features``.

    Attributes:
        source: Where the prices come from.
        features: Feature names and transform.
        latest_rows: Symbols of the last date's cross-section to include (0-100).
    """

    source: DataSource
    features: FeatureSetInput = Field(default_factory=FeatureSetInput)
    latest_rows: int = Field(default=10, ge=0, le=100)


class FeatureStats(ToolModel):
    """Distribution of one feature column over every row."""

    column: str
    null_share: float
    mean: float | None
    std: float | None
    min: float | None
    max: float | None


class ComputeFeaturesOutput(ToolModel):
    """Summary of the computed features.

    Attributes:
        n_rows: Feature rows (one per price row; warm-up rows are null).
        n_symbols: Symbols.
        first_date: First date.
        last_date: Last date.
        columns: Columns a model or signal would use (after the transform).
        stats: Per-column distribution (raw and transformed columns).
        latest: The last date's values of ``columns`` for the first ``latest_rows`` symbols.
        lookahead: What the perturbation check compared.
    """

    n_rows: int
    n_symbols: int
    first_date: date
    last_date: date
    columns: list[str]
    stats: list[FeatureStats]
    latest: list[dict[str, float | str | None]]
    lookahead: LookaheadSummary


@tool(
    "compute_features",
    summary="Compute point-in-time features and verify them for look-ahead.",
    description="Computes price/volume features (returns, 12-1 momentum, reversal, realised "
    "volatility, volume z-score, RSI, moving-average distance) per symbol, optionally ranked "
    "or z-scored per date. Every feature set is first verified by perturbation: data after t "
    "is changed and features at t must not change. Returns summaries, not the frame.",
    input_model=ComputeFeaturesInput,
    output_model=ComputeFeaturesOutput,
    guardrails=("as_of", "holdout", "data_validation", "lookahead"),
    example={
        "source": _DEMO,
        "as_of": "2019-12-31",
        "features": {"names": ["mom_252_21", "rvol_63"], "transform": "rank"},
    },
)
def compute_features(inputs: ComputeFeaturesInput, run: ToolRun) -> ComputeFeaturesOutput:
    """Compute the requested features up to ``as_of`` and summarise them."""
    import polars as pl

    as_of = resolve_as_of(run, inputs.as_of)
    names = resolve_feature_names(inputs.features)
    prices = load_checked_prices(run, inputs.source, as_of)
    features, report = checked_features(run, prices, names, inputs.features.transform)
    used = model_columns(names, inputs.features.transform)
    with run.timed("work"):
        numeric = [c for c in features.columns if c not in ("date", "symbol")]
        described = features.select(
            *[pl.col(c).is_null().mean().alias(f"{c}\x00null") for c in numeric],
            *[pl.col(c).fill_nan(None).mean().alias(f"{c}\x00mean") for c in numeric],
            *[pl.col(c).fill_nan(None).std().alias(f"{c}\x00std") for c in numeric],
            *[pl.col(c).fill_nan(None).min().alias(f"{c}\x00min") for c in numeric],
            *[pl.col(c).fill_nan(None).max().alias(f"{c}\x00max") for c in numeric],
        ).row(0, named=True)
        last = features["date"].max()
        latest = (
            features.filter(pl.col("date") == last)
            .select("symbol", *used)
            .sort("symbol")
            .head(inputs.latest_rows)
        )
    return ComputeFeaturesOutput(
        n_rows=features.height,
        n_symbols=features["symbol"].n_unique(),
        first_date=features["date"].min(),  # type: ignore[arg-type]
        last_date=last,  # type: ignore[arg-type]
        columns=used,
        stats=[
            FeatureStats(
                column=c,
                null_share=float(described[f"{c}\x00null"]),
                mean=finite(described[f"{c}\x00mean"]),
                std=finite(described[f"{c}\x00std"]),
                min=finite(described[f"{c}\x00min"]),
                max=finite(described[f"{c}\x00max"]),
            )
            for c in numeric
        ],
        latest=[
            {k: (v if isinstance(v, str) else finite(v)) for k, v in row.items()}
            for row in latest.iter_rows(named=True)
        ],
        lookahead=LookaheadSummary.of(report),
    )


class MakeLabelsInput(ToolInput):
    """Request of ``make_labels``.

    Attributes:
        source: Where the prices come from.
        label: Label kind, horizon and barriers.
    """

    source: DataSource
    label: LabelInput = Field(default_factory=LabelInput)


class MakeLabelsOutput(ToolModel):
    """Summary of the label frame.

    Attributes:
        n_rows: Labelled rows (rows whose horizon passes ``as_of`` are dropped).
        n_symbols: Symbols.
        first_date: First decision date.
        last_date: Last decision date.
        last_t1: Last session any label reads (never after ``as_of``).
        horizon: Label horizon in sessions.
        median_span_days: Median calendar days from t0 to t1.
        mean: Mean label (``forward_return``) or ``None``.
        std: Standard deviation of the label (``forward_return``) or ``None``.
        class_counts: Rows per class (classification kinds) or ``None``.
        barrier_counts: Rows per barrier hit (triple barrier) or ``None``.
    """

    n_rows: int
    n_symbols: int
    first_date: date
    last_date: date
    last_t1: date
    horizon: int
    median_span_days: float
    mean: float | None
    std: float | None
    class_counts: dict[str, int] | None
    barrier_counts: dict[str, int] | None


@tool(
    "make_labels",
    summary="Build forward labels (returns, classes, triple barrier) with their [t0, t1] spans.",
    description="Labels at t use data in (t, t1] only and carry that interval, which purged "
    "CV needs. Rows whose horizon runs past as_of are dropped, so no label reads data after "
    "as_of. Returns summaries (counts, class balance), not the frame.",
    input_model=MakeLabelsInput,
    output_model=MakeLabelsOutput,
    guardrails=("as_of", "holdout", "data_validation"),
    example={"source": _DEMO, "as_of": "2019-12-31", "label": {"kind": "binary", "horizon": 5}},
)
def make_labels(inputs: MakeLabelsInput, run: ToolRun) -> MakeLabelsOutput:
    """Build the labels up to ``as_of`` and summarise them."""
    import polars as pl

    as_of = resolve_as_of(run, inputs.as_of)
    prices = load_checked_prices(run, inputs.source, as_of)
    labels = checked_labels(prices, inputs.label, run)
    regression = inputs.label.kind == "forward_return"
    with run.timed("work"):
        span = (labels["t1"] - labels["t0"]).dt.total_days().median()
        classes = None
        if not regression:
            counts = labels.group_by("label").len().sort("label")
            classes = {str(k): int(n) for k, n in counts.iter_rows()}
        barriers = None
        if "barrier" in labels.columns:
            counts = labels.group_by("barrier").len().sort("barrier")
            barriers = {str(k): int(n) for k, n in counts.iter_rows()}
        moments = labels.select(pl.col("label").mean(), pl.col("label").std().alias("sd")).row(0)
    return MakeLabelsOutput(
        n_rows=labels.height,
        n_symbols=labels["symbol"].n_unique(),
        first_date=labels["date"].min(),  # type: ignore[arg-type]
        last_date=labels["date"].max(),  # type: ignore[arg-type]
        last_t1=labels["t1"].max(),  # type: ignore[arg-type]
        horizon=inputs.label.horizon,
        median_span_days=float(span or 0.0),  # type: ignore[arg-type]
        mean=finite(moments[0]) if regression else None,
        std=finite(moments[1]) if regression else None,
        class_counts=classes,
        barrier_counts=barriers,
    )
