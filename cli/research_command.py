"""``quantdesk research`` and ``quantdesk demo``: agent research sessions.

Researcher, critic and risk agents run as one LangGraph session.

A session is a LangGraph run checkpointed in ``QUANTDESK_HOME/sessions.sqlite``, so
``--thread ID`` resumes it after a crash or a restart without repeating a tool call. The model is
``--model`` or ``QUANTDESK_MODEL``; without either it is the offline rule-driven policy, so a
session runs with no key and no network.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import typer

from quantdesk.cli._output import echo_markdown
from quantdesk.quant_core.errors import InputError

__all__ = ["DEMO_QUESTION", "demo", "research_command"]

DEMO_QUESTION = "Is 12-1 cross-sectional momentum a real, tradable effect in the demo universe?"


def _hints(data: Path | None, as_of: datetime | None) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    if data is not None:
        hints["source"] = {"kind": "file", "path": str(data.resolve())}
    if as_of is not None:
        hints["as_of"] = as_of.date().isoformat()
    return hints


def _allow_data_folder(data: Path) -> None:
    """Let the tools read ``data`` (they refuse paths outside QUANTDESK_DATA_DIRS)."""
    from quantdesk.tools.providers import allowed_data_dirs

    folder = (data if data.is_dir() else data.parent).resolve()
    roots = allowed_data_dirs()
    if not any(folder == root or folder.is_relative_to(root) for root in roots):
        os.environ["QUANTDESK_DATA_DIRS"] = os.pathsep.join([*map(str, roots), str(folder)])


async def _run(
    question: str, *, model_id: str | None, context: str | None, thread: str, **options: Any
) -> Any:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from quantdesk.agents import get_model
    from quantdesk.agents.research import arun_research
    from quantdesk.quant_core.settings import get_settings

    home = get_settings().home
    home.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(home / "sessions.sqlite")) as saver:
        return await arun_research(
            question,
            model=get_model(model_id),
            context=context,
            thread_id=thread,
            checkpointer=saver,
            **options,
        )


def _session(
    question: str,
    *,
    data: Path | None,
    as_of: datetime | None,
    context: str | None,
    model: str | None,
    thread: str | None,
    report: Path | None,
    approve_holdout: bool | None,
) -> None:
    if data is not None:
        if not data.exists():
            raise InputError(f"--data {str(data)!r} does not exist.", fix="give a price file.")
        _allow_data_folder(data)
    hints = _hints(data, as_of)
    text = question if not hints else f"{question}\n{json.dumps(hints)}"
    thread_id = thread or uuid.uuid4().hex[:12]
    tick = time.perf_counter()
    outcome = asyncio.run(
        _run(
            text,
            model_id=model,
            context=context,
            thread=thread_id,
            approve_holdout=approve_holdout,
        )
    )
    echo_markdown(outcome.report)
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(outcome.report)
        click.echo(f"\nwrote the report to {report}")
    click.echo(
        f"\nSession {outcome.thread_id}: {outcome.status}, decision {outcome.decision}, "
        f"{len(outcome.tool_calls)} tool calls, {time.perf_counter() - tick:.1f}s. "
        f"Resume or inspect it with --thread {outcome.thread_id}."
    )
    if outcome.status == "awaiting_approval":
        click.echo("The holdout evaluation awaits approval: rerun with --approve-holdout.")


def research_command(
    question: str = typer.Argument(..., help="The research question."),
    data: Path | None = typer.Option(None, help="Price file to research (default: demo market)."),
    as_of: datetime | None = typer.Option(
        None, "--as-of", formats=["%Y-%m-%d"], help="Decision date: nothing later is read."
    ),
    context: str | None = typer.Option(None, help="Research context (name or id)."),
    model: str | None = typer.Option(
        None, help="Model id, e.g. anthropic:<model> (default: QUANTDESK_MODEL, else offline)."
    ),
    thread: str | None = typer.Option(None, help="Resume the session with this id."),
    report: Path | None = typer.Option(None, help="Also write the markdown report here."),
    approve_holdout: bool | None = typer.Option(
        None, "--approve-holdout/--deny-holdout", help="Answer a pending holdout approval."
    ),
) -> None:
    """Run (or resume) an agent research session: researcher, critic and risk agents."""
    _session(
        question,
        data=data,
        as_of=as_of,
        context=context,
        model=model,
        thread=thread,
        report=report,
        approve_holdout=approve_holdout,
    )


def demo(
    report: Path | None = typer.Option(None, help="Also write the markdown report here."),
) -> None:
    """The main job: an agent research session on the embedded defaults (no key, no network)."""
    _session(
        DEMO_QUESTION,
        data=None,
        as_of=None,
        context=None,
        model="offline",
        thread=None,
        report=report,
        approve_holdout=None,
    )
