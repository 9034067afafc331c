"""The research graph (LangGraph): a researcher, a critic and a risk officer around the tools.

``run_research(question)`` runs a session and returns a :class:`ResearchOutcome`;
``build_research_graph(model)`` compiles the graph for callers that drive it themselves;
:class:`ChatSession` drives a session turn by turn from chat messages, streaming its events, and
:class:`SessionStore` lists the sessions saved in ``QUANTDESK_HOME/sessions.sqlite``.
Design and the offline critic's rules: ``docs/agents.md``; chat: ``docs/chat.md``.
The chat names are imported lazily (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantdesk.agents.research.graph import (
    DEFAULT_TOOLS,
    ResearchOutcome,
    arun_research,
    build_research_graph,
    context_state,
    run_research,
)
from quantdesk.agents.research.state import (
    Concern,
    Critique,
    RequestedTest,
    ResearchState,
    RiskLimits,
)
from quantdesk.quant_core._lazy import lazy_exports as _lazy_exports

if TYPE_CHECKING:
    from quantdesk.agents.research.chat import ChatSession
    from quantdesk.agents.research.chat_events import ChatEvent
    from quantdesk.agents.research.sessions import SessionInfo, SessionStore

_LAZY: dict[str, str] = {
    "ChatEvent": "chat_events",
    "ChatSession": "chat",
    "SessionInfo": "sessions",
    "SessionStore": "sessions",
}

__all__ = [
    "DEFAULT_TOOLS",
    "ChatEvent",
    "ChatSession",
    "Concern",
    "Critique",
    "RequestedTest",
    "ResearchOutcome",
    "ResearchState",
    "RiskLimits",
    "SessionInfo",
    "SessionStore",
    "arun_research",
    "build_research_graph",
    "context_state",
    "run_research",
]


__getattr__, __dir__ = _lazy_exports(globals(), _LAZY)
