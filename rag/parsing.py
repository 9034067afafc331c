"""Parse filings on disk into :class:`~quantdesk.rag.documents.ParsedDocument` records.

Two kinds of input, as sec-edgar-downloader writes them and as the shared data holds them:

* ``full-submission.txt``: the EDGAR SGML submission. Metadata comes from its header (form,
  CIK, company, period of report, filing date, acceptance time); the text from the primary
  document, followed by any ``EX-99`` exhibits (press releases, which carry the substance of
  most 8-Ks) as sections of their own. Binary and XBRL documents are skipped.
* an HTML or inline-XBRL primary document (``primary-document.html`` or a loose file): the
  metadata comes from its ``dei`` facts.

What the document states wins; :class:`FilingHints` (from the folder layout or a manifest)
fills the gaps, except the ticker, where the caller's choice wins because ``dei:TradingSymbol``
names only the first of several share classes. ``available_at`` comes from
:func:`quantdesk.rag.point_in_time.available_at`.

Sections are the Items (:mod:`quantdesk.rag.items`), preceded by a ``"cover"`` section with
the text before Item 1 (registrant, shares outstanding, table of contents) and followed by the
``EX-99`` exhibits of a submission, keyed by their type (``"EX-99.1"``).

A file that cannot be parsed gives a :class:`~quantdesk.rag.documents.ParseFailure` with the
reason; :func:`parse_folder` records it and goes on with the rest of the batch.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import NamedTuple

from quantdesk.quant_core.errors import InputError, QuantdeskError
from quantdesk.rag.documents import FilingMeta, ParsedDocument, ParseFailure, Section
from quantdesk.rag.html_text import html_to_text
from quantdesk.rag.items import find_items, to_sections
from quantdesk.rag.point_in_time import available_at, normalize_form
from quantdesk.rag.sgml import SgmlSubmission, is_sgml_submission, main_document, parse_submission

__all__ = [
    "COVER_KEY",
    "FilingHints",
    "ParseBatch",
    "hints_from_path",
    "item_source_lengths",
    "parse_filing",
    "parse_folder",
]

COVER_KEY = "cover"
"""Section key of the text before the first Item (cover page and table of contents)."""

_ACCESSION = re.compile(r"^\d{10}-\d{2}-\d{6}$")
_FISCAL_PERIODS = frozenset({"FY", "Q1", "Q2", "Q3", "Q4", "H1", "H2"})
_MONTH_NAMES = ("january", "february", "march", "april", "may", "june", "july", "august")
_MONTH_NAMES += ("september", "october", "november", "december")
_MONTHS = {name[:3]: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_MONTHS |= {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_MONTHS["sept"] = 9
_MONTH_DAY = re.compile(r"^([A-Za-z]+)\.?\s+(\d{1,2})(?:\s*,?\s*(\d{4}))?$")
_SUFFIXES = (".htm", ".html", ".xhtml")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*")
_SGML_MARK = re.compile(r"^</?[A-Z][A-Z0-9\-]*>$")


@dataclass(frozen=True)
class FilingHints:
    """What the caller already knows about a file (folder layout, manifest row).

    Every field is optional; see the module docstring for how hints and the document's own
    statements combine.
    """

    ticker: str | None = None
    form: str | None = None
    accession: str | None = None
    cik: str | None = None
    company: str | None = None
    filing_date: date | None = None
    acceptance_datetime: datetime | None = None
    period_end: date | None = None
    fiscal_year: int | None = None
    fiscal_period: str | None = None


class ParseBatch(NamedTuple):
    """Result of :func:`parse_folder`.

    Attributes:
        documents: Parsed documents, in path order.
        failures: Files that could not be parsed, with the reason, in path order.
    """

    documents: list[ParsedDocument]
    failures: list[ParseFailure]


def hints_from_path(path: str | Path) -> FilingHints:
    """Ticker, form and accession from sec-edgar-downloader's folder layout.

    ``<TICKER>/<FORM>/<ACCESSION>/full-submission.txt`` gives all three; any other layout
    gives no hints.

    Args:
        path: Path of a filing file.
    """
    parts = Path(path).parts
    if len(parts) >= 4 and _ACCESSION.match(parts[-2]):
        return FilingHints(ticker=parts[-4].upper(), form=parts[-3], accession=parts[-2])
    return FilingHints()


def _merge(primary: FilingHints, fallback: FilingHints) -> FilingHints:
    """Fields of ``primary``, with gaps filled from ``fallback``."""
    values = {
        name: getattr(primary, name) if getattr(primary, name) is not None else value
        for name, value in fallback.__dict__.items()
    }
    return FilingHints(**values)


def _dei_date(value: str | None, text_head: str, fiscal_year: int | None) -> date | None:
    """A ``dei:DocumentPeriodEndDate`` such as ``"September 28, 2024"`` or ``"December 31"``.

    Many filers tag only month and day (the year sits in a separate fact); the year is then
    taken from the cover page (``... ended December 31, 2023``), else the fiscal year focus.
    """
    if not value:
        return None
    text = value.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    match = _MONTH_DAY.match(text)
    month = _MONTHS.get(match.group(1).lower()) if match else None
    if match is None or month is None:
        return None
    day = int(match.group(2))
    year_text = match.group(3)
    if year_text is None:
        cover = re.search(
            rf"{re.escape(match.group(1))}\.?\s+{day}\s*,\s*(\d{{4}})", text_head, re.I
        )
        year_text = cover.group(1) if cover else None
    year = int(year_text) if year_text else fiscal_year
    if year is None:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _plain_text(body: str) -> str:
    """Tidy a plain-text document: trimmed lines, single spaces, single blank lines.

    SGML markers left in old text filings (``<PAGE>``, ``<S>``, ``<C>``) are dropped.
    """
    lines = [_SPACES.sub(" ", line).strip() for line in body.replace("\r", "").split("\n")]
    lines = [line for line in lines if not _SGML_MARK.match(line)]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _document_text(body: str, is_html: bool) -> tuple[str, dict[str, str]]:
    if is_html:
        converted = html_to_text(body)
        return converted.text, converted.dei
    return _plain_text(body), {}


def _from_dei(dei: dict[str, str], text: str) -> FilingHints:
    year_text = dei.get("dei:DocumentFiscalYearFocus", "")
    fiscal_year = int(year_text) if year_text.isdigit() else None
    period = (dei.get("dei:DocumentFiscalPeriodFocus") or "").upper()
    cik = re.sub(r"\D", "", dei.get("dei:EntityCentralIndexKey", ""))
    end = _dei_date(dei.get("dei:DocumentPeriodEndDate"), text[:20000], fiscal_year)
    form = dei.get("dei:DocumentType")
    if form and dei.get("dei:AmendmentFlag", "").lower() == "true" and not form.endswith("/A"):
        form += "/A"
    return FilingHints(
        ticker=(dei.get("dei:TradingSymbol") or "").upper() or None,
        form=form,
        cik=cik.zfill(10) if cik else None,
        company=dei.get("dei:EntityRegistrantName"),
        period_end=end,
        fiscal_year=fiscal_year,
        fiscal_period=period if period in _FISCAL_PERIODS else None,
    )


def _from_submission(submission: SgmlSubmission) -> FilingHints:
    header = submission.header
    return FilingHints(
        form=header.form,
        accession=header.accession,
        cik=header.cik,
        company=header.company,
        filing_date=header.filed_as_of,
        acceptance_datetime=header.acceptance_datetime,
        period_end=header.period_of_report,
    )


def _with_cover(text: str, sections: tuple[Section, ...]) -> tuple[Section, ...]:
    """Keep the text before the first Item (cover page: registrant, shares outstanding)."""
    if not sections:
        return sections
    cover = text[: sections[0].start].rstrip()
    if not cover.strip():
        return sections
    start = len(cover) - len(cover.lstrip())
    return (Section(COVER_KEY, "Cover Page", cover[start:], start, len(cover)), *sections)


def _exhibit_sections(submission: SgmlSubmission, offset: int) -> tuple[str, list[Section]]:
    """``EX-99`` exhibits as extra sections appended after the main document's text."""
    pieces: list[str] = []
    sections: list[Section] = []
    position = offset
    for document in submission.documents:
        if not (document.type.startswith("EX-99") and document.has_text):
            continue
        body, _ = _document_text(document.body, document.is_html)
        if not body:
            continue
        title = document.description or document.type
        block = f"Exhibit {document.type.removeprefix('EX-')}: {title}\n\n{body}"
        position += 2  # the blank line that joins it to what came before
        sections.append(Section(document.type, title, block, position, position + len(block)))
        pieces.append(block)
        position += len(block)
    return "".join(f"\n\n{p}" for p in pieces), sections


