"""Data tools: ``fetch_prices`` (what a source holds) and ``validate_data`` (is it right?)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import Field

from quantdesk.tools.envelope import ToolModel
from quantdesk.tools.guardrails import ToolRun, resolve_as_of
from quantdesk.tools.inputs import DataSource, ToolInput
from quantdesk.tools.outputs import finite
from quantdesk.tools.pipeline import load_checked_prices
from quantdesk.tools.registry import tool

__all__ = [
    "FetchPricesInput",
    "FetchPricesOutput",
    "SymbolCoverage",
    "ValidateDataInput",
    "ValidateDataOutput",
    "ValidationIssue",
    "fetch_prices",
    "validate_data",
]

_DEMO = {"kind": "demo", "seed": 7}


class FetchPricesInput(ToolInput):
    """Request of ``fetch_prices``.

    Attributes:
        source: Where the prices come from.
        preview_rows: Rows of the first symbol to include (0-50).
    """

    source: DataSource
    preview_rows: int = Field(default=5, ge=0, le=50)


class SymbolCoverage(ToolModel):
    """Rows and date range of one symbol."""

    symbol: str
    rows: int
    first_date: date
    last_date: date


class FetchPricesOutput(ToolModel):
    """What the source holds up to ``as_of``.

    Attributes:
        n_rows: Rows (one per symbol and session).
        n_symbols: Symbols.
        first_date: First date.
        last_date: Last date (the effective as_of when none was given).
        columns: Canonical columns present.
        price_column: Column features and backtests use (``adj_close`` when present).
        coverage: Per-symbol coverage (the first 100 symbols).
        preview: The first ``preview_rows`` rows.
        data_hash: Content hash of the frame (also in the provenance).
    """

    n_rows: int
    n_symbols: int
    first_date: date
    last_date: date
    columns: list[str]
    price_column: str
    coverage: list[SymbolCoverage]
    preview: list[dict[str, Any]]
    data_hash: str


@tool(
    "fetch_prices",
    summary="Load prices from a local file or the demo market and describe them.",
    description="Use first, to see which symbols and dates a data source holds. Reads "
    "parquet/CSV files under the allowed data directories or the seeded demo market; nothing "
    "dated after as_of (default: the last date in the data) and nothing inside the research "
    "context's holdout is returned.",
    input_model=FetchPricesInput,
    output_model=FetchPricesOutput,
    guardrails=("as_of", "holdout"),
    example={"source": _DEMO, "as_of": "2019-12-31", "preview_rows": 3},
)
def fetch_prices(inputs: FetchPricesInput, run: ToolRun) -> FetchPricesOutput:
    """Load the source cut at ``as_of`` and summarise it."""
    import polars as pl

    from quantdesk.quant_core.features import price_column

    # Without as_of the whole source is read and its last date becomes the call's as_of.
    as_of = resolve_as_of(run, inputs.as_of, required=False)
    frame = load_checked_prices(run, inputs.source, as_of, validate=False)
    with run.timed("work"):
        coverage = (
            frame.group_by("symbol")
            .agg(
                pl.len().alias("rows"),
                pl.col("date").min().alias("first_date"),
                pl.col("date").max().alias("last_date"),
            )
            .sort("symbol")
        )
        preview = frame.head(inputs.preview_rows).with_columns(pl.col("date").cast(pl.String))
    return FetchPricesOutput(
        n_rows=frame.height,
        n_symbols=coverage.height,
        first_date=frame["date"].min(),  # type: ignore[arg-type]
        last_date=frame["date"].max(),  # type: ignore[arg-type]
        columns=frame.columns,
        price_column=price_column(frame),
        coverage=[SymbolCoverage(**row) for row in coverage.head(100).iter_rows(named=True)],
        preview=preview.to_dicts(),
        data_hash=run.data_hash or "",
    )


class ValidateDataInput(ToolInput):
    """Request of ``validate_data``.

    Attributes:
        source: Where the prices come from.
        max_issues: Issues listed in full (0-500), errors first.
    """

    source: DataSource
    max_issues: int = Field(default=50, ge=0, le=500)


class ValidationIssue(ToolModel):
    """One finding of the validator."""

    kind: str
    severity: str
    symbol: str | None
    date: date | None
    value: float | None
    detail: str | None


class ValidateDataOutput(ToolModel):
    """Findings of the price validator.

    Attributes:
        ok: No issue of severity ``error``.
        blocks_downstream: True when errors exist: every research tool refuses this data.
        n_rows: Rows checked.
        n_symbols: Symbols checked.
        n_errors: Issues of severity ``error``.
        n_warnings: Issues of severity ``warning``.
        counts: ``{"<kind>/<severity>": count}``.
        issues: The first ``max_issues`` issues, errors first.
    """

    ok: bool
    blocks_downstream: bool
    n_rows: int
    n_symbols: int
    n_errors: int
    n_warnings: int
    counts: dict[str, int]
    issues: list[ValidationIssue]


@tool(
    "validate_data",
    summary="Check prices for broken rows, vendor glitches, unadjusted splits and gaps.",
    description="Run before research on new data. Errors (non-positive prices, bars that "
    "cannot be right, duplicated rows, island bad prints, unadjusted splits) block every "
    "downstream tool on the same data; warnings are reported and kept. Exclude bad symbols "
    "with source.symbols or repair the file.",
    input_model=ValidateDataInput,
    output_model=ValidateDataOutput,
    guardrails=("as_of", "holdout"),
    example={"source": _DEMO, "as_of": "2019-12-31"},
)
def validate_data(inputs: ValidateDataInput, run: ToolRun) -> ValidateDataOutput:
    """Validate the source's prices up to ``as_of`` and list the findings."""
    from quantdesk.quant_core.validation import validate_prices

    as_of = resolve_as_of(run, inputs.as_of)
    frame = load_checked_prices(run, inputs.source, as_of, validate=False)
    with run.timed("work"):
        report = validate_prices(frame)
    if not report.ok:
        run.warn(
            f"{report.errors.height} validation error(s): research tools will refuse this data "
            "until it is repaired or the symbols are excluded."
        )
    counts = {f"{k}/{s}": int(n) for k, s, n in report.summary().iter_rows()}
    return ValidateDataOutput(
        ok=report.ok,
        blocks_downstream=not report.ok,
        n_rows=report.n_rows,
        n_symbols=report.n_symbols,
        n_errors=report.errors.height,
        n_warnings=report.warnings.height,
        counts=counts,
        issues=[
            ValidationIssue(**{**row, "value": finite(row["value"])})
            for row in report.issues.head(inputs.max_issues).to_dicts()
        ],
    )
