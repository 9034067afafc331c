"""Agent Skills (``<name>/SKILL.md``) for coding agents."""

__all__: list[str] = []