def _build(
    path: Path, raw: bytes, text: str, sections: tuple[Section, ...], facts: FilingHints
) -> ParsedDocument:
    if not facts.form:
        raise InputError(
            f"{path}: the form type is unknown (no SGML header, no dei:DocumentType, no "
            "<TICKER>/<FORM>/<ACCESSION> folder layout).",
            fix="pass FilingHints(form=...) or use the sec-edgar-downloader folder layout.",
        )
    form = normalize_form(facts.form)
    when = available_at(
        form=form,
        acceptance_datetime=facts.acceptance_datetime,
        filing_date=facts.filing_date,
        period_end=facts.period_end,
    )
    meta = FilingMeta(
        ticker=facts.ticker,
        cik=facts.cik,
        company=facts.company,
        form=form,
        accession=facts.accession,
        filing_date=facts.filing_date,
        acceptance_datetime=facts.acceptance_datetime,
        period_end=facts.period_end,
        fiscal_year=facts.fiscal_year,
        fiscal_period=facts.fiscal_period,
        available_at=when.at,
        available_at_estimated=when.estimated,
        source_path=str(path),
        doc_id=facts.accession or hashlib.sha256(raw).hexdigest()[:16],
    )
    return ParsedDocument(meta=meta, text=text, sections=sections)


def _parse(path: Path, hints: FilingHints) -> ParsedDocument:
    raw = path.read_bytes()
    if not raw.strip():
        raise InputError(f"{path}: the file is empty.", fix="re-download the filing.")
    source = raw.decode("utf-8", errors="replace")
    caller = _merge(hints, hints_from_path(path))
    if is_sgml_submission(source):
        submission = parse_submission(source)
        document = main_document(submission)
        text, dei = _document_text(document.body, document.is_html)
        stated = _merge(_from_submission(submission), _from_dei(dei, text))
    elif path.suffix.lower() in _SUFFIXES or "<html" in source[:5000].lower():
        submission = None
        text, dei = _document_text(source, True)
        stated = _from_dei(dei, text)
    else:
        raise InputError(
            f"{path}: neither an EDGAR submission nor an HTML document.",
            fix="pass full-submission.txt or an .htm/.html primary document.",
        )
    if not text.strip():
        raise InputError(f"{path}: the document holds no text.", fix="check the download.")
    facts = _merge(stated, caller)
    if caller.ticker:
        facts = replace(facts, ticker=caller.ticker.upper())
    sections = _with_cover(text, to_sections(text, find_items(text, facts.form or "")))
    if submission is not None:
        extra_text, extra = _exhibit_sections(submission, len(text))
        text += extra_text
        sections += tuple(extra)
    return _build(path, raw, text, sections, facts)


