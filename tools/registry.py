"""The one tool registry read by the agents, the CLI and the MCP server.

Each tool is a typed function ``fn(inputs: <Input>, run: ToolRun) -> <Output>`` registered
with :func:`tool`, which records its name, description, input and output models, the
guardrails it enforces, whether it records a trial, and an example request. JSON schemas are
generated from the pydantic models: :func:`tool_schema` gives the request schema and the
schema of the envelope around the result.

The tool modules are imported on first use: :func:`get_tool` imports the module of the one
tool asked for (``_MODULE_OF``), :func:`list_tools` all of them. They import only pydantic and
the tool layer's own light modules; polars, numpy, LightGBM and scikit-learn are imported
inside the tool functions, when a tool runs.
"""

from __future__ import annotations

import copy
import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from quantdesk.tools.envelope import Envelope, ToolModel
from quantdesk.tools.guardrails import GUARDRAILS, ToolRun
from quantdesk.tools.inputs import ToolInput

__all__ = ["ToolSpec", "get_tool", "list_tools", "tool", "tool_names", "tool_schema"]

InputT = TypeVar("InputT", bound=ToolInput)
OutputT = TypeVar("OutputT", bound=ToolModel)
ToolFunction = Callable[[Any, ToolRun], Any]

# Modules whose import registers tools, in the order tools are listed.
_TOOL_MODULES = (
    "quantdesk.tools.data_tools",
    "quantdesk.tools.feature_tools",
    "quantdesk.tools.cv_tools",
    "quantdesk.tools.backtest_tools",
    "quantdesk.tools.holdout_tools",
    "quantdesk.tools.inference_tools",
    "quantdesk.tools.risk_tools",
    "quantdesk.tools.trial_tools",
    "quantdesk.tools.filing_tools",
)
# Where each tool is defined, so that running one tool imports one module (and builds its
# pydantic models only) instead of all of them; a test checks it against the registrations.
_MODULE_OF = {
    "fetch_prices": "quantdesk.tools.data_tools",
    "validate_data": "quantdesk.tools.data_tools",
    "compute_features": "quantdesk.tools.feature_tools",
    "make_labels": "quantdesk.tools.feature_tools",
    "walk_forward_cv": "quantdesk.tools.cv_tools",
    "backtest": "quantdesk.tools.backtest_tools",
    "evaluate_holdout": "quantdesk.tools.holdout_tools",
    "deflated_sharpe": "quantdesk.tools.inference_tools",
    "pbo": "quantdesk.tools.inference_tools",
    "risk_report": "quantdesk.tools.risk_tools",
    "list_trials": "quantdesk.tools.trial_tools",
    "search_filings": "quantdesk.tools.filing_tools",
    "get_filing_section": "quantdesk.tools.filing_tools",
}
_REGISTRY: dict[str, ToolSpec] = {}
_loaded = False


@dataclass(frozen=True)
class ToolSpec:
    """A registered tool.

    Attributes:
        name: Tool name (``snake_case``), unique.
        summary: One line: what the tool does.
        description: When to use it and what it guarantees (for a model choosing tools).
        input_model: Pydantic request model (strict, ``extra="forbid"``).
        output_model: Pydantic result model.
        function: ``fn(inputs, run) -> output``.
        guardrails: Guardrails the tool enforces (names from ``GUARDRAILS``).
        records_trial: Whether a successful call records a trial in the registry.
        reads_data: Whether the tool reads dated price data (then ``as_of`` is required).
        example: A valid example request.
    """

    name: str
    summary: str
    description: str
    input_model: type[ToolInput]
    output_model: type[ToolModel]
    function: ToolFunction = field(repr=False)
    guardrails: tuple[str, ...] = ()
    records_trial: bool = False
    reads_data: bool = True
    example: dict[str, Any] = field(default_factory=dict)

    def input_schema(self) -> dict[str, Any]:
        """JSON schema of the request (a fresh copy: the caller may change it)."""
        return copy.deepcopy(_input_schema(self.input_model))

    def output_schema(self) -> dict[str, Any]:
        """JSON schema of the envelope whose ``result`` is this tool's output."""
        return copy.deepcopy(_output_schema(self.output_model))

    def describe(self) -> dict[str, Any]:
        """Name, summary, description, guardrails and flags as plain data (no schemas)."""
        return {
            "name": self.name,
            "summary": self.summary,
            "description": self.description,
            "guardrails": list(self.guardrails),
            "records_trial": self.records_trial,
            "reads_data": self.reads_data,
        }


