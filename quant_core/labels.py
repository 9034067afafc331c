"""Forward-looking labels that carry their information interval ``[t0, t1]``.

A label frame has one row per (date, symbol) that can be labelled, sorted by
``(symbol, date)``, with columns:

* ``date``, ``symbol``: the decision row (decision at the close of ``date``).
* ``t0``: equal to ``date``.
* ``t1``: the last session whose data the label uses; ``t1 > t0``.
* ``label``: the target (Float64 for ``forward_return``, Int64 classes otherwise).
* ``ret``: the realised simple return from the close at ``t0`` to the close at ``t1``.
* ``barrier`` (triple-barrier only): ``"pt"``, ``"sl"`` or ``"vertical"``.

Timing: a label at t depends only on prices in ``(t, t1]`` plus what is known at the close of
t (the base price and, for volatility-scaled kinds, the trailing volatility). Purged
cross-validation uses ``[t0, t1]`` (closed) to drop overlapping training rows. Windows count
sessions of the symbol, not calendar days; rows whose horizon runs past the end of a symbol's
data are dropped, and so are rows whose trailing volatility is not yet defined (the first
``vol_window`` rows) or is zero, for the kinds that need it.

Kinds (``h`` = horizon, ``p`` = :func:`~quantdesk.quant_core.features.price_column`):

* ``forward_return``: ``p_{t+h} / p_t - 1``.
* ``binary``: 1 if the forward return is ``> threshold`` else 0.
* ``ternary``: 1 above ``+threshold``, -1 below ``-threshold``, else 0 (``threshold >= 0``).
* ``triple_barrier`` (López de Prado, *Advances in Financial Machine Learning*, 2018, §3.4):
  upper barrier ``+pt_mult * sigma_t * sqrt(h)``, lower barrier ``-sl_mult * sigma_t * sqrt(h)``
  on the return ``p_{t+k} / p_t - 1``, checked on closes for k = 1..h; the first touch sets the
  label (+1 upper, -1 lower) and ``t1`` (so the interval is as short as the information
  used). Without a touch the vertical barrier at ``t+h`` applies and the label is the sign of
  the return there (``vertical="sign"``) or 0 (``vertical="zero"``). ``pt_mult=None`` or
  ``sl_mult=None`` removes that barrier.

``sigma_t`` is the sample std (ddof=1) of the last ``vol_window`` daily simple returns ending at
t: a per-day volatility, scaled to the horizon with ``sqrt(h)``. With ``vol_scaled=True`` the
binary and ternary thresholds are in the same unit (``threshold * sigma_t * sqrt(h)``).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from quantdesk.quant_core.errors import DataError, InputError, InsufficientDataError
from quantdesk.quant_core.features import price_column, require_positive_prices
from quantdesk.quant_core.research_context import guard_holdout
from quantdesk.quant_core.schema import coerce_as_of, require_canonical, select_as_of

__all__ = [
    "LABEL_KINDS",
    "LabelKind",
    "LabelSpec",
    "forward_return",
    "labels_from_spec",
    "make_labels",
    "trailing_volatility",
]

LabelKind = Literal["forward_return", "binary", "ternary", "triple_barrier"]
LABEL_KINDS: tuple[str, ...] = ("forward_return", "binary", "ternary", "triple_barrier")
_BARRIER_NAMES = {1: "pt", -1: "sl", 0: "vertical"}


class LabelSpec(BaseModel):
    """How to build labels; validated, so it can come from a config file or an agent.

    Attributes:
        kind: ``forward_return``, ``binary``, ``ternary`` or ``triple_barrier``.
        horizon: Sessions ahead (the vertical barrier for triple-barrier), >= 1.
        threshold: Class threshold on the forward return (binary, ternary). For ternary it
            must be >= 0. In units of ``sigma_t * sqrt(horizon)`` when ``vol_scaled``.
        vol_scaled: Scale the binary/ternary threshold by the trailing volatility.
        pt_mult: Profit-taking barrier in units of ``sigma_t * sqrt(horizon)``; None = none.
        sl_mult: Stop-loss barrier in the same unit; None = none.
        vol_window: Daily returns in the trailing volatility ``sigma_t``, >= 2.
        vertical: Triple-barrier label when no barrier is touched: ``"sign"`` of the return
            at the vertical barrier, or ``"zero"``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: LabelKind = "forward_return"
    horizon: int = Field(default=5, ge=1)
    threshold: float = 0.0
    vol_scaled: bool = False
    pt_mult: float | None = Field(default=1.0, gt=0.0)
    sl_mult: float | None = Field(default=1.0, gt=0.0)
    vol_window: int = Field(default=20, ge=2)
    vertical: Literal["sign", "zero"] = "sign"

    @model_validator(mode="after")
    def _check_threshold(self) -> LabelSpec:
        if self.kind == "ternary" and self.threshold < 0:
            raise ValueError(f"ternary needs threshold >= 0, got {self.threshold}")
        return self

    @property
    def uses_volatility(self) -> bool:
        """Whether the labels need ``sigma_t`` (and so drop the first ``vol_window`` rows)."""
        return self.kind == "triple_barrier" or (
            self.vol_scaled and self.kind in ("binary", "ternary")
        )


