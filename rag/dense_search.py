"""Dense retrieval under filters: over-fetch and post-filter, or restrict Chroma to ids.

Chroma (1.5, embedded) evaluates a ``where`` clause by collecting the ids its metadata store
allows before the vector search, at a cost that grows with the collection: on 100,000 chunks
an ``available_at <= as_of`` clause took ~190 ms per query and a one-ticker clause ~155 ms,
against ~3-8 ms for the same query without a clause (``benchmarks/bench_rag.py``). The index
knows its filter as a boolean mask over the chunk rows (the mask the BM25 side applies), so it
spares Chroma the metadata scan:

* a *broad* filter (an ``as_of`` that keeps most of the index): Chroma is asked for
  ``ceil(safety * n / p)`` neighbours with no clause, ``p`` being the share of chunks the mask
  keeps, and the ineligible ones are dropped. If that list holds ``n`` eligible chunks they
  are the ``n`` nearest eligible chunks: any chunk nearer than the ``n``-th kept one is in the
  list, a nearest-first prefix of the whole collection (up to the approximation of HNSW);
* a *narrow* filter (a document, a company), or a broad one whose over-fetched list came up
  short: the query is restricted to the eligible chunk ids (Chroma's ``ids`` argument), which
  needs no metadata scan;
* the ``where`` clause remains for more eligible chunks than :data:`MAX_ID_LIST`, and for an
  id list Chroma refuses (a chunk the chunk store has and Chroma lost to an interrupted
  deletion).

Point in time never depends on the route: the mask is the filter, and the index checks every
returned chunk's ``available_at`` once more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["MAX_ID_LIST", "MAX_OVERFETCH", "OVERFETCH_SAFETY", "dense_candidates"]

#: Margin on the expected number of neighbours needed (the eligible chunks are not spread
#: evenly over the neighbourhood of every query).
OVERFETCH_SAFETY = 1.5
#: Largest unfiltered request; a filter needing more restricts the query to ids instead.
MAX_OVERFETCH = 1000
#: Most ids handed to Chroma's ``ids`` restriction; larger eligible sets use ``where``.
MAX_ID_LIST = 20_000


def dense_candidates(
    collection: Any,
    vector: np.ndarray,
    n: int,
    *,
    where: Mapping[str, object],
    eligible: np.ndarray,
    chunk_ids: np.ndarray,
    rows: Mapping[str, int],
) -> list[tuple[str, float]]:
    """The ``n`` nearest chunks the filter allows, as ``(chunk id, cosine similarity)``.

    Args:
        collection: The Chroma collection (cosine space).
        vector: The query vector.
        n: How many chunks at most.
        where: The filter as a Chroma ``where`` clause (the last resort).
        eligible: The filter as a boolean mask over the chunk rows.
        chunk_ids: The chunk id of each row.
        rows: Chunk id -> row of ``eligible``; a chunk missing from it is not eligible.

    Returns:
        Chunks nearest first.
    """
    from chromadb.errors import ChromaError

    allowed = int(np.count_nonzero(eligible))
    if allowed == 0 or n <= 0:
        return []
    want, total = min(n, allowed), len(eligible)
    fetch = want if allowed == total else math.ceil(OVERFETCH_SAFETY * want * total / allowed)
    if allowed == total or fetch <= MAX_OVERFETCH:
        found = _query(collection, vector, min(fetch, total))
        kept = [hit for hit in found if _allowed(hit[0], rows, eligible)]
        if len(kept) >= want:
            return kept[:want]
    if allowed > MAX_ID_LIST:
        return _query(collection, vector, want, where=where)
    try:
        return _query(collection, vector, want, ids=chunk_ids[eligible].tolist())
    except ChromaError:
        # An id Chroma does not hold (an interrupted deletion): the where clause lists none.
        return _query(collection, vector, want, where=where)


def _allowed(chunk_id: str, rows: Mapping[str, int], eligible: np.ndarray) -> bool:
    row = rows.get(chunk_id)
    return row is not None and bool(eligible[row])


def _query(
    collection: Any,
    vector: np.ndarray,
    n: int,
    *,
    ids: Sequence[str] | None = None,
    where: Mapping[str, object] | None = None,
) -> list[tuple[str, float]]:
    result = collection.query(
        query_embeddings=[vector], n_results=n, ids=ids, where=where, include=["distances"]
    )
    ids_found = result["ids"][0]
    distances = result["distances"][0]
    return [(chunk_id, 1.0 - float(d)) for chunk_id, d in zip(ids_found, distances, strict=True)]
