"""Point-in-time knowledge graph (embedded default, Neo4j backend)."""

__all__: list[str] = []
