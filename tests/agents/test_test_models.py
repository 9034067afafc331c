"""The test doubles shipped in the package."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.agents.messages import (
    Message,
    ModelRequest,
    ModelResponse,
    ToolCall,
    ToolDefinition,
    ToolResult,
)
from quantdesk.agents.testing import (
    FunctionModel,
    SchemaToolModel,
    generate_from_schema,
    model_from_id,
)
from quantdesk.quant_core.errors import InputError
from quantdesk.tools import get_tool, list_tools

USER = [Message(role="user", content="hi")]


def _tools() -> list[ToolDefinition]:
    return [
        ToolDefinition(name=t.name, description=t.summary, input_schema=t.input_schema())
        for t in list_tools()
    ]


def test_function_model_wraps_every_reply_kind() -> None:
    call = ToolCall(id="c", name="t", arguments={"x": 1})
    for reply, stop in [("text", "end_turn"), (call, "tool_use"), ([call, call], "tool_use")]:
        model = FunctionModel(lambda messages, req, r=reply: r)
        response = asyncio.run(model.request(ModelRequest(messages=USER)))
        assert response.stop_reason == stop
        assert response.model == "test:function"
        assert response.usage.input_tokens > 0
    fixed = ModelResponse(model="m", text="fixed")

    async def coro(messages: list[Message], req: ModelRequest) -> ModelResponse:
        return fixed

    assert asyncio.run(FunctionModel(coro).request(ModelRequest(messages=USER))) == fixed
    with pytest.raises(InputError, match="unsupported reply"):
        asyncio.run(FunctionModel(lambda m, r: 42).request(ModelRequest(messages=USER)))  # type: ignore[arg-type,return-value]


def test_scripted_model_plays_in_order_then_fails() -> None:
    model = FunctionModel.from_script(["one", "two"])
    req = ModelRequest(messages=USER)
    assert [asyncio.run(model.request(req)).text for _ in range(2)] == ["one", "two"]
    with pytest.raises(InputError, match="ran out"):
        asyncio.run(model.request(req))


def test_registry_factory() -> None:
    assert isinstance(model_from_id("schema"), SchemaToolModel)
    assert asyncio.run(model_from_id("echo").request(ModelRequest(messages=USER))).text == "hi"
    with pytest.raises(InputError, match="test:nope"):
        model_from_id("nope")


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_schema_tool_model_builds_valid_requests_for_every_quantdesk_tool(seed: int) -> None:
    model = SchemaToolModel(seed=seed)
    response = asyncio.run(model.request(ModelRequest(messages=USER, tools=_tools())))
    assert [c.name for c in response.tool_calls] == [t.name for t in list_tools()]
    for call in response.tool_calls:
        get_tool(call.name).input_model.model_validate(call.arguments)  # strict, extra=forbid


def test_schema_tool_model_is_deterministic_and_answers_after_results() -> None:
    tools = _tools()
    a = asyncio.run(
        SchemaToolModel(["backtest"], seed=3).request(ModelRequest(messages=USER, tools=tools))
    )
    b = asyncio.run(
        SchemaToolModel(["backtest"], seed=3).request(ModelRequest(messages=USER, tools=tools))
    )
    assert a == b
    result = ToolResult(tool_call_id=a.tool_calls[0].id, name="backtest", content='{"ok": true}')
    follow = [*USER, a.to_message(), Message(role="tool", tool_results=[result])]
    final = asyncio.run(
        SchemaToolModel(["backtest"]).request(ModelRequest(messages=follow, tools=tools))
    )
    assert final.tool_calls == []
    assert final.text.startswith("backtest: ok")
    with pytest.raises(InputError, match="does not offer"):
        asyncio.run(SchemaToolModel("missing").request(ModelRequest(messages=USER, tools=tools)))


def test_schema_tool_model_calls_run_through_the_tool_layer() -> None:
    from quantdesk.tools import run_tool

    calls = asyncio.run(
        SchemaToolModel(["deflated_sharpe", "list_trials"], seed=1).request(
            ModelRequest(messages=USER, tools=_tools())
        )
    ).tool_calls
    for call in calls:
        envelope = run_tool(call.name, call.arguments)
        assert envelope.tool == call.name  # an envelope, never a traceback


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "properties": {"a": {"type": "integer", "minimum": 3, "maximum": 5}},
            "required": ["a"],
        },
        {
            "type": "array",
            "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "minItems": 2,
        },
        {"anyOf": [{"type": "null"}, {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}]},
        {
            "$defs": {"X": {"enum": ["p", "q"]}},
            "type": "object",
            "properties": {"x": {"$ref": "#/$defs/X"}},
            "required": ["x"],
        },
        {"type": "string", "minLength": 6, "maxLength": 6},
        {"type": "boolean"},
    ],
)
def test_generated_instances_validate(schema: dict[str, object]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for seed in range(20):
        jsonschema.validate(generate_from_schema(schema, seed=seed), schema)
