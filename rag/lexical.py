"""Lexical retrieval: BM25 (bm25s) over the chunks, with the same filters as the dense side.

Filings are full of exact terms a dense model blurs: "Item 1A", "goodwill impairment",
"$1,234 million", "ASC 842". BM25 ranks those well and dense retrieval ranks paraphrases well,
so the index fuses both (see :mod:`quantdesk.rag.hybrid`).

Tokenisation is deliberately simple and deterministic: lower case, thousands separators
dropped inside numbers (``1,234`` -> ``1234``), decimals kept (``1.01`` for 8-K Items),
English stop words (bm25s' list) removed, and a light plural folding (``revenues`` ->
``revenue``, ``liabilities`` -> ``liability``) because no stemmer is installed.

Filters (``as_of``, ticker, form, ...) are applied as a boolean row mask *before* the top-k
selection, so a filtered search still returns ``k`` results whenever ``k`` eligible chunks
match a query term. The model is persisted with a generation number; a mismatch with the
chunk store's generation means it is stale and is rebuilt.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
from bm25s.tokenization import STOPWORDS_EN

__all__ = ["LexicalHit", "LexicalIndex", "tokenize"]

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")
_TOKEN = re.compile(r"[a-z0-9]+(?:\.[0-9]+)?")
_STOPWORDS = frozenset(STOPWORDS_EN)
_STATE_FILE = "quantdesk_state.json"
_FORMAT_VERSION = 1


def _fold(token: str) -> str:
    """Fold regular English plurals; leave numbers and short words alone."""
    if len(token) <= 3 or token[0].isdigit():
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith("sses"):
        return token[:-2]
    if token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def tokenize(text: str) -> list[str]:
    """Split text into BM25 terms (see the module docstring for the rules)."""
    text = _THOUSANDS.sub("", text.lower())
    return [
        _fold(token) for token in _TOKEN.findall(text) if len(token) > 1 and token not in _STOPWORDS
    ]


@dataclass(frozen=True)
class LexicalHit:
    """One BM25 result.

    Attributes:
        row: Row of the chunk in the index (the chunk store's order).
        score: BM25 score (> 0).
    """

    row: int
    score: float


class LexicalIndex:
    """A bm25s model over token lists, with filter columns aligned to its rows.

    Args:
        tokens: One token list per chunk, in row order.
        columns: Filter columns (``available_at`` int64 and the equality fields), one value
            per row, as returned by the chunk store.
        generation: The chunk store generation these rows reflect.
    """

    def __init__(
        self,
        tokens: Sequence[Sequence[str]],
        columns: Mapping[str, np.ndarray],
        *,
        generation: int,
    ) -> None:
        self.generation = generation
        self.columns = dict(columns)
        self.size = len(tokens)
        self._model: bm25s.BM25 | None = None
        if self.size:
            self._model = bm25s.BM25()
            self._model.index([list(t) for t in tokens], show_progress=False)

    @classmethod
    def _from_model(
        cls, model: bm25s.BM25 | None, columns: Mapping[str, np.ndarray], size: int, generation: int
    ) -> LexicalIndex:
        index = cls.__new__(cls)
        index.generation = generation
        index.columns = dict(columns)
        index.size = size
        index._model = model
        return index

    def search(self, query: str, *, mask: np.ndarray | None, n: int) -> list[LexicalHit]:
        """The ``n`` best-scoring rows among those ``mask`` allows.

        Args:
            query: Free text; tokenised with :func:`tokenize`.
            mask: Boolean array over rows (``None``: all rows).
            n: How many results at most.

        Returns:
            Hits by decreasing score; rows scoring 0 (no query term) are never returned.
        """
        if self._model is None or n <= 0:
            return []
        vocabulary = self._model.vocab_dict
        terms = [token for token in tokenize(query) if token in vocabulary]
        if not terms:
            return []
        scores = np.asarray(self._model.get_scores(terms), dtype=np.float64)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if candidates.size > n:
            top = np.argpartition(-scores[candidates], n - 1)[:n]
            candidates = candidates[top]
        # Stable order: score descending, then row ascending, so ties are reproducible.
        order = np.lexsort((candidates, -scores[candidates]))
        return [LexicalHit(int(row), float(scores[row])) for row in candidates[order]]

    def save(self, folder: Path) -> None:
        """Write the model and its generation to ``folder`` (replacing what was there)."""
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self._model is not None:
            self._model.save(str(tmp), show_progress=False)
        state = {"version": _FORMAT_VERSION, "generation": self.generation, "size": self.size}
        (tmp / _STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    @classmethod
    def load(
        cls, folder: Path, columns: Mapping[str, np.ndarray], *, generation: int
    ) -> LexicalIndex | None:
        """Load a saved model if it reflects ``generation``; ``None`` when missing or stale."""
        state_file = folder / _STATE_FILE
        if not state_file.is_file():
            return None
        state = json.loads(state_file.read_text(encoding="utf-8"))
        if state.get("version") != _FORMAT_VERSION or state.get("generation") != generation:
            return None
        size = int(state["size"])
        if size != len(columns["available_at"]):
            return None
        model = bm25s.BM25.load(str(folder), show_progress=False, verbosity=0) if size else None
        return cls._from_model(model, columns, size, generation)
