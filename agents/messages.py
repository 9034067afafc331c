"""Provider-neutral messages exchanged with a model.

Every adapter (Anthropic Messages API, OpenAI Chat Completions, the offline policy, the test
doubles) translates between these models and its own wire format, so the agents above never see
a provider's types. All models forbid unknown fields; the values that a conversation is made of
are frozen so that a recorded request cannot change after it was sent.

Conventions:

* A conversation is a list of :class:`Message`. ``system`` messages carry instructions;
  ``assistant`` messages carry the model's text and the tool calls it asked for; ``tool``
  messages carry the :class:`ToolResult` of each of those calls, answering them by
  ``tool_call_id``.
* A :class:`ModelResponse` names the resolved model id that produced it (for example
  ``"anthropic:claude-sonnet-4-5"`` or ``"offline"``), so every output can say who wrote it.
* Streaming yields :class:`StreamEvent` values: text deltas, complete tool calls, and one final
  ``done`` event holding the same :class:`ModelResponse` that ``request`` would have returned.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Message",
    "ModelRequest",
    "ModelResponse",
    "Role",
    "StopReason",
    "StreamEvent",
    "StreamEventKind",
    "ToolCall",
    "ToolDefinition",
    "ToolResult",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]
StopReason = Literal["end_turn", "tool_use", "max_tokens", "refusal", "stop_sequence", "other"]
StreamEventKind = Literal["text", "tool_call", "done"]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class ToolDefinition(BaseModel):
    """A tool the model may call.

    Attributes:
        name: Tool name, unique within a request (providers restrict it to ``[A-Za-z0-9_-]``).
        description: What the tool does, shown to the model.
        input_schema: JSON Schema (an ``object`` schema) of the tool's arguments.
    """

    model_config = _FROZEN

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class ToolCall(BaseModel):
    """One tool call requested by the model.

    Attributes:
        id: Provider-assigned call id; the matching :class:`ToolResult` repeats it.
        name: Name of the tool to call.
        arguments: Decoded JSON arguments.
    """

    model_config = _FROZEN

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResult(BaseModel):
    """The result of one :class:`ToolCall`, sent back to the model.

    Attributes:
        tool_call_id: The ``id`` of the call this answers.
        name: Name of the tool that ran.
        content: The result as text (usually JSON).
        is_error: True when the tool refused or failed; the model should try again differently.
    """

    model_config = _FROZEN

    tool_call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    content: str
    is_error: bool = False


class Message(BaseModel):
    """One turn of a conversation.

    Attributes:
        role: ``system``, ``user``, ``assistant`` or ``tool``.
        content: The text of the turn (may be empty for an assistant turn made only of tool
            calls, or a tool turn made only of results).
        tool_calls: Tool calls the assistant asked for (assistant turns only).
        tool_results: Results answering earlier tool calls (tool turns only).
    """

    model_config = _FROZEN

    role: Role
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_results: list[ToolResult] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_role_payload(self) -> Message:
        # Reject shapes no provider can express, at construction rather than on the wire.
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only assistant messages carry tool_calls, not role {self.role!r}")
        if self.tool_results and self.role != "tool":
            raise ValueError(f"only tool messages carry tool_results, not role {self.role!r}")
        if self.role == "tool" and not self.tool_results:
            raise ValueError("a tool message needs at least one tool_result")
        return self


class Usage(BaseModel):
    """Token counts of one call or the sum of several.

    Attributes:
        input_tokens: Prompt tokens billed.
        output_tokens: Completion tokens billed.
    """

    model_config = _FROZEN

    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )


class ModelRequest(BaseModel):
    """Everything one model call needs.

    Attributes:
        messages: The conversation so far (at least one message).
        tools: Tools the model may call.
        output_schema: JSON Schema the final answer must follow; adapters ask for it through
            the provider's structured-output mechanism (tool forcing or ``response_format``).
        max_tokens: Cap on generated tokens.
        temperature: Sampling temperature; ``None`` leaves the provider default.
        timeout_s: Timeout of each HTTP attempt, in seconds.
    """

    model_config = _FROZEN

    messages: list[Message] = Field(min_length=1)
    tools: list[ToolDefinition] = Field(default_factory=list)
    output_schema: dict[str, Any] | None = None
    max_tokens: int = Field(default=2048, gt=0)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    timeout_s: float = Field(default=60.0, gt=0.0)

    @model_validator(mode="after")
    def _check_unique_tools(self) -> ModelRequest:
        names = [tool.name for tool in self.tools]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"tool names must be unique, repeated: {duplicates}")
        return self


class ModelResponse(BaseModel):
    """A model's answer.

    Attributes:
        model: Resolved model id that produced it (``"anthropic:claude-sonnet-4-5"``).
        text: The answer's text (empty when the model only called tools).
        tool_calls: Tool calls the model asked for, in order.
        usage: Tokens billed for this call.
        stop_reason: Why generation stopped, mapped onto a provider-neutral set.
        raw_id: The provider's response id, for support requests and logs.
    """

    model_config = _FROZEN

    model: str = Field(min_length=1)
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    stop_reason: StopReason = "end_turn"
    raw_id: str | None = None

    def to_message(self) -> Message:
        """The assistant :class:`Message` to append to the conversation."""
        return Message(role="assistant", content=self.text, tool_calls=list(self.tool_calls))


class StreamEvent(BaseModel):
    """One event of a streamed response.

    Attributes:
        kind: ``text`` (a piece of the answer), ``tool_call`` (a complete tool call, emitted
            once its arguments have fully arrived) or ``done`` (the last event).
        text: The text delta (``text`` events).
        tool_call: The call (``tool_call`` events).
        response: The complete response (``done`` events), equal to what ``request`` returns.
    """

    model_config = _FROZEN

    kind: StreamEventKind
    text: str = ""
    tool_call: ToolCall | None = None
    response: ModelResponse | None = None

    @model_validator(mode="after")
    def _check_payload(self) -> StreamEvent:
        if (self.kind == "tool_call") != (self.tool_call is not None):
            raise ValueError("a tool_call event carries tool_call, and only it does")
        if (self.kind == "done") != (self.response is not None):
            raise ValueError("a done event carries response, and only it does")
        return self
