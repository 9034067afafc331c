"""The research graph: researcher, critic and risk around the guard-railed tools.

::

    plan -> researcher <-> tools -> critic -> (tools -> critic)* -> risk (-> tools -> risk)
         -> decide -> holdout (-> interrupt / tools -> holdout) -> report

:func:`build_research_graph` compiles the graph with an injected model; :func:`run_research`
runs one session and returns a :class:`ResearchOutcome` (decision, markdown report, tool call
log). A session is identified by its ``thread_id``: with a checkpointer, running again with the
same id resumes where it stopped (after a crash, or at the holdout approval interrupt) without
repeating a completed tool call. Invoking the graph on a finished thread with a new
``{"question": ...}`` asks a follow-up: a new turn of the same session (see
:mod:`quantdesk.agents.research.turns`; :class:`~quantdesk.agents.research.chat.ChatSession`
drives it, streaming the progress events the nodes write).

Checkpointers: the graph's nodes are async, so use an async-capable saver. The in-memory
``InMemorySaver`` is the default (a session survives a crash inside the process); the SQLite
saver (``langgraph-checkpoint-sqlite``'s ``AsyncSqliteSaver``) makes sessions survive a restart.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_type_hints

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, Durability

from quantdesk.agents.model import Model, get_model
from quantdesk.agents.research.nodes import HoldoutMode, ResearchNodes, ToolRunner
from quantdesk.agents.research.state import DecisionKind, RiskLimits, conversation
from quantdesk.agents.research.turns import SessionState
from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.research_context import ResearchContext, resolve_context
from quantdesk.tools import run_tool, tool_names

__all__ = [
    "DEFAULT_TOOLS",
    "ResearchOutcome",
    "arun_research",
    "build_research_graph",
    "context_state",
    "run_research",
]

DEFAULT_TOOLS: tuple[str, ...] = (
    "fetch_prices",
    "validate_data",
    "compute_features",
    "make_labels",
    "walk_forward_cv",
    "backtest",
    "deflated_sharpe",
    "pbo",
    "risk_report",
    "list_trials",
    "evaluate_holdout",
    "search_filings",
    "get_filing_section",
)
"""Tools offered by default (those registered; filing tools when present)."""


DURABILITY: Durability = "sync"
"""LangGraph durability of a session run: each step's checkpoint is written before the next
step starts. The default (``"async"``) writes it while the next step runs, so a process killed
during a tool call loses the calls before it (they would run again on resume) and may leave a
checkpoint that looks finished."""


@dataclass(frozen=True)
class ResearchOutcome:
    """The result of a research session.

    Attributes:
        thread_id: Session id (pass it again to resume).
        status: ``complete``, or ``awaiting_approval`` when stopped at the holdout interrupt.
        decision: ``accept``, ``reject`` or ``needs-more-evidence`` (``None`` until decided).
        report: The markdown report (empty until complete).
        tool_calls: The tool call log: ``id``, ``name``, ``origin``, ``ok``, ``trial_id``.
        interrupt: The approval request when ``status == "awaiting_approval"``.
        state: The final graph state (JSON data).
    """

    thread_id: str
    status: Literal["complete", "awaiting_approval"]
    decision: DecisionKind | None
    report: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    interrupt: dict[str, Any] | None = None
    state: dict[str, Any] = field(default_factory=dict, repr=False)


def build_research_graph(
    model: Model,
    *,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    rounds: int = 1,
    tools: list[str] | None = None,
    critic_model: Model | None = None,
    critic: Literal["auto", "rules", "model"] = "auto",
    tool_runner: ToolRunner | None = None,
    max_steps: int = 12,
    risk_limits: RiskLimits | None = None,
    holdout_mode: HoldoutMode = "skip",
    stream: bool = False,
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Compile the research graph around an injected model.

    Args:
        model: The researcher's model (the offline policy, a provider model, a test double).
        checkpointer: Saver for the session state (needed to resume and for ``holdout_mode=
            "ask"``); ``None`` compiles without one.
        rounds: Critic reviews that may ask for extra tests or a rebuttal (0: one review,
            no extra tests).
        tools: Names of the tools offered; default :data:`DEFAULT_TOOLS` that are registered.
        critic_model: The critic's model (default ``model``).
        critic: ``auto`` (rules for the offline model, else structured critique), ``rules``
            or ``model``.
        tool_runner: ``runner(name, payload) -> Envelope``; default ``quantdesk.tools.run_tool``.
        max_steps: Researcher model calls allowed per round.
        risk_limits: Veto thresholds of the risk node.
        holdout_mode: ``skip`` (batch), ``ask`` (interrupt for approval) or ``run``.
        stream: The researcher streams its model's text to the custom stream (chat); batch
            runs leave it off so that provider retries cover each whole call.

    Raises:
        InputError: negative ``rounds``, ``max_steps`` below 1, unknown tool names.
    """
    if rounds < 0 or max_steps < 1:
        raise InputError(
            f"rounds={rounds} and max_steps={max_steps} are invalid.",
            fix="pass rounds >= 0 and max_steps >= 1.",
        )
    registered = tool_names()
    offered = [t for t in DEFAULT_TOOLS if t in registered] if tools is None else list(tools)
    unknown = sorted(set(offered) - set(registered))
    if unknown:
        raise InputError(
            f"Unknown tool(s) {unknown}.", fix=f"choose from {', '.join(sorted(registered))}."
        )
    nodes = ResearchNodes(
        model,
        critic_model=critic_model,
        critic=critic,
        tools=offered,
        tool_runner=tool_runner or run_tool,
        rounds=rounds,
        max_steps=max_steps,
        risk_limits=risk_limits or RiskLimits(),
        holdout_mode=holdout_mode,
        stream=stream,
    )
    builder = StateGraph(SessionState)
    for name, method in _NODE_METHODS.items():
        # input_schema given: inferred from the hint, it cost one evaluation of the schema's
        # string annotations per node
        builder.add_node(name, _node(nodes, method), input_schema=SessionState)
    builder.add_edge(START, "plan")
    return builder.compile(checkpointer=checkpointer)


