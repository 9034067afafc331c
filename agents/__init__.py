"""Researcher, critic and risk agents orchestrated with LangGraph (see issue: agents)."""

__all__: list[str] = []
