"""The shared records that flow from parsing through chunking into the index.

Every module of :mod:`quantdesk.rag` speaks in these four frozen dataclasses:

* :class:`FilingMeta`: what a filing says about itself (SGML header or inline-XBRL ``dei``
  facts), plus when it became public (``available_at``, always a tz-aware UTC datetime).
* :class:`Section`: one Item of a filing (``"1A"``, ``"I-2"``, ``"2.02"``) or one page of a
  generic paged document (``"page-12"``), with character offsets into the full text.
* :class:`ParsedDocument`: the clean full text of a document and its sections.
* :class:`ParseFailure`: a document that could not be parsed and why; a batch keeps going.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

__all__ = ["FilingMeta", "ParseFailure", "ParsedDocument", "Section"]


@dataclass(frozen=True)
class FilingMeta:
    """What is known about one filing or document.

    Attributes:
        ticker: Trading symbol, when known (``dei:TradingSymbol`` or the download folder).
        cik: Central Index Key as a 10-digit zero-padded string, when known.
        company: Registrant name as filed, when known.
        form: Form type as filed: ``"10-K"``, ``"10-Q"``, ``"8-K"``; amendments keep the suffix
            (``"10-K/A"``).
        accession: Accession number ``"0000320193-24-000123"``, when known.
        filing_date: The date EDGAR records as the filing date, when known.
        acceptance_datetime: EDGAR acceptance time as a tz-aware UTC datetime (EDGAR stamps
            US/Eastern local time; it is converted), when known.
        period_end: Period of report (fiscal period end), when known.
        fiscal_year: Fiscal year the document reports on, when known.
        fiscal_period: ``"FY"`` or ``"Q1"``..``"Q4"``, when known.
        available_at: Earliest time the document was public, tz-aware UTC (see
            :mod:`quantdesk.rag.point_in_time`).
        available_at_estimated: True when ``available_at`` is a conservative estimate rather
            than the acceptance time or filing date.
        source_path: The file the document was read from.
        doc_id: Stable identifier: the accession when known, else a content-hash prefix.
    """

    ticker: str | None
    cik: str | None
    company: str | None
    form: str
    accession: str | None
    filing_date: date | None
    acceptance_datetime: datetime | None
    period_end: date | None
    fiscal_year: int | None
    fiscal_period: str | None
    available_at: datetime
    available_at_estimated: bool
    source_path: str
    doc_id: str


@dataclass(frozen=True)
class Section:
    """One Item (or page) of a document.

    Attributes:
        key: ``"1A"`` or ``"7"`` (10-K), ``"I-2"`` / ``"II-1A"`` (10-Q part and Item),
            ``"2.02"`` (8-K), or ``"page-12"`` for paged documents.
        title: Human-readable title, e.g. ``"Risk Factors"``.
        text: The section text; equal to ``document.text[start:end]``.
        start: Offset of the first character in :attr:`ParsedDocument.text`.
        end: Offset one past the last character in :attr:`ParsedDocument.text`.
    """

    key: str
    title: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class ParsedDocument:
    """A parsed document: metadata, clean text and its sections.

    Attributes:
        meta: What the document says about itself and when it became public.
        text: The clean full text (tables rendered as ``cell | cell`` rows).
        sections: Sections in document order. May be empty; the index then treats ``text``
            as one section named ``"body"``.
    """

    meta: FilingMeta
    text: str
    sections: tuple[Section, ...]


@dataclass(frozen=True)
class ParseFailure:
    """A document that could not be parsed.

    Attributes:
        source_path: The file that failed.
        reason: Why, in one line a person can act on.
    """

    source_path: str
    reason: str
