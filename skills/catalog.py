"""The Agent Skills shipped with quantdesk: find, parse and validate ``<name>/SKILL.md``.

A skill is a folder holding a ``SKILL.md`` in the Agent Skills format: YAML front matter
with ``name`` (lowercase letters, digits and single hyphens, at most 64 characters, equal
to the folder name) and ``description`` (what the skill does and when to use it, at most
1024 characters), optionally ``license``, ``compatibility``, ``metadata`` and
``allowed-tools``; then a Markdown body with runnable examples (:mod:`.examples`).

The skill folders sit beside this module and ship in the wheel as package data, so
:func:`list_skills` finds them in a checkout and in an installed package alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from quantdesk.quant_core.errors import InputError
from quantdesk.skills.examples import SkillExample, SkillFormatError, parse_examples

__all__ = [
    "SKILLS_DIR",
    "Skill",
    "get_skill",
    "list_skills",
    "parse_skill",
    "skill_names",
]

SKILLS_DIR = Path(__file__).resolve().parent
"""The folder holding one sub-folder per skill."""

_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_MAX_NAME, _MAX_DESCRIPTION, _MAX_COMPATIBILITY = 64, 1024, 500
_KEYS = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}


@dataclass(frozen=True)
class Skill:
    """One parsed SKILL.md.

    Attributes:
        name: Skill name (the folder name).
        description: What the skill does and when to use it.
        path: The SKILL.md file.
        body: Markdown after the front matter.
        examples: Runnable commands with their expected output, in order.
        front_matter: Every front-matter field, as parsed.
    """

    name: str
    description: str
    path: Path
    body: str
    examples: tuple[SkillExample, ...] = ()
    front_matter: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def text(self) -> str:
        """The whole SKILL.md, front matter included."""
        return self.path.read_text(encoding="utf-8")

    @property
    def tools(self) -> list[str]:
        """The tools the examples run, each once, in order of first use."""
        return list(dict.fromkeys(e.tool for e in self.examples if e.tool is not None))


def _split_front_matter(text: str, where: str) -> tuple[str, str, int]:
    """Return ``(yaml text, body, lines before the body)``."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        raise SkillFormatError(
            f"{where}: a SKILL.md starts with YAML front matter between '---' lines.",
            fix="begin the file with ---, name: ..., description: ..., ---.",
        )
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            return "\n".join(lines[1:end]), "\n".join(lines[end + 1 :]), end + 1
    raise SkillFormatError(
        f"{where}: the front matter is never closed.", fix="close it with a '---' line."
    )


def _check_front_matter(meta: Any, folder: str, where: str) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise SkillFormatError(
            f"{where}: the front matter is not a YAML mapping.", fix="use key: value."
        )
    unknown = sorted(set(meta) - _KEYS)
    if unknown:
        raise SkillFormatError(
            f"{where}: unknown front-matter field(s) {unknown}.",
            fix=f"use only {sorted(_KEYS)}; put anything else under metadata.",
        )
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > _MAX_NAME or not _NAME.match(name):
        raise SkillFormatError(
            f"{where}: name {name!r} is not 1-{_MAX_NAME} lowercase letters, digits and single "
            "hyphens.",
            fix="e.g. name: backtest-with-costs.",
        )
    if name != folder:
        raise SkillFormatError(
            f"{where}: name {name!r} differs from its folder {folder!r}.",
            fix="rename the folder or the skill so that they match.",
        )
    description = meta.get("description")
    if not isinstance(description, str) or not description.strip():
        raise SkillFormatError(
            f"{where}: description is missing or empty.", fix="say what and when."
        )
    if len(description) > _MAX_DESCRIPTION:
        raise SkillFormatError(
            f"{where}: description has {len(description)} characters; the limit is "
            f"{_MAX_DESCRIPTION}.",
            fix="shorten it; details belong in the body.",
        )
    compatibility = meta.get("compatibility")
    if compatibility is not None and (
        not isinstance(compatibility, str) or len(compatibility) > _MAX_COMPATIBILITY
    ):
        raise SkillFormatError(
            f"{where}: compatibility must be text of at most {_MAX_COMPATIBILITY} characters.",
            fix="shorten it.",
        )
    metadata = meta.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise SkillFormatError(
            f"{where}: metadata must map strings to strings.", fix='quote values, e.g. "1.0".'
        )
    return meta


def parse_skill(path: Path) -> Skill:
    """Parse and validate one SKILL.md.

    Raises:
        SkillFormatError: invalid front matter, or a malformed example block.
    """
    path = Path(path)
    where = f"{path.parent.name}/{path.name}"
    head, body, offset = _split_front_matter(path.read_text(encoding="utf-8"), where)
    try:
        meta = yaml.safe_load(head)
    except yaml.YAMLError as exc:
        raise SkillFormatError(
            f"{where}: the front matter is not YAML: {exc}", fix="fix it."
        ) from None
    meta = _check_front_matter(meta, path.parent.name, where)
    return Skill(
        name=meta["name"],
        description=meta["description"].strip(),
        path=path,
        body=body,
        examples=tuple(parse_examples(body, where=where, line_offset=offset)),
        front_matter=meta,
    )


def list_skills(root: Path | None = None) -> list[Skill]:
    """Return every skill under ``root`` (default: the packaged skills), sorted by name.

    Raises:
        SkillFormatError: a SKILL.md is invalid (the message names the file).
    """
    folder = SKILLS_DIR if root is None else Path(root)
    return [parse_skill(path) for path in sorted(folder.glob("*/SKILL.md"))]


def skill_names(root: Path | None = None) -> list[str]:
    """Return the names of the skills (their folder names), sorted."""
    folder = SKILLS_DIR if root is None else Path(root)
    return sorted(p.parent.name for p in folder.glob("*/SKILL.md"))


def get_skill(name: str, root: Path | None = None) -> Skill:
    """Return the skill called ``name``.

    Raises:
        InputError: no such skill (the message lists the known ones).
        SkillFormatError: its SKILL.md is invalid.
    """
    known = skill_names(root)
    if name not in known:
        raise InputError(f"Unknown skill {name!r}.", fix=f"use one of: {', '.join(known)}.")
    folder = SKILLS_DIR if root is None else Path(root)
    return parse_skill(folder / name / "SKILL.md")
