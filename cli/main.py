"""Entry point of the ``quantdesk`` command.

The CLI is thin: it parses arguments, calls the library and prints. A caller's mistake
(:class:`~quantdesk.quant_core.errors.InputError`) becomes one line on stderr and exit code 2;
a runtime failure becomes one line and exit code 1. Neither shows a traceback (set
``QUANTDESK_DEBUG=1`` to see one).
"""

from __future__ import annotations

import os
import sys

import click
import typer

from quantdesk import __version__
from quantdesk.cli.backtest_command import backtest_command
from quantdesk.cli.data_commands import data_app
from quantdesk.cli.demo_command import study
from quantdesk.cli.eval_commands import eval_app
from quantdesk.cli.filings_commands import filings_app
from quantdesk.cli.model_commands import model_app
from quantdesk.cli.research_command import demo, research_command
from quantdesk.cli.research_commands import context_app, report_command, trials_app
from quantdesk.cli.tool_commands import mcp_command, skill_app, tool_app
from quantdesk.quant_core.errors import InputError, QuantdeskError, QuantdeskRuntimeError

__all__ = ["app", "main"]

app = typer.Typer(
    name="quantdesk",
    help="Research assistant for quantitative trading: point-in-time data, purged CV, "
    "counted trials.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"quantdesk {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        help="Print the version and exit.",
        callback=_version_callback,
        is_eager=True,
    ),
) -> None:
    """Research assistant for quantitative trading research."""


app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(context_app, name="context")
app.add_typer(trials_app, name="trials")
app.add_typer(filings_app, name="filings")
app.add_typer(eval_app, name="eval")
app.add_typer(tool_app, name="tool")
app.add_typer(skill_app, name="skill")
app.command("mcp")(mcp_command)
app.command("backtest")(backtest_command)
app.command("report")(report_command)
app.command("demo")(demo)
app.command("research")(research_command)
app.command("study")(study)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; map quantdesk errors to one line and an exit code."""
    debug = os.environ.get("QUANTDESK_DEBUG", "") not in ("", "0")
    try:
        app(args=argv, prog_name="quantdesk", standalone_mode=True)
    except InputError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except QuantdeskRuntimeError as exc:
        if debug:
            raise
        hint = " (retrying may help)" if exc.retryable else ""
        click.echo(f"error: {exc}{hint}", err=True)
        sys.exit(1)
    except QuantdeskError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
