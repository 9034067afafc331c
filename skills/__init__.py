"""Agent Skills (``<name>/SKILL.md``) for coding agents.

Each skill is one research task written as shell commands a coding agent runs one at a
time (``echo '<json>' | quantdesk tool run <tool> --input -``), each followed by the JSON it
prints. :func:`list_skills` and :func:`get_skill` read them; :func:`check_expectation`
compares a command's output with the skill's promise. Conventions: ``docs/skills.md``.
"""

from quantdesk.skills.catalog import SKILLS_DIR, Skill, get_skill, list_skills, skill_names
from quantdesk.skills.examples import (
    SkillExample,
    SkillFormatError,
    check_expectation,
    expected_exit_code,
)

__all__ = [
    "SKILLS_DIR",
    "Skill",
    "SkillExample",
    "SkillFormatError",
    "check_expectation",
    "expected_exit_code",
    "get_skill",
    "list_skills",
    "skill_names",
]
