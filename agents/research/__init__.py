"""The research graph (LangGraph): a researcher, a critic and a risk officer around the tools.

``run_research(question)`` runs a session and returns a :class:`ResearchOutcome`;
``build_research_graph(model)`` compiles the graph for callers that drive it themselves.
Design and the offline critic's rules: ``docs/agents.md``.
"""

from __future__ import annotations

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

__all__ = [
    "DEFAULT_TOOLS",
    "Concern",
    "Critique",
    "RequestedTest",
    "ResearchOutcome",
    "ResearchState",
    "RiskLimits",
    "arun_research",
    "build_research_graph",
    "context_state",
    "run_research",
]