@functools.cache
def _input_schema(model: type[ToolInput]) -> dict[str, Any]:
    # Generating a schema walks the whole model (a few ms per tool); a research session asks
    # for every offered tool's schema each time it builds its graph.
    return model.model_json_schema()


@functools.cache
def _output_schema(model: type[ToolModel]) -> dict[str, Any]:
    return Envelope[model].model_json_schema()  # type: ignore[valid-type]


def tool(
    name: str,
    *,
    summary: str,
    description: str,
    input_model: type[InputT],
    output_model: type[OutputT],
    guardrails: tuple[str, ...] = (),
    records_trial: bool = False,
    reads_data: bool = True,
    example: dict[str, Any] | None = None,
) -> Callable[[Callable[[InputT, ToolRun], OutputT]], Callable[[InputT, ToolRun], OutputT]]:
    """Register the decorated function as tool ``name``.

    Raises:
        ValueError: a duplicate name or an unknown guardrail (programming errors).
    """
    unknown = [g for g in guardrails if g not in GUARDRAILS]
    if unknown:
        raise ValueError(f"tool {name!r} names unknown guardrail(s) {unknown}")

    def register(fn: Callable[[InputT, ToolRun], OutputT]) -> Callable[[InputT, ToolRun], OutputT]:
        if name in _REGISTRY:
            raise ValueError(f"tool {name!r} is registered twice")
        _REGISTRY[name] = ToolSpec(
            name=name,
            summary=summary,
            description=description,
            input_model=input_model,
            output_model=output_model,
            function=fn,
            guardrails=guardrails,
            records_trial=records_trial,
            reads_data=reads_data,
            example=dict(example or {}),
        )
        return fn

    return register


def _load() -> dict[str, ToolSpec]:
    global _loaded
    if not _loaded:
        for module in _TOOL_MODULES:
            importlib.import_module(module)
        _loaded = True
    return _REGISTRY


def list_tools() -> list[ToolSpec]:
    """Return every registered tool, in a stable order (data, features, CV, ...).

    The order follows ``_TOOL_MODULES`` and the definition order within each module, whatever
    order the modules happened to be imported in.
    """
    rank = {module: k for k, module in enumerate(_TOOL_MODULES)}
    specs = list(_load().values())
    return sorted(specs, key=lambda spec: rank.get(spec.function.__module__, len(rank)))


def tool_names() -> list[str]:
    """Return the names of the registered tools, in :func:`list_tools` order."""
    return [spec.name for spec in list_tools()]


def get_tool(name: str) -> ToolSpec | None:
    """Return the tool called ``name``, or ``None``.

    A built-in tool is found by importing its own module only; other names load every tool
    module (to find tools registered elsewhere, or to be sure there is none).
    """
    if not isinstance(name, str):
        return None
    if name not in _REGISTRY and name in _MODULE_OF:
        importlib.import_module(_MODULE_OF[name])
    return _REGISTRY.get(name) or _load().get(name)


def tool_schema(name: str) -> dict[str, Any]:
    """Return ``{"name", "summary", "description", "guardrails", "input", "output", "example"}``.

    Raises:
        KeyError: no tool of that name (the message lists the known ones).
    """
    spec = get_tool(name)
    if spec is None:
        raise KeyError(f"unknown tool {name!r}; known tools: {tool_names()}")
    return {
        **spec.describe(),
        "input": spec.input_schema(),
        "output": spec.output_schema(),
        "example": spec.example,
    }
