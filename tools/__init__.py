"""Guard-railed skill tools shared by the agents, the CLI and the MCP server.

One registry (:func:`list_tools`, :func:`tool_schema`) and one entry point
(:func:`run_tool`): JSON in, :class:`Envelope` out, never a traceback. Every tool validates
its request strictly, runs inside a research context and reports each guardrail it applied
(as-of, holdout, data validation, look-ahead, leakage, costs, trial budget, multiple testing).

Importing this package loads pydantic and the tool layer only; polars, numpy, LightGBM and
scikit-learn are imported when a tool runs (``check_lookahead`` and ``LookaheadReport`` are
re-exported lazily for the same reason). Design notes: ``docs/tools.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from quantdesk.tools.envelope import (
    Envelope,
    GuardrailCheck,
    Provenance,
    ToolError,
    ToolInputError,
    ToolRefusedError,
)
from quantdesk.tools.guardrails import GUARDRAILS, GuardrailRule, ToolRun
from quantdesk.tools.inputs import DataSource, DemoSource, FileSource, ToolInput
from quantdesk.tools.providers import (
    DATA_DIRS_ENV,
    DemoProvider,
    LocalFileProvider,
    PriceProvider,
    allowed_data_dirs,
    resolve_data_path,
)
from quantdesk.tools.registry import ToolSpec, get_tool, list_tools, tool_names, tool_schema
from quantdesk.tools.runner import MAX_PAYLOAD_BYTES, run_tool

if TYPE_CHECKING:
    from quantdesk.tools.lookahead import LookaheadReport, check_lookahead

__all__ = [
    "DATA_DIRS_ENV",
    "GUARDRAILS",
    "MAX_PAYLOAD_BYTES",
    "DataSource",
    "DemoProvider",
    "DemoSource",
    "Envelope",
    "FileSource",
    "GuardrailCheck",
    "GuardrailRule",
    "LocalFileProvider",
    "LookaheadReport",
    "PriceProvider",
    "Provenance",
    "ToolError",
    "ToolInput",
    "ToolInputError",
    "ToolRefusedError",
    "ToolRun",
    "ToolSpec",
    "allowed_data_dirs",
    "check_lookahead",
    "get_tool",
    "list_tools",
    "resolve_data_path",
    "run_tool",
    "tool_names",
    "tool_schema",
]

_LAZY = {"LookaheadReport": "lookahead", "check_lookahead": "lookahead"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