def trailing_volatility(price: str, window: int) -> pl.Expr:
    """Per-symbol sample std of the last ``window`` daily simple returns, known at t.

    Null for the first ``window`` rows of each symbol; assumes rows sorted by (symbol, date).
    """
    return pl.col(price).pct_change().rolling_std(window).over("symbol")


def forward_return(
    frame: pl.DataFrame, horizon: int, *, as_of: date | datetime | str | None = None
) -> pl.DataFrame:
    """Label every row with its simple return over the next ``horizon`` sessions.

    Shorthand for ``make_labels(frame, "forward_return", horizon=horizon, as_of=as_of)``.
    """
    return make_labels(frame, "forward_return", horizon=horizon, as_of=as_of)


def make_labels(
    frame: pl.DataFrame,
    kind: LabelKind = "forward_return",
    *,
    horizon: int = 5,
    threshold: float = 0.0,
    vol_scaled: bool = False,
    pt_mult: float | None = 1.0,
    sl_mult: float | None = 1.0,
    vol_window: int = 20,
    vertical: Literal["sign", "zero"] = "sign",
    as_of: date | datetime | str | None = None,
) -> pl.DataFrame:
    """Build a label frame; the arguments are those of :class:`LabelSpec`.

    Args:
        frame: Canonical price frame sorted by ``(symbol, date)``.
        kind: Label kind (see the module docstring).
        horizon: Sessions ahead, >= 1.
        threshold: Binary/ternary threshold on the forward return.
        vol_scaled: Express ``threshold`` in units of ``sigma_t * sqrt(horizon)``.
        pt_mult: Triple-barrier profit-taking multiple (None: no upper barrier).
        sl_mult: Triple-barrier stop-loss multiple (None: no lower barrier).
        vol_window: Daily returns in the trailing volatility.
        vertical: Triple-barrier label without a touch: ``"sign"`` or ``"zero"``.
        as_of: Cut the frame at this date first, so that every label has ``t1 <= as_of``.

    Returns:
        The label frame described in the module docstring.

    Raises:
        InputError: An invalid argument (named in the message).
        InsufficientDataError: No symbol has enough sessions for the horizon.
        DataError: Bad input frame or non-positive/non-finite prices.
    """
    try:
        spec = LabelSpec(
            kind=kind,
            horizon=horizon,
            threshold=threshold,
            vol_scaled=vol_scaled,
            pt_mult=pt_mult,
            sl_mult=sl_mult,
            vol_window=vol_window,
            vertical=vertical,
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'spec'}={err.get('input')!r}: {err['msg']}"
            for err in exc.errors()
        )
        raise InputError(
            f"Invalid label settings: {problems}.",
            fix="horizon >= 1, vol_window >= 2, pt_mult/sl_mult > 0 or None, finite "
            f"threshold (>= 0 for ternary), kind in {list(LABEL_KINDS)}.",
        ) from None
    return labels_from_spec(frame, spec, as_of=as_of)


def labels_from_spec(
    frame: pl.DataFrame, spec: LabelSpec, *, as_of: date | datetime | str | None = None
) -> pl.DataFrame:
    """Build the label frame described by ``spec`` (see :func:`make_labels`)."""
    require_canonical(frame)
    cut = select_as_of(frame, as_of)
    if cut.height == 0:
        raise DataError(
            f"No rows dated on or before as_of={coerce_as_of(as_of)}; the frame starts on "
            f"{frame['date'].min()}.",
            fix="pass a later as_of or load an earlier date range.",
        )
    guard_holdout(cut, what="label input prices")
    price = price_column(cut)
    require_positive_prices(cut, price)
    # Rows are sorted by (symbol, date), so each symbol is one run of rows.
    lengths = cut["symbol"].rle().struct.field("len").to_numpy().astype(np.int64)
    _require_enough_sessions(lengths, spec)
    if spec.kind == "triple_barrier":
        return _triple_barrier(cut, price, spec)
    return _fixed_horizon(cut, price, spec, lengths)


