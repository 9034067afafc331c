"""FinanceBench page retrieval: does the filing index find the pages that answer a question.

FinanceBench (Islam et al., "FinanceBench: A New Benchmark for Financial Question Answering",
2023) ships questions over public 10-K, 10-Q, 8-K and earnings documents, each with the
0-based page numbers of its evidence. The shared data holds the development split (62
questions citing 49 documents) and the markdown text of the 84 documents the open-source
questions cite, one page per form-feed-separated block.

Corpus: the 84 documents as paged filings (:mod:`quantdesk.evals.financebench_data`), each
``available_at`` a deliberately late estimate. The evaluation asks its questions as of today,
after all of them, so point-in-time filtering is active but excludes nothing.

Metrics (per question, then averaged over questions). A search ranks chunks; each chunk
belongs to one page of one document. The ranking is reduced to *distinct pages* by keeping
each page at its best-ranked chunk (a page scores as the max of its chunks). A question's
relevant pages are its evidence pages *in its evidence document* (a question may list
several pages; the same page number in another document is not relevant).

* page recall@k: 1 if any of the first ``k`` distinct pages is relevant, else 0 (a hit
  rate: one relevant page is enough to ground an answer);
* MRR: mean of ``1 / r`` where ``r`` is the rank of the first relevant distinct page among
  the retrieved pages (0 when none is among the ``depth`` chunks retrieved).

Chunk-level recall (the first ``k`` *chunks* instead of ``k`` distinct pages) is reported
beside it: it is stricter, since several chunks of one page can fill the top ``k``.

Two settings: (a) ``within``: the search is restricted to the question's document
(``doc_id`` filter, nothing inferred); (b) ``corpus``: the search runs over every indexed
document with the filters the index infers from the question itself (company, fiscal year,
quarter, form; ``infer=True``).

Queries are what the library searches for: the index rewrites each question
(:mod:`quantdesk.rag.query_rewrite`: instructions dropped, line items of named metrics and
statements appended) in all three modes, so dense, BM25 and hybrid are compared on the same
query; ``rewrite=False`` measures the raw question. The printed settings line states the
query, the fusion weights and the hybrid candidates actually used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

from quantdesk.evals.financebench_data import FinanceBenchQuestion, load_documents, load_questions
from quantdesk.quant_core.errors import DataError, InputError
from quantdesk.quant_core.settings import get_settings, shared_data_dir
from quantdesk.rag.embeddings import Embedder
from quantdesk.rag.hybrid import RRF_K
from quantdesk.rag.index import FilingIndex, SearchHit
from quantdesk.rag.query_rewrite import LEXICON_DENSE_WEIGHT

__all__ = [
    "FinanceBenchReport",
    "FinanceBenchRow",
    "QuestionResult",
    "distinct_pages",
    "first_relevant_rank",
    "hit_page",
    "run_financebench",
    "summarise",
]

Page = tuple[str, int]
Scope = Literal["within", "corpus"]
Mode = Literal["dense", "bm25", "hybrid"]


def hit_page(hit: SearchHit) -> Page:
    """``(doc_id, page number)`` of a retrieved chunk of a paged document.

    Raises:
        DataError: The chunk's section is not a ``page-{n}`` section.
    """
    item = str(hit.metadata.get("item", ""))
    if not item.startswith("page-"):
        raise DataError(
            f"Chunk {hit.chunk_id} is in section {item!r}, not a page.",
            fix="evaluate an index built from paged documents (load_documents).",
        )
    return str(hit.metadata["doc_id"]), int(item.removeprefix("page-"))


def distinct_pages(pages: Iterable[Page]) -> list[Page]:
    """Pages in order of their first (best-ranked) chunk: a page scores as its best chunk."""
    return list(dict.fromkeys(pages))


def first_relevant_rank(ranked: Sequence[Page], doc_name: str, pages: frozenset[int]) -> int | None:
    """1-based rank of the first entry of ``ranked`` on an evidence page of ``doc_name``."""
    for rank, (doc, page) in enumerate(ranked, start=1):
        if doc == doc_name and page in pages:
            return rank
    return None


@dataclass(frozen=True)
class QuestionResult:
    """What one search returned for one question.

    Attributes:
        question_id: The FinanceBench id.
        scope: ``"within"`` (the question's document) or ``"corpus"`` (inferred filters).
        mode: ``"dense"``, ``"bm25"`` or ``"hybrid"``.
        page_rank: Rank of the first relevant distinct page (``None``: not retrieved).
        chunk_rank: Rank of the first chunk on a relevant page (``None``: not retrieved).
        top_pages: The first ten distinct pages retrieved.
        seconds: Search time.
    """

    question_id: str
    scope: str
    mode: str
    page_rank: int | None
    chunk_rank: int | None
    top_pages: tuple[Page, ...]
    seconds: float


@dataclass(frozen=True)
class FinanceBenchRow:
    """Averages over the questions for one (scope, mode).

    Attributes:
        scope: ``"within"`` or ``"corpus"``.
        mode: ``"dense"``, ``"bm25"`` or ``"hybrid"``.
        questions: Questions averaged.
        recall: ``(k, page recall@k)`` pairs.
        mrr: Mean reciprocal rank of the first relevant distinct page.
        chunk_recall: ``(k, recall over the first k chunks)`` pairs.
        median_ms: Median search time in milliseconds.
    """

    scope: str
    mode: str
    questions: int
    recall: tuple[tuple[int, float], ...]
    mrr: float
    chunk_recall: tuple[tuple[int, float], ...]
    median_ms: float

    def recall_at(self, k: int) -> float:
        """Page recall@k (``k`` must be one of the evaluated cut-offs)."""
        return dict(self.recall)[k]


def summarise(results: Sequence[QuestionResult], ks: Sequence[int]) -> FinanceBenchRow:
    """Average per-question results of one (scope, mode) into a row.

    Raises:
        InputError: ``results`` is empty or mixes scopes or modes.
    """
    if not results or len({(r.scope, r.mode) for r in results}) != 1:
        raise InputError(
            "summarise needs the results of exactly one (scope, mode), at least one.",
            fix="group QuestionResults by scope and mode first.",
        )
    n = len(results)

    def rate(ranks: list[int | None], k: int) -> float:
        return sum(1 for r in ranks if r is not None and r <= k) / n

    page_ranks = [r.page_rank for r in results]
    chunk_ranks = [r.chunk_rank for r in results]
    times = sorted(r.seconds for r in results)
    return FinanceBenchRow(
        scope=results[0].scope,
        mode=results[0].mode,
        questions=n,
        recall=tuple((k, rate(page_ranks, k)) for k in ks),
        mrr=sum(1.0 / r for r in page_ranks if r is not None) / n,
        chunk_recall=tuple((k, rate(chunk_ranks, k)) for k in ks),
        median_ms=1000.0 * times[n // 2],
    )


# -- the run ----------------------------------------------------------------------------

#: Issue 5 section 6 targets.
TARGET_WITHIN_RECALL_5 = 0.70
TARGET_CORPUS_RECALL_10 = 0.60


@dataclass(frozen=True)
class FinanceBenchReport:
    """The evaluation's table, what was indexed, and the per-question results.

    Attributes:
        rows: One row per (scope, mode).
        results: Every question's result in every (scope, mode).
        documents: Documents in the index (``doc_id``).
        chunks: Chunks in the index.
        ingest_seconds: Time spent bringing the index up to date in this run.
        embedded: Chunks the embedding model encoded in this run (cache misses).
        settings: The search settings used (depth, candidates, rrf_k, weights, as_of).
    """

    rows: tuple[FinanceBenchRow, ...]
    results: tuple[QuestionResult, ...]
    documents: tuple[str, ...]
    chunks: int
    ingest_seconds: float
    embedded: int
    settings: tuple[tuple[str, str], ...]

    def row(self, scope: str, mode: str) -> FinanceBenchRow | None:
        """The row of one (scope, mode), if evaluated."""
        return next((r for r in self.rows if r.scope == scope and r.mode == mode), None)

    def targets(self) -> list[tuple[str, float, bool]]:
        """``(description, measured value, met)`` of each issue target that was evaluated."""
        checks: list[tuple[str, float, bool]] = []
        for scope, k, target in (
            ("within", 5, TARGET_WITHIN_RECALL_5),
            ("corpus", 10, TARGET_CORPUS_RECALL_10),
        ):
            hybrid = self.row(scope, "hybrid")
            if hybrid is None or k not in dict(hybrid.recall):
                continue
            value = hybrid.recall_at(k)
            checks.append((f"hybrid {scope} recall@{k} >= {target:.2f}", value, value >= target))
            singles = [self.row(scope, m) for m in ("dense", "bm25")]
            if all(single is not None for single in singles):
                best = max(single.recall_at(k) for single in singles if single is not None)
                checks.append(
                    (f"hybrid {scope} recall@{k} above dense and bm25 ({best:.2f})", value,
                     value > best)
                )  # fmt: skip
        return checks

    def to_markdown(self) -> str:
        """The table, the targets and what was indexed, as markdown."""
        ks = [k for k, _ in self.rows[0].recall] if self.rows else []
        head = ["scope", "mode", "n"] + [f"R@{k}" for k in ks] + ["MRR"]
        head += [f"chunk R@{k}" for k in ks] + ["median ms"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            cells = [row.scope, row.mode, str(row.questions)]
            cells += [f"{value:.3f}" for _, value in row.recall] + [f"{row.mrr:.3f}"]
            cells += [f"{value:.3f}" for _, value in row.chunk_recall] + [f"{row.median_ms:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for text, value, met in self.targets():
            lines.append(f"- {'PASS' if met else 'FAIL'}: {text} (measured {value:.3f})")
        settings = ", ".join(f"{key}={value}" for key, value in self.settings)
        lines.append(
            f"- index: {len(self.documents)} documents, {self.chunks} chunks; this run embedded "
            f"{self.embedded} chunks in {self.ingest_seconds:.0f} s; {settings}"
        )
        return "\n".join(lines)


def _default_root() -> Path:
    """``<shared data>/financebench``.

    Raises:
        InputError: The shared data folder is not found.
    """
    shared = shared_data_dir()
    if shared is None:
        raise InputError(
            "The shared data folder (with financebench/) was not found.",
            fix="set QUANTDESK_SHARED_DATA or pass the FinanceBench folder.",
        )
    return shared / "financebench"


def run_financebench(
    root: Path | str | None = None,
    *,
    index_path: Path | str | None = None,
    documents: Literal["all", "cited"] | Sequence[str] = "all",
    max_questions: int | None = None,
    embedder: Embedder | None = None,
    modes: Sequence[Mode] = ("dense", "bm25", "hybrid"),
    scopes: Sequence[Scope] = ("within", "corpus"),
    ks: Sequence[int] = (1, 5, 10),
    depth: int = 100,
    candidates: int | None = 50,
    rrf_k: int = RRF_K,
    weights: tuple[float, float] | None = None,
    rewrite: bool = True,
    as_of: date | None = None,
    query_rewrite: Callable[[str], str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> FinanceBenchReport:
    """Index the FinanceBench documents (idempotent, cached) and score page retrieval.

    Args:
        root: The FinanceBench folder; ``<shared data>/financebench`` by default.
        index_path: Index folder; ``<QUANTDESK_HOME>/evals/financebench/index`` by default
            (kept between runs: a second run embeds nothing).
        documents: ``"all"`` 84 documents, ``"cited"`` only those the questions cite, or
            explicit document names (those the questions cite are always added).
        max_questions: Evaluate only the first ``n`` questions (smoke runs).
        embedder: Dense model; MiniLM by default.
        modes: Retrieval modes to compare.
        scopes: ``"within"`` the question's document and/or ``"corpus"`` with inferred
            filters.
        ks: Recall cut-offs (distinct pages and chunks).
        depth: Chunks retrieved per search; pages beyond them count as not retrieved.
        candidates: Candidates per retriever before hybrid fusion: 50, what a 10-result
            search uses (``None``: the index default for ``depth`` results, 300).
        rrf_k: RRF rank constant.
        weights: RRF weights of (dense, BM25); the index's default when ``None`` (1/1, or
            ``LEXICON_DENSE_WEIGHT``/1 when the rewrite expanded a metric or statement).
        rewrite: Let the index rewrite each question (:mod:`quantdesk.rag.query_rewrite`,
            the library default) in every mode; ``False`` searches the raw question.
        as_of: Decision time of every search; today by default (after every document).
        query_rewrite: Turns each question into the query handed to the index (default:
            the question itself); for experiments with other rewrites.
        progress: Called with a line of text as the run advances.

    Raises:
        InputError: An argument is invalid or the data folder is missing.
        DataError: The data files are malformed.
    """
    if not ks or max(ks) > depth or min(ks) < 1:
        raise InputError(f"ks={list(ks)} must be 1..depth={depth}.", fix="use e.g. (1, 5, 10).")
    say = progress or (lambda _line: None)
    root = Path(root) if root is not None else _default_root()
    questions = load_questions(root)[:max_questions]
    cited = list(dict.fromkeys(q.doc_name for q in questions))
    if documents == "cited":
        names: list[str] = cited
    elif documents == "all":
        names = sorted(p.stem for p in (root / "markdown").glob("*.md"))
    else:
        names = list(dict.fromkeys([*cited, *documents]))
    folder = (
        Path(index_path)
        if index_path is not None
        else get_settings().home / "evals" / "financebench" / "index"
    )
    index = FilingIndex(folder, embedder=embedder)
    started = time.perf_counter()
    embedded = 0
    for name in names:
        report = index.add(load_documents(root, [name]))
        embedded += report.embedded
        if report.embedded:
            say(f"indexed {name}: {report.chunks} chunks, {report.embedded} embedded")
    ingest_seconds = time.perf_counter() - started
    stats = index.stats()
    indexed = tuple(meta.doc_id for meta in index.documents())
    when = as_of or datetime.now(UTC).date()
    fusion = {
        "k": depth, "candidates": candidates, "rrf_k": rrf_k, "weights": weights,
        "rewrite": rewrite,
    }  # fmt: skip
    results: list[QuestionResult] = []
    for scope in scopes:
        for mode in modes:
            for question in questions:
                query = query_rewrite(question.question) if query_rewrite else question.question
                results.append(_ask(index, question, query, scope, mode, when, fusion))
            say(f"searched {scope}/{mode}")
    rows = tuple(
        summarise([r for r in results if r.scope == scope and r.mode == mode], ks)
        for scope in scopes
        for mode in modes
    )
    index.close()
    fused = (
        f"{weights[0]:g}/{weights[1]:g}"
        if weights
        else f"1/1, {LEXICON_DENSE_WEIGHT:g}/1 on lexicon match"
        if rewrite
        else "1/1"
    )
    query = "rewritten by the index" if rewrite else "raw question"
    settings = (
        ("as_of", when.isoformat()),
        ("depth", str(depth)),
        # What the index uses for hybrid: candidates or max(50, 3k), with k = depth.
        ("hybrid candidates per retriever", str(candidates or max(50, 3 * depth))),
        ("rrf_k", str(rrf_k)),
        ("weights dense/bm25", fused),
        ("query", query if query_rewrite is None else f"custom rewrite, then {query}"),
        ("model", stats.model_id),
    )
    return FinanceBenchReport(
        rows=rows,
        results=tuple(results),
        documents=indexed,
        chunks=stats.chunks,
        ingest_seconds=ingest_seconds,
        embedded=embedded,
        settings=settings,
    )


def _ask(
    index: FilingIndex,
    question: FinanceBenchQuestion,
    query: str,
    scope: Scope,
    mode: Mode,
    as_of: date,
    fusion: dict[str, Any],
) -> QuestionResult:
    started = time.perf_counter()
    hits = index.search(
        query,
        as_of=as_of,
        mode=mode,
        doc_id=question.doc_name if scope == "within" else None,
        infer=scope == "corpus",
        **fusion,
    )
    seconds = time.perf_counter() - started
    chunk_pages = [hit_page(hit) for hit in hits]
    pages = distinct_pages(chunk_pages)
    return QuestionResult(
        question_id=question.question_id,
        scope=scope,
        mode=mode,
        page_rank=first_relevant_rank(pages, question.doc_name, question.evidence_pages),
        chunk_rank=first_relevant_rank(chunk_pages, question.doc_name, question.evidence_pages),
        top_pages=tuple(pages[:10]),
        seconds=seconds,
    )
