"""Adapter for OpenAI Chat Completions (``openai:<model>``) and any compatible server.

``openai-compatible:<model>@<base_url>`` (or ``openai-compatible:<model>`` with
``QUANTDESK_OPENAI_BASE_URL``) talks to Ollama, vLLM, the llama.cpp server, xAI, OpenRouter and
other servers that implement Chat Completions. Their key comes only from
``QUANTDESK_OPENAI_API_KEY``: ``OPENAI_API_KEY`` is never sent to a third-party URL. Local servers
need no key, so a placeholder is sent when none is set.

Wire mapping: each :class:`~quantdesk.agents.messages.ToolResult` becomes its own ``tool``
message (Chat Completions has no error flag, so an error result is prefixed ``ERROR:``);
structured output uses ``response_format`` ``json_schema`` (non-strict, since pydantic schemas
do not meet strict mode's rules); a ``refusal`` field or a ``content_filter`` finish is reported
as ``stop_reason="refusal"``. The SDK retries are disabled: :mod:`quantdesk.agents.retry` is
the single policy.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from quantdesk.agents.messages import (
    Message,
    ModelRequest,
    ModelResponse,
    StopReason,
    StreamEvent,
    ToolCall,
    Usage,
)
from quantdesk.agents.model import ProviderError
from quantdesk.agents.retry import RetryAttempt, RetryPolicy
from quantdesk.agents.sdk_client import SDKClientModel
from quantdesk.quant_core.errors import ConfigError

__all__ = ["DEFAULT_OPENAI_BASE_URL", "OpenAIModel", "build_payload", "openai_compatible_model"]

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
_NO_KEY_PLACEHOLDER = "no-key"  # local servers ignore the key; the SDK requires one
_COMPATIBLE_ID = re.compile(r"^(?P<model>.+?)@(?P<url>https?://\S+)$")

_FINISH_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


def _import_sdk() -> Any:
    try:
        import openai
    except ModuleNotFoundError as exc:
        raise ConfigError("The openai SDK is not installed.", fix="pip install openai") from exc
    return openai


def _wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    wire: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            for result in message.tool_results:
                content = f"ERROR: {result.content}" if result.is_error else result.content
                wire.append(
                    {"role": "tool", "tool_call_id": result.tool_call_id, "content": content}
                )
            if message.content:
                wire.append({"role": "user", "content": message.content})
        elif message.role == "assistant" and message.tool_calls:
            wire.append(
                {
                    "role": "assistant",
                    "content": message.content or None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {
                                "name": call.name,
                                "arguments": json.dumps(call.arguments),
                            },
                        }
                        for call in message.tool_calls
                    ],
                }
            )
        else:
            wire.append({"role": message.role, "content": message.content})
    return wire


def build_payload(model_name: str, req: ModelRequest, *, legacy_max_tokens: bool) -> dict[str, Any]:
    """The Chat Completions request body for ``req`` (without ``stream``).

    Args:
        model_name: The model name sent on the wire.
        req: The request.
        legacy_max_tokens: Send ``max_tokens`` (compatible servers) instead of OpenAI's
            ``max_completion_tokens``, which its reasoning models require.
    """
    payload: dict[str, Any] = {"model": model_name, "messages": _wire_messages(req.messages)}
    payload["max_tokens" if legacy_max_tokens else "max_completion_tokens"] = req.max_tokens
    if req.temperature is not None:
        payload["temperature"] = req.temperature
    if req.tools:
        payload["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.input_schema,
                },
            }
            for tool in req.tools
        ]
    if req.output_schema is not None:
        name = re.sub(r"[^A-Za-z0-9_-]", "_", str(req.output_schema.get("title", "answer")))[:64]
        payload["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name or "answer", "schema": req.output_schema, "strict": False},
        }
    return payload


def _parse_arguments(name: str, raw: str | None, provider: str) -> dict[str, Any]:
    text = raw or "{}"
    try:
        arguments = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProviderError(
            f"tool call {name!r} has arguments that are not JSON: {text[:200]!r}",
            provider=provider,
            kind="malformed",
        ) from exc
    if not isinstance(arguments, dict):
        raise ProviderError(
            f"tool call {name!r} has non-object arguments: {text[:200]!r}",
            provider=provider,
            kind="malformed",
        )
    return arguments


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    return Usage(
        input_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
    )


class OpenAIModel(SDKClientModel):
    """A :class:`~quantdesk.agents.model.Model` over Chat Completions.

    Args:
        model: Model name, e.g. ``"gpt-4.1"`` or ``"llama3.1:8b"``.
        api_key: The key; ``None`` reads ``OPENAI_API_KEY`` (or, when ``compatible``,
            ``QUANTDESK_OPENAI_API_KEY``).
        base_url: API root; ``None`` means OpenAI's (or ``QUANTDESK_OPENAI_BASE_URL`` when
            ``compatible``).
        compatible: Talk to a third-party server: id prefix ``openai-compatible``, no
            ``OPENAI_API_KEY``, ``max_tokens`` on the wire.
        retry: Retry policy (default :class:`~quantdesk.agents.retry.RetryPolicy`).
        rng: Jitter source for the retries (tests pass a seeded one).
        on_retry: Called before each retry (to log or display it).

    Raises:
        ConfigError: No key for OpenAI, no base URL for a compatible server, or no SDK.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        compatible: bool = False,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        on_retry: Callable[[RetryAttempt], None] | None = None,
    ) -> None:
        prefix = "openai-compatible" if compatible else "openai"
        if not model:
            raise ConfigError("No model name given.", fix=f"use '{prefix}:<model>'.")
        self._sdk = _import_sdk()
        self.provider = prefix
        self.compatible = compatible
        self.model_name = model
        if compatible:
            key_variable = "QUANTDESK_OPENAI_API_KEY"
            url = base_url or os.environ.get("QUANTDESK_OPENAI_BASE_URL", "")
            if not url:
                raise ConfigError(
                    f"No base URL for the OpenAI-compatible model {model!r}.",
                    fix="use 'openai-compatible:<model>@<base_url>' or set "
                    "QUANTDESK_OPENAI_BASE_URL (e.g. http://localhost:11434/v1 for Ollama).",
                )
            key = api_key or os.environ.get(key_variable, "") or _NO_KEY_PLACEHOLDER
            self.model_id = f"{prefix}:{model}@{url}" if base_url else f"{prefix}:{model}"
        else:
            key_variable = "OPENAI_API_KEY"
            url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_OPENAI_BASE_URL
            key = api_key if api_key is not None else os.environ.get(key_variable, "")
            if not key:
                raise ConfigError(
                    f"No OpenAI API key for model {model!r}.",
                    fix=f"set {key_variable}, or choose another model with QUANTDESK_MODEL.",
                )
            self.model_id = f"{prefix}:{model}"
        self.base_url = url
        self._key_variable = key_variable
        self._init_retry(retry, rng, on_retry)
        # max_retries=0: our retry policy is the only one, so attempts can be counted.
        self._client = self._sdk.AsyncOpenAI(api_key=key, base_url=url, max_retries=0)

    def _status_message(self, exc: Any) -> str:
        body = exc.body if isinstance(exc.body, dict) else {}
        return str(body.get("message") or exc.message)

    def _special_error(self, exc: Exception) -> ProviderError | None:
        sdk = self._sdk
        if isinstance(exc, sdk.APIError) and type(exc) is sdk.APIError:
            # An error event inside a stream: the server failed mid-answer.
            return ProviderError(
                f"stream error: {exc.message}", provider=self.provider, kind="server"
            )
        return None

    async def _call(self, req: ModelRequest, *, stream: bool) -> Any:
        payload = build_payload(self.model_name, req, legacy_max_tokens=self.compatible)
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return await self._send(
            lambda: self._client.chat.completions.create(
                **payload, stream=stream, timeout=req.timeout_s
            ),
            req.timeout_s,
        )

    def _response(
        self,
        raw_id: str | None,
        text: str,
        refusal: str | None,
        calls: list[ToolCall],
        usage: Usage,
        finish: str | None,
    ) -> ModelResponse:
        stop_reason: StopReason = _FINISH_REASONS.get(finish or "", "other")
        if refusal:
            stop_reason, text = "refusal", refusal
        return ModelResponse(
            model=self.model_id,
            text=text,
            tool_calls=calls,
            usage=usage,
            stop_reason=stop_reason,
            raw_id=raw_id,
        )

    async def request(self, req: ModelRequest) -> ModelResponse:
        """Send one request (retried per the policy) and return the answer.

        Raises:
            ProviderError: The API failed; ``retryable`` says whether a later retry may help.
        """
        raw = await self._call(req, stream=False)
        choices = getattr(raw, "choices", None)
        if not choices:
            raise ProviderError("response has no choices", provider=self.provider, kind="malformed")
        choice = choices[0]
        message = choice.message
        calls = [
            ToolCall(
                id=call.id,
                name=call.function.name,
                arguments=_parse_arguments(
                    call.function.name, call.function.arguments, self.provider
                ),
            )
            for call in (getattr(message, "tool_calls", None) or [])
        ]
        return self._response(
            getattr(raw, "id", None),
            getattr(message, "content", None) or "",
            getattr(message, "refusal", None),
            calls,
            _usage(getattr(raw, "usage", None)),
            choice.finish_reason,
        )

    async def stream(self, req: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream one request: text deltas, complete tool calls, then ``done``.

        Only opening the stream is retried; a failure after events were yielded raises
        :class:`ProviderError`, since replaying would repeat text the caller already has.
        """
        chunks = await self._call(req, stream=True)
        raw_id: str | None = None
        text_parts: list[str] = []
        refusal_parts: list[str] = []
        pending: dict[int, dict[str, Any]] = {}
        usage = Usage()
        finish: str | None = None
        try:
            async with chunks:
                async for chunk in chunks:
                    raw_id = raw_id or getattr(chunk, "id", None)
                    if getattr(chunk, "usage", None) is not None:
                        usage = _usage(chunk.usage)
                    for choice in chunk.choices or []:
                        delta = choice.delta
                        if getattr(delta, "content", None):
                            text_parts.append(delta.content)
                            yield StreamEvent(kind="text", text=delta.content)
                        if getattr(delta, "refusal", None):
                            refusal_parts.append(delta.refusal)
                        for piece in getattr(delta, "tool_calls", None) or []:
                            slot = pending.setdefault(
                                piece.index, {"id": "", "name": "", "args": []}
                            )
                            slot["id"] = piece.id or slot["id"]
                            function = piece.function
                            if function is not None:
                                slot["name"] = function.name or slot["name"]
                                slot["args"].append(function.arguments or "")
                        finish = choice.finish_reason or finish
        except (self._sdk.APIError, json.JSONDecodeError) as exc:
            raise self._translate(exc) from exc
        calls = [
            ToolCall(
                id=slot["id"] or f"call_{index}",
                name=slot["name"],
                arguments=_parse_arguments(slot["name"], "".join(slot["args"]), self.provider),
            )
            for index, slot in sorted(pending.items())
        ]
        for call in calls:
            yield StreamEvent(kind="tool_call", tool_call=call)
        response = self._response(
            raw_id, "".join(text_parts), "".join(refusal_parts) or None, calls, usage, finish
        )
        yield StreamEvent(kind="done", response=response)


def openai_compatible_model(name: str, **options: Any) -> OpenAIModel:
    """Factory of ``openai-compatible:<model>[@<base_url>]`` ids.

    Args:
        name: ``"<model>@<base_url>"`` or ``"<model>"`` (base URL from
            ``QUANTDESK_OPENAI_BASE_URL``). Model names may contain ``:`` (``llama3.1:8b``).
        **options: Passed to :class:`OpenAIModel`.
    """
    match = _COMPATIBLE_ID.match(name)
    if match:
        return OpenAIModel(
            match.group("model"), base_url=match.group("url"), compatible=True, **options
        )
    return OpenAIModel(name, compatible=True, **options)
