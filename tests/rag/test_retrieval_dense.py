"""Dense search under filters: the over-fetch route returns what Chroma's where clause would."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from chromadb.errors import InternalError
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.rag.dense_search import MAX_OVERFETCH, dense_candidates
from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section
from quantdesk.rag.embeddings import HashingEmbedder
from quantdesk.rag.filters import as_of_timestamp
from quantdesk.rag.index import FilingIndex


class _ExactCollection:
    """Exact cosine search with an ``available_at <= t`` where clause or an id restriction."""

    def __init__(self, vectors: np.ndarray, available: np.ndarray) -> None:
        self.vectors = vectors
        self.available = available
        self.ids = [f"c{row}" for row in range(len(vectors))]
        self.calls: list[tuple[int, str]] = []

    def query(
        self,
        *,
        query_embeddings: list[np.ndarray],
        n_results: int,
        where: Any = None,
        ids: list[str] | None = None,
        include: list[str],
    ) -> dict[str, list[list[Any]]]:
        self.calls.append((n_results, "where" if where else "ids" if ids else "none"))
        similarity = self.vectors @ query_embeddings[0]
        keep = np.ones(len(self.ids), dtype=bool)
        if where is not None:
            keep = self.available <= where["available_at"]["$lte"]
        if ids is not None:
            if set(ids) - set(self.ids):
                raise InternalError("Error finding id")  # what Chroma 1.5 raises
            keep = np.isin(self.ids, ids)
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


def _candidates(collection: _ExactCollection, vector: np.ndarray, n: int, eligible: np.ndarray,
                rows: Mapping[str, int], cut: int = 100) -> list[tuple[str, float]]:  # fmt: skip
    chunk_ids = np.array(sorted(rows, key=rows.__getitem__))
    return dense_candidates(
        collection, vector, n, where={"available_at": {"$lte": cut}}, eligible=eligible,
        chunk_ids=chunk_ids, rows=rows,
    )  # fmt: skip


def _search(collection: _ExactCollection, rows: Mapping[str, int], cut: int, n: int,
            seed: int) -> list[tuple[str, float]]:  # fmt: skip
    vector = np.random.default_rng(seed + 1).standard_normal(16)
    eligible = collection.available <= cut
    return _candidates(collection, vector / np.linalg.norm(vector), n, eligible, rows, cut)


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
    assert collection.calls == [(10, "none")]


def test_a_broad_filter_over_fetches_without_a_where_clause() -> None:
    collection, rows = _collection(300, 2)
    share = float(np.mean(collection.available <= 49))
    _search(collection, rows, 49, 10, 2)
    assert collection.calls[0] == (int(np.ceil(1.5 * 10 / share)), "none")
    assert len(collection.calls) == 1


def test_a_narrow_filter_restricts_the_query_to_the_eligible_ids() -> None:
    collection, rows = _collection(5000, 3)
    cut = 0  # about 1% of the chunks: over-fetching would need more than MAX_OVERFETCH
    assert np.ceil(1.5 * 50 * 5000 / np.sum(collection.available <= cut)) > MAX_OVERFETCH
    assert len(_search(collection, rows, cut, 50, 3)) == 50
    assert collection.calls == [(50, "ids")]


def test_too_few_eligible_in_the_over_fetched_list_falls_back() -> None:
    collection, rows = _collection(200, 4)
    vector = collection.vectors[0]
    # Only the 20 chunks farthest from the query are eligible: the over-fetched prefix holds
    # none of them, so the id-restricted query has to find them.
    far = np.argsort(collection.vectors @ vector)[:20]
    eligible = np.zeros(200, dtype=bool)
    eligible[far] = True
    collection.available = np.where(eligible, 0, 50)
    got = _candidates(collection, vector, 5, eligible, rows, cut=0)
    assert collection.calls == [(75, "none"), (5, "ids")]  # ceil(1.5 * 5 * 200 / 20)
    assert {rows[chunk_id] for chunk_id, _ in got} <= set(far.tolist())
    assert len(got) == 5


def test_a_chunk_only_chroma_holds_is_never_returned() -> None:
    collection, rows = _collection(50, 5)
    vector = collection.vectors[0]
    # c0, the nearest, is in Chroma but not in the chunk store (an interrupted write): the
    # over-fetched list is one short, and the id-restricted query cannot name c0.
    del rows["c0"]
    everything = np.ones(49, dtype=bool)
    got = _candidates(collection, vector, 5, everything, rows)
    assert collection.calls == [(5, "none"), (5, "ids")]
    assert len(got) == 5
    assert "c0" not in {chunk_id for chunk_id, _ in got}


def test_a_chunk_chroma_lost_sends_the_query_to_the_where_clause() -> None:
    collection, rows = _collection(3000, 6)
    rows["ghost"] = len(rows)  # in the chunk store, deleted from Chroma
    eligible = np.zeros(len(rows), dtype=bool)
    eligible[:20] = True
    eligible[-1] = True
    got = _candidates(collection, collection.vectors[0], 5, eligible, rows, cut=100)
    assert collection.calls == [(5, "ids"), (5, "where")]
    assert len(got) == 5


def test_an_empty_filter_asks_nothing() -> None:
    collection, rows = _collection(50, 7)
    assert _candidates(collection, collection.vectors[0], 5, np.zeros(50, dtype=bool), rows) == []
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


@pytest.mark.parametrize("doc_id", ["d03", ["d10", "d11", "d30"]])
def test_index_dense_search_by_document_matches_a_where_clause_query(
    dated_index: FilingIndex, doc_id: str | list[str]
) -> None:
    hits = dated_index.search(
        "lease cash", as_of="2030-01-01", k=3, mode="dense", doc_id=doc_id, rewrite=False
    )
    names = [doc_id] if isinstance(doc_id, str) else doc_id
    vector = HashingEmbedder().embed(["lease cash"])[0]
    truth = dated_index._collection.query(
        query_embeddings=[vector], n_results=3, where={"doc_id": {"$in": names}},
        include=["distances"],
    )  # fmt: skip
    assert [hit.chunk_id for hit in hits] == truth["ids"][0]
    assert {hit.metadata["doc_id"] for hit in hits} <= set(names)


def test_a_chunk_missing_from_chroma_does_not_break_a_narrow_search(tmp_path: Path) -> None:
    body = "tariff revenue margin lease " * 30
    documents = []
    for number in range(3):
        available = datetime(2020, 1, 1 + number, tzinfo=UTC)
        meta = FilingMeta(
            ticker="EEE", cik=None, company="EEE Corp", form="10-K", accession=None,
            filing_date=None, acceptance_datetime=available, period_end=None, fiscal_year=2019,
            fiscal_period="FY", available_at=available, available_at_estimated=False,
            source_path=f"/synthetic/e{number}", doc_id=f"e{number}",
        )  # fmt: skip
        documents.append(ParsedDocument(meta, body, (Section("7", "", body, 0, len(body)),)))
    index = FilingIndex(tmp_path / "ix", embedder=HashingEmbedder(), embedding_cache=False)
    index.add(documents)
    # An interrupted deletion: Chroma lost the chunk, the chunk store still lists it.
    index._collection.delete(ids=["e1:7:0"])
    hits = index.search("tariff", as_of="2030-01-01", mode="dense", doc_id=["e0", "e1"])
    assert [hit.chunk_id for hit in hits] == ["e0:7:0"]
