"""A scripted local HTTP server speaking the Anthropic Messages and OpenAI Chat Completions formats.

Tests queue the answers (JSON bodies, SSE streams, raw bytes, or a hang for timeouts), point an
SDK at ``server.base_url`` and read back what the SDK sent (``server.requests``). The server
binds 127.0.0.1 on an ephemeral port, so the test network guard lets it through.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FakeServer",
    "RecordedRequest",
    "Reply",
    "anthropic_error",
    "anthropic_message",
    "anthropic_sse",
    "openai_completion",
    "openai_error",
    "openai_sse",
]


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Attributes:
        status: HTTP status.
        body: Bytes sent as the body.
        headers: Extra headers (``Content-Type`` included).
        hang_s: Seconds to wait before answering (for timeout tests).
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0


@dataclass(frozen=True)
class RecordedRequest:
    """What a client sent."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeServer:
    """A threaded HTTP server answering requests from a queue of :class:`Reply`."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self._replies: queue.Queue[Reply] = queue.Queue()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # wake any hanging handler
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- scripting ---------------------------------------------------------------------------
    def reply(self, reply: Reply) -> None:
        self._replies.put(reply)

    def reply_json(
        self, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.reply(
            Reply(
                status=status,
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", **(headers or {})},
            )
        )

    def reply_sse(self, body: bytes) -> None:
        self.reply(Reply(body=body, headers={"Content-Type": "text/event-stream"}))

    def reply_raw(
        self, body: bytes, content_type: str = "application/json", status: int = 200
    ) -> None:
        self.reply(Reply(status=status, body=body, headers={"Content-Type": content_type}))

    def reply_hang(self, seconds: float) -> None:
        self.reply(Reply(hang_s=seconds, body=b"{}", headers={"Content-Type": "application/json"}))

    @property
    def pending(self) -> int:
        return self._replies.qsize()

    # -- serving -----------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output clean

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                server.requests.append(
                    RecordedRequest(
                        method="POST",
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=json.loads(raw) if raw else {},
                    )
                )
                try:
                    reply = server._replies.get_nowait()
                except queue.Empty:
                    reply = Reply(status=599, body=b'{"error": "no scripted reply"}')
                    server.errors.append(f"unexpected request to {self.path}")
                if reply.hang_s and server._release.wait(reply.hang_s):
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError) as exc:
                    # The client gave up (a timeout test); record it rather than crash.
                    server.errors.append(f"client went away: {exc!r}")

        return Handler


# -- Anthropic Messages API -----------------------------------------------------------------
def anthropic_message(
    *,
    text: str = "",
    tool_uses: Sequence[tuple[str, str, dict[str, Any]]] = (),
    stop_reason: str = "end_turn",
    input_tokens: int = 10,
    output_tokens: int = 5,
    model: str = "claude-test",
    message_id: str = "msg_01",
) -> dict[str, Any]:
    """A Messages API response body."""
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "text", "text": text})
    for call_id, name, arguments in tool_uses:
        content.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def anthropic_error(error_type: str, message: str) -> dict[str, Any]:
    """A Messages API error body."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    lines = []
    for name, data in events:
        if name is not None:
            lines.append(f"event: {name}")
        lines.append(f"data: {data if isinstance(data, str) else json.dumps(data)}")
        lines.append("")
    return ("\n".join(lines) + "\n").encode()


def anthropic_sse(
    *,
    text_chunks: Sequence[str] = (),
    tool_use: tuple[str, str, list[str]] | None = None,
    stop_reason: str = "end_turn",
    input_tokens: int = 10,
    output_tokens: int = 5,
    message_id: str = "msg_02",
) -> bytes:
    """A Messages API SSE stream: text deltas, then optionally one tool_use block in JSON pieces."""
    start = anthropic_message(message_id=message_id, input_tokens=input_tokens, output_tokens=1)
    start.update(content=[], stop_reason=None)
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start", "message": start})
    ]
    index = 0
    if text_chunks:
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        events.append(("ping", {"type": "ping"}))
        for chunk in text_chunks:
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": chunk},
                    },
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    if tool_use is not None:
        call_id, name, pieces = tool_use
        events.append(
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
                },
            )
        )
        for piece in pieces:
            events.append(
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece},
                    },
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return _sse(events)


# -- OpenAI Chat Completions ------------------------------------------------------------------
def openai_completion(
    *,
    text: str | None = None,
    tool_calls: Sequence[tuple[str, str, str]] = (),
    finish_reason: str = "stop",
    refusal: str | None = None,
    prompt_tokens: int = 12,
    completion_tokens: int = 7,
    model: str = "gpt-test",
    completion_id: str = "chatcmpl-01",
) -> dict[str, Any]:
    """A Chat Completions response body; tool call arguments are raw JSON strings."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": refusal}
    if tool_calls:
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in tool_calls
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def openai_error(message: str, error_type: str = "invalid_request_error") -> dict[str, Any]:
    """A Chat Completions error body."""
    return {"error": {"message": message, "type": error_type, "param": None, "code": None}}


def openai_sse(
    *,
    text_chunks: Sequence[str] = (),
    tool_call: tuple[str, str, list[str]] | None = None,
    finish_reason: str = "stop",
    prompt_tokens: int = 12,
    completion_tokens: int = 7,
    completion_id: str = "chatcmpl-02",
) -> bytes:
    """A Chat Completions SSE stream (with ``include_usage``), ending with ``[DONE]``."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "gpt-test",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}))]
    for piece in text_chunks:
        events.append((None, chunk({"content": piece})))
    if tool_call is not None:
        call_id, name, pieces = tool_call
        first = {
            "index": 0,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        events.append((None, chunk({"tool_calls": [first]})))
        for piece in pieces:
            events.append(
                (None, chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
            )
    events.append((None, chunk({}, finish_reason)))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    events.append((None, {**chunk({}), "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return _sse(events)
