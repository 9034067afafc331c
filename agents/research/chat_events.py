"""Typed events of a chat turn, translated from the research graph's stream.

:func:`custom_event` turns a progress event the nodes wrote to LangGraph's custom stream (see
:mod:`quantdesk.agents.research.turns`) into a typed event; :func:`update_events` turns a node's
state update (``updates`` stream mode) into the events a person follows: the critic's review,
the risk verdict, the decision, the holdout step, an approval request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from quantdesk.agents.research import prompts
from quantdesk.agents.research.sessions import SessionStatus

__all__ = [
    "ApprovalRequested",
    "ChatEvent",
    "CriticReviewed",
    "Decided",
    "HoldoutUpdate",
    "NodeStarted",
    "RiskAssessed",
    "TextDelta",
    "ToolFinished",
    "ToolStarted",
    "TurnEnded",
    "custom_event",
    "summarize_arguments",
    "update_events",
]


@dataclass(frozen=True)
class NodeStarted:
    """An agent took over (``researcher``, ``critic``, ``risk``, ``decide``, ``holdout``, ...).

    Repeats of the same node (the researcher's tool loop) are not reported.
    """

    node: str
    round: int


@dataclass(frozen=True)
class TextDelta:
    """A piece of the researcher's text, as the model streams it."""

    text: str
    node: str = "researcher"


@dataclass(frozen=True)
class ToolStarted:
    """A tool call started.

    Attributes:
        call_id: The call's id (reports cite it).
        name: Tool name.
        origin: Node that asked for it (``researcher``, ``critic``, ``risk``, ``holdout``).
        arguments: Its arguments.
        summary: The arguments in one short line.
    """

    call_id: str
    name: str
    origin: str
    arguments: dict[str, Any]
    summary: str


@dataclass(frozen=True)
class ToolFinished:
    """A tool call finished.

    Attributes:
        call_id: The call's id.
        name: Tool name.
        origin: Node that asked for it.
        ok: Whether the tool succeeded.
        refused: Whether a guardrail refused it (``ok`` is then false).
        duration_s: Wall time of the call.
        summary: Its headline numbers, or its error, in one line.
    """

    call_id: str
    name: str
    origin: str
    ok: bool
    refused: bool
    duration_s: float
    summary: str


@dataclass(frozen=True)
class CriticReviewed:
    """The critic's review: counts of concerns, the tests it asked for, its summary."""

    round: int
    by: str
    blocking: tuple[str, ...]
    minor: int
    requested: tuple[str, ...]
    summary: str


@dataclass(frozen=True)
class RiskAssessed:
    """The risk node's verdict and findings."""

    veto: bool
    findings: tuple[str, ...]


@dataclass(frozen=True)
class Decided:
    """The decision of the turn (``accept``, ``reject``, ``needs-more-evidence``)."""

    kind: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class HoldoutUpdate:
    """The holdout step's status (``skipped``, ``approved``, ``declined``, ``evaluated``)."""

    status: str
    note: str


@dataclass(frozen=True)
class ApprovalRequested:
    """The graph stopped to ask before evaluating the hypothesis on the holdout (once)."""

    question: str
    hypothesis: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TurnEnded:
    """The turn ended: finished (``complete``) or stopped at the holdout approval.

    Attributes:
        status: ``complete`` or ``awaiting_approval``.
        decision: The decision, once made.
        report: The markdown report (empty while awaiting approval).
        answer: The researcher's final text of this turn.
    """

    status: SessionStatus
    decision: str | None
    report: str
    answer: str


ChatEvent = (
    NodeStarted
    | TextDelta
    | ToolStarted
    | ToolFinished
    | CriticReviewed
    | RiskAssessed
    | Decided
    | HoldoutUpdate
    | ApprovalRequested
    | TurnEnded
)
"""Everything :meth:`ChatSession.ask` yields."""


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        pairs: list[tuple[str, Any]] = []
        for key, sub in value.items():
            pairs += _flatten(f"{prefix}.{key}" if prefix else str(key), sub)
        return pairs
    return [(prefix, value)]


def summarize_arguments(arguments: dict[str, Any], width: int = 110) -> str:
    """Tool arguments in one line (``key=value``, nested keys dotted, at most ``width``)."""
    parts = []
    for key, value in _flatten("", arguments):
        if key == "context":  # always the session's own context
            continue
        shown = json.dumps(value) if isinstance(value, list) else str(value)
        parts.append(f"{key}={shown}")
    line = ", ".join(parts)
    return line if len(line) <= width else line[: width - 3] + "..."


def _tool_summary(entry: dict[str, Any]) -> str:
    """The call's headline (the report's evidence line), naming only notable guardrails."""
    digest = prompts.evidence_digest({"tool_log": [entry]})  # type: ignore[typeddict-item]
    guards = entry["envelope"].get("guardrails", [])
    listed = ", ".join(f"{g['name']}={g['outcome']}" for g in guards)
    headline = digest.removeprefix(f"- {prompts.cite(entry)} by {entry['origin']}: ")
    headline = headline.removesuffix(f" ({listed})")
    notable = [
        f"{g['name']} {g['outcome']}"
        for g in guards
        if g["outcome"] not in ("passed", "not_applicable")
    ]
    return headline + (f" (guardrails: {', '.join(notable)})" if notable else "")


def custom_event(data: dict[str, Any]) -> ChatEvent | None:
    """The typed event of a custom-stream progress event (``None`` for an unknown one)."""
    kind = data.get("event")
    if kind == "node":
        return NodeStarted(node=data["node"], round=int(data.get("round", 0)))
    if kind == "text":
        return TextDelta(text=data["text"], node=data.get("node", "researcher"))
    if kind == "tool_started":
        return ToolStarted(
            call_id=data["id"],
            name=data["name"],
            origin=data["origin"],
            arguments=dict(data["arguments"]),
            summary=summarize_arguments(data["arguments"]),
        )
    if kind == "tool_finished":
        entry = data["entry"]
        error = entry["envelope"].get("error") or {}
        return ToolFinished(
            call_id=data["id"],
            name=data["name"],
            origin=data["origin"],
            ok=bool(data["ok"]),
            refused=error.get("kind") == "refused",
            duration_s=float(data["duration_s"]),
            summary=_tool_summary(entry),
        )
    return None


def update_events(data: dict[str, Any]) -> list[ChatEvent]:
    """The events of one ``updates`` stream part (``{node: update}`` or interrupts)."""
    events: list[ChatEvent] = []
    for node, update in data.items():
        if node == "__interrupt__":
            for item in update:
                value = dict(item.value)
                events.append(
                    ApprovalRequested(
                        question=str(value.get("question", "")),
                        hypothesis=str(value.get("hypothesis", "")),
                        arguments=dict(value.get("arguments") or {}),
                    )
                )
            continue
        if not isinstance(update, dict):
            continue
        if node == "critic" and update.get("critiques"):
            review = update["critiques"][-1]
            concerns = review.get("concerns", [])
            events.append(
                CriticReviewed(
                    round=int(review["round"]),
                    by=str(review["by"]),
                    blocking=tuple(
                        f"{c['topic']}: {c['text']}"
                        for c in concerns
                        if c["severity"] == "blocking"
                    ),
                    minor=sum(c["severity"] == "minor" for c in concerns),
                    requested=tuple(t["tool"] for t in review.get("requested_tests", [])),
                    summary=str(review.get("summary", "")),
                )
            )
        if node == "risk" and update.get("risk_findings"):
            risk = update["risk_findings"]
            findings = tuple(f"[{f['severity']}] {f['text']}" for f in risk.get("findings", []))
            events.append(RiskAssessed(veto=bool(risk.get("veto")), findings=findings))
        if node in ("decide", "holdout") and update.get("decision"):
            decision = update["decision"]
            events.append(Decided(decision["kind"], tuple(decision.get("reasons", []))))
        if node == "holdout" and (update.get("holdout") or {}).get("status"):
            holdout = update["holdout"]
            note = holdout.get("note") or (
                "evaluating the hypothesis on the holdout (once)"
                if holdout["status"] == "approved"
                else ""
            )
            events.append(HoldoutUpdate(holdout["status"], str(note)))
    return events
