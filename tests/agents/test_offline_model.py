"""The offline research policy: plans, valid tool calls, templated answers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantdesk.agents.messages import Message, ModelRequest, ToolDefinition, ToolResult
from quantdesk.agents.offline_model import OfflineModel, make_plan
from quantdesk.tools import get_tool, list_tools, run_tool


def _tools() -> list[ToolDefinition]:
    return [
        ToolDefinition(name=t.name, description=t.summary, input_schema=t.input_schema())
        for t in list_tools()
    ]


def _converse(question: str, model: OfflineModel | None = None) -> tuple[list[Message], str]:
    """Run one offline research conversation against the real tools."""
    model = model or OfflineModel()
    messages = [Message(role="user", content=question)]
    tools = _tools()
    for _ in range(12):
        response = asyncio.run(model.request(ModelRequest(messages=messages, tools=tools)))
        assert response.model == "offline"
        messages.append(response.to_message())
        if not response.tool_calls:
            return messages, response.text
        results = []
        for call in response.tool_calls:
            get_tool(call.name).input_model.model_validate(call.arguments)
            envelope = run_tool(call.name, call.arguments)
            assert envelope.ok, envelope.to_json_dict()
            content = json.dumps(envelope.to_json_dict())
            results.append(ToolResult(tool_call_id=call.id, name=call.name, content=content))
        messages.append(Message(role="tool", tool_results=results))
    raise AssertionError("the offline policy did not finish")


@pytest.mark.parametrize(
    ("question", "family", "horizon", "as_of", "source"),
    [
        (
            "Is there momentum as of 2019-12-31?",
            "momentum",
            5,
            "2019-12-31",
            {"kind": "demo", "seed": 7},
        ),
        (
            "Test short-term reversal, 1-day horizon",
            "reversal",
            1,
            None,
            {"kind": "demo", "seed": 7},
        ),
        (
            "Does low volatility beat? 21 sessions",
            "volatility",
            21,
            None,
            {"kind": "demo", "seed": 7},
        ),
        (
            "Can an ML model predict returns on noise?",
            "ml",
            5,
            None,
            {"kind": "demo", "preset": "noise", "seed": 7},
        ),
        ("hello", "momentum", 5, None, {"kind": "demo", "seed": 7}),
        (
            "momentum in prices/us.parquet from 2012-01-03 as of 2018-06-29",
            "momentum",
            5,
            "2018-06-29",
            {"kind": "file", "path": "prices/us.parquet", "start": "2012-01-03"},
        ),
    ],
)
def test_plan_from_the_question(
    question: str, family: str, horizon: int, as_of: str | None, source: dict[str, object]
) -> None:
    plan = make_plan([Message(role="user", content=question)])
    assert (plan.family, plan.horizon, plan.as_of, plan.source) == (family, horizon, as_of, source)


def test_json_hints_override_keywords() -> None:
    hint = {"context": "mom-study", "as_of": "2018-12-31", "family": "ml", "horizon": 10}
    messages = [
        Message(role="system", content="Research plan: " + json.dumps(hint)),
        Message(role="user", content="look at momentum"),
    ]
    plan = make_plan(messages)
    assert (plan.family, plan.horizon, plan.as_of, plan.context) == (
        "ml",
        10,
        "2018-12-31",
        "mom-study",
    )


@pytest.fixture
def sample_filing_index(tmp_path: Path) -> Iterator[None]:
    """The fictional sample filings, indexed with the hashing test embedder, for the tools."""
    from quantdesk.rag.embeddings import HashingEmbedder
    from quantdesk.rag.index import FilingIndex
    from quantdesk.rag.sample_filings import ingest_sample_filings
    from quantdesk.tools.filing_tools import forget_filing_indexes, register_filing_index

    index = FilingIndex(tmp_path / "filings", embedder=HashingEmbedder(256), embedding_cache=False)
    ingest_sample_filings(index)
    register_filing_index(index)
    yield
    forget_filing_indexes()


@pytest.mark.usefixtures("sample_filing_index")
def test_full_momentum_conversation_on_the_demo_source() -> None:
    messages, text = _converse("Is there 12-1 momentum in the demo market as of 2019-12-31?")
    names = [c.name for m in messages for c in m.tool_calls]
    assert names == [
        "fetch_prices",
        "validate_data",
        "compute_features",
        "backtest",
        "deflated_sharpe",
        "risk_report",
        "search_filings",
    ]
    search = next(c for m in messages for c in m.tool_calls if c.name == "search_filings")
    assert search.arguments["as_of"] == "2019-12-31"
    assert len(search.arguments["ticker"]) == 20  # the held names: 10 long, 10 short of 50
    assert text.startswith("Model: offline")
    assert "Verdict: SUPPORTED" in text  # the demo market has a planted momentum effect
    for call in (c for m in messages for c in m.tool_calls):
        assert call.id in text  # every step is cited


@pytest.mark.slow
@pytest.mark.usefixtures("sample_filing_index")
def test_ml_on_noise_is_not_supported() -> None:
    messages, text = _converse("Can a machine learning model predict 5-day returns on noise?")
    assert "walk_forward_cv" in [c.name for m in messages for c in m.tool_calls]
    assert "Verdict: NOT SUPPORTED" in text


def test_a_refusal_stops_the_study_and_is_reported() -> None:
    model = OfflineModel()
    messages = [Message(role="user", content="momentum as of 2019-12-31")]
    first = asyncio.run(model.request(ModelRequest(messages=messages, tools=_tools())))
    call = first.tool_calls[0]
    error = {"ok": False, "error": {"kind": "refused", "message": "Nope.", "fix": "Do X."}}
    result = ToolResult(
        tool_call_id=call.id, name=call.name, content=json.dumps(error), is_error=True
    )
    messages += [first.to_message(), Message(role="tool", tool_results=[result])]
    final = asyncio.run(model.request(ModelRequest(messages=messages, tools=_tools())))
    assert final.tool_calls == []
    assert "stopped the study (refused): Nope. Fix: Do X." in final.text
    assert "INCONCLUSIVE" in final.text


def test_without_tools_it_says_nothing_was_tested_and_streams_the_same() -> None:
    request = ModelRequest(messages=[Message(role="user", content="momentum?")])
    response = asyncio.run(OfflineModel().request(request))
    assert "nothing was tested" in response.text
    assert response.usage.total_tokens == 0

    async def collect() -> list[object]:
        return [event async for event in OfflineModel().stream(request)]

    events = asyncio.run(collect())
    assert events[-1].response == response  # type: ignore[attr-defined]
    assert "".join(e.text for e in events) == response.text  # type: ignore[attr-defined]
