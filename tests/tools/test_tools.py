"""What each tool returns on good input (small demo market, fast models)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from quantdesk.quant_core import TrialRegistry, deflated_sharpe_ratio
from quantdesk.tools import run_tool
from quantdesk.tools.risk_tools import drawdown_episodes


def test_fetch_prices_summary(tools) -> None:
    result = tools.ok(
        run_tool("fetch_prices", {"source": {**tools.SMALL, "symbols": ["SYN001", "SYN003"]}})
    )
    assert result.n_symbols == 2
    assert [c.symbol for c in result.coverage] == ["SYN001", "SYN003"]
    assert result.n_rows == 1400
    assert result.price_column == "close"
    assert result.preview[0]["symbol"] == "SYN001"


def test_validate_data_clean_demo(tools) -> None:
    result = tools.ok(run_tool("validate_data", {"source": tools.SMALL, "as_of": tools.AS_OF}))
    assert result.ok
    assert not result.blocks_downstream
    assert result.n_errors == 0


def test_compute_features_summary(tools) -> None:
    result = tools.ok(
        run_tool(
            "compute_features",
            {
                "source": tools.SMALL,
                "as_of": tools.AS_OF,
                "features": {"names": ["ret_5", "rvol_21"], "transform": "zscore"},
                "latest_rows": 3,
            },
        )
    )
    assert result.columns == ["cs_z_ret_5", "cs_z_rvol_21"]
    stats = {s.column: s for s in result.stats}
    assert stats["ret_5"].null_share == pytest.approx(5 * 12 / result.n_rows)
    assert stats["cs_z_ret_5"].mean == pytest.approx(0.0, abs=1e-9)
    assert len(result.latest) == 3
    assert set(result.latest[0]) == {"symbol", *result.columns}


@pytest.mark.parametrize(
    ("label", "classes"),
    [({"kind": "binary", "horizon": 5}, {"0", "1"}), ({"kind": "forward_return"}, None)],
)
def test_make_labels_summary(tools, label: dict, classes: set[str] | None) -> None:
    result = tools.ok(
        run_tool("make_labels", {"source": tools.SMALL, "as_of": tools.AS_OF, "label": label})
    )
    assert (set(result.class_counts) if result.class_counts else None) == classes
    assert (result.mean is None) == (classes is not None)
    assert result.median_span_days >= 5


def test_walk_forward_cv_records_a_trial(tools) -> None:
    env = run_tool(
        "walk_forward_cv",
        {
            "source": tools.SMALL,
            "as_of": tools.AS_OF,
            "features": tools.FAST_FEATURES,
            "label": {"kind": "binary", "horizon": 5},
            "model": {"kind": "lightgbm", "params": {"num_boost_round": 20}},
            "cv": {"splitter": "kfold", "n_splits": 3},
            "top_features": 2,
        },
    )
    result = tools.ok(env)
    assert result.task == "binary"
    assert {"accuracy", "roc_auc"} <= set(result.metrics)
    assert len(result.folds) == 3
    assert len(result.feature_importance) == 2
    assert env.provenance.trial_id == result.trial.trial_id
    assert result.trial.kind == "cv"
    assert result.trial.period_sessions == 5
    assert TrialRegistry().count("default") == 1


def test_backtest_reports_net_performance_and_trial(tools) -> None:
    env = run_tool(
        "backtest",
        {
            "source": tools.SMALL,
            "as_of": tools.AS_OF,
            "strategy": {"signal": "ret_21", "side": "long_only", "quantile": 0.5},
        },
    )
    result = tools.ok(env)
    assert result.mean_short_exposure == pytest.approx(0.0)
    assert result.mean_long_exposure == pytest.approx(1.0, abs=0.05)
    assert result.trial.kind == "backtest"
    assert result.trial.trial_id == env.provenance.trial_id
    assert result.performance.sharpe == pytest.approx(result.deflated_sharpe.sharpe_annualised)


def test_risk_report_of_a_strategy_and_of_its_trial(tools) -> None:
    payload = {"source": tools.SMALL, "as_of": tools.AS_OF, "strategy": {"signal": "ret_21"}}
    by_strategy = tools.call("risk_report", payload)
    report = tools.ok(by_strategy)
    assert report.exposures is not None
    assert report.exposures.mean_gross == pytest.approx(1.0, abs=0.05)
    assert report.tail.cvar_99 <= report.tail.var_99 <= report.tail.var_95 < 0
    assert report.drawdowns[0].depth == pytest.approx(report.performance.max_drawdown)
    lev = report.sizing.recommended_leverage
    assert 0 <= lev <= 2.0
    assert report.kill_switch.period_loss_limit == pytest.approx(
        4.0 * lev * report.performance.annual_volatility / math.sqrt(252)
    )
    by_trial = tools.ok(tools.call("risk_report", {"trial_id": report.trial.trial_id}))
    assert by_trial.exposures is None
    assert by_trial.performance.sharpe == pytest.approx(report.performance.sharpe)
    both = tools.call("risk_report", {**payload, "trial_id": report.trial.trial_id})
    tools.bad_input(both, "trial_id")


def test_drawdown_episodes_golden() -> None:
    dates = np.arange("2020-01-01", "2020-01-07", dtype="datetime64[D]")
    returns = np.array([-0.1, 0.05, 0.1, -0.2, 0.1, 0.0])
    episodes = drawdown_episodes(dates, returns)
    assert [round(e.depth, 6) for e in episodes] == [-0.2, -0.1]
    deepest, first = episodes
    assert str(deepest.peak) == "2020-01-03"
    assert str(deepest.trough) == "2020-01-04"
    assert deepest.recovery is None
    assert deepest.sessions_to_recovery is None
    assert str(first.recovery) == "2020-01-03"
    assert first.sessions_to_recovery == 2


def test_deflated_sharpe_of_returns_matches_the_library(tools) -> None:
    rng = np.random.default_rng(3)
    returns = (rng.normal(0.0005, 0.01, 500)).tolist()
    result = tools.ok(run_tool("deflated_sharpe", {"returns": returns}))
    expected = deflated_sharpe_ratio(np.array(returns), n_trials=1)
    assert result.deflated_sharpe.dsr == pytest.approx(expected.dsr)
    assert result.source == "returns"
    assert result.recorded_trials == 0
    assert "DSR" in result.verdict


def test_deflated_sharpe_stats_units(tools) -> None:
    annual = tools.ok(run_tool("deflated_sharpe", {"stats": {"sharpe": 1.5876, "n_obs": 500}}))
    daily = tools.ok(
        run_tool(
            "deflated_sharpe",
            {"stats": {"sharpe": 1.5876 / math.sqrt(252), "units": "per_period", "n_obs": 500}},
        )
    )
    assert annual.deflated_sharpe.dsr == pytest.approx(daily.deflated_sharpe.dsr)
    both = run_tool("deflated_sharpe", {"stats": {"sharpe": 1.0, "n_obs": 9}, "trial_id": "x"})
    tools.bad_input(both)
    unknown = run_tool("deflated_sharpe", {"trial_id": "0123456789abcdef"})
    tools.bad_input(unknown, "trial_id")


def test_pbo_inline_and_from_trials(tools) -> None:
    rng = np.random.default_rng(11)
    noise = rng.normal(0, 0.01, (64, 6)).tolist()
    inline = tools.ok(run_tool("pbo", {"returns": noise, "n_splits": 8}))
    assert 0 <= inline.pbo <= 1
    assert inline.n_strategies == 6
    assert inline.n_combinations == 70
    ragged = run_tool("pbo", {"returns": [[0.1, 0.2], [0.1], [0.0, 0.1], [0.2, 0.1]]})
    tools.bad_input(ragged, "returns")
    for signal in ("ret_5", "ret_21", "rvol_21"):
        payload = {"source": tools.SMALL, "as_of": tools.AS_OF, "strategy": {"signal": signal}}
        tools.ok(run_tool("backtest", payload))
    from_trials = tools.ok(run_tool("pbo", {"kind": "backtest", "n_splits": 4}))
    assert from_trials.n_strategies == 3
    assert from_trials.first_date is not None
    late = run_tool("pbo", {"as_of": "2016-01-04"})
    tools.refused(late, "as_of")


def test_list_trials(tools) -> None:
    listed = tools.ok(run_tool("list_trials", {}))
    assert listed.n_trials == 0
    assert listed.context.trials_remaining == 50
    tools.ok(run_tool("backtest", {"source": tools.SMALL, "as_of": tools.AS_OF}))
    listed = tools.ok(run_tool("list_trials", {"limit": 1}))
    assert listed.n_trials == 1
    assert listed.context.trials_used == 1
    assert listed.best_trial_id == listed.trials[0].trial_id
    assert tools.ok(run_tool("list_trials", {"kind": "cv"})).n_trials == 0
