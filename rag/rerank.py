"""Cross-encoder re-ranking of fused search results, where a re-ranker is installed.

A bi-encoder (the dense retriever) and BM25 score the query and a passage separately; a
cross-encoder reads the two together and scores their relevance, which orders the first few
dozen candidates better but costs a forward pass per (query, passage) pair. So the index
retrieves and fuses as usual, then :func:`rerank_hits` re-orders only the top
``rerank_candidates`` fused chunks. It never adds a chunk: every re-ranked hit already passed
the ``as_of`` cut and the filters.

* :class:`Reranker` is the protocol: a ``model_id`` and ``score(query, passages)`` returning
  one float per passage, higher meaning more relevant.
* :class:`CrossEncoderReranker` wraps ``sentence_transformers.CrossEncoder`` loaded from a
  local folder or a model id already in the local Hugging Face cache; it never downloads
  (``HF_HUB_OFFLINE=1``, ``local_files_only``). Loading is lazy (torch and the weights take
  seconds) and happens once, under a lock, whichever thread searches first.
* :func:`reranker_from_settings` reads ``QUANTDESK_RERANKER`` (a folder or model id); empty
  means no re-ranker, and the search is the fused one.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from quantdesk.quant_core.errors import ConfigError, QuantdeskRuntimeError
from quantdesk.quant_core.settings import get_settings
from quantdesk.rag.embeddings import offline_model_load
from quantdesk.rag.results import SearchHit

__all__ = [
    "RERANK_CANDIDATES",
    "CrossEncoderReranker",
    "Reranker",
    "rerank_hits",
    "reranker_from_settings",
]

#: Fused chunks the cross-encoder re-orders by default: enough to lift a passage ranked in
#: the twenties into the top five, few enough for a small model on a CPU.
RERANK_CANDIDATES = 30

_FIX = (
    "set QUANTDESK_RERANKER to a folder holding a sentence-transformers CrossEncoder (or the "
    "id of one already in the local Hugging Face cache), or unset it to search without "
    "re-ranking."
)
_LOADED: dict[str, CrossEncoderReranker] = {}
_LOADED_LOCK = threading.Lock()


@runtime_checkable
class Reranker(Protocol):
    """Scores passages against a query; higher is more relevant."""

    @property
    def model_id(self) -> str:
        """Identifies the model (shown in search results)."""
        ...

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """One finite float per passage, in the order given."""
        ...


class CrossEncoderReranker:
    """A ``sentence_transformers.CrossEncoder``, loaded offline on first use.

    Args:
        model: A folder holding the model, or a model id already in the local Hugging Face
            cache (e.g. ``cross-encoder/ms-marco-MiniLM-L6-v2`` after a download elsewhere).
        batch_size: Pairs per forward pass.
        device: Torch device; CPU by default.
        max_length: Tokens per (query, passage) pair; longer pairs are truncated.

    Raises:
        ConfigError: (on first use, or :meth:`load`) the model does not load.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        batch_size: int = 16,
        device: str = "cpu",
        max_length: int = 512,
    ) -> None:
        self._source = str(model).strip()
        if not self._source:
            raise ConfigError("The re-ranker model is empty.", fix=_FIX)
        self.batch_size = batch_size
        self.device = device
        self.max_length = max_length
        self._model: Any = None

    @property
    def model_id(self) -> str:
        """The folder or model id it was given."""
        return self._source

    def load(self) -> Any:
        """The CrossEncoder, loaded on the first call (thread-safe), then reused.

        Raises:
            ConfigError: The folder is missing or is not a cross-encoder, or the id is not in
                the local Hugging Face cache.
        """
        if self._model is None:
            # offline (a model id must already be cached), quiet, one load at a time
            with offline_model_load():
                if self._model is None:  # another thread may have loaded it meanwhile
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        folder = Path(self._source).expanduser()
        looks_like_path = folder.is_absolute() or self._source.startswith((".", "~"))
        if looks_like_path and not folder.is_dir():
            raise ConfigError(f"QUANTDESK_RERANKER={self._source!r}: no such folder.", fix=_FIX)
        from sentence_transformers import CrossEncoder

        target = str(folder) if folder.is_dir() else self._source
        try:
            return CrossEncoder(
                target, device=self.device, local_files_only=True, max_length=self.max_length
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            # OSError: missing files or not cached; ValueError/KeyError: not a model config;
            # RuntimeError: weights that do not fit the config.
            reason = " ".join(str(exc).split())[:300]
            raise ConfigError(
                f"QUANTDESK_RERANKER={self._source!r} does not load as a cross-encoder "
                f"({type(exc).__name__}: {reason}).",
                fix=_FIX,
            ) from exc

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """Relevance of each passage to ``query`` (float64, one per passage)."""
        if not passages:
            return np.zeros(0, dtype=np.float64)
        scores = self.load().predict(
            [(query, passage) for passage in passages],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(scores, dtype=np.float64).reshape(len(passages), -1)[:, 0]


def reranker_from_settings() -> CrossEncoderReranker | None:
    """The re-ranker ``QUANTDESK_RERANKER`` names, or ``None`` when it is empty.

    One instance per model per process, so every index opened in the process shares the
    loaded weights. Nothing is loaded here: a bad folder is reported at the first search.
    """
    source = get_settings().reranker.strip()
    if not source:
        return None
    with _LOADED_LOCK:
        found = _LOADED.get(source)
        if found is None:
            found = _LOADED[source] = CrossEncoderReranker(source)
    return found


def rerank_hits(
    reranker: Reranker, query: str, hits: Sequence[SearchHit], *, k: int, candidates: int
) -> list[SearchHit]:
    """Re-order the first ``candidates`` hits by ``reranker`` and keep ``k``.

    Only the order changes: the hits are the ones the retrievers returned (already cut at
    ``as_of`` and filtered). Hits past ``candidates`` follow in their fused order, without a
    ``rerank_score``. Equal scores keep the fused order.

    Args:
        reranker: Scores (query, passage) pairs.
        query: The question the cross-encoder reads with each passage.
        hits: Fused hits, best first.
        k: Hits to return.
        candidates: Leading hits to score.

    Raises:
        QuantdeskRuntimeError: The re-ranker returned the wrong number of scores, or a
            score that is not finite.
    """
    head, tail = list(hits[:candidates]), list(hits[candidates:])
    scores = np.asarray(reranker.score(query, [hit.text for hit in head]), dtype=np.float64)
    if scores.shape != (len(head),) or not np.all(np.isfinite(scores)):
        raise QuantdeskRuntimeError(
            f"Re-ranker {reranker.model_id!r} returned scores of shape {scores.shape} "
            f"(finite: {bool(np.all(np.isfinite(scores)))}) for {len(head)} passages.",
            fix="check the model (one relevance logit per pair), or unset QUANTDESK_RERANKER.",
        )
    order = sorted(range(len(head)), key=lambda i: (-scores[i], i))
    ranked = [dataclasses.replace(head[i], rerank_score=float(scores[i])) for i in order]
    return [
        dataclasses.replace(hit, rank=rank) for rank, hit in enumerate((ranked + tail)[:k], start=1)
    ]
