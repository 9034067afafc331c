"""Split the clean text of a 10-K, 10-Q or 8-K into its Items, skipping the table of contents.

Keys follow :class:`quantdesk.rag.documents.Section`: ``"1A"`` for a 10-K, ``"I-2"`` /
``"II-1A"`` for a 10-Q (part and Item), ``"2.02"`` for an 8-K.

How headings are found, on the text :mod:`quantdesk.rag.html_text` produces (paragraphs
separated by a blank line, the rows of one table by a single newline):

1. A candidate is a short line that starts with ``Item <number>`` (optionally after ``PART II``
   and punctuation), e.g. ``Item 1A. Risk Factors``, ``ITEM 7. | MANAGEMENT'S ...``,
   ``ITEM 1.BUSINESS``. ``PART I`` .. ``PART IV`` lines are part headings.
2. Table-of-contents lines are dropped: a line that ends in a page number cell
   (``Item 1A. | Risk Factors | 5``), and every candidate of a table that holds three or more
   Item candidates (tables of contents without page numbers, or with the number on its own
   line).
3. Among the rest, the longest run of candidates whose Items increase in the form's canonical
   order is kept (the latest such run when several tie), so stray cross-references that
   happen to start a line cannot reorder the document.
4. An Item runs from its heading to the next Item heading (a ``PART II`` line in between
   closes the Item before it). Non-standard headings stay inside the Item they follow, as the
   filing intends (``ITEM X. Information about our Executive Officers`` inside Item 4).
   These boundaries match the sec-parser ground truth in ``expected-top-level-sections.json``.

10-Q parts come from the nearest preceding ``PART`` heading; without one, numbering that
starts again at Item 1 after Item 2 or later opens Part II.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from quantdesk.rag.documents import Section

__all__ = [
    "FORM_8K_ITEMS",
    "FORM_10K_ITEMS",
    "FORM_10Q_ITEMS",
    "ItemBoundary",
    "find_items",
    "split_items",
    "to_sections",
]

FORM_10K_ITEMS: dict[str, str] = {
    "1": "Business",
    "1A": "Risk Factors",
    "1B": "Unresolved Staff Comments",
    "1C": "Cybersecurity",
    "2": "Properties",
    "3": "Legal Proceedings",
    "4": "Mine Safety Disclosures",
    "5": "Market for Registrant's Common Equity, Related Stockholder Matters and Issuer "
    "Purchases of Equity Securities",
    "6": "[Reserved]",
    "7": "Management's Discussion and Analysis of Financial Condition and Results of Operations",
    "7A": "Quantitative and Qualitative Disclosures About Market Risk",
    "8": "Financial Statements and Supplementary Data",
    "9": "Changes in and Disagreements with Accountants on Accounting and Financial Disclosure",
    "9A": "Controls and Procedures",
    "9B": "Other Information",
    "9C": "Disclosure Regarding Foreign Jurisdictions that Prevent Inspections",
    "10": "Directors, Executive Officers and Corporate Governance",
    "11": "Executive Compensation",
    "12": "Security Ownership of Certain Beneficial Owners and Management and Related "
    "Stockholder Matters",
    "13": "Certain Relationships and Related Transactions, and Director Independence",
    "14": "Principal Accountant Fees and Services",
    "15": "Exhibits and Financial Statement Schedules",
    "16": "Form 10-K Summary",
}
"""10-K Items in filing order with their standard titles."""

FORM_10Q_ITEMS: dict[str, str] = {
    "I-1": "Financial Statements",
    "I-2": "Management's Discussion and Analysis of Financial Condition and Results of Operations",
    "I-3": "Quantitative and Qualitative Disclosures About Market Risk",
    "I-4": "Controls and Procedures",
    "II-1": "Legal Proceedings",
    "II-1A": "Risk Factors",
    "II-2": "Unregistered Sales of Equity Securities and Use of Proceeds",
    "II-3": "Defaults Upon Senior Securities",
    "II-4": "Mine Safety Disclosures",
    "II-5": "Other Information",
    "II-6": "Exhibits",
}
"""10-Q Items (``part-item``) in filing order with their standard titles."""

FORM_8K_ITEMS: dict[str, str] = {
    "1.01": "Entry into a Material Definitive Agreement",
    "1.02": "Termination of a Material Definitive Agreement",
    "1.03": "Bankruptcy or Receivership",
    "1.04": "Mine Safety - Reporting of Shutdowns and Patterns of Violations",
    "1.05": "Material Cybersecurity Incidents",
    "2.01": "Completion of Acquisition or Disposition of Assets",
    "2.02": "Results of Operations and Financial Condition",
    "2.03": "Creation of a Direct Financial Obligation or an Obligation under an Off-Balance "
    "Sheet Arrangement of a Registrant",
    "2.04": "Triggering Events That Accelerate or Increase a Direct Financial Obligation or an "
    "Obligation under an Off-Balance Sheet Arrangement",
    "2.05": "Costs Associated with Exit or Disposal Activities",
    "2.06": "Material Impairments",
    "3.01": "Notice of Delisting or Failure to Satisfy a Continued Listing Rule or Standard; "
    "Transfer of Listing",
    "3.02": "Unregistered Sales of Equity Securities",
    "3.03": "Material Modification to Rights of Security Holders",
    "4.01": "Changes in Registrant's Certifying Accountant",
    "4.02": "Non-Reliance on Previously Issued Financial Statements or a Related Audit Report "
    "or Completed Interim Review",
    "5.01": "Changes in Control of Registrant",
    "5.02": "Departure of Directors or Certain Officers; Election of Directors; Appointment of "
    "Certain Officers; Compensatory Arrangements of Certain Officers",
    "5.03": "Amendments to Articles of Incorporation or Bylaws; Change in Fiscal Year",
    "5.04": "Temporary Suspension of Trading Under Registrant's Employee Benefit Plans",
    "5.05": "Amendment to Registrant's Code of Ethics, or Waiver of a Provision of the Code "
    "of Ethics",
    "5.06": "Change in Shell Company Status",
    "5.07": "Submission of Matters to a Vote of Security Holders",
    "5.08": "Shareholder Director Nominations",
    "6.01": "ABS Informational and Computational Material",
    "6.02": "Change of Servicer or Trustee",
    "6.03": "Change in Credit Enhancement or Other External Support",
    "6.04": "Failure to Make a Required Distribution",
    "6.05": "Securities Act Updating Disclosure",
    "7.01": "Regulation FD Disclosure",
    "8.01": "Other Events",
    "9.01": "Financial Statements and Exhibits",
}
"""8-K Items with their standard titles."""

_MAX_HEADING = 260
_SEP = r"[\s.:|\-\u2013\u2014]"
_ITEM_LINE = re.compile(
    rf"^(?:PART\s+(?P<part>IV|III|II|I)\b{_SEP}*)?ITEM\s*"
    rf"(?P<num>\d{{1,2}}\.\d{{2}}|\d{{1,2}}[A-C]?)(?={_SEP}|$)(?P<rest>.*)$",
    re.IGNORECASE,
)
_PART_LINE = re.compile(rf"^PART\s+(?P<part>IV|III|II|I)(?={_SEP}|$)(?P<rest>.{{0,60}})$", re.I)
_PAGE_CELL = re.compile(r"\|\s*(?:\d{1,3}(?:\s*[-\u2013]\s*\d{1,3})?|N/?A|Page)\s*$", re.I)
_TITLE_TRIM = re.compile(r"^[\s.:|\-\u2013\u2014]+|[\s.:|\-\u2013\u2014]+$")
_LINE = re.compile(r"[^\n]+")


@dataclass(frozen=True)
class ItemBoundary:
    """Where one Item lies in the text.

    Attributes:
        key: Section key (``"7A"``, ``"II-1A"``, ``"2.02"``).
        title: Standard title of the Item (the filing's own words when the Item is not a
            standard one).
        start: Text offset of the heading line.
        end: Text offset where the next Item heading begins (or the end of the text).
    """

    key: str
    title: str
    start: int
    end: int


@dataclass(frozen=True)
class _Candidate:
    start: int
    number: str
    part: str | None
    title: str
    toc: bool


def _form_family(form: str) -> str | None:
    base = form.strip().upper().removesuffix("/A")
    if base in {"10-K", "10-KT", "10-K405", "10-KSB"}:
        return "10-K"
    if base in {"10-Q", "10-QT", "10-QSB"}:
        return "10-Q"
    if base == "8-K":
        return "8-K"
    return None


def _scan(text: str) -> tuple[list[_Candidate], list[tuple[int, str, bool]]]:
    """Candidates and part headings, each flagged when it belongs to a table of contents."""
    items: list[_Candidate] = []
    parts: list[tuple[int, str, int]] = []  # (offset, part, table id)
    tables: list[int] = []  # table id of each item candidate
    table_id = 0
    previous_end = -2
    for match in _LINE.finditer(text):
        line = match.group(0).strip()
        # A single newline joins the rows of one table; a blank line starts a new block.
        if match.start() != previous_end + 1:
            table_id += 1
        previous_end = match.end()
        if len(line) > _MAX_HEADING or line[:1] not in "IiPp":
            continue
        item = _ITEM_LINE.match(line)
        if item:
            rest = item.group("rest")
            items.append(
                _Candidate(
                    start=match.start(),
                    number=item.group("num").upper(),
                    part=(item.group("part") or "").upper() or None,
                    title=_TITLE_TRIM.sub("", _PAGE_CELL.sub("", rest)),
                    toc=bool(_PAGE_CELL.search(line)),
                )
            )
            tables.append(table_id)
            if item.group("part"):
                parts.append((match.start(), item.group("part").upper(), table_id))
            continue
        part = _PART_LINE.match(line)
        if part:
            parts.append((match.start(), part.group("part").upper(), table_id))
    crowded = {t for t in set(tables) if tables.count(t) >= 3}
    items = [
        replace(c, toc=True) if t in crowded else c for c, t in zip(items, tables, strict=True)
    ]
    part_marks = [(offset, part, table in crowded) for offset, part, table in parts]
    return items, part_marks


def _assign_keys(
    candidates: list[_Candidate], parts: list[tuple[int, str, bool]], family: str
) -> list[tuple[_Candidate, str]]:
    if family == "8-K":
        return [(c, c.number) for c in candidates if "." in c.number]
    numbered = [c for c in candidates if "." not in c.number]
    if family == "10-K":
        return [(c, c.number) for c in numbered]
    body_parts = [(offset, part) for offset, part, toc in parts if not toc]
    keyed: list[tuple[_Candidate, str]] = []
    inferred = "I"
    highest = 0
    for candidate in numbered:
        part = candidate.part
        if part is None:
            before = [p for offset, p in body_parts if offset <= candidate.start]
            part = before[-1] if before else None
        if part is None:
            # No part heading: numbering that starts again after Item 2+ opens Part II.
            number = int(candidate.number.rstrip("ABC"))
            if inferred == "I" and highest >= 2 and number < highest:
                inferred = "II"
            highest = max(highest, number)
            part = inferred
        keyed.append((candidate, f"{part}-{candidate.number}"))
    return keyed


def _best_chain(keyed: list[tuple[_Candidate, str]], order: dict[str, int]) -> list[int]:
    """Indices of the longest run with increasing canonical rank; the latest run on ties."""
    ranks = [order.get(key, -1) for _, key in keyed]
    n = len(keyed)
    length = [0] * n
    previous = [-1] * n
    for i in range(n):
        if ranks[i] < 0:
            continue
        length[i] = 1
        for j in range(i):
            # ">=" keeps the later predecessor when chains tie, so the body beats the TOC.
            if ranks[j] >= 0 and ranks[j] < ranks[i] and length[j] + 1 >= length[i]:
                length[i], previous[i] = length[j] + 1, j
    if not n or max(length) == 0:
        return []
    best = max(range(n), key=lambda i: (length[i], i))
    chain: list[int] = []
    while best >= 0:
        chain.append(best)
        best = previous[best]
    return chain[::-1]


def find_items(text: str, form: str) -> tuple[ItemBoundary, ...]:
    """Locate the Items of a filing in its clean text.

    Args:
        text: Clean text from :func:`quantdesk.rag.html_text.html_to_text` (or any text with
            one heading per line).
        form: Form type (``"10-K"``, ``"10-Q"``, ``"8-K"``, amendments allowed). Other forms
            have no Items and give an empty result.

    Returns:
        The Items in document order; empty when none is recognised.
    """
    family = _form_family(form)
    if family is None:
        return ()
    candidates, parts = _scan(text)
    body = [c for c in candidates if not c.toc]
    keyed = _assign_keys(body, parts, family)
    if family == "10-K":
        order = {key: rank for rank, key in enumerate(FORM_10K_ITEMS)}
        titles = FORM_10K_ITEMS
    elif family == "10-Q":
        order = {key: rank for rank, key in enumerate(FORM_10Q_ITEMS)}
        titles = FORM_10Q_ITEMS
    else:
        order = {key: int(key.replace(".", "")) for _, key in keyed}
        titles = FORM_8K_ITEMS
    chosen = [keyed[i] for i in _best_chain(keyed, order)]
    stops = [c.start for c, _ in chosen]
    boundaries: list[ItemBoundary] = []
    for candidate, key in chosen:
        later = [s for s in stops if s > candidate.start]
        end = later[0] if later else len(text)
        title = titles.get(key) or candidate.title or f"Item {candidate.number}"
        boundaries.append(ItemBoundary(key=key, title=title, start=candidate.start, end=end))
    return tuple(boundaries)


def to_sections(text: str, boundaries: tuple[ItemBoundary, ...]) -> tuple[Section, ...]:
    """Turn Item boundaries into :class:`Section` records with trimmed text.

    Args:
        text: The text the boundaries point into.
        boundaries: From :func:`find_items`.

    Returns:
        One section per boundary; ``start``/``end`` exclude surrounding white space so that
        ``section.text == text[section.start:section.end]``.
    """
    sections: list[Section] = []
    for boundary in boundaries:
        body = text[boundary.start : boundary.end]
        stripped = body.rstrip()
        sections.append(
            Section(
                key=boundary.key,
                title=boundary.title,
                text=stripped,
                start=boundary.start,
                end=boundary.start + len(stripped),
            )
        )
    return tuple(sections)


def split_items(text: str, form: str) -> tuple[Section, ...]:
    """Split clean filing text into Item sections (see the module docstring).

    Args:
        text: Clean text of the main filing document.
        form: Form type.

    Returns:
        Sections in document order; empty for forms without Items or when none is found.
    """
    return to_sections(text, find_items(text, form))
