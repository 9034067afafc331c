"""Backtest engine: ``backtest_arrays`` against the bare numpy floor and vectorbt.

Usage (from the repository root)::

    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_backtest.py            # 500 x 5,000
    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_backtest.py --quick    # smoke size

Data: ``synthetic_market(n_symbols=500, n_sessions=5000, seed=7)`` pivoted to dense
``(sessions, symbols)`` close and open arrays with ``dense_panel`` (what ``run_backtest`` does).
Targets: a dollar-neutral quantile book on 20-session momentum, decided at each close: the top
10% of names long and the bottom 10% short with equal weights, 0.5 of capital per side (gross
1); flat during the 20-session warm-up. Costs: the default ``CostModel`` (commission 1 bp,
half-spread 2 bps, slippage 1 bp, borrow 50 bps a year), ``execution="next_close"`` (the lag).

Timed side by side in one process, in two groups, each after one warm-up call per case
(numba compilation, lazy imports), in interleaved rounds so that load from other users hits
every case alike (one ``gc.collect()`` before each call; medians compared):

* group 1 (``3 x --repeats`` rounds, default 21), for the 3x target:

  - ``backtest_arrays`` with daily rebalancing, and with weekly rebalancing (second line);
  - the floor: the gross return of the held weights, the targets lagged one bar (decided at
    the close of t, held from the close of t + 1) times the close-to-close returns, summed
    over names, written two ways: ``np.einsum("ij,ij->i", w, r)`` and
    ``(w * r).sum(axis=1)``, both with ``r = close[2:] / close[1:-1] - 1`` computed in the
    timed call. The target is judged against the faster (stricter) of the two;

* group 2 (``--repeats`` rounds, default 7), about a second per call, kept apart so that its
  cache traffic does not land on the millisecond timings of group 1:

  - daily ``backtest_arrays`` again, the reference of this group;
  - vectorbt ``Portfolio.from_orders`` on the same targets (``size_type="targetpercent"``,
    ``group_by=True``, ``cash_sharing=True``, ``call_seq="auto"``, ``fees`` = commission +
    half-spread + slippage, ``init_cash=1e6``, orders on the execution bar at its close): the
    call alone (it runs the whole simulation; ``.returns()`` afterwards is not timed);
  - ``run_backtest`` on the long frames (pivots, alignment, holdout guard and the trial it
    records, under a temporary ``QUANTDESK_HOME``), for information.

Agreement, checked before any figure is trusted: the floor equals the engine's gross return of
a cost-free daily run (``gross_study=True``) to 1e-12, so both compute the same thing; the
daily and weekly net returns of vectorbt and of ``backtest_arrays`` with ``borrow_bps_annual=0``
(vectorbt has no borrow fee) differ by less than 1e-6; ``run_backtest`` returns the same net
returns as ``backtest_arrays``.

Exit status 1 when an agreement check fails, or (at 500 x 5,000 only) when daily
``backtest_arrays`` takes more than 3x the faster floor or is not faster than vectorbt.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from time import perf_counter, process_time
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _panel

from quantdesk.quant_core.backtest import run_backtest
from quantdesk.quant_core.backtest_config import BacktestConfig
from quantdesk.quant_core.backtest_engine import backtest_arrays
from quantdesk.quant_core.portfolio import dense_panel, rebalance_mask
from quantdesk.quant_core.synthetic import synthetic_market

FULL = _panel.PanelSize(500, 5000)
QUICK = _panel.PanelSize(60, 600)
MAX_FLOOR_RATIO = 3.0
VBT_TOLERANCE = 1e-6
FLOOR_TOLERANCE = 1e-12
LOOKBACK = 20  # momentum window of the book
QUANTILE = 0.1
FROM_ORDERS = "vectorbt from_orders"
DAILY = "backtest_arrays daily"
FRAME = "run_backtest daily (frames, trial)"


@dataclass(frozen=True)
class Book:
    """Dense prices and targets of the benchmark."""

    dates: np.ndarray
    close: np.ndarray
    open: np.ndarray
    targets: np.ndarray
    weekly: np.ndarray
    prices: pl.DataFrame
    weights: pl.DataFrame


def build_book(size: _panel.PanelSize, seed: int) -> Book:
    """Prices from the synthetic market and a dollar-neutral momentum quantile book."""
    prices = synthetic_market(
        n_symbols=size.n_symbols, n_sessions=size.n_sessions, seed=seed
    ).prices.select("date", "symbol", "open", "high", "low", "close", "volume")
    panel = dense_panel(prices, ["close", "open"])
    close, opens = panel.values["close"], panel.values["open"]
    score = np.full(close.shape, np.nan)
    score[LOOKBACK:] = close[LOOKBACK:] / close[:-LOOKBACK] - 1.0
    n = close.shape[1]
    k = max(1, int(QUANTILE * n))
    order = np.argsort(np.where(np.isnan(score), 0.0, score), axis=1, kind="stable")
    targets = np.zeros(close.shape)
    rows = np.arange(close.shape[0])[:, None]
    targets[rows, order[:, :k]] = -0.5 / k
    targets[rows, order[:, -k:]] = 0.5 / k
    targets[:LOOKBACK] = 0.0
    row, col = np.nonzero(targets)
    weights = pl.DataFrame(
        {
            "date": panel.dates[row],
            "symbol": np.asarray(panel.symbols, dtype=object)[col],
            "weight": targets[row, col],
        },
        schema={"date": pl.Date, "symbol": pl.String, "weight": pl.Float64},
    )
    weekly = rebalance_mask(panel.dates, "weekly")
    return Book(panel.dates, close, opens, targets, weekly, prices, weights)


# --- the floor --------------------------------------------------------------------------------
def floor_einsum(close: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Gross return of session t + 2 = sum_i w_{t,i} * r_{t+2,i} (held from the close of t + 1)."""
    returns = close[2:] / close[1:-1] - 1.0
    return np.einsum("ij,ij->i", targets[:-2], returns)


