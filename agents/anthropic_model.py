"""Adapter for the Anthropic Messages API (``anthropic:<model>``), with tool use and streaming.

Wire mapping:

* ``system`` messages join into the top-level ``system`` string; ``tool`` messages become user
  turns of ``tool_result`` blocks; consecutive turns of one role are merged, since the API
  expects user and assistant turns to alternate.
* Structured output uses tool forcing, which every Claude model supports: the schema becomes a
  tool named :data:`FINAL_ANSWER_TOOL` that the model must call (``tool_choice`` ``tool`` when
  it is the only tool, ``any`` otherwise). Its arguments come back as the response's JSON text,
  so callers read structured answers the same way from every adapter.
* The key is read from ``ANTHROPIC_API_KEY`` (or passed in) and handed to the SDK only; the SDK
  retries are disabled so :mod:`quantdesk.agents.retry` is the single retry policy.
"""

from __future__ import annotations

import json
import os
import random
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
from quantdesk.quant_core.errors import ConfigError, InputError

__all__ = ["DEFAULT_ANTHROPIC_BASE_URL", "FINAL_ANSWER_TOOL", "AnthropicModel"]

DEFAULT_ANTHROPIC_BASE_URL = "https://api.anthropic.com"
FINAL_ANSWER_TOOL = "final_answer"
_PROVIDER = "anthropic"
_KEY_VARIABLE = "ANTHROPIC_API_KEY"
# A little slack over the SDK's own HTTP timeout, so the SDK reports the timeout when it can.

_STOP_REASONS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
}


def _import_sdk() -> Any:
    try:
        import anthropic
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "The anthropic SDK is not installed.", fix="pip install anthropic"
        ) from exc
    return anthropic


def _user_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {
            "type": "tool_result",
            "tool_use_id": result.tool_call_id,
            "content": result.content,
            "is_error": result.is_error,
        }
        for result in message.tool_results
    ]
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    return blocks


def _assistant_blocks(message: Message) -> list[dict[str, Any]]:
    # The API rejects empty text blocks, so a tool-call-only turn has none.
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in message.tool_calls
    )
    return blocks


def build_payload(model_name: str, req: ModelRequest) -> dict[str, Any]:
    """The Messages API request body for ``req`` (without ``stream``).

    Raises:
        InputError: A tool is named :data:`FINAL_ANSWER_TOOL` while an output schema is set.
    """
    system = "\n\n".join(m.content for m in req.messages if m.role == "system" and m.content)
    turns: list[dict[str, Any]] = []
    for message in req.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _assistant_blocks(message) if role == "assistant" else _user_blocks(message)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    payload: dict[str, Any] = {
        "model": model_name,
        "max_tokens": req.max_tokens,
        "messages": turns,
    }
    if system:
        payload["system"] = system
    if req.temperature is not None:
        payload["temperature"] = req.temperature
    tools = [
        {"name": t.name, "description": t.description, "input_schema": t.input_schema}
        for t in req.tools
    ]
    if req.output_schema is not None:
        if any(t.name == FINAL_ANSWER_TOOL for t in req.tools):
            raise InputError(
                f"A tool is named {FINAL_ANSWER_TOOL!r}, which the structured output reserves.",
                fix="rename that tool.",
            )
        tools.append(
            {
                "name": FINAL_ANSWER_TOOL,
                "description": "Give the final answer; its arguments are the answer.",
                "input_schema": req.output_schema,
            }
        )
        payload["tool_choice"] = (
            {"type": "tool", "name": FINAL_ANSWER_TOOL} if not req.tools else {"type": "any"}
        )
    if tools:
        payload["tools"] = tools
    return payload


