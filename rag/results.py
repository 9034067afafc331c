"""What the filing index returns: search hits, ingestion reports, sections and statistics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from quantdesk.rag.citations import Citation
from quantdesk.rag.documents import FilingMeta, ParseFailure, Section

__all__ = ["FilingSection", "IndexStats", "IngestReport", "SearchHit"]


@dataclass(frozen=True)
class SearchHit:
    """One retrieved chunk.

    Attributes:
        chunk_id: Stable id ``doc_id:item:ordinal``.
        text: The passage (``document.text[start:end]``).
        score: Fused RRF score (hybrid), cosine similarity (dense) or BM25 score (bm25).
        rank: 1-based position in the result list.
        citation: Where the passage comes from.
        metadata: The chunk's stored metadata.
        dense_rank: Rank in the dense candidate list, ``None`` when absent.
        lexical_rank: Rank in the BM25 candidate list, ``None`` when absent.
        rerank_score: The cross-encoder's score when a re-ranker ordered this hit (then
            ``rank`` follows it, and ``score`` is still the retrieval score); ``None`` when
            the hit was not re-ranked.
    """

    chunk_id: str
    text: str
    score: float
    rank: int
    citation: Citation
    metadata: dict[str, object]
    dense_rank: int | None = None
    lexical_rank: int | None = None
    rerank_score: float | None = None

    @property
    def source(self) -> str:
        """The formatted citation."""
        return self.citation.format()


@dataclass(frozen=True)
class IngestReport:
    """What one :meth:`FilingIndex.add` call did.

    Attributes:
        documents: Documents indexed (new or already present).
        chunks: Chunks those documents produced.
        added: Chunks new to the index.
        updated: Chunks whose text or metadata changed.
        unchanged: Chunks skipped because they were already indexed as they are.
        removed: Chunks deleted because a re-parsed document no longer has them.
        embedded: Texts the embedding model encoded (cache misses).
        cache_hits: Texts whose vectors came from the embedding cache.
        failures: Documents kept out of the index, with the reason.
        seconds: Wall time of the call.
        embed_seconds: Part of it spent in the embedder (cache included).
    """

    documents: int = 0
    chunks: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    embedded: int = 0
    cache_hits: int = 0
    failures: tuple[ParseFailure, ...] = ()
    seconds: float = 0.0
    embed_seconds: float = 0.0


@dataclass(frozen=True)
class FilingSection:
    """A whole section returned by :meth:`FilingIndex.get_section`."""

    meta: FilingMeta
    section: Section
    citation: Citation


@dataclass(frozen=True)
class IndexStats:
    """Size and coverage of an index."""

    path: str
    model_id: str
    documents: int
    chunks: int
    vectors: int
    tickers: tuple[str, ...]
    forms: tuple[str, ...]
    first_available_at: datetime | None
    last_available_at: datetime | None
