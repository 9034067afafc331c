"""EDGAR ``full-submission.txt`` files: the SGML header and the documents inside.

A submission is one text file::

    <SEC-DOCUMENT>0001193125-19-292676.txt : 20191115
    <SEC-HEADER>0001193125-19-292676.hdr.sgml : 20191115
    <ACCEPTANCE-DATETIME>20191115060224
    ACCESSION NUMBER:           0001193125-19-292676
    CONFORMED SUBMISSION TYPE:  8-K
    CONFORMED PERIOD OF REPORT: 20191107
    FILED AS OF DATE:           20191115
    ...     COMPANY CONFORMED NAME: Apple Inc.
    ...     CENTRAL INDEX KEY:      0000320193
    </SEC-HEADER>
    <DOCUMENT>
    <TYPE>8-K
    <SEQUENCE>1
    <FILENAME>d828969d8k.htm
    <TEXT>
    ... the HTML (or plain text) of the document ...
    </TEXT>
    </DOCUMENT>
    <DOCUMENT> ... exhibits, XBRL, uuencoded images and archives ... </DOCUMENT>

The header's times are US/Eastern; the acceptance time is returned in UTC. Uuencoded
documents (images, PDFs, zip archives) are marked so callers skip them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from quantdesk.quant_core.errors import DataError
from quantdesk.rag.point_in_time import parse_acceptance_datetime, parse_filing_date

__all__ = [
    "SgmlDocument",
    "SgmlHeader",
    "SgmlSubmission",
    "is_sgml_submission",
    "main_document",
    "parse_submission",
]

_HEADER_FIELD = re.compile(r"^[ \t]*([A-Z][A-Z0-9 \-/&().]*?):[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_TAG_LINE = re.compile(r"^<([A-Z][A-Z0-9\-]*)>[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_HTML_TAG = re.compile(r"<(?:html|body|div|p|table|font|br)\b[^>]*>", re.IGNORECASE)
_UUENCODE = re.compile(r"^begin [0-7]{3} \S", re.MULTILINE)
_NON_TEXT_TYPES = ("GRAPHIC", "ZIP", "EXCEL", "PDF", "XML", "JSON", "EX-101")
_SGML_MARKERS = ("<SEC-DOCUMENT>", "<SEC-HEADER>", "<IMS-HEADER>", "<DOCUMENT>")


@dataclass(frozen=True)
class SgmlHeader:
    """The facts the EDGAR header states about a submission.

    Attributes:
        accession: ``ACCESSION NUMBER``.
        form: ``CONFORMED SUBMISSION TYPE`` (else the first ``FORM TYPE``).
        cik: First filer's ``CENTRAL INDEX KEY``, 10 digits.
        company: First filer's ``COMPANY CONFORMED NAME``.
        period_of_report: ``CONFORMED PERIOD OF REPORT``.
        filed_as_of: ``FILED AS OF DATE``.
        acceptance_datetime: ``<ACCEPTANCE-DATETIME>`` in UTC.
        items: ``ITEM INFORMATION`` lines (8-K item descriptions), in order.
    """

    accession: str | None
    form: str | None
    cik: str | None
    company: str | None
    period_of_report: date | None
    filed_as_of: date | None
    acceptance_datetime: datetime | None
    items: tuple[str, ...]


@dataclass(frozen=True)
class SgmlDocument:
    """One ``<DOCUMENT>`` of a submission.

    Attributes:
        type: ``<TYPE>``, e.g. ``"10-K"``, ``"EX-99.1"``, ``"GRAPHIC"``.
        sequence: ``<SEQUENCE>`` number, when given.
        filename: ``<FILENAME>``, when given.
        description: ``<DESCRIPTION>``, when given.
        body: The content between ``<TEXT>`` and ``</TEXT>`` (``<XBRL>``/``<PDF>`` wrappers
            removed).
        uuencoded: True for binary payloads (images, PDFs, archives) that carry no text.
    """

    type: str
    sequence: int | None
    filename: str | None
    description: str | None
    body: str
    uuencoded: bool

    @property
    def is_html(self) -> bool:
        """Whether the body is HTML (or inline XBRL) rather than plain text."""
        return bool(_HTML_TAG.search(self.body[:5000]))

    @property
    def has_text(self) -> bool:
        """Whether the document can be read as text (not binary, not an XBRL/data file)."""
        kind = self.type.upper()
        return not self.uuencoded and not kind.startswith(_NON_TEXT_TYPES) and bool(self.body)


@dataclass(frozen=True)
class SgmlSubmission:
    """A parsed ``full-submission.txt``.

    Attributes:
        header: The header facts.
        documents: Every document, in file order.
    """

    header: SgmlHeader
    documents: tuple[SgmlDocument, ...]


def is_sgml_submission(text: str) -> bool:
    """Whether ``text`` looks like an EDGAR SGML submission (rather than a bare HTML file).

    Args:
        text: The start of a file (a few hundred characters suffice).
    """
    head = text.lstrip()[:200].upper()
    return head.startswith(_SGML_MARKERS)


def _cik(value: str | None) -> str | None:
    digits = re.sub(r"\D", "", value or "")
    return digits.zfill(10) if digits else None


def _date_or_none(value: str | None) -> date | None:
    if not value:
        return None
    return parse_filing_date(value)


def _parse_header(text: str) -> SgmlHeader:
    fields: dict[str, list[str]] = {}
    for match in _HEADER_FIELD.finditer(text):
        key, value = match.group(1).strip(), match.group(2)
        if value:
            fields.setdefault(key, []).append(value)
    tags = {m.group(1): m.group(2) for m in _TAG_LINE.finditer(text) if m.group(2)}

    def first(*keys: str) -> str | None:
        for key in keys:
            if fields.get(key):
                return fields[key][0]
        return None

    acceptance = tags.get("ACCEPTANCE-DATETIME")
    return SgmlHeader(
        accession=first("ACCESSION NUMBER") or tags.get("ACCESSION-NUMBER"),
        form=first("CONFORMED SUBMISSION TYPE", "FORM TYPE") or tags.get("TYPE"),
        cik=_cik(first("CENTRAL INDEX KEY") or tags.get("CIK")),
        company=first("COMPANY CONFORMED NAME") or tags.get("CONFORMED-NAME"),
        period_of_report=_date_or_none(first("CONFORMED PERIOD OF REPORT") or tags.get("PERIOD")),
        filed_as_of=_date_or_none(first("FILED AS OF DATE") or tags.get("FILING-DATE")),
        acceptance_datetime=parse_acceptance_datetime(acceptance) if acceptance else None,
        items=tuple(fields.get("ITEM INFORMATION", [])),
    )


def _strip_wrapper(body: str, tag: str) -> str:
    stripped = body.strip()
    opening, closing = f"<{tag}>", f"</{tag}>"
    if stripped[: len(opening)].upper() == opening:
        stripped = stripped[len(opening) :]
        end = stripped.upper().rfind(closing)
        if end >= 0:
            stripped = stripped[:end]
    return stripped


def _parse_document(chunk: str) -> SgmlDocument:
    text_start = chunk.find("<TEXT>")
    meta_part = chunk if text_start < 0 else chunk[:text_start]
    meta = {m.group(1): m.group(2) for m in _TAG_LINE.finditer(meta_part)}
    if text_start < 0:
        body = ""
    else:
        body_start = text_start + len("<TEXT>")
        text_end = chunk.rfind("</TEXT>")
        body = chunk[body_start : text_end if text_end > body_start else len(chunk)]
    for wrapper in ("XBRL", "XML", "PDF"):
        body = _strip_wrapper(body, wrapper)
    sequence = meta.get("SEQUENCE", "")
    return SgmlDocument(
        type=(meta.get("TYPE") or "").strip().upper(),
        sequence=int(sequence) if sequence.isdigit() else None,
        filename=meta.get("FILENAME") or None,
        description=meta.get("DESCRIPTION") or None,
        body=body.strip("\r\n"),
        uuencoded=bool(_UUENCODE.search(body[:1000])),
    )


def parse_submission(text: str) -> SgmlSubmission:
    """Parse the header and split the documents of an EDGAR submission.

    Args:
        text: The whole ``full-submission.txt``.

    Returns:
        The header facts and every document.

    Raises:
        DataError: The text is not an EDGAR submission (no header and no ``<DOCUMENT>``).
    """
    if not is_sgml_submission(text):
        raise DataError(
            "Not an EDGAR SGML submission: it does not start with <SEC-DOCUMENT>, "
            "<SEC-HEADER> or <DOCUMENT>.",
            fix="pass a full-submission.txt from EDGAR, or parse HTML files as HTML.",
        )
    first_document = text.find("<DOCUMENT>")
    header_end = text.find("</SEC-HEADER>")
    if header_end < 0 or (0 <= first_document < header_end):
        header_end = first_document if first_document >= 0 else len(text)
    header = _parse_header(text[:header_end])
    documents: list[SgmlDocument] = []
    position = first_document
    while position >= 0:
        end = text.find("</DOCUMENT>", position)
        stop = len(text) if end < 0 else end
        documents.append(_parse_document(text[position + len("<DOCUMENT>") : stop]))
        position = text.find("<DOCUMENT>", stop)
    return SgmlSubmission(header=header, documents=tuple(documents))


def main_document(submission: SgmlSubmission) -> SgmlDocument:
    """The primary document: the one whose type is the submission's form.

    Falls back to sequence 1, then to the first document that carries text.

    Args:
        submission: From :func:`parse_submission`.

    Returns:
        The primary document.

    Raises:
        DataError: The submission holds no readable document.
    """
    readable = [d for d in submission.documents if d.has_text]
    form = (submission.header.form or "").upper()
    for rule in (
        lambda d: bool(form) and d.type == form,
        lambda d: d.sequence == 1,
        lambda d: True,
    ):
        chosen = next((d for d in readable if rule(d)), None)
        if chosen is not None:
            return chosen
    raise DataError(
        f"The submission {submission.header.accession or '(no accession)'} holds no readable "
        f"document ({len(submission.documents)} documents, all binary or empty).",
        fix="check that the download completed; re-download the filing.",
    )
