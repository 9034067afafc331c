"""The FinanceBench data: its questions and its documents as paged filings.

FinanceBench (Islam et al., "FinanceBench: A New Benchmark for Financial Question Answering",
2023) ships questions over public 10-K, 10-Q, 8-K and earnings documents, each with the
0-based page numbers of its evidence. The shared data holds the development split
(``financebench_dev.jsonl``: 62 questions citing 49 documents), the document information
(``financebench_document_information.jsonl``) and the markdown text of the 84 documents the
open-source questions cite, one page per form-feed-separated block.

Each markdown file becomes one :class:`~quantdesk.rag.documents.ParsedDocument` whose sections
are its pages (``Section(key=f"page-{n}")``, ``n`` from 0 like ``evidence_page_num``), with
company, ticker, form, fiscal year and fiscal period taken from the document information and
the document name, so the index's filter extractor can recognise them in a question.
``available_at`` is a deliberately late, estimated instant: 31 December of the year after the
document's period (every document in the set was public well before then). The evaluation
itself is :mod:`quantdesk.evals.financebench`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from quantdesk.quant_core.errors import DataError, InputError
from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section

__all__ = [
    "FINANCEBENCH_TICKERS",
    "FinanceBenchQuestion",
    "document_information",
    "load_documents",
    "load_questions",
    "page_document",
]

#: Tickers of the FinanceBench companies (the document information carries names only).
FINANCEBENCH_TICKERS: dict[str, str] = {
    "3M": "MMM",
    "Activision Blizzard": "ATVI",
    "Adobe": "ADBE",
    "AES Corporation": "AES",
    "Amazon": "AMZN",
    "Amcor": "AMCR",
    "AMD": "AMD",
    "American Express": "AXP",
    "American Water Works": "AWK",
    "Best Buy": "BBY",
    "Block": "SQ",
    "Boeing": "BA",
    "Coca-Cola": "KO",
    "Corning": "GLW",
    "Costco": "COST",
    "CVS Health": "CVS",
    "Foot Locker": "FL",
    "General Mills": "GIS",
    "Johnson & Johnson": "JNJ",
    "JPMorgan": "JPM",
    "Kraft Heinz": "KHC",
    "Lockheed Martin": "LMT",
    "MGM Resorts": "MGM",
    "Microsoft": "MSFT",
    "Netflix": "NFLX",
    "Nike": "NKE",
    "Paypal": "PYPL",
    "PepsiCo": "PEP",
    "Pfizer": "PFE",
    "Ulta Beauty": "ULTA",
    "Verizon": "VZ",
    "Walmart": "WMT",
}
_FORMS = {"10k": "10-K", "10k_annualreport": "10-K", "10q": "10-Q", "8k": "8-K"}
# Earnings releases are furnished to the SEC as exhibit 99.1 of an 8-K (Item 2.02).
_FORMS["earnings"] = "8-K"
_QUARTER = re.compile(r"_\d{4}(Q[1-4])_")
_INFO_FILE = "financebench_document_information.jsonl"
_QUESTIONS_FILE = "financebench_dev.jsonl"


@dataclass(frozen=True)
class FinanceBenchQuestion:
    """One question and where its evidence is.

    Attributes:
        question_id: ``financebench_id``.
        question: The question text.
        doc_name: The document the evidence is in (also the index ``doc_id``).
        evidence_pages: The 0-based evidence page numbers in that document.
        question_type: FinanceBench's type (``"metrics-generated"``, ...).
    """

    question_id: str
    question: str
    doc_name: str
    evidence_pages: frozenset[int]
    question_type: str


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        raise DataError(
            f"Cannot read {path}: {exc}.",
            fix="point the evaluation at the FinanceBench folder of the shared data.",
        ) from exc


def load_questions(root: Path | str) -> list[FinanceBenchQuestion]:
    """Read ``financebench_dev.jsonl``.

    Raises:
        DataError: The file is missing, malformed, or a question's evidence names another
            document than the question (the metric assumes one evidence document).
    """
    path = Path(root) / _QUESTIONS_FILE
    questions = []
    for row in _read_jsonl(path):
        evidence = row.get("evidence")
        doc_name = str(row["doc_name"])
        if not isinstance(evidence, list) or not evidence:
            raise DataError(
                f"Question {row['financebench_id']} has no evidence list.",
                fix="use the FinanceBench jsonl, whose rows carry 'evidence'.",
            )
        others = {str(e["doc_name"]) for e in evidence} - {doc_name}
        if others:
            raise DataError(
                f"Question {row['financebench_id']} has evidence in {sorted(others)} "
                f"besides {doc_name}.",
                fix="extend the metric to several evidence documents before using this file.",
            )
        questions.append(
            FinanceBenchQuestion(
                question_id=str(row["financebench_id"]),
                question=str(row["question"]),
                doc_name=doc_name,
                evidence_pages=frozenset(int(e["evidence_page_num"]) for e in evidence),
                question_type=str(row.get("question_type", "")),
            )
        )
    return questions


def document_information(root: Path | str) -> dict[str, dict[str, object]]:
    """``doc_name`` -> its row of ``financebench_document_information.jsonl``."""
    return {str(row["doc_name"]): row for row in _read_jsonl(Path(root) / _INFO_FILE)}


def page_document(path: Path | str, info: dict[str, object]) -> ParsedDocument:
    """One FinanceBench markdown file as a paged document.

    Args:
        path: ``markdown/<doc_name>.md``; pages are separated by form feeds.
        info: The document's row of the document information (company, doc_type,
            doc_period).

    Returns:
        The document with one ``page-{n}`` section per page (``n`` from 0, empty pages
        included so numbering matches ``evidence_page_num``) and ``doc_id`` = the file stem.

    Raises:
        DataError: The file cannot be read or its type is unknown.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc}.", fix="check the markdown folder.") from exc
    doc_type = str(info["doc_type"]).lower()
    if doc_type not in _FORMS:
        raise DataError(
            f"{path.stem} has doc_type={doc_type!r}, not one of {sorted(_FORMS)}.",
            fix="add the type to evals.financebench_data._FORMS.",
        )
    year = int(str(info["doc_period"]))
    quarter = _QUARTER.search(path.stem + "_")
    form = _FORMS[doc_type]
    company = str(info["company"])
    meta = FilingMeta(
        ticker=FINANCEBENCH_TICKERS.get(company),
        cik=None,
        company=company,
        form=form,
        accession=None,
        filing_date=None,
        acceptance_datetime=None,
        period_end=None,
        fiscal_year=year,
        fiscal_period=quarter.group(1) if quarter else ("FY" if form == "10-K" else None),
        # Deliberately late (every document was public by then); see the module docstring.
        available_at=datetime(year + 1, 12, 31, 23, 59, 59, tzinfo=UTC),
        available_at_estimated=True,
        source_path=str(path),
        doc_id=path.stem,
    )
    sections = []
    start = 0
    for number, page in enumerate(text.split("\f")):
        sections.append(
            Section(key=f"page-{number}", title="", text=page, start=start, end=start + len(page))
        )
        start += len(page) + 1
    return ParsedDocument(meta=meta, text=text, sections=tuple(sections))


def load_documents(root: Path | str, names: Iterable[str] | None = None) -> list[ParsedDocument]:
    """The FinanceBench markdown documents as paged documents.

    Args:
        root: The FinanceBench folder (holding ``markdown/`` and the document information).
        names: Document names to load, in this order; all 84 (sorted) when omitted.

    Raises:
        InputError: A requested document has no markdown file.
        DataError: A file cannot be read or has no document information.
    """
    root = Path(root)
    folder = root / "markdown"
    info = document_information(root)
    available = sorted(path.stem for path in folder.glob("*.md"))
    wanted: Sequence[str] = available if names is None else list(names)
    missing = sorted(set(wanted) - set(available))
    if missing:
        raise InputError(
            f"No markdown for {missing[:5]} in {folder}.",
            fix="pick document names from the markdown folder.",
        )
    documents = []
    for name in wanted:
        if name not in info:
            raise DataError(
                f"{name} has no row in {_INFO_FILE}.", fix="use the shared FinanceBench folder."
            )
        documents.append(page_document(folder / f"{name}.md", info[name]))
    return documents
