"""FilingIndex ingestion: idempotent, cached embeddings, persistence, sections and stats."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.settings import get_settings
from quantdesk.rag.documents import FilingMeta, ParsedDocument, ParseFailure, Section
from quantdesk.rag.embeddings import CachingEmbedder, EmbeddingCache, HashingEmbedder
from quantdesk.rag.index import FilingIndex

TOPICS = {
    "1A": ("Risk Factors", "cybersecurity breach ransomware outage regulators fines"),
    "7": ("Management's Discussion and Analysis", "revenue margin growth services iphone"),
    "8": ("Financial Statements", "balance sheet cash equivalents goodwill inventory"),
}


def make_document(
    doc_id: str,
    ticker: str,
    fiscal_year: int,
    available_at: datetime,
    *,
    words: int = 300,
    form: str = "10-K",
    extra: str = "",
) -> ParsedDocument:
    """A synthetic filing: one section per topic, each ``words`` words of known vocabulary."""
    text, sections = f"{ticker} annual report cover page\n\n", []
    for key, (title, vocabulary) in TOPICS.items():
        terms = vocabulary.split()
        body = " ".join(terms[i % len(terms)] for i in range(words)) + "." + extra
        start = len(text)
        text += body
        sections.append(Section(key, title, body, start, len(text)))
        text += "\n\n"
    meta = FilingMeta(
        ticker=ticker,
        cik="0000000001",
        company=f"{ticker.title()} Holdings Inc.",
        form=form,
        accession=doc_id,
        filing_date=available_at.date(),
        acceptance_datetime=available_at,
        period_end=date(fiscal_year, 12, 31),
        fiscal_year=fiscal_year,
        fiscal_period="FY" if form == "10-K" else "Q2",
        available_at=available_at,
        available_at_estimated=False,
        source_path=f"/filings/{doc_id}.txt",
        doc_id=doc_id,
    )
    return ParsedDocument(meta, text, tuple(sections))


@pytest.fixture
def docs() -> list[ParsedDocument]:
    return [
        make_document("0000000001-22-000001", "AAA", 2021, datetime(2022, 2, 1, 21, tzinfo=UTC)),
        make_document("0000000002-23-000002", "BBB", 2022, datetime(2023, 2, 1, 21, tzinfo=UTC)),
    ]


def test_add_reports_what_it_indexed(tmp_path: Path, docs: list[ParsedDocument]) -> None:
    index = FilingIndex(tmp_path / "ix", embedder=HashingEmbedder())
    report = index.add(docs)
    assert report.documents == 2
    assert report.added == report.chunks == report.embedded > 0
    assert (report.updated, report.unchanged, report.removed, report.failures) == (0, 0, 0, ())
    stats = index.stats()
    assert stats.chunks == stats.vectors == report.chunks
    assert stats.tickers == ("AAA", "BBB")
    assert stats.first_available_at == datetime(2022, 2, 1, 21, tzinfo=UTC)


def test_reingest_embeds_and_writes_nothing(tmp_path: Path, docs: list[ParsedDocument]) -> None:
    embedder = HashingEmbedder()
    index = FilingIndex(tmp_path / "ix", embedder=embedder)
    first = index.add(docs)
    calls, generation = embedder.calls, index._store.generation
    second = index.add(docs)
    assert embedder.calls == calls
    assert index._store.generation == generation  # BM25 model stays valid
    assert (second.added, second.updated, second.embedded) == (0, 0, 0)
    assert second.unchanged == first.chunks
    assert index.stats().vectors == first.chunks


def test_new_index_over_same_corpus_uses_the_embedding_cache(
    tmp_path: Path, docs: list[ParsedDocument]
) -> None:
    embedder = HashingEmbedder()
    FilingIndex(tmp_path / "one", embedder=embedder).add(docs)
    texts = embedder.texts_embedded
    report = FilingIndex(tmp_path / "two", embedder=embedder).add(docs)
    assert embedder.texts_embedded == texts
    assert report.embedded == 0
    assert report.cache_hits == report.added == report.chunks


def test_changed_document_updates_and_removes_chunks(
    tmp_path: Path, docs: list[ParsedDocument]
) -> None:
    index = FilingIndex(tmp_path / "ix", embedder=HashingEmbedder())
    index.add(docs)
    shorter = make_document(
        "0000000001-22-000001", "AAA", 2021, datetime(2022, 2, 1, 21, tzinfo=UTC), words=60
    )
    report = index.add([shorter])
    assert report.removed > 0
    assert report.updated + report.unchanged == report.chunks
    assert index.stats().vectors == index.stats().chunks
    hits = index.search("ransomware", as_of="2030-01-01", k=50, mode="bm25", ticker="AAA")
    assert {hit.chunk_id for hit in hits} == {"0000000001-22-000001:1A:0"}


def test_availability_change_updates_metadata_without_embedding(
    tmp_path: Path, docs: list[ParsedDocument]
) -> None:
    embedder = HashingEmbedder()
    index = FilingIndex(tmp_path / "ix", embedder=embedder)
    index.add(docs)
    later = datetime(2024, 1, 5, tzinfo=UTC)
    moved = replace(docs[0], meta=replace(docs[0].meta, available_at=later))
    calls = embedder.calls
    report = index.add([moved])
    assert report.updated == report.chunks
    assert report.embedded == 0
    assert embedder.calls == calls
    assert not index.search("ransomware", as_of="2023-12-31", ticker="AAA")
    assert index.search("ransomware", as_of="2024-01-05", ticker="AAA")


def test_failures_are_reported_and_the_batch_goes_on(
    tmp_path: Path, docs: list[ParsedDocument]
) -> None:
    naive = replace(docs[1], meta=replace(docs[1].meta, available_at=datetime(2023, 1, 1)))
    empty = ParsedDocument(replace(docs[0].meta, doc_id="empty", source_path="/e"), "  ", ())
    failure = ParseFailure("/bad.txt", "no SGML header")
    report = FilingIndex(tmp_path / "ix", embedder=HashingEmbedder()).add(
        [failure, naive, empty, docs[0]]
    )
    assert report.documents == 1
    reasons = {f.source_path: f.reason for f in report.failures}
    assert reasons["/bad.txt"] == "no SGML header"
    assert "time zone" in reasons[docs[1].meta.source_path]
    assert "no text" in reasons["/e"]


def test_index_refuses_a_different_embedding_model(
    tmp_path: Path, docs: list[ParsedDocument]
) -> None:
    FilingIndex(tmp_path / "ix", embedder=HashingEmbedder(64)).add(docs)
    with pytest.raises(InputError, match="hashing-64"):
        FilingIndex(tmp_path / "ix", embedder=HashingEmbedder(32))


def test_index_persists_across_processes(tmp_path: Path, docs: list[ParsedDocument]) -> None:
    index = FilingIndex(tmp_path / "ix", embedder=HashingEmbedder())
    index.add(docs)
    expected = [h.chunk_id for h in index.search("goodwill inventory", as_of="2030-01-01", k=5)]
    index.close()
    script = textwrap.dedent(
        f"""
        from quantdesk.rag.embeddings import HashingEmbedder
        from quantdesk.rag.index import FilingIndex
        index = FilingIndex({str(tmp_path / "ix")!r}, embedder=HashingEmbedder(),
                            embedding_cache=False)
        print(index.stats().vectors)
        hits = index.search("goodwill inventory", as_of="2030-01-01", k=5)
        print(",".join(h.chunk_id for h in hits))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    vectors, ids = done.stdout.strip().splitlines()[-2:]
    assert int(vectors) == index_chunks(docs)
    assert ids.split(",") == expected


