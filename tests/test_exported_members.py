"""Every package's ``__all__`` is exact: listed names exist, public names are listed."""

from __future__ import annotations

import importlib
import types

import pytest

import quantdesk.quant_core as qc

PACKAGES = [
    "quantdesk",
    "quantdesk.agents",
    "quantdesk.cli",
    "quantdesk.evals",
    "quantdesk.knowledge_graph",
    "quantdesk.quant_core",
    "quantdesk.rag",
    "quantdesk.skills",
    "quantdesk.tools",
]

# Pinned on purpose: changing the public API of the quant core is a deliberate act.
QUANT_CORE_API = {
    "BacktestConfig",
    "BacktestReportInputs",
    "BacktestResult",
    "CombinatorialPurgedCV",
    "ConfigError",
    "CostModel",
    "DEFAULT_FEATURES",
    "DSRResult",
    "DataError",
    "Dataset",
    "FDRResult",
    "FEATURE_PATTERNS",
    "FactorExposure",
    "FoldInfo",
    "HoldoutAlreadyEvaluatedError",
    "HoldoutEvaluation",
    "HoldoutViolationError",
    "ICStats",
    "InputError",
    "InsufficientDataError",
    "LABEL_KINDS",
    "LabelSpec",
    "MinTRLResult",
    "ModelSpec",
    "NotFittedError",
    "OPTIONAL_COLUMNS",
    "PBOResult",
    "PRICE_COLUMNS",
    "PSRResult",
    "PerformanceSummary",
    "PurgedKFold",
    "PurgedWalkForward",
    "QuantModel",
    "QuantdeskError",
    "QuantdeskRuntimeError",
    "REQUIRED_COLUMNS",
    "RecordedRun",
    "ResearchContext",
    "SampleMoments",
    "SchemaError",
    "Settings",
    "SharpeIntervalResult",
    "SignalStudy",
    "StudyConfig",
    "StudyResult",
    "SuperiorityTestResult",
    "SyntheticMarket",
    "SyntheticMarketConfig",
    "TrainingReport",
    "TrainingResult",
    "TrialBudgetExceededError",
    "TrialRecord",
    "TrialRegistry",
    "TrialStats",
    "UndefinedMetricError",
    "ValidationReport",
    "WeightSpec",
    "active_context",
    "adjust_prices",
    "adjustment_factors",
    "alpha_beta",
    "annual_volatility",
    "backtest_arrays",
    "backtest_signal",
    "benjamini_hochberg",
    "build_backtest_report",
    "cagr",
    "canonical_schema",
    "coerce_as_of",
    "compute_features",
    "conditional_value_at_risk",
    "create_context",
    "deflated_sharpe_ratio",
    "demo_universe",
    "effective_number_of_trials",
    "evaluate_holdout",
    "expected_max_sharpe",
    "factor_exposures",
    "feature_expressions",
    "forward_return",
    "get_context",
    "get_settings",
    "guard_holdout",
    "html_tearsheet",
    "list_contexts",
    "load_fama_french",
    "load_prices",
    "make_dataset",
    "make_labels",
    "markdown_summary",
    "max_drawdown",
    "min_track_record_length",
    "noise_universe",
    "outside_holdout",
    "performance_summary",
    "price_column",
    "probabilistic_sharpe_ratio",
    "probability_of_backtest_overfitting",
    "purge_mask",
    "reality_check",
    "rebalance_mask",
    "record_run",
    "require_canonical",
    "require_columns",
    "run_backtest",
    "run_walk_forward_study",
    "sample_moments",
    "scores_to_weights",
    "select_as_of",
    "shared_data_dir",
    "sharpe_confidence_interval",
    "sharpe_ratio",
    "sortino_ratio",
    "spa_test",
    "synthetic_market",
    "train_cv",
    "use_context",
    "validate_prices",
    "value_at_risk",
}


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_exist_and_public_names_are_listed(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported))
    for attr in exported:
        assert getattr(module, attr) is not None, f"{name}.{attr}"
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType)
        and attr not in {"annotations", "TYPE_CHECKING", "Any", "importlib"}
    }
    assert public <= set(exported), f"{name}: public but not in __all__: {public - set(exported)}"


def test_quant_core_api_is_pinned() -> None:
    assert set(qc.__all__) == QUANT_CORE_API


def test_quant_core_names_come_from_their_modules() -> None:
    for attr in qc.__all__:
        home = importlib.import_module(f"{qc.__name__}.{qc._EXPORTS[attr]}")
        assert getattr(qc, attr) is getattr(home, attr)


def test_unknown_name_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = qc.no_such_name
