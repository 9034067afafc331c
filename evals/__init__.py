"""Evaluation harness: does the LLM add value over model-only baselines."""

__all__: list[str] = []
