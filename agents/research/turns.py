"""Turns of a research session, and the progress events its nodes write while they run.

**Turns.** A session answers its first question and then, in chat, follow-up questions on the
same thread. Invoking the graph again on a finished thread with ``{"question": ...}`` enters the
``plan`` node with the conversation already there; :func:`follow_up` appends the question as a
new user message and opens a new turn. A turn record (``turns`` in :class:`SessionState`) says
where the turn starts in the tool log, the critiques, the critic rounds and the researcher
steps, so that:

* the researcher sees the whole conversation, earlier tool results included;
* tools stay pinned to the session's research context, so trials keep counting there;
* each turn gets the step limit, critic rounds and holdout rule the first one had;
* the critic, risk and decision rules judge the turn's own evidence (:func:`turn_view`): the
  tool calls since the question, or the whole session's when the follow-up ran no trial of its
  own (it is then about the earlier results).

**Progress events.** Nodes write plain dicts to LangGraph's custom stream
(``stream_mode="custom"``; :func:`emit`), dropped when nobody streams the run:

* ``{"event": "node", "node": <name>, "round": <critic round>}`` when a node starts;
* ``{"event": "text", "node": "researcher", "text": <delta>}``: the researcher's text as it
  arrives (graphs built with ``stream=True``; a model that does not stream gives one delta);
* ``{"event": "tool_started", "id", "name", "origin", "arguments"}`` before a tool runs and
  ``{"event": "tool_finished", "id", "name", "origin", "ok", "duration_s", "entry"}`` after it
  (``entry``: the :class:`~quantdesk.agents.research.state.ToolLogEntry`).
"""

from __future__ import annotations

from typing import Any

from langgraph.config import get_stream_writer

from quantdesk.agents.messages import Message, ModelRequest, ModelResponse
from quantdesk.agents.model import Model, ProviderError
from quantdesk.agents.research.state import ResearchState, primary_trial

__all__ = [
    "SessionState",
    "current_turn",
    "emit",
    "first_turn",
    "follow_up",
    "stream_response",
    "turn_view",
]


class SessionState(ResearchState, total=False):
    """:class:`ResearchState` plus the turns of the session: the graph's state schema.

    Keys:
        turns: One record per question: ``n`` (1-based), ``question``, and where the turn
            starts: ``log_start`` (index in ``tool_log``), ``critique_start`` (index in
            ``critiques``), ``round`` (critic round) and ``steps`` (researcher steps).
            Sessions checkpointed before turns existed have none: they are one turn.
    """

    turns: list[dict[str, Any]]


def first_turn(question: str) -> dict[str, Any]:
    """The record of a session's first turn."""
    return {
        "n": 1,
        "question": question,
        "log_start": 0,
        "critique_start": 0,
        "round": 0,
        "steps": 0,
    }


def current_turn(state: ResearchState) -> dict[str, Any]:
    """The record of the turn in progress (turn 1 for a session without ``turns``)."""
    turns = state.get("turns") or []  # type: ignore[typeddict-item]
    return dict(turns[-1]) if turns else first_turn("")


def turn_view(state: ResearchState) -> ResearchState:
    """The state as the critic, risk and decision rules judge it: this turn's evidence.

    The rules read the whole tool log, and a follow-up's verdict must not count the split
    tests or refusals of an earlier question's strategy.
    """
    turn = current_turn(state)
    if turn["log_start"] == 0 and turn["critique_start"] == 0:
        return state
    view: dict[str, Any] = dict(state)
    view["tool_log"] = list(state.get("tool_log", []))[turn["log_start"] :]
    view["critiques"] = list(state.get("critiques", []))[turn["critique_start"] :]
    if primary_trial(view) is None:  # type: ignore[arg-type]
        view["tool_log"] = list(state.get("tool_log", []))
    return view  # type: ignore[return-value]


def follow_up(state: ResearchState) -> dict[str, Any]:
    """The ``plan`` node's update for a follow-up question (``state["question"]``)."""
    turns = list(state.get("turns") or [])  # type: ignore[typeddict-item]
    if not turns:  # a session saved before turns: its first user message opened turn 1
        first = next((m for m in state["messages"] if m["role"] == "user"), {})
        turns = [first_turn(first.get("content", ""))]
    question = state["question"]
    turns.append(
        {
            "n": len(turns) + 1,
            "question": question,
            "log_start": len(state.get("tool_log", [])),
            "critique_start": len(state.get("critiques", [])),
            "round": state.get("round", 0),
            "steps": state.get("researcher_steps", 0),
        }
    )
    user = Message(role="user", content=question).model_dump(mode="json")
    return {
        "messages": [*state["messages"], user],
        "turns": turns,
        "pending_calls": [],
        "holdout": {},
    }


def emit(event: str, **data: Any) -> None:
    """Write a progress event to the run's custom stream."""
    get_stream_writer()({"event": event, **data})


async def stream_response(model: Model, request: ModelRequest, *, node: str) -> ModelResponse:
    """Call ``model.stream``, writing its text deltas as ``text`` events; return the response.

    Raises:
        ProviderError: the stream ended without its ``done`` event.
    """
    writer = get_stream_writer()
    response: ModelResponse | None = None
    streamed = False
    async for event in model.stream(request):
        if event.kind == "text" and event.text:
            writer({"event": "text", "node": node, "text": event.text})
            streamed = True
        elif event.kind == "done":
            response = event.response
    if response is None:
        raise ProviderError(
            "the stream ended without its final event.",
            provider=model.model_id,
            kind="malformed",
            fix="retry the turn; if it persists, use a non-streaming client for this model.",
        )
    if not streamed and response.text:
        writer({"event": "text", "node": node, "text": response.text})
    return response