def floor_multiply_sum(close: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The same, written as an elementwise product and a row sum."""
    returns = close[2:] / close[1:-1] - 1.0
    return (targets[:-2] * returns).sum(axis=1)


# --- vectorbt ---------------------------------------------------------------------------------
def vectorbt_inputs(book: Book, mask: np.ndarray | None) -> dict[str, Any]:
    """Arguments of ``from_orders``: each decision's targets as orders on its execution bar."""
    import pandas as pd

    decisions = np.arange(book.close.shape[0] - 1) if mask is None else np.flatnonzero(mask[:-1])
    size = np.full(book.close.shape, np.nan)
    size[decisions + 1] = book.targets[decisions]
    index = pd.DatetimeIndex(book.dates.astype("datetime64[ns]"))
    close = pd.DataFrame(book.close, index=index)
    return {"close": close, "size": pd.DataFrame(size, index=index), "price": close}


def run_vectorbt(vbt: Any, inputs: dict[str, Any], fees: float) -> Any:
    """``Portfolio.from_orders`` with the settings that match the engine's accounting."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # vectorbt's own deprecation noise
        return vbt.Portfolio.from_orders(
            **inputs,
            size_type="targetpercent",
            fees=fees,
            cash_sharing=True,
            group_by=True,
            call_seq="auto",
            init_cash=1e6,  # vectorbt ignores orders below 1e-12 shares: use real money
            freq="1D",
        )


def vectorbt_returns(portfolio: Any) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return portfolio.returns().to_numpy()


# --- driver -----------------------------------------------------------------------------------
def time_group(
    cases: dict[str, Callable[[], Any]], rounds: int
) -> tuple[dict[str, tuple[list[float], list[float]]], dict[str, Any]]:
    """One warm-up call each (numba compilation, lazy imports), then ``rounds`` rounds in turn.

    Returns:
        ``name -> (wall seconds, cpu seconds)`` per round, and each case's warm-up output.
    """
    outputs = {name: fn() for name, fn in cases.items()}
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            gc.collect()
            cpu, start = process_time(), perf_counter()
            fn()
            times[name][0].append(perf_counter() - start)
            times[name][1].append(process_time() - cpu)
    return times, outputs


def print_times(times: dict[str, tuple[list[float], list[float]]], reference: float) -> None:
    _panel.print_table(
        ["", "wall median", "min", "max", "cpu median", "ratio"],
        [
            (
                name,
                *(f"{1e3 * v:.2f}" for v in _panel.summary(wall)),
                f"{1e3 * median(cpu):.2f}",
                f"{median(wall) / reference:.2f}x",
            )
            for name, (wall, cpu) in times.items()
        ],
    )


def agreement(book: Book, vbt: Any | None) -> tuple[list[tuple[str, str, bool]], list[str]]:
    """Check the floor and vectorbt against the engine: rows of (what, max abs diff, ok)."""
    rows: list[tuple[str, str, bool]] = []
    notes: list[str] = []
    gross = backtest_arrays(book.close, None, book.targets, config=BacktestConfig(gross_study=True))
    floor = floor_einsum(book.close, book.targets)
    floor_rows = gross.rows - 2  # floor index i is session i + 2
    diff = float(np.abs(gross.gross - floor[floor_rows]).max())
    plain = float(np.abs(floor_multiply_sum(book.close, book.targets) - floor).max())
    rows.append(
        ("floor vs engine gross (gross study, daily)", f"{diff:.1e}", diff < FLOOR_TOLERANCE)
    )
    rows.append(("floor einsum vs multiply-sum", f"{plain:.1e}", plain < FLOOR_TOLERANCE))
    if vbt is None:
        notes.append("vectorbt is not installed (bench extra): its checks and timing are skipped")
        return rows, notes
    no_borrow = BacktestConfig(costs={"borrow_bps_annual": 0.0})
    for label, mask in (("daily", None), ("weekly", book.weekly)):
        ours = backtest_arrays(book.close, None, book.targets, rebalance=mask, config=no_borrow)
        theirs = vectorbt_returns(
            run_vectorbt(vbt, vectorbt_inputs(book, mask), no_borrow.costs.linear_rate)
        )
        gap = float(np.abs(ours.net - theirs[ours.rows]).max())
        before = float(np.abs(theirs[: ours.rows[0]]).max()) if ours.rows[0] else 0.0
        rows.append(
            (f"vectorbt vs engine net, {label}, borrow 0", f"{gap:.1e}", gap < VBT_TOLERANCE)
        )
        if before:
            notes.append(f"vectorbt {label}: non-zero return {before:.1e} before the first trade")
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke size {QUICK.n_symbols}x{QUICK.n_sessions}; speed targets are not checked",
    )
    parser.add_argument("--symbols", type=int, default=None, help="override the symbol count")
    parser.add_argument("--sessions", type=int, default=None, help="override the session count")
    parser.add_argument("--seed", type=int, default=_panel.SEED, help="generator seed")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--no-frame", action="store_true", help="skip timing run_backtest")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    size = _panel.PanelSize(args.symbols or base.n_symbols, args.sessions or base.n_sessions)
    full = size == FULL
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import vectorbt as vbt
    except ImportError:
        vbt = None

    for line in _panel.machine_lines():
        print(line)
    if vbt is not None:
        print(f"vectorbt {vbt.__version__}")
    start = perf_counter()
    book = build_book(size, args.seed)
    t_build = perf_counter() - start
    print(
        f"panel: {size.n_symbols} symbols x {size.n_sessions} sessions (seed {args.seed}, "
        f"built in {t_build:.2f} s); book: top/bottom {QUANTILE:.0%} on {LOOKBACK}-session "
        f"momentum, 0.5 per side; {int(book.weekly[:-1].sum())} weekly decisions"
    )

    rows, notes = agreement(book, vbt)
    print("\nAgreement:")
    _panel.print_table(
        ["check", "max abs diff", "ok"], [(a, d, "yes" if ok else "NO") for a, d, ok in rows]
    )
    for note in notes:
        print(f"  note: {note}")

    cfg = BacktestConfig()  # default costs, next_close
    close, targets = book.close, book.targets

    def daily() -> Any:
        return backtest_arrays(close, None, targets, config=cfg)

    # Group 1, the 3x target: the engine and the floors, interleaved, 3 x --repeats rounds.
    fast: dict[str, Callable[[], Any]] = {
        DAILY: daily,
        "backtest_arrays weekly": lambda: backtest_arrays(
            close, None, targets, rebalance=book.weekly, config=cfg
        ),
        "floor einsum": lambda: floor_einsum(close, targets),
        "floor multiply-sum": lambda: floor_multiply_sum(close, targets),
    }
    # Group 2, ~1 s per call: the engine again beside vectorbt and the frame API.
    slow: dict[str, Callable[[], Any]] = {DAILY: daily}
    if vbt is not None:
        inputs = vectorbt_inputs(book, None)
        slow[FROM_ORDERS] = lambda: run_vectorbt(vbt, inputs, cfg.costs.linear_rate)
    with tempfile.TemporaryDirectory(prefix="quantdesk-bench-") as home:
        os.environ["QUANTDESK_HOME"] = home  # run_backtest records each run as a trial
        if not args.no_frame:
            slow[FRAME] = lambda: run_backtest(book.prices, book.weights, cfg)
        fast_times, _ = time_group(fast, 3 * args.repeats)
        slow_times, outputs = time_group(slow, args.repeats)

    if FRAME in outputs:
        frame_net = outputs[FRAME].returns["net"].to_numpy()
        arrays_net = outputs[DAILY].net
        same = frame_net.size == arrays_net.size
        gap = float(np.abs(frame_net - arrays_net).max()) if same else np.inf
        rows.append(("run_backtest vs backtest_arrays net", f"{gap:.1e}", gap < FLOOR_TOLERANCE))
        print(f"run_backtest vs backtest_arrays daily net: max abs diff {gap:.1e}")

    wall = {name: w for name, (w, _) in fast_times.items()}
    floors = {name: median(wall[name]) for name in ("floor einsum", "floor multiply-sum")}
    strict = min(floors, key=floors.__getitem__)
    ratio = median(wall[DAILY]) / floors[strict]
    print(
        f"\nGroup 1, milliseconds over {3 * args.repeats} interleaved rounds after one warm-up "
        "(wall median, min, max; cpu = user+sys median; ratio = wall median / the faster "
        "floor's):"
    )
    print_times(fast_times, floors[strict])
    print(f"faster floor: {strict}; backtest_arrays daily / faster floor = {ratio:.2f}x")
    print(
        f"\nGroup 2, milliseconds over {args.repeats} interleaved rounds after one warm-up "
        f"(ratio = wall median / {DAILY}'s in this group):"
    )
    print_times(slow_times, median(slow_times[DAILY][0]))

    checks = [(label, ok) for label, _, ok in rows]
    if full:
        checks.append(
            (
                f"backtest_arrays daily <= {MAX_FLOOR_RATIO:g}x the faster floor ({strict}): "
                f"{ratio:.2f}x",
                ratio <= MAX_FLOOR_RATIO,
            )
        )
        if vbt is not None:
            speedup = median(slow_times[FROM_ORDERS][0]) / median(slow_times[DAILY][0])
            checks.append(
                (f"backtest_arrays daily faster than {FROM_ORDERS}: {speedup:.0f}x", speedup > 1.0)
            )
        else:
            checks.append(("vectorbt installed for the comparison", False))
    else:
        print(f"(not {FULL.n_symbols} x {FULL.n_sessions}: speed targets are not checked)")
    print("\nTargets:")
    for label, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
