"""The model catalog: id normalisation, training cutoffs, prices."""

from __future__ import annotations

from datetime import date

import pytest

from quantdesk.agents.model_catalog import (
    MODELS,
    canonical_model_name,
    known_models,
    model_info,
    training_cutoff,
)


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        ("anthropic:claude-sonnet-4-5", date(2025, 7, 31)),
        ("anthropic:claude-sonnet-4-5-20250929", date(2025, 7, 31)),
        ("anthropic:claude-opus-4-1", date(2025, 3, 31)),
        ("anthropic:claude-3-7-sonnet-latest", date(2024, 11, 30)),
        ("openai:gpt-4o-2024-08-06", date(2023, 10, 1)),
        ("openai:gpt-4.1-mini", date(2024, 6, 1)),
        ("openai:gpt-5", date(2024, 9, 30)),
        ("openai-compatible:llama3.1:8b@http://127.0.0.1:11434/v1", date(2023, 12, 31)),
        ("openai-compatible:meta-llama/Llama-3.3-70B-Instruct", date(2023, 12, 31)),
        ("openai-compatible:gpt-oss:20b", date(2024, 6, 30)),
        ("gpt-4o-mini", date(2023, 10, 1)),
        ("offline", None),
        ("anthropic:claude-opus-4-7", None),
        ("openai-compatible:some-private-model@http://127.0.0.1:8000/v1", None),
    ],
)
def test_training_cutoff_golden(model_id: str, expected: date | None) -> None:
    assert training_cutoff(model_id) == expected


@pytest.mark.parametrize(
    ("model_id", "name"),
    [
        ("anthropic:claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("openai:gpt-4o-2024-11-20", "gpt-4o"),
        (
            "openai-compatible:Qwen/Qwen2.5-7B-Instruct@http://localhost:8000/v1",
            "qwen2.5-7b-instruct",
        ),
        ("offline", "offline"),
    ],
)
def test_canonical_model_name(model_id: str, name: str) -> None:
    assert canonical_model_name(model_id) == name


def test_every_entry_is_findable_by_its_own_id_and_well_formed() -> None:
    names = [info.name for info in MODELS]
    assert len(names) == len(set(names))
    for info in MODELS:
        assert model_info(info.model_id) is info
        assert info.source
        for price in (info.input_usd_per_mtok, info.output_usd_per_mtok):
            assert price is None or price >= 0
        if info.training_cutoff is None and info.provider != "quantdesk":
            assert info.note, f"{info.name}: an unknown cutoff must say why"


def test_gpt_5_mini_is_not_confused_with_gpt_5() -> None:
    assert model_info("openai:gpt-5-mini").name == "gpt-5-mini"  # type: ignore[union-attr]
    assert model_info("openai:gpt-5").name == "gpt-5"  # type: ignore[union-attr]


def test_known_models_filters_by_provider() -> None:
    anthropic = known_models("anthropic")
    assert anthropic
    assert all(info.provider == "anthropic" for info in anthropic)
    assert len(known_models()) == len(MODELS)
