"""``quantdesk data``: load, validate, adjust and generate price data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click
import typer

from quantdesk.cli._output import echo_markdown, parse_symbols, write_frame
from quantdesk.quant_core.errors import InputError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["data_app"]

data_app = typer.Typer(help="Load, validate, adjust and generate price data.", no_args_is_help=True)

SOURCE_HELP = "A parquet or CSV file, or a folder of them (one file per symbol works too)."


def _parse_mapping(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    mapping = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise InputError(
                f"--column {pair!r} is not of the form SOURCE=CANONICAL.",
                fix="write e.g. --column 'Adj Close=adj_close'.",
            )
        mapping[src.strip()] = dst.strip()
    return mapping


def _load(
    source: Path,
    symbols: str | None,
    start: datetime | None,
    as_of: datetime | None,
    column: list[str] | None,
) -> pl.DataFrame:
    from quantdesk.quant_core.loaders import load_prices

    return load_prices(
        source,
        columns=_parse_mapping(column),
        symbols=parse_symbols(symbols),
        start=start.date() if start else None,
        as_of=as_of.date() if as_of else None,
    )


def _summary_markdown(frame: pl.DataFrame, title: str) -> str:
    import polars as pl

    per_symbol = (
        frame.group_by("symbol")
        .agg(
            pl.len().alias("rows"),
            pl.col("date").min().alias("first"),
            pl.col("date").max().alias("last"),
        )
        .sort("symbol")
    )
    lines = [
        f"# {title}",
        "",
        f"{frame.height:,} rows, {per_symbol.height} symbols, "
        f"{frame['date'].min()} to {frame['date'].max()}; columns: {', '.join(frame.columns)}",
        "",
        "| symbol | rows | first | last |",
        "|---|---:|---|---|",
    ]
    shown = per_symbol.head(30)
    lines += [f"| {s} | {n:,} | {a} | {b} |" for s, n, a, b in shown.iter_rows()]
    if per_symbol.height > shown.height:
        lines.append(f"| ... {per_symbol.height - shown.height} more | | | |")
    return "\n".join(lines)


_symbols_opt = typer.Option(None, "--symbols", help="Comma-separated symbols (default: all).")
_start_opt = typer.Option(None, "--start", formats=["%Y-%m-%d"], help="First date to keep.")
_as_of_opt = typer.Option(
    None, "--as-of", formats=["%Y-%m-%d"], help="Decision date: nothing after it is read."
)
_column_opt = typer.Option(
    None,
    "--column",
    help="Column mapping SOURCE=CANONICAL, repeatable (e.g. 'Adj Close=adj_close').",
)


@data_app.command("load")
def load_command(
    source: Path = typer.Argument(..., help=SOURCE_HELP, exists=True),
    symbols: str | None = _symbols_opt,
    start: datetime | None = _start_opt,
    as_of: datetime | None = _as_of_opt,
    column: list[str] | None = _column_opt,
    out: Path | None = typer.Option(
        None, "--out", help="Write the canonical frame (.parquet/.csv)."
    ),
) -> None:
    """Load prices into the canonical frame and print a summary."""
    frame = _load(source, symbols, start, as_of, column)
    if out is not None:
        write_frame(frame, out)
    echo_markdown(_summary_markdown(frame, f"Prices from {source}"))
    if out is not None:
        click.echo(f"\nwrote {frame.height:,} rows to {out}")


@data_app.command("validate")
def validate_command(
    source: Path = typer.Argument(..., help=SOURCE_HELP, exists=True),
    symbols: str | None = _symbols_opt,
    start: datetime | None = _start_opt,
    as_of: datetime | None = _as_of_opt,
    column: list[str] | None = _column_opt,
    max_issues: int = typer.Option(40, "--max-issues", min=0, help="Issues listed in the table."),
    out: Path | None = typer.Option(None, "--out", help="Write every issue (.parquet/.csv)."),
) -> None:
    """Check prices for vendor glitches; exit code 1 when errors are found."""
    from quantdesk.quant_core.validation import validate_prices

    frame = _load(source, symbols, start, as_of, column)
    report = validate_prices(frame)
    if out is not None:
        write_frame(report.issues, out)
    echo_markdown(report.to_markdown(max_rows=max_issues))
    if not report.ok:
        raise typer.Exit(1)


@data_app.command("adjust")
def adjust_command(
    source: Path = typer.Argument(..., help=SOURCE_HELP, exists=True),
    out: Path = typer.Option(..., "--out", help="Output file (.parquet/.csv)."),
    symbols: str | None = _symbols_opt,
    start: datetime | None = _start_opt,
    as_of: datetime | None = _as_of_opt,
    column: list[str] | None = _column_opt,
) -> None:
    """Build split- and dividend-adjusted prices from raw prices, dividends and splits."""
    from quantdesk.quant_core.corporate_actions import adjust_prices

    frame = adjust_prices(_load(source, symbols, start, as_of, column))
    write_frame(frame, out)
    echo_markdown(_summary_markdown(frame, f"Adjusted prices from {source}"))
    click.echo(f"\nwrote {frame.height:,} rows to {out}")


@data_app.command("synth")
def synth_command(
    out: Path = typer.Option(..., "--out", help="Output file (.parquet/.csv)."),
    preset: str = typer.Option("demo", help="demo (planted momentum) | noise (nothing planted)."),
    seed: int = typer.Option(7, min=0, help="Seed."),
    n_symbols: int | None = typer.Option(None, "--symbols", min=3, help="Number of symbols."),
    n_sessions: int | None = typer.Option(None, "--sessions", min=10, help="Number of sessions."),
    ic: float | None = typer.Option(None, help="Planted IC (demo preset)."),
) -> None:
    """Generate a seeded synthetic market with a documented planted effect."""
    from quantdesk.quant_core.synthetic import demo_universe, noise_universe

    overrides: dict[str, object] = {}
    if n_symbols is not None:
        overrides["n_symbols"] = n_symbols
    if n_sessions is not None:
        overrides["n_sessions"] = n_sessions
    if preset == "demo":
        if ic is not None:
            overrides["ic"] = ic
        market = demo_universe(seed=seed, **overrides)
    elif preset == "noise":
        if ic is not None:
            raise InputError("--ic cannot be set with --preset noise.", fix="drop --ic.")
        market = noise_universe(seed=seed, **overrides)
    else:
        raise InputError(f"Unknown --preset {preset!r}.", fix="use --preset demo or noise.")
    write_frame(market.prices, out)
    echo_markdown(_summary_markdown(market.prices, f"Synthetic market ({preset}, seed {seed})"))
    click.echo(f"\nwrote {market.prices.height:,} rows to {out}")
