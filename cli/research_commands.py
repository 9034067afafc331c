"""``quantdesk context`` and ``quantdesk trials``: research contexts, counted trials, reports."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click
import typer

from quantdesk.cli._output import echo_markdown
from quantdesk.quant_core.errors import InputError

__all__ = ["context_app", "report_command", "trials_app"]

context_app = typer.Typer(
    help="Research contexts: as-of date, locked holdout window, trial budget.",
    no_args_is_help=True,
)
trials_app = typer.Typer(help="Counted trials of a research context.", no_args_is_help=True)


def _holdout(value: str | None) -> tuple[date, date | None] | None:
    if value is None:
        return None
    start, sep, end = value.partition(":")
    try:
        first = date.fromisoformat(start.strip())
        last = date.fromisoformat(end.strip()) if sep and end.strip() else None
    except ValueError:
        raise InputError(
            f"--holdout {value!r} is not START:END with ISO dates.",
            fix="write e.g. --holdout 2019-01-01:2019-12-31 (or 2019-01-01: to run to as-of).",
        ) from None
    return first, last


@context_app.command("new")
def context_new(
    name: str = typer.Argument(..., help="Unique name of the research context."),
    as_of: datetime | None = typer.Option(
        None, "--as-of", formats=["%Y-%m-%d"], help="Decision date of the research."
    ),
    holdout: str | None = typer.Option(
        None, help="Locked holdout window START:END (ISO dates); END may be empty."
    ),
    budget: int = typer.Option(50, "--budget", min=1, help="Trial budget of the context."),
    notes: str = typer.Option("", help="Free text."),
) -> None:
    """Create a research context."""
    from quantdesk.quant_core.research_context import create_context

    ctx = create_context(
        name,
        as_of=as_of.date() if as_of else None,
        holdout=_holdout(holdout),
        trial_budget=budget,
        notes=notes,
    )
    echo_markdown(_context_markdown(ctx))


@context_app.command("show")
def context_show(name: str = typer.Argument(..., help="Context name or id.")) -> None:
    """Show a research context with its trial count and holdout evaluations."""
    from quantdesk.quant_core.research_context import get_context, holdout_evaluations

    ctx = get_context(name)
    text = _context_markdown(ctx)
    evaluations = holdout_evaluations(ctx)
    if evaluations:
        text += "\n\nHoldout evaluations:\n" + "\n".join(
            f"- {e.hypothesis!r} at {e.started_at:%Y-%m-%d %H:%M} UTC: {e.status}"
            for e in evaluations
        )
    echo_markdown(text)


@context_app.command("list")
def context_list() -> None:
    """List research contexts."""
    from quantdesk.quant_core.research_context import list_contexts
    from quantdesk.quant_core.trials import TrialRegistry

    registry = TrialRegistry()
    rows = [
        "| name | id | as of | holdout | trials / budget |",
        "|---|---|---|---|---:|",
    ]
    for ctx in list_contexts():
        rows.append(
            f"| {ctx.name} | {ctx.id} | {ctx.as_of or '-'} | {ctx.holdout_label()} "
            f"| {registry.count(ctx)} / {ctx.trial_budget} |"
        )
    echo_markdown("\n".join(rows) if len(rows) > 2 else "No research contexts yet.")


def _context_markdown(ctx: object) -> str:
    from quantdesk.quant_core.trials import TrialRegistry

    registry = TrialRegistry()
    return "\n".join(
        [
            f"# Research context {ctx.name}",  # type: ignore[attr-defined]
            "",
            f"- id: {ctx.id}",  # type: ignore[attr-defined]
            f"- as of: {ctx.as_of or 'not set'}",  # type: ignore[attr-defined]
            f"- holdout: {ctx.holdout_label()}",  # type: ignore[attr-defined]
            f"- trials: {registry.count(ctx)} of a budget of {ctx.trial_budget}",  # type: ignore[attr-defined, arg-type]
            f"- notes: {ctx.notes or '-'}",  # type: ignore[attr-defined]
        ]
    )


@trials_app.command("list")
def trials_list(
    context: str = typer.Option("default", "--context", help="Context name or id."),
) -> None:
    """List the trials of a research context with their Sharpe ratios."""
    from quantdesk.quant_core.research_context import get_context
    from quantdesk.quant_core.trials import TrialRegistry

    ctx = get_context(context)
    registry = TrialRegistry()
    records = registry.trials(ctx)
    if not records:
        click.echo(f"No trials in research context {ctx.name!r}.")
        return
    rows = [
        f"# Trials of {ctx.name} ({len(records)} of a budget of {ctx.trial_budget})",
        "",
        "| # | id | kind | created | periods x sessions | annual Sharpe | description |",
        "|---:|---|---|---|---|---:|---|",
    ]
    rows += [
        f"| {r.number} | {r.trial_id} | {r.kind} | {r.created_at:%Y-%m-%d %H:%M} "
        f"| {r.n_obs} x {r.period_sessions} | {r.sr_annualised:+.2f} | {r.description} |"
        for r in records
    ]
    echo_markdown("\n".join(rows))


def report_command(
    trial_id: str = typer.Argument(..., help="Trial id (see `quantdesk trials list`)."),
    html: Path | None = typer.Option(None, help="Also write a self-contained HTML tear sheet."),
) -> None:
    """Report on a recorded trial: performance and whether it survives deflation."""
    from quantdesk.quant_core.summary_report import BacktestReportInputs, markdown_summary
    from quantdesk.quant_core.trial_recording import dsr_in_period_units
    from quantdesk.quant_core.trials import TrialRegistry

    registry = TrialRegistry()
    trial = registry.get(trial_id)
    series = registry.returns(trial)
    trials = registry.trials(trial.context_id)
    h = trial.period_sessions
    inputs = BacktestReportInputs(
        returns=series.rename({"ret": "net"}),
        dsr=dsr_in_period_units(registry.deflated_sharpe(trial.context_id, trial), h),
        trial=trial,
        trial_sharpes=[r.sr_per_session * h**0.5 for r in trials],
        periods=max(1, round(252 / h)),
        title=f"Trial #{trial.number} ({trial.kind}): {trial.description or trial.trial_id}",
    )
    echo_markdown(markdown_summary(inputs))
    if html is not None:
        from quantdesk.quant_core.tearsheet import html_tearsheet

        html_tearsheet(inputs, html)
        click.echo(f"\nwrote the tear sheet to {html}")
