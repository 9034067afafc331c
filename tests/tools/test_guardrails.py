"""Each guardrail refuses the unsafe request and lets the safe one through."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from quantdesk.quant_core import TrialRegistry, compute_features, create_context, demo_universe
from quantdesk.tools import pipeline, run_tool

# --------------------------------------------------------------------------- as_of


def test_as_of_after_the_context_is_refused(tools) -> None:
    create_context("pit", as_of="2016-12-30")
    payload = {"context": "pit", "source": tools.SMALL}
    message = tools.refused(run_tool("validate_data", {**payload, "as_of": "2017-06-30"}), "as_of")
    assert "2016-12-30" in message
    env = run_tool("validate_data", payload)  # as_of defaults to the context's
    tools.ok(env)
    assert str(env.provenance.as_of) == "2016-12-30"
    assert tools.outcome(env, "as_of") == "passed"


def test_nothing_after_as_of_is_read(tools) -> None:
    env = run_tool("make_labels", {"source": tools.SMALL, "as_of": "2016-06-30"})
    result = tools.ok(env)
    assert str(result.last_t1) <= "2016-06-30"
    fetched = tools.ok(run_tool("fetch_prices", {"source": tools.SMALL, "as_of": "2016-06-30"}))
    assert str(fetched.last_date) <= "2016-06-30"


# --------------------------------------------------------------------------- holdout


@pytest.fixture
def held_out() -> str:
    create_context("held", as_of="2017-06-30", holdout=("2017-01-02", None))
    return "held"


@pytest.mark.parametrize("tool", ["fetch_prices", "compute_features", "backtest"])
def test_holdout_data_is_refused(tools, held_out: str, tool: str) -> None:
    env = run_tool(tool, {"context": held_out, "source": tools.SMALL})
    message = tools.refused(env, "holdout")
    assert "holdout window [2017-01-02, 2017-06-30]" in message
    assert "as_of before 2017-01-02" in env.error.fix
    assert TrialRegistry().count(held_out) == 0


def test_data_before_the_holdout_is_allowed(tools, held_out: str) -> None:
    env = run_tool(
        "compute_features",
        {"context": held_out, "source": tools.SMALL, "as_of": "2016-12-30"},
    )
    tools.ok(env)
    assert tools.outcome(env, "holdout") == "passed"


def test_evaluate_holdout_once_per_hypothesis(tools, held_out: str) -> None:
    payload = {
        "context": held_out,
        "source": tools.SMALL,
        "hypothesis": "Reversal 5d",
        "strategy": {"signal": "ret_5", "higher_is_better": False},
    }
    env = run_tool("evaluate_holdout", payload)
    result = tools.ok(env)
    assert str(result.holdout_start) == "2017-01-02"
    assert str(result.performance.start) >= "2017-01-02"
    assert tools.outcome(env, "holdout") == "passed"
    again = run_tool("evaluate_holdout", {**payload, "hypothesis": "  reversal   5D "})
    assert "already evaluated" in tools.refused(again, "holdout")
    listed = tools.ok(run_tool("list_trials", {"context": held_out}))
    assert [e.hypothesis for e in listed.holdout_evaluations] == ["Reversal 5d"]
    # the engine's record of the holdout run is never read back as a search trial
    holdout_trials = TrialRegistry().trials(held_out)
    for trial in holdout_trials:
        env = run_tool("deflated_sharpe", {"context": held_out, "trial_id": trial.trial_id})
        tools.refused(env, "holdout")


def test_evaluate_holdout_needs_a_holdout(tools) -> None:
    env = run_tool(
        "evaluate_holdout", {"source": tools.SMALL, "as_of": tools.AS_OF, "hypothesis": "h"}
    )
    assert "no holdout" in tools.bad_input(env, "context")


# --------------------------------------------------------------------------- data validation


@pytest.fixture
def broken_file(data_dir: Path) -> str:
    frame = demo_universe(5, n_symbols=4, n_sessions=400).prices
    broken = frame.with_columns(
        pl.when((pl.col("symbol") == "SYN001") & (pl.col("date") == pl.col("date").max()))
        .then(-1.0)
        .otherwise(pl.col("close"))
        .alias("close")
    )
    broken.write_parquet(data_dir / "broken.parquet")
    return "broken.parquet"


def test_validation_errors_block_downstream_tools(tools, broken_file: str) -> None:
    source = {"kind": "file", "path": broken_file}
    report = tools.ok(run_tool("validate_data", {"source": source, "as_of": "2020-01-01"}))
    assert not report.ok
    assert report.blocks_downstream
    assert report.n_errors >= 1
    for tool in ("compute_features", "make_labels", "walk_forward_cv", "backtest"):
        env = run_tool(tool, {"source": source, "as_of": "2020-01-01"})
        message = tools.refused(env, "data_validation")
        assert "SYN001" in env.error.fix or "SYN001" in message
    fixed = {**source, "symbols": ["SYN000", "SYN002", "SYN003"]}
    env = run_tool("make_labels", {"source": fixed, "as_of": "2020-01-01"})
    tools.ok(env)
    assert tools.outcome(env, "data_validation") == "passed"


# --------------------------------------------------------------------------- look-ahead


def test_leaky_features_are_refused(tools, monkeypatch: pytest.MonkeyPatch) -> None:
    def leaky(names, transform):  # a feature that peeks one session ahead
        def fn(frame: pl.DataFrame) -> pl.DataFrame:
            out = compute_features(frame, names, cross_sectional=None)
            return out.with_columns(pl.col(names[0]).shift(-1).over("symbol"))

        return fn

    monkeypatch.setattr(pipeline, "feature_function", leaky)
    payload = {"source": tools.SMALL, "as_of": tools.AS_OF, "features": {"names": ["ret_5"]}}
    for tool in ("compute_features", "walk_forward_cv"):
        message = tools.refused(run_tool(tool, payload), "lookahead")
        assert "ret_5" in message
    assert TrialRegistry().count("default") == 0


def test_library_features_pass_the_lookahead_check(tools) -> None:
    env = run_tool("compute_features", {"source": tools.SMALL, "as_of": tools.AS_OF})
    result = tools.ok(env)
    assert result.lookahead.passed
    assert result.lookahead.n_values > 0
    assert tools.outcome(env, "lookahead") == "passed"


# --------------------------------------------------------------------------- leakage


def _cv(tools, **overrides) -> dict:
    return {
        "source": tools.SMALL,
        "as_of": tools.AS_OF,
        "features": tools.FAST_FEATURES,
        "model": {"kind": "linear"},
        "cv": {"n_splits": 3},
        **overrides,
    }


def test_unpurged_cv_is_refused_for_multi_session_labels(tools) -> None:
    env = run_tool("walk_forward_cv", _cv(tools, cv={"purge": False}))
    assert "5-session label" in tools.refused(env, "leakage")
    assert TrialRegistry().count("default") == 0


def test_purged_cv_embargo_defaults_to_the_horizon(tools) -> None:
    env = run_tool("walk_forward_cv", _cv(tools, label={"horizon": 3}))
    result = tools.ok(env)
    assert result.splitter["embargo"] == 3
    assert result.splitter["purge"]
    assert tools.outcome(env, "leakage") == "passed"
    assert all(f.n_purged and f.n_purged > 0 for f in result.folds)


def test_unpurged_cv_allowed_for_one_session_labels(tools) -> None:
    env = run_tool("walk_forward_cv", _cv(tools, label={"horizon": 1}, cv={"purge": False}))
    result = tools.ok(env)
    assert not result.splitter["purge"]
    assert all(f.n_purged == 0 for f in result.folds)


def test_short_embargo_warns(tools) -> None:
    env = run_tool("walk_forward_cv", _cv(tools, cv={"n_splits": 3, "embargo": 1}))
    tools.ok(env)
    assert any("embargo=1 is below the label horizon 5" in w for w in env.warnings)


# --------------------------------------------------------------------------- costs


def _bt(tools, **overrides) -> dict:
    return {
        "source": tools.SMALL,
        "as_of": tools.AS_OF,
        "strategy": {"signal": "ret_21", "rebalance": "weekly"},
        **overrides,
    }


def test_zero_costs_are_refused(tools) -> None:
    zero = {"commission_bps": 0.0, "half_spread_bps": 0.0, "slippage_bps": 0.0}
    env = run_tool("backtest", _bt(tools, costs=zero))
    assert "zero" in tools.refused(env, "costs")
    assert "gross_study" in env.error.fix


def test_gross_study_is_an_explicit_recorded_override(tools) -> None:
    env = run_tool("backtest", _bt(tools, gross_study=True))
    result = tools.ok(env)
    assert tools.outcome(env, "costs") == "overridden"
    assert "gross_study=true" in next(g.reason for g in env.guardrails if g.name == "costs")
    assert all(v == 0 for v in result.cost_totals.values())
    assert result.total_gross_return == pytest.approx(result.total_net_return)
    env = run_tool("backtest", _bt(tools, gross_study=True, costs={"commission_bps": 1.0}))
    tools.bad_input(env, "costs")


def test_default_costs_are_charged(tools) -> None:
    env = run_tool("backtest", _bt(tools))
    result = tools.ok(env)
    assert tools.outcome(env, "costs") == "passed"
    assert result.cost_totals["commission"] > 0
    assert result.total_net_return < result.total_gross_return


# --------------------------------------------------------------------------- trial budget


def test_trial_budget_refuses_further_trials(tools) -> None:
    create_context("small-budget", trial_budget=1)
    first = run_tool("backtest", _bt(tools, context="small-budget"))
    assert tools.ok(first).trial.number == 1
    second = run_tool("walk_forward_cv", _cv(tools, context="small-budget"))
    assert "used 1 of its 1 trials" in tools.refused(second, "trial_budget")
    assert TrialRegistry().count("small-budget") == 1
    # reading is not a trial: the budget never blocks it
    tools.ok(
        run_tool(
            "deflated_sharpe", {"context": "small-budget", "trial_id": first.provenance.trial_id}
        )
    )


# --------------------------------------------------------------------------- multiple testing


def test_every_sharpe_comes_with_its_dsr(tools) -> None:
    cv = tools.ok(run_tool("walk_forward_cv", _cv(tools)))
    bt = tools.ok(run_tool("backtest", _bt(tools)))
    assert cv.deflated_sharpe.n_trials == 1
    assert bt.deflated_sharpe.n_trials == 2  # deflated by every trial of the context
    assert bt.trial.sharpe_annualised == pytest.approx(bt.deflated_sharpe.sharpe_annualised)
    recorded = tools.ok(run_tool("deflated_sharpe", {"trial_id": cv.trial.trial_id}))
    assert recorded.deflated_sharpe.n_trials == 2
    assert not recorded.candidate_counted
    candidate = tools.ok(run_tool("deflated_sharpe", {"stats": {"sharpe": 1.0, "n_obs": 800}}))
    assert candidate.deflated_sharpe.n_trials == 3
    assert candidate.candidate_counted
    assert candidate.recorded_trials == 2


def test_validation_verdict_is_cached_by_data_hash(tools, broken_file: str, tmp_path: Path) -> None:
    source = {"kind": "file", "path": broken_file}
    first = run_tool("make_labels", {"source": source, "as_of": "2020-01-01"})
    tools.refused(first, "data_validation")
    cache = list((tmp_path / "quantdesk-home" / "cache" / "validation").glob("*.json"))
    assert [p.stem for p in cache] == [first.provenance.data_hash]
    again = run_tool("make_labels", {"source": source, "as_of": "2020-01-01"})
    assert tools.refused(again, "data_validation") == tools.refused(first, "data_validation")
    cache[0].write_text("{ not json")  # a corrupt entry is ignored and rewritten
    tools.refused(
        run_tool("make_labels", {"source": source, "as_of": "2020-01-01"}), "data_validation"
    )
    clean = {**source, "symbols": ["SYN000"]}
    tools.ok(run_tool("make_labels", {"source": clean, "as_of": "2020-01-01"}))
    cached = run_tool("make_labels", {"source": clean, "as_of": "2020-01-01"})
    reason = next(g.reason for g in cached.guardrails if g.name == "data_validation")
    assert "cached verdict" in reason


def test_a_failed_holdout_evaluation_still_counts(tools, broken_file: str) -> None:
    # The bad row is on the last date, inside the holdout: only the evaluation can see it.
    create_context("late-error", as_of="2016-07-14", holdout=("2016-06-01", None))
    payload = {
        "context": "late-error",
        "source": {"kind": "file", "path": broken_file},
        "hypothesis": "h",
        "strategy": {"signal": "ret_21"},
    }
    first = run_tool("evaluate_holdout", payload)
    assert "The attempt is recorded and counts" in tools.refused(first, "data_validation")
    second = run_tool("evaluate_holdout", payload)
    assert "already evaluated" in tools.refused(second, "holdout")
