"""``quantdesk filings``: download, ingest, list and search SEC filings point in time."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
import typer

from quantdesk.cli._output import echo_markdown, parse_symbols
from quantdesk.quant_core.errors import InputError

__all__ = ["filings_app"]

filings_app = typer.Typer(
    help="SEC filings: download, ingest (parse, split into Items, index), list, search.",
    no_args_is_help=True,
)

_index_opt = typer.Option(
    None, "--index", help="Index folder (default: QUANTDESK_HOME/chroma).", file_okay=False
)


def _index(path: Path | None) -> object:
    from quantdesk.rag.index import FilingIndex

    return FilingIndex(path)


@filings_app.command("download")
def download_command(
    tickers: list[str] = typer.Argument(..., help="Tickers, e.g. AAPL MSFT."),
    forms: str = typer.Option("10-K,10-Q,8-K", help="Comma-separated form types."),
    after: datetime | None = typer.Option(None, formats=["%Y-%m-%d"], help="Filed on/after."),
    before: datetime | None = typer.Option(None, formats=["%Y-%m-%d"], help="Filed on/before."),
    dest: Path = typer.Option(Path("filings"), help="Folder to download into."),
    limit: int | None = typer.Option(None, min=1, help="At most this many per ticker and form."),
) -> None:
    """Download filings from SEC EDGAR (needs QUANTDESK_SEC_COMPANY and QUANTDESK_SEC_EMAIL)."""
    from quantdesk.rag.download import download_filings

    report = download_filings(
        tickers,
        parse_symbols(forms) or [],
        after=after.date() if after else None,
        before=before.date() if before else None,
        dest=dest,
        limit=limit,
    )
    click.echo(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@filings_app.command("add")
def add_command(
    path: Path = typer.Argument(
        ..., help="Folder in the sec-edgar-downloader layout.", exists=True
    ),
    index: Path | None = _index_opt,
) -> None:
    """Parse, split into Items and index every filing under PATH (idempotent)."""
    from quantdesk.rag.acquisition import apply_source_metadata, scan_filings
    from quantdesk.rag.documents import ParseFailure
    from quantdesk.rag.parsing import parse_filing

    discovery = scan_filings(path)
    documents = []
    for source in discovery.sources:
        # the full submission carries the SGML header (acceptance time); else the document
        target = source.full_submission or source.text_path
        parsed = parse_filing(target)
        documents.append(
            parsed if isinstance(parsed, ParseFailure) else apply_source_metadata(parsed, source)
        )
    report = _index(index).add(documents)  # type: ignore[attr-defined]
    lines = [
        f"# Ingested {path}",
        "",
        f"- filings found: {len(discovery.sources)}; indexed: {report.documents}; "
        f"kept out: {len(report.failures)}",
        f"- chunks: {report.chunks} ({report.added} new, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed)",
        f"- embedded: {report.embedded} (cache hits {report.cache_hits}) in "
        f"{report.embed_seconds:.1f}s of {report.seconds:.1f}s",
    ]
    lines += [f"- not parsed: {f.source_path}: {f.reason}" for f in report.failures]
    lines += [f"- skipped: {s}" for s in discovery.skipped]
    lines += [f"- missing: {m}" for m in discovery.missing]
    echo_markdown("\n".join(lines))


@filings_app.command("list")
def list_command(
    as_of: datetime | None = typer.Option(
        None, "--as-of", formats=["%Y-%m-%d"], help="Only filings public by then."
    ),
    index: Path | None = _index_opt,
) -> None:
    """List the indexed filings with the time each became public."""
    docs = _index(index).documents(as_of=as_of.date() if as_of else None)  # type: ignore[attr-defined]
    rows = [
        "| ticker | form | fiscal | period end | public from (UTC) | doc id |",
        "|---|---|---|---|---|---|",
    ]
    rows += [
        f"| {m.ticker or '-'} | {m.form} | {m.fiscal_period or ''}{m.fiscal_year or ''} "
        f"| {m.period_end or '-'} | {m.available_at:%Y-%m-%d %H:%M}"
        f"{' (estimated)' if m.available_at_estimated else ''} | {m.doc_id} |"
        for m in docs
    ]
    echo_markdown("\n".join(rows) if docs else "No filings indexed (see `quantdesk filings add`).")


@filings_app.command("stats")
def stats_command(index: Path | None = _index_opt) -> None:
    """Size and coverage of the filings index."""
    s = _index(index).stats()  # type: ignore[attr-defined]
    echo_markdown(
        "\n".join(
            [
                f"# Filings index at {s.path}",
                "",
                f"- model: {s.model_id}",
                f"- documents: {s.documents}; chunks: {s.chunks}; vectors: {s.vectors}",
                f"- tickers: {', '.join(s.tickers) or '-'}",
                f"- forms: {', '.join(s.forms) or '-'}",
                f"- public from {s.first_available_at} to {s.last_available_at}",
            ]
        )
    )


@filings_app.command("search")
def search_command(
    query: str = typer.Argument(..., help="Question or keywords."),
    as_of: datetime = typer.Option(
        ..., "--as-of", formats=["%Y-%m-%d"], help="Decision date: nothing public later is shown."
    ),
    ticker: str | None = typer.Option(None, help="Comma-separated tickers."),
    form: str | None = typer.Option(None, help="Form type, e.g. 10-K."),
    year: int | None = typer.Option(None, "--year", help="Fiscal year."),
    item: str | None = typer.Option(None, help="Item key, e.g. 1A or 7."),
    k: int = typer.Option(5, "-k", min=1, max=100, help="Number of passages."),
    mode: str = typer.Option("hybrid", help="hybrid | dense | bm25."),
    infer: bool = typer.Option(True, help="Infer company, year and form from the question."),
    rewrite: bool = typer.Option(
        True,
        help="Search a rewritten question (instructions dropped, line items of named metrics "
        "added); --no-rewrite searches the words as typed.",
    ),
    rerank: bool | None = typer.Option(
        None,
        "--rerank/--no-rerank",
        help="Re-order the top passages with the cross-encoder QUANTDESK_RERANKER names "
        "(default: when one is set); --no-rerank keeps the fused order.",
    ),
    index: Path | None = _index_opt,
) -> None:
    """Search filings public by --as-of; every passage comes with its citation."""
    if mode not in ("hybrid", "dense", "bm25"):
        raise InputError(f"--mode {mode!r} is unknown.", fix="use hybrid, dense or bm25.")
    searched = _index(index)
    hits = searched.search(  # type: ignore[attr-defined]
        query,
        as_of=as_of.date(),
        k=k,
        mode=mode,
        ticker=parse_symbols(ticker),
        form=form,
        fiscal_year=year,
        item=item,
        infer=infer,
        rewrite=rewrite,
        rerank=rerank,
    )
    if not hits:
        if searched.stats().documents == 0:  # type: ignore[attr-defined]
            raise InputError(
                f"The filing index at {searched.path} holds no filings.",  # type: ignore[attr-defined]
                fix="ingest some first: `quantdesk filings add PATH` (a folder in the "
                "sec-edgar-downloader layout, e.g. ../shared/data/filings).",
            )
        click.echo("No passage public by that date matches.")
        return
    blocks = [f"# {len(hits)} passages for {query!r} as of {as_of:%Y-%m-%d}", ""]
    if hits[0].rerank_score is not None:
        blocks += [f"Re-ranked by {searched.reranker.model_id}.", ""]  # type: ignore[attr-defined]
    for hit in hits:
        text = " ".join(hit.text.split())
        excerpt = text[:600] + ("..." if len(text) > 600 else "")
        blocks += [f"## {hit.rank}. {hit.source}", "", excerpt, ""]
    echo_markdown("\n".join(blocks))