def parse_filing(
    path: str | Path, hints: FilingHints | None = None
) -> ParsedDocument | ParseFailure:
    """Parse one filing file.

    Args:
        path: A ``full-submission.txt`` or an HTML / inline-XBRL document.
        hints: Facts the caller knows (manifest row); the folder layout adds ticker, form and
            accession when it is sec-edgar-downloader's.

    Returns:
        The parsed document, or a :class:`ParseFailure` saying why it could not be parsed
        (unreadable or empty file, unknown format or form, no way to tell when it became
        public).
    """
    file = Path(path)
    try:
        return _parse(file, hints or FilingHints())
    except (OSError, QuantdeskError) as exc:
        return ParseFailure(source_path=str(file), reason=str(exc))


def _filing_files(folder: Path) -> list[Path]:
    """Filing files under ``folder``: one per accession folder, plus loose HTML documents."""
    chosen: list[Path] = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = file.name.lower()
        if name == "full-submission.txt":
            chosen.append(file)
        elif file.suffix.lower() in _SUFFIXES:
            # The submission already holds the primary document; read it once.
            if not (file.parent / "full-submission.txt").exists():
                chosen.append(file)
        elif file.suffix.lower() == ".txt":
            with file.open("r", encoding="utf-8", errors="replace") as handle:
                if is_sgml_submission(handle.read(400)):
                    chosen.append(file)
    return chosen


def parse_folder(path: str | Path) -> ParseBatch:
    """Parse every filing under a folder; one bad file never stops the batch.

    Reads ``full-submission.txt`` files, ``.htm``/``.html`` documents (skipping a
    ``primary-document.html`` whose ``full-submission.txt`` sits next to it) and other
    ``.txt`` files that are EDGAR submissions. Licences, JSON and CSV files are ignored.

    Args:
        path: Folder to walk recursively.

    Returns:
        ``(documents, failures)``.

    Raises:
        InputError: ``path`` is not a folder.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder.", fix="pass a folder of filings.")
    documents: list[ParsedDocument] = []
    failures: list[ParseFailure] = []
    for file in _filing_files(folder):
        try:
            result = parse_filing(file)
        except Exception as exc:  # recorded as a failure with its reason, never dropped
            result = ParseFailure(str(file), f"unexpected {type(exc).__name__}: {exc}")
        if isinstance(result, ParseFailure):
            failures.append(result)
        else:
            documents.append(result)
    return ParseBatch(documents, failures)


def item_source_lengths(html: str, form: str) -> dict[str, int]:
    """Length of each Item in HTML source characters, heading element to next heading element.

    This is the unit of the ``expected-top-level-sections.json`` ground truth (produced with
    the sec-parser project), so a test can compare Item boundaries with it directly.

    Args:
        html: The HTML source of the primary document.
        form: Form type.

    Returns:
        Item key to source length, in document order.
    """
    converted = html_to_text(html)
    return {
        b.key: converted.source_offset(b.end) - converted.source_offset(b.start)
        for b in find_items(converted.text, form)
    }
