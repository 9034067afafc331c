"""``quantdesk tool``, ``quantdesk skill`` and ``quantdesk mcp``: the tool layer from a shell.

``quantdesk tool run NAME --input FILE|-`` reads one JSON request and prints the JSON envelope;
its exit code is 0 when the call succeeded, 1 when a guardrail refused it (or it failed at run
time) and 2 for a bad request. Coding agents follow the ``skills/*/SKILL.md`` recipes, which are
sequences of such commands.
"""

from __future__ import annotations

import json

import click
import typer

from quantdesk.cli._output import echo_markdown
from quantdesk.quant_core.errors import InputError

__all__ = ["mcp_command", "skill_app", "tool_app"]

tool_app = typer.Typer(
    help="Guard-railed research tools: list them, show their schemas, run one (JSON in/out).",
    no_args_is_help=True,
)
skill_app = typer.Typer(help="Agent Skills for coding agents (skills/*/SKILL.md).")


@tool_app.command("list")
def tool_list(
    as_json: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List the registered tools with their guardrails."""
    from quantdesk.tools import list_tools

    specs = list_tools()
    if as_json:
        click.echo(json.dumps([spec.describe() for spec in specs], indent=2))
        return
    rows = ["| tool | what it does | guardrails | counted trial |", "|---|---|---|---|"]
    rows += [
        f"| {s.name} | {s.summary} | {', '.join(s.guardrails) or '-'} "
        f"| {'yes' if s.records_trial else 'no'} |"
        for s in specs
    ]
    echo_markdown("\n".join(rows))


@tool_app.command("schema")
def tool_schema_command(
    name: str = typer.Argument(..., help="Tool name (see `quantdesk tool list`)."),
    output: bool = typer.Option(False, "--output", help="Show the result envelope's schema."),
) -> None:
    """Print a tool's JSON schema (request by default, the envelope with --output)."""
    from quantdesk.tools import get_tool, tool_names

    spec = get_tool(name)
    if spec is None:
        raise InputError(f"Unknown tool {name!r}.", fix=f"use one of: {', '.join(tool_names())}.")
    schema = spec.output_schema() if output else spec.input_schema()
    click.echo(json.dumps(schema, indent=2))


@tool_app.command("run")
def tool_run(
    name: str = typer.Argument(..., help="Tool name (see `quantdesk tool list`)."),
    input_path: str = typer.Option(
        "-", "--input", "-i", help="JSON request file, or - for standard input."
    ),
) -> None:
    """Run a tool on a JSON request; print the JSON envelope (exit 0 ok, 1 refused, 2 bad)."""
    # The same function serves the short path of quantdesk.cli.main (no typer import).
    from quantdesk.cli.main import run_tool_command

    raise typer.Exit(run_tool_command(name, input_path))


@skill_app.command("list")
def skill_list() -> None:
    """List the Agent Skills."""
    from quantdesk.skills import list_skills

    rows = ["| skill | description |", "|---|---|"]
    rows += [f"| {s.name} | {s.description} |" for s in list_skills()]
    echo_markdown("\n".join(rows))


@skill_app.command("show")
def skill_show(name: str = typer.Argument(..., help="Skill name.")) -> None:
    """Print a skill's SKILL.md."""
    from quantdesk.skills import get_skill

    click.echo(get_skill(name).path.read_text())


def mcp_command() -> None:
    """Serve every tool over MCP on stdio (for Claude Code, Codex, Cursor, ...)."""
    from quantdesk.tools.mcp_server import serve_stdio

    serve_stdio()
