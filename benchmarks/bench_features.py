"""Features + labels: the library (polars) against a straightforward pandas implementation.

Usage (from the repository root)::

    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_features.py            # issue size
    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_features.py --quick    # smoke size

What is timed, side by side in one process: the 20 per-symbol features of
``_panel.BENCH_FEATURES`` (no cross-sectional transforms on either side) and the binary label
on the 5-session forward return, with its interval ``[t0, t1]``.

* library: ``compute_features(prices, BENCH_FEATURES, cross_sectional=None)`` followed by
  ``make_labels(prices, "binary", horizon=5)``, starting from the polars price frame (input
  validation included).
* pandas: the same definitions written the way a pandas user would (``groupby("symbol")``
  with ``.shift``, ``.pct_change``, ``.diff``, ``.rolling(w)`` and ``.ewm``; no Python loop over
  rows or groups), starting from a pandas copy of the same frame (the conversion is not timed).
  Shared intermediates (log returns, price changes, log volume) are computed once.

Both sides run once to warm up, then ``--repeats`` times alternately; the medians are compared.
Before any figure is trusted the outputs are checked to agree: identical null (warm-up) masks
and a max absolute difference under 1e-9 on every feature, identical label rows, ``t1`` and
classes, and forward returns within 1e-9.

Exit status 1 when the outputs disagree, or (at the issue's size only) when the library is
not at least 5x faster than pandas or takes 2 s or more.
"""

from __future__ import annotations

import argparse
import gc
import math
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from statistics import median
from time import perf_counter
from typing import TypeVar

import numpy as np
import pandas as pd
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _panel

from quantdesk.quant_core.features import compute_features, parse_feature
from quantdesk.quant_core.labels import make_labels

MIN_SPEEDUP = 5.0
MAX_SECONDS = 2.0
TOLERANCE = 1e-9
# features.py treats a dispersion below 1e-12 x |mean| as zero (volz is then null).
REL_EPS = 1e-12
ANNUALISE = math.sqrt(252)
T = TypeVar("T")


