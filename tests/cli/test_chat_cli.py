"""``quantdesk chat`` driven through a pipe: tool calls as they happen, commands, resuming."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from quantdesk.agents.research.chat_events import ChatEvent, ToolFinished, ToolStarted, TurnEnded
from quantdesk.cli.app import app
from quantdesk.cli.chat_display import ChatDisplay, drive_turn
from quantdesk.cli.research_command import DEMO_QUESTION
from quantdesk.quant_core import demo_universe
from quantdesk.quant_core.errors import InputError
from quantdesk.quant_core.research_context import create_context

MOMENTUM = "Is there 12-1 momentum in the demo market as of 2019-12-31?"


def chat(lines: list[str], *args: str) -> str:
    if "--sample-filings" not in args:
        args = (*args, "--no-sample-filings")  # loading MiniLM is covered once, below
    result = CliRunner().invoke(app, ["chat", *args], input="".join(f"{x}\n" for x in lines))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


def replies(transcript: str) -> list[tuple[str, list[str]]]:
    """Each ``> input`` line of a piped transcript with the lines printed after it."""
    out: list[tuple[str, list[str]]] = []
    for line in transcript.splitlines():
        if line.startswith("> "):
            out.append((line[2:], []))
        elif out:
            out[-1][1].append(line)
    return out


def answer(transcript: str, command: str, nth: int = 0) -> list[str]:
    """The lines printed after the ``nth`` occurrence of ``command``."""
    return [lines for typed, lines in replies(transcript) if typed == command][nth]


def test_a_piped_session_shows_tool_calls_and_resumes_in_another_process(tmp_path: Path) -> None:
    out = chat([MOMENTUM, "/sessions", "/report"])
    assert "Traceback" not in out
    thread = re.search(r"Session (\w+) \(new\), model offline", out)
    assert thread, out
    session = thread.group(1)
    # tool calls appear as they happen: started, finished, then the critic and the decision
    order = [
        "-> fetch_prices(source.kind=demo",
        "ok fetch_prices [offline_0_fetch_prices]",
        "-> backtest(",
        "ok backtest [offline_3_backtest]",
        "Verdict: SUPPORTED in-sample",
        "[critic]",
        "ok backtest [critic_r1_split_first]",
        "[risk]",
        "[decision] ACCEPT",
        "Turn finished.",
    ]
    positions = [out.index(marker) for marker in order]
    assert positions == sorted(positions)
    listed = answer(out, "/sessions")
    assert any(row.startswith(f"* {session}") and "accept" in row for row in listed)
    report = "\n".join(answer(out, "/report"))
    assert "# Research report" in report
    assert "Decision: **ACCEPT**" in report
    assert f"Session {session} is saved" in out
    # a second process resumes the session and prints the same report
    quantdesk = Path(sys.executable).with_name("quantdesk")
    done = subprocess.run(
        [str(quantdesk), "chat", "--resume", session, "--no-sample-filings"],
        input="/report\n/quit\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONSAFEPATH": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"Resumed session {session}: 1 question(s), last decision accept" in done.stdout
    resumed = "\n".join(answer(done.stdout, "/report"))
    assert resumed.strip() == report.strip()


def test_commands_answer_in_one_line_and_bad_input_never_stops_the_session(
    tmp_path: Path,
) -> None:
    written = tmp_path / "out" / "report.md"
    bad = [
        "/report",
        "/holdout",
        "/frobnicate",
        "/resume",
        "/resume nosuchsession",
        "/budget tokens many",
        "/holdout maybe",
        "/model nosuchprovider:x",
        "/continue",
    ]
    out = chat([*bad, "/trials", MOMENTUM, "/trials", "/budget", f"/report {written}", "/model"])
    assert "Traceback" not in out
    for command in bad:
        assert len(answer(out, command)) == 1, (command, answer(out, command))
    assert answer(out, "/report") == [
        "error: This session has no report yet. Fix: ask a research question first."
    ]
    assert answer(out, "/holdout") == ["No hypothesis yet: ask a question first."]
    assert answer(out, "/frobnicate") == [
        "Unknown command '/frobnicate': /help lists the commands."
    ]
    assert "nosuchsession" in answer(out, "/resume nosuchsession")[0]
    assert "nosuchprovider" in answer(out, "/model nosuchprovider:x")[0]
    assert answer(out, "/trials") == ["No trials in research context 'default' yet."]
    trials = answer(out, "/trials", 1)
    assert trials[0].startswith("Trials of research context default (3 of a budget of 50")
    assert len(trials) == 4
    assert all(row.startswith("* #") for row in trials[1:])  # all three ran in this session
    (usage,) = answer(out, "/budget")  # the offline policy runs no language model
    assert re.fullmatch(
        r"Usage: 0 tokens \(0 in, 0 out\) in \d+ model call\(s\); cost \$0\.0000; budget none\.",
        usage,
    )
    assert written.read_text().startswith("# Research report")
    assert answer(out, "/model")[0] == "Model: offline"


def test_holdout_command_approves_the_evaluation_once() -> None:
    create_context("mom", as_of="2020-06-30", holdout=("2019-07-01", None))
    out = chat(["12-1 momentum?", "/holdout", "/holdout"], "--context", "mom")
    asked = "\n".join(answer(out, "12-1 momentum?"))
    assert "[holdout] Evaluate the accepted hypothesis on the holdout?" in asked
    assert "-> evaluate_holdout(" not in asked
    approved = "\n".join(answer(out, "/holdout"))
    assert "-> evaluate_holdout(" in approved
    assert "[decision] REJECT" in approved  # momentum switches off in the holdout
    again = answer(out, "/holdout", 1)[0]
    assert again.startswith("Holdout evaluated: holdout Sharpe")


def test_data_folder_with_one_price_file_is_the_sessions_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTDESK_DATA_DIRS", str(tmp_path / "elsewhere"))  # restored after
    folder = tmp_path / "mydata"
    (folder / "prices").mkdir(parents=True)
    prices = folder / "prices" / "panel.parquet"
    demo_universe(seed=5, n_symbols=20, n_sessions=600).prices.write_parquet(prices)
    out = chat(["Is there 12-1 momentum?"], "--data", str(folder))
    assert "-> fetch_prices(source.kind=file, source.path=/" in out
    assert f'Plan: source {{"kind": "file", "path": "{prices}"}}' in out
    assert "ok fetch_prices [offline_0_fetch_prices]" in out
    assert "20 symbols" in out
    # several price files: the chat starts and says to name one
    (folder / "other.csv").write_text("date,symbol,close\n")
    out = chat(["/quit"], "--data", str(folder))
    assert "holds several price files (other.csv, prices/panel.parquet)" in out


def test_startup_mistakes_are_input_errors() -> None:
    with pytest.raises(InputError, match="nosuch"):
        chat([], "--resume", "nosuch")
    with pytest.raises(InputError, match=r"nope\.parquet"):
        chat([], "--data", "nope.parquet")
    with pytest.raises(InputError, match="unknown-ctx"):
        chat([], "--context", "unknown-ctx")


async def _slow_turn() -> AsyncIterator[ChatEvent]:
    yield ToolStarted("c1", "walk_forward_cv", "researcher", {}, "cv.n_splits=5")
    await asyncio.sleep(0.5)
    yield ToolFinished("c1", "walk_forward_cv", "researcher", True, False, 0.5, "IC 0.05")
    yield TurnEnded("complete", "accept", "# Research report\n", "")


@pytest.mark.parametrize("tty", [False, True])
def test_long_tool_calls_show_progress(tty: bool) -> None:
    written: list[str] = []
    display = ChatDisplay(written.append, tty=tty, progress_every_s=0.1)
    ended = asyncio.run(drive_turn(_slow_turn(), display, tick_s=0.02))
    assert ended is not None
    assert ended.decision == "accept"
    text = "".join(written)
    assert text.index("-> walk_forward_cv(cv.n_splits=5)") < text.index("ok walk_forward_cv")
    if tty:  # a spinner rewritten in place, cleared before the next line
        assert re.search(r"\r\x1b\[2K  [|/\\-] running walk_forward_cv \(\d+ s\)", text)
        assert re.search(r"\r\x1b\[2K(\x1b\[[0-9;]*m)*  ok walk_forward_cv", text)
    else:  # plain lines every progress_every_s
        progress = re.findall(r"^  \.\.\. running walk_forward_cv \(\d+ s\)$", text, re.M)
        assert progress  # at least one; how many depends on the machine's load
        assert "\r" not in text


@pytest.mark.slow
def test_the_demo_market_chat_reads_the_fictional_sample_filings() -> None:
    out = chat([DEMO_QUESTION, "/report"], "--sample-filings")
    assert "FICTIONAL sample filings of the demo companies" in out
    found = re.search(r"search_filings \[\w+\] [\d.]+ s: (\d+) passage", out)
    assert found, out
    assert int(found.group(1)) > 0, out
    report = out.split("> /report", 1)[1]  # (the report quotes with "> " lines itself)
    assert "## Filings" in report
    assert "FICTIONAL-SYN042-10Q-2020Q2" in report  # the pending merger of a held name
