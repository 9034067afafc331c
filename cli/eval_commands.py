"""``quantdesk eval``: evaluation suites (retrieval on FinanceBench, more to come)."""

from __future__ import annotations

import click
import typer

from quantdesk.cli._output import echo_markdown

__all__ = ["eval_app"]

eval_app = typer.Typer(help="Evaluation suites on the real data in QUANTDESK_SHARED_DATA.")


@eval_app.command("financebench")
def financebench_command(
    documents: str = typer.Option(
        "all",
        help="all (the 84 documents: ~42k chunks, about 50 min to embed the first "
        "time on 2 cores, cached after) or cited (only the documents the questions cite).",
    ),
    max_questions: int | None = typer.Option(None, min=1, help="Score only the first N."),
    rewrite: bool = typer.Option(
        True,
        help="Let the index rewrite each question (instructions dropped, line items of named "
        "metrics added); --no-rewrite scores the raw questions.",
    ),
) -> None:
    """Page recall@k and MRR of dense, BM25 and hybrid retrieval on FinanceBench (dev set)."""
    from quantdesk.evals.financebench import run_financebench
    from quantdesk.quant_core.errors import InputError

    if documents not in ("all", "cited"):
        raise InputError(f"--documents {documents!r} is unknown.", fix="use all or cited.")
    report = run_financebench(
        documents=documents,  # type: ignore[arg-type]
        max_questions=max_questions,
        rewrite=rewrite,
        progress=lambda line: click.echo(line, err=True),
    )
    echo_markdown(report.to_markdown())
