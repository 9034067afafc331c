"""The Anthropic adapter against a local server speaking the Messages API (JSON and SSE)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import fake_servers as fs
import pytest
from pydantic import BaseModel, ConfigDict

from quantdesk.agents.anthropic_model import FINAL_ANSWER_TOOL, AnthropicModel
from quantdesk.agents.messages import (
    Message,
    ModelRequest,
    ToolDefinition,
    ToolResult,
    Usage,
)
from quantdesk.agents.model import (
    ProviderError,
    StructuredOutputError,
    get_model,
    request_structured,
)
from quantdesk.agents.retry import RetryAttempt, RetryPolicy
from quantdesk.quant_core.errors import ConfigError

T = TypeVar("T")
KEY = "sk-ant-test-SECRET-0123456789"
FAST = RetryPolicy(max_attempts=3, base_delay_s=0.0, jitter=0.0)
TOOL = ToolDefinition(
    name="fetch_prices",
    description="Load prices.",
    input_schema={"type": "object", "properties": {"symbols": {"type": "array"}}},
)


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: str
    confidence: float


def _model(server: fs.FakeServer, **kwargs: object) -> AnthropicModel:
    options: dict[str, object] = {"retry": FAST, "rng": random.Random(3)}
    options.update(kwargs)
    return AnthropicModel("claude-test", api_key=KEY, base_url=server.base_url, **options)


def _ask(text: str = "Test momentum on the demo universe.", **kwargs: object) -> ModelRequest:
    messages = [
        Message(role="system", content="You are a researcher."),
        Message(role="user", content=text),
    ]
    return ModelRequest(messages=messages, **kwargs)


def _run(model: AnthropicModel, coro_fn: Callable[[AnthropicModel], Awaitable[T]]) -> T:
    async def main() -> T:
        async with model:
            return await coro_fn(model)

    return asyncio.run(main())


def test_tool_use_round_trip(fake_server: fs.FakeServer) -> None:
    fake_server.reply_json(
        fs.anthropic_message(
            text="Loading prices.",
            tool_uses=[("toolu_1", "fetch_prices", {"symbols": ["AAA"]})],
            stop_reason="tool_use",
            input_tokens=40,
            output_tokens=12,
        )
    )
    fake_server.reply_json(
        fs.anthropic_message(text="Momentum is weak.", input_tokens=80, output_tokens=9)
    )

    async def go(model: AnthropicModel) -> Any:
        req = _ask(tools=[TOOL])
        first = await model.request(req)
        result = ToolResult(tool_call_id="toolu_1", name="fetch_prices", content='{"rows": 10}')
        follow = req.model_copy(
            update={
                "messages": [
                    *req.messages,
                    first.to_message(),
                    Message(role="tool", tool_results=[result]),
                ]
            }
        )
        return first, await model.request(follow)

    first, second = _run(_model(fake_server), go)
    assert first.model == "anthropic:claude-test"
    assert first.stop_reason == "tool_use"
    assert first.text == "Loading prices."
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [
        ("toolu_1", "fetch_prices", {"symbols": ["AAA"]})
    ]
    assert first.usage + second.usage == Usage(input_tokens=120, output_tokens=21)
    assert second.text == "Momentum is weak."
    assert second.stop_reason == "end_turn"
    assert second.raw_id == "msg_01"

    sent_first, sent_second = fake_server.requests
    assert sent_first.path == "/v1/messages"
    assert sent_first.headers["authorization"] == f"Bearer {KEY}"
    assert "anthropic-version" in sent_first.headers
    assert sent_first.body["system"] == "You are a researcher."
    assert sent_first.body["tools"] == [TOOL.model_dump()]
    assert "tool_choice" not in sent_first.body
    assert sent_second.body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Loading prices."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "fetch_prices",
                "input": {"symbols": ["AAA"]},
            },
        ],
    }
    assert sent_second.body["messages"][2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": '{"rows": 10}',
                "is_error": False,
            }
        ],
    }


def test_429_honours_retry_after_then_succeeds(fake_server: fs.FakeServer) -> None:
    fake_server.reply_json(
        fs.anthropic_error("rate_limit_error", "slow down"),
        status=429,
        headers={"retry-after": "0.05"},
    )
    fake_server.reply_json(fs.anthropic_message(text="ok"))
    retries: list[RetryAttempt] = []
    response = _run(_model(fake_server, on_retry=retries.append), lambda m: m.request(_ask()))
    assert response.text == "ok"
    assert len(fake_server.requests) == 2
    assert [(r.attempt, r.delay_s, r.error.kind, r.error.status_code) for r in retries] == [
        (1, 0.05, "rate_limit", 429)
    ]


def test_500_then_success(fake_server: fs.FakeServer) -> None:
    fake_server.reply_json(fs.anthropic_error("api_error", "boom"), status=500)
    fake_server.reply_json(fs.anthropic_error("overloaded_error", "busy"), status=529)
    fake_server.reply_json(fs.anthropic_message(text="ok"))
    assert _run(_model(fake_server), lambda m: m.request(_ask())).text == "ok"
    assert len(fake_server.requests) == 3


def test_500_exhausts_attempts(fake_server: fs.FakeServer) -> None:
    for _ in range(3):
        fake_server.reply_json(fs.anthropic_error("api_error", "boom"), status=500)
    with pytest.raises(ProviderError) as info:
        _run(_model(fake_server), lambda m: m.request(_ask()))
    assert info.value.retryable
    assert (info.value.kind, info.value.status_code) == ("server", 500)
    assert len(fake_server.requests) == 3


@pytest.mark.parametrize(("status", "kind"), [(400, "client"), (401, "auth"), (404, "client")])
def test_4xx_is_not_retried(fake_server: fs.FakeServer, status: int, kind: str) -> None:
    fake_server.reply_json(
        fs.anthropic_error("invalid_request_error", "bad request"), status=status
    )
    with pytest.raises(ProviderError) as info:
        _run(_model(fake_server), lambda m: m.request(_ask()))
    assert not info.value.retryable
    assert info.value.kind == kind
    assert "bad request" in str(info.value)
    assert len(fake_server.requests) == 1


def test_timeout_is_retried_then_raised(fake_server: fs.FakeServer) -> None:
    fake_server.reply_hang(10.0)
    fake_server.reply_json(fs.anthropic_message(text="late but fine"))
    assert (
        _run(_model(fake_server), lambda m: m.request(_ask(timeout_s=0.3))).text == "late but fine"
    )

    fake_server.reply_hang(10.0)
    one_shot = RetryPolicy(max_attempts=1)
    with pytest.raises(ProviderError) as info:
        _run(_model(fake_server, retry=one_shot), lambda m: m.request(_ask(timeout_s=0.3)))
    assert info.value.kind == "timeout"
    assert info.value.retryable


@pytest.mark.parametrize("body", [b"{not json", b'{"id": "msg_1", "content": [', b""])
def test_malformed_json_fails_cleanly(fake_server: fs.FakeServer, body: bytes) -> None:
    fake_server.reply_raw(body)
    with pytest.raises(ProviderError) as info:
        _run(_model(fake_server), lambda m: m.request(_ask()))
    assert info.value.kind == "malformed"
    assert not info.value.retryable
    assert len(fake_server.requests) == 1


def test_refusal_is_reported_and_not_retried_for_structured_output(
    fake_server: fs.FakeServer,
) -> None:
    fake_server.reply_json(
        fs.anthropic_message(text="I can't help with that.", stop_reason="refusal")
    )
    response = _run(_model(fake_server), lambda m: m.request(_ask()))
    assert response.stop_reason == "refusal"

    fake_server.reply_json(fs.anthropic_message(text="No.", stop_reason="refusal"))
    with pytest.raises(StructuredOutputError, match="refused"):
        _run(_model(fake_server), lambda m: request_structured(m, _ask(), Verdict))
    assert len(fake_server.requests) == 2


def test_structured_output_by_tool_forcing_with_one_validation_retry(
    fake_server: fs.FakeServer,
) -> None:
    fake_server.reply_json(
        fs.anthropic_message(
            tool_uses=[("toolu_9", FINAL_ANSWER_TOOL, {"decision": "accept"})],
            stop_reason="tool_use",
        )
    )
    fake_server.reply_json(
        fs.anthropic_message(
            tool_uses=[("toolu_10", FINAL_ANSWER_TOOL, {"decision": "accept", "confidence": 0.7})],
            stop_reason="tool_use",
        )
    )
    output, response = _run(_model(fake_server), lambda m: request_structured(m, _ask(), Verdict))
    assert output == Verdict(decision="accept", confidence=0.7)
    assert response.stop_reason == "end_turn"
    assert response.tool_calls == []
    first, second = fake_server.requests
    assert first.body["tool_choice"] == {"type": "tool", "name": FINAL_ANSWER_TOOL}
    assert first.body["tools"][0]["input_schema"] == Verdict.model_json_schema()
    feedback = second.body["messages"][-1]["content"][-1]["text"]
    assert "confidence" in feedback
    assert "does not validate" in feedback


def test_structured_output_gives_up_cleanly(fake_server: fs.FakeServer) -> None:
    for _ in range(2):
        fake_server.reply_json(fs.anthropic_message(text="not json at all"))
    with pytest.raises(StructuredOutputError) as info:
        _run(_model(fake_server), lambda m: request_structured(m, _ask(), Verdict, retries=1))
    assert not info.value.retryable
    assert len(info.value.errors) == 2
    assert info.value.last_response is not None


def test_streaming_text_and_tool_call(fake_server: fs.FakeServer) -> None:
    fake_server.reply_sse(
        fs.anthropic_sse(
            text_chunks=["Mom", "entum"],
            tool_use=("toolu_5", "fetch_prices", ['{"symb', 'ols": ["A', 'AA"]}']),
            stop_reason="tool_use",
            input_tokens=33,
            output_tokens=17,
        )
    )

    async def go(model: AnthropicModel) -> Any:
        return [event async for event in model.stream(_ask(tools=[TOOL]))]

    events = _run(_model(fake_server), go)
    assert [e.kind for e in events] == ["text", "text", "tool_call", "done"]
    assert events[2].tool_call is not None
    assert events[2].tool_call.arguments == {"symbols": ["AAA"]}
    done = events[-1].response
    assert done is not None
    assert done.text == "Momentum"
    assert done.stop_reason == "tool_use"
    assert done.usage == Usage(input_tokens=33, output_tokens=17)
    assert done.raw_id == "msg_02"
    assert fake_server.requests[0].body["stream"] is True


def test_streaming_opening_is_retried(fake_server: fs.FakeServer) -> None:
    fake_server.reply_json(fs.anthropic_error("overloaded_error", "busy"), status=529)
    fake_server.reply_sse(fs.anthropic_sse(text_chunks=["hi"]))

    async def go(model: AnthropicModel) -> Any:
        return [event async for event in model.stream(_ask())]

    events = _run(_model(fake_server), go)
    assert events[-1].response is not None
    assert events[-1].response.text == "hi"


def test_key_never_appears_in_outputs_or_logs(
    fake_server: fs.FakeServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_server.reply_json(
        fs.anthropic_error("authentication_error", "invalid x-api-key"), status=401
    )
    fake_server.reply_json(fs.anthropic_message(text="ok"))
    model = _model(fake_server)
    with pytest.raises(ProviderError) as info:
        _run(model, lambda m: m.request(_ask()))
    response = _run(_model(fake_server), lambda m: m.request(_ask()))
    captured = capsys.readouterr()
    texts = [
        str(info.value),
        repr(info.value),
        repr(model),
        response.model_dump_json(),
        caplog.text,
        captured.out,
        captured.err,
    ]
    assert all(KEY not in text for text in texts)
    assert "ANTHROPIC_API_KEY" in str(info.value)


def test_registry_builds_the_adapter_and_asks_for_a_missing_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("QUANTDESK_ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    model = get_model("anthropic:claude-sonnet-4-5")
    assert isinstance(model, AnthropicModel)
    assert model.model_id == "anthropic:claude-sonnet-4-5"
    assert model.base_url == "http://127.0.0.1:9"
    asyncio.run(model.aclose())

    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        get_model("anthropic:claude-sonnet-4-5")


def test_payload_merges_consecutive_turns_and_keeps_json_arguments() -> None:
    from quantdesk.agents.anthropic_model import build_payload

    req = ModelRequest(
        messages=[
            Message(role="user", content="a"),
            Message(role="user", content="b"),
        ],
        temperature=0.0,
        max_tokens=10,
    )
    payload = build_payload("claude-x", req)
    assert payload["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert payload["temperature"] == 0.0
    assert json.loads(json.dumps(payload)) == payload
