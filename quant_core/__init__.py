"""Quant core: point-in-time data, features, labels, purged CV, models and studies.

Public names are re-exported here and imported lazily (PEP 562), so that importing
``quantdesk.quant_core`` for one function does not pay for LightGBM and scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quantdesk.quant_core.corporate_actions import adjust_prices, adjustment_factors
    from quantdesk.quant_core.dataset import Dataset, make_dataset
    from quantdesk.quant_core.errors import (
        ConfigError,
        DataError,
        InputError,
        InsufficientDataError,
        NotFittedError,
        QuantdeskError,
        QuantdeskRuntimeError,
        SchemaError,
    )
    from quantdesk.quant_core.features import (
        DEFAULT_FEATURES,
        FEATURE_PATTERNS,
        compute_features,
        feature_expressions,
        price_column,
    )
    from quantdesk.quant_core.labels import LABEL_KINDS, LabelSpec, forward_return, make_labels
    from quantdesk.quant_core.loaders import load_prices
    from quantdesk.quant_core.models import ModelSpec, QuantModel
    from quantdesk.quant_core.purged_cv import (
        CombinatorialPurgedCV,
        FoldInfo,
        PurgedKFold,
        PurgedWalkForward,
        purge_mask,
    )
    from quantdesk.quant_core.schema import (
        OPTIONAL_COLUMNS,
        PRICE_COLUMNS,
        REQUIRED_COLUMNS,
        canonical_schema,
        coerce_as_of,
        require_canonical,
        require_columns,
        select_as_of,
    )
    from quantdesk.quant_core.settings import Settings, get_settings, shared_data_dir
    from quantdesk.quant_core.study import (
        SignalStudy,
        StudyConfig,
        StudyResult,
        run_walk_forward_study,
    )
    from quantdesk.quant_core.synthetic import (
        SyntheticMarket,
        SyntheticMarketConfig,
        demo_universe,
        noise_universe,
        synthetic_market,
    )
    from quantdesk.quant_core.training import TrainingResult, train_cv
    from quantdesk.quant_core.training_report import ICStats, TrainingReport
    from quantdesk.quant_core.validation import ValidationReport, validate_prices

_EXPORTS: dict[str, str] = {
    # errors
    "ConfigError": "errors",
    "DataError": "errors",
    "InputError": "errors",
    "InsufficientDataError": "errors",
    "NotFittedError": "errors",
    "QuantdeskError": "errors",
    "QuantdeskRuntimeError": "errors",
    "SchemaError": "errors",
    # canonical frame and the as-of cut
    "OPTIONAL_COLUMNS": "schema",
    "PRICE_COLUMNS": "schema",
    "REQUIRED_COLUMNS": "schema",
    "canonical_schema": "schema",
    "coerce_as_of": "schema",
    "require_canonical": "schema",
    "require_columns": "schema",
    "select_as_of": "schema",
    # settings
    "Settings": "settings",
    "get_settings": "settings",
    "shared_data_dir": "settings",
    # data
    "load_prices": "loaders",
    "adjust_prices": "corporate_actions",
    "adjustment_factors": "corporate_actions",
    "ValidationReport": "validation",
    "validate_prices": "validation",
    "SyntheticMarket": "synthetic",
    "SyntheticMarketConfig": "synthetic",
    "demo_universe": "synthetic",
    "noise_universe": "synthetic",
    "synthetic_market": "synthetic",
    # features and labels
    "DEFAULT_FEATURES": "features",
    "FEATURE_PATTERNS": "features",
    "compute_features": "features",
    "feature_expressions": "features",
    "price_column": "features",
    "LABEL_KINDS": "labels",
    "LabelSpec": "labels",
    "forward_return": "labels",
    "make_labels": "labels",
    # cross-validation
    "CombinatorialPurgedCV": "purged_cv",
    "FoldInfo": "purged_cv",
    "PurgedKFold": "purged_cv",
    "PurgedWalkForward": "purged_cv",
    "purge_mask": "purged_cv",
    # models and training
    "Dataset": "dataset",
    "make_dataset": "dataset",
    "ModelSpec": "models",
    "QuantModel": "models",
    "TrainingResult": "training",
    "train_cv": "training",
    "ICStats": "training_report",
    "TrainingReport": "training_report",
    # studies
    "SignalStudy": "study",
    "StudyConfig": "study",
    "StudyResult": "study",
    "run_walk_forward_study": "study",
}

__all__ = [
    "DEFAULT_FEATURES",
    "FEATURE_PATTERNS",
    "LABEL_KINDS",
    "OPTIONAL_COLUMNS",
    "PRICE_COLUMNS",
    "REQUIRED_COLUMNS",
    "CombinatorialPurgedCV",
    "ConfigError",
    "DataError",
    "Dataset",
    "FoldInfo",
    "ICStats",
    "InputError",
    "InsufficientDataError",
    "LabelSpec",
    "ModelSpec",
    "NotFittedError",
    "PurgedKFold",
    "PurgedWalkForward",
    "QuantModel",
    "QuantdeskError",
    "QuantdeskRuntimeError",
    "SchemaError",
    "Settings",
    "SignalStudy",
    "StudyConfig",
    "StudyResult",
    "SyntheticMarket",
    "SyntheticMarketConfig",
    "TrainingReport",
    "TrainingResult",
    "ValidationReport",
    "adjust_prices",
    "adjustment_factors",
    "canonical_schema",
    "coerce_as_of",
    "compute_features",
    "demo_universe",
    "feature_expressions",
    "forward_return",
    "get_settings",
    "load_prices",
    "make_dataset",
    "make_labels",
    "noise_universe",
    "price_column",
    "purge_mask",
    "require_canonical",
    "require_columns",
    "run_walk_forward_study",
    "select_as_of",
    "shared_data_dir",
    "synthetic_market",
    "train_cv",
    "validate_prices",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
