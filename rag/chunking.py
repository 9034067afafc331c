"""Item-aware chunking: each section of a parsed document becomes overlapping word windows.

A chunk never crosses a section (Item or page) boundary, so every retrieved passage belongs to
exactly one Item and its citation names that Item. Windows are measured in whitespace words:
on the real filings one word is about 1.42 MiniLM word pieces (measured on the FinanceBench
3M 2018 10-K), so the default 180 words fill the model's 256-piece input without truncation.
A window ends at a sentence or line break when one lies in its last quarter, so chunks rarely
stop mid-sentence.

Chunk ids are stable: ``f"{doc_id}:{section_key}:{ordinal}"``, with the ordinal counted per
section key, so re-chunking the same document yields the same ids.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from quantdesk.quant_core.errors import InputError
from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section
from quantdesk.rag.filters import company_key

__all__ = [
    "Chunk",
    "ChunkingConfig",
    "chunk_document",
    "context_header",
    "epoch_seconds_ceil",
    "item_label",
]

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?:;][\"')\]]*$")

#: Metadata values Chroma accepts (``None`` values are dropped before storage).
MetadataValue = str | int | float | bool


@dataclass(frozen=True)
class ChunkingConfig:
    """How sections are cut into windows.

    Attributes:
        max_words: Target window length in whitespace words (180 words ~ 256 word pieces).
        overlap_words: Words shared by consecutive windows of one section.
        min_tail_words: A remainder shorter than this joins the previous window instead of
            becoming a tiny chunk made mostly of overlap.
        contextual_header: Prefix the indexed text (not the stored text) with a one-line
            header naming company, form, fiscal period and Item, which helps corpus-wide
            queries such as "Apple's 2023 risk factors".
    """

    max_words: int = 180
    overlap_words: int = 24
    min_tail_words: int = 40
    contextual_header: bool = True

    def __post_init__(self) -> None:
        if self.max_words < 8:
            raise InputError(
                f"max_words={self.max_words} is too small for a retrievable passage.",
                fix="use at least 8 words (the default is 180).",
            )
        if not 0 <= self.overlap_words < self.max_words // 2:
            raise InputError(
                f"overlap_words={self.overlap_words} must be in [0, max_words/2).",
                fix=f"use an overlap below {self.max_words // 2}.",
            )
        if self.min_tail_words < 0:
            raise InputError(
                f"min_tail_words={self.min_tail_words} is negative.", fix="use 0 or more."
            )


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage of one section.

    Attributes:
        chunk_id: ``f"{doc_id}:{item}:{ordinal}"``.
        item: Section key (``"1A"``, ``"I-2"``, ``"page-12"``, ``"body"``).
        item_title: Section title.
        ordinal: Position of the chunk within its section key, from 0.
        text: The passage, exactly ``document.text[start:end]``.
        start: Character offset of the passage in the document text.
        end: One past the last character of the passage in the document text.
        meta: The document's metadata.
        index_text: What is embedded and tokenised: ``text``, optionally behind a header.
    """

    chunk_id: str
    item: str
    item_title: str
    ordinal: int
    text: str
    start: int
    end: int
    meta: FilingMeta
    index_text: str

    @property
    def content_hash(self) -> str:
        """SHA-256 over the indexed text and the metadata: changes iff the stored row would."""
        payload = json.dumps(self.metadata(), sort_keys=True) + "\x00" + self.index_text
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def metadata(self) -> dict[str, MetadataValue]:
        """Flat metadata for the vector store; keys with unknown values are omitted.

        ``available_at`` is epoch seconds (UTC) rounded *up*, so an integer ``$lte`` filter
        against an as-of time rounded down can never admit a chunk early.
        """
        meta = self.meta
        values: dict[str, MetadataValue | None] = {
            "doc_id": meta.doc_id,
            "accession": meta.accession,
            "ticker": meta.ticker.upper() if meta.ticker else None,
            "cik": meta.cik,
            "company": meta.company,
            "company_key": company_key(meta.company or "") or None,
            "form": meta.form.upper(),
            "fiscal_year": meta.fiscal_year,
            "fiscal_period": meta.fiscal_period,
            "item": self.item,
            "item_title": self.item_title,
            "ordinal": self.ordinal,
            "start": self.start,
            "end": self.end,
            "available_at": epoch_seconds_ceil(meta),
            "available_at_iso": meta.available_at.isoformat(),
            "available_at_estimated": meta.available_at_estimated,
            "source_path": meta.source_path,
        }
        return {key: value for key, value in values.items() if value is not None}