def index_chunks(docs: list[ParsedDocument]) -> int:
    from quantdesk.rag.chunking import chunk_document

    return sum(len(chunk_document(d)) for d in docs)


def test_bm25_model_is_persisted_and_reloaded(tmp_path: Path, docs: list[ParsedDocument]) -> None:
    index = FilingIndex(tmp_path / "ix", embedder=HashingEmbedder())
    index.add(docs)
    before = index.search("goodwill", as_of="2030-01-01", mode="bm25")
    assert (tmp_path / "ix" / "quantdesk_bm25" / "quantdesk_state.json").is_file()
    reopened = FilingIndex(tmp_path / "ix", embedder=HashingEmbedder())
    assert reopened.search("goodwill", as_of="2030-01-01", mode="bm25") == before


def test_get_section_respects_as_of(tmp_path: Path, docs: list[ParsedDocument]) -> None:
    index = FilingIndex(tmp_path / "ix", embedder=HashingEmbedder())
    index.add(docs)
    doc = docs[1]
    section = index.get_section(doc.meta.doc_id, "1a", as_of="2023-02-02")
    assert section is not None
    assert section.section == doc.sections[0]
    assert section.citation.format() == (
        f"BBB 10-K FY2022, Item 1A ({doc.meta.doc_id}, chars "
        f"{doc.sections[0].start}-{doc.sections[0].end})"
    )
    # Accepted 21:00 UTC = 16:00 New York on 2023-02-01: public at that day's close, not before.
    assert index.get_section(doc.meta.doc_id, "1A", as_of="2023-02-01") is not None
    assert index.get_section(doc.meta.doc_id, "1A", as_of="2023-01-31") is None
    assert index.get_section(doc.meta.doc_id, "99", as_of="2030-01-01") is None
    assert index.get_section("unknown", "1A", as_of="2030-01-01") is None
    assert [m.doc_id for m in index.documents(as_of="2022-12-31")] == [docs[0].meta.doc_id]


def test_embedding_cache_round_trips_vectors(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "cache")
    inner = HashingEmbedder(16)
    embedder = CachingEmbedder(inner, cache)
    first = embedder.embed(["alpha beta", "gamma", "alpha beta"])
    assert inner.texts_embedded == 2  # the duplicate is encoded once
    second = CachingEmbedder(HashingEmbedder(16), EmbeddingCache(tmp_path / "cache"))
    np.testing.assert_array_equal(second.embed(["gamma", "alpha beta"]), first[[1, 0]])
    assert second.hits == 2
    assert second.misses == 0
    assert len(cache) == 2
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-6)


def test_default_cache_lives_under_quantdesk_home(
    tmp_path: Path, docs: list[ParsedDocument]
) -> None:
    home = get_settings().home  # a temporary folder (tests/conftest.py)
    FilingIndex(tmp_path / "ix", embedder=HashingEmbedder()).add(docs[:1])
    assert (home / "cache" / "embeddings" / "embeddings.sqlite3").is_file()
    default = FilingIndex(embedder=HashingEmbedder())
    assert default.path == home / "chroma"


def test_bad_chroma_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="chroma run"):
        FilingIndex(tmp_path / "ix", embedder=HashingEmbedder(), chroma_url="localhost:8000")
