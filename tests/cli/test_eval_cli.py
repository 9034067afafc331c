"""``quantdesk eval financebench``: the command hands its options to ``run_financebench``."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from quantdesk.cli.main import main
from quantdesk.evals import financebench
from quantdesk.rag.embeddings import HashingEmbedder


def _tiny_financebench(root: Path) -> None:
    """A FinanceBench-shaped folder: one 10-K of three pages, one capex question."""
    pages = [
        "Acme Corp annual report. Our strategy in 2021 was to open stores.",
        "Risk factors: competition, rounding of amounts to two decimal places, weather.",
        "Consolidated Statements of Cash Flows. Investing activities: purchases of property, "
        "plant and equipment (2,437); acquisitions of businesses (88).",
    ]
    (root / "markdown").mkdir(parents=True)
    (root / "markdown" / "ACME_2021_10K.md").write_text("\f".join(pages), encoding="utf-8")
    info = {"doc_name": "ACME_2021_10K", "company": "Acme", "doc_type": "10k", "doc_period": 2021}
    (root / "financebench_document_information.jsonl").write_text(json.dumps(info) + "\n")
    question = {
        "financebench_id": "q1",
        "doc_name": "ACME_2021_10K",
        "question": "What was Acme's FY2021 capex? Round your answer to two decimal places.",
        "question_type": "metrics-generated",
        "evidence": [{"doc_name": "ACME_2021_10K", "evidence_page_num": 2}],
    }
    (root / "financebench_dev.jsonl").write_text(json.dumps(question) + "\n", encoding="utf-8")


@pytest.mark.parametrize(
    ("flags", "query", "recall_at_1"),
    [
        ([], "query=rewritten by the index", "1.000"),
        # the raw question's instruction words point at the risk page
        (["--no-rewrite"], "query=raw question", "0.000"),
    ],
)
def test_no_rewrite_scores_the_raw_questions(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    query: str,
    recall_at_1: str,
) -> None:
    root = tmp_path / "financebench"
    _tiny_financebench(root)
    tiny = functools.partial(
        financebench.run_financebench,
        root,
        index_path=tmp_path / "ix",
        embedder=HashingEmbedder(64),
        modes=("bm25",),
        scopes=("within",),
        ks=(1,),
        depth=3,
    )
    monkeypatch.setattr(financebench, "run_financebench", tiny)
    code: int | str | None = 0
    try:
        main(["eval", "financebench", "--documents", "cited", *flags])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code in (0, None), err
    assert query in out
    row = next(line for line in out.splitlines() if "bm25" in line and line.startswith("|"))
    assert recall_at_1 in row
