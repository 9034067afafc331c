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
    "CombinatorialPurgedCV", "ConfigError", "DEFAULT_FEATURES", "DataError", "Dataset",
    "FEATURE_PATTERNS", "FoldInfo", "ICStats", "InputError", "InsufficientDataError",
    "LABEL_KINDS", "LabelSpec", "ModelSpec", "NotFittedError", "OPTIONAL_COLUMNS",
    "PRICE_COLUMNS", "PurgedKFold", "PurgedWalkForward", "QuantModel", "QuantdeskError",
    "QuantdeskRuntimeError", "REQUIRED_COLUMNS", "SchemaError", "Settings", "SignalStudy",
    "StudyConfig", "StudyResult", "SyntheticMarket", "SyntheticMarketConfig", "TrainingReport",
    "TrainingResult", "ValidationReport", "adjust_prices", "adjustment_factors",
    "canonical_schema", "coerce_as_of", "compute_features", "demo_universe",
    "feature_expressions", "forward_return", "get_settings", "load_prices", "make_dataset",
    "make_labels", "noise_universe", "price_column", "purge_mask", "require_canonical",
    "require_columns", "run_walk_forward_study", "select_as_of", "shared_data_dir",
    "synthetic_market", "train_cv", "validate_prices",
}  # fmt: skip


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
