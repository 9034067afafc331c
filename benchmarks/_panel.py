"""Shared set-up of the benchmarks: the panel, the 20 features, the label and the reporting.

Both benchmarks measure the same thing the issue names: a seeded synthetic panel of 500
symbols x 2,520 sessions (1.26M rows) from the project's own generator, 20 per-symbol features
and a 5-session label. ``--quick`` shrinks the panel to a smoke-test size that runs in seconds.

Not a package module: the scripts put this folder on ``sys.path`` themselves, because they are
meant to run with ``PYTHONSAFEPATH=1`` (so the repository root, which *is* the ``quantdesk``
package, never shadows an installed package).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from quantdesk.quant_core.features import DEFAULT_FEATURES
from quantdesk.quant_core.synthetic import synthetic_market

__all__ = [
    "BENCH_FEATURES",
    "FULL",
    "HORIZON",
    "QUICK",
    "SEED",
    "PanelSize",
    "add_panel_args",
    "build_panel",
    "machine_lines",
    "panel_size",
    "peak_rss_mib",
    "print_table",
    "summary",
]

#: The library's 16 defaults plus four more windows: 20 features, all per-symbol (no
#: cross-sectional ranks or z-scores, in either implementation).
BENCH_FEATURES: tuple[str, ...] = (*DEFAULT_FEATURES, "ret_10", "rvol_126", "rsi_28", "ma_dist_100")

#: Label: binary sign of the 5-session forward return (threshold 0), interval [t, t+5].
HORIZON = 5
SEED = 7


@dataclass(frozen=True)
class PanelSize:
    """Panel dimensions."""

    n_symbols: int
    n_sessions: int

    @property
    def rows(self) -> int:
        """Rows of the long frame."""
        return self.n_symbols * self.n_sessions


FULL = PanelSize(500, 2520)
# Long enough for the 252-session warm-up of ret_252 / mom_252_21 and a few CV folds.
QUICK = PanelSize(60, 600)


def add_panel_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--quick``, ``--symbols``, ``--sessions`` and ``--seed`` to a parser."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke size {QUICK.n_symbols}x{QUICK.n_sessions}; speed targets are not checked",
    )
    parser.add_argument("--symbols", type=int, default=None, help="override the symbol count")
    parser.add_argument("--sessions", type=int, default=None, help="override the session count")
    parser.add_argument("--seed", type=int, default=SEED, help="generator seed")


def panel_size(args: argparse.Namespace) -> tuple[PanelSize, bool]:
    """Return the panel size the arguments ask for and whether it is the issue's full size."""
    base = QUICK if args.quick else FULL
    size = PanelSize(args.symbols or base.n_symbols, args.sessions or base.n_sessions)
    return size, size == FULL


def build_panel(size: PanelSize, seed: int = SEED) -> pl.DataFrame:
    """The canonical price frame of a seeded synthetic market (no ``adj_close``: ``close`` is used).

    Args:
        size: Symbols and sessions.
        seed: Generator seed.
    """
    return synthetic_market(
        n_symbols=size.n_symbols, n_sessions=size.n_sessions, seed=seed, horizon=HORIZON
    ).prices


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(who).ru_maxrss / 1024.0


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """``(median, min, max)`` of repeated timings."""
    return statistics.median(values), min(values), max(values)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines() -> list[str]:
    """A few lines describing the machine, its load and the library versions."""
    import lightgbm
    import numpy

    load = os.getloadavg()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"cpu: {_cpu_model()}, {os.cpu_count()} logical CPUs ({usable} usable), "
        f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)",
        f"python {platform.python_version()}, polars {pl.__version__}, numpy {numpy.__version__}, "
        f"lightgbm {lightgbm.__version__}, polars threads {pl.thread_pool_size()}",
    ]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a plain-text table with right-aligned columns after the first."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest])

    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
