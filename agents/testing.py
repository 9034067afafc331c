"""Test doubles shipped in the package: a scripted model and a schema-driven tool caller.

* :class:`FunctionModel` answers with whatever a Python function returns for the conversation
  (text, tool calls or a whole :class:`ModelResponse`), so a test can script a researcher, a
  critic or a leaky idea turn by turn. ``FunctionModel.from_script`` plays a fixed list.
* :class:`SchemaToolModel` calls the request's tools with arguments generated from their JSON
  schemas (deterministic under a seed), then answers with a summary of the results. It
  exercises the tool-calling protocol end to end without a provider.

Both report a deterministic token estimate (about 4 characters a token) as usage, so budget
tests work without a real tokenizer. Model ids: ``test:function``, ``test:schema``;
``model_from_id`` is the registry factory for the ``test`` prefix.
"""

from __future__ import annotations

import inspect
import json
import math
import random
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from quantdesk.agents.messages import (
    Message,
    ModelRequest,
    ModelResponse,
    StreamEvent,
    ToolCall,
    Usage,
)
from quantdesk.quant_core.errors import InputError

__all__ = [
    "FunctionModel",
    "SchemaToolModel",
    "generate_from_schema",
    "model_from_id",
    "response_events",
    "token_estimate",
]

Reply = ModelResponse | str | ToolCall | Sequence[ToolCall]
ReplyFunction = Callable[[list[Message], ModelRequest], Reply | Awaitable[Reply]]

# Candidate strings tried, in order, against a schema ``pattern`` (tickers, dates, names).
_PATTERN_CANDIDATES = ("a", "SYN000", "2019-12-31", "x_1", "A", "0", "demo", "1A")


def token_estimate(text: str) -> int:
    """A deterministic stand-in for a tokenizer: one token per 4 characters."""
    return math.ceil(len(text) / 4)


def _usage_for(req: ModelRequest, text: str, calls: Sequence[ToolCall]) -> Usage:
    prompt = json.dumps(req.model_dump(mode="json", include={"messages", "tools"}))
    answer = text + "".join(json.dumps(c.arguments, sort_keys=True) for c in calls)
    return Usage(input_tokens=token_estimate(prompt), output_tokens=token_estimate(answer))


def response_events(response: ModelResponse) -> list[StreamEvent]:
    """The stream events of a finished response: text in line-sized deltas, calls, done."""
    events = [
        StreamEvent(kind="text", text=piece)
        for piece in re.findall(r"[^\n]*\n|[^\n]+$", response.text)
    ]
    events += [StreamEvent(kind="tool_call", tool_call=call) for call in response.tool_calls]
    events.append(StreamEvent(kind="done", response=response))
    return events


