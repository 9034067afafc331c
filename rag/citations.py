"""Citations a report can print and a reader can check against the filing.

A citation names the company, form, fiscal period, Item, the filing's accession number (or the
document id when the accession is unknown) and the character span of the passage in the
parsed document text, e.g. ``AAPL 10-K FY2024, Item 1A (0000320193-24-000123, chars
12345-13890)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from quantdesk.rag.chunking import item_label
from quantdesk.rag.documents import FilingMeta

__all__ = ["Citation"]


@dataclass(frozen=True)
class Citation:
    """Where a retrieved passage comes from.

    Attributes:
        ticker: Trading symbol, when known.
        company: Registrant name, when known.
        form: ``"10-K"``, ``"10-Q"``, ``"8-K"``, ...
        fiscal_year: Fiscal year reported on, when known.
        fiscal_period: ``"FY"`` or ``"Q1"``..``"Q4"``, when known.
        item: Section key (``"1A"``, ``"I-2"``, ``"page-12"``).
        item_title: Section title.
        accession: EDGAR accession number, when known.
        doc_id: The index's document id (the accession when known).
        start: First character of the passage in the parsed document text.
        end: One past the last character.
        available_at: When the filing became public (UTC).
        available_at_estimated: Whether ``available_at`` is a conservative estimate.
        source_path: The file the document was parsed from.
    """

    ticker: str | None
    company: str | None
    form: str
    fiscal_year: int | None
    fiscal_period: str | None
    item: str
    item_title: str
    accession: str | None
    doc_id: str
    start: int
    end: int
    available_at: datetime
    available_at_estimated: bool = False
    source_path: str = ""

    @classmethod
    def from_meta(
        cls, meta: FilingMeta, *, item: str, item_title: str, start: int, end: int
    ) -> Citation:
        """Build a citation for a span of a document from its :class:`FilingMeta`."""
        return cls(
            ticker=meta.ticker.upper() if meta.ticker else None,
            company=meta.company,
            form=meta.form.upper(),
            fiscal_year=meta.fiscal_year,
            fiscal_period=meta.fiscal_period,
            item=item,
            item_title=item_title,
            accession=meta.accession,
            doc_id=meta.doc_id,
            start=start,
            end=end,
            available_at=meta.available_at.astimezone(UTC),
            available_at_estimated=meta.available_at_estimated,
            source_path=meta.source_path,
        )

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object]) -> Citation:
        """Build a citation from a chunk's stored metadata (see ``Chunk.metadata``)."""

        def text(key: str) -> str | None:
            value = metadata.get(key)
            return None if value is None else str(value)

        fiscal_year = metadata.get("fiscal_year")
        available = metadata.get("available_at_iso")
        if isinstance(available, str):
            available_at = datetime.fromisoformat(available).astimezone(UTC)
        else:
            available_at = datetime.fromtimestamp(int(metadata["available_at"]), tz=UTC)  # type: ignore[call-overload]
        return cls(
            ticker=text("ticker"),
            company=text("company"),
            form=str(metadata.get("form", "")),
            fiscal_year=int(fiscal_year) if isinstance(fiscal_year, int | float) else None,
            fiscal_period=text("fiscal_period"),
            item=str(metadata.get("item", "body")),
            item_title=str(metadata.get("item_title", "")),
            accession=text("accession"),
            doc_id=str(metadata["doc_id"]),
            start=int(metadata.get("start", 0)),  # type: ignore[call-overload]
            end=int(metadata.get("end", 0)),  # type: ignore[call-overload]
            available_at=available_at,
            available_at_estimated=bool(metadata.get("available_at_estimated", False)),
            source_path=str(metadata.get("source_path", "")),
        )

    @property
    def period_label(self) -> str:
        """``"FY2024"``, ``"Q3 FY2025"``, or ``""`` when the fiscal year is unknown."""
        if self.fiscal_year is None:
            return self.fiscal_period or ""
        if self.fiscal_period in (None, "FY"):
            return f"FY{self.fiscal_year}"
        return f"{self.fiscal_period} FY{self.fiscal_year}"

    def format(self, *, with_available_at: bool = False) -> str:
        """One line a reader can check, e.g. ``AAPL 10-K FY2024, Item 1A (acc, chars a-b)``.

        Args:
            with_available_at: Append when the filing became public (and whether estimated).
        """
        who = self.ticker or self.company or self.doc_id
        head = " ".join(part for part in (who, self.form, self.period_label) if part)
        reference = self.accession or self.doc_id
        line = f"{head}, {item_label(self.item)} ({reference}, chars {self.start}-{self.end})"
        if with_available_at:
            stamp = self.available_at.strftime("%Y-%m-%d %H:%M UTC")
            line += f", public {stamp}{' (estimated)' if self.available_at_estimated else ''}"
        return line

    def __str__(self) -> str:
        return self.format()
