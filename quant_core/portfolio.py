"""Target weights from scores, with the rebalance schedule and dense alignment re-exported.

Weights frames have columns ``date, symbol, weight``: the portfolio decided at the close of
``date`` (fractions of capital, shorts negative). A date lists the whole portfolio: a symbol
absent on that date (or with weight 0) is not held.

Scores to weights (:func:`scores_to_weights`, one cross-section per date; a null or NaN
score is not held):

* ``quantile``: the top ``quantile`` of names long, the bottom ``quantile`` short, equal
  weights (``k = max(1, floor(quantile * n))`` names per side; ties broken by symbol order).
* ``proportional``: weights proportional to the cross-sectionally demeaned score.
* ``vol_scaled``: the demeaned score divided by the name's trailing volatility (sample std of
  the last ``vol_window`` daily returns known at the date), so that each unit of score carries
  the same risk.

The long leg sums to ``(gross + net) / 2`` and the short leg to ``(gross - net) / 2``:
``long_only`` has ``net = gross``, ``dollar_neutral`` has ``net = 0`` and ``long_short``
takes ``net`` (default 0). ``max_weight`` caps ``|w|`` per name; the excess is spread over
the uncapped names of the same leg in proportion to their weights (water-filling). A date that
cannot fill a leg (too few names, or a cap too tight) keeps what it can and raises a
:class:`PortfolioWarning`.

The rebalance schedule and the dense alignment of weights to prices live in :mod:`.panel`;
their public names are re-exported here.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from quantdesk.quant_core.costs import config_error
from quantdesk.quant_core.errors import InputError, SchemaError
from quantdesk.quant_core.features import price_column
from quantdesk.quant_core.labels import trailing_volatility
from quantdesk.quant_core.panel import (
    DensePanel,
    PanelLabels,
    Schedule,  # noqa: F401 (kept importable from here)
    align_targets,
    as_panel,
    dense_panel,
    dense_targets,
    fill_missing_prices,
    rebalance_mask,
    require_finite_targets,
    require_valid_prices,
    require_weights_frame,
)
from quantdesk.quant_core.schema import require_canonical

__all__ = [
    "DensePanel",
    "PanelLabels",
    "PortfolioWarning",
    "WeightSpec",
    "align_targets",
    "as_panel",
    "dense_panel",
    "dense_targets",
    "fill_missing_prices",
    "proportional_weights",
    "quantile_weights",
    "rebalance_mask",
    "require_finite_targets",
    "require_valid_prices",
    "require_weights_frame",
    "scores_to_weights",
    "vol_scaled_weights",
]

Side = Literal["long_only", "long_short", "dollar_neutral"]
WeightMethod = Literal["quantile", "proportional", "vol_scaled"]
# Relative tolerance of the cap: a weight this close to the cap counts as capped.
_CAP_TOL = 1e-12


class PortfolioWarning(UserWarning):
    """A date's portfolio could not meet its exposure targets (too few names, tight cap)."""


