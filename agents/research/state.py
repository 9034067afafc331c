"""State of the research graph: plain JSON data, so any checkpointer can store it.

Every value in :class:`ResearchState` is a ``str``, ``int``, ``dict`` or ``list`` of those, so
the SQLite checkpointer (and the in-memory one in tests) serialise it without custom types.
Nodes replace whole keys (no reducers): the graph has no parallel branches, and a node that
returns the full new list keeps each update easy to audit.

The tool call log is the spine of the state. Every tool call (by the researcher, the critic,
the risk node or the holdout step) is one :class:`ToolLogEntry` under the call's id; reports
cite those ids, and ``done_call_ids`` is what makes a resumed session skip calls that already
ran before a crash. The conversation refers to it rather than copying it: a tool result in
``messages`` has an empty ``content``, and :func:`conversation` fills in the call's envelope
when the conversation goes to a model or leaves the graph. Every checkpoint serialises the
whole state, so a second copy of each envelope (as JSON text) made every write larger.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CallOrigin",
    "Concern",
    "Critique",
    "DecisionKind",
    "RequestedTest",
    "ResearchState",
    "RiskLimits",
    "ToolLogEntry",
    "conversation",
    "not_offered",
    "primary_trial",
    "result_content",
]

DecisionKind = Literal["accept", "reject", "needs-more-evidence"]
CallOrigin = Literal["researcher", "critic", "risk", "holdout"]

_FORBID = ConfigDict(extra="forbid")
_MAX_RESULT_CHARS = 60_000


class ToolLogEntry(TypedDict):
    """One executed tool call.

    Keys:
        id: The tool call id (unique within the session); reports cite it.
        name: Tool name.
        arguments: The arguments sent (after the session's context was filled in).
        origin: Which node asked for it.
        round: Critic round in which it ran (0: the researcher's first pass).
        ok: Whether the tool succeeded.
        envelope: The tool's full JSON envelope (result, guardrails, provenance, error).
    """

    id: str
    name: str
    arguments: dict[str, Any]
    origin: str
    round: int
    ok: bool
    envelope: dict[str, Any]


class ResearchState(TypedDict, total=False):
    """Everything a research session knows; checkpointed after every node.

    Keys:
        question: The person's question, verbatim.
        context: The research context: ``id``, ``name``, ``as_of``, ``holdout_start``,
            ``holdout_end``, ``trial_budget`` (ISO dates or ``None``).
        messages: The researcher's conversation (``Message.model_dump(mode="json")``); tool
            results with an empty ``content`` stand for their call's envelope in ``tool_log``
            (:func:`conversation`; sessions saved before that carry the text).
        pending_calls: Tool calls waiting to run, in order: ``{"id", "name", "arguments",
            "origin"}``; the tools node runs one per step so each is checkpointed.
        tool_log: Every executed call (:class:`ToolLogEntry`), in order.
        done_call_ids: Ids of completed calls; a call whose id is here is never run again.
        researcher_steps: Model calls the researcher has made.
        hypotheses: Hypotheses stated by the researcher (``id``, ``round``, ``text``,
            ``model``, ``trial_id``, ``trial_call_id``).
        critiques: One per critic review (``round``, ``by``, ``concerns``,
            ``requested_tests``, ``summary``).
        risk_findings: Findings of the risk node (``text``, ``severity``, ``cites``) and its
            ``veto`` flag.
        decision: ``{"kind", "reasons", "cites"}`` once decided.
        citations: ``{call_id: "tool_name"}`` of every call the report cites.
        round: Critic reviews done so far.
        holdout: Holdout step status (``status``: skipped / awaiting / approved / declined /
            evaluated, ``call_id``).
        report: The final markdown report.
    """

    question: str
    context: dict[str, Any]
    messages: list[dict[str, Any]]
    pending_calls: list[dict[str, Any]]
    tool_log: list[ToolLogEntry]
    done_call_ids: list[str]
    researcher_steps: int
    hypotheses: list[dict[str, Any]]
    critiques: list[dict[str, Any]]
    risk_findings: dict[str, Any]
    decision: dict[str, Any]
    citations: dict[str, str]
    round: int
    holdout: dict[str, Any]
    report: str


class Concern(BaseModel):
    """One objection of the critic.

    Attributes:
        topic: What the concern is about.
        severity: ``blocking`` concerns keep the hypothesis from being accepted until a later
            review no longer raises them; ``minor`` ones are reported only.
        text: The concern, with its numbers.
        cites: Tool call ids the numbers come from.
    """

    model_config = _FORBID

    topic: Literal[
        "leakage",
        "lookahead",
        "guardrail",
        "multiple_testing",
        "overfitting",
        "costs",
        "sample_size",
        "regime",
        "filings",
        "evidence",
        "other",
    ]
    severity: Literal["blocking", "minor"]
    text: str = Field(min_length=1, max_length=2000)
    cites: list[str] = Field(default_factory=list, max_length=20)


class RequestedTest(BaseModel):
    """An extra test the critic asks for, as a tool call.

    Attributes:
        tool: Tool name (one of the tools offered to the session).
        arguments: The tool's arguments.
        reason: What the test would show.
    """

    model_config = _FORBID

    tool: str = Field(min_length=1, max_length=64)
    arguments: dict[str, Any] = Field(default_factory=dict)
    reason: str = Field(default="", max_length=1000)


class Critique(BaseModel):
    """The critic's structured answer (what a language-model critic must return).

    Attributes:
        concerns: Objections, each blocking or minor, with the calls they cite.
        requested_tests: Extra tool calls to run before the next review.
        summary: One paragraph.
    """

    model_config = _FORBID

    concerns: list[Concern] = Field(default_factory=list, max_length=30)
    requested_tests: list[RequestedTest] = Field(default_factory=list, max_length=6)
    summary: str = Field(default="", max_length=4000)


class RiskLimits(BaseModel):
    """Thresholds at which the risk node vetoes a strategy.

    Attributes:
        max_drawdown: Veto when the historical maximum drawdown is deeper (a positive share).
        max_daily_cvar_99: Veto when the 99% daily CVaR loss is larger (a positive share).
        min_recommended_leverage: Veto when the sizing rule recommends less leverage than
            this: the strategy is too volatile to hold at a meaningful size.
    """

    model_config = _FORBID

    max_drawdown: float = Field(default=0.35, gt=0.0, le=1.0)
    max_daily_cvar_99: float = Field(default=0.05, gt=0.0, le=1.0)
    min_recommended_leverage: float = Field(default=0.25, ge=0.0, le=10.0)


def primary_trial(state: ResearchState) -> ToolLogEntry | None:
    """The researcher's last successful trial-recording call (backtest or CV), if any."""
    for entry in reversed(state.get("tool_log", [])):
        if entry["origin"] != "researcher" or not entry["ok"]:
            continue
        if entry["name"] in {"backtest", "walk_forward_cv"} and _trial_id(entry):
            return entry
    return None


def _trial_id(entry: ToolLogEntry) -> str | None:
    trial = (entry["envelope"].get("result") or {}).get("trial") or {}
    return trial.get("trial_id")


def result_content(entry: ToolLogEntry) -> str:
    """A call's result as a model reads it: the envelope as JSON with sorted keys.

    Longer than 60,000 characters, it is cut there and marked ``...(truncated)``.
    """
    content = json.dumps(entry["envelope"], sort_keys=True)
    if len(content) > _MAX_RESULT_CHARS:
        content = content[:_MAX_RESULT_CHARS] + " ...(truncated)"
    return content


def conversation(
    state: ResearchState, texts: dict[str, tuple[dict[str, Any], str]] | None = None
) -> list[dict[str, Any]]:
    """``messages`` with the text of every tool result filled in from ``tool_log``.

    Args:
        state: The session state.
        texts: A cache of :func:`result_content` by call id, kept across calls by the
            caller; an entry is reused only for the very envelope object it was made from.

    Returns:
        The messages as ``Message.model_dump(mode="json")`` data (new dicts where filled in).
    """
    log: dict[str, ToolLogEntry] | None = None
    filled: list[dict[str, Any]] = []
    for message in state.get("messages", []):
        results = message.get("tool_results") or []
        if all(result.get("content") for result in results):
            filled.append(message)
            continue
        if log is None:
            log = {entry["id"]: entry for entry in state.get("tool_log", [])}
        answered = []
        for result in results:
            entry = log.get(result["tool_call_id"])
            if not result.get("content") and entry is not None:
                cached = texts.get(entry["id"]) if texts is not None else None
                if cached is None or cached[0] is not entry["envelope"]:
                    cached = (entry["envelope"], result_content(entry))
                    if texts is not None:
                        texts[entry["id"]] = cached
                result = {**result, "content": cached[1]}
            answered.append(result)
        filled.append({**message, "tool_results": answered})
    return filled


def not_offered(name: str, offered: list[str]) -> dict[str, Any]:
    """The envelope logged for a call of a tool the session does not offer (not run)."""
    return {
        "ok": False,
        "tool": name,
        "result": None,
        "warnings": [],
        "guardrails": [],
        "provenance": {"tool": name},
        "error": {
            "kind": "bad_input",
            "field": None,
            "guardrail": None,
            "message": f"Tool {name!r} is not offered in this research session.",
            "fix": f"call one of: {', '.join(offered)}.",
            "retryable": False,
        },
        "timings": {},
    }
