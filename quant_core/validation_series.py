"""The time-series checks of :func:`~quantdesk.quant_core.validation.validate_prices`.

Spikes that reverse (bad prints) and jumps that match a split ratio (unrecorded splits), per
symbol on a frame sorted by (symbol, date) with unique keys; the model and thresholds are in
the :mod:`~quantdesk.quant_core.validation` docstring. Also the helpers that turn flagged rows
into issue rows, shared by every check.

Robust volatility is ``1.4826 * median |r|`` over a centred window. It is computed only on the
rows that can still be a spike (about a fifth of a typical panel), with numpy: a centred
rolling median over every row was half of the validation's time. The medians equal polars'
``rolling_median(window, min_samples, center=True)`` (the tests compare the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from math import log

import numpy as np
import polars as pl

__all__ = ["fmt_sig", "issues_frame", "pick", "series_checks"]

# A jump this close to a split ratio (in log terms) is called an error, not a warning: a
# genuine 50% move landing within 0.5% of a ratio is far rarer than a missed split.
_TIGHT_SPLIT_MATCH = 0.005
_MAD_TO_SD = 1.4826


def issues_frame(
    rows: pl.DataFrame,
    kind: str,
    severity: str | pl.Expr,
    value: pl.Expr,
    template: str,
    *args: pl.Expr,
) -> pl.DataFrame:
    """One issue per row of ``rows``; ``detail`` is ``pl.format(template, *args)``."""
    sev = pl.lit(severity) if isinstance(severity, str) else severity
    # rechunk: pl.format panics on multi-chunk columns in polars 2.1.
    return rows.rechunk().select(
        pl.lit(kind).alias("kind"),
        pl.col("symbol"),
        pl.col("date"),
        value.cast(pl.Float64).alias("value"),
        sev.alias("severity"),
        (pl.format(template, *args) if args else pl.lit(template)).alias("detail"),
    )


def pick(condition: pl.Expr | str, yes: str, no: str) -> pl.Expr:
    """The literal ``yes`` where ``condition`` holds, else ``no``."""
    return pl.when(condition).then(pl.lit(yes)).otherwise(pl.lit(no))


def fmt_sig(expr: pl.Expr, digits: int = 4) -> pl.Expr:
    """``expr`` rounded to ``digits`` significant figures, as text (for issue details)."""
    return expr.round_sig_figs(digits).cast(pl.String)


def _shift(expr: pl.Expr, n: int) -> pl.Expr:
    """``expr.shift(n)`` within each symbol of a frame sorted by (symbol, date)."""
    # Cheaper than .over("symbol"): one global shift, blanked where the symbol changes.
    return pl.when(pl.col("symbol").shift(n) == pl.col("symbol")).then(expr.shift(n))


def _split_name(ratio: float) -> str:
    frac = Fraction(ratio).limit_denominator(20)
    kind = "split" if frac >= 1 else "reverse split"
    return f"{frac.numerator}-for-{frac.denominator} {kind}"


def _segments(ts: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """First row and end row (exclusive) of each symbol of a frame sorted by symbol."""
    changes = ts.select(pl.col("symbol").ne_missing(pl.col("symbol").shift(1)).arg_true())
    starts = changes.to_series().to_numpy().astype(np.int64)
    return starts, np.append(starts[1:], ts.height)


def _window_medians(
    abs_r: np.ndarray,
    rows: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    window: int,
    min_samples: int,
) -> np.ndarray:
    """Centred rolling median of ``abs_r`` (NaN = missing) at ``rows``, within each symbol.

    The same numbers as polars' ``rolling_median(window, min_samples, center=True)`` over the
    symbol: the window is rows ``[i - window // 2, i - window // 2 + window)`` cut to the
    symbol's rows, missing values are skipped, fewer than ``min_samples`` values give NaN, and
    an even count gives ``lo + (hi - lo) * 0.5`` of the two middle values (the test suite
    compares the two on random data).
    """
    out = np.full(rows.size, np.nan)
    if rows.size == 0:
        return out
    segment = np.searchsorted(starts, rows, side="right") - 1
    first = rows - window // 2
    lo = np.maximum(first, starts[segment])
    hi = np.minimum(first + window, ends[segment])
    missing = np.concatenate([[0], np.cumsum(np.isnan(abs_r))])
    # Nearly every row: a whole window inside its symbol with no missing value. Those are
    # read through a strided view of the array, with no copy of the data before the gather.
    full = (lo == first) & (hi == first + window) & (missing[hi] == missing[lo])
    mid = window // 2
    chunk = max(1, (1 << 20) // window)  # bounds the (rows x window) scratch matrix to ~8 MB
    view = np.lib.stride_tricks.sliding_window_view(abs_r, window) if full.any() else None
    at = np.flatnonzero(full)
    for k in range(0, at.size, chunk):
        part = np.partition(view[first[at[k : k + chunk]]], mid, axis=1)  # type: ignore[index]
        upper = part[:, mid]
        if window % 2 == 0:  # the other middle value is the largest one left of it
            lower = part[:, :mid].max(axis=1)
            upper = lower + (upper - lower) * 0.5
        out[at[k : k + chunk]] = upper
    # The rest (symbol edges, missing values): mask, sort, pick by count.
    at = np.flatnonzero(~full)
    offsets = np.arange(window)
    for k in range(0, at.size, chunk):
        sel = at[k : k + chunk]
        pos = first[sel, None] + offsets
        inside = (pos >= lo[sel, None]) & (pos < hi[sel, None])
        ordered = np.sort(np.where(inside, abs_r[np.clip(pos, 0, abs_r.size - 1)], np.nan), axis=1)
        n = window - np.isnan(ordered).sum(axis=1)
        line = np.arange(sel.size)
        upper = ordered[line, np.minimum(n // 2, window - 1)]
        lower = ordered[line, np.maximum(n // 2 - 1, 0)]
        medians = np.where(n % 2 == 1, upper, lower + (upper - lower) * 0.5)
        out[sel] = np.where(n >= min_samples, medians, np.nan)
    return out


def _robust_z(
    ts: pl.DataFrame,
    *,
    spike_threshold: float,
    min_volatility: float,
    volatility_window: int,
    candidates: pl.Expr,
) -> pl.Series:
    """``|r| / sigma`` on the rows where ``candidates`` holds, null elsewhere.

    ``sigma = max(1.4826 * m, min_volatility)`` with ``m`` the median of ``|r|`` over the
    centred ``volatility_window`` of the symbol (at least ``min(20, window)`` values), else
    over the symbol's whole history. Only rows that can still be a spike need it: a centred
    rolling median over every row was half of the validation's time.

    Args:
        ts: Frame sorted by (symbol, date) with unique keys and the log return ``r``.
        spike_threshold: Only rows with ``|r| / min_volatility > spike_threshold`` are
            computed: ``sigma >= min_volatility``, so no other row can exceed the threshold.
        min_volatility: Floor of ``sigma``.
        volatility_window: Rows of the centred window.
        candidates: Further necessary condition of a spike (the reversal test).
    """
    abs_r = pl.col("r").abs()
    rows = (
        ts.select((candidates & (abs_r / min_volatility > spike_threshold)).arg_true())
        .to_series()
        .to_numpy()
        .astype(np.int64)
    )
    z = np.full(ts.height, np.nan)
    if rows.size:
        values = ts["r"].abs().to_numpy()  # missing returns become NaN
        starts, ends = _segments(ts)
        min_samples = min(20, volatility_window)
        med = _window_medians(values, rows, starts, ends, volatility_window, min_samples)
        short = np.isnan(med)
        if short.any():  # too few values in the window: the symbol's whole-history median
            symbols = ts["symbol"].gather(rows[short])
            whole = (
                ts.filter(pl.col("symbol").is_in(symbols.unique().implode()))
                .group_by("symbol")
                .agg(abs_r.median().alias("m"))
            )
            med[short] = (
                symbols.to_frame().join(whole, on="symbol", how="left", maintain_order="left")
            )["m"].to_numpy()
        z[rows] = values[rows] / np.maximum(_MAD_TO_SD * med, min_volatility)
    return pl.Series("z", z, nan_to_null=True)


def _split_moves(
    ts: pl.DataFrame, split_ratios: Sequence[float], split_tolerance: float
) -> pl.DataFrame:
    """Rows whose log move lies within ``split_tolerance`` of a split ratio's.

    Adds ``dist`` (to the nearest ratio) and ``nearest`` (its name). The ratios are all at
    least ``log 1.5`` away from 0, so rows with a smaller move are dropped before the 18
    distances are computed (with a margin for rounding: those rows cannot qualify).
    """
    targets = [(log(1 / q), _split_name(q)) for q in split_ratios]
    targets += [(log(q), _split_name(1 / q)) for q in split_ratios]
    dist = pl.min_horizontal([(pl.col("r") - t).abs() for t, _ in targets])
    nearest = pl.coalesce(
        [pl.when((pl.col("r") - t).abs() == pl.col("dist")).then(pl.lit(n)) for t, n in targets]
    )
    reach = min(abs(t) for t, _ in targets) - split_tolerance * (1 + 1e-6) - 1e-12
    return (
        ts.filter(pl.col("r").abs() >= reach)
        .with_columns(dist.alias("dist"))
        .filter(pl.col("dist") <= split_tolerance)
        # Naming the nearest ratio is costly: only for the few rows that match one.
        .with_columns(nearest.alias("nearest"))
    )


def series_checks(
    ts: pl.DataFrame,
    *,
    spike_threshold: float,
    spike_reversal: float,
    min_volatility: float,
    volatility_window: int,
    split_ratios: Sequence[float],
    split_tolerance: float,
) -> list[pl.DataFrame]:
    """Bad prints and unrecorded splits of ``ts`` (sorted by symbol, date; unique keys).

    Returns:
        Two issue frames (``bad_print``, ``unadjusted_split``) in
        :data:`~quantdesk.quant_core.validation.ISSUE_SCHEMA` columns.
    """
    close, high, low = pl.col("close"), pl.col("high"), pl.col("low")
    split = pl.col("split_factor").fill_null(1.0) if "split_factor" in ts.columns else pl.lit(1.0)
    div = pl.col("dividend").fill_null(0.0) if "dividend" in ts.columns else pl.lit(0.0)
    ratio = (close + div) * split / _shift(close, 1)
    ts = ts.with_columns(
        ratio.alias("g"),
        split.alias("s"),
        pl.when(ratio > 0).then(ratio.log()).alias("r"),
    ).with_columns(pl.when(pl.col("r").is_finite()).then(pl.col("r")).alias("r"))
    nxt = _shift(pl.col("s"), -1)
    ts = ts.with_columns(
        (-_shift(pl.col("r"), -1) / pl.col("r")).alias("reversal"),
        # Neighbouring bars in this session's price terms (a split between them rescales).
        (_shift(high, 1) / pl.col("s")).alias("hp"),
        (_shift(low, 1) / pl.col("s")).alias("lp"),
        (_shift(high, -1) * nxt).alias("hn"),
        (_shift(low, -1) * nxt).alias("ln"),
    )
    reverses = pl.col("reversal") >= spike_reversal
    z = _robust_z(
        ts,
        spike_threshold=spike_threshold,
        min_volatility=min_volatility,
        volatility_window=volatility_window,
        candidates=reverses,
    )
    island = ((pl.col("r") > 0) & (low > pl.max_horizontal("hp", "hn"))) | (
        (pl.col("r") < 0) & (high < pl.min_horizontal("lp", "ln"))
    )
    spike = ((pl.col("z") > spike_threshold) & reverses).fill_null(False)
    ts = ts.with_columns(z).with_columns(
        spike.alias("spike"), island.fill_null(False).alias("island")
    )
    bad_print = issues_frame(
        ts.filter("spike"),
        "bad_print",
        pick("island", "error", "warning"),
        pl.col("r"),
        "close moves {}% ({} robust sd) and the next session reverses {}% of it{}",
        fmt_sig(100 * (pl.col("g") - 1), 3),
        fmt_sig(pl.col("z"), 3),
        fmt_sig(100 * pl.col("reversal"), 3),
        pick("island", "; the whole bar lies outside both neighbours' ranges", ""),
    )
    after_spike = _shift(pl.col("spike"), 1).fill_null(False)
    jumps = _split_moves(ts.filter(~pl.col("spike") & ~after_spike), split_ratios, split_tolerance)
    recorded = pl.col("s").cast(pl.String) if "split_factor" in ts.columns else pl.lit("none")
    splits = issues_frame(
        jumps,
        "unadjusted_split",
        pick(pl.col("dist") <= _TIGHT_SPLIT_MATCH, "error", "warning"),
        pl.col("g"),
        "close ratio {} to the previous session (net of split_factor {}) looks like an "
        "unrecorded {} (off by {}%)",
        fmt_sig(pl.col("g")),
        recorded,
        pl.col("nearest"),
        fmt_sig(100 * pl.col("dist"), 2),
    )
    return [bad_print, splits]
