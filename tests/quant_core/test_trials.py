"""Tests for quant_core.trials: the append-only trial registry and the DSR inputs it provides."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydantic import BaseModel
from scipy import stats as sps

import quantdesk
from quantdesk.quant_core import trials as trials_module
from quantdesk.quant_core.dataset import frame_hash
from quantdesk.quant_core.errors import (
    DataError,
    InputError,
    InsufficientDataError,
    QuantdeskRuntimeError,
    SchemaError,
)
from quantdesk.quant_core.research_context import (
    _MIGRATIONS,
    HoldoutViolationError,
    ResearchContext,
    create_context,
    evaluate_holdout,
    registry_path,
    use_context,
)
from quantdesk.quant_core.sharpe_inference import deflated_sharpe_ratio
from quantdesk.quant_core.trials import (
    TrialBudgetExceededError,
    TrialRecord,
    TrialRegistry,
    code_version,
    config_hash,
    config_json,
)

START = dt.date(2015, 1, 1)


def _frame(values: np.ndarray, start: dt.date = START) -> pl.DataFrame:
    dates = pl.date_range(start, start + dt.timedelta(len(values) - 1), eager=True)
    return pl.DataFrame({"date": dates, "ret": values})


@pytest.fixture
def ctx() -> ResearchContext:
    return create_context("search", as_of="2020-12-31", holdout=("2020-01-01", None))


@pytest.fixture
def registry() -> TrialRegistry:
    return TrialRegistry()


def _record(registry: TrialRegistry, ctx: ResearchContext, values: np.ndarray) -> TrialRecord:
    # a different series comes from a different configuration (runs are deterministic)
    variant = hashlib.sha256(np.asarray(values).tobytes()).hexdigest()[:12]
    return registry.record(
        ctx,
        "backtest",
        _frame(values),
        config={"lookback": 20, "variant": variant},
        data_hash="d" * 64,
    )


# --------------------------------------------------------------------------- recording


def test_record_stores_moments_provenance_and_the_series(
    registry: TrialRegistry, ctx: ResearchContext, rng: np.random.Generator
) -> None:
    values = rng.standard_t(df=5, size=500) * 0.01 + 0.0005
    frame = _frame(values)
    rec = registry.record(
        ctx, "cv", frame, config={"b": 2, "a": 1}, data_hash=frame, description="first"
    )
    assert (rec.number, rec.kind, rec.context_id, rec.description) == (1, "cv", ctx.id, "first")
    assert rec.n_obs == 500
    assert rec.mean == pytest.approx(values.mean(), rel=1e-12)
    assert rec.std == pytest.approx(values.std(ddof=1), rel=1e-12)
    assert rec.sr_per_period == pytest.approx(values.mean() / values.std(ddof=1), rel=1e-12)
    assert rec.skew == pytest.approx(sps.skew(values, bias=True), rel=1e-10)
    assert rec.kurtosis == pytest.approx(sps.kurtosis(values, fisher=False, bias=True), rel=1e-10)
    assert rec.sr_annualised == pytest.approx(rec.sr_per_period * math.sqrt(252))
    assert rec.data_hash == frame_hash(frame)
    assert rec.config == {"a": 1, "b": 2}
    assert rec.config_hash == config_hash({"a": 1, "b": 2})
    assert rec.code_version == code_version()
    assert rec.code_version.startswith(quantdesk.__version__)
    assert (rec.first_date, rec.last_date) == (START, START + dt.timedelta(499))
    assert rec.returns_path == registry_path().parent / "trials" / f"{rec.trial_id}.parquet"
    assert_frame_equal(registry.returns(rec), frame)
    assert registry.get(rec.trial_id) == rec
    json.dumps(rec.to_dict())
    second = _record(registry, ctx, values[::-1])
    assert second.number == 2
    assert [t.trial_id for t in registry.trials(ctx)] == [rec.trial_id, second.trial_id]
    assert registry.count(ctx) == 2
    assert registry.count(ctx, kind="cv") == 1


def test_record_accepts_arrays_and_backtest_frames(
    registry: TrialRegistry, ctx: ResearchContext, rng: np.random.Generator
) -> None:
    values = rng.normal(0, 0.01, 50)
    plain = registry.record(ctx, "other", values, config={}, data_hash="h")
    assert (plain.first_date, plain.last_date) == (None, None)
    stored = registry.returns(plain)
    assert stored["date"].null_count() == 50
    np.testing.assert_array_equal(stored["ret"].to_numpy(), values)
    backtest = _frame(values).with_columns(net=pl.col("ret") - 1e-4, turnover=pl.lit(0.1))
    with pytest.raises(InputError, match="column='<name>'"):
        registry.record(ctx, "backtest", backtest, config={}, data_hash="h")
    rec = registry.record(ctx, "backtest", backtest, config={}, data_hash="h", column="net")
    assert rec.mean == pytest.approx(values.mean() - 1e-4)


class _Config(BaseModel):
    lookback: int
    start: dt.date


def test_config_json_is_canonical() -> None:
    a = {"z": [1, 2], "a": {"y": 1.5, "x": dt.date(2020, 1, 2)}, "p": Path("/x")}
    b = {"p": Path("/x"), "a": {"x": dt.date(2020, 1, 2), "y": 1.5}, "z": [1, 2]}
    assert config_json(a) == config_json(b)
    assert config_json(a) == '{"a":{"x":"2020-01-02","y":1.5},"p":"/x","z":[1,2]}'
    assert config_json({"n": np.int64(3), "s": {2, 1}}) == '{"n":3,"s":[1,2]}'
    model = _Config(lookback=5, start=dt.date(2020, 1, 1))
    assert config_json(model) == '{"lookback":5,"start":"2020-01-01"}'
    assert config_hash(model) == config_hash({"start": "2020-01-01", "lookback": 5})
    with pytest.raises(InputError, match="cannot be stored as JSON"):
        config_json({"x": float("nan")})
    with pytest.raises(InputError, match="cannot be stored as JSON"):
        config_json({"x": object()})


def _bad_inputs() -> list[tuple[str, dict, type[Exception], str]]:
    good = _frame(np.linspace(-0.01, 0.02, 10))
    return [
        ("zero variance", {"returns": np.full(30, 0.001)}, InputError, "zero variance"),
        ("empty", {"returns": np.array([])}, InsufficientDataError, "0 observation"),
        ("one", {"returns": np.array([0.01])}, InsufficientDataError, "at least 2"),
        ("nan", {"returns": np.array([0.01, np.nan, 0.02])}, DataError, "NaN"),
        ("null", {"returns": pl.DataFrame({"r": [0.01, None, 0.0]})}, DataError, "null"),
        ("unsorted", {"returns": good.reverse()}, DataError, "not strictly increasing"),
        ("dup", {"returns": pl.concat([good, good])}, DataError, "not strictly increasing"),
        ("str dates", {"returns": good.with_columns(pl.col("date").cast(pl.String))},
         SchemaError, "date column has type"),
        ("kind", {"kind": "grid"}, InputError, "Trial kind 'grid' is unknown"),
        ("hash", {"data_hash": ""}, InputError, "not a content hash"),
        ("config", {"config": {"x": float("inf")}}, InputError, "JSON"),
        ("context", {"context": "nope"}, InputError, "No research context"),
        ("holdout", {"returns": _frame(np.linspace(0, 1, 10), dt.date(2019, 12, 25))},
         HoldoutViolationError, "first is dated 2020-01-01"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "override", "error", "match"), _bad_inputs(), ids=[c[0] for c in _bad_inputs()]
)
def test_a_failed_run_writes_nothing(
    registry: TrialRegistry,
    ctx: ResearchContext,
    case: str,
    override: dict,
    error: type[Exception],
    match: str,
) -> None:
    kwargs = {
        "context": ctx,
        "kind": "backtest",
        "returns": _frame(np.linspace(-0.01, 0.02, 10)),
        "config": {"k": 1},
        "data_hash": "abc",
        **override,
    }
    with pytest.raises(error, match=match) as info:
        registry.record(**kwargs)
    assert info.value.fix
    assert registry.count(ctx) == 0
    assert not registry.folder.exists() or not any(registry.folder.iterdir())


def test_a_failed_insert_removes_its_parquet_file(
    registry: TrialRegistry, ctx: ResearchContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextlib.contextmanager
    def locked(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        raise QuantdeskRuntimeError("locked", retryable=True)
        yield conn

    monkeypatch.setattr(trials_module, "write_transaction", locked)
    with pytest.raises(QuantdeskRuntimeError, match="locked"):
        _record(registry, ctx, np.linspace(0, 1, 10))
    assert list(registry.folder.iterdir()) == []
    monkeypatch.undo()
    assert registry.count(ctx) == 0


def test_holdout_returns_are_recorded_only_inside_an_evaluation(
    registry: TrialRegistry, ctx: ResearchContext
) -> None:
    inside = _frame(np.linspace(-0.01, 0.01, 20), dt.date(2020, 3, 1))
    with pytest.raises(HoldoutViolationError, match="covers the whole sample"):
        registry.record(ctx, "backtest", inside, config={}, data_hash="h")
    done = evaluate_holdout(
        ctx, "final", lambda: registry.record(ctx, "backtest", inside, config={}, data_hash="h")
    )
    assert done.status == "ok"
    assert registry.count(ctx) == 1


def test_trials_are_append_only_in_the_database(
    registry: TrialRegistry, ctx: ResearchContext
) -> None:
    rec = _record(registry, ctx, np.linspace(-0.01, 0.01, 20))
    with sqlite3.connect(registry.path) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE on trials"):
            conn.execute("UPDATE trials SET sr_per_period = 9.9")
        with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE on trials"):
            conn.execute("DELETE FROM trials")
    assert registry.trials(ctx) == [rec]


def test_tampered_or_missing_series_are_detected(
    registry: TrialRegistry, ctx: ResearchContext
) -> None:
    first = _record(registry, ctx, np.linspace(-0.01, 0.01, 20))
    second = _record(registry, ctx, np.linspace(0.01, -0.02, 20))
    assert registry.verify() == ()
    first.returns_path.write_bytes(first.returns_path.read_bytes()[:-1] + b"\x00")
    second.returns_path.unlink()
    with pytest.raises(QuantdeskRuntimeError, match="does not match its recorded SHA-256"):
        registry.returns(first.trial_id)
    with pytest.raises(QuantdeskRuntimeError, match="is missing"):
        registry.returns(second)
    assert len(registry.verify(ctx)) == 2


def test_unknown_trial_and_missing_active_context() -> None:
    registry = TrialRegistry()
    with pytest.raises(InputError, match="No trial with id 'x'"):
        registry.get("x")
    with pytest.raises(InputError, match="none is active"):
        registry.count()
    ctx = create_context("active")
    with use_context(ctx):
        assert registry.count() == 0


# --------------------------------------------------------------------------- statistics


def test_sharpe_stats_take_n_and_the_variance_from_the_registry(
    registry: TrialRegistry, ctx: ResearchContext, rng: np.random.Generator
) -> None:
    with pytest.raises(InsufficientDataError, match="no recorded trials"):
        registry.sharpe_stats(ctx)
    first = _record(registry, ctx, rng.normal(0, 0.01, 300))
    one = registry.sharpe_stats(ctx)
    assert (one.n_trials, one.var_trial_sharpes, one.n_effective) == (1, 0.0, 1.0)
    records = [first, *(_record(registry, ctx, rng.normal(0, 0.01, 300)) for _ in range(5))]
    sharpes = np.array([r.sr_per_period for r in records])
    stats = registry.sharpe_stats(ctx, method="count")
    assert stats.n_trials == stats.n_effective == 6
    assert stats.var_trial_sharpes == pytest.approx(np.var(sharpes, ddof=1), rel=1e-12)
    assert stats.max_trial_sharpe == pytest.approx(sharpes.max())
    assert stats.trial_ids == tuple(r.trial_id for r in records)
    json.dumps(stats.to_dict())
    with pytest.raises(InputError, match="method='best'"):
        registry.sharpe_stats(ctx, method="best")
    with pytest.raises(InputError, match="min_overlap=1"):
        registry.sharpe_stats(ctx, min_overlap=1)


def test_near_duplicate_trials_collapse_into_one(
    registry: TrialRegistry, ctx: ResearchContext, rng: np.random.Generator
) -> None:
    base = rng.normal(0, 0.01, 400)
    for _ in range(3):  # re-runs with tiny perturbations: correlation ~0.999
        _record(registry, ctx, base + rng.normal(0, 0.0003, 400))
    for _ in range(2):
        _record(registry, ctx, rng.normal(0, 0.01, 400))
    clustered = registry.sharpe_stats(ctx)
    assert (clustered.method, clustered.n_trials, clustered.n_effective) == ("clusters", 5, 3.0)
    # 3 of the 10 pairs correlate ~1, the other 7 ~0
    assert clustered.mean_correlation == pytest.approx(0.3, abs=0.03)
    assert registry.sharpe_stats(ctx, method="count").n_effective == 5


def test_series_are_aligned_on_dates_before_correlating(
    registry: TrialRegistry, ctx: ResearchContext, rng: np.random.Generator
) -> None:
    values = rng.normal(0, 0.01, 300)
    registry.record(ctx, "cv", _frame(values[:200]), config={}, data_hash="h1")
    shifted = _frame(values[100:], START + dt.timedelta(100))  # same returns on 100 shared days
    registry.record(ctx, "cv", shifted, config={}, data_hash="h2")
    assert registry.sharpe_stats(ctx, min_overlap=100).mean_correlation == pytest.approx(1.0)
    assert registry.sharpe_stats(ctx, min_overlap=100).n_effective == 1.0
    # too little overlap: the pair counts as unrelated, which can only raise N_eff
    assert registry.sharpe_stats(ctx, min_overlap=101).n_effective == 2.0


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), min_overlap=st.integers(3, 60))
def test_aligned_correlation_equals_pairwise_complete_pearson(seed: int, min_overlap: int) -> None:
    gen = np.random.default_rng(seed)
    n_dates, n_series = 80, 5
    common = gen.normal(size=n_dates)
    dates = pl.date_range(START, START + dt.timedelta(n_dates - 1), eager=True)
    series, full = [], np.full((n_dates, n_series), np.nan)
    for j in range(n_series):
        keep = np.sort(gen.choice(n_dates, size=gen.integers(2, n_dates + 1), replace=False))
        values = gen.uniform(0, 1) * common[keep] + gen.normal(size=keep.size)
        if j == 0:  # a strategy that stops trading: constant returns on a stretch
            values[: keep.size // 2] = 0.004
        series.append(pl.DataFrame({"date": dates.gather(keep), "ret": values}))
        full[keep, j] = values
    corr = trials_module._aligned_correlation(series, min_overlap)
    for i in range(n_series):
        for j in range(n_series):
            both = ~np.isnan(full[:, i]) & ~np.isnan(full[:, j])
            x, y = full[both, i], full[both, j]
            if i == j:
                expected = 1.0
            elif both.sum() < min_overlap or np.ptp(x) == 0 or np.ptp(y) == 0:
                expected = 0.0
            else:
                expected = float(np.corrcoef(x, y)[0, 1])
            assert corr[i, j] == pytest.approx(expected, abs=1e-9)


# --------------------------------------------------------------------------- deflated Sharpe


def test_deflated_sharpe_uses_the_registry_counts(
    registry: TrialRegistry, ctx: ResearchContext, rng: np.random.Generator
) -> None:
    records = [_record(registry, ctx, rng.normal(2e-4, 0.01, 750)) for _ in range(8)]
    best = max(records, key=lambda r: r.sr_per_period)
    sharpes = [r.sr_per_period for r in records]
    result = registry.deflated_sharpe(ctx, best.trial_id)
    direct = deflated_sharpe_ratio(
        sr=best.sr_per_period,
        n_obs=750,
        skew=best.skew,
        kurtosis=best.kurtosis,
        n_trials=8,
        var_trial_sharpes=float(np.var(sharpes, ddof=1)),
    )
    assert result == direct
    # an unrecorded candidate is one more trial
    candidate = rng.normal(5e-4, 0.01, 750)
    more = registry.deflated_sharpe(ctx, returns=candidate)
    assert more.n_trials == 9
    assert more.var_trial_sharpes == pytest.approx(
        np.var([*sharpes, candidate.mean() / candidate.std(ddof=1)], ddof=1)
    )
    assert registry.count(ctx) == 8  # deflating does not record
    grouped = registry.deflated_sharpe(ctx, best, method="clusters")
    assert grouped.n_trials == registry.sharpe_stats(ctx).n_effective


def test_deflated_sharpe_rejects_misuse(
    registry: TrialRegistry, ctx: ResearchContext, rng: np.random.Generator
) -> None:
    rec = _record(registry, ctx, rng.normal(0, 0.01, 100))
    other = create_context("other")
    with pytest.raises(InputError, match="exactly one of trial"):
        registry.deflated_sharpe(ctx)
    with pytest.raises(InputError, match="exactly one of trial"):
        registry.deflated_sharpe(ctx, rec, returns=np.ones(3))
    with pytest.raises(InputError, match="not among the recorded trials of research context"):
        registry.deflated_sharpe(other, rec)
    with pytest.raises(InputError, match="not among the cv trials"):
        registry.deflated_sharpe(ctx, rec, kind="cv")
    with pytest.raises(InputError, match="zero variance"):
        registry.deflated_sharpe(ctx, returns=np.zeros(50))


def test_known_truth_planted_effect_passes_and_the_best_noise_trial_fails(
    registry: TrialRegistry, ctx: ResearchContext
) -> None:
    """30 noise variants and one planted strategy with annualised Sharpe exactly 3, T = 1000.

    Noise Sharpes have a standard error of about 1/sqrt(1000) = 0.032 per period, so the best
    of 31 lands near the expected maximum SR0 (~0.08 here) and its DSR is far below 0.95. The
    planted series is standardised so that its sample Sharpe is exactly 3/sqrt(252) = 0.189 per
    period, about 3.3 standard errors above SR0 (DSR ~ 0.9995), leaving a wide margin at 0.99.
    """
    gen = np.random.default_rng(7)
    noise = [_record(registry, ctx, gen.normal(0, 0.01, 1000)) for _ in range(30)]
    z = gen.normal(size=1000)
    z = (z - z.mean()) / z.std(ddof=1)
    planted = _record(registry, ctx, 0.01 * (z + 3 / math.sqrt(252)))
    assert planted.sr_annualised == pytest.approx(3.0)
    best_noise = max(noise, key=lambda r: r.sr_per_period)
    assert registry.deflated_sharpe(ctx, planted).dsr > 0.99
    assert registry.deflated_sharpe(ctx, best_noise).dsr < 0.9


# --------------------------------------------------------------------------- budget


def test_the_budget_is_checked_but_never_blocks_recording(registry: TrialRegistry) -> None:
    small = create_context("small", trial_budget=2)
    assert registry.remaining_budget(small) == 2
    for k in range(2):
        registry.check_budget(small)
        _record(registry, small, np.linspace(-0.01, 0.01 + k / 1000, 10))
    _record(registry, small, np.linspace(-0.01, 0.02, 10))  # recorded although over budget
    assert registry.remaining_budget(small) == 0
    with pytest.raises(TrialBudgetExceededError, match="used 3 of its 2 trials") as info:
        registry.check_budget("small")
    assert "evaluate_holdout" in str(info.value)
    assert isinstance(info.value, InputError)


# --------------------------------------------------------------------------- concurrency

_WRITER = textwrap.dedent(
    """
    import sys, time
    import datetime as dt
    from pathlib import Path
    import numpy as np
    import polars as pl
    from quantdesk.quant_core.errors import InputError
    from quantdesk.quant_core.research_context import create_context, get_context
    from quantdesk.quant_core.trials import TrialRegistry

    worker, go = int(sys.argv[1]), Path(sys.argv[2])
    gen = np.random.default_rng(worker)
    dates = pl.date_range(dt.date(2015, 1, 1), dt.date(2015, 12, 31), eager=True)
    while not go.exists():
        time.sleep(0.005)
    try:  # every worker races to create the shared context in a fresh database
        ctx = create_context("shared")
    except InputError:
        ctx = get_context("shared")
    registry = TrialRegistry()
    for k in range(50):
        returns = pl.DataFrame({"date": dates, "ret": gen.normal(0, 0.01, dates.len())})
        registry.record(ctx, "backtest", returns, config={"worker": worker, "k": k}, data_hash="h")
    print("done")
    """
)


@pytest.mark.slow
def test_four_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONSAFEPATH": "1"}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(worker), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(4)
    ]
    time.sleep(0.5)
    go.touch()
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        assert out.strip() == "done"
    registry = TrialRegistry()
    records = registry.trials("shared")
    assert len(records) == 200
    assert [r.number for r in records] == list(range(1, 201))
    assert sorted((r.config["worker"], r.config["k"]) for r in records) == [
        (w, k) for w in range(4) for k in range(50)
    ]
    assert registry.verify() == ()
    files = sorted(p.name for p in registry.folder.iterdir())
    assert files == sorted(f"{r.trial_id}.parquet" for r in records)  # no temp files left
    with sqlite3.connect(registry.path) as conn:
        # every migration applied exactly once despite four processes opening the registry
        assert conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(
            _MIGRATIONS
        )


def test_an_identical_rerun_is_the_same_trial(
    registry: TrialRegistry, ctx: ResearchContext
) -> None:
    values = np.linspace(-0.01, 0.012, 30)
    first = registry.record(ctx, "backtest", _frame(values), config={"a": 1}, data_hash="e" * 64)
    again = registry.record(ctx, "backtest", _frame(values), config={"a": 1}, data_hash="e" * 64)
    other = registry.record(ctx, "backtest", _frame(values), config={"a": 2}, data_hash="e" * 64)
    assert again == first
    assert other.number == first.number + 1
    assert registry.count(ctx) == 2
    assert sorted(p.name for p in registry.folder.iterdir()) == sorted(
        f"{r.trial_id}.parquet" for r in (first, other)
    )
