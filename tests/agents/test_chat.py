"""Chat sessions: streamed events in order, follow-up turns, budget stops, holdout approval."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from quantdesk.agents.messages import Message, ModelRequest, ModelResponse, ToolCall
from quantdesk.agents.offline_model import OfflineModel
from quantdesk.agents.research.chat import ChatSession
from quantdesk.agents.research.chat_events import (
    ApprovalRequested,
    ChatEvent,
    Decided,
    HoldoutUpdate,
    NodeStarted,
    TextDelta,
    ToolFinished,
    ToolStarted,
    TurnEnded,
    summarize_arguments,
)
from quantdesk.agents.research.sessions import SessionStore
from quantdesk.agents.testing import FunctionModel
from quantdesk.agents.usage import Budget, BudgetExceededError
from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.research_context import create_context

T = TypeVar("T")
DEMO = {"kind": "demo", "seed": 7}
MOMENTUM = "Is there 12-1 momentum in the demo market as of 2019-12-31?"
# The offline policy and the rule critic; the researcher tools that a short test needs.
TOOLS = ["fetch_prices", "validate_data", "compute_features", "backtest", "deflated_sharpe"]
TOOLS += ["risk_report", "evaluate_holdout"]


def run(fn: Callable[[SessionStore], Awaitable[T]]) -> T:
    async def main() -> T:
        async with SessionStore.open() as store:
            return await fn(store)

    return asyncio.run(main())


async def collect(events: Any) -> list[ChatEvent]:
    return [event async for event in events]


def test_scripted_stream_deltas_arrive_in_order_around_the_tool_calls() -> None:
    def reply(messages: list[Message], req: ModelRequest) -> Any:
        if messages[-1].role == "tool":
            return "Line A\nLine B\nLine C"
        if messages[-1].content.startswith("The critic reviewed"):  # its rebuttal request
            return "I stand by it."
        return ModelResponse(
            model="test:function",
            text="Plan:\nfetch the data\n",
            tool_calls=[ToolCall(id="c1", name="fetch_prices", arguments={"source": DEMO})],
            stop_reason="tool_use",
        )

    async def go(store: SessionStore) -> list[ChatEvent]:
        chat = await ChatSession.new(store, model=FunctionModel(reply), critic="rules")
        return await collect(chat.ask("What does the demo market hold?"))

    events = run(go)
    stream = [
        e.text if isinstance(e, TextDelta) else f"{type(e).__name__}:{getattr(e, 'name', '')}"
        for e in events
        if isinstance(e, (TextDelta, ToolStarted, ToolFinished))
    ]
    assert stream == [
        "Plan:\n",
        "fetch the data\n",
        "ToolStarted:fetch_prices",
        "ToolFinished:fetch_prices",
        "Line A\n",
        "Line B\n",
        "Line C",
        "I stand by it.",
    ]
    started = next(e for e in events if isinstance(e, ToolStarted))
    assert started.summary == "source.kind=demo, source.seed=7"
    finished = next(e for e in events if isinstance(e, ToolFinished))
    assert finished.ok
    assert "50 symbols" in finished.summary
    # the tool loop is one researcher phase; the critic's blocking concern asks for a rebuttal
    nodes = [e.node for e in events if isinstance(e, NodeStarted)]
    assert nodes[:4] == ["researcher", "critic", "researcher", "critic"]
    assert "risk" in nodes
    assert isinstance(events[-1], TurnEnded)
    assert events[-1].status == "complete"
    assert events[-1].answer == "I stand by it."
    # no trial measured the idea: the rule decision cannot accept it
    assert events[-1].decision == "needs-more-evidence"


class _Spy:
    """The offline policy, keeping every request it answered."""

    model_id = "offline"

    def __init__(self) -> None:
        self.inner = OfflineModel()
        self.requests: list[ModelRequest] = []

    async def request(self, req: ModelRequest) -> ModelResponse:
        self.requests.append(req)
        return await self.inner.request(req)

    async def stream(self, req: ModelRequest) -> Any:
        self.requests.append(req)
        async for event in self.inner.stream(req):
            yield event


def test_a_follow_up_sees_the_conversation_and_keeps_counting_trials() -> None:
    spy = _Spy()

    async def go(store: SessionStore) -> tuple[list[ChatEvent], list[ChatEvent], dict[str, Any]]:
        chat = await ChatSession.new(store, model=spy, tools=TOOLS)
        first = await collect(chat.ask(MOMENTUM))
        second = await collect(chat.ask("And short-term reversal as of 2019-12-31?"))
        return first, second, dict((await chat.snapshot()).values)

    first, second, state = run(go)
    assert first[-1].decision == "accept"  # type: ignore[union-attr]
    assert second[-1].decision == "reject"  # type: ignore[union-attr]
    # the researcher's first call of turn 2 carried turn 1's answer and tool results
    turn2 = next(r for r in spy.requests if "reversal" in r.messages[-1].content)
    roles = [m.role for m in turn2.messages]
    assert roles.count("user") == 2
    assert roles.count("tool") >= 6
    assert any("SUPPORTED in-sample" in m.content for m in turn2.messages)
    assert [t["n"] for t in state["turns"]] == [1, 2]
    assert state["turns"][1]["log_start"] == 9  # 6 researcher calls + 3 critic tests
    # trials keep counting in the same research context: the reversal test is trial #4
    backtest = next(e for e in state["tool_log"][9:] if e["name"] == "backtest")
    assert backtest["envelope"]["result"]["trial"]["number"] == 4
    # turn 2 is judged on its own evidence: nothing from turn 1's split tests or DSR
    decided = next(e for e in second if isinstance(e, Decided))
    assert not any("critic_r1" in reason for reason in decided.reasons)
    turn2_ids = {e["id"] for e in state["tool_log"][9:]}
    cited = {i for c in state["critiques"][-1]["concerns"] for i in c["cites"]}
    assert cited
    assert cited <= turn2_ids
    dsr = next(e for e in state["tool_log"][9:] if e["name"] == "deflated_sharpe")
    assert any(f"[deflated_sharpe {dsr['id']}]" in reason for reason in decided.reasons)


def test_each_turn_gets_its_own_critic_round_and_holdout_approval() -> None:
    ctx = create_context("mom", as_of="2020-06-30", holdout=("2019-07-01", None))

    async def go(store: SessionStore) -> dict[str, Any]:
        chat = await ChatSession.new(store, model=OfflineModel(), context=ctx.id, tools=TOOLS)
        await collect(chat.ask("12-1 momentum?"))
        await collect(chat.answer_holdout(False))  # declined: the holdout stays unread
        events = await collect(chat.ask("12-1 momentum from 2016-01-04?"))
        request = next(e for e in events if isinstance(e, ApprovalRequested))
        assert request.arguments["hypothesis"].startswith("H2-")
        await collect(chat.answer_holdout(True))
        return dict((await chat.snapshot()).values)

    state = run(go)
    ids = [e["id"] for e in state["tool_log"]]
    # the critic of turn 2 had review rounds of its own: it asked for split tests again
    assert {"critic_r1_split_first", "critic_r3_split_first"} <= set(ids)
    assert ids[-1] == "holdout_evaluate_t2"  # evaluated for turn 2's hypothesis, once
    assert ids.count("holdout_evaluate_t2") == 1
    assert "holdout_evaluate" not in ids
    assert state["holdout"]["status"] == "evaluated"


def test_a_follow_up_without_a_new_trial_is_judged_on_the_earlier_evidence() -> None:
    offline = OfflineModel()

    def reply(messages: list[Message], req: ModelRequest) -> Any:
        if messages[-1].role == "user" and messages[-1].content.startswith("Summarise"):
            return "The 12-1 momentum evidence above stands; no new test was needed."
        return offline.decide(req)

    async def go(store: SessionStore) -> dict[str, Any]:
        chat = await ChatSession.new(store, model=FunctionModel(reply), critic="rules", tools=TOOLS)
        await collect(chat.ask(MOMENTUM))
        events = await collect(chat.ask("Summarise the evidence in one line."))
        assert not [e for e in events if isinstance(e, ToolStarted)]
        return dict((await chat.snapshot()).values)

    state = run(go)
    first, second = state["hypotheses"][0], state["hypotheses"][-1]
    assert second["trial_id"] == first["trial_id"] is not None
    assert state["decision"]["kind"] == "accept"


def test_a_budget_stops_the_turn_and_continue_finishes_it() -> None:
    offline = OfflineModel()
    model = FunctionModel(lambda messages, req: offline.decide(req))

    async def first(store: SessionStore) -> tuple[str, dict[str, Any]]:
        chat = await ChatSession.new(store, model=model, critic="rules", tools=TOOLS)
        await collect(chat.ask(MOMENTUM))
        used = chat.usage()
        chat.set_budget(Budget(max_tokens=used["total_tokens"] + 1))
        with pytest.raises(BudgetExceededError, match="would be exceeded"):
            await collect(chat.ask("And short-term reversal as of 2019-12-31?"))
        assert await chat.status() == "unfinished"
        return chat.thread_id, used

    thread_id, used = run(first)

    async def later(store: SessionStore) -> list[ChatEvent]:
        # another process: the ledger and its budget come back with the session
        chat = await ChatSession.resume(store, thread_id, model=model, critic="rules", tools=TOOLS)
        assert chat.usage()["total_tokens"] == used["total_tokens"]
        assert chat.usage()["budget"]["max_tokens"] == used["total_tokens"] + 1
        with pytest.raises(InputError, match="stopped before it finished"):
            await collect(chat.ask("another question"))
        chat.set_budget(Budget())
        events = await collect(chat.resume_turn())
        assert chat.usage()["calls"] > used["calls"]
        return events

    events = run(later)
    assert isinstance(events[-1], TurnEnded)
    assert events[-1].status == "complete"
    assert events[-1].decision == "reject"


def test_the_holdout_waits_for_approval_and_runs_once() -> None:
    ctx = create_context("mom", as_of="2020-06-30", holdout=("2019-07-01", None))

    async def go(store: SessionStore) -> None:
        chat = await ChatSession.new(store, model=OfflineModel(), context=ctx.id, tools=TOOLS)
        assert "ask a question first" in await chat.holdout_explanation()
        events = await collect(chat.ask("12-1 momentum?"))
        request = next(e for e in events if isinstance(e, ApprovalRequested))
        assert request.arguments["hypothesis"].startswith("H1-")
        end = events[-1]
        assert isinstance(end, TurnEnded)
        assert (end.status, end.decision, end.report) == ("awaiting_approval", "accept", "")
        with pytest.raises(InputError, match="holdout"):
            await collect(chat.ask("and reversal?"))
        assert "## Holdout: awaiting approval" in await chat.report()
        events = await collect(chat.answer_holdout(True))
        ran = [e.name for e in events if isinstance(e, ToolFinished)]
        assert ran == ["evaluate_holdout"]
        steps = [e.status for e in events if isinstance(e, HoldoutUpdate)]
        assert steps == ["approved", "evaluated"]
        # the demo market's momentum switches off late in its sample: the holdout says so
        assert [e.kind for e in events if isinstance(e, Decided)] == ["reject"]
        assert events[-1].status == "complete"  # type: ignore[union-attr]
        assert "holdout failed" in (await chat.report())
        with pytest.raises(InputError, match="Holdout evaluated"):
            await collect(chat.answer_holdout(True))

    run(go)


def test_sessions_are_listed_with_research_sessions_and_unknown_ids_refused() -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from quantdesk.agents.research import arun_research, build_research_graph
    from quantdesk.agents.research.sessions import sessions_path

    async def research() -> None:
        # what `quantdesk research` does: the plain checkpointer on the same file
        path = sessions_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            await arun_research(
                MOMENTUM, model=OfflineModel(), thread_id="research1", checkpointer=saver
            )
            # as saved before sessions had turns: the first follow-up must rebuild turn 1
            graph = build_research_graph(OfflineModel(), checkpointer=saver)
            config: Any = {"configurable": {"thread_id": "research1"}}
            await graph.aupdate_state(config, {"turns": []}, as_node="report")

    asyncio.run(research())

    async def go(store: SessionStore) -> None:
        (info,) = await store.list_sessions()
        assert (info.thread_id, info.question, info.turns) == ("research1", MOMENTUM, 1)
        assert (info.decision, info.status, info.model) == ("accept", "complete", "offline")
        assert info.created_at is not None
        assert info.updated_at is not None
        assert info.created_at <= info.updated_at
        with pytest.raises(InputError, match="research1"):
            await ChatSession.resume(store, "nope", model=OfflineModel())
        chat = await ChatSession.resume(store, "research1", model=OfflineModel())
        assert (await chat.report()).startswith("# Research report")
        await collect(chat.ask("And short-term reversal as of 2019-12-31?"))
        (info,) = await store.list_sessions()
        assert (info.turns, info.decision, info.question) == (2, "reject", MOMENTUM)
        state = (await chat.snapshot()).values
        first, second = state["turns"]
        assert (first["question"], first["log_start"], second["n"]) == (MOMENTUM, 0, 2)
        ids = [e["id"] for e in state["tool_log"]]
        assert ids.index("critic_r1_dsr") == second["log_start"] - 1

    run(go)

    async def reopened(store: SessionStore) -> int:
        rows = await store._execute("SELECT COUNT(*) FROM quantdesk_migrations")
        return int(rows[0][0])

    assert run(reopened) == 1  # migrations are applied once


def test_summarize_arguments_is_one_short_line() -> None:
    line = summarize_arguments(
        {"source": DEMO, "context": "abc", "features": {"names": ["a", "b"]}, "as_of": None}
    )
    assert line == 'source.kind=demo, source.seed=7, features.names=["a", "b"], as_of=None'
    long = summarize_arguments({"query": "x" * 500}, width=40)
    assert len(long) == 40
    assert long.endswith("...")
