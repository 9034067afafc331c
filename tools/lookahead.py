"""Look-ahead check by perturbation: data after t changes, features at t must not.

A feature at session t may use data dated on or before t only. :func:`check_lookahead` tests
that on a sample: it picks a few symbols and cut dates (seeded), then for each cut

* **perturbs** every price and volume dated after the cut (a random positive factor per row,
  the same for open/high/low/close/adj_close so that bars stay consistent) and
* **truncates** the data at the cut,

recomputes the features and requires every value dated on or before the cut to be *exactly*
equal to the value computed on the untouched data (nulls and NaNs equal to themselves). Any
difference means the feature read the future. Truncation also catches features whose value
depends on how much data follows (a centred window, a whole-sample normalisation).

The check is cheap by construction: a handful of symbols (cross-sectional transforms then run
over that sample, which is still point-in-time) and two or three cuts. The feature function is
a parameter, so tests (and new feature families) can run it on their own callables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from time import perf_counter

import numpy as np
import polars as pl

from quantdesk.quant_core.errors import InputError

__all__ = ["FeatureFunction", "LookaheadReport", "check_lookahead"]

FeatureFunction = Callable[[pl.DataFrame], pl.DataFrame]
"""Maps a canonical price frame to ``date, symbol, <features...>``."""

_PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")
_KEYS = ("date", "symbol")


@dataclass(frozen=True)
class LookaheadReport:
    """Outcome of :func:`check_lookahead`.

    Attributes:
        passed: True when no feature value at or before a cut changed.
        symbols: Symbols of the sample.
        cut_dates: The cut dates tried.
        n_values: Feature values compared (over every cut and both variants).
        leaking: Feature columns that changed, in column order.
        first_violation: One offending value, spelled out, or ``None``.
        seconds: Wall-clock time of the check.
    """

    passed: bool
    symbols: tuple[str, ...]
    cut_dates: tuple[date, ...]
    n_values: int
    leaking: tuple[str, ...] = ()
    first_violation: str | None = None
    seconds: float = field(default=0.0, compare=False)

    def summary(self) -> str:
        """One sentence for the envelope's guardrail reason."""
        cuts = ", ".join(str(d) for d in self.cut_dates)
        if self.passed:
            return (
                f"perturbing or removing the data after {cuts} left all {self.n_values:,} "
                f"feature values at or before each cut unchanged ({len(self.symbols)} symbols)."
            )
        return (
            f"feature(s) {list(self.leaking)} changed at or before a cut when only later data "
            f"changed: {self.first_violation}"
        )


def _sample(
    prices: pl.DataFrame, n_symbols: int, n_cuts: int, rng: np.random.Generator
) -> tuple[pl.DataFrame, list[date]]:
    symbols = np.array(sorted(prices["symbol"].unique().to_list()), dtype=object)
    chosen = sorted(rng.choice(symbols, size=min(n_symbols, symbols.size), replace=False))
    sample = prices.filter(pl.col("symbol").is_in(chosen))
    dates = sample["date"].unique().sort().to_numpy()
    if dates.size < 4:
        raise InputError(
            f"The look-ahead check needs at least 4 dates; the data has {dates.size}.",
            fix="load a longer history.",
        )
    # Cuts in the later part of the sample, after feature warm-up, before the very end.
    lo, hi = int(dates.size * 0.4), max(int(dates.size * 0.95), int(dates.size * 0.4) + 1)
    picks = np.sort(rng.choice(np.arange(lo, hi), size=min(n_cuts, hi - lo), replace=False))
    return sample, [dates[i].astype("datetime64[D]").item() for i in picks]


def _perturb(sample: pl.DataFrame, cut: date, rng: np.random.Generator) -> pl.DataFrame:
    after = (sample["date"] > cut).to_numpy()
    price_factor = np.where(after, np.exp(rng.normal(0.0, 0.05, sample.height)), 1.0)
    volume_factor = np.where(after, np.exp(rng.normal(0.0, 0.5, sample.height)), 1.0)
    return sample.with_columns(
        *[pl.col(c) * price_factor for c in _PRICE_COLUMNS if c in sample.columns],
        pl.col("volume") * volume_factor,
    )


def _first_difference(
    base: pl.DataFrame, other: pl.DataFrame, cut: date, variant: str
) -> tuple[list[str], str | None, int]:
    """Compare the features of two runs on the rows dated on or before ``cut``."""
    left = base.filter(pl.col("date") <= cut)
    right = other.filter(pl.col("date") <= cut)
    columns = [c for c in left.columns if c not in _KEYS]
    if left.height != right.height or set(right.columns) != set(left.columns):
        return (
            columns,
            f"after {variant} the data after {cut}, the feature frame has {right.height} rows "
            f"and columns {right.columns} at or before the cut instead of {left.height} and "
            f"{left.columns}.",
            0,
        )
    joined = left.join(right, on=list(_KEYS), how="left", suffix="__other")
    leaking: list[str] = []
    first = None
    for col in columns:
        a, b = pl.col(col), pl.col(f"{col}__other")
        if joined.schema[col].is_float():
            same = (a == b) | (a.is_null() & b.is_null()) | (a.is_nan() & b.is_nan())
        else:
            same = a.eq_missing(b)
        bad = joined.filter(~same.fill_null(False))
        if bad.height:
            leaking.append(col)
            if first is None:
                day, sym, x, y = bad.select("date", "symbol", col, f"{col}__other").row(0)
                first = (
                    f"{col} of {sym} on {day} was {x!r} and became {y!r} after {variant} the "
                    f"data after {cut}."
                )
    return leaking, first, joined.height * len(columns)


def check_lookahead(
    prices: pl.DataFrame,
    feature_fn: FeatureFunction,
    *,
    n_symbols: int = 6,
    n_cuts: int = 2,
    seed: int = 0,
) -> LookaheadReport:
    """Verify by perturbation and truncation that ``feature_fn`` never reads the future.

    Args:
        prices: Canonical price frame (sorted by symbol, date).
        feature_fn: The feature computation under test (e.g. a ``functools.partial`` of
            :func:`~quantdesk.quant_core.features.compute_features`).
        n_symbols: Symbols in the sample.
        n_cuts: Cut dates tried.
        seed: Seed of the sample and of the perturbations.

    Returns:
        The :class:`LookaheadReport` (``passed`` is False when a feature leaked).

    Raises:
        InputError: fewer than 4 dates; errors of ``feature_fn`` itself propagate.
    """
    started = perf_counter()
    rng = np.random.default_rng(seed)
    sample, cuts = _sample(prices, n_symbols, n_cuts, rng)
    base = feature_fn(sample)
    leaking: list[str] = []
    first = None
    n_values = 0
    for cut in cuts:
        for variant, changed in (
            ("perturbing", _perturb(sample, cut, rng)),
            ("removing", sample.filter(pl.col("date") <= cut)),
        ):
            cols, where, n = _first_difference(base, feature_fn(changed), cut, variant)
            n_values += n
            leaking += [c for c in cols if c not in leaking]
            first = first or where
    return LookaheadReport(
        passed=not leaking,
        symbols=tuple(sorted(sample["symbol"].unique().to_list())),
        cut_dates=tuple(cuts),
        n_values=n_values,
        leaking=tuple(leaking),
        first_violation=first,
        seconds=perf_counter() - started,
    )
