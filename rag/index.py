"""The filing index: dense (Chroma) + lexical (BM25) retrieval, point in time, with citations.

Layout of an index folder (``<QUANTDESK_HOME>/chroma`` by default)::

    chroma.sqlite3, <uuid>/        Chroma's embedded store (vectors + metadata)
    quantdesk_chunks.sqlite3       chunk texts, metadata, BM25 tokens, documents (ChunkStore)
    quantdesk_bm25/                the persisted bm25s model

To use a Chroma server instead of the embedded store, start one with
``chroma run --path /srv/chroma --port 8000`` and pass ``chroma_url="http://host:8000"`` (or set
``QUANTDESK_CHROMA_URL``); the chunk store and BM25 model stay in the local folder.

Point in time: every search takes ``as_of``; each retriever keeps ``available_at <= as_of``
(and the other filters) before choosing its top ``n``: BM25 through a row mask, the dense side
through the same mask (:mod:`quantdesk.rag.dense_search`). So ``k`` results come back whenever
``k`` eligible chunks exist; the fused results are checked once more before they are returned.

Threads: an index may be opened on one thread and used from others (LangGraph's tool nodes,
the MCP server's workers); each public method holds the index's lock, so calls run one at a
time (``add`` is several store writes that must not interleave with a search).

Re-ranking: with a cross-encoder configured (``reranker=`` or ``QUANTDESK_RERANKER``), the top
``rerank_candidates`` fused chunks are re-ordered by it (:mod:`quantdesk.rag.rerank`); it only
re-orders chunks that passed the cut, so the guarantees above hold.

Ingestion (:mod:`quantdesk.rag.ingest`) is idempotent: unchanged chunks are not re-embedded.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Concatenate, Literal, ParamSpec, TypeVar

import numpy as np

from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.settings import get_settings
from quantdesk.rag.chroma_client import open_collection
from quantdesk.rag.chunk_store import ChunkStore
from quantdesk.rag.chunking import ChunkingConfig, epoch_seconds_ceil
from quantdesk.rag.citations import Citation
from quantdesk.rag.dense_search import dense_candidates
from quantdesk.rag.documents import FilingMeta, ParsedDocument, ParseFailure
from quantdesk.rag.embeddings import CachingEmbedder, Embedder, EmbeddingCache, default_embedder
from quantdesk.rag.filters import (
    ChunkFilter,
    CompanyDirectory,
    as_of_timestamp,
    company_key,
    filter_attempts,
)
from quantdesk.rag.hybrid import RRF_K, reciprocal_rank_fusion
from quantdesk.rag.ingest import IndexParts, ingest_documents
from quantdesk.rag.lexical import LexicalIndex
from quantdesk.rag.query_rewrite import fusion_weights, rewrite_query
from quantdesk.rag.rerank import RERANK_CANDIDATES, Reranker, rerank_hits, reranker_from_settings
from quantdesk.rag.results import FilingSection, IndexStats, IngestReport, SearchHit

__all__ = ["FilingIndex", "FilingSection", "IndexStats", "IngestReport", "SearchHit"]

SearchMode = Literal["hybrid", "dense", "bm25"]
_MODES = ("hybrid", "dense", "bm25")
_STORE_FILE = "quantdesk_chunks.sqlite3"
_BM25_FOLDER = "quantdesk_bm25"
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _serialised(
    method: Callable[Concatenate[FilingIndex, _P], _R],
) -> Callable[Concatenate[FilingIndex, _P], _R]:
    """Run ``method`` holding the index's (re-entrant) lock."""

    @functools.wraps(method)
    def locked(self: FilingIndex, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


class FilingIndex:
    """Hybrid, point-in-time retrieval over parsed filings.

    Args:
        path: Index folder; ``<QUANTDESK_HOME>/chroma`` by default.
        embedder: Dense model; the configured one by default (:func:`default_embedder`:
            ``QUANTDESK_EMBEDDING_MODEL``, else all-MiniLM-L6-v2). An index remembers its
            model id and refuses a different one.
        chroma_url: ``http(s)://host:port`` of a Chroma server (``chroma run``); falls back
            to ``QUANTDESK_CHROMA_URL``; embedded ``PersistentClient`` when neither is set.
        collection: Chroma collection name (3+ characters).
        chunking: Window sizes; :class:`ChunkingConfig` defaults.
        embedding_cache: ``True`` keeps vectors in the content-hash cache under
            ``<QUANTDESK_HOME>/cache/embeddings``; an :class:`EmbeddingCache` uses that
            cache; ``False`` embeds every new chunk.
        reranker: Cross-encoder that re-orders the top fused results; ``None`` takes the
            one ``QUANTDESK_RERANKER`` names (if any), ``False`` uses none.

    Raises:
        InputError: The folder was built with a different embedding model.
    """

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        embedder: Embedder | None = None,
        chroma_url: str | None = None,
        collection: str = "quantdesk_filings",
        chunking: ChunkingConfig | None = None,
        embedding_cache: EmbeddingCache | bool = True,
        reranker: Reranker | Literal[False] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.path = Path(path) if path is not None else get_settings().home / "chroma"
        self.path.mkdir(parents=True, exist_ok=True)
        base = embedder if embedder is not None else default_embedder()
        self._query_embedder: Embedder = base
        self._embedder: Embedder = base
        if embedding_cache is not False:
            cache = embedding_cache if isinstance(embedding_cache, EmbeddingCache) else None
            self._embedder = CachingEmbedder(base, cache)
        self._query_vectors: dict[str, np.ndarray] = {}
        self.chunking = chunking or ChunkingConfig()
        self._store = ChunkStore(self.path / _STORE_FILE)
        self._check_model(base)
        url = chroma_url or get_settings().chroma_url or None
        opened = open_collection(self.path, url, collection, base.model_id)
        self._collection, self._max_batch = opened.collection, opened.max_batch
        self._lexical: LexicalIndex | None = None
        self._rows: tuple[int, dict[str, np.ndarray], dict[str, int]] | None = None
        self._company_cache: tuple[int, CompanyDirectory, set[str], set[str]] | None = None
        self._merged_cache: tuple[int, CompanyDirectory, CompanyDirectory] | None = None
        self.reranker: Reranker | None = (
            reranker_from_settings() if reranker is None else reranker or None
        )

    # -- construction -------------------------------------------------------------------

    def _check_model(self, embedder: Embedder) -> None:
        stored = self._store.get_meta("model_id")
        if stored is None:
            self._store.set_meta("model_id", embedder.model_id)
            self._store.set_meta("dimension", str(embedder.dimension))
            self._store.commit(changed=False)
        elif stored != embedder.model_id:
            raise InputError(
                f"The index at {self.path} holds {stored} embeddings, not {embedder.model_id}.",
                fix="open it with the same embedder, or index into a new folder.",
            )

    # -- ingestion ----------------------------------------------------------------------

    @_serialised
    def add(
        self, documents: Iterable[ParsedDocument | ParseFailure], *, batch_chunks: int = 512
    ) -> IngestReport:
        """Index documents; re-adding unchanged documents embeds and writes nothing.

        Args:
            documents: Parsed documents; a :class:`ParseFailure` in the stream is recorded in
                the report and skipped, so a batch goes on past bad filings.
            batch_chunks: Chunks embedded and written per batch.

        Returns:
            Counts of what changed, what was embedded, and the documents kept out.
        """
        parts = IndexParts(
            self._store, self._collection, self._max_batch, self._embedder, self.chunking
        )
        return ingest_documents(parts, documents, batch_chunks=batch_chunks)

    # -- retrieval ----------------------------------------------------------------------

    @_serialised
    def search(
        self,
        query: str,
        *,
        as_of: date | datetime | str,
        k: int = 10,
        mode: SearchMode = "hybrid",
        ticker: str | Sequence[str] | None = None,
        company: str | None = None,
        form: str | Sequence[str] | None = None,
        fiscal_year: int | Sequence[int] | None = None,
        fiscal_period: str | Sequence[str] | None = None,
        item: str | Sequence[str] | None = None,
        doc_id: str | Sequence[str] | None = None,
        infer: bool = False,
        companies: CompanyDirectory | None = None,
        candidates: int | None = None,
        rrf_k: int = RRF_K,
        weights: tuple[float, float] | None = None,
        rewrite: bool = True,
        rerank: bool | None = None,
        rerank_candidates: int = RERANK_CANDIDATES,
    ) -> list[SearchHit]:
        """The ``k`` best chunks public by ``as_of`` that match the filters.

        Args:
            query: The question or keywords.
            as_of: Decision time (required). A date means that day's US market close.
            k: Number of results (1-1000).
            mode: ``"hybrid"`` (RRF of dense and BM25), ``"dense"`` or ``"bm25"``.
            ticker: Restrict to ticker(s).
            company: Restrict to a company by name (normalised, e.g. "Coca-Cola").
            form: Restrict to form type(s) (``"10-K"``).
            fiscal_year: Restrict to fiscal year(s).
            fiscal_period: Restrict to ``"FY"``/``"Q1"``..``"Q4"``.
            item: Restrict to section key(s) (``"1A"``, ``"7"``, ``"page-12"``).
            doc_id: Restrict to document(s).
            infer: Also infer company, fiscal year, quarter and form from ``query`` for the
                filters not given explicitly. If the inferred filters leave nothing, the
                search is repeated keeping only the inferred company, then with none.
            companies: Extra names to recognise when inferring (e.g. the SEC ticker list);
                the index's own companies are always known.
            candidates: Candidates per retriever before fusion (default ``max(50, 3k)``).
            rrf_k: RRF rank constant.
            weights: RRF weights of the (dense, BM25) rankings; by default 1/1, and
                ``LEXICON_DENSE_WEIGHT``/1 when the rewrite expanded a metric or statement.
            rewrite: Search for :func:`~quantdesk.rag.query_rewrite.rewrite_query`'s text
                (instructions dropped, line items of named metrics appended) in every mode;
                filters are always inferred from ``query`` itself.
            rerank: Re-order the top ``rerank_candidates`` chunks with :attr:`reranker`
                (reading ``query`` as typed); ``None`` does so when one is configured.
                Re-ranked hits carry ``rerank_score``.
            rerank_candidates: Fused chunks the re-ranker scores (1-1000).

        Raises:
            InputError: ``query``, ``as_of``, ``k``, ``mode`` or ``rerank_candidates`` is
                invalid, or ``rerank=True`` without a re-ranker.
            ConfigError: The configured re-ranker does not load.
        """
        if not isinstance(query, str) or not query.strip():
            raise InputError(f"query={query!r} is empty.", fix="pass the question to search for.")
        cut = as_of_timestamp(as_of)
        if mode not in _MODES:
            raise InputError(f"mode={mode!r} is not one of {_MODES}.", fix="use 'hybrid'.")
        if not 1 <= k <= 1000:
            raise InputError(f"k={k} is outside 1-1000.", fix="ask for 1 to 1000 results.")
        reranker = self._reranker_for(rerank, rerank_candidates)
        explicit = ChunkFilter(
            as_of=cut, ticker=ticker, company_key=company_key(company) if company else None,
            form=form, fiscal_year=fiscal_year, fiscal_period=fiscal_period, item=item,
            doc_id=doc_id,
        )  # fmt: skip
        attempts = [explicit]
        if infer:
            attempts = self._inferred_attempts(query, explicit, companies) + attempts
        n = candidates or max(50, 3 * k)
        rewritten = rewrite_query(query) if rewrite else None
        text = rewritten.text if rewritten else query
        weights = weights or fusion_weights(rewritten)
        fetch = max(k, rerank_candidates) if reranker else k
        hits: list[SearchHit] = []
        for chunk_filter in attempts:
            hits = self._search_once(
                text, chunk_filter, k=fetch, n=max(n, fetch), mode=mode, rrf_k=rrf_k,
                weights=weights,
            )  # fmt: skip
            if hits:
                break
        if reranker is None or not hits:
            return hits[:k]
        return rerank_hits(reranker, query, hits, k=k, candidates=rerank_candidates)

    def _reranker_for(self, rerank: bool | None, candidates: int) -> Reranker | None:
        """The re-ranker a search uses, or ``None``."""
        if not 1 <= candidates <= 1000:
            raise InputError(
                f"rerank_candidates={candidates} is outside 1-1000.",
                fix=f"re-rank {RERANK_CANDIDATES} candidates (the default).",
            )
        if rerank and self.reranker is None:
            raise InputError(
                "rerank=True, but no re-ranker is configured.",
                fix="set QUANTDESK_RERANKER to a cross-encoder folder or cached model id, "
                "pass reranker= to FilingIndex, or search without rerank.",
            )
        return self.reranker if rerank is not False else None

    def _inferred_attempts(
        self, query: str, explicit: ChunkFilter, companies: CompanyDirectory | None
    ) -> list[ChunkFilter]:
        directory = self.company_directory()
        if companies is not None:
            cached = self._merged_cache
            generation = self._store.generation
            if cached is None or cached[0] != generation or cached[1] is not companies:
                cached = self._merged_cache = (generation, companies, directory.merged(companies))
            directory = cached[2]
        _, tickers, keys = self._companies()
        return filter_attempts(query, explicit, directory, tickers=tickers, company_keys=keys)

    def _search_once(
        self,
        query: str,
        chunk_filter: ChunkFilter,
        *,
        k: int,
        n: int,
        mode: str,
        rrf_k: int,
        weights: tuple[float, float],
    ) -> list[SearchHit]:
        dense: list[tuple[str, float]] = []
        lexical: list[tuple[str, float]] = []
        if mode in ("hybrid", "dense"):
            dense = self._dense(query, chunk_filter, n if mode == "hybrid" else k)
        if mode in ("hybrid", "bm25"):
            lexical = self._bm25(query, chunk_filter, n if mode == "hybrid" else k)
        dense_ids = [chunk_id for chunk_id, _ in dense]
        lexical_ids = [chunk_id for chunk_id, _ in lexical]
        if mode == "hybrid":
            fused = reciprocal_rank_fusion(
                [dense_ids, lexical_ids], k=rrf_k, weights=weights, limit=k
            )
            ranked = [(item.item_id, item.score) for item in fused]
        else:
            ranked = (dense or lexical)[:k]
        stored = self._store.chunks([chunk_id for chunk_id, _ in ranked])
        dense_rank = {chunk_id: rank for rank, chunk_id in enumerate(dense_ids, start=1)}
        lexical_rank = {chunk_id: rank for rank, chunk_id in enumerate(lexical_ids, start=1)}
        hits: list[SearchHit] = []
        for chunk_id, score in ranked:
            chunk = stored.get(chunk_id)
            # Defence in depth: both retrievers already filtered on as_of.
            if chunk is None or int(chunk.metadata["available_at"]) > chunk_filter.as_of:  # type: ignore[call-overload]
                continue
            hits.append(
                SearchHit(
                    chunk_id=chunk_id,
                    text=chunk.text,
                    score=score,
                    rank=len(hits) + 1,
                    citation=Citation.from_metadata(chunk.metadata),
                    metadata=chunk.metadata,
                    dense_rank=dense_rank.get(chunk_id),
                    lexical_rank=lexical_rank.get(chunk_id),
                )
            )
        return hits

    def _dense(self, query: str, chunk_filter: ChunkFilter, n: int) -> list[tuple[str, float]]:
        vector = self._query_vectors.get(query)
        if vector is None:
            vector = self._query_embedder.embed([query])[0]
            if len(self._query_vectors) > 256:
                self._query_vectors.clear()
            self._query_vectors[query] = vector
        columns, rows = self._row_view()
        return dense_candidates(
            self._collection,
            vector,
            n,
            where=chunk_filter.chroma_where(),
            eligible=chunk_filter.mask(columns),
            chunk_ids=columns["chunk_id"],
            rows=rows,
        )

    def _row_view(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Filter columns in chunk-store row order and chunk id -> row, per generation."""
        generation = self._store.generation
        if self._rows is None or self._rows[0] != generation:
            lexical = self._lexical
            if lexical is not None and lexical.generation == generation:
                columns = lexical.columns
            else:
                columns = self._store.filter_columns()
            ids = {str(chunk_id): row for row, chunk_id in enumerate(columns["chunk_id"])}
            self._rows = (generation, columns, ids)
        return self._rows[1], self._rows[2]

    def _bm25(self, query: str, chunk_filter: ChunkFilter, n: int) -> list[tuple[str, float]]:
        lexical = self.lexical_index()
        mask = chunk_filter.mask(lexical.columns)
        chunk_ids = lexical.columns["chunk_id"]
        return [
            (str(chunk_ids[hit.row]), hit.score) for hit in lexical.search(query, mask=mask, n=n)
        ]

    @_serialised
    def lexical_index(self) -> LexicalIndex:
        """The BM25 model, loaded or rebuilt when the chunks changed since it was saved."""
        generation = self._store.generation
        if self._lexical is not None and self._lexical.generation == generation:
            return self._lexical
        folder = self.path / _BM25_FOLDER
        lexical = LexicalIndex.load(folder, self._store.filter_columns(), generation=generation)
        if lexical is None:
            tokens, columns = self._store.lexical_rows()
            lexical = LexicalIndex(tokens, columns, generation=generation)
            lexical.save(folder)
        self._lexical = lexical
        return lexical

    # -- documents ----------------------------------------------------------------------

    @_serialised
    def get_section(
        self, doc_id: str, item: str, *, as_of: date | datetime | str
    ) -> FilingSection | None:
        """A whole section of a document, if the document was public by ``as_of``.

        Returns ``None`` when the document or section is unknown *or* not yet public, so a
        caller cannot learn that a future filing exists.
        """
        cut = as_of_timestamp(as_of)
        found = self._store.document(doc_id)
        if found is None:
            return None
        meta, _, sections = found
        if epoch_seconds_ceil(meta) > cut:
            return None
        matches = [s for s in sections if s.key == item] or [
            s for s in sections if s.key.casefold() == item.casefold()
        ]
        if not matches:
            return None
        section = matches[0]
        citation = Citation.from_meta(
            meta, item=section.key, item_title=section.title, start=section.start, end=section.end
        )
        return FilingSection(meta, section, citation)

    @_serialised
    def documents(self, *, as_of: date | datetime | str | None = None) -> list[FilingMeta]:
        """Metadata of the indexed documents (those public by ``as_of`` when given)."""
        cut = None if as_of is None else as_of_timestamp(as_of)
        return self._store.documents(as_of=cut)

    @_serialised
    def company_directory(self) -> CompanyDirectory:
        """The tickers and company names of the indexed documents."""
        return self._companies()[0]

    def _companies(self) -> tuple[CompanyDirectory, set[str], set[str]]:
        """Directory, tickers and company keys of the index, cached per store generation."""
        generation = self._store.generation
        if self._company_cache is None or self._company_cache[0] != generation:
            metas = self._store.documents()
            directory = CompanyDirectory.from_pairs((m.ticker, m.company) for m in metas)
            tickers = {m.ticker.upper() for m in metas if m.ticker}
            keys = {company_key(m.company) for m in metas if m.company} - {""}
            self._company_cache = (generation, directory, tickers, keys)
        return self._company_cache[1], self._company_cache[2], self._company_cache[3]

    @_serialised
    def stats(self) -> IndexStats:
        """Counts, tickers, forms and the span of ``available_at`` in the index."""
        n_documents, n_chunks = self._store.counts()
        metas = self._store.documents()
        times = sorted(meta.available_at.astimezone(UTC) for meta in metas)
        return IndexStats(
            path=str(self.path),
            model_id=self._embedder.model_id,
            documents=n_documents,
            chunks=n_chunks,
            vectors=int(self._collection.count()),
            tickers=tuple(sorted({meta.ticker.upper() for meta in metas if meta.ticker})),
            forms=tuple(sorted({meta.form for meta in metas})),
            first_available_at=times[0] if times else None,
            last_available_at=times[-1] if times else None,
        )

    @_serialised
    def close(self) -> None:
        """Close the chunk store (Chroma's client needs no closing)."""
        self._store.close()
