"""Retrieval over SEC filings with point-in-time filters and citations."""

__all__: list[str] = []
