"""``quantdesk chat`` pointed at a local OpenAI-compatible server by one variable.

The server speaks the real Chat Completions wire format (SSE for the researcher's streamed
answer, JSON for the critic's structured review); the key is sent to it but never shown.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import fake_servers as fs
import pytest
import typer
from typer.testing import CliRunner

from quantdesk.cli.chat_command import chat_command

KEY = "sk-local-SECRET-0123456789abcdef"
QUESTION = "Is momentum real in the demo market?"


def _chat(lines: list[str], *args: str) -> str:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command("chat")(chat_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["chat", *args], input="".join(f"{x}\n" for x in lines))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.output


def test_one_variable_points_the_chat_at_a_local_model_and_the_key_never_shows(
    fake_server: fs.FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_id = f"openai-compatible:llama3@{fake_server.base_url}"
    monkeypatch.setenv("QUANTDESK_MODEL", model_id)
    monkeypatch.setenv("QUANTDESK_OPENAI_API_KEY", KEY)
    fake_server.reply_sse(
        fs.openai_sse(text_chunks=["Momentum ", "looks ", "real,\n", "but I ran ", "no test."])
    )
    critique = {"concerns": [], "requested_tests": [], "summary": "No evidence to review."}
    fake_server.reply_json(fs.openai_completion(text=json.dumps(critique)))
    out = _chat([QUESTION, "/budget", "/model", "/report"])
    assert "Traceback" not in out
    assert fake_server.errors == []
    # the streamed deltas are shown in order, as one text
    assert "Momentum looks real,\nbut I ran no test." in out
    assert f"model {model_id}" in out
    assert "[decision] NEEDS-MORE-EVIDENCE" in out  # no trial measured anything
    assert re.search(
        r"Usage: 38 tokens \(24 in, 14 out\) in 2 model call\(s\); cost unknown", out
    ), out
    first, second = fake_server.requests
    assert first.body["stream"] is True
    assert "response_format" in second.body  # the critic asked for its structured review
    assert first.headers["authorization"] == f"Bearer {KEY}"
    session = re.search(r"Session (\w+) is saved", out)
    assert session
    # resumed (by id alone, in a fresh chat) the session remembers its model and usage
    monkeypatch.delenv("QUANTDESK_MODEL")
    again = _chat(["/model", "/budget", "/report"], "--resume", session.group(1))
    assert f"Model: {model_id}" in again
    assert "Usage: 38 tokens" in again
    assert "# Research report" in again
    # the key reached the server, and nothing else: not the screen, the report or the store
    for text in (out, again):
        assert KEY not in text
        assert KEY[:12] not in text
    home = Path(os.environ["QUANTDESK_HOME"])
    stored = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert KEY.encode() not in stored
