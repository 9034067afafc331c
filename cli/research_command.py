"""``quantdesk research`` and ``quantdesk demo``: agent research sessions.

Researcher, critic and risk agents run as one LangGraph session.

A session is a LangGraph run checkpointed in ``QUANTDESK_HOME/sessions.sqlite``, so
``--thread ID`` resumes it after a crash or a restart without repeating a tool call. The model is
``--model`` or ``QUANTDESK_MODEL``; without either it is the offline rule-driven policy, so a
session runs with no key and no network.

The report is printed and written twice, as markdown and as a self-contained HTML page:
``--report PATH`` writes ``PATH.md`` and ``PATH.html`` (a ``.md`` or ``.html`` suffix on PATH is
dropped first); without it they go to ``QUANTDESK_HOME/reports/<session id>.md`` and ``.html``.

``quantdesk demo`` first adds the FICTIONAL sample filings of the demo market's companies
(:mod:`quantdesk.rag.sample_filings`) to the filing index at ``QUANTDESK_HOME/chroma``
(idempotent: a rerun embeds nothing), so its researcher searches them and its critic reports
what they say. ``quantdesk research`` searches whatever filings were ingested
(``quantdesk filings add``) and says so when there are none.

Sessions run on :mod:`quantdesk.agents.research.runtime` (one tool thread, the SQLite
checkpointer).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import typer

from quantdesk.cli._output import echo_markdown
from quantdesk.quant_core.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from quantdesk.agents.model import Model
    from quantdesk.agents.research import ResearchOutcome
    from quantdesk.agents.research.runtime import ToolThread

__all__ = ["DEMO_QUESTION", "add_sample_filings", "demo", "report_paths", "research_command"]

DEMO_QUESTION = "Is 12-1 cross-sectional momentum a real, tradable effect in the demo universe?"
_T = TypeVar("_T")


async def _run_and_close(model: Model, session: Coroutine[Any, Any, _T]) -> _T:
    """Run the session, then close the model's HTTP connections in the same event loop."""
    try:
        return await session
    finally:
        close = getattr(model, "aclose", None)
        if close is not None:
            await close()


def add_sample_filings(tools: ToolThread) -> str:
    """Add the FICTIONAL sample filings on the session's tool thread; say what happened.

    An index folder built with another embedding model is reported, and the session goes on
    without the sample filings.
    """
    from quantdesk.agents.research.runtime import ingest_demo_filings

    try:
        ingested = tools.run(ingest_demo_filings)
    except InputError as exc:
        return f"Filings: the sample filings were not added: {exc}"
    return (
        f"Filings: {ingested.documents} FICTIONAL sample filings of the demo companies "
        f"({ingested.chunks} passages, {ingested.embedded} embedded now) are in the filing index."
    )


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


def report_paths(report: Path | None, thread_id: str) -> tuple[Path, Path]:
    """Where the markdown and HTML reports go (see the module docstring)."""
    from quantdesk.quant_core.settings import get_settings

    base = report if report is not None else get_settings().home / "reports" / thread_id
    if base.suffix.lower() in {".md", ".markdown", ".html", ".htm"}:
        base = base.with_suffix("")
    return base.with_name(base.name + ".md"), base.with_name(base.name + ".html")


def _write_reports(outcome: ResearchOutcome, report: Path | None) -> None:
    from quantdesk.agents.research.report_html import render_report_html

    markdown, page = report_paths(report, outcome.thread_id)
    markdown.parent.mkdir(parents=True, exist_ok=True)
    markdown.write_text(outcome.report, encoding="utf-8")
    page.write_text(render_report_html(outcome.state), encoding="utf-8")
    click.echo(f"\nwrote the report to {markdown} and {page}")


def _hidden_filings_note(outcome: ResearchOutcome) -> str | None:
    """How many sample filings the point-in-time filter kept out of the demo session."""
    from quantdesk.rag.filters import as_of_timestamp
    from quantdesk.rag.sample_filings import sample_filings

    searched = [
        e for e in outcome.state.get("tool_log", []) if e["name"] == "search_filings" and e["ok"]
    ]
    if not searched:
        return None
    as_of = searched[-1]["envelope"]["result"]["as_of"]
    cut = as_of_timestamp(as_of)
    documents = sample_filings()
    late = [d.meta.doc_id for d in documents if d.meta.available_at.timestamp() > cut]
    return (
        f"Point in time: {len(late)} of the {len(documents)} sample filings became public after "
        f"the session's as-of {as_of} ({', '.join(late)}); no tool call could read them."
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
    sample_filings: bool = False,
) -> None:
    from quantdesk.agents import get_model
    from quantdesk.agents.research.runtime import ToolThread, arun_session

    if data is not None:
        if not data.exists():
            raise InputError(f"--data {str(data)!r} does not exist.", fix="give a price file.")
        _allow_data_folder(data)
    hints = _hints(data, as_of)
    text = question if not hints else f"{question}\n{json.dumps(hints)}"
    thread_id = thread or uuid.uuid4().hex[:12]
    researcher = get_model(model)
    tick = time.perf_counter()
    tools = ToolThread()
    try:
        if sample_filings:
            click.echo(add_sample_filings(tools))
        outcome = asyncio.run(
            _run_and_close(
                researcher,
                arun_session(
                    text,
                    model=researcher,
                    context=context,
                    thread=thread_id,
                    tool_runner=tools,
                    approve_holdout=approve_holdout,
                ),
            )
        )
    finally:
        tools.close()
    echo_markdown(outcome.report)
    if outcome.status == "complete":
        _write_reports(outcome, report)
    note = _hidden_filings_note(outcome) if sample_filings else None
    if note:
        click.echo(note)
    click.echo(
        f"\nSession {outcome.thread_id}: {outcome.status}, decision {outcome.decision}, "
        f"{len(outcome.tool_calls)} tool calls, {time.perf_counter() - tick:.1f}s. "
        f"Resume or inspect it with --thread {outcome.thread_id}."
    )
    if outcome.status == "awaiting_approval":
        click.echo("The holdout evaluation awaits approval: rerun with --approve-holdout.")


_REPORT_HELP = (
    "Write the report to PATH.md and PATH.html (default: QUANTDESK_HOME/reports/<session>)."
)


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
    report: Path | None = typer.Option(None, metavar="PATH", help=_REPORT_HELP),
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
    report: Path | None = typer.Option(None, metavar="PATH", help=_REPORT_HELP),
) -> None:
    """The main job: an agent research session on the embedded defaults (no key, no network).

    Offline model, the seeded demo market, FICTIONAL sample filings, embedded stores.
    """
    _session(
        DEMO_QUESTION,
        data=None,
        as_of=None,
        context=None,
        model="offline",
        thread=None,
        report=report,
        approve_holdout=None,
        sample_filings=True,
    )
