"""Guard-railed skill tools shared by the agents, the CLI and the MCP server.

One registry (:func:`list_tools`, :func:`tool_schema`) and one entry point
(:func:`run_tool`): JSON in, :class:`Envelope` out, never a traceback. Every tool validates
its request strictly, runs inside a research context and reports each guardrail it applied
(as-of, holdout, data validation, look-ahead, leakage, costs, trial budget, multiple testing).

Importing this package loads nothing: each name is imported from its module on first access,
so that ``quantdesk tool run`` pays for the modules of one call only. The tool layer needs
pydantic; polars, numpy, LightGBM and scikit-learn are imported when a tool runs. Design
notes: ``docs/tools.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantdesk.quant_core._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
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
    from quantdesk.tools.lookahead import LookaheadReport, check_lookahead
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

_MODULE_OF = {
    **dict.fromkeys(
        (
            "Envelope",
            "GuardrailCheck",
            "Provenance",
            "ToolError",
            "ToolInputError",
            "ToolRefusedError",
        ),
        "envelope",
    ),
    **dict.fromkeys(("GUARDRAILS", "GuardrailRule", "ToolRun"), "guardrails"),
    **dict.fromkeys(("DataSource", "DemoSource", "FileSource", "ToolInput"), "inputs"),
    **dict.fromkeys(("LookaheadReport", "check_lookahead"), "lookahead"),
    **dict.fromkeys(
        (
            "DATA_DIRS_ENV",
            "DemoProvider",
            "LocalFileProvider",
            "PriceProvider",
            "allowed_data_dirs",
            "resolve_data_path",
        ),
        "providers",
    ),
    **dict.fromkeys(
        ("ToolSpec", "get_tool", "list_tools", "tool_names", "tool_schema"), "registry"
    ),
    **dict.fromkeys(("MAX_PAYLOAD_BYTES", "run_tool"), "runner"),
}


__getattr__, __dir__ = _lazy_exports(globals(), _MODULE_OF)
