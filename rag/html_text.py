"""Inline-XBRL / HTML filing documents to clean text, with ``dei`` facts and source offsets.

The converter walks the document once with the standard-library :class:`html.parser.HTMLParser`
(no third-party dependency; about 20 MB/s on EDGAR documents). It produces:

* clean text: one paragraph per block element, paragraphs separated by a blank line, runs of
  white space (including non-breaking spaces) collapsed;
* tables as readable rows, ``cell | cell | cell``, one row per line. Financial tables put the
  currency sign and closing parenthesis / percent sign in cells of their own; they are glued back
  onto the number (``$ | 391,035`` becomes ``$391,035``) so rows read naturally;
* hidden content (``display:none``, which is where the inline-XBRL ``ix:header`` lives),
  ``<head>``, ``<script>`` and ``<style>`` dropped from the text, but ``dei`` facts are read
  wherever they sit (several live only in the hidden header);
* for every text block, the offset of the HTML element that starts it. Item splitting works on
  the text; the offsets let a caller measure an Item in source characters, which is how the
  ``expected-top-level-sections.json`` ground truth counts (see :mod:`quantdesk.rag.items`).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from html.parser import HTMLParser

__all__ = ["DEI_FACTS", "HtmlText", "html_to_text"]

DEI_FACTS: tuple[str, ...] = (
    "dei:AmendmentFlag",
    "dei:DocumentType",
    "dei:DocumentPeriodEndDate",
    "dei:DocumentFiscalYearFocus",
    "dei:DocumentFiscalPeriodFocus",
    "dei:EntityCentralIndexKey",
    "dei:EntityRegistrantName",
    "dei:TradingSymbol",
)
_DEI_LOWER = {name.lower(): name for name in DEI_FACTS}

_BLOCK_TAGS = frozenset(
    {"address", "article", "aside", "blockquote", "body", "caption", "center", "dd", "div"}
    | {"dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4"}
    | {"h5", "h6", "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section"}
    | {"tbody", "thead", "tfoot", "ul"}
)
_VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param"}
    | {"source", "track", "wbr"}
)
_SKIP_TAGS = frozenset({"head", "script", "style", "title", "noscript"})
_CELL_TAGS = frozenset({"td", "th"})
_ROW_TAGS = frozenset({"tr", "td", "th"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none", re.IGNORECASE)
_SPACE_RUN = re.compile(r"[\s\u00a0\u200b\u2009\u202f]+")
_PREFIX_CELLS = frozenset({"$", "€", "£", "¥", "US$", "(", "$("})
_SUFFIX_CELLS = frozenset({")", "%", ")%", "%)", "pts", "bps", "x"})


@dataclass(frozen=True)
class HtmlText:
    """Clean text of one HTML document and where each block came from.

    Attributes:
        text: The clean text.
        block_starts: Offset in :attr:`text` where each block (paragraph or table row) begins,
            ascending.
        block_sources: For each block, the offset in the HTML source of the element that opens
            it (the outermost element opened since the previous element closed).
        source_length: Length of the HTML source.
        dei: First value of each fact in :data:`DEI_FACTS` found in the document, keyed by the
            fact name (``"dei:DocumentType"``); absent facts are missing.
    """

    text: str
    block_starts: tuple[int, ...]
    block_sources: tuple[int, ...]
    source_length: int
    dei: dict[str, str]

    def source_offset(self, text_offset: int) -> int:
        """Map a text offset to the source offset of the block that contains it.

        Args:
            text_offset: Offset into :attr:`text`; ``len(text)`` maps to the source length.

        Returns:
            The HTML source offset of the block opening at or before ``text_offset``.
        """
        if text_offset >= len(self.text):
            return self.source_length
        index = bisect.bisect_right(self.block_starts, text_offset) - 1
        return self.block_sources[index] if index >= 0 else 0


def _clean(fragment: str) -> str:
    return _SPACE_RUN.sub(" ", fragment).strip()


def _render_row(cells: list[str]) -> str:
    merged: list[str] = []
    carry = ""
    for raw in cells:
        cell = _clean(raw)
        if not cell:
            continue
        if cell in _PREFIX_CELLS:
            carry += cell
            continue
        if cell in _SUFFIX_CELLS and merged and not carry:
            merged[-1] += cell
            continue
        merged.append(carry + cell)
        carry = ""
    if carry:
        merged.append(carry)
    return " | ".join(merged)


class _Converter(HTMLParser):
    """One pass over the document; see :func:`html_to_text`."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self._line_starts = [0]
        self._line_starts.extend(m.end() for m in re.finditer("\n", source))
        self._stack: list[tuple[str, bool, int]] = []  # (tag, hides its content, offset)
        self._hidden = 0
        self._last_text = -1  # source offset of the latest visible text
        self._parts: list[str] = []
        self._part_source = -1
        self.blocks: list[tuple[str, int, bool]] = []  # (text, source offset, is table row)
        self._table_depth = 0
        self._rows: list[tuple[list[str], int]] = []
        self._row: list[str] | None = None
        self._row_source = -1
        self._cell: list[str] | None = None
        self._captures: list[tuple[str, str, list[str]]] = []  # (tag, dei name, text parts)
        self.dei: dict[str, str] = {}

    def _offset(self) -> int:
        line, column = self.getpos()
        return self._line_starts[line - 1] + column

    def _block_source(self, here: int) -> int:
        """Offset of the outermost open element that holds no text before this point.

        That element is the one a structural parser sees as the start of the block: the
        heading ``<div>`` around an ``Item 7.`` span, or the ``<table>`` around a heading
        laid out as a table.
        """
        source = here
        for _, _, offset in reversed(self._stack):
            if offset <= self._last_text:
                break
            source = offset
        return source

    def _flush(self) -> None:
        if self._parts:
            text = _clean("".join(self._parts))
            if text:
                self.blocks.append((text, self._part_source, False))
        self._parts = []
        self._part_source = -1

    def _flush_table(self) -> None:
        self._end_row()
        for cells, source in self._rows:
            line = _render_row(cells)
            if line:
                self.blocks.append((line, source, True))
        self._rows = []

    def _end_cell(self) -> None:
        if self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell))
        self._cell = None

    def _end_row(self) -> None:
        self._end_cell()
        if self._row is not None:
            self._rows.append((self._row, self._row_source))
        self._row = None
        self._row_source = -1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, attrs, void=tag in _VOID_TAGS)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._open(tag, attrs, void=True)
        if self._captures and self._captures[-1][0] == tag:
            self._end_capture()

    def _open(self, tag: str, attrs: list[tuple[str, str | None]], *, void: bool) -> None:
        if tag.startswith("ix:"):
            name = next((value for key, value in attrs if key == "name"), None)
            if name and name.lower() in _DEI_LOWER:
                self._captures.append((tag, _DEI_LOWER[name.lower()], []))
        if void:
            if (tag in _BLOCK_TAGS or tag in {"br", "hr"}) and not self._hidden:
                self._boundary()
            return
        hides = tag in _SKIP_TAGS or any(
            key == "style" and value and _HIDDEN_STYLE.search(value) for key, value in attrs
        )
        self._stack.append((tag, hides, self._offset()))
        if hides:
            self._hidden += 1
        if self._hidden:
            return
        if tag == "table":
            if self._table_depth == 0:
                self._flush()
                self._rows = []
            self._table_depth += 1
        elif self._table_depth == 1 and tag == "tr":
            self._end_row()
            self._row = []
        elif self._table_depth == 1 and tag in _CELL_TAGS:
            self._end_cell()
            if self._row is None:
                self._row = []
            self._cell = []
        elif tag in _BLOCK_TAGS or (self._table_depth > 1 and tag in _ROW_TAGS):
            self._boundary()

    def _boundary(self) -> None:
        if self._table_depth:
            if self._cell is not None:
                self._cell.append(" ")
        else:
            self._flush()

    def _end_capture(self) -> None:
        _, name, parts = self._captures.pop()
        value = _clean("".join(parts))
        if value and name not in self.dei:
            self.dei[name] = value
        if self._captures:
            self._captures[-1][2].extend(parts)

    def handle_endtag(self, tag: str) -> None:
        if self._captures and self._captures[-1][0] == tag:
            self._end_capture()
        if not any(entry[0] == tag for entry in self._stack):
            return  # stray end tag in sloppy HTML
        while self._stack:
            open_tag, hides, _ = self._stack.pop()
            if hides:
                self._hidden -= 1
            elif not self._hidden:
                self._close_visible(open_tag)
            if open_tag == tag:
                break

    def _close_visible(self, tag: str) -> None:
        if tag == "table":
            self._table_depth -= 1
            if self._table_depth == 0:
                self._flush_table()
        elif self._table_depth == 1 and tag == "tr":
            self._end_row()
        elif self._table_depth == 1 and tag in _CELL_TAGS:
            self._end_cell()
        elif tag in _BLOCK_TAGS or (self._table_depth > 1 and tag in _ROW_TAGS):
            self._boundary()

    def handle_data(self, data: str) -> None:
        if self._captures:
            self._captures[-1][2].append(data)
        if self._hidden or not data or data.isspace():
            return
        here = self._offset()
        if self._table_depth:
            if self._row is None:
                self._row = []
            if self._cell is None:
                self._cell = []
            if self._row_source < 0:
                self._row_source = self._block_source(here)
            self._cell.append(data)
        else:
            if self._part_source < 0:
                self._part_source = self._block_source(here)
            self._parts.append(data)
        self._last_text = here

    def finish(self) -> None:
        """Flush whatever is still open at the end of the document."""
        self.close()
        if self._table_depth:
            self._flush_table()
        self._flush()


def html_to_text(source: str) -> HtmlText:
    """Convert an HTML or inline-XBRL document to clean text.

    Args:
        source: The HTML source.

    Returns:
        The clean text, the block-to-source offset map and the ``dei`` facts.
    """
    converter = _Converter(source)
    converter.feed(source)
    converter.finish()
    pieces: list[str] = []
    starts: list[int] = []
    sources: list[int] = []
    position = 0
    previous_row = False
    for text, source_offset, is_row in converter.blocks:
        if pieces:
            separator = "\n" if (is_row and previous_row) else "\n\n"
            pieces.append(separator)
            position += len(separator)
        starts.append(position)
        sources.append(source_offset)
        pieces.append(text)
        position += len(text)
        previous_row = is_row
    return HtmlText(
        text="".join(pieces),
        block_starts=tuple(starts),
        block_sources=tuple(sources),
        source_length=len(source),
        dei=converter.dei,
    )
