"""Guard-railed skill tools shared by the agents, the CLI and the MCP server."""

__all__: list[str] = []
