"""Record and replay of model calls."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from quantdesk.agents.messages import Message, ModelRequest, ToolCall
from quantdesk.agents.recording import (
    RecordingModel,
    ReplayMismatchError,
    ReplayModel,
    request_hash,
)
from quantdesk.agents.testing import FunctionModel


def _req(text: str, timeout_s: float = 60.0) -> ModelRequest:
    return ModelRequest(messages=[Message(role="user", content=text)], timeout_s=timeout_s)


def _model() -> FunctionModel:
    def reply(messages: list[Message], req: ModelRequest) -> str | ToolCall:
        text = messages[-1].content
        if text.startswith("call"):
            return ToolCall(id="c1", name="fetch_prices", arguments={"source": {"kind": "demo"}})
        return f"answer to {text}"

    return FunctionModel(reply, model_id="test:recorded")


def _record(path: Path, texts: list[str]) -> list[object]:
    recorder = RecordingModel(_model(), path)
    return [asyncio.run(recorder.request(_req(t))) for t in texts]


def test_replay_returns_exactly_the_recorded_responses(tmp_path: Path) -> None:
    path = tmp_path / "rec" / "session.jsonl"
    texts = ["a", "call tool", "b"]
    recorded = _record(path, texts)
    replay = ReplayModel(path)
    assert replay.model_id == "test:recorded"
    assert [asyncio.run(replay.request(_req(t))) for t in texts] == recorded
    assert replay.remaining == 0
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [0, 1, 2]
    assert all(line["version"] == 1 for line in lines)


def test_a_changed_request_fails_naming_the_call_and_field(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    _record(path, ["a", "b"])
    replay = ReplayModel(path)
    asyncio.run(replay.request(_req("a")))
    with pytest.raises(ReplayMismatchError, match=r"Call #1 .*messages\[0\]\.content"):
        asyncio.run(replay.request(_req("B")))


def test_running_past_the_recording_fails(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    _record(path, ["a"])
    replay = ReplayModel(path)
    asyncio.run(replay.request(_req("a")))
    with pytest.raises(ReplayMismatchError, match="recorded only 1"):
        asyncio.run(replay.request(_req("a")))


def test_timeout_does_not_change_the_hash_and_unordered_replay_matches(tmp_path: Path) -> None:
    assert request_hash(_req("a", 5.0)) == request_hash(_req("a", 60.0))
    assert request_hash(_req("a")) != request_hash(_req("b"))
    path = tmp_path / "s.jsonl"
    recorded = _record(path, ["a", "b"])
    replay = ReplayModel(path, strict_order=False)
    assert asyncio.run(replay.request(_req("b"))) == recorded[1]
    assert asyncio.run(replay.request(_req("a"))) == recorded[0]
    with pytest.raises(ReplayMismatchError):
        asyncio.run(replay.request(_req("a")))


def test_append_continues_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    _record(path, ["a"])
    recorder = RecordingModel(_model(), path, append=True)
    asyncio.run(recorder.request(_req("b")))
    assert [json.loads(x)["seq"] for x in path.read_text().splitlines()] == [0, 1]


def test_keys_are_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-ant-test-0123456789abcdef"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    path = tmp_path / "s.jsonl"
    _record(path, [f"my key is {secret}"])
    assert secret not in path.read_text()
    assert "[REDACTED]" in path.read_text()


def test_streaming_is_recorded_and_replayed(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    recorder = RecordingModel(_model(), path)

    async def run(model: object, text: str) -> list[object]:
        return [event async for event in model.stream(_req(text))]  # type: ignore[attr-defined]

    live = asyncio.run(run(recorder, "hello"))
    again = asyncio.run(run(ReplayModel(path), "hello"))
    assert live == again


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "empty"), ("{not json\n", "not JSON"), ('{"version": 7}\n', "version 7")],
)
def test_bad_recording_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ReplayMismatchError.__mro__[1], match=message):
        ReplayModel(path)


def test_missing_recording_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ReplayModel(tmp_path / "nope.jsonl")
