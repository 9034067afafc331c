"""Nodes of the research graph: plan, researcher, tools, critic, risk, decide, holdout, report.

Each node is a method of :class:`ResearchNodes`, which holds what the graph was built with (the
injected models, the tool runner, the offered tools, the limits): nothing lives in a module
global. Every node returns a :class:`~langgraph.types.Command` whose ``Literal`` return type
declares where it may go.

Tool calls never run inside the researcher, critic or risk nodes: those nodes queue them in
``pending_calls`` and the ``tools`` node runs one per step, so every completed call is in a
checkpoint before the next starts. A call whose id is already in ``done_call_ids`` is skipped,
which is what keeps a session resumed after a crash from repeating a call.

Every node is a coroutine: LangGraph runs a plain function on a worker thread, a hand-off
each way per step, and no node blocks (the tools node awaits the tool runner's thread).

Follow-up questions (chat) open a new turn in ``plan``; nodes write progress events to
LangGraph's custom stream. Both are described in :mod:`quantdesk.agents.research.turns`.
Nodes annotate their state as :class:`~quantdesk.agents.research.turns.SessionState`: LangGraph
hands a node only the keys of the schema its ``state`` parameter names, and the nodes need
``turns``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Literal

from langgraph.graph import END
from langgraph.types import Command, interrupt

from quantdesk.agents.messages import Message, ModelRequest, ToolCall, ToolDefinition, ToolResult
from quantdesk.agents.model import Model, request_structured
from quantdesk.agents.research import prompts, rules
from quantdesk.agents.research.state import (
    Critique,
    ResearchState,
    RiskLimits,
    ToolLogEntry,
    conversation,
    not_offered,
    primary_trial,
)
from quantdesk.agents.research.turns import (
    SessionState,
    current_turn,
    emit,
    first_turn,
    follow_up,
    stream_response,
    turn_view,
)
from quantdesk.tools import Envelope, get_tool

__all__ = ["HoldoutMode", "ResearchNodes", "ToolRunner", "is_offline"]

ToolRunner = Callable[[str, dict[str, Any]], Envelope[Any]]
HoldoutMode = Literal["skip", "ask", "run"]


def is_offline(model: Model) -> bool:
    """Whether ``model`` is the rule-driven offline policy."""
    return model.model_id.split(":", 1)[0] == "offline"


class ResearchNodes:
    """The nodes, bound to what the graph was built with.

    Args:
        model: The researcher's model.
        critic_model: The critic's model (default: ``model``).
        critic: ``rules`` (the offline critic), ``model`` (structured critique from
            ``critic_model``) or ``auto`` (rules when the critic model is the offline one).
        tools: Names of the tools offered to the researcher and the critic.
        tool_runner: ``runner(name, payload) -> Envelope`` (``quantdesk.tools.run_tool``).
        rounds: Critic reviews that may ask for extra tests or a rebuttal.
        max_steps: Researcher model calls allowed per round.
        risk_limits: Veto thresholds of the risk node.
        holdout_mode: ``skip`` (batch default), ``ask`` (interrupt for approval) or ``run``.
        stream: The researcher calls ``model.stream`` and writes its text to the custom
            stream as it arrives (chat). Off, it calls ``model.request``, whose provider
            retries cover the whole call (a failed stream is only retried before it starts).
    """

    def __init__(
        self,
        model: Model,
        *,
        critic_model: Model | None,
        critic: Literal["auto", "rules", "model"],
        tools: list[str],
        tool_runner: ToolRunner,
        rounds: int,
        max_steps: int,
        risk_limits: RiskLimits,
        holdout_mode: HoldoutMode,
        stream: bool = False,
    ) -> None:
        self.model = model
        self.critic_model = critic_model or model
        self.use_rules = critic == "rules" or (critic == "auto" and is_offline(self.critic_model))
        self.tools = tools
        self._tool_defs: list[ToolDefinition] | None = None
        self._texts: dict[str, tuple[dict[str, Any], str]] = {}  # tool results as JSON text
        self.tool_runner = tool_runner
        self.rounds = rounds
        self.max_steps = max_steps
        self.risk_limits = risk_limits
        self.holdout_mode = holdout_mode
        self.stream = stream

    @property
    def tool_defs(self) -> list[ToolDefinition]:
        """The offered tools as the researcher's model is shown them (built on first use).

        The offline policy reads only the names (``OfflineModel.decide``): its requests
        carry no JSON schemas, which cost a few milliseconds per tool in a new process.
        """
        if self._tool_defs is None:
            schemas = not is_offline(self.model)
            self._tool_defs = [
                ToolDefinition(
                    name=name,
                    description=get_tool(name).summary,
                    **({"input_schema": get_tool(name).input_schema()} if schemas else {}),
                )
                for name in self.tools
            ]
        return self._tool_defs

    # ------------------------------------------------------------------ plan and researcher

    async def plan(self, state: SessionState) -> Command[Literal["researcher"]]:
        """Seed the conversation (system prompt with the context, the question).

        On a thread that already has a conversation, the question is a follow-up: it is
        appended and a new turn starts (see :mod:`quantdesk.agents.research.turns`).
        """
        if state.get("messages"):
            return Command(goto="researcher", update=follow_up(state))
        messages = [
            Message(role="system", content=prompts.researcher_system_prompt(state["context"])),
            Message(role="user", content=state["question"]),
        ]
        return Command(
            goto="researcher",
            update={
                "messages": [m.model_dump(mode="json") for m in messages],
                "pending_calls": [],
                "tool_log": [],
                "done_call_ids": [],
                "researcher_steps": 0,
                "hypotheses": [],
                "critiques": [],
                "risk_findings": {},
                "citations": {},
                "round": 0,
                "holdout": {},
                "turns": [first_turn(state["question"])],
            },
        )

    def _used_ids(self, state: ResearchState) -> set[str]:
        used = set(state.get("done_call_ids", []))
        for message in state.get("messages", []):
            used.update(call["id"] for call in message.get("tool_calls", []))
        return used

    async def researcher(self, state: SessionState) -> Command[Literal["tools", "critic"]]:
        """One model call: queue its tool calls, or record its final answer as the hypothesis."""
        emit("node", node="researcher", round=state.get("round", 0))
        steps = state.get("researcher_steps", 0)
        messages = list(state["messages"])
        turn = current_turn(state)
        rounds_done = state.get("round", 0) - turn["round"]
        if steps - turn["steps"] >= self.max_steps * (1 + rounds_done):
            return Command(
                goto="critic",
                update=self._hypothesis(
                    state,
                    f"(step limit reached after {steps} model calls: no hypothesis stated)",
                    "graph",
                ),
            )
        request = ModelRequest(
            messages=[Message.model_validate(m) for m in conversation(state, self._texts)],
            tools=self.tool_defs,
        )
        if self.stream:
            response = await stream_response(self.model, request, node="researcher")
        else:
            response = await self.model.request(request)
        if not response.tool_calls:
            messages.append(response.to_message().model_dump(mode="json"))
            update = self._hypothesis(state, response.text, response.model)
            return Command(
                goto="critic",
                update={**update, "messages": messages, "researcher_steps": steps + 1},
            )
        used = self._used_ids(state)
        calls = []
        for call in response.tool_calls:
            call_id, n = call.id, 1
            while call_id in used:  # providers may reuse ids across turns; ids must be unique
                call_id, n = f"{call.id}~{n}", n + 1
            used.add(call_id)
            calls.append(ToolCall(id=call_id, name=call.name, arguments=call.arguments))
        assistant = Message(role="assistant", content=response.text, tool_calls=calls)
        pending = [
            {"id": c.id, "name": c.name, "arguments": c.arguments, "origin": "researcher"}
            for c in calls
        ]
        return Command(
            goto="tools",
            update={
                "messages": [*messages, assistant.model_dump(mode="json")],
                "pending_calls": pending,
                "researcher_steps": steps + 1,
            },
        )

    @staticmethod
    def _hypothesis(state: ResearchState, text: str, by: str) -> dict[str, Any]:
        primary = primary_trial(turn_view(state))
        hypotheses = list(state.get("hypotheses", []))
        hypotheses.append(
            {
                "id": f"H{len(hypotheses) + 1}",
                "round": state.get("round", 0),
                "text": text,
                "model": by,
                "trial_call_id": primary["id"] if primary else None,
                "trial_id": rules.result_of(primary)["trial"]["trial_id"] if primary else None,
            }
        )
        return {"hypotheses": hypotheses}

    # ------------------------------------------------------------------ tools

    async def _call(self, name: str, arguments: dict[str, Any]) -> Envelope[Any]:
        # A runner with a thread of its own (ToolThread.acall) is awaited directly; any other
        # runs on a worker thread, as LangGraph would run a blocking node.
        acall = getattr(self.tool_runner, "acall", None)
        if acall is not None:
            return await acall(name, arguments)  # type: ignore[no-any-return]
        return await asyncio.to_thread(self.tool_runner, name, arguments)

    async def _run(self, call: dict[str, Any], state: ResearchState) -> ToolLogEntry:
        name, arguments = call["name"], dict(call["arguments"])
        context_id = state["context"].get("id")
        if name not in self.tools:
            envelope = not_offered(name, self.tools)
        else:
            # Pin every call to the session's context, so its trials count where they belong.
            if context_id and "context" not in arguments:
                arguments["context"] = context_id
            envelope = (await self._call(name, arguments)).to_json_dict()
        return ToolLogEntry(
            id=call["id"],
            name=name,
            arguments=arguments,
            origin=call["origin"],
            round=state.get("round", 0),
            ok=bool(envelope.get("ok")),
            envelope=envelope,
        )

    async def tools_node(
        self, state: SessionState
    ) -> Command[Literal["tools", "researcher", "critic", "risk", "holdout"]]:
        """Run the next pending call (unless it already ran), then continue or hand back."""
        pending = list(state.get("pending_calls", []))
        if not pending:
            return Command(goto="researcher")
        call, rest = pending[0], pending[1:]
        log = list(state.get("tool_log", []))
        done = list(state.get("done_call_ids", []))
        if call["id"] not in done:
            emit(
                "tool_started",
                id=call["id"],
                name=call["name"],
                origin=call["origin"],
                arguments=call["arguments"],
            )
            tick = time.perf_counter()
            entry = await self._run(call, state)
            emit(
                "tool_finished",
                id=entry["id"],
                name=entry["name"],
                origin=entry["origin"],
                ok=entry["ok"],
                duration_s=time.perf_counter() - tick,
                entry=entry,
            )
            log.append(entry)
            done.append(call["id"])
        update: dict[str, Any] = {"pending_calls": rest, "tool_log": log, "done_call_ids": done}
        if rest:
            return Command(goto="tools", update=update)
        origin = call["origin"]
        if origin == "researcher":
            update["messages"] = self._with_results(state["messages"], log)
        return Command(goto=origin, update=update)

    @staticmethod
    def _with_results(
        messages: list[dict[str, Any]], log: list[ToolLogEntry]
    ) -> list[dict[str, Any]]:
        """Answer the last assistant turn's tool calls with one tool message.

        The results' text stays empty: it is each call's envelope, already in ``tool_log``
        (see :func:`~quantdesk.agents.research.state.conversation`).
        """
        by_id = {entry["id"]: entry for entry in log}
        results = [
            ToolResult(
                tool_call_id=by_id[call["id"]]["id"],
                name=by_id[call["id"]]["name"],
                content="",
                is_error=not by_id[call["id"]]["ok"],
            )
            for call in messages[-1].get("tool_calls", [])
        ]
        tool_message = Message(role="tool", tool_results=results)
        return [*messages, tool_message.model_dump(mode="json")]

    # ------------------------------------------------------------------ critic

    async def critic(self, state: SessionState) -> Command[Literal["tools", "researcher", "risk"]]:
        """Review the hypothesis; ask for extra tests or a rebuttal while rounds remain."""
        emit("node", node="critic", round=state.get("round", 0))
        review = state.get("round", 0) + 1
        may_request = review - current_turn(state)["round"] <= self.rounds
        judged = turn_view(state)
        if self.use_rules:
            critique = rules.rule_critique(
                judged, review=review, may_request=may_request, tools=set(self.tools)
            )
            by = "rules"
        else:
            request = ModelRequest(
                messages=[
                    Message(role="system", content=prompts.CRITIC_SYSTEM),
                    Message(role="user", content=prompts.critic_user_prompt(judged, self.tools)),
                ]
            )
            structured = await request_structured(self.critic_model, request, Critique)
            critique = structured[0]  # type: ignore[assignment]
            by = structured[1].model
        tests = [t for t in critique.requested_tests if may_request]
        pending = [
            {
                "id": self._critic_call_id(review, i, t.tool),
                "name": t.tool,
                "arguments": t.arguments,
                "origin": "critic",
            }
            for i, t in enumerate(tests)
        ]
        record = {"round": review, "by": by, **critique.model_dump(mode="json")}
        update: dict[str, Any] = {
            "critiques": [*state.get("critiques", []), record],
            "round": review,
        }
        if pending:
            return Command(goto="tools", update={**update, "pending_calls": pending})
        blocking = [c for c in critique.concerns if c.severity == "blocking"]
        if blocking and may_request and not is_offline(self.model):
            rebuttal = Message(role="user", content=prompts.rebuttal_prompt(record))
            messages = [*state["messages"], rebuttal.model_dump(mode="json")]
            return Command(goto="researcher", update={**update, "messages": messages})
        return Command(goto="risk", update=update)

    def _critic_call_id(self, review: int, index: int, tool: str) -> str:
        if self.use_rules:
            # rules.split_sample_tests asks for: first half, second half, DSR refresh.
            return f"critic_r{review}_" + ("split_first", "split_second", "dsr")[index]
        return f"critic_r{review}_{index}_{tool}"

    # ------------------------------------------------------------------ risk, decision, holdout

    async def risk(self, state: SessionState) -> Command[Literal["tools", "decide"]]:
        """Assess the primary trial's risk report (asking for one if needed); may veto."""
        emit("node", node="risk", round=state.get("round", 0))
        primary = primary_trial(turn_view(state))
        if primary is None:
            finding = {"severity": "info", "text": "no trial to assess"}
            return Command(
                goto="decide", update={"risk_findings": {"veto": False, "findings": [finding]}}
            )
        trial_id = rules.result_of(primary)["trial"]["trial_id"]
        reports = [
            e
            for e in state.get("tool_log", [])
            if e["name"] == "risk_report" and (e["arguments"].get("trial_id") == trial_id)
        ]
        if not reports:
            call_id = f"risk_{trial_id}"
            if "risk_report" in self.tools and call_id not in state.get("done_call_ids", []):
                call = {
                    "id": call_id,
                    "name": "risk_report",
                    "arguments": {"trial_id": trial_id},
                    "origin": "risk",
                }
                return Command(goto="tools", update={"pending_calls": [call]})
            finding = {"severity": "veto", "text": "risk_report is not available: risk unassessed"}
            return Command(
                goto="decide", update={"risk_findings": {"veto": True, "findings": [finding]}}
            )
        return Command(
            goto="decide",
            update={"risk_findings": rules.risk_assessment(reports[-1], self.risk_limits)},
        )

    async def decide(self, state: SessionState) -> Command[Literal["holdout", "report"]]:
        """Apply the decision rule (see :func:`rules.decide`) to this turn's evidence."""
        emit("node", node="decide", round=state.get("round", 0))
        decision = rules.decide(turn_view(state))
        return Command(goto="holdout", update={"decision": decision})

    async def holdout(self, state: SessionState) -> Command[Literal["tools", "report"]]:
        """Evaluate the accepted hypothesis on the holdout: once, and with approval if asked."""
        emit("node", node="holdout", round=state.get("round", 0))
        status = dict(state.get("holdout") or {})
        turn = current_turn(state)["n"]
        # One evaluation per turn's hypothesis; turn 1 keeps the id sessions were saved with.
        call_id = "holdout_evaluate" if turn == 1 else f"holdout_evaluate_t{turn}"
        if call_id in state.get("done_call_ids", []):
            entry = next(e for e in state["tool_log"] if e["id"] == call_id)
            perf = rules.result_of(entry).get("performance") or {}
            note = f"holdout Sharpe {prompts.fmt(perf.get('sharpe'), '.2f')} {prompts.cite(entry)}"
            update: dict[str, Any] = {
                "holdout": {"status": "evaluated", "call_id": call_id, "note": note}
            }
            if not entry["ok"] or (perf.get("sharpe") or 0.0) <= 0:
                decision = dict(state["decision"])
                decision["kind"] = "reject"
                decision["reasons"] = [*decision["reasons"], f"holdout failed: {note}"]
                update["decision"] = decision
            return Command(goto="report", update=update)
        primary = primary_trial(turn_view(state))
        reason = None
        if state["decision"]["kind"] != "accept":
            reason = "not evaluated: the hypothesis was not accepted"
        elif not state["context"].get("holdout_start"):
            reason = "not evaluated: the research context has no holdout window"
        elif (
            "evaluate_holdout" not in self.tools or primary is None or primary["name"] != "backtest"
        ):
            reason = "not evaluated: needs a backtest hypothesis and the evaluate_holdout tool"
        elif self.holdout_mode == "skip":
            reason = "not evaluated: batch mode (holdout_mode='skip')"
        if reason:
            return Command(
                goto="report", update={"holdout": {**status, "status": "skipped", "note": reason}}
            )
        hypothesis = state["hypotheses"][-1]
        arguments = {k: v for k, v in primary["arguments"].items() if k != "as_of"}
        arguments.update(
            hypothesis=f"{hypothesis['id']}-{primary['id']}"[:200],
            description=hypothesis["text"][:2000],
        )
        if self.holdout_mode == "ask":
            answer = interrupt(
                {
                    "question": "Evaluate the accepted hypothesis on the holdout? It can be "
                    "evaluated once; answer True to approve.",
                    "hypothesis": hypothesis["text"],
                    "tool": "evaluate_holdout",
                    "arguments": arguments,
                }
            )
            if answer is not True:
                note = "declined by the person: not evaluated"
                return Command(
                    goto="report", update={"holdout": {"status": "declined", "note": note}}
                )
        call = {
            "id": call_id,
            "name": "evaluate_holdout",
            "arguments": arguments,
            "origin": "holdout",
        }
        return Command(
            goto="tools",
            update={"pending_calls": [call], "holdout": {"status": "approved", "call_id": call_id}},
        )

    async def report(self, state: SessionState) -> Command[Literal["__end__"]]:
        """Write the markdown report and the citation index."""
        emit("node", node="report", round=state.get("round", 0))
        citations = {e["id"]: e["name"] for e in state.get("tool_log", [])}
        text = prompts.render_report(state, model_id=self.model.model_id)
        return Command(goto=END, update={"report": text, "citations": citations})