# --- library ------------------------------------------------------------------------------
def library_run(prices: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    features = compute_features(prices, _panel.BENCH_FEATURES, cross_sectional=None)
    labels = make_labels(prices, "binary", horizon=_panel.HORIZON, threshold=0.0)
    return features, labels


# --- pandas baseline ------------------------------------------------------------------------
def to_pandas(prices: pl.DataFrame) -> pd.DataFrame:
    # No pyarrow in the environment, so column by column through numpy.
    return pd.DataFrame({c: prices[c].to_numpy() for c in prices.columns})


def pandas_run(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 20 features and the label, straightforward pandas on a (symbol, date)-sorted frame."""
    g = df.groupby("symbol", sort=False)
    price = df["close"]
    symbol = df["symbol"]
    row = g.cumcount()

    def rolling(series: pd.Series, w: int):  # a pandas RollingGroupBy
        return series.groupby(symbol, sort=False).rolling(w)

    log_ret = np.log(price / g["close"].shift(1))
    change = g["close"].diff()
    gain, loss = change.clip(lower=0.0), (-change).clip(lower=0.0)
    log_volume = np.log(df["volume"].clip(lower=1.0))
    past_log_volume = log_volume.groupby(symbol, sort=False).shift(1)

    def wilder(x: pd.Series, w: int) -> pd.Series:
        # Seed with the plain mean of the first w changes (row w), then smooth with 1/w.
        seed = rolling(x, w).mean().droplevel(0)
        seeded = x.where(row > w, seed.where(row == w))
        smoothed = seeded.groupby(symbol, sort=False).ewm(alpha=1.0 / w, adjust=False).mean()
        return smoothed.droplevel(0)

    out: dict[str, pd.Series] = {"date": df["date"], "symbol": symbol}
    for name in _panel.BENCH_FEATURES:
        spec = parse_feature(name)  # only the name -> (family, window, skip) mapping
        w = spec.window
        if spec.family == "ret":
            out[name] = g["close"].pct_change(w)
        elif spec.family == "rev":
            out[name] = 1.0 - price / g["close"].shift(w)
        elif spec.family == "mom":
            out[name] = g["close"].shift(spec.skip) / g["close"].shift(w) - 1.0
        elif spec.family == "rvol":
            out[name] = rolling(log_ret, w).std().droplevel(0) * ANNUALISE
        elif spec.family == "ma_dist":
            out[name] = price / rolling(price, w).mean().droplevel(0) - 1.0
        elif spec.family == "volz":
            mean = rolling(past_log_volume, w).mean().droplevel(0)
            std = rolling(past_log_volume, w).std().droplevel(0)
            out[name] = ((log_volume - mean) / std).where(std > REL_EPS * mean.abs())
        elif spec.family == "rsi":
            avg_gain, avg_loss = wilder(gain, w), wilder(loss, w)
            total = avg_gain + avg_loss
            out[name] = (100.0 * avg_gain / total).where(total > 0.0)
        else:
            raise ValueError(f"no pandas version of {name}")
    features = pd.DataFrame(out)

    h = _panel.HORIZON
    forward = g["close"].shift(-h) / price - 1.0
    t1 = g["date"].shift(-h)
    keep = t1.notna()
    labels = pd.DataFrame(
        {
            "date": df["date"],
            "symbol": symbol,
            "t0": df["date"],
            "t1": t1,
            "label": (forward > 0.0).astype("int64"),
            "ret": forward,
        }
    )[keep]
    return features, labels


# --- agreement ------------------------------------------------------------------------------
def compare(
    lib: tuple[pl.DataFrame, pl.DataFrame], ref: tuple[pd.DataFrame, pd.DataFrame]
) -> tuple[list[tuple[str, int, float]], list[str]]:
    """Per-feature (name, non-null rows, max abs diff) and a list of disagreements."""
    (lib_f, lib_l), (ref_f, ref_l) = lib, ref
    problems: list[str] = []
    if lib_f.height != len(ref_f) or not np.array_equal(
        lib_f["symbol"].to_numpy(), ref_f["symbol"].to_numpy()
    ):
        problems.append("feature rows differ (count or symbol order)")
        return [], problems
    rows = []
    for name in _panel.BENCH_FEATURES:
        a = lib_f[name].to_numpy().astype(np.float64)  # null -> NaN
        b = ref_f[name].to_numpy(dtype=np.float64, na_value=np.nan)
        a_nan, b_nan = np.isnan(a), np.isnan(b)
        if not np.array_equal(a_nan, b_nan):
            problems.append(
                f"{name}: null masks differ ({a_nan.sum()} library vs {b_nan.sum()} pandas)"
            )
        both = ~a_nan & ~b_nan
        diff = float(np.max(np.abs(a[both] - b[both]))) if both.any() else 0.0
        if not diff < TOLERANCE:
            problems.append(f"{name}: max abs diff {diff:.3g} >= {TOLERANCE:g}")
        rows.append((name, int(both.sum()), diff))

    days = "datetime64[D]"
    same_rows = lib_l.height == len(ref_l) and np.array_equal(
        lib_l["symbol"].to_numpy(), ref_l["symbol"].to_numpy()
    )
    if not same_rows:
        problems.append(f"label rows differ ({lib_l.height} library vs {len(ref_l)} pandas)")
        return rows, problems
    for col in ("date", "t1"):
        if not np.array_equal(
            lib_l[col].to_numpy().astype(days), ref_l[col].to_numpy().astype(days)
        ):
            problems.append(f"label column {col} differs")
    if not np.array_equal(lib_l["label"].to_numpy(), ref_l["label"].to_numpy()):
        problems.append("binary labels differ")
    ret_diff = float(np.max(np.abs(lib_l["ret"].to_numpy() - ref_l["ret"].to_numpy())))
    if not ret_diff < TOLERANCE:
        problems.append(f"forward return: max abs diff {ret_diff:.3g}")
    rows.append(("label (ret)", lib_l.height, ret_diff))
    return rows, problems


# --- driver ---------------------------------------------------------------------------------
def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], T]) -> tuple[float, float, T]:
    """Wall and CPU seconds taken by ``fn()`` (after a garbage collection), and its result."""
    gc.collect()
    cpu, start = _cpu_seconds(), perf_counter()
    result = fn()
    return perf_counter() - start, _cpu_seconds() - cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    _panel.add_panel_args(parser)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per side (default 5)")
    args = parser.parse_args(argv)
    size, full = _panel.panel_size(args)

    for line in _panel.machine_lines():
        print(line)
    print(f"pandas {pd.__version__}")
    t_panel, _, prices = timed(lambda: _panel.build_panel(size, args.seed))
    print(
        f"panel: {size.n_symbols} symbols x {size.n_sessions} sessions = {prices.height:,} rows, "
        f"{len(_panel.BENCH_FEATURES)} features + binary label h={_panel.HORIZON} "
        f"(seed {args.seed}, generated in {t_panel:.2f} s)"
    )
    frame = to_pandas(prices)

    # Warm-up (polars' thread pool, pandas' lazily built groupby machinery), then alternate
    # the two sides so that a burst of load from other users hits both alike.
    library_run(prices)
    pandas_run(frame)
    cases: dict[str, Callable[[], object]] = {
        "library: features + labels": lambda: library_run(prices),
        "pandas: features + labels": lambda: pandas_run(frame),
        # The library's two halves, for the record (not part of the comparison).
        "  library compute_features": lambda: compute_features(
            prices, _panel.BENCH_FEATURES, cross_sectional=None
        ),
        "  library make_labels": lambda: make_labels(prices, "binary", horizon=_panel.HORIZON),
    }
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    outputs: dict[str, object] = {}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            seconds, cpu_seconds, outputs[name] = timed(fn)
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
    lib_out, ref_out = outputs["library: features + labels"], outputs["pandas: features + labels"]

    diffs, problems = compare(lib_out, ref_out)
    print("\nAgreement (rows with a value on both sides; null masks must match):")
    _panel.print_table(
        ["column", "rows", "max abs diff"], [(n, f"{k:,}", f"{d:.2e}") for n, k, d in diffs]
    )

    lib_med, lib_min, _ = _panel.summary(wall["library: features + labels"])
    ref_med, ref_min, _ = _panel.summary(wall["pandas: features + labels"])
    lib_cpu = _panel.summary(cpu["library: features + labels"])[0]
    ref_cpu = _panel.summary(cpu["pandas: features + labels"])[0]
    speedup = ref_med / lib_med
    print(
        f"\nSeconds over {args.repeats} alternating repeats after one warm-up (wall: median, "
        "min, max; cpu: median of user+sys over all threads):"
    )
    _panel.print_table(
        ["", "wall median", "min", "max", "cpu median"],
        [
            (name, *(f"{v:.3f}" for v in _panel.summary(wall[name])), f"{median(cpu[name]):.3f}")
            for name in cases
        ],
    )
    print(f"speed-up (pandas median / library median): {speedup:.1f}x")
    # For the record: the fastest runs are the least disturbed by other users of the machine,
    # and the CPU-time ratio is the work ratio (polars may use several cores, pandas one).
    print(f"speed-up on the fastest runs (pandas min / library min): {ref_min / lib_min:.1f}x")
    print(f"CPU-time ratio (pandas / library, medians): {ref_cpu / lib_cpu:.1f}x")

    checks = [("outputs agree (masks equal, max abs diff < 1e-9)", not problems)]
    if full:
        checks += [
            (f"library >= {MIN_SPEEDUP:g}x faster than pandas", speedup >= MIN_SPEEDUP),
            (f"library features + labels < {MAX_SECONDS:g} s (median)", lib_med < MAX_SECONDS),
        ]
    else:
        print("(not the issue's 500 x 2520 panel: speed targets are not checked)")
    print("\nTargets:")
    for label, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    for problem in problems:
        print(f"  disagreement: {problem}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
