"""FinanceBench page-retrieval evaluation: metric definitions, paged documents, a small run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantdesk.evals.financebench import (
    QuestionResult,
    distinct_pages,
    first_relevant_rank,
    run_financebench,
    summarise,
)
from quantdesk.evals.financebench_data import (
    FinanceBenchQuestion,
    load_documents,
    load_questions,
    page_document,
)
from quantdesk.quant_core.errors import InputError
from quantdesk.rag.embeddings import HashingEmbedder


def _result(page_rank: int | None, chunk_rank: int | None, seconds: float = 0.01) -> QuestionResult:
    return QuestionResult("q", "within", "hybrid", page_rank, chunk_rank, (), seconds)


def test_distinct_pages_keep_each_page_at_its_best_chunk() -> None:
    chunks = [("A", 3), ("A", 3), ("B", 3), ("A", 7), ("A", 3), ("A", 1)]
    assert distinct_pages(chunks) == [("A", 3), ("B", 3), ("A", 7), ("A", 1)]


@pytest.mark.parametrize(
    ("ranked", "pages", "expected"),
    [
        ([("A", 3), ("B", 5), ("A", 5)], frozenset({5}), 3),  # B's page 5 is the wrong document
        ([("A", 3), ("B", 5), ("A", 5)], frozenset({9, 3}), 1),  # any evidence page counts
        ([("B", 5), ("A", 4)], frozenset({5}), None),
        ([], frozenset({0}), None),
    ],
)
def test_first_relevant_rank(
    ranked: list[tuple[str, int]], pages: frozenset[int], expected: int | None
) -> None:
    assert first_relevant_rank(ranked, "A", pages) == expected


def test_summarise_by_hand() -> None:
    # Four questions: first relevant page at ranks 1, 3, 7 and never; chunks at 1, 6, 12, never.
    results = [_result(1, 1, 0.01), _result(3, 6, 0.02), _result(7, 12, 0.03), _result(None, None)]
    row = summarise(results, ks=(1, 5, 10))
    assert row.recall == ((1, 0.25), (5, 0.5), (10, 0.75))
    assert row.chunk_recall == ((1, 0.25), (5, 0.25), (10, 0.5))
    assert row.mrr == pytest.approx((1 + 1 / 3 + 1 / 7) / 4)
    assert row.questions == 4
    assert row.median_ms == pytest.approx(20.0)


def test_summarise_refuses_mixed_rows() -> None:
    mixed = [_result(1, 1), QuestionResult("q", "corpus", "hybrid", 1, 1, (), 0.0)]
    with pytest.raises(InputError):
        summarise(mixed, ks=(1,))


def test_page_document_sections_are_form_feed_pages(tmp_path: Path) -> None:
    path = tmp_path / "ACME_2021Q3_10Q.md"
    path.write_text("page zero\fpage one text\f\fpage three", encoding="utf-8")
    info = {"doc_name": path.stem, "company": "Acme", "doc_type": "10q", "doc_period": 2021}
    document = page_document(path, info)
    assert [s.key for s in document.sections] == ["page-0", "page-1", "page-2", "page-3"]
    for section in document.sections:
        assert document.text[section.start : section.end] == section.text
    assert document.sections[1].text == "page one text"
    meta = document.meta
    assert (meta.doc_id, meta.form, meta.fiscal_year, meta.fiscal_period) == (
        path.stem,
        "10-Q",
        2021,
        "Q3",
    )
    assert meta.available_at.tzinfo is not None
    assert meta.available_at.year == 2022
    assert meta.available_at_estimated


@pytest.mark.realdata
def test_evidence_pages_exist_and_are_not_empty(shared_data: Path) -> None:
    root = shared_data / "financebench"
    questions = load_questions(root)
    assert len(questions) == 62
    documents = {d.meta.doc_id: d for d in load_documents(root, {q.doc_name for q in questions})}
    for question in questions:
        sections = documents[question.doc_name].sections
        for page in question.evidence_pages:
            assert sections[page].key == f"page-{page}"
            assert sections[page].text.strip(), (question.question_id, page)


@pytest.mark.realdata
@pytest.mark.slow
def test_small_run_on_real_documents(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "financebench"
    questions: list[FinanceBenchQuestion] = load_questions(root)[:4]  # 3M and Activision
    distractor = "3M_2018_10K"
    report = run_financebench(
        root,
        index_path=tmp_path / "ix",
        documents=[distractor],
        max_questions=4,
        embedder=HashingEmbedder(256),
        ks=(1, 5, 10),
        depth=30,
    )
    assert set(report.documents) == {q.doc_name for q in questions} | {distractor}
    assert len(report.rows) == 6
    assert len(report.results) == 24
    for row in report.rows:
        assert row.questions == 4
        values = [v for _, v in row.recall]
        assert values == sorted(values)
        assert all(0.0 <= v <= 1.0 for v in values)
        assert values[0] <= row.mrr <= 1.0  # a hit at rank 1 contributes 1
    for result in report.results:
        if result.scope == "within":
            question = next(q for q in questions if q.question_id == result.question_id)
            assert {doc for doc, _ in result.top_pages} <= {question.doc_name}
    table = report.to_markdown()
    assert "| within | hybrid | 4 |" in table
    assert "R@5" in table
    # Idempotent: a second run over the same folder embeds nothing.
    again = run_financebench(
        root,
        index_path=tmp_path / "ix",
        documents=[distractor],
        max_questions=4,
        embedder=HashingEmbedder(256),
        modes=("bm25",),
        scopes=("within",),
        depth=30,
    )
    assert again.embedded == 0
    first, second = again.row("within", "bm25"), report.row("within", "bm25")
    assert first is not None
    assert second is not None
    assert (first.recall, first.mrr) == (second.recall, second.mrr)


def _tiny_financebench(root: Path) -> None:
    """A FinanceBench-shaped folder: one 10-K of four pages, two questions."""
    pages = [
        "Acme Corp annual report. Our strategy in 2021 was to open stores.",
        "Risk factors: competition, rounding of amounts to two decimal places, weather.",
        "Consolidated Statements of Cash Flows. Investing activities: purchases of property, "
        "plant and equipment (2,437); acquisitions of businesses (88).",
        "Legal proceedings: the company is a defendant in patent litigation about stores.",
    ]
    (root / "markdown").mkdir(parents=True)
    (root / "markdown" / "ACME_2021_10K.md").write_text("\f".join(pages), encoding="utf-8")
    info = {"doc_name": "ACME_2021_10K", "company": "Acme", "doc_type": "10k", "doc_period": 2021}
    (root / "financebench_document_information.jsonl").write_text(json.dumps(info) + "\n")
    questions = [
        ("q1", "What was Acme's FY2021 capex? Round your answer to two decimal places.", 2),
        ("q2", "Is Acme a defendant in any patent litigation?", 3),
    ]
    rows = [
        {
            "financebench_id": qid,
            "doc_name": "ACME_2021_10K",
            "question": text,
            "question_type": "metrics-generated",
            "evidence": [{"doc_name": "ACME_2021_10K", "evidence_page_num": page}],
        }
        for qid, text, page in questions
    ]
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    (root / "financebench_dev.jsonl").write_text(lines, encoding="utf-8")


def test_run_on_a_tiny_folder_rewrites_and_states_its_settings(tmp_path: Path) -> None:
    root = tmp_path / "financebench"
    _tiny_financebench(root)
    options = {
        "index_path": tmp_path / "ix",
        "embedder": HashingEmbedder(64),
        "modes": ("bm25", "hybrid"),
        "scopes": ("within",),
        "ks": (1, 2),
        "depth": 4,
    }
    rewritten = run_financebench(root, **options)  # type: ignore[arg-type]
    raw = run_financebench(root, rewrite=False, **options)  # type: ignore[arg-type]
    # The capex question shares no word with the cash flow statement but "Acme" and "FY2021",
    # which every page's header carries; its instruction words point at the risk page.
    capex = {(r.mode, r.page_rank) for r in rewritten.results if r.question_id == "q1"}
    assert capex == {("bm25", 1), ("hybrid", 1)}
    raw_capex = [r for r in raw.results if r.question_id == "q1" and r.mode == "bm25"]
    assert raw_capex[0].top_pages[0] == ("ACME_2021_10K", 1)
    assert raw.embedded == 0  # the second run reuses the index
    settings = dict(rewritten.settings)
    assert settings["hybrid candidates per retriever"] == "50"
    assert settings["query"] == "rewritten by the index"
    assert settings["weights dense/bm25"] == "1/1, 0.5/1 on lexicon match"
    assert dict(raw.settings)["query"] == "raw question"
    assert dict(raw.settings)["weights dense/bm25"] == "1/1"
    assert "hybrid candidates per retriever=50" in rewritten.to_markdown()
    # Without candidates the index takes max(50, 3 * depth) per retriever.
    deep = {**options, "depth": 20, "candidates": None, "weights": (1.0, 2.0)}
    everything = run_financebench(root, **deep)  # type: ignore[arg-type]
    assert dict(everything.settings)["hybrid candidates per retriever"] == "60"
    assert dict(everything.settings)["weights dense/bm25"] == "1/2"
