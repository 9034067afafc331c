"""Retrieval: point-in-time cut inside both retrievers, filters, fusion, modes, citations."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.quant_core.errors import InputError
from quantdesk.rag.chunking import chunk_document
from quantdesk.rag.citations import Citation
from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section
from quantdesk.rag.embeddings import HashingEmbedder
from quantdesk.rag.filters import as_of_timestamp
from quantdesk.rag.hybrid import reciprocal_rank_fusion
from quantdesk.rag.index import FilingIndex
from quantdesk.rag.lexical import tokenize

VOCABULARY = ["revenue", "margin", "cybersecurity", "tariff", "inventory", "goodwill"]
VOCABULARY += ["litigation", "dividend"]
START = datetime(2019, 1, 1, tzinfo=UTC)


def _document(number: int, rng: np.random.Generator) -> ParsedDocument:
    """Synthetic filing ``number``: random vocabulary, its own availability time."""
    ticker = ("AAA", "BBB", "CCC")[number % 3]
    form = "10-K" if number % 2 == 0 else "10-Q"
    available = START + timedelta(days=int(rng.integers(0, 2000)), seconds=float(rng.random()))
    text, sections = "", []
    for key in ("1A", "7") if form == "10-K" else ("I-2", "II-1A"):
        body = " ".join(rng.choice(VOCABULARY, size=int(rng.integers(20, 400))).tolist()) + "."
        start = len(text)
        text += body
        sections.append(Section(key, f"Section {key}", body, start, len(text)))
        text += "\n\n"
    meta = FilingMeta(
        ticker=ticker,
        cik=None,
        company=f"{ticker} Industries Inc",
        form=form,
        accession=None,
        filing_date=None,
        acceptance_datetime=available,
        period_end=None,
        fiscal_year=2018 + number % 6,
        fiscal_period="FY" if form == "10-K" else "Q2",
        available_at=available,
        available_at_estimated=False,
        source_path=f"/synthetic/{number}",
        doc_id=f"doc{number:02d}",
    )
    return ParsedDocument(meta, text, tuple(sections))


@pytest.fixture(scope="module")
def corpus() -> list[ParsedDocument]:
    rng = np.random.default_rng(20261120)
    return [_document(number, rng) for number in range(14)]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, corpus: list[ParsedDocument]) -> FilingIndex:
    folder = tmp_path_factory.mktemp("retrieval")
    built = FilingIndex(folder / "ix", embedder=HashingEmbedder(), embedding_cache=False)
    built.add(corpus)
    return built


@pytest.fixture(scope="module")
def availability(corpus: list[ParsedDocument]) -> dict[str, int]:
    """Chunk id -> available_at epoch seconds (as stored), the brute-force truth."""
    return {
        c.chunk_id: int(c.metadata()["available_at"]) for d in corpus for c in chunk_document(d)
    }


as_of_values = st.one_of(
    st.datetimes(
        min_value=datetime(2018, 6, 1),
        max_value=datetime(2025, 12, 31),
        timezones=st.just(UTC),
    ),
    st.dates(min_value=date(2018, 6, 1), max_value=date(2025, 12, 31)),
)


@settings(max_examples=60, deadline=None)
@given(
    as_of=as_of_values,
    query=st.sampled_from([*VOCABULARY, "revenue tariff", "goodwill litigation dividend"]),
    mode=st.sampled_from(["hybrid", "dense", "bm25"]),
    k=st.integers(min_value=1, max_value=30),
)
def test_property_no_hit_is_available_after_as_of(
    index: FilingIndex,
    availability: dict[str, int],
    as_of: date | datetime,
    query: str,
    mode: str,
    k: int,
) -> None:
    cut = as_of_timestamp(as_of)
    hits = index.search(query, as_of=as_of, k=k, mode=mode)  # type: ignore[arg-type]
    assert all(availability[hit.chunk_id] <= cut for hit in hits)
    assert all(hit.citation.available_at.timestamp() <= cut for hit in hits)
    eligible = sum(1 for stamp in availability.values() if stamp <= cut)
    # Every eligible chunk contains vocabulary, and both retrievers filter before ranking,
    # so the cut never starves the results: k hits whenever k chunks are eligible.
    assert len(hits) == min(k, eligible)
    assert len({hit.chunk_id for hit in hits}) == len(hits)


def test_as_of_date_means_the_new_york_close() -> None:
    assert as_of_timestamp("2023-07-03") == int(datetime(2023, 7, 3, 20, tzinfo=UTC).timestamp())
    assert as_of_timestamp(date(2023, 1, 3)) == int(
        datetime(2023, 1, 3, 21, tzinfo=UTC).timestamp()
    )
    assert as_of_timestamp("2023-01-03T10:00:00.9+00:00") == int(
        datetime(2023, 1, 3, 10, tzinfo=UTC).timestamp()
    )


@pytest.mark.parametrize("bad", [None, "yesterday", 20230101, "2023-13-01"])
def test_as_of_is_required_and_validated(index: FilingIndex, bad: object) -> None:
    with pytest.raises(InputError, match="as_of"):
        index.search("revenue", as_of=bad)  # type: ignore[arg-type]


def test_filters_apply_in_every_mode(index: FilingIndex, corpus: list[ParsedDocument]) -> None:
    for mode in ("hybrid", "dense", "bm25"):
        hits = index.search("revenue", as_of="2030-01-01", k=40, mode=mode, ticker="bbb")  # type: ignore[arg-type]
        assert hits
        assert {hit.citation.ticker for hit in hits} == {"BBB"}
        hits = index.search(
            "revenue",
            as_of="2030-01-01",
            k=40,
            mode=mode,
            form="10-Q",
            item="II-1A",  # type: ignore[arg-type]
        )
        assert {(hit.citation.form, hit.citation.item) for hit in hits} == {("10-Q", "II-1A")}
        hits = index.search("margin", as_of="2030-01-01", mode=mode, fiscal_year=[2019, 2020])  # type: ignore[arg-type]
        assert {hit.citation.fiscal_year for hit in hits} <= {2019, 2020}
        hits = index.search("margin", as_of="2030-01-01", mode=mode, doc_id="doc03")  # type: ignore[arg-type]
        assert {hit.metadata["doc_id"] for hit in hits} == {"doc03"}
        hits = index.search("margin", as_of="2030-01-01", mode=mode, company="CCC Industries")  # type: ignore[arg-type]
        assert {hit.citation.ticker for hit in hits} == {"CCC"}


def test_hybrid_fuses_both_rankings(index: FilingIndex) -> None:
    hybrid = index.search("goodwill litigation", as_of="2030-01-01", k=10)
    assert all(h.dense_rank is not None or h.lexical_rank is not None for h in hybrid)
    assert any(h.dense_rank is not None and h.lexical_rank is not None for h in hybrid)
    assert [h.rank for h in hybrid] == list(range(1, 11))
    assert all(a.score >= b.score for a, b in itertools.pairwise(hybrid))


def test_inferred_filters_narrow_the_search(index: FilingIndex) -> None:
    hits = index.search("BBB 10-Q revenue in fiscal 2019", as_of="2030-01-01", infer=True)
    assert hits
    assert {(h.citation.ticker, h.citation.form, h.citation.fiscal_year) for h in hits} == {
        ("BBB", "10-Q", 2019)
    }
    # An impossible inferred combination falls back to the company alone.
    fallback = index.search("CCC revenue in FY2035", as_of="2030-01-01", infer=True)
    assert fallback
    assert {h.citation.ticker for h in fallback} == {"CCC"}
    # Explicit arguments win over inferred ones.
    explicit = index.search("BBB revenue", as_of="2030-01-01", infer=True, ticker="AAA")
    assert {h.citation.ticker for h in explicit} == {"AAA"}


def test_bad_mode_and_k_are_refused(index: FilingIndex) -> None:
    with pytest.raises(InputError, match="mode"):
        index.search("x", as_of="2020-01-01", mode="sparse")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="k=0"):
        index.search("x", as_of="2020-01-01", k=0)


def test_empty_index_returns_nothing(tmp_path: Path) -> None:
    empty = FilingIndex(tmp_path / "empty", embedder=HashingEmbedder())
    assert empty.search("revenue", as_of="2030-01-01") == []
    assert empty.stats().chunks == 0


def test_rrf_matches_a_hand_computed_example() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], k=60)
    scores = {item.item_id: item.score for item in fused}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert scores["d"] == pytest.approx(1 / 63)
    assert [item.item_id for item in fused] == ["a", "c", "b", "d"]
    assert fused[0].ranks == (1, 2)
    assert fused[3].ranks == (None, 3)
    weighted = reciprocal_rank_fusion([["x"], ["y"]], k=1, weights=[1.0, 3.0])
    assert [item.item_id for item in weighted] == ["y", "x"]
    tie = reciprocal_rank_fusion([["b"], ["a"]])
    assert [item.item_id for item in tie] == ["a", "b"]  # ties break by id
    assert reciprocal_rank_fusion([["a", "a", "b"]], limit=1)[0].score == pytest.approx(1 / 61)


@pytest.mark.parametrize(("k", "weights"), [(0, None), (60, [1.0]), (60, [1.0, -1.0])])
def test_rrf_refuses_bad_parameters(k: int, weights: list[float] | None) -> None:
    with pytest.raises(InputError):
        reciprocal_rank_fusion([["a"], ["b"]], k=k, weights=weights)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Revenues rose to $1,234.5 million", ["revenue", "rose", "1234.5", "million"]),
        (
            "Item 1.01 Entry into a Material Definitive Agreement",
            ["item", "1.01", "entry", "material", "definitive", "agreement"],
        ),
        ("The liabilities and the business", ["liability", "business"]),
    ],
)
def test_tokenize_golden(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (
            {"ticker": "AAPL", "form": "10-K", "fiscal_year": 2024, "fiscal_period": "FY",
             "item": "1A", "accession": "0000320193-24-000123", "doc_id": "0000320193-24-000123",
             "start": 12345, "end": 13890, "available_at": 1730500000},
            "AAPL 10-K FY2024, Item 1A (0000320193-24-000123, chars 12345-13890)",
        ),
        (
            {"ticker": "AAPL", "form": "10-Q", "fiscal_year": 2025, "fiscal_period": "Q3",
             "item": "I-2", "doc_id": "abc123", "start": 0, "end": 10, "available_at": 0},
            "AAPL 10-Q Q3 FY2025, Item I-2 (abc123, chars 0-10)",
        ),
        (
            {"company": "3M", "form": "10-K", "fiscal_year": 2018, "item": "page-12",
             "doc_id": "3M_2018_10K", "start": 5, "end": 9, "available_at": 0},
            "3M 10-K FY2018, page 12 (3M_2018_10K, chars 5-9)",
        ),
    ],
)  # fmt: skip
def test_citation_format_golden(metadata: dict[str, object], expected: str) -> None:
    citation = Citation.from_metadata(metadata)
    assert citation.format() == expected
    assert str(citation) == expected


def test_citation_can_show_availability() -> None:
    citation = Citation.from_metadata(
        {"ticker": "X", "form": "10-K", "item": "7", "doc_id": "d", "start": 1, "end": 2,
         "available_at_iso": "2024-11-01T20:30:00+00:00", "available_at_estimated": True}
    )  # fmt: skip
    assert citation.format(with_available_at=True).endswith(
        "public 2024-11-01 20:30 UTC (estimated)"
    )
