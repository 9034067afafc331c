"""The index on the real filings in the shared data: point in time, citations, MiniLM."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.rag.chunking import chunk_document
from quantdesk.rag.documents import ParsedDocument
from quantdesk.rag.embeddings import EmbeddingCache, HashingEmbedder, MiniLMEmbedder
from quantdesk.rag.filters import as_of_timestamp
from quantdesk.rag.index import FilingIndex
from quantdesk.rag.parsing import parse_filing, parse_folder

pytestmark = pytest.mark.realdata

QUERIES = [
    "risk factors competition",
    "net sales by segment",
    "legal proceedings",
    "share repurchase program",
    "cybersecurity incidents",
    "notes due 2031 indenture",
    "goodwill impairment",
]


@pytest.fixture(scope="module")
def real_documents(shared_data: Path) -> list[ParsedDocument]:
    batch = parse_folder(shared_data / "filings" / "sec-edgar-filings")
    assert len(batch.documents) >= 10, batch.failures
    return list(batch.documents)


@pytest.fixture(scope="module")
def real_index(
    tmp_path_factory: pytest.TempPathFactory, real_documents: list[ParsedDocument]
) -> FilingIndex:
    folder = tmp_path_factory.mktemp("real") / "ix"
    index = FilingIndex(folder, embedder=HashingEmbedder(128), embedding_cache=False)
    report = index.add(real_documents)
    assert report.failures == ()
    return index


@pytest.mark.slow
@settings(max_examples=50, deadline=None)
@given(
    as_of=st.one_of(
        st.dates(min_value=date(2018, 1, 1), max_value=date(2026, 6, 30)),
        st.datetimes(min_value=datetime(2018, 1, 1), max_value=datetime(2026, 6, 30)),
    ),
    query=st.sampled_from(QUERIES),
    mode=st.sampled_from(["hybrid", "dense", "bm25"]),
    k=st.integers(min_value=1, max_value=25),
)
def test_property_real_index_never_returns_a_future_chunk(
    real_index: FilingIndex,
    real_documents: list[ParsedDocument],
    as_of: date | datetime,
    query: str,
    mode: str,
    k: int,
) -> None:
    cut = as_of_timestamp(as_of)
    hits = real_index.search(query, as_of=as_of, k=k, mode=mode)  # type: ignore[arg-type]
    assert all(int(hit.metadata["available_at"]) <= cut for hit in hits)  # type: ignore[call-overload]
    public = [d for d in real_documents if d.meta.available_at.timestamp() <= cut]
    assert all(hit.metadata["doc_id"] in {d.meta.doc_id for d in public} for hit in hits)
    if mode != "bm25" and public:
        eligible = sum(len(chunk_document(d)) for d in public)
        assert len(hits) == min(k, eligible)


@pytest.mark.slow
def test_real_citations_point_at_the_quoted_text(
    real_index: FilingIndex, real_documents: list[ParsedDocument]
) -> None:
    texts = {d.meta.doc_id: d.text for d in real_documents}
    hits = real_index.search("Item 1A risk factors", as_of="2026-01-01", k=20, item="1A")
    assert hits
    for hit in hits:
        citation = hit.citation
        assert citation.item == "1A"
        assert texts[citation.doc_id][citation.start : citation.end] == hit.text
        assert citation.accession == citation.doc_id
    aapl = real_index.search("iPhone net sales", as_of="2026-01-01", ticker="AAPL", form="10-K")
    assert aapl
    assert {h.citation.form for h in aapl} == {"10-K"}
    assert aapl[0].source.startswith("AAPL 10-K FY2024, Item ")


@pytest.mark.slow
def test_real_get_section_returns_the_parsed_item(
    real_index: FilingIndex, real_documents: list[ParsedDocument]
) -> None:
    document = next(d for d in real_documents if d.meta.ticker == "AAPL" and d.meta.form == "10-K")
    expected = next(s for s in document.sections if s.key == "1A")
    found = real_index.get_section(document.meta.doc_id, "1A", as_of="2026-01-01")
    assert found is not None
    assert found.section.text == expected.text
    assert real_index.get_section(document.meta.doc_id, "1A", as_of="2024-01-01") is None


@pytest.mark.slow
def test_minilm_end_to_end_on_small_real_sections(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "filings" / "sec-edgar-filings" / "AAPL"
    eight_k = parse_filing(root / "8-K" / "0001193125-19-292676" / "full-submission.txt")
    ten_q = parse_filing(root / "10-Q" / "0000320193-23-000077" / "primary-document.html")
    assert isinstance(eight_k, ParsedDocument)
    assert isinstance(ten_q, ParsedDocument)
    small_q = ParsedDocument(
        ten_q.meta, ten_q.text, tuple(s for s in ten_q.sections if s.key in ("I-4", "II-2"))
    )
    embedder = MiniLMEmbedder()
    cache = EmbeddingCache(tmp_path / "cache")
    index = FilingIndex(tmp_path / "ix", embedder=embedder, embedding_cache=cache)
    first = index.add([eight_k, small_q])
    assert 0 < first.embedded == first.chunks <= 30
    assert index.add([eight_k, small_q]).embedded == 0
    bonds = index.search(
        "Apple borrowed money by selling euro bonds", as_of="2024-01-01", k=3, mode="dense"
    )
    assert bonds[0].citation.item == "8.01"
    controls = index.search(
        "were the disclosure controls effective", as_of="2024-01-01", k=3, mode="dense"
    )
    assert controls[0].citation.item == "I-4"
    # A second index over the same texts is served from the cache: no encoding at all.
    again = FilingIndex(tmp_path / "ix2", embedder=MiniLMEmbedder(), embedding_cache=cache)
    assert again.add([eight_k, small_q]).embedded == 0