def epoch_seconds_ceil(meta: FilingMeta) -> int:
    """``meta.available_at`` as UTC epoch seconds, rounded up (never earlier than the truth).

    Raises:
        InputError: ``available_at`` is naive (no time zone), so its instant is unknown.
    """
    if meta.available_at.tzinfo is None or meta.available_at.utcoffset() is None:
        raise InputError(
            f"available_at={meta.available_at.isoformat()} of {meta.doc_id} has no time zone.",
            fix="build FilingMeta with a tz-aware UTC datetime (see rag.point_in_time).",
        )
    return math.ceil(meta.available_at.timestamp())


def item_label(key: str, title: str = "") -> str:
    """How a section is named in headers and citations: ``"Item 1A"``, ``"page 12"``."""
    if key.startswith("page-"):
        return f"page {key.removeprefix('page-')}"
    if key == "body":
        return "body"
    return f"Item {key}"


def context_header(meta: FilingMeta, key: str, title: str) -> str:
    """One line naming the document and section, prepended to the indexed text."""
    who = meta.company or meta.ticker or meta.doc_id
    if meta.ticker and meta.company:
        who = f"{meta.company} ({meta.ticker.upper()})"
    when = ""
    if meta.fiscal_year is not None:
        period = meta.fiscal_period or "FY"
        when = f" FY{meta.fiscal_year}" if period == "FY" else f" {period} FY{meta.fiscal_year}"
    section = item_label(key)
    if title and not key.startswith("page-"):
        section = f"{section}. {title}"
    return f"{who} {meta.form}{when} - {section}"


def chunk_document(document: ParsedDocument, config: ChunkingConfig | None = None) -> list[Chunk]:
    """Cut every section of ``document`` into overlapping windows.

    Args:
        document: The parsed document; when it has no sections its whole text is chunked as
            one section keyed ``"body"``.
        config: Window sizes; defaults to :class:`ChunkingConfig`.

    Returns:
        Chunks in document order. Sections with no words yield none.

    Raises:
        InputError: ``available_at`` has no time zone.
    """
    epoch_seconds_ceil(document.meta)  # refuse an unknowable availability before any work
    config = config or ChunkingConfig()
    sections = document.sections or (
        Section(key="body", title="", text=document.text, start=0, end=len(document.text)),
    )
    chunks: list[Chunk] = []
    ordinals: dict[str, int] = {}
    for section in sections:
        header = context_header(document.meta, section.key, section.title)
        for start, end in _windows(section.text, config):
            ordinal = ordinals.get(section.key, 0)
            ordinals[section.key] = ordinal + 1
            text = section.text[start:end]
            chunks.append(
                Chunk(
                    chunk_id=f"{document.meta.doc_id}:{section.key}:{ordinal}",
                    item=section.key,
                    item_title=section.title,
                    ordinal=ordinal,
                    text=text,
                    start=section.start + start,
                    end=section.start + end,
                    meta=document.meta,
                    index_text=f"{header}\n{text}" if config.contextual_header else text,
                )
            )
    return chunks


def _windows(text: str, config: ChunkingConfig) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` character spans of the word windows of one section."""
    spans = [match.span() for match in _WORD.finditer(text)]
    n = len(spans)
    first = 0
    while first < n:
        last = min(first + config.max_words, n)  # exclusive word index
        if n - last < config.min_tail_words:
            last = n  # a short remainder joins this window rather than standing alone
        else:
            last = _break_point(text, spans, first, last, config.max_words)
        yield spans[first][0], spans[last - 1][1]
        if last == n:
            return
        first = max(last - config.overlap_words, first + 1)


def _break_point(text: str, spans: list[tuple[int, int]], first: int, last: int, size: int) -> int:
    """Move a window's end back to a sentence or line end within its last quarter."""
    floor = first + max(1, (3 * size) // 4)
    for candidate in range(last, floor, -1):
        word_start, word_end = spans[candidate - 1]
        if _SENTENCE_END.search(text[word_start:word_end]):
            return candidate
        if candidate < len(spans) and "\n" in text[word_end : spans[candidate][0]]:
            return candidate
    return last
