"""Item-aware chunking: stable ids, exact offsets, windows that never cross a section."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.quant_core.errors import InputError
from quantdesk.rag.chunking import ChunkingConfig, chunk_document, context_header
from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section

AVAILABLE = datetime(2024, 11, 1, 20, 30, 15, 500000, tzinfo=UTC)


def _meta(doc_id: str = "0000320193-24-000123", **changes: object) -> FilingMeta:
    values: dict[str, object] = {
        "ticker": "aapl",
        "cik": "0000320193",
        "company": "Apple Inc.",
        "form": "10-K",
        "accession": doc_id,
        "filing_date": AVAILABLE.date(),
        "acceptance_datetime": AVAILABLE,
        "period_end": None,
        "fiscal_year": 2024,
        "fiscal_period": "FY",
        "available_at": AVAILABLE,
        "available_at_estimated": False,
        "source_path": "/filings/aapl.txt",
        "doc_id": doc_id,
    }
    values.update(changes)
    return FilingMeta(**values)  # type: ignore[arg-type]


def _document(bodies: list[tuple[str, str, str]], **meta: object) -> ParsedDocument:
    text, sections = "Cover page\n\n", []
    for key, title, body in bodies:
        start = len(text)
        text += body
        sections.append(Section(key, title, body, start, len(text)))
        text += "\n\n"
    return ParsedDocument(_meta(**meta), text, tuple(sections))


def _words(n: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def test_chunks_stay_inside_their_section_and_offsets_are_exact() -> None:
    document = _document(
        [("1A", "Risk Factors", _words(500, "risk")), ("7", "MD&A", _words(30, "mda"))]
    )
    chunks = chunk_document(document)
    assert [c.chunk_id for c in chunks][:2] == [
        "0000320193-24-000123:1A:0",
        "0000320193-24-000123:1A:1",
    ]
    assert chunks[-1].chunk_id == "0000320193-24-000123:7:0"
    for chunk in chunks:
        assert document.text[chunk.start : chunk.end] == chunk.text
        section = next(s for s in document.sections if s.key == chunk.item)
        assert section.start <= chunk.start < chunk.end <= section.end
        assert len(chunk.text.split()) <= 180 + 40
    assert all("risk" in c.text for c in chunks if c.item == "1A")
    assert all("risk" not in c.text for c in chunks if c.item == "7")


def test_windows_overlap_and_cover_every_word() -> None:
    document = _document([("1", "Business", _words(1000))])
    chunks = chunk_document(document, ChunkingConfig(max_words=100, overlap_words=10))
    covered = set()
    for before, after in itertools.pairwise(chunks):
        assert set(before.text.split()) & set(after.text.split())  # overlap
    for chunk in chunks:
        covered |= set(chunk.text.split())
    assert covered == set(_words(1000).split())


def test_windows_prefer_sentence_ends() -> None:
    sentence = "The company sells phones and services worldwide today."  # 8 words
    document = _document([("1", "Business", " ".join([sentence] * 40))])
    chunks = chunk_document(document, ChunkingConfig(max_words=50, overlap_words=5))
    assert all(chunk.text.endswith(".") for chunk in chunks)


def test_chunk_ids_are_stable_across_runs() -> None:
    document = _document([("1A", "Risk Factors", _words(700))])
    first = [(c.chunk_id, c.content_hash) for c in chunk_document(document)]
    second = [(c.chunk_id, c.content_hash) for c in chunk_document(document)]
    assert first == second


def test_document_without_sections_is_one_body_section() -> None:
    document = ParsedDocument(_meta(), "Plain text " * 50, ())
    chunks = chunk_document(document)
    assert {c.item for c in chunks} == {"body"}
    assert chunks[0].start == 0


def test_metadata_is_flat_and_rounds_availability_up() -> None:
    document = _document([("1A", "Risk Factors", "Some risk.")], period_end=None)
    metadata = chunk_document(document)[0].metadata()
    assert metadata["available_at"] == int(AVAILABLE.timestamp()) + 1  # .5 s rounds up
    assert metadata["ticker"] == "AAPL"
    assert metadata["company_key"] == "apple"
    assert metadata["item"] == "1A"
    assert "period_end" not in metadata
    assert all(isinstance(v, str | int | float | bool) for v in metadata.values())


def test_context_header_names_company_period_and_item() -> None:
    header = context_header(_meta(), "1A", "Risk Factors")
    assert header == "Apple Inc. (AAPL) 10-K FY2024 - Item 1A. Risk Factors"
    assert context_header(_meta(fiscal_period="Q3"), "page-4", "").endswith("Q3 FY2024 - page 4")


def test_naive_available_at_is_refused() -> None:
    document = _document([("1", "Business", "text")], available_at=datetime(2024, 1, 1))
    with pytest.raises(InputError, match="time zone"):
        chunk_document(document)


@pytest.mark.parametrize(
    ("max_words", "overlap"), [(4, 0), (100, 50), (100, -1)], ids=["tiny", "half", "negative"]
)
def test_bad_config_is_refused(max_words: int, overlap: int) -> None:
    with pytest.raises(InputError):
        ChunkingConfig(max_words=max_words, overlap_words=overlap)


@settings(max_examples=60, deadline=None)
@given(
    sections=st.lists(
        st.text(alphabet=st.sampled_from("ab .\n"), min_size=0, max_size=400),
        min_size=1,
        max_size=4,
    ),
    max_words=st.integers(min_value=8, max_value=40),
)
def test_property_chunks_are_exact_slices_within_sections(
    sections: list[str], max_words: int
) -> None:
    document = _document([(str(i + 1), f"S{i}", body) for i, body in enumerate(sections)])
    config = ChunkingConfig(max_words=max_words, overlap_words=max_words // 4, min_tail_words=3)
    chunks = chunk_document(document, config)
    for chunk in chunks:
        section = next(s for s in document.sections if s.key == chunk.item)
        assert section.start <= chunk.start < chunk.end <= section.end
        assert document.text[chunk.start : chunk.end] == chunk.text
    for section in document.sections:
        words = re.findall(r"\S+", section.text)
        got = [c for c in chunks if c.item == section.key]
        assert bool(words) == bool(got)
        if got:
            assert got[0].start == section.start + re.search(r"\S", section.text).start()  # type: ignore[union-attr]
            assert got[-1].end == section.start + len(section.text.rstrip())