def _usage(raw: Any) -> Usage:
    if raw is None:
        return Usage()
    # Cache writes and reads are prompt tokens too; count them so budgets are not undershot.
    prompt = sum(
        int(getattr(raw, name, None) or 0)
        for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    return Usage(input_tokens=prompt, output_tokens=int(getattr(raw, "output_tokens", 0) or 0))


class AnthropicModel(SDKClientModel):
    """A :class:`~quantdesk.agents.model.Model` over the Anthropic Messages API.

    Args:
        model: Model name, e.g. ``"claude-sonnet-4-5"``.
        api_key: The key; ``None`` reads ``ANTHROPIC_API_KEY``.
        base_url: API root; ``None`` reads ``QUANTDESK_ANTHROPIC_BASE_URL``, then
            ``ANTHROPIC_BASE_URL``, else the public API.
        retry: Retry policy (default :class:`~quantdesk.agents.retry.RetryPolicy`).
        rng: Jitter source for the retries (tests pass a seeded one).
        on_retry: Called before each retry (to log or display it).

    Raises:
        ConfigError: No key is configured, or the SDK is missing.
    """

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        on_retry: Callable[[RetryAttempt], None] | None = None,
    ) -> None:
        if not model:
            raise ConfigError("No Anthropic model name given.", fix="use 'anthropic:<model>'.")
        self._sdk = _import_sdk()
        key = api_key if api_key is not None else os.environ.get(_KEY_VARIABLE, "")
        if not key:
            raise ConfigError(
                f"No Anthropic API key for model {model!r}.",
                fix=f"set {_KEY_VARIABLE}, or choose another model with QUANTDESK_MODEL.",
            )
        self.model_name = model
        self.model_id = f"{_PROVIDER}:{model}"
        self.base_url = (
            base_url
            or os.environ.get("QUANTDESK_ANTHROPIC_BASE_URL")
            or os.environ.get("ANTHROPIC_BASE_URL")
            or DEFAULT_ANTHROPIC_BASE_URL
        )
        self.provider = _PROVIDER
        self._key_variable = _KEY_VARIABLE
        self._init_retry(retry, rng, on_retry)
        # max_retries=0: our retry policy is the only one, so attempts can be counted.
        self._client = self._sdk.AsyncAnthropic(api_key=key, base_url=self.base_url, max_retries=0)

    def _status_message(self, exc: Any) -> str:
        return str(exc.api_message or exc.message)

    async def _call(self, req: ModelRequest, *, stream: bool) -> Any:
        payload = build_payload(self.model_name, req)
        return await self._send(
            lambda: self._client.messages.create(**payload, stream=stream, timeout=req.timeout_s),
            req.timeout_s,
        )

    def _response(
        self,
        raw_id: str | None,
        text_parts: list[str],
        calls: list[ToolCall],
        usage: Usage,
        stop: str | None,
    ) -> ModelResponse:
        final = [call for call in calls if call.name == FINAL_ANSWER_TOOL]
        stop_reason = _STOP_REASONS.get(stop or "", "other")
        text = "".join(text_parts)
        if final:
            # The forced answer tool is the structured answer, not a call to run.
            text = json.dumps(final[0].arguments)
            calls = [call for call in calls if call.name != FINAL_ANSWER_TOOL]
            if not calls and stop_reason == "tool_use":
                stop_reason = "end_turn"
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
        text_parts: list[str] = []
        calls: list[ToolCall] = []
        for block in getattr(raw, "content", None) or []:
            kind = getattr(block, "type", None)
            if kind == "text":
                text_parts.append(block.text)
            elif kind == "tool_use":
                calls.append(ToolCall(id=block.id, name=block.name, arguments=block.input or {}))
        return self._response(
            getattr(raw, "id", None),
            text_parts,
            calls,
            _usage(getattr(raw, "usage", None)),
            getattr(raw, "stop_reason", None),
        )

    async def stream(self, req: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream one request: text deltas, complete tool calls, then ``done``.

        Only opening the stream is retried; a failure after events were yielded raises
        :class:`ProviderError`, since replaying would repeat text the caller already has.
        """
        events = await self._call(req, stream=True)
        raw_id: str | None = None
        input_tokens = output_tokens = 0
        stop: str | None = None
        text_parts: list[str] = []
        calls: list[ToolCall] = []
        open_tools: dict[int, dict[str, Any]] = {}
        try:
            async with events:
                async for event in events:
                    kind = event.type
                    if kind == "message_start":
                        raw_id = event.message.id
                        usage = _usage(event.message.usage)
                        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
                    elif kind == "content_block_start" and event.content_block.type == "tool_use":
                        block = event.content_block
                        open_tools[event.index] = {"id": block.id, "name": block.name, "json": []}
                    elif kind == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            text_parts.append(delta.text)
                            yield StreamEvent(kind="text", text=delta.text)
                        elif delta.type == "input_json_delta" and event.index in open_tools:
                            open_tools[event.index]["json"].append(delta.partial_json)
                    elif kind == "content_block_stop" and event.index in open_tools:
                        call = self._finish_tool(open_tools.pop(event.index))
                        calls.append(call)
                        if call.name != FINAL_ANSWER_TOOL:
                            yield StreamEvent(kind="tool_call", tool_call=call)
                    elif kind == "message_delta":
                        stop = event.delta.stop_reason or stop
                        # message_delta carries the cumulative output count.
                        output_tokens = int(getattr(event.usage, "output_tokens", 0) or 0)
        except (self._sdk.APIError, json.JSONDecodeError) as exc:
            raise self._translate(exc) from exc
        response = self._response(
            raw_id,
            text_parts,
            calls,
            Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            stop,
        )
        if any(call.name == FINAL_ANSWER_TOOL for call in calls):
            yield StreamEvent(kind="text", text=response.text)
        yield StreamEvent(kind="done", response=response)

    def _finish_tool(self, pending: dict[str, Any]) -> ToolCall:
        raw = "".join(pending["json"]) or "{}"
        try:
            arguments = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ProviderError(
                f"tool call {pending['name']!r} has arguments that are not JSON: {raw[:200]!r}",
                provider=_PROVIDER,
                kind="malformed",
            ) from exc
        if not isinstance(arguments, dict):
            raise ProviderError(
                f"tool call {pending['name']!r} has non-object arguments: {raw[:200]!r}",
                provider=_PROVIDER,
                kind="malformed",
            )
        return ToolCall(id=pending["id"], name=pending["name"], arguments=arguments)
