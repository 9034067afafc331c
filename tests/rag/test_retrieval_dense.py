"""Dense search under filters: the over-fetch route returns what Chroma's where clause would."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.rag.dense_search import MAX_OVERFETCH, dense_candidates
from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section
from quantdesk.rag.embeddings import HashingEmbedder
from quantdesk.rag.filters import as_of_timestamp
from quantdesk.rag.index import FilingIndex


class _ExactCollection:
    """Exact cosine search over unit vectors with an ``available_at <= t`` where clause."""

    def __init__(self, vectors: np.ndarray, available: np.ndarray) -> None:
        self.vectors = vectors
        self.available = available
        self.ids = [f"c{row}" for row in range(len(vectors))]
        self.calls: list[tuple[int, bool]] = []

    def query(self, *, query_embeddings: list[np.ndarray], n_results: int, where: Any,
              include: list[str]) -> dict[str, list[list[Any]]]:  # fmt: skip
        self.calls.append((n_results, where is not None))
        similarity = self.vectors @ query_embeddings[0]
        keep = np.ones(len(self.ids), dtype=bool)
        if where is not None:
            keep = self.available <= where["available_at"]["$lte"]
        order = [row for row in np.argsort(-similarity, kind="stable") if keep[row]][:n_results]
        return {
            "ids": [[self.ids[row] for row in order]],
            "distances": [[1.0 - float(similarity[row]) for row in order]],
        }


def _collection(size: int, seed: int) -> tuple[_ExactCollection, dict[str, int]]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((size, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    collection = _ExactCollection(vectors, rng.integers(0, 100, size=size))
    return collection, {chunk_id: row for row, chunk_id in enumerate(collection.ids)}


def _search(collection: _ExactCollection, rows: Mapping[str, int], cut: int, n: int,
            seed: int) -> list[tuple[str, float]]:  # fmt: skip
    vector = np.random.default_rng(seed + 1).standard_normal(16)
    return dense_candidates(
        collection,
        vector / np.linalg.norm(vector),
        n,
        where={"available_at": {"$lte": cut}},
        eligible=collection.available <= cut,
        rows=rows,
    )


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=400),
    cut=st.integers(min_value=-1, max_value=100),
    n=st.integers(min_value=1, max_value=60),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_property_every_route_returns_the_nearest_eligible_chunks(
    size: int, cut: int, n: int, seed: int
) -> None:
    collection, rows = _collection(size, seed)
    got = _search(collection, rows, cut, n, seed)
    eligible = collection.available <= cut
    assert len(got) == min(n, int(eligible.sum()))
    assert all(eligible[rows[chunk_id]] for chunk_id, _ in got)
    # The truth: Chroma filtering with the where clause.
    collection.calls.clear()
    vector = np.random.default_rng(seed + 1).standard_normal(16)
    truth = collection.query(
        query_embeddings=[vector / np.linalg.norm(vector)],
        n_results=n,
        where={"available_at": {"$lte": cut}},
        include=["distances"],
    )
    assert [chunk_id for chunk_id, _ in got] == truth["ids"][0]


def test_a_filter_excluding_nothing_makes_one_unfiltered_query() -> None:
    collection, rows = _collection(300, 1)
    assert len(_search(collection, rows, 100, 10, 1)) == 10
    assert collection.calls == [(10, False)]


def test_a_broad_filter_over_fetches_without_a_where_clause() -> None:
    collection, rows = _collection(300, 2)
    share = float(np.mean(collection.available <= 49))
    _search(collection, rows, 49, 10, 2)
    assert collection.calls[0] == (int(np.ceil(1.5 * 10 / share)), False)
    assert len(collection.calls) == 1


def test_a_narrow_filter_is_left_to_the_where_clause() -> None:
    collection, rows = _collection(5000, 3)
    cut = 0  # about 1% of the chunks: over-fetching would need more than MAX_OVERFETCH
    assert np.ceil(1.5 * 50 * 5000 / np.sum(collection.available <= cut)) > MAX_OVERFETCH
    assert len(_search(collection, rows, cut, 50, 3)) == 50
    assert collection.calls == [(50, True)]


def test_too_few_eligible_in_the_over_fetched_list_falls_back() -> None:
    collection, rows = _collection(200, 4)
    vector = collection.vectors[0]
    # Only the 20 chunks farthest from the query are eligible: the over-fetched prefix holds
    # none of them, so the where clause has to find them.
    far = np.argsort(collection.vectors @ vector)[:20]
    eligible = np.zeros(200, dtype=bool)
    eligible[far] = True
    collection.available = np.where(eligible, 0, 50)
    got = dense_candidates(
        collection, vector, 5, where={"available_at": {"$lte": 0}}, eligible=eligible, rows=rows
    )
    assert collection.calls == [(75, False), (5, True)]  # ceil(1.5 * 5 * 200 / 20)
    assert {rows[chunk_id] for chunk_id, _ in got} <= set(far.tolist())
    assert len(got) == 5


def test_chunks_unknown_to_the_row_map_are_not_trusted_and_empty_filters_return_nothing() -> None:
    collection, rows = _collection(50, 5)
    vector = collection.vectors[0]
    everything = np.ones(50, dtype=bool)
    where = {"available_at": {"$lte": 100}}
    # A chunk in Chroma but not in the chunk store (an interrupted write) is never eligible.
    del rows["c0"]
    # The over-fetch route drops it, is one chunk short and leaves the search to the where
    # clause (whose results the index then checks against its chunk store).
    dense_candidates(collection, vector, 5, where=where, eligible=everything, rows=rows)
    assert collection.calls == [(5, False), (5, True)]
    rows_all = {**rows, "c0": 0}
    collection.calls.clear()
    got = dense_candidates(collection, vector, 4, where=where, eligible=everything, rows=rows_all)
    assert collection.calls == [(4, False)]
    assert got[0][0] == "c0"
    collection.calls.clear()
    nothing = np.zeros(50, dtype=bool)
    assert dense_candidates(collection, vector, 5, where=where, eligible=nothing, rows=rows) == []
    assert collection.calls == []


# -- through the index, on Chroma ------------------------------------------------------


@pytest.fixture(scope="module")
def dated_index(tmp_path_factory: pytest.TempPathFactory) -> FilingIndex:
    rng = np.random.default_rng(20261121)
    words = ["revenue", "margin", "tariff", "goodwill", "lease", "dividend", "cash", "debt"]
    documents = []
    for number in range(40):
        available = datetime(2019, 1, 1, tzinfo=UTC) + timedelta(days=45 * number)
        body = " ".join(rng.choice(words, size=60).tolist())
        meta = FilingMeta(
            ticker="DDD", cik=None, company="DDD Corp", form="10-Q", accession=None,
            filing_date=None, acceptance_datetime=available, period_end=None,
            fiscal_year=available.year, fiscal_period="Q1", available_at=available,
            available_at_estimated=False, source_path=f"/synthetic/{number}",
            doc_id=f"d{number:02d}",
        )  # fmt: skip
        documents.append(ParsedDocument(meta, body, (Section("I-2", "", body, 0, len(body)),)))
    index = FilingIndex(
        tmp_path_factory.mktemp("dense") / "ix", embedder=HashingEmbedder(), embedding_cache=False
    )
    index.add(documents)
    return index


@pytest.mark.parametrize("as_of", [date(2019, 3, 1), date(2021, 6, 30), date(2030, 1, 1)])
def test_index_dense_search_matches_a_where_clause_query(
    dated_index: FilingIndex, as_of: date
) -> None:
    hits = dated_index.search("tariff goodwill", as_of=as_of, k=8, mode="dense", rewrite=False)
    cut = as_of_timestamp(as_of)
    vector = HashingEmbedder().embed(["tariff goodwill"])[0]
    truth = dated_index._collection.query(
        query_embeddings=[vector], n_results=8, where={"available_at": {"$lte": cut}},
        include=["distances"],
    )  # fmt: skip
    assert [hit.chunk_id for hit in hits] == truth["ids"][0]
    assert all(hit.citation.available_at.timestamp() <= cut for hit in hits)
