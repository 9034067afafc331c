"""Dense retrieval under filters: over-fetch and post-filter, or let Chroma filter.

Chroma (1.5, embedded) evaluates a ``where`` clause by collecting the ids its metadata store
allows before the vector search, at a cost that grows with the number of ids allowed: on
100,000 chunks an ``available_at <= as_of`` clause that keeps most of them took ~190 ms per
query against ~6 ms for the same query without a clause (``benchmarks/bench_rag.py``). An
``as_of`` filter usually keeps most of an index, so the index does the filtering itself when
it can:

* the filter's boolean mask over the chunk rows (the same mask the BM25 side applies) gives
  the share ``p`` of chunks it keeps;
* when ``p`` is large enough, Chroma is asked for ``ceil(safety * n / p)`` neighbours with no
  clause, and the ineligible ones are dropped. If that list holds ``n`` eligible chunks they
  are exactly the ``n`` nearest eligible chunks: any chunk nearer than the ``n``-th kept one
  is in the list, since the list is a nearest-first prefix of the whole collection;
* otherwise (a narrow filter, such as one document, or too few eligible chunks in the
  over-fetched list), Chroma filters with the ``where`` clause as before.

Point in time never depends on the route: the mask is the filter, and the index checks every
returned chunk's ``available_at`` once more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["MAX_OVERFETCH", "OVERFETCH_SAFETY", "dense_candidates"]

#: Margin on the expected number of neighbours needed (the eligible chunks are not spread
#: evenly over the neighbourhood of every query).
OVERFETCH_SAFETY = 1.5
#: Largest unfiltered request; a filter needing more is left to Chroma's ``where`` clause.
MAX_OVERFETCH = 1000


def dense_candidates(
    collection: Any,
    vector: np.ndarray,
    n: int,
    *,
    where: Mapping[str, object],
    eligible: np.ndarray,
    rows: Mapping[str, int],
) -> list[tuple[str, float]]:
    """The ``n`` nearest chunks the filter allows, as ``(chunk id, cosine similarity)``.

    Args:
        collection: The Chroma collection (cosine space).
        vector: The query vector.
        n: How many chunks at most.
        where: The filter as a Chroma ``where`` clause (the fallback route).
        eligible: The filter as a boolean mask over the chunk rows.
        rows: Chunk id -> row of ``eligible``; a chunk missing from it is not eligible.

    Returns:
        Chunks nearest first.
    """
    allowed = int(np.count_nonzero(eligible))
    if allowed == 0 or n <= 0:
        return []
    want, total = min(n, allowed), len(eligible)
    fetch = want if allowed == total else math.ceil(OVERFETCH_SAFETY * want * total / allowed)
    if allowed == total or fetch <= MAX_OVERFETCH:
        found = _query(collection, vector, min(fetch, total), None)
        kept = [hit for hit in found if _allowed(hit[0], rows, eligible)]
        if len(kept) >= want:
            return kept[:want]
    return _query(collection, vector, want, where)


def _allowed(chunk_id: str, rows: Mapping[str, int], eligible: np.ndarray) -> bool:
    row = rows.get(chunk_id)
    return row is not None and bool(eligible[row])


def _query(
    collection: Any, vector: np.ndarray, n: int, where: Mapping[str, object] | None
) -> list[tuple[str, float]]:
    result = collection.query(
        query_embeddings=[vector], n_results=n, where=where, include=["distances"]
    )
    ids = result["ids"][0]
    distances = result["distances"][0]
    return [(chunk_id, 1.0 - float(d)) for chunk_id, d in zip(ids, distances, strict=True)]
