"""A filings manifest: one CSV row per filing, with the metadata the files themselves lack.

Loose primary documents (``second_year/<ticker>/<form>/<ticker>-<form>-<YYYY-MM-DD>.html``)
carry no SGML header, and inline-XBRL primary documents carry no filing date, so the manifest
(``filings/manifest.csv`` in the shared data) supplies ticker, form, accession, filing date,
period end, fiscal year and period, registrant and CIK where known. Required columns are
``ticker`` and ``form``; the rest may be absent or blank.

Period ends are written as the ``dei:DocumentPeriodEndDate`` fact reads: ``"June 28, 2025"``,
``"20191107"``, and sometimes without a year (``"December 31"``, ``"MAY 31"``). A year-less
period end is completed from the fiscal year (see :func:`parse_period_end`), choosing the later
candidate whenever the evidence does not rule it out, so that an estimated ``available_at``
never comes out early.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from quantdesk.quant_core.errors import DataError, InputError, SchemaError
from quantdesk.rag.point_in_time import (
    Availability,
    available_at,
    normalize_form,
    parse_filing_date,
)

__all__ = [
    "ACCESSION_PATTERN",
    "Manifest",
    "ManifestRow",
    "accession_year",
    "filing_date_from_name",
    "load_manifest",
    "parse_period_end",
]

ACCESSION_PATTERN = re.compile(r"^\d{10}-\d{2}-\d{6}$")
"""EDGAR accession number: filer id, two-digit year, sequence (``0000320193-24-000123``)."""

_REQUIRED_COLUMNS = ("ticker", "form")
_NAME_DATE = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
_PERIOD_FORMATS = ("%B %d, %Y", "%B %d %Y", "%b %d, %Y", "%b %d %Y", "%Y%m%d", "%Y-%m-%d")
_YEARLESS_FORMATS = ("%B %d", "%b %d")


@dataclass(frozen=True)
class ManifestRow:
    """One filing described by a manifest.

    Attributes:
        ticker: Trading symbol, upper case.
        form: Form type in EDGAR spelling (``"10-K"``, ``"10-Q/A"``).
        accession: Accession number, when known.
        filing_date: EDGAR filing date, when known.
        path: The document's path as written in the manifest, relative to its folder.
        period_end: Period of report, resolved to a full date when possible.
        period_end_text: The period end exactly as written.
        fiscal_year: Fiscal year (``dei:DocumentFiscalYearFocus``), when known.
        fiscal_period: ``"FY"`` or ``"Q1"``..``"Q4"``, when known.
        registrant: Company name as filed, when known.
        cik: Central Index Key, 10-digit zero-padded, when known.
        source: Where the document came from, when recorded.
    """

    ticker: str
    form: str
    accession: str | None
    filing_date: date | None
    path: str | None
    period_end: date | None
    period_end_text: str | None
    fiscal_year: int | None
    fiscal_period: str | None
    registrant: str | None
    cik: str | None
    source: str | None

    def availability(self) -> Availability:
        """When the filing became public: the filing date, else a conservative estimate.

        Raises:
            InputError: Neither a filing date nor a period end the rules can bound is known.
        """
        return available_at(
            form=self.form, filing_date=self.filing_date, period_end=self.period_end
        )


@dataclass(frozen=True)
class Manifest:
    """The rows of a manifest and the folder their paths are relative to.

    Attributes:
        root: Folder holding the manifest; row paths resolve against it.
        rows: One row per filing, in file order.
    """

    root: Path
    rows: tuple[ManifestRow, ...]

    def by_accession(self, accession: str) -> ManifestRow | None:
        """The row with this accession number, or ``None``.

        Args:
            accession: ``"0000320193-24-000123"``.
        """
        return next((row for row in self.rows if row.accession == accession), None)

    def by_path(self, path: Path | str) -> ManifestRow | None:
        """The row whose ``path`` names this file, or ``None``.

        Args:
            path: An absolute path, or one relative to the working directory.
        """
        target = Path(path).resolve()
        return next(
            (row for row in self.rows if row.path and (self.root / row.path).resolve() == target),
            None,
        )

    def find(self, ticker: str, form: str, filing_date: date) -> ManifestRow | None:
        """The row for ``ticker``'s ``form`` filed on ``filing_date``, or ``None``.

        Args:
            ticker: Symbol in any case.
            form: Form type in any spelling :func:`normalize_form` accepts.
            filing_date: The filing date, e.g. from a file name.
        """
        key = (ticker.upper(), normalize_form(form), filing_date)
        return next(
            (row for row in self.rows if (row.ticker, row.form, row.filing_date) == key), None
        )


def accession_year(accession: str) -> int:
    """The calendar year in which EDGAR assigned an accession number.

    Args:
        accession: ``"0000320193-24-000123"`` (EDGAR began in 1993, so ``93``-``99`` are 19xx).

    Raises:
        InputError: ``accession`` is not an accession number.
    """
    if not ACCESSION_PATTERN.match(accession):
        raise InputError(
            f"{accession!r} is not an accession number.",
            fix="use the EDGAR form 0000320193-24-000123.",
        )
    two_digits = int(accession[11:13])
    return 1900 + two_digits if two_digits >= 93 else 2000 + two_digits


def filing_date_from_name(name: str) -> date | None:
    """The filing date a file name carries (``aapl-10-q-2025-08-01.html``), or ``None``.

    Args:
        name: A file name; the last ``YYYY-MM-DD`` or ``YYYYMMDD`` in it is used.
    """
    for match in reversed(list(_NAME_DATE.finditer(name))):
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            continue  # eight digits that are not a date (an id): try an earlier match
    return None


def parse_period_end(
    text: str | None, fiscal_year: int | None, *, filed_by: date | None = None
) -> date | None:
    """A period end as written in a manifest, completed to a full date.

    A year-less period end (``"December 31"``) lies in the fiscal year or the calendar year
    after it (retailers label the year ending in January by either year). The later candidate
    is taken unless it is ruled out by ``filed_by``: the period must end before the filing.
    Without ``filed_by``, a month-day in January-March takes the later year (where the two
    labelling habits differ) and any other month-day takes the fiscal year.

    Args:
        text: The period end, e.g. ``"June 28, 2025"``, ``"20191107"``, ``"MAY 31"``.
        fiscal_year: Fiscal year, used only when ``text`` has no year.
        filed_by: A date the filing was made on or before (its filing date, or 31 December
            of its accession year).

    Returns:
        The date, or ``None`` when ``text`` is blank, or has no year and no fiscal year is
        known.

    Raises:
        DataError: ``text`` is not a recognisable date.
    """
    if text is None or not text.strip():
        return None
    cleaned = " ".join(text.replace(",", ", ").split()).replace(" ,", ",").title()
    for fmt in _PERIOD_FORMATS:
        try:
            return datetime.strptime(cleaned, fmt).date()
        except ValueError:
            continue
    for fmt in _YEARLESS_FORMATS:
        try:
            month_day = datetime.strptime(f"{cleaned} 2000", f"{fmt} %Y").date()
        except ValueError:
            continue
        if fiscal_year is None:
            return None
        candidates = [_with_year(month_day, fiscal_year), _with_year(month_day, fiscal_year + 1)]
        if filed_by is not None:
            possible = [day for day in candidates if day < filed_by]
            return max(possible) if possible else candidates[0]
        return candidates[1] if month_day.month <= 3 else candidates[0]
    raise DataError(
        f"Period end {text!r} is not a date.",
        fix="write it as 'June 28, 2025', 'December 31' (with a fiscal_year), or YYYYMMDD.",
    )


def _with_year(month_day: date, year: int) -> date:
    """``month_day`` in ``year``; 29 February becomes 28 February outside leap years."""
    try:
        return month_day.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _row_from_record(record: dict[str, str | None], line: int) -> ManifestRow:
    """Type one CSV record; ``line`` makes errors point at the offending row."""
    ticker = _blank_to_none(record.get("ticker"))
    form = _blank_to_none(record.get("form")) or _blank_to_none(record.get("doc_type"))
    if ticker is None or form is None:
        raise DataError(
            f"Manifest line {line} has no ticker or form: {record!r}.",
            fix="fill the 'ticker' and 'form' columns of every row.",
        )
    accession = _blank_to_none(record.get("accession"))
    if accession is not None and not ACCESSION_PATTERN.match(accession):
        raise DataError(
            f"Manifest line {line}: accession {accession!r} is not an accession number.",
            fix="use the EDGAR form 0000320193-24-000123, or leave it blank.",
        )
    try:
        filing_text = _blank_to_none(record.get("filing_date"))
        filing_date = parse_filing_date(filing_text) if filing_text else None
        year_text = _blank_to_none(record.get("fiscal_year"))
        fiscal_year = int(year_text) if year_text else None
    except (InputError, ValueError) as exc:
        raise DataError(
            f"Manifest line {line}: bad filing_date or fiscal_year ({exc}).",
            fix="write filing_date as YYYY-MM-DD or YYYYMMDD and fiscal_year as a year.",
        ) from exc
    filed_by = filing_date
    if filed_by is None and accession is not None:
        filed_by = date(accession_year(accession), 12, 31)
    period_text = _blank_to_none(record.get("period_end"))
    cik = _blank_to_none(record.get("cik"))
    return ManifestRow(
        ticker=ticker.upper(),
        form=normalize_form(form),
        accession=accession,
        filing_date=filing_date,
        path=_blank_to_none(record.get("path")),
        period_end=parse_period_end(period_text, fiscal_year, filed_by=filed_by),
        period_end_text=period_text,
        fiscal_year=fiscal_year,
        fiscal_period=_blank_to_none(record.get("fiscal_period")),
        registrant=_blank_to_none(record.get("registrant")),
        cik=cik.zfill(10) if cik and cik.isdigit() else cik,
        source=_blank_to_none(record.get("source")),
    )


def load_manifest(path: Path | str) -> Manifest:
    """Read a filings manifest CSV into typed rows.

    Args:
        path: The CSV file, or a folder holding ``manifest.csv``.

    Returns:
        The manifest; row paths resolve against the CSV's folder.

    Raises:
        InputError: The file does not exist.
        SchemaError: The ``ticker`` or ``form`` column is missing.
        DataError: A row has an unreadable value (the message names the line).
    """
    csv_path = Path(path)
    if csv_path.is_dir():
        csv_path = csv_path / "manifest.csv"
    if not csv_path.is_file():
        raise InputError(
            f"Filings manifest {str(csv_path)!r} does not exist.",
            fix="pass the manifest CSV (columns ticker, form, accession, filing_date, path, "
            "period_end, fiscal_year, fiscal_period, registrant, cik).",
        )
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise SchemaError(
                f"Manifest {str(csv_path)!r} lacks column(s) {missing}; it has {sorted(columns)}.",
                fix="add a header row with at least 'ticker' and 'form'.",
            )
        # Line 1 is the header, so the first record is on line 2.
        rows = tuple(_row_from_record(record, line) for line, record in enumerate(reader, 2))
    return Manifest(root=csv_path.parent.resolve(), rows=rows)
