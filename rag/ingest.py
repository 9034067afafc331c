"""Writing documents into a filing index: chunk, diff against the store, embed, upsert.

:meth:`quantdesk.rag.index.FilingIndex.add` holds the index's lock and calls
:func:`ingest_documents` with the index's parts. Ingestion is idempotent: a chunk whose id and
content hash are already stored is skipped without embedding; changed chunks are re-embedded
(from the embedding cache when the text is unchanged) and upserted; chunks a re-parsed
document no longer has are deleted. Writes go to Chroma first, then to the chunk store, so a
crash between the two re-does work on the next run instead of losing it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from quantdesk.quant_core.errors import InputError
from quantdesk.rag.chunk_store import ChunkStore
from quantdesk.rag.chunking import Chunk, ChunkingConfig, chunk_document, epoch_seconds_ceil
from quantdesk.rag.documents import ParsedDocument, ParseFailure
from quantdesk.rag.embeddings import CachingEmbedder, Embedder
from quantdesk.rag.lexical import tokenize
from quantdesk.rag.results import IngestReport

__all__ = ["IndexParts", "ingest_documents"]


@dataclass(frozen=True)
class IndexParts:
    """What ingestion writes to: the index's stores, its embedder and its chunking.

    Attributes:
        store: Chunk texts, metadata, BM25 tokens and documents.
        collection: The Chroma collection (vectors).
        max_batch: Largest upsert Chroma accepts at once.
        embedder: The (usually caching) embedder of new chunk texts.
        chunking: Window sizes.
    """

    store: ChunkStore
    collection: Any
    max_batch: int
    embedder: Embedder
    chunking: ChunkingConfig


@dataclass
class _Counts:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    written: int = 0
    embed_seconds: float = 0.0
    failures: list[ParseFailure] = field(default_factory=list)


def ingest_documents(
    parts: IndexParts,
    documents: Iterable[ParsedDocument | ParseFailure],
    *,
    batch_chunks: int = 512,
) -> IngestReport:
    """Index documents; re-adding unchanged documents embeds and writes nothing.

    Args:
        parts: The index's stores and models; the caller holds the index's lock.
        documents: Parsed documents; a :class:`ParseFailure` in the stream is recorded in
            the report and skipped, so a batch goes on past bad filings.
        batch_chunks: Chunks embedded and written per batch.

    Returns:
        Counts of what changed, what was embedded, and the documents kept out.
    """
    started = time.perf_counter()
    counts = _Counts()
    misses_before, hits_before = _cache_counters(parts.embedder)
    n_documents = n_chunks = 0
    pending: list[Chunk] = []
    for document in documents:
        if isinstance(document, ParseFailure):
            counts.failures.append(document)
            continue
        try:
            available = epoch_seconds_ceil(document.meta)
            chunks = chunk_document(document, parts.chunking)
        except InputError as exc:
            counts.failures.append(ParseFailure(document.meta.source_path, str(exc)))
            continue
        if not chunks:
            reason = f"{document.meta.doc_id} has no text to index"
            counts.failures.append(ParseFailure(document.meta.source_path, reason))
            continue
        n_documents += 1
        n_chunks += len(chunks)
        pending.extend(_diff(parts, document, chunks, available, counts))
        if len(pending) >= batch_chunks:
            _write(parts, pending, counts)
            pending = []
    if pending:
        _write(parts, pending, counts)
    parts.store.commit(changed=False)
    misses_after, hits_after = _cache_counters(parts.embedder)
    return IngestReport(
        documents=n_documents,
        chunks=n_chunks,
        added=counts.added,
        updated=counts.updated,
        unchanged=counts.unchanged,
        removed=counts.removed,
        embedded=misses_after - misses_before if misses_after >= 0 else counts.written,
        cache_hits=hits_after - hits_before,
        failures=tuple(counts.failures),
        seconds=time.perf_counter() - started,
        embed_seconds=counts.embed_seconds,
    )


def _cache_counters(embedder: Embedder) -> tuple[int, int]:
    if isinstance(embedder, CachingEmbedder):
        return embedder.misses, embedder.hits
    return -1, 0


def _diff(
    parts: IndexParts,
    document: ParsedDocument,
    chunks: list[Chunk],
    available: int,
    counts: _Counts,
) -> list[Chunk]:
    """Chunks to (re)write; deletes chunks the document no longer has."""
    store = parts.store
    stored = store.chunk_hashes(document.meta.doc_id)
    stale = sorted(set(stored) - {chunk.chunk_id for chunk in chunks})
    changed = [chunk for chunk in chunks if stored.get(chunk.chunk_id) != chunk.content_hash]
    counts.unchanged += len(chunks) - len(changed)
    counts.updated += sum(1 for chunk in changed if chunk.chunk_id in stored)
    counts.added += sum(1 for chunk in changed if chunk.chunk_id not in stored)
    if stale:
        parts.collection.delete(ids=stale)
        store.delete_chunks(stale)
        counts.removed += len(stale)
    if changed or stale or not stored:
        store.put_document(document, available)
        store.commit(changed=bool(stale))
    return changed


def _write(parts: IndexParts, chunks: list[Chunk], counts: _Counts) -> None:
    """Embed, then write to Chroma, then to the chunk store (so a crash re-does work)."""
    texts = [chunk.index_text for chunk in chunks]
    counts.written += len(chunks)
    started = time.perf_counter()
    vectors = parts.embedder.embed(texts)
    counts.embed_seconds += time.perf_counter() - started
    for offset in range(0, len(chunks), parts.max_batch):
        part = slice(offset, offset + parts.max_batch)
        parts.collection.upsert(
            ids=[chunk.chunk_id for chunk in chunks[part]],
            embeddings=vectors[part],
            metadatas=[chunk.metadata() for chunk in chunks[part]],
            documents=[chunk.text for chunk in chunks[part]],
        )
    parts.store.upsert_chunks(chunks, [tokenize(text) for text in texts])
    parts.store.commit(changed=True)
