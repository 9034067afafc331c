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
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "[deflated_sharpe critic_r1_dsr]" in page
    # the fictional sample filings are ingested, searched as of the data's end, and read
    assert "Filings: 9 FICTIONAL sample filings of the demo companies (14 passages" in out
    assert "SYN042 (held long on 2020-10-19): its filings mention a pending merger" in out
    assert "(FICTIONAL-SYN042-10Q-2020Q2, chars " in out
    assert "Point in time: 3 of the 9 sample filings became public after the session's as-of" in out
    assert "FICTIONAL-SYN044-8K-20201019" not in report.read_text()  # public that evening
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
    # nothing was ingested in this home: the session says so and goes on
    assert "no filings were read [search_filings offline_6_search_filings]" in out
    assert "holds no filings" in out


def test_research_bad_data_path_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["research", "q", "--data", str(tmp_path / "nope.parquet")], capsys)
    assert code == 2
    assert "nope.parquet" in err
    assert "Traceback" not in err


@pytest.mark.realdata
def test_research_on_real_prices_without_filings_goes_on(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prices = shared_data / "prices" / "yfinance_adjusted_ohlcv_2005_2024.parquet"
    question = "Is 12-1 momentum real in these stocks as of 2019-12-31?"
    report = tmp_path / "real"
    code, out, err = run_cli(
        ["research", question, "--data", str(prices), "--report", str(report)], capsys
    )
    assert code == 0, err
    assert re.search(r"Session \w+: complete, decision (accept|reject|needs-more-evidence)", out)
    assert "no filings were read [search_filings offline_6_search_filings]" in out
    assert "ingest filings first" in out  # the tool's fix is passed on
    assert (tmp_path / "real.md").is_file()
    assert (tmp_path / "real.html").read_text().startswith("<!DOCTYPE html>")
