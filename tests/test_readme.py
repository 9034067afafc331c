"""The README's Quickstart is exactly two commands, and CI runs them verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text()


def _section(title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## )", README, flags=re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _quickstart_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", _section("Quickstart"), flags=re.S)
    assert len(blocks) == 1, "the Quickstart has exactly one command block"
    return [line for line in blocks[0].splitlines() if line.strip()]


def test_quickstart_has_exactly_two_commands() -> None:
    commands = _quickstart_commands()
    assert len(commands) == 2
    install_and_run, run_tests = commands
    assert "-c constraints.txt" in install_and_run
    assert install_and_run.rstrip().endswith("quantdesk demo")
    assert "pytest" in run_tests


def test_ci_runs_the_quickstart_commands_verbatim() -> None:
    ci_lines = {line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()}
    for command in _quickstart_commands():
        assert command.strip() in ci_lines, f"CI does not run the README command {command!r}"


@pytest.mark.realdata
@pytest.mark.slow
def test_python_example_runs(shared_data: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", _section("Using it"), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict[str, object] = {}
    for block in blocks:  # the blocks build on each other, as a reader runs them
        code = block.replace("../shared/data", shared_data.as_posix())
        exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["result"].run is not None
    assert namespace["bt"].run.context.name == "momentum-2019"


@pytest.mark.realdata
@pytest.mark.slow
def test_shell_examples_run(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shlex
    import subprocess
    import sys

    block = re.search(r"```bash\n(.*?)```", _section("Using it"), flags=re.S)
    assert block
    text = block.group(1).replace("\\\n", " ")
    commands = [
        line.split("#")[0].strip()
        for line in text.splitlines()
        if line.strip().startswith("quantdesk ")
    ]
    assert len(commands) >= 10
    exe = str(Path(sys.executable).with_name("quantdesk"))
    monkeypatch.chdir(tmp_path)
    trial_id = None
    for command in commands:
        command = command.replace("../shared/data", shared_data.as_posix())
        if "TRIAL_ID" in command:
            assert trial_id, "no trial was listed before the report command"
            command = command.replace("TRIAL_ID", trial_id)
        argv = shlex.split(command)
        result = subprocess.run(
            [exe, *argv[1:]], capture_output=True, text=True, check=False, timeout=600
        )
        assert result.returncode in (0, 1), f"{command}\n{result.stderr[-2000:]}"
        if argv[1] == "data" and argv[2] == "validate":
            assert result.returncode == 1  # the Alpha Vantage file has real vendor glitches
        else:
            assert result.returncode == 0, f"{command}\n{result.stderr[-2000:]}"
        if argv[1:3] == ["trials", "list"]:
            found = re.search(r"\| \d+ \| ([0-9a-f]{16}) \|", result.stdout)
            trial_id = found.group(1) if found else None
    assert (tmp_path / "momentum.html").exists()
    assert (tmp_path / "trial.html").exists()
