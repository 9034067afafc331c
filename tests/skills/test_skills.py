"""Every SKILL.md: valid Agent Skills front matter, and every example prints what it promises.

Each skill's commands run in order in a fresh ``QUANTDESK_HOME`` (``tests/conftest.py``) and a
fresh working directory. ``test_examples_run`` runs ``quantdesk tool run`` commands through
:func:`~quantdesk.tools.run_tool` in process (the same request, envelope and exit code as the
command) and every other command through the shell; ``test_examples_run_in_a_shell`` runs
every command literally, with ``bash`` and the installed ``quantdesk`` console script.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from quantdesk.quant_core.errors import InputError
from quantdesk.skills import (
    SKILLS_DIR,
    Skill,
    SkillExample,
    SkillFormatError,
    check_expectation,
    expected_exit_code,
    get_skill,
    list_skills,
    skill_names,
)
from quantdesk.skills.catalog import parse_skill
from quantdesk.tools import run_tool, tool_names

QUANTDESK = Path(sys.executable).with_name("quantdesk")
BASH = shutil.which("bash")
NAMES = skill_names()
REQUIRED_TASKS = {
    "acquire-and-validate-data",
    "engineer-features-and-labels",
    "walk-forward-cv",
    "deflated-sharpe-and-pbo",
    "backtest-with-costs",
    "risk-report",
    "holdout-evaluation",
}


@functools.cache
def _cli_has_tool_command() -> bool:
    if not QUANTDESK.exists():
        return False
    help_text = subprocess.run(
        [str(QUANTDESK), "--help"], capture_output=True, text=True, check=False, timeout=120
    ).stdout
    return any(line.strip().startswith("tool ") for line in help_text.splitlines())


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working directory with the default data directories (``./data``)."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("QUANTDESK_DATA_DIRS", raising=False)
    return work


def _shell(command: str, cwd: Path) -> tuple[int, str, str]:
    if BASH is None:
        pytest.skip("bash is not installed")
    env = dict(os.environ)
    env["PATH"] = f"{QUANTDESK.parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [BASH, "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    return done.returncode, done.stdout, done.stderr


def _check(skill: Skill, example: SkillExample, code: int, stdout: str, stderr: str) -> None:
    where = f"{skill.name}/SKILL.md line {example.line}: {example.command[:100]}"
    assert code == example.exit_code, (
        f"{where}\nexit code {code}, the skill promises {example.exit_code}\n"
        f"stdout: {stdout[-3000:]}\nstderr: {stderr[-3000:]}"
    )
    if example.expect is None:
        return
    try:
        printed = json.loads(stdout)
    except json.JSONDecodeError:
        pytest.fail(f"{where}\ndid not print JSON: {stdout[-3000:]}\nstderr: {stderr[-2000:]}")
    problems = check_expectation(example.expect, printed)
    assert problems == [], f"{where}\n" + "\n".join(problems) + f"\n\nprinted: {stdout[:6000]}"


# --------------------------------------------------------------------------- the skills


def test_the_required_skills_exist() -> None:
    assert set(NAMES) >= REQUIRED_TASKS
    assert [s.name for s in list_skills()] == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_front_matter_is_valid(name: str) -> None:
    skill = get_skill(name)
    assert skill.name == name == skill.path.parent.name
    assert 0 < len(skill.description) <= 1024
    assert "Use " in skill.description, "the description says when to use the skill"
    assert set(skill.front_matter) <= {
        "name",
        "description",
        "license",
        "compatibility",
        "metadata",
        "allowed-tools",
    }
    for heading in ("## When to use", "## Guardrails", "## What to report"):
        assert heading in skill.body, f"{name}: no {heading!r} section"
    assert len(skill.body.splitlines()) < 500, "SKILL.md bodies stay under 500 lines"


@pytest.mark.parametrize("name", NAMES)
def test_examples_are_tool_calls_with_promises(name: str) -> None:
    skill = get_skill(name)
    calls = [e for e in skill.examples if e.tool is not None]
    assert calls, f"{name}: no `quantdesk tool run` example"
    known = set(tool_names())
    for example in calls:
        assert example.tool in known, f"{name} line {example.line}: unknown tool {example.tool}"
        assert example.expect is not None, f"{name} line {example.line}: no expect block"
        json.loads(example.request or "")
    for example in skill.examples:
        if example.tool is None:
            assert example.command.startswith("quantdesk "), example.command
            assert "\n" not in example.command, "one command per step"
    assert any(not e.expect["ok"] for e in calls if e.expect), f"{name}: no refusal example"
    declared = set(skill.front_matter["metadata"]["tools"].split())
    assert set(skill.tools) <= declared, (
        f"{name}: metadata.tools misses {set(skill.tools) - declared}"
    )


def test_every_tool_is_taught_by_a_skill() -> None:
    taught = {tool for skill in list_skills() for tool in skill.tools}
    assert set(tool_names()) - taught == set()


def test_skills_ship_as_package_data() -> None:
    root = importlib.resources.files("quantdesk.skills")
    for name in NAMES:
        assert root.joinpath(name, "SKILL.md").is_file()
    assert Path(str(root)).resolve() == SKILLS_DIR


@pytest.mark.parametrize("name", NAMES)
def test_examples_run(name: str, workdir: Path) -> None:
    skill = get_skill(name)
    for example in skill.examples:
        if example.tool is not None:
            envelope = run_tool(example.tool, example.request)
            _check(skill, example, envelope.exit_code, json.dumps(envelope.to_json_dict()), "")
        else:
            _check(skill, example, *_shell(example.command, workdir))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_examples_run_in_a_shell(name: str, workdir: Path) -> None:
    if not _cli_has_tool_command():
        pytest.skip(f"{QUANTDESK} has no `tool` command yet (quantdesk --help does not list it)")
    skill = get_skill(name)
    for example in skill.examples:
        _check(skill, example, *_shell(example.command, workdir))


# --------------------------------------------------------------------------- the catalog


def _write_skill(root: Path, folder: str, text: str) -> Path:
    path = root / folder / "SKILL.md"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


GOOD = """---
name: tiny
description: A tiny skill. Use in tests.
---
# Tiny

