"""A session budget stops provider calls cleanly (fake Messages and Chat Completions servers)."""

from __future__ import annotations

import asyncio
import random

import fake_servers as fs
import pytest

from quantdesk.agents.anthropic_model import AnthropicModel
from quantdesk.agents.messages import Message, ModelRequest, Usage
from quantdesk.agents.openai_model import OpenAIModel
from quantdesk.agents.retry import RetryPolicy
from quantdesk.agents.usage import Budget, BudgetedModel, BudgetExceededError, Price, UsageLedger

KEY = "sk-budget-test-key"
ASK = ModelRequest(messages=[Message(role="user", content="Is momentum real?")], max_tokens=64)


def test_token_budget_stops_after_the_call_that_crossed_it_then_before_the_next(
    fake_server: fs.FakeServer,
) -> None:
    fake_server.reply_json(fs.anthropic_message(text="one", input_tokens=40, output_tokens=12))
    fake_server.reply_json(fs.anthropic_message(text="two", input_tokens=80, output_tokens=9))
    ledger = UsageLedger(Budget(max_tokens=100))

    async def session() -> BudgetExceededError:
        inner = AnthropicModel(
            "claude-test",
            api_key=KEY,
            base_url=fake_server.base_url,
            retry=RetryPolicy(max_attempts=1),
        )
        async with inner:
            model = BudgetedModel(inner, ledger)
            assert (await model.request(ASK)).text == "one"
            with pytest.raises(BudgetExceededError) as after:
                await model.request(ASK)
            assert after.value.when == "after"
            assert after.value.response is not None
            assert after.value.response.text == "two"
            with pytest.raises(BudgetExceededError) as before:
                await model.request(ASK)
            return before.value

    before = asyncio.run(session())
    assert before.when == "before"
    assert not before.retryable
    assert len(fake_server.requests) == 2  # the third call never reached the provider
    assert ledger.usage == Usage(input_tokens=120, output_tokens=21)
    assert len(ledger.calls) == 2


def test_dollar_budget_with_streaming_chat_completions(fake_server: fs.FakeServer) -> None:
    fake_server.reply_sse(
        fs.openai_sse(text_chunks=["a"], prompt_tokens=600_000, completion_tokens=100_000)
    )
    price = Price(input_usd_per_mtok=1.0, output_usd_per_mtok=4.0)
    ledger = UsageLedger(Budget(max_usd=0.5), prices={"openai:gpt-test": price})

    async def session() -> list[str]:
        inner = OpenAIModel(
            "gpt-test", api_key=KEY, base_url=fake_server.base_url, rng=random.Random(1)
        )
        kinds: list[str] = []

        async def drain(model: BudgetedModel) -> None:
            async for event in model.stream(ASK):
                kinds.append(event.kind)

        async with inner:
            with pytest.raises(BudgetExceededError, match="Dollar budget"):
                await drain(BudgetedModel(inner, ledger))
        return kinds

    assert asyncio.run(session()) == ["text"]
    assert ledger.cost_usd == pytest.approx(1.0)
    assert len(fake_server.requests) == 1
