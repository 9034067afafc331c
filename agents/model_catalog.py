"""Known models: context size, price per million tokens and training cutoff.

The catalog serves two purposes. :mod:`quantdesk.agents.usage` turns token counts into dollars
with the prices, and later evaluations call :func:`training_cutoff` to flag a study whose
dates a model may have seen in training (a model asked about 2023 that was trained on 2024
text can "remember" the answer instead of researching it).

Sources (read 2026-11; prices and cutoffs change, so each entry names where it came from):

* Anthropic: models overview, https://docs.claude.com/en/docs/about-claude/models/overview
  ("Training data cutoff" row) and the Transparency Hub model report,
  https://www.anthropic.com/transparency/model-report.
* OpenAI: the model pages https://developers.openai.com/api/docs/models/<model> ("knowledge
  cutoff", context window, price per 1M tokens).
* Open models: the publishers' model cards (Meta Llama 3.1 / 3.3: "December 2023"; OpenAI
  gpt-oss: "June 2024"). Self-hosted models have no token price (``None``).

Cutoffs published as a month are stored as the month's LAST day: a study dated any time in
that month may have been seen. Where a provider publishes both a "reliable knowledge" and a
"training data" cutoff, the later training-data cutoff is kept, for the same reason. An entry
whose cutoff could not be confirmed in the sources above has ``training_cutoff=None`` and says
so in ``note``; callers must treat ``None`` as "unknown", never as "no leakage".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

__all__ = [
    "MODELS",
    "ModelInfo",
    "canonical_model_name",
    "known_models",
    "model_info",
    "training_cutoff",
]

_ANTHROPIC_DOCS = "https://docs.claude.com/en/docs/about-claude/models/overview"
_ANTHROPIC_HUB = "https://www.anthropic.com/transparency/model-report"
_OPENAI_DOCS = "https://developers.openai.com/api/docs/models/"
_LLAMA_31 = "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct"
_LLAMA_33 = "https://huggingface.co/meta-llama/Llama-3.3-70B-Instruct"
_GPT_OSS = "https://openai.com/index/gpt-oss-model-card/"
_XAI_DOCS = "https://docs.x.ai/docs/models"
_QWEN = "https://qwenlm.github.io/blog/qwen2.5/"


@dataclass(frozen=True)
class ModelInfo:
    """One catalogued model.

    Attributes:
        provider: ``anthropic``, ``openai``, ``open`` (open weights, any OpenAI-compatible
            server), ``xai`` or ``quantdesk`` (the offline policy).
        name: Canonical model name without provider, date snapshot or server tag.
        context_tokens: Context window in tokens (``None``: unknown).
        input_usd_per_mtok: Price of one million input tokens (``None``: unknown or
            self-hosted).
        output_usd_per_mtok: Price of one million output tokens.
        training_cutoff: Last date of the training data (``None``: unknown; see ``note``).
        source: Where the figures come from.
        note: Caveats (granularity, unconfirmed values).
    """

    provider: str
    name: str
    context_tokens: int | None
    input_usd_per_mtok: float | None
    output_usd_per_mtok: float | None
    training_cutoff: date | None
    source: str
    note: str = ""

    @property
    def model_id(self) -> str:
        """The id to pass to ``get_model`` (``anthropic:claude-sonnet-4-5``)."""
        if self.provider == "quantdesk":
            return self.name
        if self.provider in {"open", "xai"}:
            return f"openai-compatible:{self.name}"
        return f"{self.provider}:{self.name}"

    @property
    def has_price(self) -> bool:
        """Whether both token prices are known."""
        return self.input_usd_per_mtok is not None and self.output_usd_per_mtok is not None


def _m(year: int, month: int) -> date:
    """Last day of a month (month-granular cutoffs, conservative)."""
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1)


_TRAINING = "training data cutoff"


def _anthropic(
    name: str, ctx: int, p_in: float, p_out: float, cut: date | None, note: str = _TRAINING
) -> ModelInfo:
    return ModelInfo("anthropic", name, ctx, p_in, p_out, cut, _ANTHROPIC_DOCS, note)


def _openai(
    name: str, ctx: int, p_in: float | None, p_out: float | None, cut: date, note: str = ""
) -> ModelInfo:
    return ModelInfo("openai", name, ctx, p_in, p_out, cut, _OPENAI_DOCS + name, note)


def _open(name: str, ctx: int, cut: date | None, source: str, note: str) -> ModelInfo:
    return ModelInfo("open", name, ctx, None, None, cut, source, note)


_UNCONFIRMED = "cutoff not confirmed in the sources consulted"
MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        "quantdesk", "offline", None, 0.0, 0.0, None, "quantdesk", "rule-driven, no training"
    ),
    # Anthropic: $ per MTok input / output.
    _anthropic("claude-opus-4-7", 1_000_000, 5.0, 25.0, None, _UNCONFIRMED),
    _anthropic("claude-opus-4-6", 1_000_000, 5.0, 25.0, None, _UNCONFIRMED),
    ModelInfo(
        "anthropic",
        "claude-sonnet-4-6",
        1_000_000,
        3.0,
        15.0,
        _m(2025, 8),
        _ANTHROPIC_HUB,
        "Transparency Hub: knowledge cutoff May 2025; the Aug 2025 training cutoff reported "
        "elsewhere is kept (later, conservative)",
    ),
    _anthropic("claude-opus-4-5", 200_000, 5.0, 25.0, _m(2025, 8)),
    _anthropic("claude-sonnet-4-5", 200_000, 3.0, 15.0, _m(2025, 7)),
    _anthropic("claude-haiku-4-5", 200_000, 1.0, 5.0, _m(2025, 7)),
    _anthropic("claude-opus-4-1", 200_000, 15.0, 75.0, _m(2025, 3)),
    _anthropic("claude-opus-4", 200_000, 15.0, 75.0, _m(2025, 3)),
    _anthropic("claude-sonnet-4", 200_000, 3.0, 15.0, _m(2025, 3)),
    _anthropic("claude-3-7-sonnet", 200_000, 3.0, 15.0, _m(2024, 11)),
    _anthropic("claude-3-5-haiku", 200_000, 0.8, 4.0, _m(2024, 7)),
    # OpenAI: the model pages give a day; kept as published.
    _openai("gpt-5.4", 1_050_000, None, None, date(2025, 8, 31), "price not confirmed"),
    _openai("gpt-5.2", 400_000, 1.75, 14.0, date(2025, 8, 31)),
    _openai("gpt-5.1", 400_000, 1.25, 10.0, date(2024, 9, 30)),
    _openai("gpt-5", 400_000, 1.25, 10.0, date(2024, 9, 30)),
    _openai("gpt-5-mini", 400_000, 0.25, 2.0, date(2024, 5, 31)),
    _openai("gpt-5-nano", 400_000, 0.05, 0.40, date(2024, 5, 31)),
    _openai("gpt-4.1", 1_047_576, 2.0, 8.0, date(2024, 6, 1)),
    _openai("gpt-4.1-mini", 1_047_576, 0.40, 1.60, date(2024, 6, 1)),
    _openai("gpt-4o", 128_000, 2.50, 10.0, date(2023, 10, 1)),
    _openai("gpt-4o-mini", 128_000, 0.15, 0.60, date(2023, 10, 1)),
    _openai("o3", 200_000, 2.0, 8.0, date(2024, 6, 1)),
    _openai("o4-mini", 200_000, 1.10, 4.40, date(2024, 6, 1)),
    _openai("gpt-4", 8_192, 30.0, 60.0, date(2023, 12, 1)),
    # Open weights served through any OpenAI-compatible endpoint (self-hosted: no price).
    _open("gpt-oss-120b", 131_072, _m(2024, 6), _GPT_OSS, "model card: June 2024"),
    _open("gpt-oss-20b", 131_072, _m(2024, 6), _GPT_OSS, "model card: June 2024"),
    _open("llama-3.3", 128_000, _m(2023, 12), _LLAMA_33, "model card: December 2023"),
    _open("llama-3.1", 128_000, _m(2023, 12), _LLAMA_31, "model card: December 2023"),
    _open("qwen2.5", 131_072, None, _QWEN, "no training cutoff published"),
    ModelInfo("xai", "grok-4", 256_000, 3.0, 15.0, None, _XAI_DOCS, _UNCONFIRMED),
)

# Patterns that map served names ("llama3.1:8b", "meta-llama/Llama-3.1-70B-Instruct",
# "openai/gpt-oss-20b") onto catalog names; checked in order, most specific first.
_OPEN_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"gpt-oss[-_:]?120b"), "gpt-oss-120b"),
    (re.compile(r"gpt-oss[-_:]?20b"), "gpt-oss-20b"),
    (re.compile(r"llama[-_ ]?3\.3"), "llama-3.3"),
    (re.compile(r"llama[-_ ]?3\.1"), "llama-3.1"),
    (re.compile(r"qwen[-_ ]?2\.5"), "qwen2.5"),
    (re.compile(r"grok-4(?![.\d])"), "grok-4"),
)
_SNAPSHOT = re.compile(r"(-\d{8}|-\d{4}-\d{2}-\d{2}|-latest|-v\d+(:\d+)?)$")
_BY_NAME = {info.name: info for info in MODELS}


def canonical_model_name(model_id: str) -> str:
    """Reduce a model id to the catalog's name.

    Drops the provider prefix (``anthropic:``, ``openai:``, ``openai-compatible:``), a base
    URL (``@http://...``), an organisation (``meta-llama/``), a date snapshot
    (``-20250929``, ``-2024-08-06``) or ``-latest``, and lower-cases the rest.

    Args:
        model_id: Any model id accepted by ``get_model`` or a bare provider model name.

    Returns:
        The normalised name (not necessarily in the catalog).
    """
    name = model_id.strip()
    for prefix in ("openai-compatible:", "anthropic:", "openai:"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    name = name.split("@", 1)[0].rsplit("/", 1)[-1].lower()
    return _SNAPSHOT.sub("", name)


def model_info(model_id: str) -> ModelInfo | None:
    """Look a model up by id (``anthropic:claude-sonnet-4-5-20250929``) or name.

    Args:
        model_id: Model id or bare name; snapshots, server tags and base URLs are ignored.

    Returns:
        The catalog entry, or ``None`` for a model the catalog does not know.
    """
    name = canonical_model_name(model_id)
    if name in _BY_NAME:
        return _BY_NAME[name]
    for pattern, catalog_name in _OPEN_PATTERNS:
        if pattern.search(name):
            return _BY_NAME[catalog_name]
    return None


def training_cutoff(model_id: str) -> date | None:
    """The last date a model's training data may cover.

    Args:
        model_id: Model id or bare name.

    Returns:
        The cutoff, or ``None`` when unknown (an uncatalogued model or an unpublished cutoff)
        or not applicable (``offline``). ``None`` never means "safe": flag such studies as
        unverifiable.
    """
    info = model_info(model_id)
    return None if info is None else info.training_cutoff


def known_models(provider: str | None = None) -> list[ModelInfo]:
    """Every catalog entry, optionally for one provider, in catalog order."""
    return [info for info in MODELS if provider is None or info.provider == provider]
