"""The research graph end to end on the demo market: scripted and offline models, real tools."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from quantdesk.agents.messages import Message, ModelRequest, ToolCall, ToolResult
from quantdesk.agents.offline_model import OfflineModel
from quantdesk.agents.research import build_research_graph, run_research
from quantdesk.agents.research.graph import DEFAULT_TOOLS
from quantdesk.agents.research.runtime import ToolThread
from quantdesk.agents.research.state import conversation, result_content
from quantdesk.agents.testing import FunctionModel
from quantdesk.quant_core.research_context import create_context
from quantdesk.tools import get_tool, run_tool

DEMO = {"kind": "demo", "seed": 7}
MOMENTUM = "Is there 12-1 momentum in the demo market as of 2019-12-31?"

LEAKY_CV = {
    "source": DEMO,
    "as_of": "2019-12-31",
    "features": {"names": ["mom_252_21"]},
    "label": {"kind": "forward_return", "horizon": 21},
    "model": {"kind": "linear"},
    "cv": {"splitter": "walk_forward", "n_splits": 5, "purge": False},
}
ZERO_COST_BACKTEST = {
    "source": DEMO,
    "as_of": "2019-12-31",
    "strategy": {"signal": "mom_252_21"},
    "costs": {"commission_bps": 0, "half_spread_bps": 0, "slippage_bps": 0, "borrow_bps_annual": 0},
}


def _scripted(tool: str, arguments: dict[str, Any]) -> FunctionModel:
    """Researcher: one tool call, then a hypothesis. Critic: flags the refused calls."""

    def reply(messages: list[Message], req: ModelRequest) -> Any:
        if req.output_schema is not None:  # the critic's structured request
            refused = re.findall(
                r"\[\w+ (\S+)\] by researcher: refused by guardrail (\w+)", messages[-1].content
            )
            concerns = [
                {"topic": "leakage", "severity": "blocking", "text": f"{g} refusal", "cites": [i]}
                for i, g in refused
            ]
            return json.dumps({"concerns": concerns, "summary": "scripted critic"})
        if any(m.role == "tool" for m in messages):  # also its answer to the critic's rebuttal
            return "Hypothesis: 21-day momentum is predictable (scripted)."
        return ToolCall(id="leak_1", name=tool, arguments=arguments)

    return FunctionModel(reply)


@pytest.mark.parametrize(
    ("tool", "arguments", "guardrail", "critic"),
    [
        ("walk_forward_cv", LEAKY_CV, "leakage", "rules"),
        ("walk_forward_cv", LEAKY_CV, "leakage", "model"),
        ("backtest", ZERO_COST_BACKTEST, "costs", "rules"),
    ],
)
def test_a_leaky_design_is_refused_flagged_and_not_accepted(
    tool: str, arguments: dict[str, Any], guardrail: str, critic: str
) -> None:
    outcome = run_research("21-day momentum", model=_scripted(tool, arguments), critic=critic)
    (entry,) = outcome.state["tool_log"]
    assert not entry["ok"]
    assert entry["envelope"]["error"]["guardrail"] == guardrail
    review = outcome.state["critiques"][-1]
    flagged = [
        c for c in review["concerns"] if c["severity"] == "blocking" and "leak_1" in c["cites"]
    ]
    assert flagged, review
    assert outcome.decision == "needs-more-evidence"
    assert f"guardrail {guardrail} refused [{tool} leak_1]" in outcome.report


def test_a_pure_noise_idea_is_rejected_by_the_dsr() -> None:
    outcome = run_research(
        "Is there 12-1 momentum in the noise market as of 2019-12-31?", model=OfflineModel()
    )
    assert outcome.decision == "reject"
    dsr = next(e for e in outcome.state["tool_log"] if e["name"] == "deflated_sharpe")
    assert dsr["envelope"]["result"]["deflated_sharpe"]["dsr"] < 0.95
    # the critic does not spend trials testing regimes of an idea that already failed
    assert [e["origin"] for e in outcome.state["tool_log"]].count("critic") == 0
    assert f"[deflated_sharpe {dsr['id']}]" in outcome.report


def test_the_planted_momentum_effect_is_accepted_after_the_critics_tests() -> None:
    outcome = run_research(MOMENTUM, model=OfflineModel(), rounds=1)
    assert outcome.decision == "accept", outcome.report
    log = {e["id"]: e for e in outcome.state["tool_log"]}
    backtest = log["offline_3_backtest"]["envelope"]["result"]
    assert backtest["performance"]["sharpe"] == pytest.approx(2.446, abs=0.01)
    # the DSR the decision uses counts the critic's two split-sample trials
    refreshed = log["critic_r1_dsr"]["envelope"]["result"]["deflated_sharpe"]
    assert refreshed["n_trials"] == 3
    assert refreshed["dsr"] >= 0.95
    for half in ("critic_r1_split_first", "critic_r1_split_second"):
        assert log[half]["envelope"]["result"]["performance"]["sharpe"] > 0
    assert outcome.state["risk_findings"]["veto"] is False
    for call_id, name in outcome.state["citations"].items():
        assert f"[{name} {call_id}]" in outcome.report
    # no filings are indexed in this home: the session says so and still decides
    search = log["offline_6_search_filings"]
    assert not search["ok"]
    assert "holds no filings" in search["envelope"]["error"]["message"]
    filing_concerns = [
        c for c in outcome.state["critiques"][-1]["concerns"] if c["topic"] == "filings"
    ]
    assert [c["severity"] for c in filing_concerns] == ["minor"]
    assert filing_concerns[0]["text"].startswith(
        "no filings were read [search_filings offline_6_search_filings]"
    )
    assert "- Filings [search_filings offline_6_search_filings]: none read" in outcome.report


class _CrashError(RuntimeError):
    pass


def test_a_crashed_session_resumes_without_repeating_a_tool_call() -> None:
    executed: list[str] = []
    crashed: list[str] = []

    def runner(name: str, payload: dict[str, Any]) -> Any:
        key = name + json.dumps(payload, sort_keys=True)
        if name == "backtest" and not crashed:
            crashed.append(key)
            raise _CrashError("killed mid-run")
        executed.append(key)
        return run_tool(name, payload)

    saver = InMemorySaver()
    with pytest.raises(_CrashError):
        run_research(
            MOMENTUM, model=OfflineModel(), thread_id="s1", checkpointer=saver, tool_runner=runner
        )
    assert len(executed) == 3  # fetch, validate, features completed before the crash
    outcome = run_research(
        MOMENTUM, model=OfflineModel(), thread_id="s1", checkpointer=saver, tool_runner=runner
    )
    assert outcome.decision == "accept"
    # every logged call ran exactly once, in log order (the DSR refresh is a new call: the
    # same arguments as the researcher's DSR, run after two more trials)
    log = outcome.state["tool_log"]
    assert executed == [e["name"] + json.dumps(e["arguments"], sort_keys=True) for e in log]
    # fetch, validate, features, backtest, DSR, risk, filings; the critic's 2 splits and DSR
    assert len({e["id"] for e in log}) == len(log) == 10
    # finished sessions are returned as they are, not run again
    again = run_research(MOMENTUM, model=OfflineModel(), thread_id="s1", checkpointer=saver)
    assert again.report == outcome.report


def test_holdout_evaluation_waits_for_approval_and_runs_once() -> None:
    ctx = create_context("mom", as_of="2020-06-30", holdout=("2019-07-01", None))
    saver = InMemorySaver()
    options: dict[str, Any] = {"checkpointer": saver, "holdout_mode": "ask", "context": ctx}
    first = run_research("12-1 momentum?", model=OfflineModel(), thread_id="h", **options)
    assert first.status == "awaiting_approval"
    assert first.interrupt is not None
    assert first.interrupt["tool"] == "evaluate_holdout"
    assert first.state["tool_log"][0]["arguments"]["as_of"] == "2019-06-30"
    done = run_research("", model=OfflineModel(), thread_id="h", approve_holdout=True, **options)
    assert done.status == "complete"
    assert [c["name"] for c in done.tool_calls].count("evaluate_holdout") == 1
    assert done.state["holdout"]["status"] == "evaluated"
    # the demo market's momentum switches off after 80% of its sessions: the holdout says so
    assert done.decision == "reject"
    assert "holdout failed" in done.state["decision"]["reasons"][-1]


def test_graph_options_are_checked() -> None:
    from quantdesk.quant_core.errors import InputError

    with pytest.raises(InputError, match="Unknown tool"):
        build_research_graph(OfflineModel(), tools=["no_such_tool"])


FETCH = {"source": DEMO, "as_of": "2019-12-31", "preview_rows": 2}


def test_checkpoints_hold_each_tool_result_once_and_the_model_reads_it_whole() -> None:
    model = _scripted("fetch_prices", FETCH)
    saver = InMemorySaver()
    outcome = run_research("prices", model=model, critic="rules", thread_id="t", checkpointer=saver)
    (entry,) = outcome.state["tool_log"]
    assert entry["ok"]
    text = json.dumps(entry["envelope"], sort_keys=True)
    # the model's second request answers its call with the whole envelope, as JSON text
    (answer,) = [r for m in model.requests[1].messages for r in m.tool_results]
    assert (answer.tool_call_id, answer.content, answer.is_error) == ("leak_1", text, False)
    # the checkpoint keeps the envelope in the tool log only; the outcome fills the text in
    stored = saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert stored is not None
    values = stored.checkpoint["channel_values"]
    (kept,) = [r for m in values["messages"] for r in m["tool_results"]]
    assert kept["content"] == ""
    assert values["tool_log"][0]["envelope"] == entry["envelope"]
    (filled,) = [r for m in outcome.state["messages"] for r in m["tool_results"]]
    assert filled == {**kept, "content": text}
    # a language model is shown each tool's JSON schema
    schemas = {t.name: t.input_schema for t in model.requests[0].tools}
    assert schemas["fetch_prices"] == get_tool("fetch_prices").input_schema()


class _RecordingOffline(OfflineModel):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[ModelRequest] = []

    async def request(self, req: ModelRequest) -> Any:
        self.requests.append(req)
        return await super().request(req)


def test_the_offline_policy_is_offered_names_without_schemas() -> None:
    model = _RecordingOffline()
    assert run_research(MOMENTUM, model=model).decision == "accept"
    offered = [t.name for t in model.requests[0].tools]
    assert offered == [t for t in DEFAULT_TOOLS if get_tool(t) is not None]
    assert all(t.input_schema == {"type": "object"} for t in model.requests[0].tools)
    assert all(t.description == get_tool(t.name).summary for t in model.requests[0].tools)


def test_conversation_fills_in_results_from_the_log_and_keeps_saved_text() -> None:
    def entry(call_id: str, envelope: dict[str, Any]) -> dict[str, Any]:
        return {"id": call_id, "name": "t", "arguments": {}, "origin": "researcher", "round": 0,
                "ok": True, "envelope": envelope}  # fmt: skip

    def tool_message(*results: tuple[str, str]) -> dict[str, Any]:
        return Message(
            role="tool",
            tool_results=[ToolResult(tool_call_id=i, name="t", content=c) for i, c in results],
        ).model_dump(mode="json")

    user = Message(role="user", content="q").model_dump(mode="json")
    saved = tool_message(("a", '{"saved": "text"}'))  # a session saved with the text in state
    state: dict[str, Any] = {
        "messages": [user, saved, tool_message(("b", ""))],
        "tool_log": [entry("a", {"ok": True, "x": 1}), entry("b", {"ok": True, "y": [2, 3]})],
    }
    texts: dict[str, Any] = {}
    filled = conversation(state, texts)  # type: ignore[arg-type]
    assert filled[:2] == [user, saved]
    assert filled[2]["tool_results"][0]["content"] == '{"ok": true, "y": [2, 3]}'
    assert state["messages"][2]["tool_results"][0]["content"] == ""  # the state is not changed
    # the cache answers for the very same envelope only: another session reusing the call id
    # (the offline policy's ids repeat across sessions) gets its own text
    other = {**state, "tool_log": [entry("b", {"ok": False})]}
    assert conversation(other, texts)[2]["tool_results"][0]["content"] == '{"ok": false}'
    big = {**state, "tool_log": [entry("b", {"blob": "x" * 70_000})]}
    content = conversation(big)[2]["tool_results"][0]["content"]
    assert content == result_content(big["tool_log"][0])
    assert len(content) == 60_000 + len(" ...(truncated)")
    assert content.endswith(" ...(truncated)")


def test_tool_calls_run_on_the_tool_thread_and_the_graph_keeps_its_edges() -> None:
    threads: list[str] = []

    def tool(name: str, payload: dict[str, Any]) -> Any:
        threads.append(threading.current_thread().name)
        return run_tool(name, payload)

    runner = ToolThread(tool)
    try:
        outcome = run_research(
            "prices", model=_scripted("fetch_prices", FETCH), critic="rules", tool_runner=runner
        )
    finally:
        runner.close()
    assert outcome.state["tool_log"][0]["ok"]
    assert len(threads) == 1
    assert threads[0].startswith("quantdesk-tools")
    # each node's possible next nodes come from its Command return type
    edges = {(e.source, e.target) for e in build_research_graph(OfflineModel()).get_graph().edges}
    assert edges == {
        ("__start__", "plan"),
        ("plan", "researcher"),
        ("researcher", "tools"),
        ("researcher", "critic"),
        *(("tools", n) for n in ("tools", "researcher", "critic", "risk", "holdout")),
        *(("critic", n) for n in ("tools", "researcher", "risk")),
        ("risk", "tools"),
        ("risk", "decide"),
        ("decide", "holdout"),
        ("decide", "report"),
        ("holdout", "tools"),
        ("holdout", "report"),
        ("report", "__end__"),
    }
