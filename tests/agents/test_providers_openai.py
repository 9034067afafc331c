"""The OpenAI adapter against a local server speaking Chat Completions (JSON and SSE)."""

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

from quantdesk.agents.messages import Message, ModelRequest, ToolDefinition, ToolResult, Usage
from quantdesk.agents.model import ProviderError, get_model, request_structured
from quantdesk.agents.openai_model import OpenAIModel
from quantdesk.agents.retry import RetryAttempt, RetryPolicy
from quantdesk.quant_core.errors import ConfigError

T = TypeVar("T")
KEY = "sk-openai-test-SECRET-9876543210"
FAST = RetryPolicy(max_attempts=3, base_delay_s=0.0, jitter=0.0)
TOOL = ToolDefinition(
    name="backtest",
    description="Run a backtest.",
    input_schema={"type": "object", "properties": {"signal": {"type": "string"}}},
)


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: str
    horizon: int


def _model(server: fs.FakeServer, **kwargs: Any) -> OpenAIModel:
    options: dict[str, Any] = {"retry": FAST, "rng": random.Random(5)}
    options.update(kwargs)
    return OpenAIModel("gpt-test", api_key=KEY, base_url=server.base_url, **options)


def _ask(**kwargs: Any) -> ModelRequest:
    messages = [
        Message(role="system", content="You are a researcher."),
        Message(role="user", content="Backtest 20-day momentum."),
    ]
    return ModelRequest(messages=messages, **kwargs)


def _run(model: OpenAIModel, coro_fn: Callable[[OpenAIModel], Awaitable[T]]) -> T:
    async def main() -> T:
        async with model:
            return await coro_fn(model)

    return asyncio.run(main())


def test_tool_call_round_trip(fake_server: fs.FakeServer) -> None:
    fake_server.reply_json(
        fs.openai_completion(
            tool_calls=[("call_1", "backtest", '{"signal": "mom20"}')],
            finish_reason="tool_calls",
            prompt_tokens=50,
            completion_tokens=8,
        )
    )
    fake_server.reply_json(
        fs.openai_completion(text="Sharpe 0.4.", prompt_tokens=70, completion_tokens=6)
    )

    async def go(model: OpenAIModel) -> Any:
        req = _ask(tools=[TOOL], temperature=0.2)
        first = await model.request(req)
        results = [
            ToolResult(tool_call_id="call_1", name="backtest", content='{"sharpe": 0.4}'),
        ]
        follow = req.model_copy(
            update={
                "messages": [
                    *req.messages,
                    first.to_message(),
                    Message(role="tool", tool_results=results),
                ]
            }
        )
        return first, await model.request(follow)

    first, second = _run(_model(fake_server), go)
    assert first.model == "openai:gpt-test"
    assert first.stop_reason == "tool_use"
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [
        ("call_1", "backtest", {"signal": "mom20"})
    ]
    assert second.text == "Sharpe 0.4."
    assert second.stop_reason == "end_turn"
    assert first.usage + second.usage == Usage(input_tokens=120, output_tokens=14)

    sent_first, sent_second = fake_server.requests
    assert sent_first.path == "/chat/completions"
    assert sent_first.headers["authorization"] == f"Bearer {KEY}"
    assert sent_first.body["max_completion_tokens"] == 2048
    assert sent_first.body["temperature"] == 0.2
    assert sent_first.body["tools"][0] == {
        "type": "function",
        "function": {
            "name": "backtest",
            "description": "Run a backtest.",
            "parameters": TOOL.input_schema,
        },
    }
    assert sent_second.body["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "backtest", "arguments": '{"signal": "mom20"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sharpe": 0.4}'},
    ]


def test_429_with_retry_after_ms_then_success(fake_server: fs.FakeServer) -> None:
    fake_server.reply_json(
        fs.openai_error("Rate limit reached", "requests"),
        status=429,
        headers={"retry-after-ms": "30", "retry-after": "1"},
    )
    fake_server.reply_json(fs.openai_completion(text="ok"))
    retries: list[RetryAttempt] = []
    response = _run(_model(fake_server, on_retry=retries.append), lambda m: m.request(_ask()))
    assert response.text == "ok"
    assert [(r.delay_s, r.error.kind) for r in retries] == [(0.03, "rate_limit")]
    assert "Rate limit reached" in str(retries[0].error)


def test_too_long_retry_after_is_not_waited_for(fake_server: fs.FakeServer) -> None:
    fake_server.reply_json(fs.openai_error("quota"), status=429, headers={"retry-after": "3600"})
    with pytest.raises(ProviderError) as info:
        _run(_model(fake_server), lambda m: m.request(_ask()))
    assert info.value.retry_after_s == 3600.0
    assert len(fake_server.requests) == 1


def test_500_then_success_and_exhausted(fake_server: fs.FakeServer) -> None:
    fake_server.reply_json(fs.openai_error("server error", "server_error"), status=502)
    fake_server.reply_json(fs.openai_completion(text="ok"))
    assert _run(_model(fake_server), lambda m: m.request(_ask())).text == "ok"

    for _ in range(2):
        fake_server.reply_json(fs.openai_error("server error", "server_error"), status=500)
    with pytest.raises(ProviderError) as info:
        _run(
            _model(fake_server, retry=FAST.model_copy(update={"max_attempts": 2})),
            lambda m: m.request(_ask()),
        )
    assert (info.value.kind, info.value.status_code, info.value.retryable) == ("server", 500, True)
    assert len(fake_server.requests) == 4


