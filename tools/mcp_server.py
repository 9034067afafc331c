"""The tool registry as an MCP server (``quantdesk mcp``) for Claude Code, Codex, Cursor, ...

:func:`build_server` registers every tool of :func:`~quantdesk.tools.registry.list_tools` on
an mcp 2.x :class:`~mcp.server.mcpserver.MCPServer` with the tool's own JSON schemas: the
input schema is the tool's strict request model (``ToolSpec.input_schema()``) and the output
schema is its envelope (``ToolSpec.output_schema()``). The MCP layer does not validate the
arguments itself: the whole request goes to :func:`~quantdesk.tools.runner.run_tool`, which
validates it strictly and always answers with an envelope. So a bad request or a guardrail
refusal reaches the model as a *tool result* it can read and act on (``isError: true``, the
envelope as structured content and as JSON text, with ``error.kind``, ``error.fix`` and
every guardrail outcome), never as a protocol error.

Tool calls run one at a time in a worker thread: ``run_tool`` captures Python warnings and
switches the active research context, which are process-wide. The Agent Skills are also
served, read-only, as resources ``quantdesk://skills/<name>`` (``text/markdown``).
:func:`serve_stdio` runs the server on standard input and output.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.resources import TextResource
from mcp.server.mcpserver.tools.base import Tool
from mcp.server.mcpserver.utilities.func_metadata import ArgModelBase, FuncMetadata
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import model_validator

from quantdesk import __version__
from quantdesk.tools.registry import ToolSpec, list_tools
from quantdesk.tools.runner import run_tool

__all__ = ["SERVER_INSTRUCTIONS", "SERVER_NAME", "build_server", "mcp_tool", "serve_stdio"]

SERVER_NAME = "quantdesk"
SERVER_INSTRUCTIONS = (
    "Guard-railed quantitative research tools. Every call returns one JSON envelope: ok, "
    "result, warnings, guardrails (each with its outcome and reason), provenance (research "
    "context, as_of, data and config hashes, trial id) and error {kind, field, message, fix}. "
    "When ok is false, read error.fix and send a corrected request: kind 'bad_input' means the "
    "request was wrong, 'refused' means a guardrail said no (holdout, costs, trial budget, "
    "look-ahead, leakage), which no retry of the same request changes. Research tools need "
    "as_of (the last date whose data may be used) or a research context that sets one. Every "
    "walk_forward_cv and backtest is a counted trial of its research context, and every Sharpe "
    'comes with its deflated Sharpe ratio. Use the demo source {"kind": "demo"} to try '
    "things offline. Step-by-step recipes: the resources quantdesk://skills/<name>."
)
SKILL_URI = "quantdesk://skills/{name}"

# run_tool captures warnings and switches the active research context: process-wide state,
# so two tool calls never run at the same time.
_RUN_LOCK = threading.Lock()


class _WholeRequest(ArgModelBase):
    """Hands the arguments to ``run_tool`` untouched: validation is the tool's own, strict one.

    MCPServer validates arguments against a model built from the handler's signature; this
    one accepts any object and keeps it whole, so every problem with a request is reported
    by ``run_tool`` in an envelope (with the field and a fix) instead of as MCP text.
    """

    mcp_request: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _wrap(cls, data: Any) -> Any:
        return {"mcp_request": data if isinstance(data, dict) else {}}


def _writes_registry(spec: ToolSpec) -> bool:
    """Whether a call may record a trial or a holdout look (so not read-only, not idempotent)."""
    return (
        spec.records_trial or "trial_budget" in spec.guardrails or spec.name == "evaluate_holdout"
    )


def _description(spec: ToolSpec) -> str:
    """The tool's description for a model choosing tools: what, when, guardrails, trials."""
    parts = [spec.summary, spec.description]
    if spec.guardrails:
        parts.append("Guardrails: " + ", ".join(spec.guardrails) + ".")
    if spec.records_trial:
        parts.append("Each successful call is a counted trial of the research context.")
    if spec.example:
        parts.append("Example arguments: " + json.dumps(spec.example, separators=(",", ":")))
    return "\n\n".join(parts)


def _result(name: str, request: dict[str, Any]) -> CallToolResult:
    """Run the tool and wrap its envelope as an MCP tool result."""
    with _RUN_LOCK:
        envelope = run_tool(name, request)
    data = envelope.to_json_dict()
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(data, separators=(",", ":")))],
        structured_content=data,
        is_error=not envelope.ok,
    )


def _handler(name: str) -> Callable[..., CallToolResult]:
    def handler(mcp_request: dict[str, Any]) -> CallToolResult:
        return _result(name, mcp_request)

    handler.__name__ = name
    return handler


def mcp_tool(spec: ToolSpec) -> Tool:
    """Return the MCP tool of a registered tool, with the tool's own input and output schemas.

    Args:
        spec: A registered tool (see :func:`~quantdesk.tools.registry.list_tools`).
    """
    writes = _writes_registry(spec)
    return Tool(
        fn=_handler(spec.name),
        name=spec.name,
        title=spec.summary,
        description=_description(spec),
        parameters=spec.input_schema(),
        fn_metadata=FuncMetadata(arg_model=_WholeRequest, output_schema=spec.output_schema()),
        is_async=False,  # a synchronous handler runs in a worker thread, off the event loop
        annotations=ToolAnnotations(
            title=spec.summary,
            read_only_hint=not writes,
            destructive_hint=False,
            idempotent_hint=not writes,
            open_world_hint=False,
        ),
        meta={
            "quantdesk/guardrails": list(spec.guardrails),
            "quantdesk/records_trial": spec.records_trial,
            "quantdesk/reads_data": spec.reads_data,
        },
    )


def _skill_resources() -> list[TextResource]:
    from quantdesk.skills import list_skills

    return [
        TextResource(
            uri=SKILL_URI.format(name=skill.name),
            name=skill.name,
            title=f"Skill: {skill.name}",
            description=skill.description,
            mime_type="text/markdown",
            text=skill.text,
        )
        for skill in list_skills()
    ]


def build_server(*, skills: bool = True) -> MCPServer:
    """Return an MCP server exposing every registered tool (and the skills as resources).

    Args:
        skills: Also serve each SKILL.md as the resource ``quantdesk://skills/<name>``.
    """
    server: MCPServer = MCPServer(
        name=SERVER_NAME,
        title="quantdesk research tools",
        instructions=SERVER_INSTRUCTIONS,
        version=__version__,
        tools=[mcp_tool(spec) for spec in list_tools()],
        log_level="WARNING",
    )
    if skills:
        for resource in _skill_resources():
            server.add_resource(resource)
    return server


def serve_stdio() -> None:
    """Serve every tool over MCP on standard input and output until the client disconnects."""
    build_server().run("stdio")
