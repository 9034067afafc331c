"""Small output helpers shared by the CLI commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from quantdesk.quant_core.errors import InputError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["echo_markdown", "parse_symbols", "write_frame"]


def echo_markdown(text: str) -> None:
    """Print a markdown report: rendered by rich on a terminal, raw otherwise (pipes, files)."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        click.echo(text)


def parse_symbols(value: str | None) -> list[str] | None:
    """Split a comma-separated ``--symbols`` value; ``None`` or empty means all symbols."""
    if value is None or not value.strip():
        return None
    symbols = [s.strip() for s in value.split(",") if s.strip()]
    return symbols or None


def write_frame(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` as parquet or CSV depending on the suffix of ``path``."""
    suffix = path.suffix.lower()
    if suffix not in {".parquet", ".csv"}:
        raise InputError(
            f"Cannot write {str(path)!r}: unknown output format {suffix or '(none)'!r}.",
            fix="give an output file ending in .parquet or .csv.",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
