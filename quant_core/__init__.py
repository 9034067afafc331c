"""Quant core: point-in-time data, features, labels, purged CV and models."""

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

__all__ = [
    "OPTIONAL_COLUMNS",
    "PRICE_COLUMNS",
    "REQUIRED_COLUMNS",
    "ConfigError",
    "DataError",
    "InputError",
    "InsufficientDataError",
    "NotFittedError",
    "QuantdeskError",
    "QuantdeskRuntimeError",
    "SchemaError",
    "Settings",
    "canonical_schema",
    "coerce_as_of",
    "get_settings",
    "require_canonical",
    "require_columns",
    "select_as_of",
    "shared_data_dir",
]
