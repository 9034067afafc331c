"""The main job: ``quantdesk demo`` runs an agent research session; ``research`` resumes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from quantdesk.cli.main import main


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_is_a_complete_agent_session_that_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.md"
    code, out, err = run_cli(["demo", "--report", str(report)], capsys)
    assert code == 0, err
    # the planted momentum effect of the synthetic market is found and survives the critic
    assert "Decision: **ACCEPT**" in out
    assert "Researcher model: offline" in out
    assert "[deflated_sharpe " in out  # numbers cite the tool call that produced them
    assert report.read_text().startswith("# Research report")
    found = re.search(r"Session (\w+): complete, decision accept, (\d+) tool calls", out)
    assert found, out
    thread, calls = found.group(1), int(found.group(2))
    # resuming a finished session replays its stored outcome: no tool call runs again
    code, out, err = run_cli(["research", "ignored", "--thread", thread], capsys)
    assert code == 0, err
    assert f"Session {thread}: complete, decision accept, {calls} tool calls" in out


def test_research_on_noise_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        ["research", 'Is momentum real here? {"source": {"kind": "demo", "preset": "noise"}}'],
        capsys,
    )
    assert code == 0, err
    assert "Decision: **REJECT**" in out


def test_research_bad_data_path_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["research", "q", "--data", str(tmp_path / "nope.parquet")], capsys)
    assert code == 2
    assert "nope.parquet" in err
    assert "Traceback" not in err