```bash
echo '{"stats": {"sharpe": 1.0, "n_obs": 500}}' | quantdesk tool run deflated_sharpe --input -
```

Some prose between the command and its promise.

```json expect
{"ok": true, "result": {"source": "stats"}}
```

```json
{"an": "illustration, not an expectation"}
```

```bash
quantdesk context list
```
"""


def test_a_skill_is_parsed_into_examples(tmp_path: Path) -> None:
    skill = parse_skill(_write_skill(tmp_path, "tiny", GOOD))
    assert (skill.name, skill.description) == ("tiny", "A tiny skill. Use in tests.")
    assert [e.tool for e in skill.examples] == ["deflated_sharpe", None]
    first, second = skill.examples
    assert json.loads(first.request or "") == {"stats": {"sharpe": 1.0, "n_obs": 500}}
    assert first.expect == {"ok": True, "result": {"source": "stats"}}
    assert (first.line, first.exit_code) == (7, 0)
    assert (second.command, second.expect, second.exit_code) == ("quantdesk context list", None, 0)
    assert skill.tools == ["deflated_sharpe"]
    assert list_skills(tmp_path) == [skill]
    assert get_skill("tiny", tmp_path) == skill


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# no front matter\n", "starts with YAML front matter"),
        ("---\nname: tiny\ndescription: x\n", "never closed"),
        ("---\nname: [tiny\n---\n", "not YAML"),
        ("---\n- a list\n---\n", "not a YAML mapping"),
        ("---\nname: other\ndescription: x\n---\n", "differs from its folder"),
        ("---\nname: Tiny\ndescription: x\n---\n", "lowercase"),
        ("---\nname: tiny\n---\n", "description is missing"),
        ("---\nname: tiny\ndescription: '" + "x" * 1025 + "'\n---\n", "1025 characters"),
        ("---\nname: tiny\ndescription: x\nauthor: me\n---\n", "unknown front-matter"),
        ("---\nname: tiny\ndescription: x\nmetadata:\n  version: 1\n---\n", "strings to strings"),
        ("---\nname: tiny\ndescription: x\n---\n```bash\nquantdesk x\n", "never closed"),
        ('---\nname: tiny\ndescription: x\n---\n```json expect\n{"ok": true}\n```\n', "follow"),
        (
            "---\nname: tiny\ndescription: x\n---\n```bash\nquantdesk x\n```\n"
            '```json expect\n{"result": 1}\n```\n',
            '"ok": true or "ok": false',
        ),
        (
            "---\nname: tiny\ndescription: x\n---\n```bash\nquantdesk x\n```\n"
            '```json expect\n{"ok": false}\n```\n',
            "needs",
        ),
        (
            "---\nname: tiny\ndescription: x\n---\n```bash\nquantdesk x\n```\n"
            '```json expect\n{"ok": true, "result": "<float>"}\n```\n',
            "unknown placeholder",
        ),
        (
            "---\nname: tiny\ndescription: x\n---\n```bash\nquantdesk x\n```\n"
            "```json expect\n{ok: true}\n```\n",
            "not valid JSON",
        ),
        (
            "---\nname: tiny\ndescription: x\n---\n```bash\n"
            "echo '{\"a\": }' | quantdesk tool run pbo --input -\n```\n",
            "(request): not valid JSON",
        ),
    ],
)
def test_malformed_skills_are_refused_with_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write_skill(tmp_path, "tiny", text)
    with pytest.raises(SkillFormatError, match=r"tiny/SKILL\.md") as info:
        parse_skill(path)
    assert message in info.value.message
    assert info.value.fix


def test_an_unknown_skill_lists_the_known_ones() -> None:
    with pytest.raises(InputError, match="Unknown skill 'no-such-skill'") as info:
        get_skill("no-such-skill")
    assert "walk-forward-cv" in (info.value.fix or "")


# --------------------------------------------------------------------------- expectations

ACTUAL = {
    "ok": True,
    "n": 3,
    "x": 0.25,
    "flag": False,
    "none": None,
    "day": "2019-12-31",
    "text": "DSR 0.88, not significant at 0.95.",
    "items": [{"name": "as_of", "outcome": "passed"}, {"name": "costs", "outcome": "refused"}],
    "empty": [],
    "obj": {"a": 1, "b": {"c": "d"}},
}


@pytest.mark.parametrize(
    "expected",
    [
        {"ok": True},
        {"n": 3, "x": 0.25, "flag": False, "none": None},
        {"x": 0.25 + 1e-12},
        {"n": 3.0},
        {"day": "<date>", "text": "<string>", "n": "<int>", "x": "<number>", "flag": "<bool>"},
        {"none": "<any>", "items": "<list>", "obj": "<object>"},
        {"x": "<number in [0, 0.25]>", "n": "<number in [3, 3]>"},
        {"text": "<contains not significant>"},
        {"items": [{"name": "costs", "outcome": "refused"}]},
        {"items": [{"outcome": "passed"}, {"name": "costs"}]},
        {"empty": []},
        {"obj": {"b": {"c": "d"}}},
    ],
)
def test_matching_expectations(expected: dict[str, object]) -> None:
    assert check_expectation(expected, ACTUAL) == []


@pytest.mark.parametrize(
    ("expected", "problem"),
    [
        ({"ok": False}, "$.ok: expected False, got True"),
        ({"missing": 1}, "$.missing: missing"),
        ({"n": 4}, "$.n: expected 4, got 3"),
        ({"n": True}, "$.n: expected True, got 3"),
        ({"flag": 0}, "$.flag: expected 0, got False"),
        ({"x": "<int>"}, "does not match <int>"),
        ({"n": "<bool>"}, "does not match <bool>"),
        ({"text": "<date>"}, "does not match <date>"),
        ({"x": "<number in [0.3, 1]>"}, "does not match <number in [0.3, 1]>"),
        ({"text": "<contains significant at 0.99>"}, "does not match"),
        ({"items": [{"name": "lookahead"}]}, "$.items: no item matches"),
        ({"items": []}, "$.items: expected an empty array, got 2"),
        ({"obj": {"b": {"c": "e"}}}, "$.obj.b.c: expected 'e', got 'd'"),
        ({"obj": []}, "$.obj: expected an array"),
        ({"items": {}}, "$.items: expected an object"),
    ],
)
def test_mismatches_name_the_path(expected: dict[str, object], problem: str) -> None:
    problems = check_expectation(expected, ACTUAL)
    assert len(problems) == 1
    assert problem in problems[0]


@pytest.mark.parametrize(
    ("expect", "code"),
    [
        ({"ok": True}, 0),
        ({"ok": False, "error": {"kind": "refused"}}, 1),
        ({"ok": False, "error": {"kind": "runtime"}}, 1),
        ({"ok": False, "error": {"kind": "bad_input"}}, 2),
    ],
)
def test_expected_exit_codes_follow_the_envelope(expect: dict[str, object], code: int) -> None:
    assert expected_exit_code(expect) == code
