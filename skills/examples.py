"""Runnable examples of a SKILL.md and the expectations their output must meet.

Every ```` ```bash ```` block of a SKILL.md is one shell command a coding agent can run as
written. A ```` ```json expect ```` block after it (before the next ``bash`` block) is a
*subset* of the JSON the command prints: the test suite runs every command and checks the
output against it, so a skill never promises what the tool does not return. The conventions
are documented in ``docs/skills.md``:

* objects match when every expected key is present and its value matches (extra keys are
  fine); arrays match when every expected item matches some actual item (``[]`` matches only
  an empty array); numbers compare with a relative tolerance of 1e-9, booleans and ``null``
  exactly;
* a string of the form ``<...>`` is a placeholder: ``<any>``, ``<string>``, ``<number>``,
  ``<int>``, ``<bool>``, ``<date>`` (``YYYY-MM-DD``), ``<list>``, ``<object>``,
  ``<number in [LOW, HIGH]>`` (closed interval) or ``<contains TEXT>``;
* the exit code follows from the expected envelope: ``"ok": true`` exits 0, a ``refused``
  or ``runtime`` error exits 1 and ``bad_input`` exits 2.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from quantdesk.quant_core.errors import DataError

__all__ = [
    "SkillExample",
    "SkillFormatError",
    "check_expectation",
    "expected_exit_code",
    "parse_examples",
    "placeholder_problem",
]

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
_TOOL_RUN = re.compile(
    r"^echo\s+'(?P<request>[^']*)'\s*\|\s*quantdesk\s+tool\s+run\s+(?P<tool>[A-Za-z0-9_]+)"
    r"\s+--input\s+-\s*$",
    re.DOTALL,
)
_PLACEHOLDER = re.compile(r"^<(?P<body>.+)>$", re.DOTALL)
_INTERVAL = re.compile(r"^number in \[\s*(?P<low>[^,\]]+?)\s*,\s*(?P<high>[^,\]]+?)\s*\]$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SIMPLE = {"any", "string", "number", "int", "bool", "date", "list", "object"}
_EXIT = {"refused": 1, "runtime": 1, "bad_input": 2}


class SkillFormatError(DataError):
    """A SKILL.md breaks the Agent Skills format or the example conventions."""


@dataclass(frozen=True)
class SkillExample:
    """One runnable command of a skill and what it must print.

    Attributes:
        command: The shell command, exactly as written in the ``bash`` block.
        expect: The expected subset of the printed JSON (``None``: only exit code 0 is
            promised).
        line: Line of the ``bash`` block in SKILL.md (1-based, for error messages).
        tool: The tool of a ``echo '<json>' | quantdesk tool run NAME --input -`` command,
            else ``None``.
        request: The JSON request text of such a command, else ``None``.
    """

    command: str
    expect: dict[str, Any] | None
    line: int
    tool: str | None = None
    request: str | None = None

    @property
    def exit_code(self) -> int:
        """The exit code the command must return."""
        return 0 if self.expect is None else expected_exit_code(self.expect)


def _fences(lines: list[str], where: str) -> list[tuple[str, int, str]]:
    """Return ``(info, first line number, content)`` of each top-level fenced block."""
    blocks: list[tuple[str, int, str]] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, info, start = match["fence"], match["info"], i + 1
        j = start
        while j < len(lines) and not lines[j].rstrip().startswith(fence):
            j += 1
        if j == len(lines):
            raise SkillFormatError(
                f"{where}: the code block opened on line {start} is never closed.",
                fix=f"close it with {fence}.",
            )
        blocks.append((info.lower(), start, "\n".join(lines[start:j])))
        i = j + 1
    return blocks


def parse_examples(
    body: str, *, where: str = "SKILL.md", line_offset: int = 0
) -> list[SkillExample]:
    """Return the runnable examples of a SKILL.md body, in order.

    Args:
        body: Markdown after the front matter.
        where: Name used in error messages (the file).
        line_offset: Lines before ``body`` in the file (front matter), for line numbers.

    Raises:
        SkillFormatError: an unclosed block, an expect block without a command before it,
            an expect block that is not a JSON object with ``ok``, or a bad placeholder.
    """
    examples: list[dict[str, Any]] = []
    for info, start, content in _fences(body.splitlines(), where):
        line = start + line_offset
        words = info.split()
        if words[:1] in (["bash"], ["sh"], ["shell"]):
            command = content.strip()
            if not command:
                raise SkillFormatError(f"{where}:{line}: empty bash block.", fix="remove it.")
            match = _TOOL_RUN.match(command)
            examples.append(
                {
                    "command": command,
                    "expect": None,
                    "line": line,
                    "tool": match["tool"] if match else None,
                    "request": match["request"] if match else None,
                }
            )
        elif words == ["json", "expect"]:
            if not examples or examples[-1]["expect"] is not None:
                raise SkillFormatError(
                    f"{where}:{line}: an expect block must follow a bash block of its own.",
                    fix="put one ```json expect block after the command it describes.",
                )
            examples[-1]["expect"] = _expect_block(content, f"{where}:{line}")
    for example in examples:
        if example["request"] is not None:
            _json_object(example["request"], f"{where}:{example['line']} (request)")
    return [SkillExample(**example) for example in examples]


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SkillFormatError(
            f"{where}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.",
            fix="write one JSON object (double quotes, no trailing commas).",
        ) from None
    if not isinstance(value, dict):
        raise SkillFormatError(f"{where}: a JSON object is expected.", fix="wrap it in {...}.")
    return value


def _expect_block(content: str, where: str) -> dict[str, Any]:
    expect = _json_object(content, where)
    if not isinstance(expect.get("ok"), bool):
        raise SkillFormatError(
            f'{where}: an expect block must say "ok": true or "ok": false.',
            fix='add "ok" (and, when false, "error": {"kind": ...}).',
        )
    if not expect["ok"]:
        kind = (expect.get("error") or {}).get("kind")
        if kind not in _EXIT:
            raise SkillFormatError(
                f'{where}: "ok": false needs "error": {{"kind": ...}} with one of {sorted(_EXIT)}.',
                fix='e.g. "error": {"kind": "refused", "guardrail": "costs"}.',
            )
    problems = _placeholders(expect, "$")
    if problems:
        raise SkillFormatError(f"{where}: {problems[0]}", fix=f"use one of {sorted(_SIMPLE)}.")
    return expect


def _placeholders(value: Any, path: str) -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _placeholders(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _placeholders(v, f"{path}[{i}]")]
    if isinstance(value, str):
        problem = placeholder_problem(value)
        return [] if problem is None else [f"{path}: {problem}"]
    return []


def placeholder_problem(text: str) -> str | None:
    """Return why ``text`` is a malformed placeholder, or ``None`` (fine, or no placeholder)."""
    match = _PLACEHOLDER.match(text)
    if match is None:
        return None
    body = match["body"]
    if body in _SIMPLE or body.startswith("contains "):
        return None
    interval = _INTERVAL.match(body)
    if interval is None:
        return f"unknown placeholder {text!r}"
    try:
        low, high = float(interval["low"]), float(interval["high"])
    except ValueError:
        return f"the bounds of {text!r} are not numbers"
    return None if low <= high else f"the interval of {text!r} is empty"


def expected_exit_code(expect: dict[str, Any]) -> int:
    """Exit code of ``quantdesk tool run`` implied by an expected envelope."""
    if expect.get("ok"):
        return 0
    return _EXIT[(expect.get("error") or {}).get("kind", "runtime")]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _match_placeholder(body: str, actual: Any) -> bool:
    checks = {
        "any": lambda v: True,
        "string": lambda v: isinstance(v, str),
        "number": lambda v: _is_number(v) and math.isfinite(v),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "date": lambda v: isinstance(v, str) and _ISO_DATE.match(v) is not None,
        "list": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    if body in checks:
        return bool(checks[body](actual))
    if body.startswith("contains "):
        return isinstance(actual, str) and body.removeprefix("contains ") in actual
    interval = _INTERVAL.match(body)
    assert interval is not None  # checked when the block was parsed
    return _is_number(actual) and float(interval["low"]) <= actual <= float(interval["high"])


def check_expectation(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Compare printed JSON with an expect block; return the mismatches (empty: it matches).

    Args:
        expected: The expect block (or a part of it).
        actual: The parsed output (or the corresponding part).
        path: JSON path of this part, used in the messages.
    """
    if isinstance(expected, str):
        placeholder = _PLACEHOLDER.match(expected)
        if placeholder is not None and placeholder_problem(expected) is None:
            if _match_placeholder(placeholder["body"], actual):
                return []
            return [f"{path}: {actual!r} does not match {expected}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"[:300]]
        problems: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{path}.{key}: missing")
            else:
                problems.extend(check_expectation(value, actual[key], f"{path}.{key}"))
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{path}: expected an array, got {actual!r}"[:300]]
        if not expected:
            return [] if not actual else [f"{path}: expected an empty array, got {len(actual)}"]
        return [
            f"{path}: no item matches {item!r}"[:300]
            for item in expected
            if not any(not check_expectation(item, candidate) for candidate in actual)
        ]
    if _is_number(expected):
        if _is_number(actual) and math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12):
            return []
        return [f"{path}: expected {expected!r}, got {actual!r}"[:300]]
    if expected is None or isinstance(expected, (bool, str)):
        if type(expected) is type(actual) and expected == actual:
            return []
        return [f"{path}: expected {expected!r}, got {actual!r}"[:300]]
    return [f"{path}: unsupported expected value {expected!r}"]
