"""Query rewriting: instructions dropped, metric line items appended, used in every mode."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section
from quantdesk.rag.embeddings import HashingEmbedder
from quantdesk.rag.index import FilingIndex
from quantdesk.rag.query_rewrite import (
    FINANCIAL_LEXICON,
    LEXICON_DENSE_WEIGHT,
    fusion_weights,
    rewrite_query,
)

AS_OF = "2030-01-01"


@pytest.mark.parametrize(
    ("question", "gone", "kept"),
    [
        (
            "What is the FY2021 capex? Round your answer to two decimal places.",
            ["Round", "decimal", "places"],
            ["FY2021", "capex"],
        ),
        (
            "You are an investment banker and your only resource is the balance sheet.",
            ["banker", "resource"],
            ["balance", "sheet"],
        ),
        ("Answer in USD millions: how much cash did Best Buy hold?", ["USD", "millions"], ["Best"]),
        ("How did US sales growth compare with international sales?", ["How"], ["US", "sales"]),
        (
            "What does Verizon expect to pay under its defined benefit plans?",
            ["What"],
            ["defined", "benefit", "Verizon"],
        ),
        (
            "Which reporting units had goodwill? Answer in units of percents.",
            ["percents"],
            ["reporting", "units", "goodwill"],
        ),
    ],
)
def test_instructions_are_dropped_and_content_words_kept(
    question: str, gone: list[str], kept: list[str]
) -> None:
    core = rewrite_query(question).core.split()
    for word in gone:
        assert word not in core, (word, core)
    for word in kept:
        assert any(token.startswith(word) for token in core), (word, core)


@pytest.mark.parametrize(
    ("question", "entry", "terms"),
    [
        ("What is the FY2022 return on assets (ROA)?", "return on assets", "total assets"),
        ("Is the quick ratio healthy?", "quick ratio", "marketable securities"),
        ("What was capex in 2021?", "capital expenditure", "purchases of property"),
        ("Compute the fixed asset turnover ratio.", "fixed asset turnover", "property plant"),
        ("Using the P&L, what was EBITDA?", "income statement", "statements of operations"),
        ("Use the statement of financial position.", "balance sheet", "balance sheets"),
        ("What was the cash conversion cycle?", "cash conversion cycle", "accounts payable"),
    ],
)
def test_metrics_and_statements_expand_to_line_items(question: str, entry: str, terms: str) -> None:
    rewritten = rewrite_query(question)
    assert entry in rewritten.matched
    assert terms in rewritten.expansion
    assert rewritten.text.endswith(rewritten.expansion)
    assert fusion_weights(rewritten) == (LEXICON_DENSE_WEIGHT, 1.0)


def test_a_question_naming_no_metric_is_not_expanded() -> None:
    rewritten = rewrite_query("Who are the primary customers of Boeing as of FY2022?")
    assert rewritten.matched == ()
    assert rewritten.expansion == ""
    assert rewritten.text == rewritten.core
    assert rewritten.core == "Who are the primary customers of Boeing as of FY2022"
    assert fusion_weights(rewritten) == (1.0, 1.0)
    assert fusion_weights(None) == (1.0, 1.0)
    assert rewrite_query("ROA", expand=False).expansion == ""


def test_a_keyword_query_is_never_emptied() -> None:
    # Only request words: stripping would leave nothing, so the query stays as given.
    assert rewrite_query("what answer").core == "what answer"
    assert rewrite_query("  decimal  ").text == "decimal"


def test_every_lexicon_entry_matches_its_own_name_and_has_terms() -> None:
    names = [entry.name for entry in FINANCIAL_LEXICON]
    assert len(names) == len(set(names))
    for entry in FINANCIAL_LEXICON:
        assert entry.terms.strip()
        assert re.compile(entry.pattern, re.IGNORECASE).search(entry.name), entry.name
        assert entry.name in rewrite_query(f"What about the {entry.name}?").matched


_VOCABULARY = (
    "what is the ROA of Acme in FY2021 round your answer to two decimal places quick ratio "
    "revenue balance sheet you are an analyst answer in USD millions capex P&L"
)
_WORDS = st.sampled_from(_VOCABULARY.split())


@settings(max_examples=80, deadline=None)
@given(st.lists(_WORDS, min_size=1, max_size=25))
def test_property_the_core_only_keeps_words_of_the_question(words: list[str]) -> None:
    question = " ".join(words)
    rewritten = rewrite_query(question)
    assert set(rewritten.core.split()) <= set(question.split())
    assert rewritten.core.strip()
    lexicon_terms = {word for entry in FINANCIAL_LEXICON for word in entry.terms.split()}
    assert set(rewritten.expansion.split()) <= lexicon_terms


# -- the index searches for the rewritten text ------------------------------------------


def _document() -> ParsedDocument:
    """A three-page filing: a cash flow statement, a narrative page, a rounding-policy page."""
    pages = [
        "Consolidated Statements of Cash Flows. Investing activities: purchases of property, "
        "plant and equipment (2,437); proceeds from sales of businesses 120; acquisitions (88).",
        "Our strategy is to grow the business with new stores and a loyal customer base. We "
        "plan the year with discipline and expect growth in every region during 2021.",
        "Amounts in the tables are rounded to two decimal places; your totals may differ from "
        "the sum of the rounded amounts. The answer to rounding differences is in Note 1.",
    ]
    text, sections = "", []
    for number, page in enumerate(pages):
        start = len(text)
        text += page
        sections.append(Section(f"page-{number}", "", page, start, len(text)))
        text += "\n"
    available = datetime(2022, 2, 1, tzinfo=UTC)
    meta = FilingMeta(
        ticker="ACME",
        cik=None,
        company="Acme Corp",
        form="10-K",
        accession=None,
        filing_date=None,
        acceptance_datetime=available,
        period_end=None,
        fiscal_year=2021,
        fiscal_period="FY",
        available_at=available,
        available_at_estimated=False,
        source_path="/synthetic/acme",
        doc_id="acme",
    )
    return ParsedDocument(meta, text, tuple(sections))


class _RecordingEmbedder(HashingEmbedder):
    """Hashing embedder that remembers every text it embedded."""

    def __init__(self) -> None:
        super().__init__(64)
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return super().embed(texts)


@pytest.fixture
def acme(tmp_path: Path) -> tuple[FilingIndex, _RecordingEmbedder]:
    embedder = _RecordingEmbedder()
    index = FilingIndex(tmp_path / "ix", embedder=embedder, embedding_cache=False)
    index.add([_document()])
    return index, embedder


def _pages(index: FilingIndex, query: str, **options: object) -> list[str]:
    hits = index.search(query, as_of=AS_OF, k=3, doc_id="acme", **options)  # type: ignore[arg-type]
    return [str(hit.metadata["item"]) for hit in hits]


def test_synonym_expansion_finds_the_statement_bm25_alone_misses(
    acme: tuple[FilingIndex, _RecordingEmbedder],
) -> None:
    index, _ = acme
    question = "What was capex in 2021?"
    # The cash flow statement shares no word with the question: BM25 finds only the
    # narrative page that mentions 2021.
    assert _pages(index, question, mode="bm25", rewrite=False) == ["page-1"]
    assert _pages(index, question, mode="bm25")[0] == "page-0"
    assert _pages(index, question, mode="hybrid")[0] == "page-0"


def test_instruction_words_no_longer_pull_in_a_rounding_page(
    acme: tuple[FilingIndex, _RecordingEmbedder],
) -> None:
    index, _ = acme
    question = "How much did Acme spend on acquisitions? Round your answer to two decimal places."
    assert _pages(index, question, mode="bm25", rewrite=False)[0] == "page-2"
    assert _pages(index, question, mode="bm25")[0] == "page-0"


def test_dense_mode_embeds_the_rewritten_text(acme: tuple[FilingIndex, _RecordingEmbedder]) -> None:
    index, embedder = acme
    question = "What was the capex? Round your answer to two decimal places."
    embedder.seen.clear()
    index.search(question, as_of=AS_OF, mode="dense")
    assert embedder.seen == [rewrite_query(question).text]
    embedder.seen.clear()
    index.search(question, as_of=AS_OF, mode="dense", rewrite=False)
    assert embedder.seen == [question]


def test_default_weights_follow_the_lexicon_match(
    acme: tuple[FilingIndex, _RecordingEmbedder],
) -> None:
    index, _ = acme
    for question, weights in (
        ("What was the capex in 2021?", (LEXICON_DENSE_WEIGHT, 1.0)),
        ("Which stores opened in 2021?", (1.0, 1.0)),
    ):
        auto = index.search(question, as_of=AS_OF, k=3)
        explicit = index.search(question, as_of=AS_OF, k=3, weights=weights)
        assert [(h.chunk_id, h.score) for h in auto] == [(h.chunk_id, h.score) for h in explicit]
    # The score of a hit ranked first by both retrievers shows the weights actually used.
    top = index.search("capex purchases of property plant and equipment", as_of=AS_OF, k=1)[0]
    ranks = (top.dense_rank, top.lexical_rank)
    assert ranks == (1, 1)
    assert top.score == pytest.approx((LEXICON_DENSE_WEIGHT + 1.0) / 61)


def test_filters_are_inferred_from_the_question_not_the_rewrite(
    acme: tuple[FilingIndex, _RecordingEmbedder],
) -> None:
    index, _ = acme
    hits = index.search("What was ACME's capex in FY2021?", as_of=AS_OF, infer=True)
    assert hits
    assert {h.citation.ticker for h in hits} == {"ACME"}
    # An inferred year the index does not hold falls back to the company, as without rewriting.
    assert index.search("ACME capex in FY2035", as_of=AS_OF, infer=True)