def test_422_is_not_retried(fake_server: fs.FakeServer) -> None:
    fake_server.reply_json(fs.openai_error("bad schema"), status=422)
    with pytest.raises(ProviderError) as info:
        _run(_model(fake_server), lambda m: m.request(_ask()))
    assert (info.value.kind, info.value.retryable) == ("client", False)
    assert len(fake_server.requests) == 1


def test_timeout(fake_server: fs.FakeServer) -> None:
    fake_server.reply_hang(10.0)
    with pytest.raises(ProviderError) as info:
        _run(
            _model(fake_server, retry=RetryPolicy(max_attempts=1)),
            lambda m: m.request(_ask(timeout_s=0.3)),
        )
    assert (info.value.kind, info.value.retryable) == ("timeout", True)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 bad gateway</html>{",
        json.dumps(
            fs.openai_completion(
                tool_calls=[("call_1", "backtest", '{"signal": ')], finish_reason="tool_calls"
            )
        ).encode(),
        json.dumps({"id": "x", "object": "chat.completion", "choices": []}).encode(),
    ],
    ids=["body", "tool-arguments", "no-choices"],
)
def test_malformed_json(fake_server: fs.FakeServer, body: bytes) -> None:
    fake_server.reply_raw(body)
    with pytest.raises(ProviderError) as info:
        _run(_model(fake_server), lambda m: m.request(_ask()))
    assert info.value.kind == "malformed"
    assert len(fake_server.requests) == 1


@pytest.mark.parametrize(
    ("completion", "text"),
    [
        (fs.openai_completion(text="", finish_reason="content_filter"), ""),
        (fs.openai_completion(refusal="I can't assist with that."), "I can't assist with that."),
    ],
)
def test_refusal(fake_server: fs.FakeServer, completion: dict[str, Any], text: str) -> None:
    fake_server.reply_json(completion)
    response = _run(_model(fake_server), lambda m: m.request(_ask()))
    assert (response.stop_reason, response.text) == ("refusal", text)


def test_structured_output_uses_response_format(fake_server: fs.FakeServer) -> None:
    fake_server.reply_json(fs.openai_completion(text='{"family": "momentum", "horizon": 20}'))
    output, response = _run(_model(fake_server), lambda m: request_structured(m, _ask(), Plan))
    assert output == Plan(family="momentum", horizon=20)
    assert response.usage == Usage(input_tokens=12, output_tokens=7)
    assert fake_server.requests[0].body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Plan", "schema": Plan.model_json_schema(), "strict": False},
    }


def test_streaming_text_tool_call_and_usage(fake_server: fs.FakeServer) -> None:
    fake_server.reply_sse(
        fs.openai_sse(
            text_chunks=["Run", "ning"],
            tool_call=("call_7", "backtest", ['{"sig', 'nal": "mom20"}']),
            finish_reason="tool_calls",
            prompt_tokens=21,
            completion_tokens=9,
        )
    )

    async def go(model: OpenAIModel) -> Any:
        return [event async for event in model.stream(_ask(tools=[TOOL]))]

    events = _run(_model(fake_server), go)
    assert [e.kind for e in events] == ["text", "text", "tool_call", "done"]
    done = events[-1].response
    assert done is not None
    assert (done.text, done.stop_reason, done.raw_id) == ("Running", "tool_use", "chatcmpl-02")
    assert done.tool_calls[0].arguments == {"signal": "mom20"}
    assert done.usage == Usage(input_tokens=21, output_tokens=9)
    body = fake_server.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_compatible_server_gets_no_openai_key(
    fake_server: fs.FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("QUANTDESK_OPENAI_API_KEY", raising=False)
    model = get_model(f"openai-compatible:llama3.1:8b@{fake_server.base_url}/v1")
    assert isinstance(model, OpenAIModel)
    assert model.model_id == f"openai-compatible:llama3.1:8b@{fake_server.base_url}/v1"
    fake_server.reply_json(fs.openai_completion(text="hello"))
    response = _run(model, lambda m: m.request(_ask()))
    assert response.model == model.model_id
    sent = fake_server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert KEY not in sent.headers["authorization"]
    assert sent.body["model"] == "llama3.1:8b"
    assert sent.body["max_tokens"] == 2048


def test_compatible_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUANTDESK_OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="QUANTDESK_OPENAI_BASE_URL"):
        get_model("openai-compatible:qwen2.5")
    monkeypatch.setenv("QUANTDESK_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    model = get_model("openai-compatible:qwen2.5")
    assert (model.model_id, model.base_url) == (
        "openai-compatible:qwen2.5",
        "http://127.0.0.1:9/v1",
    )
    asyncio.run(model.aclose())


def test_openai_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        get_model("openai:gpt-4.1")


def test_key_never_appears_in_outputs_or_logs(
    fake_server: fs.FakeServer, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_server.reply_json(fs.openai_error("Incorrect API key provided"), status=401)
    fake_server.reply_json(fs.openai_completion(text="ok"))
    model = _model(fake_server)
    with pytest.raises(ProviderError) as info:
        _run(model, lambda m: m.request(_ask()))
    response = _run(_model(fake_server), lambda m: m.request(_ask()))
    captured = capsys.readouterr()
    texts = [
        str(info.value),
        repr(model),
        response.model_dump_json(),
        caplog.text,
        captured.out,
        captured.err,
    ]
    assert all(KEY not in text for text in texts)
    assert "OPENAI_API_KEY" in str(info.value)
