"""``quantdesk research`` with ``QUANTDESK_MODEL=anthropic:<model>``, against a local server.

The server speaks the Messages API. The researcher asks for a backtest through tool use, the
graph runs it and sends the result back as a ``tool_result`` block, the researcher answers, and
the critic returns its structured review through the forced answer tool. Nothing reaches the
network, and the key goes to the server only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import fake_servers as fs
import pytest
from typer.testing import CliRunner

from quantdesk.cli.app import app

KEY = "sk-ant-SECRET-0123456789abcdef"
BACKTEST = {
    "source": {"kind": "demo", "seed": 7},
    "as_of": "2020-10-19",
    "strategy": {"signal": "mom_252_21", "higher_is_better": True},
}


def _tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        block
        for message in body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


@pytest.mark.slow
def test_a_research_session_runs_on_an_anthropic_model_set_by_one_variable(
    fake_server: fs.FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("QUANTDESK_MODEL", "anthropic:claude-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("QUANTDESK_ANTHROPIC_BASE_URL", fake_server.base_url)
    fake_server.reply_json(
        fs.anthropic_message(
            text="I will backtest 12-1 momentum on the demo market.",
            tool_uses=[("toolu_bt", "backtest", BACKTEST)],
            stop_reason="tool_use",
            message_id="msg_1",
        )
    )
    fake_server.reply_json(
        fs.anthropic_message(
            text="Hypothesis: 12-1 momentum earns a positive net Sharpe [backtest toolu_bt].",
            message_id="msg_2",
        )
    )
    critique = {
        "concerns": [
            {
                "topic": "regime",
                "severity": "minor",
                "text": "One sample only; the split halves were not run.",
                "cites": ["toolu_bt"],
            }
        ],
        "requested_tests": [],
        "summary": "A single backtest with costs; regime dependence unchecked.",
    }
    fake_server.reply_json(
        fs.anthropic_message(
            tool_uses=[("toolu_final", "final_answer", critique)],
            stop_reason="tool_use",
            message_id="msg_3",
        )
    )
    report = tmp_path / "session"
    result = CliRunner().invoke(
        app, ["research", "Is 12-1 momentum real in the demo market?", "--report", str(report)]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 0, result.output
    assert fake_server.errors == []
    assert fake_server.pending == 0  # every scripted answer was asked for
    first, second, third = fake_server.requests
    for request in fake_server.requests:
        assert request.path.endswith("/v1/messages")
        assert request.headers.get("x-api-key") == KEY or (
            request.headers.get("authorization") == f"Bearer {KEY}"
        )
        assert request.body["model"] == "claude-test"
    assert "backtest" in {tool["name"] for tool in first.body["tools"]}
    # the graph ran the backtest and returned its envelope as the tool_use's result
    (returned,) = _tool_results(second.body)
    assert returned["tool_use_id"] == "toolu_bt"
    envelope = json.loads(returned["content"][0]["text"] if isinstance(returned["content"], list)
                          else returned["content"])  # fmt: skip
    assert envelope["ok"] is True, envelope
    assert envelope["provenance"]["trial_id"], envelope["provenance"]
    # the critic was forced to answer through its schema
    assert third.body["tool_choice"] == {"type": "tool", "name": "final_answer"}
    markdown = report.with_suffix(".md").read_text()
    assert "Researcher model: anthropic:claude-test" in markdown
    assert "Decision: **ACCEPT**" in markdown  # DSR 1.000 at N=1, a minor concern only
    assert "toolu_bt" in markdown  # the report cites the model's own tool call
    assert "One sample only" in markdown
    assert report.with_suffix(".html").is_file()
    home = Path(os.environ["QUANTDESK_HOME"])
    for text in (result.output, markdown):
        assert KEY not in text
    stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert KEY.encode() not in stored
