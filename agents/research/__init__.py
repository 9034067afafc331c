"""The LangGraph research graph: researcher, critic and risk agents."""

__all__: list[str] = []
