"""A FilingIndex opened on one thread is usable from others, concurrently.

LangGraph runs tool nodes on alternating worker threads and the MCP server may run tools in a
pool, so the index (its chunk store and embedding cache are SQLite connections) must not be
tied to the thread that opened it, and concurrent calls must not interleave inside ``add``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section
from quantdesk.rag.embeddings import CachingEmbedder, EmbeddingCache, HashingEmbedder
from quantdesk.rag.index import FilingIndex

SECTIONS = {
    "1A": ("Risk Factors", "supplier outage litigation recall cyber"),
    "7": ("Management's Discussion and Analysis", "revenue margin backlog pricing demand"),
}
FIRST = [("T0", 2019), ("T1", 2019), ("T2", 2020)]  # ingested on the opening thread
LATER = [(f"N{i}", 2020) for i in range(6)]  # added from the workers


def _document(ticker: str, year: int) -> ParsedDocument:
    public = datetime(year + 1, 2, 20, 21, 0, tzinfo=UTC)
    text, sections = "", []
    for key, (title, words) in SECTIONS.items():
        block = f"Item {key}. {title}\n{ticker.lower()}name {words} " * 3
        sections.append(Section(key, title, block, len(text), len(text) + len(block)))
        text += block + "\n\n"
    doc_id = f"{ticker}-10k-{year}"
    meta = FilingMeta(
        ticker=ticker, cik=None, company=f"{ticker} Corp", form="10-K", accession=None,
        filing_date=public.date(), acceptance_datetime=public, period_end=date(year, 12, 31),
        fiscal_year=year, fiscal_period="FY", available_at=public, available_at_estimated=False,
        source_path=f"{doc_id}.txt", doc_id=doc_id,
    )  # fmt: skip
    return ParsedDocument(meta, text, tuple(sections))


@pytest.fixture
def opened(tmp_path: Path) -> Iterator[tuple[FilingIndex, ThreadPoolExecutor]]:
    """An index opened, filled and later closed on a thread of its own."""
    opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opener")

    def open_index() -> FilingIndex:
        index = FilingIndex(
            tmp_path / "index",
            embedder=HashingEmbedder(64),
            embedding_cache=EmbeddingCache(tmp_path / "cache"),
        )
        index.add(_document(t, y) for t, y in FIRST)
        return index

    index = opener.submit(open_index).result()
    yield index, opener
    opener.submit(index.close).result()
    opener.shutdown()


def test_an_index_opened_on_one_thread_serves_two_others_concurrently(
    opened: tuple[FilingIndex, ThreadPoolExecutor],
) -> None:
    index, _ = opened
    threads: set[str] = set()

    def search(ticker: str, mode: str) -> set[str]:
        threads.add(threading.current_thread().name)
        hits = index.search("supplier outage", as_of="2021-06-30", ticker=ticker, mode=mode, k=5)
        return {hit.citation.doc_id for hit in hits}

    def add(ticker: str, year: int) -> int:
        threads.add(threading.current_thread().name)
        return index.add([_document(ticker, year)]).added

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="worker") as workers:
        searches = [
            (ticker, workers.submit(search, ticker, mode))
            for _ in range(4)
            for ticker, _year in FIRST
            for mode in ("hybrid", "dense", "bm25")
        ]
        adds = [workers.submit(add, ticker, year) for ticker, year in LATER]
        for ticker, future in searches:
            year = dict(FIRST)[ticker]
            assert future.result() == {f"{ticker}-10k-{year}"}
        assert [future.result() for future in adds] == [len(SECTIONS)] * len(LATER)
    assert threads == {"worker_0", "worker_1"}
    every = {f"{t}-10k-{y}" for t, y in FIRST + LATER}
    assert {meta.doc_id for meta in index.documents()} == every
    stats = index.stats()
    assert (stats.documents, stats.chunks, stats.vectors) == (
        len(every),
        2 * len(every),
        2 * len(every),
    )
    hits = index.search("n3name revenue backlog", as_of="2021-06-30", k=2, mode="bm25")
    assert hits[0].citation.doc_id == "N3-10k-2020"


def test_sections_and_reingestion_work_off_the_opening_thread(
    opened: tuple[FilingIndex, ThreadPoolExecutor],
) -> None:
    index, opener = opened
    with ThreadPoolExecutor(max_workers=2) as workers:
        sections = list(
            workers.map(
                lambda t: index.get_section(f"{t}-10k-2019", "7", as_of="2020-12-31"), ["T0", "T1"]
            )
        )
        again = workers.submit(index.add, [_document(t, y) for t, y in FIRST]).result()
    assert [s.section.title if s else None for s in sections] == [SECTIONS["7"][0]] * 2
    assert (again.added, again.unchanged, again.embedded) == (0, 6, 0)
    # and the opening thread still works after the others used the index
    assert opener.submit(lambda: index.stats().documents).result() == len(FIRST)


class _OverlapEmbedder(HashingEmbedder):
    """Counts how many ``embed`` calls run at once; each lingers so overlaps would show."""

    def __init__(self) -> None:
        super().__init__(64)
        self._active = 0
        self._guard = threading.Lock()
        self.most_at_once = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._guard:
            self._active += 1
            self.most_at_once = max(self.most_at_once, self._active)
        try:
            time.sleep(0.02)  # gives another thread the chance to enter
            return super().embed(texts)
        finally:
            with self._guard:
                self._active -= 1


def test_calls_from_several_threads_run_one_at_a_time(tmp_path: Path) -> None:
    embedder = _OverlapEmbedder()
    index = FilingIndex(tmp_path, embedder=embedder, embedding_cache=False)
    index.add([_document("T0", 2019)])

    def search(i: int) -> int:  # a new query text each time: the query is embedded
        return len(index.search(f"supplier outage {i}", as_of="2021-06-30", mode="dense", k=3))

    with ThreadPoolExecutor(max_workers=4) as workers:
        adds = [workers.submit(index.add, [_document(t, y)]) for t, y in LATER]
        found = list(workers.map(search, range(8)))
        assert all(future.result().added == len(SECTIONS) for future in adds)
    assert all(n > 0 for n in found)
    assert embedder.calls == 1 + len(LATER) + 8
    assert embedder.most_at_once == 1
    index.close()


def test_an_embedding_cache_is_shared_by_threads(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    texts = [f"text number {i}" for i in range(40)]

    def embed(start: int) -> np.ndarray:
        return CachingEmbedder(HashingEmbedder(32), cache).embed(texts[start : start + 20])

    with ThreadPoolExecutor(max_workers=4) as workers:
        parts = list(workers.map(embed, [0, 10, 20, 0, 10, 20]))
    expected = HashingEmbedder(32).embed(texts)
    for start, part in zip([0, 10, 20, 0, 10, 20], parts, strict=True):
        np.testing.assert_array_equal(part, expected[start : start + 20])
    assert len(cache) == 40
    cache.close()
