"""Loading MiniLM is quiet: no "Loading weights" progress bar, and no setting left changed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from quantdesk.rag import embeddings
from quantdesk.rag.embeddings import MiniLMEmbedder

transformers_logging = pytest.importorskip("transformers.utils.logging")


def _current_hook() -> object:
    """transformers' tqdm hook, read through its public setter (which returns the old one)."""
    hook = transformers_logging.set_tqdm_hook(None)
    transformers_logging.set_tqdm_hook(hook)
    return hook


def _bar(desc: str) -> None:
    for _ in transformers_logging.tqdm(range(3), desc=desc):
        pass


def test_bars_are_hidden_inside_the_block_only(capfd: pytest.CaptureFixture[str]) -> None:
    before = (_current_hook(), transformers_logging.is_progress_bar_enabled())
    with embeddings._quiet_weight_loading():
        _bar("Loading weights")
    assert "Loading weights" not in "".join(capfd.readouterr())
    assert (_current_hook(), transformers_logging.is_progress_bar_enabled()) == before
    if before[1]:  # the control: outside the block the same bar prints
        _bar("Loading weights")
        assert "Loading weights" in capfd.readouterr().err


def test_a_hook_of_the_user_is_put_back() -> None:
    def users_hook(factory, args, kwargs):  # type: ignore[no-untyped-def]
        return factory(*args, **kwargs)

    previous = transformers_logging.set_tqdm_hook(users_hook)
    try:
        with embeddings._quiet_weight_loading():
            assert _current_hook() is not users_hook
        assert _current_hook() is users_hook
    finally:
        transformers_logging.set_tqdm_hook(previous)


@pytest.mark.slow
def test_loading_minilm_prints_no_progress_bar(capfd: pytest.CaptureFixture[str]) -> None:
    embedder = MiniLMEmbedder()
    hook = _current_hook()
    with ThreadPoolExecutor(max_workers=2) as pool:  # two threads asking at once: one load
        models = list(pool.map(lambda _: embedder.model, range(2)))
    assert models[0] is models[1]
    vectors = embedder.embed(["The pending merger may not be completed."])
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err
    assert "it/s" not in out + err  # no other bar either
    assert vectors.shape == (1, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert _current_hook() is hook
