"""The model interface, the registry that resolves model ids, and structured output.

Every model (the Anthropic and OpenAI adapters, the offline policy, the test doubles) satisfies
the small :class:`Model` protocol: one async ``request`` and a ``stream`` with the same input.
:func:`get_model` turns a model id into a model, importing the adapter (and so its SDK) only
when that id is asked for:

* ``anthropic:<model>``: Anthropic Messages API (``ANTHROPIC_API_KEY``).
* ``openai:<model>``: OpenAI Chat Completions (``OPENAI_API_KEY``).
* ``openai-compatible:<model>@<base_url>`` or ``openai-compatible:<model>`` with
  ``QUANTDESK_OPENAI_BASE_URL``: any Chat Completions server (Ollama, vLLM, llama.cpp, xAI,
  OpenRouter).
* ``offline``: the rule-driven default policy; ``test:<name>``: test doubles.

Failures are kept in their families: a bad id or a missing key is the caller's
:class:`~quantdesk.quant_core.errors.ConfigError`; a provider failure is a
:class:`ProviderError` that says whether retrying may help; an answer that never validates is a
:class:`StructuredOutputError`.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from typing import Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from quantdesk.agents.messages import Message, ModelRequest, ModelResponse, StreamEvent
from quantdesk.quant_core.errors import ConfigError, InputError, QuantdeskRuntimeError

__all__ = [
    "DEFAULT_MODEL_ID",
    "Model",
    "ModelFactory",
    "ProviderError",
    "ProviderErrorKind",
    "StructuredOutputError",
    "StructuredResult",
    "get_model",
    "register_model",
    "registered_prefixes",
    "request_structured",
    "resolve_model_id",
]

DEFAULT_MODEL_ID = "offline"

ProviderErrorKind = Literal[
    "rate_limit", "server", "timeout", "connection", "auth", "client", "malformed"
]

_T = TypeVar("_T", bound=BaseModel)


class ProviderError(QuantdeskRuntimeError):
    """A model provider failed to answer.

    Args:
        message: What failed (never contains a key).
        provider: Adapter name, e.g. ``"anthropic"``.
        kind: Failure class; ``rate_limit``, ``server``, ``timeout`` and ``connection`` are
            retryable, the others are not.
        status_code: HTTP status when the provider answered with one.
        retry_after_s: Delay the provider asked for (``Retry-After``), in seconds.
        retryable: Overrides the default derived from ``kind``.
        fix: Optional hint.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        kind: ProviderErrorKind,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        retryable: bool | None = None,
        fix: str | None = None,
    ) -> None:
        self.provider = provider
        self.kind = kind
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        if retryable is None:
            retryable = kind in ("rate_limit", "server", "timeout", "connection")
        super().__init__(f"{provider}: {message}", retryable=retryable, fix=fix)


class StructuredOutputError(QuantdeskRuntimeError):
    """The model's answer never validated against the requested schema (not retryable).

    Attributes:
        errors: One message per failed attempt.
        last_response: The last answer received.
    """

    def __init__(
        self,
        message: str,
        *,
        errors: list[str],
        last_response: ModelResponse | None,
        fix: str | None = None,
    ) -> None:
        self.errors = errors
        self.last_response = last_response
        super().__init__(message, retryable=False, fix=fix)


@runtime_checkable
class Model(Protocol):
    """What every model offers.

    Attributes:
        model_id: The resolved id (``"anthropic:claude-sonnet-4-5"``), echoed in every
            :class:`~quantdesk.agents.messages.ModelResponse`.
    """

    model_id: str

    async def request(self, req: ModelRequest) -> ModelResponse:
        """Answer one request."""
        ...

    def stream(self, req: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Answer one request as events, ending with a ``done`` event."""
        ...


ModelFactory = Callable[..., Model]
"""Builds a model: called with the id's name part (``"claude-x"`` for ``"anthropic:claude-x"``),
or with no argument when the id is a bare prefix such as ``"offline"``."""

# Prefix -> factory, or "module:attribute" imported on first use so that an SDK is only
# imported when a model that needs it is asked for.
_REGISTRY: dict[str, ModelFactory | str] = {
    "anthropic": "quantdesk.agents.anthropic_model:AnthropicModel",
    "openai": "quantdesk.agents.openai_model:OpenAIModel",
    "openai-compatible": "quantdesk.agents.openai_model:openai_compatible_model",
    "offline": "quantdesk.agents.offline_model:OfflineModel",
    "test": "quantdesk.agents.testing:model_from_id",
}

_SDK_PACKAGES = {"anthropic": "anthropic", "openai": "openai", "openai-compatible": "openai"}


def register_model(prefix: str, factory: ModelFactory | str) -> None:
    """Register (or replace) the factory of a model-id prefix.

    Args:
        prefix: The part of the id before the first ``:`` (letters, digits, ``-``, ``_``).
        factory: A callable, or ``"module:attribute"`` imported on first use.

    Raises:
        InputError: The prefix is malformed.
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]+", prefix):
        raise InputError(
            f"Invalid model prefix {prefix!r}.",
            fix="use letters, digits, '-' or '_' only, e.g. 'my-provider'.",
        )
    _REGISTRY[prefix] = factory


def registered_prefixes() -> list[str]:
    """The model-id prefixes :func:`get_model` knows, sorted."""
    return sorted(_REGISTRY)


