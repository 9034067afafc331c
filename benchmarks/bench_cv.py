"""5-fold purged walk-forward CV with LightGBM: overhead split and peak memory.

Usage (from the repository root)::

    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_cv.py              # issue size, 1 run
    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_cv.py --repeats 3  # spread over 3 runs
    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/bench_cv.py --quick      # smoke size

Each run is a fresh child process (this script with ``--child``) that does the whole job:
generate the panel, ``compute_features`` (the 20 of ``_panel.BENCH_FEATURES``, no
cross-sectional transforms), ``make_labels`` (binary, 5 sessions), ``make_dataset`` and
``train_cv`` with ``PurgedWalkForward(n_splits=5, embargo=5)`` and a binary LightGBM
(``--trees`` 100, ``--leaves`` 31, ``num_threads`` 1: the ``ModelSpec`` default), with
``permutation_importance=False`` and ``refit_final=False``. The child reports its phases as
JSON; the parent reads the peak RSS of the whole run from ``ru_maxrss`` (the child's own, and
``RUSAGE_CHILDREN`` as a cross-check).

LightGBM's own time is measured twice: by ``train_cv``'s ``Timings`` (``fit`` + ``predict``,
which also include QuantModel's input checks) and independently by wrapping
``lightgbm.train`` (which builds the binned ``Dataset`` too) and ``lightgbm.Booster.predict``.
The overhead is everything else, as a fraction of (a) ``Timings.cv_seconds`` and (b) an outer
wall clock around ``make_dataset`` + ``train_cv``. For reading (b) on a shared machine the
report adds (c), the same split in CPU seconds of the child process (all its threads), the
1-minute load average at the start and end of each run, and the minor page faults (first
touches of fresh memory) of ``make_dataset`` + ``train_cv``; (c) is informational, the target
stays on (b).

Exit status 1 when a child fails or (at the issue's size only) a target is missed: overhead
(b) above 10% of that wall time, or a peak RSS above 3 GB (3e9 bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _panel

MAX_OVERHEAD = 0.10
MAX_RSS_BYTES = 3e9
N_SPLITS = 5
_MARKER = "BENCH_CV_RESULT "


# --- child: one complete run ----------------------------------------------------------------
def _instrument_lightgbm() -> list[tuple[str, float, float]]:
    """Wrap ``lightgbm.train`` and ``Booster.predict``; return the (call, wall, CPU) log."""
    import lightgbm

    calls: list[tuple[str, float, float]] = []
    train, predict = lightgbm.train, lightgbm.Booster.predict

    def timed_train(*args: Any, **kwargs: Any) -> Any:
        start, cpu = perf_counter(), process_time()
        try:
            return train(*args, **kwargs)
        finally:
            calls.append(("train", perf_counter() - start, process_time() - cpu))

    def timed_predict(self: Any, *args: Any, **kwargs: Any) -> Any:
        start, cpu = perf_counter(), process_time()
        try:
            return predict(self, *args, **kwargs)
        finally:
            calls.append(("predict", perf_counter() - start, process_time() - cpu))

    # models.py calls lgb.train through the module attribute, so patching it is enough.
    lightgbm.train = timed_train
    lightgbm.Booster.predict = timed_predict
    return calls


def child(args: argparse.Namespace) -> dict[str, Any]:
    from quantdesk.quant_core.dataset import make_dataset
    from quantdesk.quant_core.features import compute_features
    from quantdesk.quant_core.labels import make_labels
    from quantdesk.quant_core.models import ModelSpec
    from quantdesk.quant_core.purged_cv import PurgedWalkForward
    from quantdesk.quant_core.training import train_cv

    calls = _instrument_lightgbm()
    rss_imports = _panel.peak_rss_mib()
    load_start = os.getloadavg()[0]
    size, _ = _panel.panel_size(args)
    phases: dict[str, float] = {}
    started = perf_counter()

    clock = perf_counter()
    prices = _panel.build_panel(size, args.seed)
    phases["panel"] = perf_counter() - clock
    clock = perf_counter()
    features = compute_features(prices, _panel.BENCH_FEATURES, cross_sectional=None)
    phases["features"] = perf_counter() - clock
    clock = perf_counter()
    labels = make_labels(prices, "binary", horizon=_panel.HORIZON, threshold=0.0)
    phases["labels"] = perf_counter() - clock

    spec = ModelSpec(
        kind="lightgbm",
        task="binary",
        params={"num_boost_round": args.trees, "num_leaves": args.leaves},
        seed=args.seed,
        num_threads=args.threads,
    )
    splitter = PurgedWalkForward(n_splits=N_SPLITS, embargo=_panel.HORIZON)
    cpu_clock, faults = process_time(), _minor_faults()
    clock = perf_counter()
    dataset = make_dataset(features, labels, feature_names=_panel.BENCH_FEATURES)
    phases["make_dataset"] = perf_counter() - clock
    clock = perf_counter()
    result = train_cv(
        dataset,
        spec,
        splitter,
        permutation_importance=args.permutation,
        refit_final=False,
    )
    phases["train_cv"] = perf_counter() - clock
    outer_cpu, outer_faults = process_time() - cpu_clock, _minor_faults() - faults
    phases["whole_run"] = perf_counter() - started

    # Fold fits and predicts come first, one each per fold; later predicts are permutation.
    n_folds = len(result.folds)
    trains = [s for kind, s, _ in calls if kind == "train"]
    predicts = [s for kind, s, _ in calls if kind == "predict"]
    fold_calls = [c for c in calls if c[0] == "train"][:n_folds]
    fold_calls += [c for c in calls if c[0] == "predict"][:n_folds]
    metrics = result.report.metrics
    return {
        "rows": prices.height,
        "permutation": args.permutation,
        "dataset_rows": dataset.n_rows,
        "n_dropped": dataset.n_dropped,
        "phases": phases,
        "timings": result.timings.to_dict(),
        # What train_cv does after its Timings stop (recording the run as a counted trial).
        "after_timings": phases["train_cv"] - result.timings.total,
        "trial_recorded": getattr(result, "run", None) is not None,
        "lgb_train": sum(trains[:n_folds]),
        "lgb_predict": sum(predicts[:n_folds]),
        "lgb_permutation_predict": sum(predicts[n_folds:]),
        "lgb_cpu": sum(cpu for _, _, cpu in fold_calls),
        "outer_cpu": outer_cpu,
        "outer_faults": outer_faults,
        "load": [load_start, os.getloadavg()[0]],
        "lgb_calls": [len(trains), len(predicts)],
        "folds": [
            [f.n_train, f.n_test, f.n_purged, f.n_embargoed, f.fit_seconds] for f in result.folds
        ],
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
        "rss_imports_mib": rss_imports,
        "rss_peak_mib": _panel.peak_rss_mib(),
    }


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


# --- parent: run children, summarise --------------------------------------------------------
def _run_child(argv: list[str]) -> dict[str, Any]:
    # train_cv counts every run as a trial in a registry under QUANTDESK_HOME: give each run
    # a throw-away home so that benchmarks never add trials to a real research context.
    with tempfile.TemporaryDirectory(prefix="quantdesk-bench-") as home:
        env = {**os.environ, "PYTHONSAFEPATH": "1", "QUANTDESK_HOME": home}
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), *argv, "--child"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(_MARKER)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"benchmark child failed with exit status {proc.returncode}")
    return json.loads(lines[-1].removeprefix(_MARKER))


def _derived(run: dict[str, Any]) -> dict[str, float]:
    t = run["timings"]
    lgb = run["lgb_train"] + run["lgb_predict"]
    outer = run["phases"]["make_dataset"] + run["phases"]["train_cv"] - t["permutation"]
    return {
        "cv_seconds": t["cv_seconds"],
        "model_seconds": t["model_seconds"],
        "inner_overhead": t["overhead_fraction"],
        "lgb_seconds": lgb,
        "outer_seconds": outer,
        "outer_overhead": (outer - lgb) / outer,
        "cpu_overhead": (run["outer_cpu"] - run["lgb_cpu"]) / run["outer_cpu"],
    }


def _row(label: str, values: list[float], fmt: str = "{:.2f}") -> tuple[str, ...]:
    med, lo, hi = _panel.summary(values)
    return (label, fmt.format(med), fmt.format(lo), fmt.format(hi))


def report(runs: list[dict[str, Any]], rss_children_mib: float, full: bool) -> int:
    derived = [_derived(r) for r in runs]
    first = runs[0]
    print(
        f"\npanel {first['rows']:,} rows -> dataset {first['dataset_rows']:,} rows "
        f"({first['n_dropped']:,} warm-up rows dropped); folds (train, test, purged, embargoed):"
    )
    for k, (n_train, n_test, purged, embargoed, _) in enumerate(first["folds"]):
        print(f"  fold {k}: {n_train:>9,} {n_test:>9,} {purged:>7,} {embargoed:>7,}")
    shown = {k: v for k, v in first["metrics"].items() if k in ("auc", "roc_auc", "log_loss")}
    if shown:
        print("  OOF " + ", ".join(f"{k} {v:.4f}" for k, v in shown.items()))

    def col(f: Any) -> list[float]:
        return [f(r, d) for r, d in zip(runs, derived, strict=True)]

    print(f"\nSeconds over {len(runs)} run(s), each in a fresh process (median / min / max):")
    rows = [
        _row("panel generation", col(lambda r, d: r["phases"]["panel"])),
        _row("compute_features (20)", col(lambda r, d: r["phases"]["features"])),
        _row("make_labels", col(lambda r, d: r["phases"]["labels"])),
        _row("make_dataset", col(lambda r, d: r["phases"]["make_dataset"])),
        _row("train_cv (Timings.total)", col(lambda r, d: r["timings"]["total"])),
    ]
    for phase in ("to_numpy", "split", "slicing", "fit", "predict", "assemble", "metrics"):
        rows.append(_row(f"  {phase}", col(lambda r, d, p=phase: r["timings"][p])))
    rows.append(_row("  after Timings (trial record)", col(lambda r, d: r["after_timings"])))
    if first["permutation"]:
        permutation = col(lambda r, d: r["timings"]["permutation"])
        rows.append(_row("  permutation (outside CV)", permutation))
    rows += [
        _row("LightGBM own: lgb.train", col(lambda r, d: r["lgb_train"])),
        _row("LightGBM own: Booster.predict", col(lambda r, d: r["lgb_predict"])),
        _row("whole run (panel .. train_cv)", col(lambda r, d: r["phases"]["whole_run"])),
    ]
    _panel.print_table(["phase", "median", "min", "max"], rows)

    print("\nOverhead = everything that is not the model's own fit/predict:")
    pct = "{:.1%}"
    _panel.print_table(
        ["measure", "median", "min", "max"],
        [
            _row("(a) Timings: cv_seconds", col(lambda r, d: d["cv_seconds"])),
            _row("    fit + predict", col(lambda r, d: d["model_seconds"])),
            _row("    overhead fraction", col(lambda r, d: d["inner_overhead"]), pct),
            _row("(b) wall: make_dataset + train_cv", col(lambda r, d: d["outer_seconds"])),
            _row("    LightGBM train + predict", col(lambda r, d: d["lgb_seconds"])),
            _row("    overhead fraction", col(lambda r, d: d["outer_overhead"]), pct),
            *(
                []
                if first["permutation"]  # its CPU is not separated from the CV's
                else [
                    _row("(c) CPU: make_dataset + train_cv", col(lambda r, d: r["outer_cpu"])),
                    _row("    LightGBM train + predict", col(lambda r, d: r["lgb_cpu"])),
                    _row("    overhead fraction", col(lambda r, d: d["cpu_overhead"]), pct),
                ]
            ),
        ],
    )
    loads = ", ".join(f"{a:.1f} -> {b:.1f}" for a, b in (r["load"] for r in runs))
    faults = _panel.summary([r["outer_faults"] for r in runs])
    print(
        f"1-minute load average at each run's start -> end: {loads}; minor page faults in "
        f"make_dataset + train_cv: median {faults[0]:,.0f} (min {faults[1]:,.0f}, max "
        f"{faults[2]:,.0f})"
    )

    peak = max(r["rss_peak_mib"] for r in runs)
    print(
        f"\nPeak RSS of a whole run: {peak:,.0f} MiB (child ru_maxrss, max over runs; "
        f"RUSAGE_CHILDREN {rss_children_mib:,.0f} MiB; after imports "
        f"{first['rss_imports_mib']:,.0f} MiB)"
    )

    checks = []
    if full:
        worst = max(d["outer_overhead"] for d in derived)
        checks = [
            (f"overhead (b) <= {MAX_OVERHEAD:.0%} of wall time (worst run)", worst <= MAX_OVERHEAD),
            (f"peak RSS <= 3 GB ({MAX_RSS_BYTES / 2**20:,.0f} MiB)", peak * 2**20 <= MAX_RSS_BYTES),
        ]
    else:
        print("(not the issue's 500 x 2520 panel: targets are not checked)")
    print("\nTargets:")
    for label, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    if not checks:
        print("  PASS  the run completed")
    return 0 if all(ok for _, ok in checks) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    _panel.add_panel_args(parser)
    parser.add_argument("--repeats", type=int, default=1, help="runs, each in a fresh process")
    parser.add_argument("--trees", type=int, default=None, help="boosting rounds (default 100)")
    parser.add_argument("--leaves", type=int, default=31, help="num_leaves (default 31)")
    parser.add_argument("--threads", type=int, default=1, help="LightGBM threads (default 1)")
    parser.add_argument(
        "--permutation",
        action="store_true",
        help="also run permutation importance (timed separately, outside the overhead)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(raw)
    if args.trees is None:
        args.trees = 20 if args.quick else 100
    if args.child:
        print(_MARKER + json.dumps(child(args)))
        return 0

    size, full = _panel.panel_size(args)
    for line in _panel.machine_lines():
        print(line)
    print(
        f"panel {size.n_symbols} x {size.n_sessions}, {len(_panel.BENCH_FEATURES)} features, "
        f"binary label h={_panel.HORIZON}; PurgedWalkForward(n_splits={N_SPLITS}, "
        f"embargo={_panel.HORIZON}); LightGBM binary, {args.trees} trees, num_leaves "
        f"{args.leaves}, {args.threads} thread(s); permutation_importance={args.permutation}, "
        f"refit_final=False"
    )
    runs = []
    for k in range(args.repeats):
        clock = perf_counter()
        runs.append(_run_child([a for a in raw if a != "--child"]))
        print(f"run {k + 1}/{args.repeats}: {perf_counter() - clock:.1f} s including start-up")
    rss_children = _panel.peak_rss_mib(resource.RUSAGE_CHILDREN)
    return report(runs, rss_children, full)


if __name__ == "__main__":
    sys.exit(main())