def _require_enough_sessions(lengths: np.ndarray, spec: LabelSpec) -> None:
    longest = int(lengths.max())
    needed = spec.horizon + 1 + (spec.vol_window if spec.uses_volatility else 0)
    if longest < needed:
        max_h = longest - 1 - (needed - spec.horizon - 1)
        warmup = f" plus vol_window={spec.vol_window}" if spec.uses_volatility else ""
        raise InsufficientDataError(
            f"horizon={spec.horizon}{warmup} needs at least {needed} sessions for one "
            f"symbol; the longest symbol has {longest}.",
            fix=f"use horizon <= {max_h}, or load a longer date range."
            if max_h >= 1
            else "load a longer date range or use a smaller vol_window.",
        )


def _fixed_horizon(
    frame: pl.DataFrame, price: str, spec: LabelSpec, lengths: np.ndarray
) -> pl.DataFrame:
    h = spec.horizon
    # Row i + h is the same symbol h sessions later unless i is among the last h rows of its
    # symbol; those rows have no full horizon and are dropped. Marking them takes h small
    # scatters, far cheaper than a per-symbol shift over every row.
    keep = np.ones(frame.height, dtype=bool)
    ends = np.cumsum(lengths)
    for k in range(1, h + 1):
        keep[(ends - k)[lengths >= k]] = False
    p = frame[price].to_numpy()
    if spec.vol_scaled and spec.kind != "forward_return":
        # Vol-scaled thresholds exist only once sigma_t is defined (and non-zero).
        sigma = frame.select(trailing_volatility(price, spec.vol_window)).to_series().to_numpy()
        with np.errstate(invalid="ignore"):
            keep &= sigma > 0.0
        rows = np.flatnonzero(keep)
        thr: np.ndarray | float = spec.threshold * sigma[rows] * math.sqrt(h)
    else:
        rows = np.flatnonzero(keep)
        thr = spec.threshold
    ret = p[rows + h] / p[rows] - 1.0
    if spec.kind == "forward_return":
        label = pl.Series("label", ret)
    elif spec.kind == "binary":
        label = pl.Series("label", (ret > thr).astype(np.int64))
    else:
        label = pl.Series("label", np.where(ret > thr, 1, np.where(ret < -thr, -1, 0)), pl.Int64)
    return (
        frame.select("date", "symbol")
        .filter(pl.Series(keep))
        .with_columns(
            pl.col("date").alias("t0"),
            frame["date"].gather(rows + h).alias("t1"),
            label,
            pl.Series("ret", ret),
        )
    )


def _triple_barrier(frame: pl.DataFrame, price: str, spec: LabelSpec) -> pl.DataFrame:
    h = spec.horizon
    base = (
        frame.lazy()
        .select(
            "date",
            "symbol",
            pl.col(price).alias("_p"),
            trailing_volatility(price, spec.vol_window).alias("_sigma"),
            (pl.int_range(pl.len()).over("symbol") + h < pl.len().over("symbol")).alias("_full"),
        )
        .collect()
    )
    prices = base["_p"].to_numpy()
    sigma = base["_sigma"].fill_null(0.0).to_numpy()
    # Rows with a full horizon inside their own symbol: for them row i + k (k <= h) is the
    # same symbol k sessions later, so the path is a plain positional shift of the array.
    rows = np.flatnonzero(base["_full"].to_numpy() & (sigma > 0.0))
    scale = sigma[rows] * math.sqrt(h)
    upper = spec.pt_mult * scale if spec.pt_mult is not None else np.full(rows.size, np.inf)
    lower = -spec.sl_mult * scale if spec.sl_mult is not None else np.full(rows.size, -np.inf)
    start = prices[rows]
    touch = np.zeros(rows.size, dtype=np.int64)  # offset k of the first touch, 0 = none yet
    label = np.zeros(rows.size, dtype=np.int64)
    for k in range(1, h + 1):
        open_ = np.flatnonzero(touch == 0)
        if open_.size == 0:
            break
        r = prices[rows[open_] + k] / start[open_] - 1.0
        hit_up = r >= upper[open_]
        hit_down = r <= lower[open_]
        hit = hit_up | hit_down
        touch[open_[hit]] = k
        label[open_[hit_up]] = 1
        label[open_[hit_down]] = -1
    vertical = touch == 0
    touch[vertical] = h
    end = rows + touch
    ret = prices[end] / start - 1.0
    if spec.vertical == "sign":
        label[vertical] = np.sign(ret[vertical]).astype(np.int64)
    # Touched rows carry label +1 (pt) or -1 (sl); code vertical rows as 0 before naming.
    barrier = pl.Series(np.where(vertical, 0, label).astype(np.int8)).replace_strict(
        _BARRIER_NAMES, return_dtype=pl.String
    )
    dates = base["date"]
    return pl.DataFrame(
        {
            "date": dates.gather(rows),
            "symbol": base["symbol"].gather(rows),
            "t0": dates.gather(rows),
            "t1": dates.gather(end),
            "label": label,
            "ret": ret,
            "barrier": barrier,
        }
    )