class WeightSpec(BaseModel):
    """How scores become weights (see the module docstring).

    Attributes:
        method: ``"quantile"``, ``"proportional"`` or ``"vol_scaled"``.
        side: ``"long_only"``, ``"long_short"`` or ``"dollar_neutral"``.
        quantile: Fraction of names in each of the top and bottom buckets (``quantile``).
        gross: Target ``sum |w|`` per date.
        net: Target ``sum w`` (``long_short`` only; ``None`` = 0, or ``gross`` long-only).
        max_weight: Cap on ``|w|`` per name, or ``None``.
        vol_window: Daily returns in the trailing volatility (``vol_scaled``).

    Raises:
        ConfigError: An invalid or inconsistent value (named in the message).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    method: WeightMethod = "quantile"
    side: Side = "long_short"
    quantile: float = Field(default=0.2, gt=0.0, le=1.0)
    gross: float = Field(default=1.0, gt=0.0, le=50.0)
    net: float | None = None
    max_weight: float | None = Field(default=None, gt=0.0)
    vol_window: int = Field(default=63, ge=2)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(
                exc,
                "weight settings",
                "method in ('quantile', 'proportional', 'vol_scaled'), side in "
                "('long_only', 'long_short', 'dollar_neutral'), 0 < quantile <= 0.5 with "
                "shorts, gross > 0, |net| <= gross, max_weight > 0.",
            ) from None

    @model_validator(mode="after")
    def _consistent(self) -> WeightSpec:
        if self.side == "long_only" and self.net not in (None, self.gross):
            raise ValueError(f"a long_only book has net = gross = {self.gross}, not {self.net}")
        if self.side == "dollar_neutral" and self.net not in (None, 0.0):
            raise ValueError(f"a dollar_neutral book has net = 0, not {self.net}")
        if self.net is not None and abs(self.net) > self.gross:
            raise ValueError(f"|net|={abs(self.net)} cannot exceed gross={self.gross}")
        if self.side != "long_only" and self.quantile > 0.5:
            raise ValueError(f"quantile={self.quantile} > 0.5 would put a name on both sides")
        return self

    @property
    def legs(self) -> tuple[float, float]:
        """Target sums of the long leg and of ``|short leg|``."""
        if self.side == "long_only":
            return self.gross, 0.0
        net = self.net or 0.0
        return (self.gross + net) / 2.0, (self.gross - net) / 2.0


def scores_to_weights(
    scores: pl.DataFrame,
    spec: WeightSpec | None = None,
    *,
    prices: pl.DataFrame | None = None,
    score_col: str = "score",
    **overrides: Any,
) -> pl.DataFrame:
    """Turn per-date scores into target weights.

    Args:
        scores: ``date, symbol, <score_col>``; one row per (date, symbol).
        spec: The :class:`WeightSpec` (defaults: top/bottom quintile, dollar-neutral, gross 1).
        prices: Canonical prices, needed by ``vol_scaled``.
        score_col: Name of the score column.
        **overrides: Fields replacing those of ``spec`` (e.g. ``side="long_only"``).

    Returns:
        ``date, symbol, weight`` with every row of ``scores`` (weight 0 when not held),
        sorted by (date, symbol).

    Raises:
        ConfigError: Invalid settings.
        InputError: Bad scores frame or missing prices for ``vol_scaled``.
    """
    base = {} if spec is None else spec.model_dump(exclude_unset=True)
    spec = WeightSpec(**{**base, **overrides})
    frame = _score_frame(scores, score_col)
    valid = pl.col("score").is_not_null() & pl.col("score").is_not_nan()
    if spec.method == "vol_scaled":
        frame = frame.join(_volatility(prices, spec.vol_window), on=["date", "symbol"], how="left")
        valid = valid & (pl.col("vol") > 0.0).fill_null(False)
    frame = frame.with_columns(valid.alias("valid"))
    frame = frame.with_columns(_preference(spec).fill_null(0.0).alias("pref"))
    return _legs_to_weights(frame, spec)


def quantile_weights(
    scores: pl.DataFrame, *, quantile: float = 0.2, score_col: str = "score", **options: Any
) -> pl.DataFrame:
    """Equal weights on the top (long) and bottom (short) ``quantile`` of names per date.

    ``options`` are the other :class:`WeightSpec` fields (``side``, ``gross``, ``net``,
    ``max_weight``); see :func:`scores_to_weights`.
    """
    return scores_to_weights(
        scores, method="quantile", quantile=quantile, score_col=score_col, **options
    )


def proportional_weights(
    scores: pl.DataFrame, *, score_col: str = "score", **options: Any
) -> pl.DataFrame:
    """Weights proportional to the demeaned score per date (see :func:`scores_to_weights`)."""
    return scores_to_weights(scores, method="proportional", score_col=score_col, **options)


def vol_scaled_weights(
    scores: pl.DataFrame,
    prices: pl.DataFrame,
    *,
    vol_window: int = 63,
    score_col: str = "score",
    **options: Any,
) -> pl.DataFrame:
    """Weights proportional to demeaned score / trailing volatility (see the module docstring)."""
    return scores_to_weights(
        scores,
        method="vol_scaled",
        prices=prices,
        vol_window=vol_window,
        score_col=score_col,
        **options,
    )


def _score_frame(scores: pl.DataFrame, score_col: str) -> pl.DataFrame:
    if not isinstance(scores, pl.DataFrame):
        raise InputError(
            f"Expected a polars DataFrame of scores, got {type(scores).__name__}.",
            fix="pass a frame with columns date, symbol and the score.",
        )
    missing = [c for c in ("date", "symbol", score_col) if c not in scores.columns]
    if missing:
        raise SchemaError(
            f"The scores frame lacks column(s) {missing}; it has {scores.columns}.",
            fix=f"rename the columns, or pass score_col= (now {score_col!r}).",
        )
    if scores.height == 0:
        raise InputError("The scores frame is empty.", fix="check the dates and symbols.")
    if not scores.schema[score_col].is_numeric():
        raise SchemaError(
            f"Score column {score_col!r} has type {scores.schema[score_col]}, not numeric.",
            fix="cast the scores to Float64.",
        )
    frame = scores.select(
        pl.col("date").cast(pl.Date),
        pl.col("symbol").cast(pl.String),
        pl.col(score_col).cast(pl.Float64).alias("score"),
    ).sort("date", "symbol")
    dupes = frame.height - frame.select("date", "symbol").n_unique()
    if dupes:
        raise InputError(
            f"The scores frame has {dupes} duplicate (date, symbol) row(s).",
            fix="keep one score per symbol and date.",
        )
    return frame


def _volatility(prices: pl.DataFrame | None, window: int) -> pl.DataFrame:
    if prices is None:
        raise InputError(
            "method='vol_scaled' needs the prices to measure volatility, got prices=None.",
            fix="pass prices=<canonical price frame>, or use method='proportional'.",
        )
    require_canonical(prices)
    price = price_column(prices)
    return prices.select("date", "symbol", trailing_volatility(price, window).alias("vol"))


def _preference(spec: WeightSpec) -> pl.Expr:
    """Signed preference per name: its sign picks the leg, its size the weight in the leg."""
    score = pl.when(pl.col("valid")).then(pl.col("score"))
    n = score.count().over("date")
    if spec.method == "quantile":
        need = 1 if spec.side == "long_only" else 2
        k = pl.max_horizontal((n * spec.quantile).floor(), pl.lit(1.0))
        top = score.rank("ordinal", descending=True).over("date") <= k
        bottom = score.rank("ordinal").over("date") <= k
        short = -1.0 if spec.side != "long_only" else 0.0
        pref = pl.when(top).then(1.0).when(bottom).then(short).otherwise(0.0)
        return pl.when(n >= need).then(pref).otherwise(0.0)
    centred = score - score.mean().over("date")
    if spec.method == "vol_scaled":
        centred = centred / pl.col("vol")
    return centred.clip(lower_bound=0.0) if spec.side == "long_only" else centred


def _legs_to_weights(frame: pl.DataFrame, spec: WeightSpec) -> pl.DataFrame:
    long_total, short_total = spec.legs
    frame = frame.with_columns(
        pl.when(pl.col("pref") > 0).then(pl.lit("long")).otherwise(pl.lit("short")).alias("leg"),
        pl.col("pref").abs().alias("mass"),
    ).with_columns(
        pl.when(pl.col("leg") == "long")
        .then(pl.lit(long_total))
        .otherwise(pl.lit(short_total))
        .alias("target")
    )
    group = ["date", "leg"]
    total = pl.col("mass").sum().over(group)
    frame = frame.with_columns(
        pl.when(total > 0).then(pl.col("target") * pl.col("mass") / total).otherwise(0.0).alias("w")
    )
    if spec.max_weight is not None:
        frame = _water_fill(frame, spec.max_weight, group)
    # A leg that should hold something but holds nothing empties the whole date. Dates
    # without any valid score (a warm-up) are flat without a warning.
    filled = frame.group_by("date").agg(
        pl.col("valid").any().alias("scored"),
        pl.col("w").filter(pl.col("leg") == "long").sum().alias("sum_l"),
        pl.col("w").filter(pl.col("leg") == "short").sum().alias("sum_s"),
    )
    unfilled = ((pl.col("sum_l") <= 0) & (long_total > 0)) | (
        (pl.col("sum_s") <= 0) & (short_total > 0)
    )
    empty = filled.filter(unfilled)["date"].sort()
    lacking = filled.filter(unfilled & pl.col("scored"))["date"].sort()
    if lacking.len():
        warnings.warn(
            f"{lacking.len()} date(s) have too few valid scores to fill their legs, first "
            f"{lacking[0]}; they hold nothing.",
            PortfolioWarning,
            stacklevel=3,
        )
    below_target = filled.filter(
        (pl.col("sum_l") < long_total * (1 - 1e-9)) | (pl.col("sum_s") < short_total * (1 - 1e-9))
    ).filter(~pl.col("date").is_in(empty.implode()))
    if below_target.height:
        warnings.warn(
            f"max_weight={spec.max_weight} leaves {below_target.height} date(s) below the "
            f"exposure target (too few names to spread it), first "
            f"{below_target['date'].min()}.",
            PortfolioWarning,
            stacklevel=3,
        )
    sign = pl.when(pl.col("leg") == "long").then(1.0).otherwise(-1.0)
    weight = pl.when(pl.col("date").is_in(empty.implode())).then(0.0).otherwise(sign * pl.col("w"))
    return frame.select("date", "symbol", (weight + 0.0).alias("weight"))


def _water_fill(frame: pl.DataFrame, cap: float, group: list[str]) -> pl.DataFrame:
    """Cap each weight at ``cap`` and spread the excess over the uncapped names of its leg."""
    frame = frame.with_columns(pl.lit(False).alias("capped"))
    limit = cap * (1.0 + _CAP_TOL)
    for _ in range(frame.height):  # each round caps at least one more name, or stops
        over = (pl.col("w") > limit) & ~pl.col("capped")
        if not frame.select(over.any()).item():
            break
        frame = frame.with_columns((pl.col("capped") | over).alias("capped"))
        free = pl.col("mass").filter(~pl.col("capped")).sum().over(group)
        rest = pl.col("target") - cap * pl.col("capped").sum().over(group)
        frame = frame.with_columns(
            pl.when(pl.col("capped"))
            .then(pl.lit(cap))
            .when(free > 0)
            .then(pl.max_horizontal(rest, pl.lit(0.0)) * pl.col("mass") / free)
            .otherwise(0.0)
            .alias("w")
        )
    return frame.with_columns(pl.min_horizontal(pl.col("w"), pl.lit(cap)).alias("w"))
