"""``quantdesk tool``, ``quantdesk skill`` and ``quantdesk mcp``: the tool layer from a shell.

``quantdesk tool run NAME --input FILE|-`` reads one JSON request and prints the JSON envelope;
its exit code is 0 when the call succeeded, 1 when a guardrail refused it (or it failed at run
time) and 2 for a bad request. Coding agents follow the ``skills/*/SKILL.md`` recipes, which are
sequences of such commands. ``quantdesk tool serve`` and ``quantdesk tool daemon
start|stop|status`` run the warm tool server those calls use when it is up
(:mod:`quantdesk.cli.tool_server`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import typer

from quantdesk.cli._output import echo_markdown
from quantdesk.quant_core.errors import InputError

__all__ = ["daemon_app", "mcp_command", "skill_app", "tool_app"]

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


daemon_app = typer.Typer(
    help="The tool server in the background: start, stop, status.", no_args_is_help=True
)
tool_app.add_typer(daemon_app, name="daemon")


def _home() -> Path:
    from quantdesk.quant_core.settings import get_settings

    return get_settings().home.expanduser().resolve()


@tool_app.command("serve")
def tool_serve() -> None:
    """Serve `quantdesk tool run` calls from this process (foreground; Ctrl-C stops it).

    Listens on QUANTDESK_HOME/tool-server.sock. Calls made from another directory or with
    other QUANTDESK_* variables run in their own process, as without a server.
    """
    from quantdesk.cli.tool_server import ToolServer, server_files

    ToolServer(server_files(_home())).serve_forever()


@daemon_app.command("start")
def daemon_start_command() -> None:
    """Start the tool server in the background for this directory and environment."""
    from quantdesk.cli.tool_daemon import daemon_start

    status, started = daemon_start(_home())
    verb = "started" if started else "already running"
    click.echo(f"tool server {verb}: pid {status.pid}, socket {status.socket}")


@daemon_app.command("stop")
def daemon_stop_command() -> None:
    """Stop the tool server; remove its socket and pid files."""
    from quantdesk.cli.tool_daemon import daemon_stop

    pid = daemon_stop(_home())
    click.echo("tool server not running" if pid is None else f"tool server {pid} stopped")


@daemon_app.command("status")
def daemon_status_command() -> None:
    """Print the tool server's pid, uptime, requests served and socket (exit 1: not running)."""
    from quantdesk.cli.tool_daemon import daemon_status
    from quantdesk.cli.tool_server import server_files

    home = _home()
    status = daemon_status(home)
    if status is None:
        click.echo(f"tool server not running (socket {server_files(home).socket})")
        raise typer.Exit(1)
    click.echo(
        f"pid: {status.pid}\nuptime: {status.uptime:.1f} s\nrequests served: "
        f"{status.requests}\nsocket: {status.socket}\nworking directory: {status.cwd}"
    )


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
