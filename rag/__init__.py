"""Retrieval over SEC filings: acquisition, Item-aware parsing, point-in-time hybrid search.

Every document carries ``available_at`` (when it became public); every search takes ``as_of`` and
never returns a passage public after it. Retrieved text is untrusted data: it reaches a model only
through :func:`render_untrusted`. Names are imported lazily (PEP 562): importing this package does
not load Chroma, bm25s or sentence-transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantdesk.quant_core._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from quantdesk.rag.acquisition import (
        FilingSource,
        apply_source_metadata,
        discover_filings,
        scan_filings,
    )
    from quantdesk.rag.chunking import ChunkingConfig, chunk_document
    from quantdesk.rag.citations import Citation
    from quantdesk.rag.documents import FilingMeta, ParsedDocument, ParseFailure, Section
    from quantdesk.rag.download import DownloadReport, download_filings
    from quantdesk.rag.embeddings import (
        CachingEmbedder,
        Embedder,
        EmbeddingCache,
        HashingEmbedder,
        MiniLMEmbedder,
    )
    from quantdesk.rag.filters import (
        CompanyDirectory,
        InferredFilters,
        infer_filters,
        load_sec_company_tickers,
    )
    from quantdesk.rag.hybrid import reciprocal_rank_fusion
    from quantdesk.rag.index import FilingIndex
    from quantdesk.rag.manifest import Manifest, ManifestRow, load_manifest
    from quantdesk.rag.parsing import FilingHints, ParseBatch, parse_filing, parse_folder
    from quantdesk.rag.point_in_time import Availability, available_at
    from quantdesk.rag.query_rewrite import RewrittenQuery, rewrite_query
    from quantdesk.rag.rerank import CrossEncoderReranker, Reranker, reranker_from_settings
    from quantdesk.rag.results import FilingSection, IndexStats, IngestReport, SearchHit
    from quantdesk.rag.untrusted import UNTRUSTED_HEADER, render_untrusted

_EXPORTS: dict[str, str] = {
    "FilingMeta": "documents",
    "ParseFailure": "documents",
    "ParsedDocument": "documents",
    "Section": "documents",
    "FilingHints": "parsing",
    "ParseBatch": "parsing",
    "parse_filing": "parsing",
    "parse_folder": "parsing",
    "DownloadReport": "download",
    "FilingSource": "acquisition",
    "apply_source_metadata": "acquisition",
    "discover_filings": "acquisition",
    "download_filings": "download",
    "scan_filings": "acquisition",
    "Availability": "point_in_time",
    "available_at": "point_in_time",
    "Manifest": "manifest",
    "ManifestRow": "manifest",
    "load_manifest": "manifest",
    "FilingIndex": "index",
    "FilingSection": "results",
    "IndexStats": "results",
    "IngestReport": "results",
    "SearchHit": "results",
    "ChunkingConfig": "chunking",
    "chunk_document": "chunking",
    "CachingEmbedder": "embeddings",
    "Embedder": "embeddings",
    "EmbeddingCache": "embeddings",
    "HashingEmbedder": "embeddings",
    "MiniLMEmbedder": "embeddings",
    "CompanyDirectory": "filters",
    "InferredFilters": "filters",
    "infer_filters": "filters",
    "load_sec_company_tickers": "filters",
    "reciprocal_rank_fusion": "hybrid",
    "RewrittenQuery": "query_rewrite",
    "rewrite_query": "query_rewrite",
    "CrossEncoderReranker": "rerank",
    "Reranker": "rerank",
    "reranker_from_settings": "rerank",
    "Citation": "citations",
    "UNTRUSTED_HEADER": "untrusted",
    "render_untrusted": "untrusted",
}

__all__ = [
    "UNTRUSTED_HEADER",
    "Availability",
    "CachingEmbedder",
    "ChunkingConfig",
    "Citation",
    "CompanyDirectory",
    "CrossEncoderReranker",
    "DownloadReport",
    "Embedder",
    "EmbeddingCache",
    "FilingHints",
    "FilingIndex",
    "FilingMeta",
    "FilingSection",
    "FilingSource",
    "HashingEmbedder",
    "IndexStats",
    "InferredFilters",
    "IngestReport",
    "Manifest",
    "ManifestRow",
    "MiniLMEmbedder",
    "ParseBatch",
    "ParseFailure",
    "ParsedDocument",
    "Reranker",
    "RewrittenQuery",
    "SearchHit",
    "Section",
    "apply_source_metadata",
    "available_at",
    "chunk_document",
    "discover_filings",
    "download_filings",
    "infer_filters",
    "load_manifest",
    "load_sec_company_tickers",
    "parse_filing",
    "parse_folder",
    "reciprocal_rank_fusion",
    "render_untrusted",
    "reranker_from_settings",
    "rewrite_query",
    "scan_filings",
]


__getattr__, __dir__ = _lazy_exports(globals(), _EXPORTS)
