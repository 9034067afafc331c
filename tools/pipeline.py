"""The guarded steps every research tool shares: load prices, features, labels.

The order is the only safe one and each step records its guardrail on the
:class:`~quantdesk.tools.guardrails.ToolRun`:

1. :func:`load_checked_prices`: provider read cut at ``as_of`` (``as_of``), the holdout window
   refused (``holdout``), data hash recorded, validation started in the background
   (``data_validation``: settled before a trial is recorded or a result returned);
2. :func:`checked_features`: the feature function is verified by perturbation on a sample
   (``lookahead``) before it runs on the whole panel;
3. :func:`checked_labels`: forward labels with their ``[t0, t1]`` intervals.

:func:`feature_function` builds the feature callable; tests replace it (``monkeypatch``) to
prove that a leaky feature set is refused.
"""

from __future__ import annotations

import functools
from datetime import date
from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict, Field

from quantdesk.tools.envelope import ToolInputError, ToolModel
from quantdesk.tools.guardrails import (
    ToolRun,
    check_holdout,
    check_loaded_as_of,
    start_data_validation,
)
from quantdesk.tools.inputs import DemoSource, FileSource
from quantdesk.tools.providers import provider_for

if TYPE_CHECKING:
    import polars as pl

    from quantdesk.tools.lookahead import FeatureFunction, LookaheadReport

__all__ = [
    "FeatureSetInput",
    "LabelInput",
    "checked_features",
    "checked_labels",
    "feature_function",
    "load_checked_prices",
    "model_columns",
    "resolve_feature_names",
]

FeatureName = str
Transform = Literal["rank", "zscore", "raw"]
_PREFIX = {"rank": "cs_rank_", "zscore": "cs_z_", "raw": ""}


class FeatureSetInput(ToolModel):
    """Which features to compute and what a model or signal sees.

    Attributes:
        names: Feature names (patterns in ``FEATURE_PATTERNS``: ``ret_21``, ``mom_252_21``,
            ``rvol_63``, ``volz_21``, ``rsi_14``, ``ma_dist_50``, ...); omitted: the 16
            defaults.
        transform: ``rank`` (per-date cross-sectional rank in [0, 1]), ``zscore`` (per-date
            z-score) or ``raw`` values.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    names: list[FeatureName] | None = Field(
        default=None, min_length=1, max_length=64, description="Feature names; omitted: defaults."
    )
    transform: Transform = "rank"


class LabelInput(ToolModel):
    """How labels are built (see :class:`~quantdesk.quant_core.labels.LabelSpec`).

    Attributes:
        kind: ``forward_return``, ``binary``, ``ternary`` or ``triple_barrier``.
        horizon: Sessions ahead (1-252).
        threshold: Binary/ternary class threshold on the forward return.
        vol_scaled: Express the threshold in units of trailing volatility x sqrt(horizon).
        pt_mult: Triple-barrier profit-taking multiple (``null``: none).
        sl_mult: Triple-barrier stop-loss multiple (``null``: none).
        vol_window: Daily returns in the trailing volatility.
        vertical: Triple-barrier label without a touch: ``sign`` or ``zero``.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    kind: Literal["forward_return", "binary", "ternary", "triple_barrier"] = "forward_return"
    horizon: int = Field(default=5, ge=1, le=252)
    threshold: float = Field(default=0.0, ge=-1.0, le=10.0)
    vol_scaled: bool = False
    pt_mult: float | None = Field(default=1.0, gt=0.0, le=100.0)
    sl_mult: float | None = Field(default=1.0, gt=0.0, le=100.0)
    vol_window: int = Field(default=20, ge=2, le=252)
    vertical: Literal["sign", "zero"] = "sign"


def load_checked_prices(
    run: ToolRun,
    source: FileSource | DemoSource,
    as_of: date | None,
    *,
    what: str = "prices",
    validate: bool = True,
) -> pl.DataFrame:
    """Load ``source`` cut at ``as_of`` and run the data guardrails on it.

    Raises:
        ToolInputError: a bad source reference.
        ToolRefusedError: the data reaches into the holdout, or fails validation.
        InputError: unreadable or non-canonical data.
    """
    from quantdesk.quant_core.dataset import frame_hash
    from quantdesk.quant_core.schema import require_canonical

    with run.timed("load"):
        frame = provider_for(source).load(source, as_of=as_of)
        require_canonical(frame, what=what)
    with run.timed("guardrails"):
        check_loaded_as_of(run, frame, as_of)
        check_holdout(run, frame, what=what)
        run.data_hash = frame_hash(frame)
    if validate:  # decided by settle_data_validation before anything is recorded or returned
        start_data_validation(run, frame)
    return frame


def resolve_feature_names(spec: FeatureSetInput, *, field: str = "features.names") -> list[str]:
    """Return the requested feature names, parsed and de-duplicated.

    Raises:
        ToolInputError: an unknown feature name (the message lists the patterns).
    """
    from quantdesk.quant_core.errors import InputError
    from quantdesk.quant_core.features import DEFAULT_FEATURES, FEATURE_PATTERNS, parse_feature

    names = list(dict.fromkeys(spec.names or DEFAULT_FEATURES))
    for i, name in enumerate(names):
        try:
            parse_feature(name)
        except InputError as exc:
            raise ToolInputError(
                f"{field}.{i}",
                exc.message,
                fix=f"use a name matching one of {sorted(FEATURE_PATTERNS)} "
                "(windows in sessions), e.g. 'mom_252_21' or 'rvol_63'.",
            ) from None
    return names


def model_columns(names: list[str], transform: Transform) -> list[str]:
    """Columns a model or signal reads for ``names`` under ``transform``."""
    return [_PREFIX[transform] + n for n in names]


def feature_function(names: list[str], transform: Transform) -> FeatureFunction:
    """Return the callable that computes ``names`` (raw plus the transform's columns)."""
    from quantdesk.quant_core.features import compute_features

    cross_sectional = None if transform == "raw" else (transform,)
    return functools.partial(compute_features, names=names, cross_sectional=cross_sectional)


def checked_features(
    run: ToolRun, prices: pl.DataFrame, names: list[str], transform: Transform, *, seed: int = 0
) -> tuple[pl.DataFrame, LookaheadReport]:
    """Verify the feature function by perturbation, then compute it on all of ``prices``.

    Raises:
        ToolRefusedError: a feature changed at t when only data after t changed.
    """
    from quantdesk.tools.lookahead import check_lookahead

    fn = feature_function(names, transform)
    with run.timed("guardrails"):
        report = check_lookahead(prices, fn, seed=seed)
    if not report.passed:
        run.refuse(
            "lookahead",
            f"Look-ahead detected: {report.summary()} A feature that reads the future makes "
            "every CV and backtest result on it meaningless.",
            fix=f"drop or fix the leaking feature(s) {list(report.leaking)}: a value at t may "
            "use data dated on or before t only.",
        )
    run.passed("lookahead", report.summary())
    with run.timed("work"):
        features = fn(prices)
    return features, report


def checked_labels(prices: pl.DataFrame, spec: LabelInput, run: ToolRun) -> pl.DataFrame:
    """Build the label frame of ``spec`` (each row carries its interval ``[t0, t1]``)."""
    from quantdesk.quant_core.labels import make_labels

    with run.timed("work"):
        return make_labels(prices, **spec.model_dump())
