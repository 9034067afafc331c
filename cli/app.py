"""The typer application behind the ``quantdesk`` command: every command and group.

:func:`quantdesk.cli.main.main` imports this module for every command except ``quantdesk tool
run``, which it serves without typer (see :mod:`quantdesk.cli.main`). To add a command, import
it here and add one line to ``_GROUPS`` (a ``typer.Typer`` sub-application) or ``_COMMANDS``
(a function); the order of the two tables is the order of ``quantdesk --help``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from quantdesk import __version__
from quantdesk.cli.backtest_command import backtest_command
from quantdesk.cli.chat_command import chat_command
from quantdesk.cli.data_commands import data_app
from quantdesk.cli.demo_command import study
from quantdesk.cli.eval_commands import eval_app
from quantdesk.cli.filings_commands import filings_app
from quantdesk.cli.model_commands import model_app
from quantdesk.cli.research_command import demo, research_command
from quantdesk.cli.research_commands import context_app, report_command, trials_app
from quantdesk.cli.tool_commands import mcp_command, skill_app, tool_app

__all__ = ["app"]

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


_GROUPS: tuple[tuple[str, typer.Typer], ...] = (
    ("data", data_app),
    ("model", model_app),
    ("context", context_app),
    ("trials", trials_app),
    ("filings", filings_app),
    ("eval", eval_app),
    ("tool", tool_app),
    ("skill", skill_app),
)
_COMMANDS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("mcp", mcp_command),
    ("backtest", backtest_command),
    ("report", report_command),
    ("demo", demo),
    ("research", research_command),
    ("chat", chat_command),
    ("study", study),
)

for _name, _group in _GROUPS:
    app.add_typer(_group, name=_name)
for _name, _command in _COMMANDS:
    app.command(_name)(_command)
