"""A session killed mid-run in one process resumes in another and repeats no tool call.

The first process runs the offline demo session, checkpointed in
``QUANTDESK_HOME/sessions.sqlite`` as ``quantdesk research`` does, and dies (``os._exit``, no
cleanup) when its N-th tool call starts. A second process resumes the thread and completes it.
Each process appends every tool call it executes to a log file; the two logs together must be
the session's tool log, call for call, and the trial registry must hold one trial per
trial-recording call. A third process, the CLI, finds the session complete and runs nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import asyncio, json, os, sys

from quantdesk.agents.offline_model import OfflineModel
from quantdesk.agents.research.runtime import ToolThread, arun_session
from quantdesk.cli.research_command import DEMO_QUESTION

thread, kill_at, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tools = ToolThread()
started = 0


def runner(name, payload):
    global started
    started += 1
    if started == kill_at:
        os._exit(17)  # killed as the call starts: no cleanup, no final checkpoint
    envelope = tools(name, payload)
    with open(log_path, "a") as log:
        log.write(json.dumps([name, payload], sort_keys=True) + "\\n")
    return envelope


outcome = asyncio.run(
    arun_session(
        DEMO_QUESTION, model=OfflineModel(), context=None, thread=thread, tool_runner=runner
    )
)
state = outcome.state
print(json.dumps({
    "status": outcome.status,
    "decision": outcome.decision,
    "log": [[e["id"], e["name"], e["arguments"]] for e in state["tool_log"]],
}))
"""


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUANTDESK_HOME": str(home), "PYTHONHASHSEED": "0"}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, check=False)


def _executed(path: Path) -> list[str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.dumps(json.loads(line), sort_keys=True) for line in lines]


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [8])  # the critic's second split-sample backtest
def test_a_killed_session_resumes_in_another_process_without_repeating_a_call(
    tmp_path: Path, kill_at: int
) -> None:
    from quantdesk.quant_core.trials import TrialRegistry

    home = Path(os.environ["QUANTDESK_HOME"])  # this test's own (tests/conftest.py)

    script = tmp_path / "session.py"
    script.write_text(SCRIPT)
    first_log, second_log = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    killed = _run([sys.executable, str(script), "t-kill", str(kill_at), str(first_log)], home)
    assert killed.returncode == 17, killed.stderr[-2000:]
    assert len(_executed(first_log)) == kill_at - 1
    resumed = _run([sys.executable, str(script), "t-kill", "0", str(second_log)], home)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    outcome = json.loads(resumed.stdout.strip().splitlines()[-1])
    assert (outcome["status"], outcome["decision"]) == ("complete", "accept")
    log = outcome["log"]
    # each call ran once, in log order, split across the two processes at the kill
    logged = [json.dumps([name, arguments], sort_keys=True) for _, name, arguments in log]
    executed = _executed(first_log) + _executed(second_log)
    assert executed == logged
    assert len({call_id for call_id, _, _ in log}) == len(log) == 10
    # the registry counts one trial per backtest call (a repeated call would add one)
    backtests = [call_id for call_id, name, _ in log if name == "backtest"]
    assert TrialRegistry().count("default") == len(backtests) == 3
    # the CLI resumes the finished session: it reports it and runs nothing
    cli = _run(
        [sys.executable, "-m", "quantdesk.cli.main", "research", "ignored", "--thread", "t-kill"],
        home,
    )
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "Session t-kill: complete, decision accept, 10 tool calls" in cli.stdout
    assert TrialRegistry().count("default") == 3