class FunctionModel:
    """A model scripted by a function of the conversation.

    Args:
        fn: ``fn(messages, request)`` returning (or awaiting to) a string (final text), a
            :class:`ToolCall` or a list of them (a tool-use turn), or a full
            :class:`ModelResponse` (returned as is).
        model_id: Id reported in responses.
    """

    def __init__(self, fn: ReplyFunction, *, model_id: str = "test:function") -> None:
        self.fn = fn
        self.model_id = model_id
        self.requests: list[ModelRequest] = []

    @classmethod
    def from_script(
        cls, replies: Sequence[Reply], *, model_id: str = "test:script"
    ) -> FunctionModel:
        """A model that plays ``replies`` in order, one per call.

        Raises:
            InputError: (when called) the script has no reply left.
        """
        queue = list(replies)

        def play(messages: list[Message], request: ModelRequest) -> Reply:
            if not queue:
                raise InputError(
                    f"The scripted model {model_id!r} ran out of replies after {len(replies)}.",
                    fix="add replies to the script for every model call the test makes.",
                )
            return queue.pop(0)

        return cls(play, model_id=model_id)

    async def request(self, req: ModelRequest) -> ModelResponse:
        """Call the function and wrap its reply as a response."""
        self.requests.append(req)
        reply = self.fn(list(req.messages), req)
        if inspect.isawaitable(reply):
            reply = await reply
        if isinstance(reply, ModelResponse):
            return reply
        if isinstance(reply, str):
            return ModelResponse(
                model=self.model_id,
                text=reply,
                usage=_usage_for(req, reply, []),
                stop_reason="end_turn",
            )
        calls = [reply] if isinstance(reply, ToolCall) else reply
        if not isinstance(calls, (list, tuple)) or not all(isinstance(c, ToolCall) for c in calls):
            raise InputError(
                f"FunctionModel {self.model_id!r} got an unsupported reply {reply!r}.",
                fix="return a str, a ToolCall, a list of ToolCall or a ModelResponse.",
            )
        return ModelResponse(
            model=self.model_id,
            tool_calls=list(calls),
            usage=_usage_for(req, "", calls),
            stop_reason="tool_use" if calls else "end_turn",
        )

    async def stream(self, req: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream the scripted response."""
        for event in response_events(await self.request(req)):
            yield event


class _SchemaGenerator:
    """Instances of a JSON schema (the subset pydantic emits), deterministic under a seed."""

    def __init__(self, root: dict[str, Any], rng: random.Random, optional_share: float) -> None:
        self.root = root
        self.rng = rng
        self.optional_share = optional_share

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.root
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = {**node, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def make(self, schema: dict[str, Any], depth: int = 0) -> Any:
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        for key in ("oneOf", "anyOf"):
            if key in schema:
                options = [o for o in schema[key] if self._resolve(o).get("type") != "null"]
                return self.make(self.rng.choice(options or schema[key]), depth + 1)
        if "allOf" in schema:
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                merged.update(self._resolve(part))
            return self.make(merged, depth + 1)
        kind = schema.get("type", "object")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        maker = getattr(self, f"_make_{kind}", None)
        if maker is None:
            raise InputError(
                f"Cannot generate a value of JSON-schema type {kind!r}.",
                fix="use a simpler schema.",
            )
        return maker(schema, depth)

    def _make_object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        required = set(schema.get("required", []))
        out: dict[str, Any] = {}
        for name, sub in schema.get("properties", {}).items():
            if name in required or (depth < 4 and self.rng.random() < self.optional_share):
                out[name] = self.make(sub, depth + 1)
        return out

    def _make_array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        low = schema.get("minItems", 0)
        high = max(low, min(schema.get("maxItems", low + 2), low + 2))
        return [
            self.make(schema.get("items", {}), depth + 1)
            for _ in range(self.rng.randint(low, high))
        ]

    def _make_string(self, schema: dict[str, Any], depth: int) -> str:
        examples = schema.get("examples")
        if examples:
            return str(examples[0])
        if schema.get("format") == "date":
            return "2019-12-31"
        low, high = schema.get("minLength", 1), schema.get("maxLength", 12)
        pattern = schema.get("pattern")
        if pattern:
            for candidate in _PATTERN_CANDIDATES:
                if re.search(pattern, candidate) and low <= len(candidate) <= high:
                    return candidate
        return "x" * max(low, min(high, 4))

    def _number_bounds(self, schema: dict[str, Any], step: float) -> tuple[float, float]:
        low = schema.get("minimum")
        if low is None and "exclusiveMinimum" in schema:
            low = schema["exclusiveMinimum"] + step
        high = schema.get("maximum")
        if high is None and "exclusiveMaximum" in schema:
            high = schema["exclusiveMaximum"] - step
        if low is None:
            low = 0 if high is None else min(0, high)
        if high is None:
            high = low + 10
        # Small values keep generated requests cheap (sizes, counts, windows).
        return low, min(high, low + 10)

    def _make_integer(self, schema: dict[str, Any], depth: int) -> int:
        low, high = self._number_bounds(schema, 1)
        return self.rng.randint(math.ceil(low), math.floor(high))

    def _make_number(self, schema: dict[str, Any], depth: int) -> float:
        low, high = self._number_bounds(schema, 1e-6)
        return round(self.rng.uniform(low, high), 6)

    def _make_boolean(self, schema: dict[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def _make_null(self, schema: dict[str, Any], depth: int) -> None:
        return None


def generate_from_schema(
    schema: dict[str, Any], *, seed: int = 0, optional_share: float = 0.5
) -> Any:
    """Generate one instance of a JSON schema, deterministically for a given seed.

    Handles ``$ref``/``$defs``, ``const``, ``enum``, ``oneOf``/``anyOf``/``allOf``, objects
    (required properties always, optional ones with probability ``optional_share``), arrays,
    strings (``examples``, ``format: date``, simple ``pattern`` s), numbers and booleans.

    Args:
        schema: The JSON schema (root, holding any ``$defs``).
        seed: Random seed.
        optional_share: Probability of including each optional property.

    Raises:
        InputError: a schema type the generator cannot produce.
    """
    return _SchemaGenerator(schema, random.Random(seed), optional_share).make(schema)


class SchemaToolModel:
    """A model that calls tools with arguments generated from their JSON schemas.

    On a turn that does not answer tool results it calls the chosen tools once each; on the
    turn after their results it writes a text summary (tool name, ok or error, first 200
    characters). With ``output_schema`` in the request the final text is a generated instance.

    Args:
        tool_choice: Tool name(s) to call; ``None``: every tool of the request, in order.
        seed: Seed of the argument generator (per tool: seed + CRC32 of its name).
        optional_share: Probability of filling an optional property.
        model_id: Id reported in responses.
    """

    def __init__(
        self,
        tool_choice: str | Sequence[str] | None = None,
        *,
        seed: int = 0,
        optional_share: float = 0.5,
        model_id: str = "test:schema",
    ) -> None:
        self.tool_choice = [tool_choice] if isinstance(tool_choice, str) else tool_choice
        self.seed = seed
        self.optional_share = optional_share
        self.model_id = model_id

    def arguments_for(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """The arguments this model sends to tool ``name``."""
        seed = self.seed + zlib.crc32(name.encode())
        return generate_from_schema(schema, seed=seed, optional_share=self.optional_share)

    async def request(self, req: ModelRequest) -> ModelResponse:
        """Call the tools, or summarise their results.

        Raises:
            InputError: ``tool_choice`` names a tool the request does not offer.
        """
        last = req.messages[-1]
        if last.role == "tool":
            lines = [
                f"{r.name}: {'error' if r.is_error else 'ok'}: {r.content[:200]}"
                for r in last.tool_results
            ]
            text = "\n".join(lines)
            if req.output_schema is not None:
                text = json.dumps(generate_from_schema(req.output_schema, seed=self.seed))
            return ModelResponse(model=self.model_id, text=text, usage=_usage_for(req, text, []))
        offered = {tool.name: tool for tool in req.tools}
        names = list(offered) if self.tool_choice is None else list(self.tool_choice)
        unknown = [n for n in names if n not in offered]
        if unknown:
            raise InputError(
                f"SchemaToolModel was told to call {unknown}, which the request does not offer "
                f"(offered: {sorted(offered)}).",
                fix="pass tool_choice names that are in ModelRequest.tools.",
            )
        n_turns = sum(1 for m in req.messages if m.role == "assistant")
        calls = [
            ToolCall(
                id=f"schema_{n_turns}_{i}",
                name=n,
                arguments=self.arguments_for(n, offered[n].input_schema),
            )
            for i, n in enumerate(names)
        ]
        return ModelResponse(
            model=self.model_id,
            tool_calls=calls,
            usage=_usage_for(req, "", calls),
            stop_reason="tool_use" if calls else "end_turn",
        )

    async def stream(self, req: ModelRequest) -> AsyncIterator[StreamEvent]:
        """Stream the response."""
        for event in response_events(await self.request(req)):
            yield event


def model_from_id(name: str = "schema") -> FunctionModel | SchemaToolModel:
    """Registry factory for ``test:<name>`` ids (the part after ``test:``).

    ``test:schema`` is a :class:`SchemaToolModel` (seed 0); ``test:echo`` and
    ``test:function`` are a :class:`FunctionModel` answering with the last message's text.
    Scripted models need a Python function, so tests construct :class:`FunctionModel`.

    Raises:
        InputError: an unknown name.
    """
    if name == "schema":
        return SchemaToolModel()
    if name in {"echo", "function"}:
        return FunctionModel(lambda messages, req: messages[-1].content, model_id=f"test:{name}")
    raise InputError(
        f"Unknown test model 'test:{name}'.",
        fix="use 'test:schema', 'test:echo' or 'test:function', or build FunctionModel(fn).",
    )