# Graph node -> ResearchNodes method, and the Command type each returns (where it may go).
_NODE_METHODS = {
    "plan": "plan",
    "researcher": "researcher",
    "tools": "tools_node",
    "critic": "critic",
    "risk": "risk",
    "decide": "decide",
    "holdout": "holdout",
    "report": "report",
}
_RETURNS = {m: get_type_hints(getattr(ResearchNodes, m))["return"] for m in _NODE_METHODS.values()}


def _node(nodes: ResearchNodes, method: str) -> Callable[[SessionState], Awaitable[Any]]:
    """``nodes.<method>`` as a graph node.

    LangGraph reads a node's state schema and its possible next nodes from the function's
    type hints, and scans the function's bytecode for subgraphs at every compile. Given the
    methods themselves, that scanned their whole bodies and evaluated their string hints,
    ~3 ms per session; this wrapper has a few instructions and hints resolved at import.
    """
    bound = getattr(nodes, method)

    async def node(state: SessionState) -> Any:
        return await bound(state)

    node.__annotations__ = {"state": SessionState, "return": _RETURNS[method]}
    return node


def context_state(context: ResearchContext | str | None) -> dict[str, Any]:
    """The research context as state data (``None``: the active one, else ``default``)."""
    if context is None:
        from quantdesk.quant_core.trial_recording import run_context

        ctx = run_context()
    else:
        ctx = resolve_context(context)
    data = ctx.to_dict()
    return {
        k: data[k] for k in ("id", "name", "as_of", "holdout_start", "holdout_end", "trial_budget")
    }


def _outcome(thread_id: str, result: dict[str, Any]) -> ResearchOutcome:
    interrupts = result.get("__interrupt__") or ()
    state = {k: v for k, v in result.items() if k != "__interrupt__"}
    if "messages" in state:  # the tool results' text, as the model read it
        state["messages"] = conversation(state)  # type: ignore[arg-type]
    decision = (state.get("decision") or {}).get("kind")
    log = [
        {
            "id": e["id"],
            "name": e["name"],
            "origin": e["origin"],
            "ok": e["ok"],
            "trial_id": (e["envelope"].get("provenance") or {}).get("trial_id"),
        }
        for e in state.get("tool_log", [])
    ]
    if interrupts:
        return ResearchOutcome(
            thread_id, "awaiting_approval", decision, "", log, dict(interrupts[0].value), state
        )
    return ResearchOutcome(
        thread_id, "complete", decision, state.get("report", ""), log, None, state
    )


async def arun_research(
    question: str,
    *,
    model: Model | None = None,
    context: ResearchContext | str | None = None,
    thread_id: str | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    approve_holdout: bool | None = None,
    **graph_options: Any,
) -> ResearchOutcome:
    """Async :func:`run_research`."""
    model = model or get_model()
    thread_id = thread_id or uuid.uuid4().hex[:12]
    saver = checkpointer if checkpointer is not None else InMemorySaver()
    graph = build_research_graph(model, checkpointer=saver, **graph_options)
    config = {"configurable": {"thread_id": thread_id}}
    snapshot = await graph.aget_state(config)
    if snapshot.values and snapshot.next:  # stopped mid-run (crash) or at the interrupt
        payload: Any = None if approve_holdout is None else Command(resume=approve_holdout)
        result = await graph.ainvoke(payload, config, durability=DURABILITY)
    elif snapshot.values:  # already complete
        result = dict(snapshot.values)
    else:
        start = {"question": question, "context": context_state(context)}
        result = await graph.ainvoke(start, config, durability=DURABILITY)
    return _outcome(thread_id, result)


def run_research(
    question: str,
    *,
    model: Model | None = None,
    context: ResearchContext | str | None = None,
    thread_id: str | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    approve_holdout: bool | None = None,
    **graph_options: Any,
) -> ResearchOutcome:
    """Run (or resume) one research session.

    Args:
        question: The research question.
        model: The researcher's model; default :func:`get_model` (``QUANTDESK_MODEL`` or
            the offline policy).
        context: Research context (object, id or name); default the active one, else
            ``default``.
        thread_id: Session id; a checkpointed session with this id is resumed, not restarted.
        checkpointer: Session store (default: a fresh in-memory saver).
        approve_holdout: Answer to a pending holdout approval interrupt when resuming.
        **graph_options: Passed to :func:`build_research_graph` (``rounds``, ``tools``,
            ``critic_model``, ``critic``, ``tool_runner``, ``max_steps``, ``risk_limits``,
            ``holdout_mode``, ``stream``).

    Returns:
        The :class:`ResearchOutcome`.
    """
    return asyncio.run(
        arun_research(
            question,
            model=model,
            context=context,
            thread_id=thread_id,
            checkpointer=checkpointer,
            approve_holdout=approve_holdout,
            **graph_options,
        )
    )
