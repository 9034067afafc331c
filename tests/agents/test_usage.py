"""Usage accounting and the hard budget."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.agents.messages import Message, ModelRequest, ModelResponse, Usage
from quantdesk.agents.testing import FunctionModel
from quantdesk.agents.usage import (
    Budget,
    BudgetedModel,
    BudgetExceededError,
    Price,
    UsageLedger,
    estimate_input_tokens,
)
from quantdesk.quant_core.errors import ConfigError, QuantdeskRuntimeError

SONNET = "anthropic:claude-sonnet-4-5"


def _response(model: str, n_in: int, n_out: int) -> ModelResponse:
    return ModelResponse(
        model=model, text="ok", usage=Usage(input_tokens=n_in, output_tokens=n_out)
    )


def _request(text: str = "hello") -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=text)], max_tokens=100)


@pytest.mark.parametrize(
    ("model", "n_in", "n_out", "usd"),
    [
        (SONNET, 1_000_000, 1_000_000, 18.0),
        ("openai:gpt-4o-mini", 2_000_000, 1_000_000, 0.9),
        ("anthropic:claude-haiku-4-5-20251001", 1000, 500, 0.0035),
        ("offline", 123, 456, 0.0),
    ],
)
def test_cost_from_the_catalog(model: str, n_in: int, n_out: int, usd: float) -> None:
    ledger = UsageLedger()
    record = ledger.record(_response(model, n_in, n_out))
    assert record.cost_usd == pytest.approx(usd)
    assert ledger.cost_usd == pytest.approx(usd)


def test_unknown_price_gives_unknown_cost_and_refuses_a_dollar_budget() -> None:
    ledger = UsageLedger()
    ledger.record(_response("openai-compatible:private@http://127.0.0.1:1/v1", 10, 10))
    assert ledger.cost_usd is None
    assert ledger.usage.total_tokens == 20
    strict = UsageLedger(Budget(max_usd=1.0))
    with pytest.raises(ConfigError, match="max_tokens"):
        strict.check_before(_request(), "openai-compatible:private")
    priced = UsageLedger(
        Budget(max_usd=1.0),
        prices={"x:private": Price(input_usd_per_mtok=1, output_usd_per_mtok=2)},
    )
    priced.check_before(_request(), "x:private")


def test_budget_stops_before_a_call_that_would_exceed_it_and_records_nothing() -> None:
    ledger = UsageLedger(Budget(max_tokens=1000))
    ledger.record(_response(SONNET, 900, 50))
    request = _request("x" * 400)  # ~100+ estimated input tokens
    assert estimate_input_tokens(request) > 50
    with pytest.raises(BudgetExceededError) as info:
        ledger.check_before(request, SONNET)
    assert info.value.when == "before"
    assert info.value.response is None
    assert not info.value.retryable
    assert isinstance(info.value, QuantdeskRuntimeError)
    assert len(ledger.calls) == 1
    assert ledger.usage.total_tokens == 950


def test_budget_stops_right_after_a_call_that_exceeded_it_keeping_the_call() -> None:
    ledger = UsageLedger(Budget(max_usd=0.01))
    response = _response(SONNET, 1000, 1000)  # $0.018
    with pytest.raises(BudgetExceededError) as info:
        ledger.record(response)
    assert info.value.when == "after"
    assert info.value.response == response
    assert len(ledger.calls) == 1
    assert info.value.spent_usd == pytest.approx(0.018)


def test_budgeted_model_stops_a_session_cleanly() -> None:
    model = FunctionModel(lambda messages, req: "y" * 400, model_id=SONNET)
    ledger = UsageLedger(Budget(max_tokens=200))
    budgeted = BudgetedModel(model, ledger)
    first = asyncio.run(budgeted.request(_request()))
    assert ledger.calls[0].usage == first.usage
    with pytest.raises(BudgetExceededError):
        asyncio.run(budgeted.request(_request()))
    assert len(model.requests) == 1, "the refused call never reached the model"
    assert ledger.summary()["calls"] == 1


def test_streaming_is_accounted_once() -> None:
    ledger = UsageLedger()
    budgeted = BudgetedModel(FunctionModel(lambda m, r: "one\ntwo"), ledger)

    async def collect() -> list[str]:
        return [event.kind async for event in budgeted.stream(_request())]

    kinds = asyncio.run(collect())
    assert kinds == ["text", "text", "done"]
    assert len(ledger.calls) == 1


def test_ledger_round_trips_through_json_data() -> None:
    ledger = UsageLedger(
        Budget(max_tokens=10_000),
        prices={"x:y": Price(input_usd_per_mtok=1, output_usd_per_mtok=1)},
    )
    ledger.record(_response(SONNET, 10, 20))
    ledger.record(_response("x:y", 1, 2))
    again = UsageLedger.from_dict(ledger.to_dict())
    assert again.calls == ledger.calls
    assert again.budget == ledger.budget
    with pytest.raises(ConfigError):
        UsageLedger.from_dict({**ledger.to_dict(), "version": 99})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=20))
def test_session_totals_are_the_sum_of_the_calls(calls: list[tuple[int, int]]) -> None:
    ledger = UsageLedger()
    for n_in, n_out in calls:
        ledger.record(_response(SONNET, n_in, n_out))
    assert ledger.usage.input_tokens == sum(c[0] for c in calls)
    assert ledger.usage.output_tokens == sum(c[1] for c in calls)
    assert ledger.cost_usd == pytest.approx(sum(3 * a + 15 * b for a, b in calls) / 1e6)