def resolve_model_id(model_id: str | None = None) -> str:
    """The model id to use: the argument, else ``QUANTDESK_MODEL``, else ``"offline"``."""
    if model_id is not None and model_id.strip():
        return model_id.strip()
    from_env = os.environ.get("QUANTDESK_MODEL", "").strip()
    if from_env:
        return from_env
    # Read through settings too, so a `model` field (and `.env`) works once it exists.
    from quantdesk.quant_core.settings import get_settings

    configured = str(getattr(get_settings(), "model", "") or "").strip()
    return configured or DEFAULT_MODEL_ID


def _load_factory(prefix: str, target: ModelFactory | str) -> ModelFactory:
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        package = _SDK_PACKAGES.get(prefix)
        if package is not None and exc.name is not None and exc.name.split(".")[0] == package:
            raise ConfigError(
                f"Model prefix {prefix!r} needs the {package!r} package, which is not installed.",
                fix=f"pip install {package}",
            ) from exc
        raise
    factory = getattr(module, attribute, None)
    if factory is None:
        raise ConfigError(
            f"Model prefix {prefix!r} points at {target!r}, which does not exist.",
            fix="register a valid factory with quantdesk.agents.model.register_model.",
        )
    return factory


def get_model(model_id: str | None = None) -> Model:
    """Resolve a model id into a model.

    Args:
        model_id: ``"<prefix>:<name>"`` or a bare prefix (``"offline"``). ``None`` reads
            ``QUANTDESK_MODEL`` and falls back to ``"offline"``.

    Returns:
        The model; its ``model_id`` is the resolved id.

    Raises:
        ConfigError: Unknown prefix, missing name, missing SDK or missing API key.
    """
    resolved = resolve_model_id(model_id)
    prefix, sep, name = resolved.partition(":")
    if prefix not in _REGISTRY:
        raise ConfigError(
            f"Unknown model id {resolved!r} (prefix {prefix!r}).",
            fix=f"use one of the prefixes {registered_prefixes()}, "
            "e.g. QUANTDESK_MODEL=anthropic:claude-sonnet-4-5 or QUANTDESK_MODEL=offline.",
        )
    if sep and not name:
        raise ConfigError(
            f"Model id {resolved!r} has no model name after {prefix + ':'!r}.",
            fix=f"write it as '{prefix}:<model name>'.",
        )
    factory = _load_factory(prefix, _REGISTRY[prefix])
    return factory(name) if sep else factory()


class StructuredResult(NamedTuple):
    """A validated structured answer and the response it came from."""

    output: BaseModel
    response: ModelResponse


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _candidate_json(response: ModelResponse) -> str:
    """The JSON text to validate: the answer's text, else the single tool call's arguments."""
    text = response.text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    if text:
        return text
    if len(response.tool_calls) == 1:
        return json.dumps(response.tool_calls[0].arguments)
    return ""


async def request_structured(
    model: Model, req: ModelRequest, schema: type[_T], *, retries: int = 2
) -> StructuredResult:
    """Ask for an answer that validates against a pydantic schema.

    The schema's JSON Schema is sent as the request's ``output_schema`` (unless one is set),
    so adapters use the provider's structured-output mechanism. An answer that does not
    validate is sent back with the validation error and asked again, ``retries`` times.

    Args:
        model: Any :class:`Model`.
        req: The request; its conversation is extended on each retry, never mutated.
        schema: The pydantic model the answer must validate against.
        retries: Extra attempts after the first invalid answer.

    Returns:
        ``(output, response)``: the validated instance of ``schema`` and the response.

    Raises:
        InputError: ``retries`` is negative.
        StructuredOutputError: The model refused, or no answer validated.
        ProviderError: The provider failed (after its own retry policy).
    """
    if retries < 0:
        raise InputError(f"retries must be >= 0, got {retries}.", fix="pass retries=0 or more.")
    if req.output_schema is None:
        req = req.model_copy(update={"output_schema": schema.model_json_schema()})
    errors: list[str] = []
    response: ModelResponse | None = None
    for _ in range(retries + 1):
        response = await model.request(req)
        if response.stop_reason == "refusal":
            raise StructuredOutputError(
                f"{response.model} refused to answer in the {schema.__name__} schema: "
                f"{response.text[:200]!r}",
                errors=[*errors, "refusal"],
                last_response=response,
                fix="rephrase the request; a refusal is not retried.",
            )
        candidate = _candidate_json(response)
        try:
            return StructuredResult(schema.model_validate_json(candidate), response)
        except ValidationError as exc:
            error = str(exc)
        errors.append(error)
        # Echo the answer as plain text (no tool calls): a tool call left unanswered would
        # make the conversation invalid for every provider.
        feedback = [
            Message(role="assistant", content=candidate or "(no answer)"),
            Message(
                role="user",
                content=(
                    f"Your answer does not validate against the {schema.__name__} schema:\n"
                    f"{error}\nReply again with only a JSON object that follows the schema."
                ),
            ),
        ]
        req = req.model_copy(update={"messages": [*req.messages, *feedback]})
    raise StructuredOutputError(
        f"{response.model if response else 'model'} gave no answer that validates against "
        f"{schema.__name__} in {retries + 1} attempts; last error: {errors[-1][:300]}",
        errors=errors,
        last_response=response,
        fix="simplify the schema, raise retries, or use a stronger model.",
    )
